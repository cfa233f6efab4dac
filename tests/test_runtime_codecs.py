"""Codecs on real tensors: exact byte sizes (the model's), round trips within their error bounds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exo_runtime.codecs import codec_names, make_codec
from exo_sim.codecs import CODECS, encoded_bytes
from exo_sim.config import CodecMixConfig
from exo_sim.errors import ConfigError

ALL = codec_names()


def test_every_model_codec_has_a_runtime_codec() -> None:
    assert sorted(CODECS) == ALL


@settings(max_examples=60, deadline=None)
@given(
    elements=st.integers(1, 3000),
    int8_group=st.integers(1, 300),
    int4_group=st.integers(1, 300),
    scale_bytes=st.sampled_from([2, 4]),
    n=st.integers(1, 3),
)
def test_encoded_size_is_the_models_byte_math(
    elements: int, int8_group: int, int4_group: int, scale_bytes: int, n: int
) -> None:
    mix = CodecMixConfig(name="m", int8_group_size=int8_group, int4_group_size=int4_group, scale_bytes=scale_bytes)
    x = torch.randn(n, elements, generator=torch.Generator().manual_seed(elements))
    for name in ALL:
        codec = make_codec(name, elements, mix)
        assert codec.nbytes == encoded_bytes(name, elements, mix)
        out = torch.full((n, codec.nbytes + 16), 0xA5, dtype=torch.uint8)
        codec.encode(x, out)
        # the codec wrote its block and not one byte past it
        assert bool((out[:, codec.nbytes :] == 0xA5).all())


MIX = CodecMixConfig(name="m", int8_group_size=128, int4_group_size=32, scale_bytes=2)


@pytest.mark.parametrize("name", ALL)
def test_round_trip_within_the_reported_bound(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1000, generator=gen)
    x[1] *= 100.0  # a block of large values
    x[2, 7] = 40.0  # an outlier in one group
    x[3] = 0.0  # an all-zero block
    codec = make_codec(name, 1000, MIX)
    out = torch.empty((4, codec.nbytes), dtype=torch.uint8)
    bound = codec.encode(x, out)
    y = torch.empty_like(x)
    codec.decode(out, y)
    err = (y - x).abs().amax(dim=1).double()
    assert bool((err <= bound).all()), (err, bound)
    assert float(err[3]) == 0.0 and float(bound[3]) >= 0.0
    if codec.lossless:
        assert torch.equal(x.view(torch.int32), y.view(torch.int32))
        assert float(bound.max()) == 0.0
    else:
        # the error is real and the bound is not a blanket: within a factor 4 of what happened
        assert float(err[0]) > 0.0
        assert float(bound[0]) <= 4 * float(err[0])


def test_fp32_is_bit_exact_on_awkward_values() -> None:
    x = torch.tensor([[0.0, -0.0, 1e-45, -3.4e38, float("inf"), 1.0 / 3.0, 7.0]])
    codec = make_codec("fp32", 7, MIX)
    out = torch.empty((1, codec.nbytes), dtype=torch.uint8)
    codec.encode(x, out)
    y = torch.empty_like(x)
    codec.decode(out, y)
    assert torch.equal(x.view(torch.int32), y.view(torch.int32))


def test_int8_keeps_normalised_embeddings() -> None:
    # The replaced system's "INT8 compression" was a bare cast: unit-length MiniLM vectors became zeros.
    gen = torch.Generator().manual_seed(2)
    emb = torch.randn(8, 384, generator=gen)
    emb /= emb.norm(dim=1, keepdim=True)
    codec = make_codec("int8", 384, MIX)
    out = torch.empty((8, codec.nbytes), dtype=torch.uint8)
    codec.encode(emb, out)
    back = torch.empty_like(emb)
    codec.decode(out, back)
    cosine = torch.nn.functional.cosine_similarity(emb, back, dim=1)
    assert float(cosine.min()) > 0.9999
    assert codec.nbytes == 384 + 3 * 2  # 3 groups of 128, one fp16 scale each
    assert emb.to(torch.int8).abs().sum() == 0  # what the bare cast did


def test_int4_packs_two_nibbles_per_byte_then_scales() -> None:
    mix = CodecMixConfig(name="m", int4_group_size=4, scale_bytes=2)
    codec = make_codec("int4", 7, mix)  # one full group of 4, one group of 3
    x = torch.tensor([[1.0, -1.0, 0.0, 0.5, 2.0, -2.0, 1.0]])
    out = torch.empty((1, codec.nbytes), dtype=torch.uint8)
    codec.encode(x, out)
    s1 = torch.tensor([1.0 / 7]).half()  # group absmax 1 -> scale 1/7 in fp16
    s2 = torch.tensor([2.0 / 7]).half()
    q1 = [round(v / float(s1)) for v in (1.0, -1.0, 0.0, 0.5)]  # 7, -7, 0, 4
    q2 = [round(v / float(s2)) for v in (2.0, -2.0, 1.0)]  # 7, -7, 4 (1 / fp16(2/7) = 3.5009)
    nib = [q + 8 for q in q1] + [q + 8 for q in q2] + [8]  # the short group pads with a zero nibble
    data = [nib[0] | nib[1] << 4, nib[2] | nib[3] << 4, nib[4] | nib[5] << 4, nib[6] | nib[7] << 4]
    expected = bytes(data) + s1.view(torch.uint8).numpy().tobytes() + s2.view(torch.uint8).numpy().tobytes()
    assert codec.nbytes == 4 + 2 * 2 == encoded_bytes("int4", 7, mix)
    assert out[0].numpy().tobytes() == expected
    assert q1 == [7, -7, 0, 4]


def test_scales_the_runtime_cannot_store_are_refused() -> None:
    mix = CodecMixConfig(name="m", scale_bytes=1)
    with pytest.raises(ConfigError, match="codec.scale_bytes"):
        make_codec("int8", 256, mix)
    make_codec("fp16", 256, mix)  # cast codecs have no scales: fine
