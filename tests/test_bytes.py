"""Byte math pinned against hand arithmetic (never against the code's own output)."""

from __future__ import annotations

import math

import pytest

from exo_sim.codecs import encoded_bytes
from exo_sim.config import CodecMixConfig
from exo_sim.spec import build_spec

MIX = CodecMixConfig(name="t", int8_group_size=128, int4_group_size=32, scale_bytes=2)

# Llama-3-8B: 2 x 32 layers x 8 KV heads x 128 = 65,536 elements per token; 256-token block.
LLAMA8_ELEMS = 2 * 32 * 8 * 128 * 256


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("fp32", LLAMA8_ELEMS * 4),
        ("fp16", LLAMA8_ELEMS * 2),
        ("bf16", LLAMA8_ELEMS * 2),
        ("int8", LLAMA8_ELEMS + (LLAMA8_ELEMS // 128) * 2),
        ("int4", LLAMA8_ELEMS // 2 + (LLAMA8_ELEMS // 32) * 2),
    ],
)
def test_kv_block_bytes(codec: str, expected: int) -> None:
    assert encoded_bytes(codec, LLAMA8_ELEMS, MIX) == expected


def test_partial_groups_round_up() -> None:
    # 300 elements: int8 groups of 128 -> 3 groups (128, 128, 44): 300 data + 3 scales x 2
    assert encoded_bytes("int8", 300, MIX) == 300 + 6
    # int4 groups of 32 -> 10 groups (9 x 32 + 12); 9 x 16 bytes + 6 bytes, + 10 scales x 2
    assert encoded_bytes("int4", 300, MIX) == 9 * 16 + 6 + 20
    # an odd int4 remainder rounds up to a whole byte: 33 elements = 32 + 1 -> 16 + 1 bytes, 2 scales
    assert encoded_bytes("int4", 33, MIX) == 17 + 4


def test_reductions_against_fp32_are_not_the_seed_claims() -> None:
    fp32 = encoded_bytes("fp32", LLAMA8_ELEMS, MIX)
    fp16 = encoded_bytes("fp16", LLAMA8_ELEMS, MIX)
    int8 = encoded_bytes("int8", LLAMA8_ELEMS, MIX)
    assert 1 - fp16 / fp32 == pytest.approx(0.50)
    # INT8 saves 75 % minus its scales (1/128 x 2 B per element = 1/256 of FP32's 4 B ... of the data)
    assert 1 - int8 / fp32 == pytest.approx(0.75 - 2 / 128 / 4)


def test_seed_workstation_capacities(make_cfg) -> None:  # type: ignore[no-untyped-def]
    # seed_workstation, llama3_8b_kv, seed_mix, 256-token blocks; bf16 weights (16.06 GB) do not fit
    # in 8 GiB, int4 ones do
    spec = build_spec(make_cfg("payload.weight_dtype=int4"))
    int8_block = LLAMA8_ELEMS + LLAMA8_ELEMS // 128 * 2  # 17,039,360 B
    fp16_block = LLAMA8_ELEMS * 2
    fp32_block = LLAMA8_ELEMS * 4
    vram, shared, ram, nvme = spec.tiers
    assert (vram.codec, shared.codec, ram.codec, nvme.codec) == ("int8", "int8", "fp16", "fp32")
    assert (vram.policy, shared.policy, ram.policy, nvme.policy) == ("lru", "lru", "fifo", "fifo")
    assert vram.block_bytes == int8_block
    # The GPU holds the weights and the workspace too (test_capacity_server.py has the arithmetic):
    # 8 GiB x 0.9 = 7,730,941,132 B - 5,727,854,592 B int4 weights - 341,049,344 B workspace
    # = 1,662,037,196 B of KV = 97 int8 blocks (97.5), not the whole device's 504.
    assert vram.capacity_bytes == 8 * 2**30
    assert vram.kv_budget_bytes == 1_662_037_196
    assert vram.capacity_blocks == 97
    assert vram.capacity_tokens == 97 * 256
    assert shared.capacity_blocks == 32 * 2**30 // int8_block
    assert ram.capacity_blocks == 64 * 2**30 // fp16_block == 2048
    # a file tier's slab holds its bytes: 2 TB = 29,802 rows of 64 MiB, 1,420 of them copy-on-write spares
    assert 2 * 10**12 // fp32_block == 29_802
    assert nvme.capacity_blocks == 28_382 and 28_382 + math.ceil(28_382 * 0.05) == 29_802


def test_rag_chunk_block(make_cfg) -> None:  # type: ignore[no-untyped-def]
    spec = build_spec(make_cfg("payload=rag_chunk_minilm", "codec=int8"))
    # one 1024-char chunk (1 B/char) + a 384-d vector in int8: 384 B + 3 scales x 2 B
    assert spec.tiers[0].block_bytes == 1024 + 384 + 6
    spec = build_spec(make_cfg("payload=rag_chunk_minilm", "codec=fp32", "block_tokens=512"))
    assert spec.tiers[0].block_bytes == 2 * (1024 + 384 * 4)


def test_tensor_parallel_splits_kv_heads(make_cfg) -> None:  # type: ignore[no-untyped-def]
    # ci_small: its vram is a KV pool, so bf16 Llama-3-8B weights need not fit (block bytes only)
    one = build_spec(make_cfg("hardware=ci_small", "codec=fp16")).tiers[0].block_bytes
    tp2 = build_spec(make_cfg("hardware=ci_small", "codec=fp16", "payload.tensor_parallel=2")).tiers[0].block_bytes
    tp16 = build_spec(make_cfg("hardware=ci_small", "codec=fp16", "payload.tensor_parallel=16")).tiers[0].block_bytes
    assert tp2 * 2 == one
    assert tp16 == one // 8  # 8 KV heads: beyond TP=8 each rank still holds one whole head
