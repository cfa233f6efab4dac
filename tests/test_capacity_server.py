"""Capacity as an LLM server sees it: weights, workspace and the GPU tier's KV budget, by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exo_sim.architecture import Architecture, architecture_of, weight_bytes_per_rank
from exo_sim.errors import ConfigError
from exo_sim.kv_budget import WeightsDoNotFit, fit_options, kv_budget
from exo_sim.spec import build_spec
from experiments.planning.capacity import capacity_report
from experiments.planning.planner import capacity_overrides
from experiments.planning.weights import fit_weights

LLAMA3_8B = Architecture(32, 4096, 14336, 32, 8, 128, 128256)
LLAMA3_70B = Architecture(80, 8192, 28672, 64, 8, 128, 128256)

# 8 GiB x 0.9, floored; and the seed workstation's int8 block of Llama-3-8B (256 tokens):
# 2 x 32 x 8 x 128 x 256 = 16,777,216 values + 16,777,216 / 128 scales x 2 B
SEED_USABLE = 7_730_941_132  # 8,589,934,592 x 0.9 = 7,730,941,132.8
INT8_BLOCK_8B = 16_777_216 + 131_072 * 2  # 17,039,360 B
# Llama-3-8B's derived workspace: 2,048 tokens x (2 x 4,096 + 3 x 14,336) x 2 B + 256 x 128,256 x 4 B
WORKSPACE_8B = 2048 * 51_200 * 2 + 256 * 128_256 * 4  # 209,715,200 + 131,334,144 = 341,049,344


def test_params_match_the_published_counts() -> None:
    # Llama-3-8B: embedding and lm_head 128,256 x 4,096 each; per layer q,o 4,096^2, k,v 4,096 x 1,024,
    # MLP 3 x 4,096 x 14,336, two norms of 4,096; a final norm
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert LLAMA3_8B.params() == 2 * 128256 * 4096 + 32 * per_layer + 4096 == 8_030_261_248
    assert LLAMA3_70B.params() == 70_553_706_496  # the model card's 70.6 B
    tiny = Architecture(4, 256, 704, 8, 2, 32, 32000)
    assert tiny.params() == 4 * (2 * 256 * 256 + 2 * 256 * 64 + 3 * 256 * 704) + 9 * 256 + 2 * 32000 * 256
    assert tiny.params() == 19_204_352
    assert LLAMA3_8B.kv_elements_per_token_per_rank() == 2 * 32 * 8 * 128


def test_shipped_payloads_carry_their_architecture(make_cfg) -> None:  # type: ignore[no-untyped-def]
    assert architecture_of(make_cfg().payload) == LLAMA3_8B
    assert architecture_of(make_cfg("payload=llama3_70b_kv").payload) == LLAMA3_70B
    tiny = architecture_of(make_cfg("payload=tiny_llama_kv").payload)
    assert tiny is not None and tiny.params() == 19_204_352
    assert architecture_of(make_cfg("payload=rag_chunk_minilm").payload) is None


def test_per_rank_split_and_matmul_params() -> None:
    # 70B at TP=4: per layer q 8,192 x 2,048, k and v 8,192 x 256, o 2,048 x 8,192, gate and up
    # 8,192 x 7,168, down 7,168 x 8,192; norms (161 x 8,192) replicated; 32,064 vocab rows each
    tp4 = Architecture(80, 8192, 28672, 64, 8, 128, 128256, tensor_parallel=4)
    linear = 80 * (8192 * 2048 + 2 * 8192 * 256 + 2048 * 8192 + 2 * 8192 * 7168 + 7168 * 8192)
    assert linear == 17_112_760_320
    assert tp4.params_per_rank() == linear + 161 * 8192 + 2 * 32064 * 8192 == 17_639_415_808
    assert tp4.matmul_params_per_rank() == linear + 32064 * 8192
    assert (tp4.heads_per_rank(), tp4.kv_heads_per_rank()) == (16, 2)
    # more ranks than KV heads: each rank holds one, replicated
    tp16 = Architecture(32, 4096, 14336, 32, 8, 128, 128256, tensor_parallel=16)
    assert tp16.kv_heads_per_rank() == 1
    tied = Architecture(4, 256, 704, 8, 2, 32, 32000, tied_embeddings=True)
    assert tied.params() == 19_204_352 - 32000 * 256
    assert tied.matmul_params_per_rank() == 4 * (2 * 256 * 256 + 2 * 256 * 64 + 3 * 256 * 704) + 32000 * 256


def test_weight_bytes_by_hand() -> None:
    assert weight_bytes_per_rank(LLAMA3_8B, "bf16", 128) == 2 * 8_030_261_248 == 16_060_522_496
    # int4 (AWQ/GPTQ): per layer 218,103,808 linear weights -> 109,051,904 B packed, plus per group of
    # 128 inputs an fp16 scale and a 4-bit zero (2.5 B): groups q,o 32 x 4,096, k,v 32 x 1,024,
    # gate,up 32 x 14,336, down 112 x 4,096 = 1,703,936 per layer
    groups = 2 * 32 * 4096 + 2 * 32 * 1024 + 2 * 32 * 14336 + 112 * 4096
    assert groups == 1_703_936
    per_layer = 218_103_808 // 2 + groups * 2 + groups // 2
    bf16_rest = 2 * (2 * 128256 * 4096 + 65 * 4096)  # embedding, lm_head and 65 norms stay bf16
    assert weight_bytes_per_rank(LLAMA3_8B, "int4", 128) == 32 * per_layer + bf16_rest == 5_727_854_592
    # fp8: 1 B per linear weight, one fp32 scale per output channel
    channels = 4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096
    fp8 = 32 * (218_103_808 + 4 * channels) + bf16_rest
    assert weight_bytes_per_rank(LLAMA3_8B, "fp8", 128) == fp8
    # int8: 1 B per linear weight, one fp16 scale per group of 128 inputs
    assert weight_bytes_per_rank(LLAMA3_8B, "int8", 128) == 32 * (218_103_808 + 2 * groups) + bf16_rest
    with pytest.raises(ValueError, match="unknown weight dtype"):
        weight_bytes_per_rank(LLAMA3_8B, "int3", 128)


def test_seed_workstation_refuses_bf16_llama3_8b(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WeightsDoNotFit) as err:
        build_spec(make_cfg("payload=llama3_8b_kv"))
    msg = str(err.value)
    assert err.value.key == "hardware.tiers[0].capacity_bytes" and "\n" not in msg
    # 7,730,941,132 - 16,060,522,496 - 341,049,344 = -8,670,630,708 B
    assert "8 GiB x 0.90 - 16.06 GB bf16 weights - 0.34 GB workspace = -8.67 GB of KV" in msg
    # int4: 1,662,037,196 B // 17,039,360 = 97 blocks; TP=4 (TP=2 still holds 8.03 GB of weights a
    # rank): 823 blocks of 4,259,840 B; a 19 GB GPU: 17.1 GB - 16.40 GB = 40 blocks
    assert (
        "what would fit: weights in int4 (24,832 tokens of KV); TP=4 (4 GPUs like this one) (210,688 tokens of "
        "KV); a GPU with >= 19 GB (10,240 tokens of KV)." in msg
    )


def test_seed_workstation_refusal_through_the_cli(tmp_path: Path) -> None:
    r = subprocess.run(["exo-replay", "payload=llama3_8b_kv", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key `hardware.tiers[0].capacity_bytes`")
    assert "conf/hardware/seed_workstation.yaml line" in lines[0] and "weights in int4" in lines[0]


def test_seed_workstation_int4_kv_budget(make_cfg) -> None:  # type: ignore[no-untyped-def]
    vram = build_spec(make_cfg("payload.weight_dtype=int4")).tiers[0]
    kv = SEED_USABLE - 5_727_854_592 - WORKSPACE_8B
    assert kv == 1_662_037_196
    assert (vram.capacity_bytes, vram.weight_bytes, vram.workspace_bytes) == (8 * 2**30, 5_727_854_592, WORKSPACE_8B)
    assert vram.kv_budget_bytes == kv
    assert vram.capacity_blocks == kv // INT8_BLOCK_8B == 97


def test_h100_llama3_70b_tp4_kv_budget(make_cfg) -> None:  # type: ignore[no-untyped-def]
    spec = build_spec(make_cfg("hardware=h100_node", "payload=llama3_70b_kv", "payload.tensor_parallel=4"))
    vram = spec.tiers[0]
    usable = 77_309_411_328  # 80 GiB x 0.9 = 85,899,345,920 x 0.9
    weights = 2 * 17_639_415_808  # bf16, one rank's share (test_per_rank_split_and_matmul_params)
    workspace = 2048 * (2 * 8192 + 3 * 7168) * 2 + 256 * 128256 * 4  # 155,189,248 + 131,334,144
    assert (vram.weight_bytes, vram.workspace_bytes) == (35_278_831_616, 286_523_392) == (weights, workspace)
    assert vram.kv_budget_bytes == usable - weights - workspace == 41_744_056_320
    # int8 block per rank: 2 x 80 x 2 x 128 x 256 = 10,485,760 values + 81,920 scales x 2 B
    assert vram.block_bytes == 10_649_600
    assert vram.capacity_blocks == 41_744_056_320 // 10_649_600 == 3919
    assert any("vram: 80 GiB x 0.90 - 35.28 GB bf16 weights - 0.29 GB workspace = 41.74 GB of KV (TP=4" in n
               for n in spec.notes)
    # the host tiers are not touched
    assert spec.tiers[1].kv_budget_bytes is None and spec.tiers[1].capacity_blocks == 256 * 2**30 // 10_649_600


def test_kv_pool_profile_and_rag_payload_deduct_nothing(make_cfg) -> None:  # type: ignore[no-untyped-def]
    vram = build_spec(make_cfg("hardware=ci_small")).tiers[0]  # a scaled KV pool
    assert vram.kv_budget_bytes is None and vram.capacity_blocks == 268_435_456 // INT8_BLOCK_8B == 15
    rag = build_spec(make_cfg("payload=rag_chunk_minilm")).tiers[0]
    assert rag.kv_budget_bytes is None and rag.weight_bytes == 0
    # weights held elsewhere: only the utilisation and the workspace come off
    off = build_spec(make_cfg("hardware.gpu.weights_on_gpu=false")).tiers[0]
    assert off.kv_budget_bytes == SEED_USABLE - WORKSPACE_8B and off.weight_bytes == 0
    given = build_spec(make_cfg("hardware.gpu.weights_on_gpu=false", "hardware.gpu.workspace_bytes=1000")).tiers[0]
    assert given.kv_budget_bytes == SEED_USABLE - 1000


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["payload.hidden_size=4000"], "payload.hidden_size", "attention_heads x head_dim = 32 x 128 = 4096"),
        (["payload.kv_heads=6"], "payload.kv_heads", "does not divide attention_heads (32)"),
        (["payload.tensor_parallel=3"], "payload.tensor_parallel", "neither divides kv_heads (8)"),
        (["payload.tensor_parallel=12"], "payload.tensor_parallel", "nor is a multiple of it"),
        (["payload.vocab_size=0"], "payload.vocab_size", "must be > 0"),
        (["payload.intermediate_size=-1"], "payload.intermediate_size", "must be > 0"),
        (["payload.weight_dtype=int3"], "payload.weight_dtype", "not a known weight precision"),
        (["payload.weight_group_size=0"], "payload.weight_group_size", "must be > 0"),
        (["payload.bytes_per_token=65536"], "payload.bytes_per_token", "= 2 x 32 x 8 x 128 x 2 = 131072"),
        (["hardware.gpu.memory_utilization=1.5"], "hardware.gpu.memory_utilization", "must be in (0, 1]"),
        (["hardware.gpu.max_num_batched_tokens=0"], "hardware.gpu.max_num_batched_tokens", "must be > 0"),
    ],
)
def test_inconsistent_architecture_is_refused(make_cfg, overrides, key, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        build_spec(make_cfg("payload.weight_dtype=int4", *overrides))
    assert err.value.key == key
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_declared_bytes_per_token_that_agrees_is_accepted(make_cfg) -> None:  # type: ignore[no-untyped-def]
    spec = build_spec(make_cfg("hardware=ci_small", "payload.bytes_per_token=131072"))
    assert spec.content.elements == 65_536 * 256


def test_fit_options_on_h100_for_llama3_70b(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("hardware=h100_node", "payload=llama3_70b_kv")
    budget = kv_budget(80 * 2**30, cfg.hardware.gpu, cfg.payload)
    assert budget is not None and budget.kv_budget_bytes < 0  # 141 GB of bf16 weights
    options = fit_options(80 * 2**30, cfg.hardware.gpu, cfg.payload, 256, "int8", cfg.codec)
    labels = [o.label for o in options]
    assert labels[:3] == ["weights in fp8", "weights in int8", "weights in int4"]
    assert labels[3] == "TP=2 (2 GPUs like this one)" and labels[4].startswith("a GPU with >= ")
    assert all(o.kv_tokens >= 2048 for o in options)
    assert [o.on_given_hardware for o in options] == [True, True, True, False, False]


def test_plan_goes_on_with_int4_and_says_so(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg, fit = fit_weights(make_cfg("payload=llama3_8b_kv"))
    assert fit is not None and cfg.payload.weight_dtype == "int4"
    text = " ".join(fit.sentences())
    assert "**The configured weights do not fit.** llama3_8b_kv's bf16 weights on tier vram" in text
    assert "What would fit: weights in int4: 24,832 tokens of KV (1.66 GB); TP=4" in text
    assert "a GPU with >= 19 GB: 10,240 tokens of KV" in text
    assert "This plan continues with **weights in int4** (`payload.weight_dtype=int4`)" in text
    # the capacity table's GPU row: weights, workspace and KV budget, tokens from the budget
    spec = build_spec(cfg)
    cap = capacity_report(cfg, spec, 262_144)
    vram = cap.top
    assert (vram.weight_bytes, vram.workspace_bytes, vram.kv_budget_bytes) == (
        5_727_854_592, WORKSPACE_8B, 1_662_037_196
    )
    assert vram.tokens["int8"] == 97 * 256
    assert "5.73 GB int4 weights - 0.34 GB workspace = 1.66 GB of KV" in vram.budget_arithmetic
    unchanged, none = fit_weights(make_cfg("hardware=ci_small", "payload=llama3_8b_kv"))
    assert none is None and unchanged.payload.weight_dtype == "bf16"


def test_miniature_divides_the_kv_budget(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("payload.weight_dtype=int4")
    over = capacity_overrides(cfg, 4)
    assert over["hardware.tiers.0.capacity_bytes"] == 1_662_037_196 // 4
    assert over["hardware.gpu.kv_pool"] is True
    assert over["hardware.tiers.1.capacity_bytes"] == 32 * 2**30 // 4
    from experiments.planning.planner import _apply

    mini = build_spec(_apply(cfg, over)).tiers[0]
    assert mini.kv_budget_bytes is None and mini.capacity_blocks == 1_662_037_196 // 4 // INT8_BLOCK_8B == 24
