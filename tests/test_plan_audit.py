"""The planning report's arithmetic, computed by hand here: the seed-claims audit and tier capacities."""

from __future__ import annotations

import pytest

from exo_sim.spec import build_spec
from experiments.planning.audit import run_audit
from experiments.planning.capacity import capacity_report
from experiments.planning.settings import plan_settings

GIB = 1 << 30


def test_llama3_8b_on_the_seed_workstation_by_hand(make_cfg):
    # Llama-3-8B: 2 x 32 layers x 8 KV heads x 128 = 65,536 values per token; a 256-token block holds
    # 16,777,216 values. INT8: one byte each + one 2-byte scale per 128 values (131,072 scales).
    int8_block = 16_777_216 + 131_072 * 2
    assert int8_block == 17_039_360
    fp16_block, fp32_block = 16_777_216 * 2, 16_777_216 * 4
    cfg = make_cfg("phase=256k")
    audit = run_audit(plan_settings(cfg), 256)
    rows = {r.tier: r for r in audit.claims if r.payload == "llama3_8b_kv"}
    # VRAM 8 GiB: the device would hold 8,589,934,592 / 17,039,360 = 504 INT8 blocks, but a server holds
    # Llama-3-8B's bf16 weights there first: 8 GiB x 0.9 = 7,730,941,132 B - 16,060,522,496 B weights
    # - 341,049,344 B workspace = -8,670,630,708 B: no KV at all (claimed 256K)
    assert (rows["vram"].codec, rows["vram"].block_bytes) == ("int8", int8_block)
    assert rows["vram"].kv_budget_bytes == 7_730_941_132 - 16_060_522_496 - 341_049_344 == -8_670_630_708
    assert rows["vram"].weights_do_not_fit
    assert rows["vram"].blocks == 0 and rows["vram"].tokens == 0
    assert rows["vram"].claimed_tokens == 262_144 and rows["vram"].ratio == 0
    # shared 32 GiB in INT8: 2,016 blocks; RAM 64 GiB in FP16: exactly 2,048 blocks
    assert rows["shared"].blocks == 32 * GIB // int8_block == 2016 and rows["shared"].tokens == 516_096
    assert rows["ram"].block_bytes == fp16_block and rows["ram"].tokens == 2048 * 256 == 524_288
    # NVMe 2 TB (decimal) in FP32: 2e12 / 67,108,864 = 29,802.3 -> 29,802 blocks
    assert rows["nvme"].block_bytes == fp32_block and rows["nvme"].blocks == 29_802
    assert rows["nvme"].tokens == 29_802 * 256 == 7_629_312 < 10_485_760


