"""The encoder's cost for rag_chunk payloads: derived by hand, the fit, the timed model's use, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from exo_sim.config import EncodeCoefficientsConfig, PayloadConfig
from exo_sim.encode_cost import EncodeCost, fit_encode_cost, resolve_encode_cost
from exo_sim.encoder_arch import MINILM_L6
from exo_sim.errors import ConfigError
from exo_sim.sim.arrivals import arrival_process
from exo_sim.sim.model import TimedModel
from exo_sim.spec import build_spec
from exo_sim.workloads.base import RequestChunk
from tests.runtime_overrides import cli, one_error_line
from tests.simcases import column, make_cfg, settings_of

# all-MiniLM-L6-v2 as its model card and config.json give it: 6 layers, hidden 384, 12 heads of 64,
# intermediate 1536, vocabulary 30522, 512 positions, 2 token types.
LAYERS, HIDDEN, INTERMEDIATE, VOCAB = 6, 384, 1536, 30522
PER_LAYER_MATMUL = 4 * 384 * 384 + 2 * 384 * 1536  # Q, K, V, O and the MLP's two: 589,824 + 1,179,648
assert PER_LAYER_MATMUL == 1_769_472
FLOPS_PER_TOKEN = 2 * 6 * PER_LAYER_MATMUL  # 21,233,664
FLOPS_PER_PAIR = 4 * 6 * 384  # QK^T and PV, 2 x 384 FLOPs each per pair and layer: 9,216
# Weights read once per pass: per layer the four h x h projections with biases, the MLP with biases,
# two LayerNorms (weight + bias); plus the embedding LayerNorm.
PER_LAYER_PARAMS = 4 * (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384) + 2 * 2 * 384
LAYER_PARAMS = 6 * PER_LAYER_PARAMS + 2 * 384  # 10,647,552
EMBEDDINGS = (30522 + 512 + 2) * 384  # 11,917,824
POOLER = 384 * 384 + 384  # in the checkpoint (BertModel's pooler), unused by sentence-transformers


def test_architecture_matches_minilm_published_shape() -> None:
    assert (MINILM_L6.layers, MINILM_L6.hidden_size, MINILM_L6.attention_heads) == (6, 384, 12)
    assert (MINILM_L6.intermediate_size, MINILM_L6.vocab_size) == (1536, 30522)
    assert MINILM_L6.flops_per_token() == FLOPS_PER_TOKEN
    assert MINILM_L6.flops_per_token_pair() == FLOPS_PER_PAIR
    assert MINILM_L6.layer_params() == LAYER_PARAMS == 10_647_552
    # sentence-transformers' all-MiniLM-L6-v2 reports 22,713,216 parameters, pooler included
    assert MINILM_L6.parameters() + POOLER == EMBEDDINGS + LAYER_PARAMS + POOLER == 22_713_216


def test_derived_cost_on_ci_cpu_by_hand(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cost = resolve_encode_cost(make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm"))
    assert cost is not None and cost.source == "derived" and "assumed" in cost.basis
    # ci_cpu: 192 GFLOP/s x 0.5 assumed; 20 GB/s x 0.7 assumed; 1 ms per forward pass
    flops, mem = 192e9 * 0.5, 20e9 * 0.7
    b = 21_233_664 / flops  # 2.21184e-4 s per chunk token
    c = 9_216 / flops  # 9.6e-8 s per token pair of a chunk
    a = 0.001 + 4 * 10_647_552 / mem  # 1 ms + 42,590,208 B of float32 weights / 14 GB/s = 4.0422 ms
    assert cost.b_s_per_token == pytest.approx(2.21184e-4, rel=1e-12) == b
    assert cost.c_s_per_token_pair == pytest.approx(9.6e-8, rel=1e-12) == c
    assert cost.a_s == pytest.approx(a, rel=1e-12)
    assert cost.a_s == pytest.approx(4.04216e-3, rel=1e-5)
    # one 256-token chunk: 21,233,664 x 256 + 9,216 x 256^2 = 6,039,797,760 FLOPs
    assert MINILM_L6.flops_per_chunk(256) == 6_039_797_760
    assert cost.seconds(1, 256) == pytest.approx(a + 6_039_797_760 / flops, rel=1e-12)
    # 33 chunks take two forward passes of the runtime's 32
    assert cost.seconds(33, 256) == pytest.approx(2 * a + 33 * 6_039_797_760 / flops, rel=1e-12)
    assert cost.seconds(0, 256) == 0.0


def test_block_cost_counts_a_blocks_chunks_and_truncates_long_chunks(make_cfg) -> None:  # type: ignore[no-untyped-def]
    from exo_sim.sim.settings import sim_settings, with_compute

    cfg = make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", "block_tokens=1024")
    enc = with_compute(sim_settings(cfg.sim), cfg).encode
    assert enc is not None and (enc.chunks_per_block, enc.tokens_per_chunk) == (4, 256)
    assert enc.seconds(3) == pytest.approx(enc.cost.seconds(12, 256))
    # a 512-token chunk is cut to the encoder's 256 tokens
    cfg = make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", "payload.tokens_per_chunk=512", "block_tokens=1024")
    enc = with_compute(sim_settings(cfg.sim), cfg).encode
    assert enc is not None and (enc.chunks_per_block, enc.tokens_per_chunk) == (2, 256)
    # a kv_cache payload has no encoder
    kv = make_cfg("hardware=ci_cpu", "payload=tiny_llama_kv")
    assert with_compute(sim_settings(kv.sim), kv).encode is None


def test_calibrated_coefficients_are_used_as_given(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        "hardware=ci_cpu", "payload=rag_chunk_minilm", "hardware.compute.encode.a_s=0.01",
        "hardware.compute.encode.b_s_per_token=0.001", "hardware.compute.encode.payload=rag_chunk_minilm",
        "hardware.compute.encode.residual_median=0.02",
    )
    cost = resolve_encode_cost(cfg)
    assert cost is not None and cost.source == "calibrated"
    assert cost.coefficients() == (0.01, 0.001, 0.0) and cost.residual_median == 0.02
    assert cost.seconds(2, 100) == pytest.approx(0.01 + 2 * 100 * 0.001)


# --------------------------------------------------------------------------------------------- fit
GRID = list(itertools.product((1, 2, 4, 8, 16, 32), (32, 64, 128, 256)))


def test_fit_recovers_known_coefficients() -> None:
    a, b, c = 2e-3, 3e-5, 4e-8
    k = np.array([p[0] for p in GRID], dtype=float)
    t = np.array([p[1] for p in GRID], dtype=float)
    seconds = a + b * k * t + c * k * t * t
    cost, res = fit_encode_cost(k, t, seconds)
    assert cost.source == "calibrated" and res.dropped == ()
    assert cost.a_s == pytest.approx(a, rel=1e-6)
    assert cost.b_s_per_token == pytest.approx(b, rel=1e-6)
    assert cost.c_s_per_token_pair == pytest.approx(c, rel=1e-6)
    assert res.max < 1e-9 and cost.residual_median == res.median and cost.residual_max == res.max


def test_fit_with_noise_stays_close_and_reports_its_residual() -> None:
    a, b, c = 2e-3, 3e-5, 4e-8
    rng = np.random.default_rng(7)
    k = np.array([p[0] for p in GRID], dtype=float)
    t = np.array([p[1] for p in GRID], dtype=float)
    truth = a + b * k * t + c * k * t * t
    seconds = truth * (1 + rng.uniform(-0.02, 0.02, size=truth.size))
    cost, res = fit_encode_cost(k, t, seconds)
    assert cost.b_s_per_token == pytest.approx(b, rel=0.05)
    assert 0 < res.median < 0.02 and res.max < 0.04
    # the fitted cost predicts the noiseless times within the noise
    pred = np.array([cost.pass_seconds(ki, ti) for ki, ti in zip(k, t, strict=True)])
    assert np.max(np.abs(pred / truth - 1)) < 0.03


def test_fit_drops_a_term_the_measurements_do_not_show() -> None:
    k = np.array([p[0] for p in GRID], dtype=float)
    t = np.array([p[1] for p in GRID], dtype=float)
    cost, res = fit_encode_cost(k, t, 5e-3 + 2e-5 * k * t)
    assert res.dropped == ("c",) and cost.c_s_per_token_pair == 0.0
    assert cost.a_s == pytest.approx(5e-3, rel=1e-6) and cost.b_s_per_token == pytest.approx(2e-5, rel=1e-6)


@pytest.mark.parametrize(
    ("chunks", "tokens", "seconds", "fragment"),
    [
        ([], [], [], "non-empty"),
        ([1, 2], [64], [0.1, 0.2], "one length"),
        ([0], [64], [0.1], "chunks count"),
        ([33], [64], [0.1], "chunks count"),
        ([1], [0], [0.1], "tokens count"),
        ([1], [64], [0.0], "> 0 seconds"),
    ],
)
def test_fit_refuses_bad_measurements(chunks, tokens, seconds, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=fragment):
        fit_encode_cost(chunks, tokens, seconds)


def test_cost_refuses_negative_or_nan_coefficients() -> None:
    with pytest.raises(ValueError, match="b_s_per_token"):
        EncodeCost(0.0, -1e-6, 0.0, "calibrated")
    with pytest.raises(ValueError, match="c_s_per_token_pair"):
        EncodeCost(0.0, 0.0, math.nan, "calibrated")


# ------------------------------------------------------------------------------------ timed model
def _rag_cfg(encode: tuple[float, float, float]) -> object:
    """simcases' one-tier config with a rag payload: 16-token blocks of two 8-token chunks, a fitted encode cost."""
    cfg = make_cfg([10], [])
    a, b, c = encode
    cfg.payload = OmegaConf.structured(
        PayloadConfig(name="tiny_rag", kind="rag_chunk", chunk_chars=32, text_bytes_per_char=1, tokens_per_chunk=8,
                      embedding_dim=4)
    )
    cfg.hardware.compute.encode = OmegaConf.structured(
        EncodeCoefficientsConfig(a_s=a, b_s_per_token=b, c_s_per_token_pair=c, payload="tiny_rag")
    )
    return cfg


