"""Sampled miss-ratio curves: the hash sample, SHARDS against the exact LRU curve, fixed-size SHARDS,
miniature simulation against the full replay, and the settings exo-mrc refuses."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from exo_sim.errors import ConfigError
from exo_sim.mrc import COLUMNS, _lru_curve, capacity_grid, plan_mrc, references, replay_points, stack_distances
from exo_sim.mrc_sampling import (
    HASH_MODULUS,
    Sampling,
    TraceCounts,
    block_hash,
    mini_estimate,
    mini_points,
    rate_threshold,
    sample_trace,
    shards_lru,
)
from exo_sim.workloads.zipf import ZipfWorkload, ZipfWorkloadConfig
from tests.conftest import trace_path

MASK64 = (1 << 64) - 1


def splitmix64_finaliser(x: int) -> int:
    """SplitMix64's finaliser in plain Python integers (the published constants)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def zipf(accesses: int = 200_000, objects: int = 50_000, alpha: float = 0.8, per: int = 1, seed: int = 0) -> ZipfWorkload:
    return ZipfWorkload(ZipfWorkloadConfig(objects=objects, alpha=alpha, accesses=accesses,
                                           blocks_per_request=per, seed=seed), 16)


# ------------------------------------------------------------------ the hash sample
def test_hash_is_splitmix64_of_the_id_modulo_p() -> None:
    ids = [0, 1, 2, 12345, 2**40 + 7, 2**63 - 1, -1, -(2**63)]
    got = block_hash(np.array(ids, dtype=np.int64)).tolist()
    assert got == [splitmix64_finaliser(i & MASK64) % HASH_MODULUS for i in ids]


def test_hash_is_a_pure_function_of_the_id() -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(-(2**62), 2**62, 5000)
    h = block_hash(ids)
    perm = rng.permutation(ids.shape[0])
    assert (block_hash(ids[perm]) == h[perm]).all()  # position and neighbours do not matter
    assert (block_hash(np.concatenate([ids, ids])) == np.concatenate([h, h])).all()
    assert (block_hash(ids[:7]) == h[:7]).all()


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_sample_keeps_about_r_of_the_distinct_blocks(rate: float) -> None:
    """The count kept is Binomial(n, R) if the hash is uniform: within 5 standard deviations."""
    for ids in (np.arange(200_000, dtype=np.int64), np.arange(200_000, dtype=np.int64) * 4096 + 17):
        kept = int(np.count_nonzero(block_hash(ids) < rate_threshold(rate)))
        n = ids.shape[0]
        assert abs(kept - n * rate) < 5 * math.sqrt(n * rate * (1 - rate)), (rate, kept)


# ------------------------------------------------------------------ SHARDS
def test_shards_at_rate_one_is_the_exact_curve() -> None:
    """Batches of 1,000 references each preceded by the stack: the same hits and hit tokens as one pass."""
    w = zipf(accesses=60_000, objects=8000, per=3)
    blocks, _ = references(w)
    tokens = np.concatenate([c.tokens for c in w.chunks()])
    caps = capacity_grid(1, int(np.unique(blocks).shape[0]), 40)
    exact_hits, exact_tokens = _lru_curve(blocks, None, tokens, caps)
    for batch in (1000, 1 << 16):
        sh = shards_lru(w, Sampling(rate=1.0), batch_refs=batch)
        hits, hit_tokens = sh.hits(caps)
        assert hits.tolist() == exact_hits.tolist()
        assert hit_tokens.tolist() == exact_tokens.tolist()
        assert sh.sampled_refs == blocks.shape[0] and sh.threshold == HASH_MODULUS