def test_llama3_70b_and_rag_chunks_by_hand(make_cfg):
    audit = run_audit(plan_settings(make_cfg()), 256)
    by = {(r.payload, r.tier): r for r in audit.claims}
    # 70B: 2 x 80 x 8 x 128 = 163,840 values/token -> 41,943,040 per block; INT8 + 327,680 scales x 2 B
    assert by["llama3_70b_kv", "vram"].block_bytes == 41_943_040 + 327_680 * 2 == 42_598_400
    assert by["llama3_70b_kv", "vram"].tokens == 0  # 141 GB of bf16 weights in 8 GiB: no KV at all
    assert by["llama3_70b_kv", "shared"].tokens == (32 * GIB // 42_598_400) * 256 == 806 * 256
    # RAG: one 1024-char chunk (1,024 raw bytes) + a 384-d embedding per 256-token block;
    # INT8 = 384 B + 3 scales x 2 B; FP16 = 768 B; FP32 = 1,536 B
    assert by["rag_chunk_minilm", "vram"].block_bytes == 1024 + 384 + 6 == 1414
    # no model on the GPU for a RAG store: the whole 8 GiB holds chunks
    assert by["rag_chunk_minilm", "vram"].blocks == 8 * GIB // 1414 and by["rag_chunk_minilm", "vram"].kv_budget_bytes is None
    assert by["rag_chunk_minilm", "ram"].block_bytes == 1024 + 768
    assert by["rag_chunk_minilm", "nvme"].block_bytes == 1024 + 1536
    assert by["rag_chunk_minilm", "nvme"].blocks == 2_000_000_000_000 // 2560 == 781_250_000
    # ... 200,000,000,000 chunk tokens: text tokens, not KV-cache tokens, so not held against the KV claims
    assert all(by["rag_chunk_minilm", t].claimed_tokens is None for t in ("vram", "shared", "ram", "nvme"))
    assert by["rag_chunk_minilm", "nvme"].ratio is None and by["llama3_70b_kv", "nvme"].claimed_tokens == 10_485_760
    tier_lines = [x for x in audit.statements if x.startswith("**vram**") or x.startswith("**nvme**")]
    assert len(tier_lines) == 2 and not any("rag_chunk" in x for x in tier_lines)


def test_codec_savings_against_the_claims(make_cfg):
    audit = run_audit(plan_settings(make_cfg()), 256)
    cut = {(r.payload, r.codec): r for r in audit.reductions}
    # Against FP32, FP16 saves exactly 50 % and INT8 75 % minus its scales (1 - 17,039,360 / 67,108,864)
    assert cut["llama3_8b_kv", "fp16"].reduction_vs_fp32 == 0.5
    assert cut["llama3_8b_kv", "int8"].reduction_vs_fp32 == 1 - 17_039_360 / 67_108_864 == 0.74609375
    assert cut["llama3_8b_kv", "int8"].reduction_vs_fp16 == 1 - 17_039_360 / 33_554_432
    assert cut["llama3_70b_kv", "int8"].reduction_vs_fp32 == 0.74609375  # same ratio, bigger model
    # RAG blocks are mostly raw text: INT8 saves (2560 - 1414) / 2560 of a block, not 75 %
    assert cut["rag_chunk_minilm", "int8"].reduction_vs_fp32 == pytest.approx(1146 / 2560)
    assert cut["llama3_8b_kv", "int8"].claimed == 0.5 and cut["llama3_8b_kv", "fp16"].claimed == 0.25
    text = " ".join(audit.statements)
    assert "**INT8** (claimed 50.0 % reduction): on a KV-cache block it saves 74.6 % against FP32 and 49.2 %" in text
    assert "the claim matches it only against FP16" in text
    assert "**FP16** (claimed 25.0 % reduction): on a KV-cache block it saves 50.0 % against FP32; " \
           "the claim matches no baseline" in text
    assert ("**vram** (claimed 262,144 tokens, stored as int8): exo computes llama3_8b_kv 0 (0.00x, its weights "
            "do not fit), llama3_70b_kv 0 (0.00x, its weights do not fit)") in text


def test_capacity_table_and_fit_on_ci_small(make_cfg):
    # ci_small: 256 MiB VRAM / 1 GiB shared / 2 GiB RAM / 8 GiB file, seed mix INT8/INT8/FP16/FP32
    cfg = make_cfg("hardware=ci_small", "phase=256k")
    cap = capacity_report(cfg, build_spec(cfg), 262_144)
    vram = cap.tiers[0]
    assert vram.tokens["int8"] == (256 * 2**20 // 17_039_360) * 256 == 15 * 256
    assert vram.tokens["int4"] == (256 * 2**20 // (8_388_608 + 524_288 * 2)) * 256 == 28 * 256
    assert vram.tokens["fp32"] == 4 * 256
    expected = 15 * 256 + (GIB // 17_039_360) * 256 + (2 * GIB // 33_554_432) * 256 + (8 * GIB // 67_108_864) * 256
    assert cap.distinct_tokens() == expected == (15 + 63 + 64 + 128) * 256
    assert not cap.fits_top() and not cap.fits_hierarchy()
    assert cap.bytes_per_token["int8"] == 17_039_360 / 256 == 66_560
    assert cap.scale_share["int4"] == pytest.approx(1_048_576 / 9_437_184)


def test_write_through_counts_the_last_tier_once(make_cfg):
    cfg = make_cfg("hardware=ci_small", "hierarchy=write_through", "codec=fp16")
    cap = capacity_report(cfg, build_spec(cfg), 1)
    per_tier = [t.tokens["fp16"] for t in cap.tiers]  # 8, 32, 64, 256 blocks
    assert per_tier == [8 * 256, 32 * 256, 64 * 256, 256 * 256]
    # copies above the last tier: max(last, sum of the others), not the sum of all four
    assert cap.distinct_tokens() == max(256, 8 + 32 + 64) * 256