def test_timed_model_charges_the_encoder_for_missed_and_written_blocks() -> None:
    cfg = _rag_cfg((0.1, 0.01, 0.001))
    spec = build_spec(cfg)
    settings = settings_of(cfg)
    assert settings.encode is not None and settings.encode.chunks_per_block == 2
    model = TimedModel(spec, settings, keep_log=True)
    # r0 at 0 s reads blocks 1 and 2 (both miss); r1 at 10 s reads 1 (a hit) and writes 3;
    # r2 at 20 s reads 1 and 2 (both hit)
    blocks = [1, 2, 1, 3, 1, 2]
    chunk = RequestChunk(
        arrival_s=np.array([0.0, 10.0, 20.0]),
        offsets=np.array([0, 2, 4, 6], dtype=np.int64),
        blocks=np.array(blocks, dtype=np.int64),
        writes=np.array([False, False, False, True, False, False]),
        tokens=np.full(len(blocks), 16, dtype=np.int64),
    )
    model.run(iter([chunk]), arrival_process(settings, 0).start)
    per_chunk = 0.01 * 8 + 0.001 * 8 * 8  # b t + c t^2 = 0.144 s
    r0 = 0.1 + 4 * per_chunk  # two blocks, four chunks, one forward pass: 0.676 s
    r1 = 0.1 + 2 * per_chunk  # the written block's two chunks: 0.388 s
    assert column(model, "compute_s") == pytest.approx([r0, r1, 0.0])
    assert column(model, "ttft_s") == pytest.approx([r0, r1, 0.0])
    assert model.engine_busy_s == pytest.approx(r0 + r1)


