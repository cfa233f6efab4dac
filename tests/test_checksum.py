"""The block checksum (CRC-32C) and the fused checksum + decode of a load, pinned against references.

The reference CRC-32C is written here, bit by bit from the polynomial, and checked against the
standard's published values before anything is compared with it. Decodes are compared with the torch
codecs' own ``decode``, bit for bit. Every check runs with the SSE4.2/AVX2 kernels and with the
portable C ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from exo_runtime import native
from exo_runtime.buffers import StagingPool, host_buffer
from exo_runtime.codecs import make_codec
from exo_runtime.engine.tierio import TierIO
from exo_runtime.errors import DataDirError
from exo_runtime.executor import Copy, Executor
from exo_runtime.integrity import birth_crcs, row_crcs
from exo_runtime.manifest import load_manifest
from exo_runtime.stores import StoreSettings, store_class
from exo_sim.config import CodecMixConfig
from exo_sim.hierarchy import Hierarchy
from exo_sim.spec import build_spec
from tests.runtime_overrides import compose_cfg, tiers

CASTAGNOLI_REFLECTED = 0x82F63B78


def _table() -> list[int]:
    out = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ CASTAGNOLI_REFLECTED if c & 1 else c >> 1
        out.append(c)
    return out


TABLE = _table()


def ref_crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C, one byte at a time (reflected, initial value and final xor 0xFFFFFFFF)."""
    c = crc ^ 0xFFFFFFFF
    for x in data:
        c = (c >> 8) ^ TABLE[(c ^ x) & 0xFF]
    return c ^ 0xFFFFFFFF


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def simd(request: pytest.FixtureRequest) -> Iterator[bool]:
    before = native.set_simd(request.param)
    yield request.param
    native.set_simd(before)


