"""The engine's model: exo's KV shape, prefix-cache correctness, the block layout, tokens, the fit check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig

from exo_runtime.codecs import make_codec
from exo_runtime.engine.fit import FALLBACK_PAYLOAD, check_engine_fits
from exo_runtime.engine.loader import LayerwiseLoader, host_loader, layer_loader
from exo_runtime.engine.model import (
    DecoderModel,
    PastKV,
    RequestKV,
    attend_after_context,
    blocks_to_kv,
    kv_block_shape,
    kv_to_blocks,
)
from exo_runtime.engine.tokens import block_token_ids, request_token_ids
from exo_runtime.errors import MachineError
from exo_sim.architecture import Architecture, architecture_of, weight_bytes_per_rank
from exo_sim.config import CodecMixConfig
from exo_sim.errors import ConfigError, ExoError
from exo_sim.payloads import block_content

# conf/payload/tiny_llama_kv.yaml, by hand (test_tiny_architecture_is_the_payloads pins it to the YAML)
TINY = Architecture(
    layers=4, hidden_size=256, intermediate_size=704, attention_heads=8, kv_heads=2, head_dim=32, vocab_size=32000
)


@pytest.fixture(scope="module")
def model() -> DecoderModel:
    return DecoderModel(TINY, seed=7, device="cpu", dtype=torch.float32)


def ids_of(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (n,), generator=torch.Generator().manual_seed(seed))


def assert_kv_equal(a: PastKV, b: PastKV, atol: float = 0.0) -> None:
    assert len(a) == len(b)
    for (ka, va), (kb, vb) in zip(a, b, strict=True):
        assert ka.shape == kb.shape and va.shape == vb.shape
        torch.testing.assert_close(ka, kb, atol=atol, rtol=0)
        torch.testing.assert_close(va, vb, atol=atol, rtol=0)


def test_tiny_architecture_is_the_payloads(make_cfg: Callable[..., DictConfig]) -> None:
    assert architecture_of(make_cfg("payload=tiny_llama_kv").payload) == TINY


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_kv_per_token_and_weights_are_exos(make_cfg: Callable[..., DictConfig], tp: int) -> None:
    cfg = make_cfg("payload=tiny_llama_kv", f"payload.tensor_parallel={tp}")
    arch = architecture_of(cfg.payload)
    assert arch is not None
    m = DecoderModel(arch, seed=1)
    per_token = block_content(cfg.payload, 1).elements
    assert m.kv_elements_per_token == per_token == 2 * 4 * max(1, 2 // tp) * 32
    out = m.prefill(ids_of(40))
    assert len(out.kv) == arch.layers
    assert sum(k.numel() + v.numel() for k, v in out.kv) == 40 * per_token
    assert out.kv[0][0].shape == (arch.kv_heads_per_rank(), 40, arch.head_dim)
    assert out.logits.shape == (-(-arch.vocab_size // tp),) and out.logits.dtype == torch.float32
    (block,) = kv_to_blocks(out.kv, 32)
    assert block.numel() == block_content(cfg.payload, 32).elements
    # the weights are exactly the parameters exo counts for one rank
    assert m.num_params() == arch.params_per_rank()
    assert 2 * m.num_params() == weight_bytes_per_rank(arch, "bf16", 128)
    assert m.weight_bytes() == 4 * arch.params_per_rank()


@pytest.mark.parametrize(("total", "cached"), [(300, 128), (256, 255), (97, 1), (64, 32)])
def test_prefill_after_a_cached_prefix_equals_the_whole(model: DecoderModel, total: int, cached: int) -> None:
    """The prefix cache's central property: prefix + rest with the prefix's KV == everything at once."""
    ids = ids_of(total, seed=total)
    whole = model.prefill(ids)
    prefix = model.prefill(ids[:cached])
    rest = model.prefill(ids[cached:], past=prefix.kv)
    # earlier tokens' KV does not depend on later tokens (causality), and the rest's KV is the whole's
    assert_kv_equal(prefix.kv, [(k[:, :cached], v[:, :cached]) for k, v in whole.kv], atol=1e-5)
    assert_kv_equal(rest.kv, [(k[:, cached:], v[:, cached:]) for k, v in whole.kv], atol=1e-5)
    torch.testing.assert_close(rest.logits, whole.logits, atol=1e-5, rtol=1e-5)
    # a different prefix gives different logits for the same rest: attention really reads the context
    other = model.prefill(ids_of(cached, seed=999))
    assert (model.prefill(ids[cached:], past=other.kv).logits - whole.logits).abs().max() > 1e-3


@pytest.mark.parametrize(("cached", "chunk"), [(0, 256), (0, 500), (384, 256), (640, 1000)])
def test_prefill_in_chunks_into_the_request_kv_equals_one_pass(model: DecoderModel, cached: int, chunk: int) -> None:
    """A long prompt prefilled in chunks into one RequestKV, after a prefix loaded from its blocks or not,
    is the one-pass forward pass: the expected KV and logits come from a single prefill of every token."""
    total, outputs = 1200, 64
    ids = ids_of(total + outputs, seed=cached + chunk)
    whole = model.prefill(ids)  # one pass over prompt and outputs: the reference
    prompt = model.prefill(ids[:total])  # one pass over the prompt only: its last logits
    cache = RequestKV.for_model(model, total + outputs)
    loader = None
    if cached:
        blocks = kv_to_blocks([(k[:, :cached], v[:, :cached]) for k, v in whole.kv], 128)
        loader = host_loader(blocks, into=cache)
    done, last = cached, None
    while done < total:
        part = ids[done : min(total, done + chunk)]
        out = model.prefill(part, position=done, past_loader=loader if done == cached else None, cache=cache)
        assert out.kv[0][0].shape[1] == part.numel() and cache.tokens == done + part.numel()
        done, last = done + part.numel(), out.logits
    assert last is not None
    torch.testing.assert_close(last, prompt.logits, atol=1e-5, rtol=1e-5)
    tail = model.prefill(ids[total:], cache=cache)  # the outputs after the prompt, as the engine does
    torch.testing.assert_close(tail.logits, whole.logits, atol=1e-5, rtol=1e-5)
    assert cache.tokens == total + outputs
    assert_kv_equal(cache.kv(), whole.kv, atol=1e-5)
    assert_kv_equal(tail.kv, [(k[:, total:], v[:, total:]) for k, v in whole.kv], atol=1e-5)


def test_attention_after_a_context_is_masked_softmax_by_hand() -> None:
    """The CPU's two-pass attention (no mask built) against softmax(q k^T / sqrt(d)) with the causal mask,
    written out in float64: new token i (at position p + i) reads keys 0 .. p + i, query head h reads KV head h // 4."""
    gen = torch.Generator().manual_seed(11)
    heads, kv_heads, n, p, d = 8, 2, 37, 53, 32
    q = torch.randn(heads, n, d, generator=gen)
    keys, values = torch.randn(kv_heads, p + n, d, generator=gen), torch.randn(kv_heads, p + n, d, generator=gen)
    got = attend_after_context(q, keys, values, p)
    k64 = keys.double().repeat_interleave(heads // kv_heads, dim=0)
    v64 = values.double().repeat_interleave(heads // kv_heads, dim=0)
    scores = q.double() @ k64.transpose(1, 2) / d**0.5
    visible = torch.arange(p + n)[None, :] <= (p + torch.arange(n))[:, None]
    want = scores.masked_fill(~visible, float("-inf")).softmax(-1) @ v64
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    # keys a token must not see do not matter; one it must see does
    later = keys.clone()
    later[:, p + n - 1] += 5.0  # only the last new token sees the last key
    moved = attend_after_context(q, later, values, p)
    assert torch.equal(moved[:, :-1], got[:, :-1]) and not torch.allclose(moved[:, -1], got[:, -1])


def test_request_kv_is_written_once_and_refuses_what_does_not_fit(model: DecoderModel) -> None:
    ids = ids_of(96, seed=12)
    prefix = model.prefill(ids[:64])
    blocks = kv_to_blocks(prefix.kv, 32)
    cache = RequestKV.for_model(model, 96)
    assert cache.nbytes() == 2 * 4 * 96 * 2 * 32 * 4
    load = host_loader(blocks, into=cache)
    k, v = load(2)
    assert cache.holds(2, (k, v), 64) and not cache.holds(2, (k.clone(), v), 64)
    assert_kv_equal([(k, v)], [prefix.kv[2]])
    model.prefill(ids[64:80], position=64, past_loader=load, cache=cache)
    assert cache.k[2].data_ptr() == k.data_ptr()  # the loader's rows are the cache's: nothing copied again
    with pytest.raises(ValueError, match="holds 96 tokens"):
        model.prefill(ids[:17], position=80, cache=cache)
    with pytest.raises(ValueError, match="needs a cached context"):
        model.prefill(ids[:4], position=81, cache=cache)  # the cache holds 80
    with pytest.raises(ValueError, match="the model's are"):
        model.prefill(ids[:4], cache=RequestKV(3, 2, 32, 8))
    with pytest.raises(ValueError, match="capacity_tokens"):
        RequestKV.for_model(model, 0)
    with pytest.raises(ValueError, match="tokens must lie"):
        cache.write_blocks(0, blocks, 65)


def test_layerwise_hook_equals_the_whole_past(model: DecoderModel) -> None:
    ids = ids_of(320, seed=3)
    prefix = model.prefill(ids[:256])
    blocks = kv_to_blocks(prefix.kv, 64)
    asked: list[int] = []
    load = host_loader(blocks)

    def loader(layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        asked.append(layer)
        return load(layer)

    hooked = model.prefill(ids[256:], position=256, past_loader=loader)
    direct = model.prefill(ids[256:], past=prefix.kv)
    assert asked == [0, 1, 2, 3]
    assert_kv_equal(hooked.kv, direct.kv)
    assert torch.equal(hooked.logits, direct.logits)
    # the CPU's loader is the synchronous one
    assert not isinstance(layer_loader(blocks, "cpu", torch.float32), LayerwiseLoader)


def test_fully_cached_prompt_recomputes_its_last_token(model: DecoderModel) -> None:
    ids = ids_of(128, seed=4)
    whole = model.prefill(ids)
    blocks = kv_to_blocks(whole.kv, 64)
    last = model.prefill(ids[-1:], past=blocks_to_kv(blocks, tokens=127))
    torch.testing.assert_close(last.logits, whole.logits, atol=1e-5, rtol=1e-5)


def test_kv_blocks_round_trip(model: DecoderModel) -> None:
    kv = model.prefill(ids_of(200, seed=5)).kv
    blocks = kv_to_blocks(kv, 64)
    assert len(blocks) == 3  # the partial tail (8 tokens) is not a block
    for b in blocks:
        assert b.is_contiguous() and b.shape == kv_block_shape(TINY, 64) == model.block_shape(64)
        assert b.numel() == 2 * 4 * 2 * 32 * 64
    # documented order: [K|V, layer, token, kv_head, head_dim]
    assert torch.equal(blocks[1][1, 2, 5, 1], kv[2][1][1, 64 + 5])
    back = blocks_to_kv(blocks)
    assert_kv_equal(back, [(k[:, :192], v[:, :192]) for k, v in kv])
    # flat rows (what a codec decodes) view back into blocks
    flat = torch.stack(blocks).view(3, -1).clone()
    assert_kv_equal(blocks_to_kv([row.view(model.block_shape(64)) for row in flat]), back)
    assert_kv_equal(blocks_to_kv(blocks, tokens=70), [(k[:, :70], v[:, :70]) for k, v in kv])
    assert kv_to_blocks(kv, 256) == []
    with pytest.raises(ValueError, match="shaped"):
        blocks_to_kv([flat[0]])
    with pytest.raises(ValueError, match="tokens"):
        blocks_to_kv(blocks, tokens=193)


@pytest.mark.parametrize(("codec", "max_logit_error"), [("int8", 0.01), ("int4", 0.1)])
def test_prefix_loaded_from_encoded_blocks_gives_close_logits(
    model: DecoderModel, codec: str, max_logit_error: float
) -> None:
    ids = ids_of(300, seed=6)
    whole = model.prefill(ids)
    blocks = kv_to_blocks(whole.kv, 128)
    x = torch.stack(blocks).view(len(blocks), -1).float()
    c = make_codec(codec, x.shape[1], CodecMixConfig(name="m"))
    data = torch.empty((len(blocks), c.nbytes), dtype=torch.uint8)
    bound = c.encode(x, data)
    decoded = torch.empty_like(x)
    c.decode(data, decoded)
    error = (decoded - x).abs().amax(dim=1).double()
    assert (error <= bound).all() and (error > 0).all()
    past = blocks_to_kv([row.view(model.block_shape(128)) for row in decoded])
    rest = model.prefill(ids[256:], past=past)
    diff = (rest.logits - whole.logits).abs().max().item()
    assert 0 < diff < max_logit_error, diff
    assert torch.nn.functional.cosine_similarity(rest.logits, whole.logits, dim=0) > 0.999


def test_tokens_are_a_deterministic_prefix_stable_function_of_the_block() -> None:
    a = block_token_ids(12345, 512, 32000)
    assert a.dtype.name == "int64" and a.shape == (512,)
    assert (a == block_token_ids(12345, 512, 32000)).all()
    assert (block_token_ids(12345, 512, 32000, tokens=100) == a[:100]).all()
    assert not (a == block_token_ids(12346, 512, 32000)).all()
    assert not (a == block_token_ids(12345, 512, 32000, seed=1)).all()
    assert 0 <= a.min() and a.max() < 32000
    assert len(block_token_ids(-3, 8, 10)) == 8  # any int64 id
    # two requests sharing a prefix of block ids share its tokens; a partial last block is a prefix
    r1 = request_token_ids([1, 2, 3], [16, 16, 16], 16, 32000)
    r2 = request_token_ids([1, 2, 9], [16, 16, 5], 16, 32000)
    assert torch.equal(r1[:32], r2[:32]) and not torch.equal(r1[32:37], r2[32:])
    assert torch.equal(r2[32:], torch.from_numpy(block_token_ids(9, 16, 32000))[:5])
    with pytest.raises(ValueError):
        block_token_ids(1, 16, 32000, tokens=17)


def test_pinned_token_values() -> None:
    """Token ids are part of what a persisted cache means: a change here invalidates resumed tiers."""
    assert block_token_ids(0, 6, 32000).tolist() == [369, 7729, 3565, 18061, 16076, 8883]
    assert block_token_ids(2**40 + 5, 4, 128256, seed=3).tolist() == [86733, 91498, 128149, 122909]


def test_seeded_weights_are_reproducible(model: DecoderModel) -> None:
    ids = ids_of(50, seed=8)
    again = DecoderModel(TINY, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))
    assert torch.equal(model.prefill(ids).logits, again.prefill(ids).logits)
    other = DecoderModel(TINY, seed=8)
    assert not torch.equal(model.prefill(ids).logits, other.prefill(ids).logits)
    assert "random weights (seed 7)" in model.weights_note and "not a trained model" in model.weights_note


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_activations_stay_finite_in_half_precision(model: DecoderModel, dtype: torch.dtype) -> None:
    ids = ids_of(256, seed=9)
    half = DecoderModel(TINY, seed=7, dtype=dtype)
    out = half.prefill(ids[128:], past=half.prefill(ids[:128]).kv)
    assert out.kv[0][0].dtype == dtype
    assert out.logits.isfinite().all()
    assert all(k.isfinite().all() and v.isfinite().all() for k, v in out.kv)
    # the same weights rounded: close to the fp32 model
    torch.testing.assert_close(out.logits, model.prefill(ids).logits, atol=0.05, rtol=0)


def test_bad_calls_are_refused(model: DecoderModel) -> None:
    ids = ids_of(8)
    past = model.prefill(ids).kv
    with pytest.raises(ValueError, match="either past or past_loader"):
        model.prefill(ids, past=past, past_loader=host_loader(kv_to_blocks(past, 8)))
    with pytest.raises(ValueError, match="position"):
        model.prefill(ids, past_loader=host_loader(kv_to_blocks(past, 8)))
    with pytest.raises(ValueError, match="expected"):
        model.prefill(ids, past=past, position=4)
    with pytest.raises(ValueError, match="needs a cached context"):
        model.prefill(ids, position=3)
    with pytest.raises(ValueError, match=r"\[0, 32000\)"):
        model.prefill(torch.tensor([0, 32000]))
    with pytest.raises(ValueError, match="1-D"):
        model.prefill(ids.view(2, 4))
    with pytest.raises(ConfigError, match="payload.hidden_size"):
        DecoderModel(Architecture(4, 250, 704, 8, 2, 32, 32000))
    with pytest.raises(ValueError, match="CUDA"):
        LayerwiseLoader(kv_to_blocks(past, 8), "cpu", torch.float32)


def test_llama3_8b_is_refused_on_a_cpu(make_cfg: Callable[..., DictConfig]) -> None:
    arch = architecture_of(make_cfg("payload=llama3_8b_kv").payload)
    assert arch is not None
    # at an assumed 200 GFLOP/s (faster than this host) and with 1 TB free, time alone refuses it
    with pytest.raises(MachineError) as err:
        check_engine_fits(arch, torch.float32, "cpu", payload_name="llama3_8b_kv", flops_per_s=200e9, available=2**40)
    message = str(err.value)
    assert isinstance(err.value, ExoError) and err.value.exit_code == 2
    assert f"payload={FALLBACK_PAYLOAD}" in message and "512-token block" in message and "\n" not in message
    # and with the rate measured and little memory, memory refuses it too
    with pytest.raises(MachineError, match=r"weights take 29\.9\d GiB at float32"):
        check_engine_fits(arch, torch.float32, "cpu", payload_name="llama3_8b_kv", available=8 * 2**30)
    # the tiny model fits this host at its measured rate
    fit = check_engine_fits(TINY, torch.float32, "cpu", payload_name=FALLBACK_PAYLOAD)
    assert fit.weights_bytes == 4 * TINY.params_per_rank() and fit.block_prefill_s < 10
    assert fit.flops_basis.startswith("measured")


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"no CUDA device on this host (torch {torch.__version__}): the GPU path (bf16 prefill, "
    "LayerwiseLoader's copy stream and events) needs an NVIDIA GPU",
)
def test_gpu_prefill_with_layerwise_loading() -> None:
    gpu = DecoderModel(TINY, seed=7, device="cuda")
    assert gpu.dtype in (torch.bfloat16, torch.float16)
    ids = ids_of(640, seed=10)
    whole = gpu.prefill(ids)
    prefix = gpu.prefill(ids[:512])
    host_blocks = [b.cpu().pin_memory() for b in kv_to_blocks(prefix.kv, 128)]
    loader = LayerwiseLoader(host_blocks, "cuda", gpu.dtype, prefetch_layers=1)
    streamed = gpu.prefill(ids[512:], position=512, past_loader=loader)
    direct = gpu.prefill(ids[512:], past=prefix.kv)
    torch.cuda.synchronize()
    assert loader.bytes_loaded == sum(b.numel() * b.element_size() for b in host_blocks)
    assert_kv_equal(streamed.kv, direct.kv)
    assert torch.equal(streamed.logits, direct.logits)
    torch.testing.assert_close(streamed.logits, whole.logits, atol=0.05, rtol=0)
    assert streamed.logits.isfinite().all()