def test_exo_sim_summary_says_which_compute_cost(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "exo_sim.cli.sim", "hardware=ci_cpu", "payload=rag_chunk_minilm", "workload=zipf", "workload.objects=20",
        "workload.accesses=60", "output.progress=false", f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    import json

    s = json.loads((tmp_path / "summary.json").read_text())
    comp = s["compute"]
    assert comp["cost"] == "encode" and comp["source"] == "derived"
    misses = s["accesses"] - sum(t["hits"] for t in s["tiers"])  # a block found in no tier is re-embedded
    assert misses > 0
    per_chunk = 4.042158e-3 + 6_039_797_760 / 96e9  # by hand, as above
    assert comp["compute_s"] == pytest.approx(misses * per_chunk, rel=1e-5)
    assert comp["encode_cost"]["chunks_per_block"] == 1 and comp["encode_cost"]["tokens_per_chunk"] == 256


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("hardware.compute.encode.b_s_per_token=-1e-6", "hardware.compute.encode.b_s_per_token", ">= 0"),
        ("hardware.compute.encode.a_s=nan", "hardware.compute.encode.a_s", ">= 0"),
        ("hardware.compute.encode.residual_median=-0.1", "hardware.compute.encode.residual_median", ">= 0"),
        ("hardware.compute.encode.payload=other", "hardware.compute.encode.payload", "describes no fit"),
    ],
)
def test_bad_encode_values_are_refused_naming_the_key(make_cfg, override, key, fragment) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", override)
    with pytest.raises(ConfigError) as err:
        resolve_encode_cost(cfg)
    assert f"`{key}`" in str(err.value) and fragment in str(err.value)


def test_encode_fitted_for_another_payload_is_refused(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", "hardware.compute.encode.b_s_per_token=1e-5",
                   "hardware.compute.encode.payload=rag_chunk_other")
    with pytest.raises(ConfigError, match="hardware.compute.encode.payload"):
        resolve_encode_cost(cfg)


def test_bad_encode_value_through_exo_sim_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "exo_sim.cli.sim", "hardware=ci_cpu", "payload=rag_chunk_minilm", "workload=zipf", "workload.objects=20",
        "workload.accesses=60", "hardware.compute.encode.c_s_per_token_pair=-3", "output.progress=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert "hardware.compute.encode.c_s_per_token_pair" in line and "-3" in line