@pytest.fixture(params=["simd", "simd-streamed", "portable"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kernels a decode runs with: SIMD with ordinary or non-temporal stores, or portable C."""
    simd_before = native.set_simd(request.param != "portable")
    stream_before = native.set_stream_bytes(0 if request.param == "simd-streamed" else 1 << 62)
    yield request.param
    native.set_simd(simd_before)
    native.set_stream_bytes(stream_before)


# ---------------------------------------------------------------------------- the reference itself
def test_the_reference_gives_the_standards_check_values() -> None:
    assert ref_crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value for CRC-32C
    # RFC 3720 (iSCSI), appendix B.4: 32 bytes of zeros, of ones, ascending, descending
    assert ref_crc32c(bytes(32)) == 0x8A9136AA
    assert ref_crc32c(b"\xff" * 32) == 0x62A8AB43
    assert ref_crc32c(bytes(range(32))) == 0x46DD794E
    assert ref_crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


# ---------------------------------------------------------------------------- crc32c
# lengths around the kernels' 8-byte words, 2048-byte lanes and 8192-byte steps
LENGTHS = [0, 1, 3, 7, 8, 9, 63, 2047, 2049, 8191, 8192, 8193, 16384 + 13, 3 * 8192 + 4097, 65_537]


def test_crc32c_is_the_standard_crc_on_odd_lengths_and_offsets(simd: bool) -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 70_000, dtype=np.uint8)
    assert native.crc32c(b"123456789") == 0xE3069283
    for n in LENGTHS:
        for offset in (0, 3):  # an unaligned start too
            buf = data[offset : offset + n]
            assert native.crc32c(buf) == ref_crc32c(buf.tobytes()), (n, offset)


def test_crc32c_chains_like_zlib(simd: bool) -> None:
    data = np.random.default_rng(8).integers(0, 256, 20_011, dtype=np.uint8)
    for cut in (0, 1, 8191, 12_345, 20_011):
        assert native.crc32c(data[cut:], native.crc32c(data[:cut])) == ref_crc32c(data.tobytes())
    assert native.crc32c(b"6789", native.crc32c(b"12345")) == 0xE3069283


def test_crc32c_of_a_tensor_and_a_strided_tensor_is_refused() -> None:
    t = torch.arange(1000, dtype=torch.int32)
    assert native.crc32c(t) == ref_crc32c(t.numpy().tobytes())
    with pytest.raises(ValueError, match="contiguous"):
        native.crc32c(t[::2])


# ---------------------------------------------------------------------------- rows
def test_row_crcs_checksum_the_first_nbytes_of_chosen_rows(simd: bool) -> None:
    rows = torch.randint(0, 256, (5, 9000), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    want = [ref_crc32c(rows[i, :8999].numpy().tobytes()) for i in range(5)]
    assert row_crcs(rows, 8999) == want
    assert row_crcs(rows, 8999, [4, 1]) == [want[4], want[1]]
    with pytest.raises(ValueError, match="outside"):
        row_crcs(rows, 9001)
    with pytest.raises(ValueError, match="outside"):
        row_crcs(rows, 10, [5])


def test_a_lossless_copys_checksum_is_its_birth_checksum(simd: bool) -> None:
    """Birth: float32 elements then raw bytes; an fp32 copy stores exactly those bytes."""
    g = torch.Generator().manual_seed(2)
    elements, raw_bytes = 3001, 517
    x = torch.randn((3, elements), generator=g)
    raw = torch.randint(0, 256, (3, raw_bytes), dtype=torch.uint8, generator=g)
    births = birth_crcs(x, raw, raw_bytes)
    assert births == [ref_crc32c(x[i].numpy().tobytes() + raw[i].numpy().tobytes()) for i in range(3)]
    codec = make_codec("fp32", elements, CodecMixConfig(name="t"))
    rows = torch.zeros((3, codec.nbytes + raw_bytes + 11), dtype=torch.uint8)
    codec.encode(x, rows)
    rows[:, codec.nbytes : codec.nbytes + raw_bytes] = raw
    assert row_crcs(rows, codec.nbytes + raw_bytes) == births
    assert birth_crcs(x, None, 0) == [ref_crc32c(x[i].numpy().tobytes()) for i in range(3)]


# ---------------------------------------------------------------------------- fused decode
def _codec(name: str, elements: int, **mix: int) -> object:
    return make_codec(name, elements, CodecMixConfig(name="t", **mix))  # type: ignore[arg-type]


CASES = [  # element counts that leave a tail after the last 4096-byte step; rows of 8k elements can stream
    ("fp32", 16_392, {}),
    ("fp32", 16_391, {}),
    ("fp16", 12_296, {}),
    ("bf16", 4_099, {}),
    ("int8", 20_008, {"int8_group_size": 128, "scale_bytes": 2}),  # a short last group
    ("int8", 9_001, {"int8_group_size": 64, "scale_bytes": 4}),
    ("int8", 5_000, {"int8_group_size": 100, "scale_bytes": 2}),  # groups the 32-element SIMD loop cannot take
]


@pytest.mark.parametrize(("name", "elements", "mix"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_fused_decode_equals_the_codecs_decode_bit_for_bit(name: str, elements: int, mix: dict[str, int],
                                                            mode: str) -> None:
    codec = _codec(name, elements, **mix)
    g = torch.Generator().manual_seed(3)
    x = torch.randn((4, elements), generator=g) * torch.tensor([1.0, 1e-6, 1e3, 1e-30])[:, None]
    nbytes = codec.nbytes + 13  # bytes after the encoding (a RAG chunk's raw text) are checksummed only
    slab = torch.randint(0, 256, (6, nbytes + 5), dtype=torch.uint8, generator=g)
    enc = torch.zeros((4, nbytes), dtype=torch.uint8)
    codec.encode(x, enc)
    enc[:, codec.nbytes :] = slab[[5, 0, 3, 1], codec.nbytes : nbytes]
    slab[[5, 0, 3, 1], :nbytes] = enc
    want = torch.empty((4, elements))
    codec.decode(enc, want)
    out = torch.full((5, elements), float("nan"))
    crcs = native.fused_rows(slab, [5, 0, 3, 1], nbytes, codec, out)
    assert crcs == [ref_crc32c(enc[i].numpy().tobytes()) for i in range(4)]
    assert torch.equal(out[:4].view(torch.int32), want.view(torch.int32))
    assert out[4].isnan().all()  # nothing written past the rows asked for
    out.zero_()
    assert native.fused_rows(slab, [5, 0, 3, 1], nbytes, codec, out, check=False) is None
    assert torch.equal(out[:4].view(torch.int32), want.view(torch.int32))


def test_every_half_decodes_as_torch_converts_it(mode: str) -> None:
    """All 65,536 fp16 bit patterns: zeros, subnormals, normals, infinities; NaNs stay NaN."""
    codec = _codec("fp16", 65_536)
    bits = torch.arange(65_536, dtype=torch.int32).to(torch.int16)
    enc = bits.view(torch.uint8).view(1, -1)
    want = torch.empty((1, 65_536))
    codec.decode(enc, want)
    out = torch.empty((1, 65_536))
    native.fused_rows(enc, [0], codec.nbytes, codec, out)
    nan = want.isnan()
    assert torch.equal(out.isnan(), nan) and int(nan.sum()) == 2 * 1023
    assert torch.equal(out[~nan].view(torch.int32), want[~nan].view(torch.int32))


def test_the_l3_cache_is_read_from_sysfs(tmp_path: Path) -> None:
    for index, level, size in (("index0", "1", "48K"), ("index2", "2", "1024K"), ("index3", "3", "32768K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "level").write_text(level + "\n")
        (tmp_path / index / "size").write_text(size + "\n")
    assert native.l3_cache_bytes(tmp_path) == 32 * 2**20
    assert native.l3_cache_bytes(tmp_path / "none") is None


def test_codecs_without_a_fused_decoder_are_named() -> None:
    assert native.fused_decoder(_codec("int4", 1000)) is None
    with pytest.raises(ValueError, match="no fused decoder"):
        native.fused_rows(torch.zeros((1, 600), dtype=torch.uint8), [0], 600, _codec("int4", 1000),
                          torch.empty((1, 1000)))


def test_fused_rows_refuses_outputs_that_do_not_fit() -> None:
    codec = _codec("fp16", 100)
    rows = torch.zeros((2, 200), dtype=torch.uint8)
    with pytest.raises(ValueError, match="out must be"):
        native.fused_rows(rows, [0, 1], 200, codec, torch.empty((1, 100)))
    with pytest.raises(ValueError, match="more than"):
        native.fused_rows(rows, [0], 150, codec, torch.empty((1, 100)))


# ---------------------------------------------------------------------------- TierIO.load end to end
@pytest.mark.parametrize("medium", ["shm", "file"])
@pytest.mark.parametrize("codec_name", ["fp32", "fp16", "bf16", "int8", "int4"])
def test_load_decodes_every_block_and_stops_at_a_flipped_byte(medium: str, codec_name: str, tmp_path: Path,
                                                              mode: str) -> None:
    """A load in place from a slab (shm) or through staging rows (file), for every codec: the blocks equal
    the codec's decode of their bytes; one flipped byte anywhere in a block ends the usable prefix there."""
    cfg = compose_cfg("payload=tiny_llama_kv", "block_tokens=32", f"codec={codec_name}",
                      f"hardware.tiers.0.medium={medium}", "hardware.tiers.2.medium=ram", *tiers(12, 8, 8))
    spec = build_spec(cfg)
    stores = [store_class(t.medium)(t, StoreSettings(data_dir=tmp_path, tag="exo-test-checksum")) for t in spec.tiers]
    codecs = [make_codec(t.codec, spec.content.elements, cfg.codec) for t in spec.tiers]
    ex = Executor(Hierarchy(spec), stores, codecs, None, StagingPool(1 << 22, False), 1 << 22,  # type: ignore[arg-type]
                  "checksum", {}, 1.0)
    top, codec = stores[0], codecs[0]
    assert codec is not None
    try:
        n = 5
        slots = [top.allocate() for _ in range(n + 2)][2:][::-1]  # not in slot order
        rows = host_buffer(n * ex._stride(0), False).view(n, -1).zero_()  # aligned, as the file store needs
        codec.encode(torch.randn((n, ex.elements), generator=torch.Generator().manual_seed(4)), rows)
        top.write(slots, rows)
        want = torch.empty((n, ex.elements))
        codec.decode(rows, want)
        for key, slot in enumerate(slots):
            ex.copies[key] = {0: Copy(slot, ref_crc32c(rows[key, : top.slot_bytes].numpy().tobytes()), 0.0, True)}
        io = TierIO(ex)
        xs, usable = io.load(0, list(range(n)))
        assert usable == n and ex.corruptions == []
        assert torch.equal(xs.view(torch.int32), want.view(torch.int32))
        for key, pos in ((3, 0), (2, top.slot_bytes * 2 // 3), (1, top.slot_bytes - 1)):  # first, inside, last byte
            bad = host_buffer(rows.shape[1], False).view(1, -1)
            bad.copy_(rows[key : key + 1])
            bad[0, pos] ^= 0x10
            top.write([slots[key]], bad)
            xs, usable = io.load(0, list(range(n)))
            assert usable == key
            assert ex.corruptions[-1].slot == slots[key] and "fail their checksum" in ex.corruptions[-1].reason
            assert ex.copies[key][0].stale
            assert torch.equal(xs[:usable].view(torch.int32), want[:usable].view(torch.int32))
    finally:
        for s in stores:
            s.close()


def test_a_format_1_manifest_is_refused_in_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "nvme.manifest"
    path.write_bytes(b"EXOMANIFEST1\n" + bytes(40))
    with pytest.raises(DataDirError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert str(path) in msg and "earlier exo" in msg and "CRC-32C" in msg and "\n" not in msg