def shards_standard_error(blocks: np.ndarray, caps: np.ndarray, rate: float) -> np.ndarray:
    """Standard error of SHARDS_adj's hit ratio at each capacity, from the exact distances.

    With the count correction the error is ``sum_i (X_i / R - 1) * misses_i(C) / N`` over blocks ``i``
    (``X_i``: sampled or not, Bernoulli(R)), so its variance is ``(1 - R) / R * sum_i misses_i(C)^2 / N^2``
    (distances taken as exact; their own sampling error comes on top, and is smaller here).
    """
    dist = stack_distances(blocks)
    out = []
    for c in caps:
        miss = np.bincount(blocks[(dist == 0) | (dist > c)]).astype(np.float64)
        out.append(math.sqrt((1 - rate) / rate * float((miss**2).sum())) / blocks.shape[0])
    return np.asarray(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_shards_at_ten_percent_is_close_to_the_exact_curve(seed: int) -> None:
    """200,000 Zipf(0.8) references over 50,000 blocks, 20 capacities from 10/R blocks to all of them:
    the mean absolute error is below twice the mean standard error derived above (about 2 pp), and
    far below what unscaled distances would give."""
    w = zipf(seed=seed)
    blocks, _ = references(w)
    caps = capacity_grid(100, int(np.unique(blocks).shape[0]), 20)
    exact = _lru_curve(blocks, None, None, caps)[0] / blocks.shape[0]
    sh = shards_lru(w, Sampling(rate=0.1))
    est = sh.hits(caps)[0] / blocks.shape[0]
    mae = float(np.abs(est - exact).mean())
    bound = 2 * float(shards_standard_error(blocks, caps, 0.1).mean())
    assert mae < bound, (mae, bound)
    assert abs(sh.counts.reads - blocks.shape[0]) == 0
    unscaled = (np.searchsorted(sh.scaled * sh.rate, caps, side="right") / sh.rate
                + sh.counts.reads - sh.sampled_reads) / blocks.shape[0]
    assert float(np.abs(unscaled - exact).mean()) > 2 * bound


@pytest.mark.parametrize("size", [500, 4000])
def test_fixed_size_shards_keeps_at_most_s_max_blocks(size: int) -> None:
    w = zipf(accesses=100_000, objects=30_000)
    blocks, _ = references(w)
    sh = shards_lru(w, Sampling(size=size), batch_refs=2000)
    assert 0 < sh.distinct_sampled <= size
    final = np.unique(blocks[block_hash(blocks) < sh.threshold])
    assert final.shape[0] <= size  # every block under the final threshold fits, ...
    assert np.unique(blocks[block_hash(blocks) <= sh.threshold]).shape[0] > size  # ... one more hash would not
    trace = sample_trace(w, Sampling(size=size), batch_refs=2000)
    assert trace.threshold == sh.threshold and trace.distinct_blocks == final.shape[0]
    assert (trace.blocks == blocks[block_hash(blocks) < sh.threshold]).all()  # the fixed-rate sample, in order


def test_fixed_size_shards_is_close_to_the_exact_curve() -> None:
    w = zipf()
    blocks, _ = references(w)
    caps = capacity_grid(100, int(np.unique(blocks).shape[0]), 20)
    exact = _lru_curve(blocks, None, None, caps)[0] / blocks.shape[0]
    sh = shards_lru(w, Sampling(size=4000))
    est = sh.hits(caps)[0] / blocks.shape[0]
    assert float(np.abs(est - exact).mean()) < 2 * float(shards_standard_error(blocks, caps, sh.rate).mean())


# ------------------------------------------------------------------ miniature simulation
@pytest.mark.parametrize("policy", ["fifo", "s3fifo", "belady"])
def test_miniature_simulation_at_rate_one_is_the_full_replay(make_cfg: Callable[..., Any], policy: str) -> None:
    cfg = make_cfg("experiment=single_tier", "workload=zipf", "workload.accesses=20000", "workload.objects=3000",
                   "workload.blocks_per_request=4")
    plan = plan_mrc(cfg)
    caps = np.array([3, 50, 700, 2500])
    trace = sample_trace(plan.workload, Sampling(rate=1.0))
    assert trace.blocks.shape[0] == 20_000
    assert mini_points(cfg, trace, caps, policy, plan.codec) == replay_points(cfg, caps, policy, plan.codec)


def test_miniature_estimate_weighs_each_sampled_miss_by_one_over_the_rate() -> None:
    """At R = 1/4 a miniature that read 50 blocks (200 tokens) and hit 30 (120) missed 20 (80), which
    stand for 80 misses (320 tokens) in the trace; of the trace's 180 reads (720 tokens) 100 (400) hit.
    A miniature that missed more than the trace read is clipped to no hit."""
    counts = TraceCounts(references=200, reads=180, read_tokens=720)
    hits, tokens = mini_estimate([(30, 50, 120, 200, 0), (0, 50, 0, 200, 0)], counts, 0.25)
    assert hits.tolist() == [100, 0] and tokens.tolist() == [400, 0]


def test_miniature_simulation_replays_the_sample_at_a_scaled_capacity(make_cfg: Callable[..., Any]) -> None:
    """At R = 1/4 a capacity of 400 blocks is replayed at 100: the same hits as a full replay of the sample
    (written out as its own trace of block ids) at 100 blocks through an ordered-dict FIFO."""
    cfg = make_cfg("experiment=single_tier", "workload=zipf", "workload.accesses=20000", "workload.objects=3000")
    plan = plan_mrc(cfg)
    trace = sample_trace(plan.workload, Sampling(rate=0.25))
    hits, accesses = mini_points(cfg, trace, np.array([400]), "fifo", plan.codec)[0][:2]
    resident: dict[int, None] = {}
    expect = 0
    for b in trace.blocks.tolist():
        if b in resident:
            expect += 1
            continue
        if len(resident) >= round(400 * trace.rate):
            del resident[next(iter(resident))]
        resident[b] = None
    assert (hits, accesses) == (expect, trace.blocks.shape[0])


# ------------------------------------------------------------------ exo-mrc
@pytest.mark.parametrize(
    "overrides,key,words",
    [
        (["mrc.sample_rate=0.1", "mrc.sample_size=100"], "mrc.sample_size", "are both set"),
        (["mrc.sample_rate=0"], "mrc.sample_rate", "must be a number in (0, 1]"),
        (["mrc.sample_rate=1.5"], "mrc.sample_rate", "must be a number in (0, 1]"),
        (["mrc.sample_rate=-0.1"], "mrc.sample_rate", "must be a number in (0, 1]"),
        (["mrc.sample_rate=1e-12"], "mrc.sample_rate", "below the hash's resolution"),
        (["mrc.sample_size=0"], "mrc.sample_size", "must be a whole number of blocks >= 1"),
    ],
)
def test_bad_sampling_settings_are_refused(
    make_cfg: Callable[..., Any], overrides: list[str], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_mrc(make_cfg("experiment=single_tier", "workload=scan", *overrides))
    assert f"`{key}`" in str(err.value) and words in str(err.value)


def test_sampling_is_refused_under_prefix_reuse(make_cfg: Callable[..., Any]) -> None:
    path = trace_path("mooncake/synthetic_trace.jsonl")
    with pytest.raises(ConfigError) as err:
        plan_mrc(make_cfg("experiment=single_tier", "workload=mooncake", f"workload.path={path}",
                          "mrc.sample_rate=0.1"))
    assert "`mrc.sample_rate`" in str(err.value) and "hierarchy.reuse=prefix" in str(err.value)
    exact = plan_mrc(make_cfg("experiment=single_tier", "workload=mooncake", f"workload.path={path}",
                              "mrc.sample_rate=1"))
    assert exact.sampling is None and exact.reuse == "prefix"  # rate 1 is the exact curve, allowed
    block = plan_mrc(make_cfg("experiment=single_tier", "workload=mooncake", f"workload.path={path}",
                              "hierarchy.reuse=block", "mrc.sample_rate=0.1"))
    assert block.sampling == Sampling(rate=0.1)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["exo-mrc", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_exo_mrc_writes_sampled_curves_and_refuses_bad_rates(tmp_path: Path) -> None:
    out = tmp_path / "mrc"
    r = run("experiment=single_tier", "workload=zipf", "workload.accesses=50000", "workload.objects=20000",
            "mrc.sample_rate=0.05", "mrc.policies=[lru,fifo]", "mrc.capacities_blocks=[200,2000,20000]",
            f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    frame = pd.read_parquet(out / "mrc.parquet")
    assert list(frame.columns) == list(COLUMNS)
    rate = rate_threshold(0.05) / HASH_MODULUS
    assert frame["method"].tolist() == ["shards@0.05"] * 3 + ["mini@0.05"] * 3
    assert (frame["sample_rate"] == rate).all() and (frame["accesses"] == 50_000).all()
    assert "shards@0.05" in r.stdout and "sampled curves" in r.stderr
    bad = tmp_path / "bad"
    r = run("experiment=single_tier", "workload=zipf", "mrc.sample_rate=2", f"hydra.run.dir={bad}", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "config key `mrc.sample_rate`" in r.stderr and "must be a number in (0, 1]" in r.stderr
    assert not (bad / "mrc.parquet").exists()
