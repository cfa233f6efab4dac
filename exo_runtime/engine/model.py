"""A Llama-style decoder with seeded random weights: one tensor-parallel rank's real forward pass.

The model (per layer, as :mod:`exo_sim.architecture` sizes it): RMSNorm, attention with rotary
embeddings (theta 500,000, as Llama-3) and grouped-query attention, RMSNorm, SwiGLU MLP; then a
final RMSNorm and ``lm_head``. No biases. ``q/k/v`` and ``gate/up`` are stored fused (one matmul
each) — the same parameters, fewer kernel launches.

**Random weights.** Every weight is drawn from a generator seeded by ``(seed, tensor index)``
(normal, std 0.02; the output projections ``o`` and ``down`` 0.02 / sqrt(2 x layers), so the
residual stream stays near unit scale and activations stay finite in bf16, fp16 and fp32). The
compute, the shapes and the KV bytes are a real model's; the values are not a trained model's —
every output says so through :attr:`DecoderModel.weights_note`. The same seed gives the same weights
on the same kind of device (they are drawn in float32 and cast, so a bf16 model is the fp32 one
rounded).

**One rank.** Under tensor parallelism the model holds and runs rank 0's shard: ``heads_per_rank``
query heads, ``kv_heads_per_rank`` KV heads (replicated when tp exceeds the KV heads),
``intermediate_size / tp`` MLP channels and ``ceil(vocab / tp)`` vocabulary rows of the embedding
and ``lm_head``. The all-reduces between ranks are not performed (the values are one rank's partial
sums, and a token id is looked up modulo the rank's rows); FLOPs, shapes and KV bytes per rank are
exactly exo's (``2 x layers x kv_heads_per_rank x head_dim`` KV elements per token).

**KV layouts.**

* :data:`PastKV` — one ``(K, V)`` pair per layer, each shaped ``[kv_heads_per_rank, tokens,
  head_dim]`` (any strides), ``K`` after the rotary embedding at the token's absolute position (as
  vLLM caches it). That is what :meth:`DecoderModel.prefill` takes as context and returns for the
  new tokens.
* A **block** (what a tier stores) — one contiguous tensor shaped :func:`kv_block_shape`,
  ``(2, layers, block_tokens, kv_heads_per_rank, head_dim)``: K of every layer, then V of every
  layer; within a layer token-major (vLLM's per-layer block layout; the birth data of
  :mod:`exo_runtime.payload_data` has the same shape). Flattened, it is exactly
  ``2 x layers x kv_heads_per_rank x head_dim x block_tokens`` elements — exo's block. Convert with
  :func:`kv_to_blocks` and :func:`blocks_to_kv`.
* :class:`RequestKV` — one request's KV, preallocated for all its tokens: per layer ``K`` and ``V``
  each ``[capacity_tokens, kv_heads_per_rank, head_dim]`` (token-major, so a block's layer slice is
  one contiguous run of it). :meth:`DecoderModel.prefill` writes the new tokens' K/V into it in
  place and attends over a view of its first ``position + n`` rows: a prompt prefilled in chunks
  copies no KV, and a loaded prefix is written into it once.

**Attention after a context.** New token ``i`` (absolute position ``position + i``) sees every
cached token and the new tokens up to itself. On the CPU that is two flash-attention passes merged
by their log-sum-exp: the new tokens over the context with no mask (the query heads of a KV group
folded into rows, so K/V are never repeated), and over themselves with ``is_causal`` — no
``n x (position + n)`` mask is built. On a GPU, SDPA with a lower-right causal bias (its flash kernel).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from exo_runtime.payload_data import block_seed
from exo_sim.architecture import Architecture, architecture_problem
from exo_sim.errors import ConfigError

ROPE_THETA = 500_000.0
"""Rotary embedding base (Llama-3)."""

RMS_EPS = 1e-5
"""RMSNorm epsilon (Llama-3)."""

INIT_STD = 0.02
"""Standard deviation of the random weights (output projections divided by ``sqrt(2 x layers)``)."""

KV = tuple[torch.Tensor, torch.Tensor]
"""One layer's ``(K, V)``, each ``[kv_heads_per_rank, tokens, head_dim]``."""

PastKV = list[KV]
"""Per layer, the ``(K, V)`` of a run of tokens (see the module docstring)."""

PastLoader = Callable[[int], KV]
"""``layer -> (K, V)`` of the cached prefix for that layer, called just before the layer runs."""


def weights_note(seed: int) -> str:
    """The sentence every output of the engine carries about its weights."""
    return (
        f"random weights (seed {seed}): the compute, shapes and KV bytes are the real ones; "
        "the values are not a trained model's"
    )


def default_compute_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype the engine computes in: bf16 on a GPU (fp16 where bf16 is unsupported), fp32 on a CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def kv_block_shape(arch: Architecture, block_tokens: int) -> tuple[int, int, int, int, int]:
    """Shape of one KV block: ``(2, layers, block_tokens, kv_heads_per_rank, head_dim)``."""
    return (2, arch.layers, block_tokens, arch.kv_heads_per_rank(), arch.head_dim)


class Prefill(NamedTuple):
    """What :meth:`DecoderModel.prefill` returns.

    Attributes:
        kv: the new tokens' KV (:data:`PastKV`, ``tokens`` = the new tokens only; views of the
            :class:`RequestKV` the prefill wrote them into).
        logits: the last token's logits over the rank's vocabulary rows, float32 ``[vocab_rows]``.

    """

    kv: PastKV
    logits: torch.Tensor


@dataclass(frozen=True)
class LayerWeights:
    """One decoder layer's weights on one rank (``[out, in]``, as :func:`torch.nn.functional.linear`)."""

    attn_norm: torch.Tensor
    qkv: torch.Tensor
    o: torch.Tensor
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


class DecoderModel:
    """One tensor-parallel rank of a Llama-style decoder of ``arch``, with seeded random weights.

    Args:
        arch: the payload's architecture (``exo_sim.architecture.architecture_of(cfg.payload)``).
        seed: seeds the weights (see the module docstring).
        device: where the weights live and the forward pass runs (``"cpu"``, ``"cuda"``).
        dtype: the compute (and weight) dtype; :func:`default_compute_dtype` by default.

    Raises:
        ConfigError: when ``arch`` is not a consistent Llama-style shape.

    """

    def __init__(
        self,
        arch: Architecture,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        problem = architecture_problem(arch)
        if problem is not None:
            raise ConfigError(f"payload.{problem[0]}", problem[1])
        self.arch = arch
        self.seed = int(seed)
        self.device = torch.device(device)
        self.dtype = dtype if dtype is not None else default_compute_dtype(self.device)
        self.weights_note = weights_note(self.seed)
        """Say this wherever the model's outputs go."""
        self.heads = arch.heads_per_rank()
        self.kv_heads = arch.kv_heads_per_rank()
        self.head_dim = arch.head_dim
        self.hidden_size = arch.hidden_size
        self.intermediate = arch.intermediate_size // arch.tensor_parallel
        self.vocab_rows = -(-arch.vocab_size // arch.tensor_parallel)
        self.kv_elements_per_token = arch.kv_elements_per_token_per_rank()
        """``2 x layers x kv_heads_per_rank x head_dim``: exo's KV elements per token per rank."""

        h, d = self.hidden_size, self.head_dim
        out_std = INIT_STD / math.sqrt(2 * arch.layers)
        self.embed = self._draw(0, (self.vocab_rows, h), INIT_STD)
        self.lm_head = self.embed if arch.tied_embeddings else self._draw(1, (self.vocab_rows, h), INIT_STD)
        self.final_norm = self._ones(h)
        self.layers: list[LayerWeights] = []
        for i in range(arch.layers):
            base = 2 + 4 * i
            self.layers.append(
                LayerWeights(
                    attn_norm=self._ones(h),
                    qkv=self._draw(base, ((self.heads + 2 * self.kv_heads) * d, h), INIT_STD),
                    o=self._draw(base + 1, (h, self.heads * d), out_std),
                    mlp_norm=self._ones(h),
                    gate_up=self._draw(base + 2, (2 * self.intermediate, h), INIT_STD),
                    down=self._draw(base + 3, (h, self.intermediate), out_std),
                )
            )
        half = torch.arange(0, d, 2, dtype=torch.float64, device=self.device) / d
        self._inv_freq = 1.0 / (ROPE_THETA**half)  # float64: angles at large positions stay exact

    # ------------------------------------------------------------------ weights
    def _draw(self, index: int, shape: tuple[int, int], std: float) -> torch.Tensor:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(block_seed(self.seed, index))
        w = torch.randn(shape, generator=gen, device=self.device, dtype=torch.float32)
        return w.mul_(std).to(self.dtype)

    def _ones(self, size: int) -> torch.Tensor:
        return torch.ones(size, device=self.device, dtype=self.dtype)

    def parameters(self) -> list[torch.Tensor]:
        """Every weight tensor once (the tied ``lm_head`` is the embedding)."""
        tensors = [self.embed, self.final_norm]
        if not self.arch.tied_embeddings:
            tensors.append(self.lm_head)
        for layer in self.layers:
            tensors += [layer.attn_norm, layer.qkv, layer.o, layer.mlp_norm, layer.gate_up, layer.down]
        return tensors

    def num_params(self) -> int:
        """Parameters held (equals ``arch.params_per_rank()``)."""
        return sum(t.numel() for t in self.parameters())

    def weight_bytes(self) -> int:
        """Bytes the weights take at the compute dtype."""
        return sum(t.numel() * t.element_size() for t in self.parameters())

    def block_shape(self, block_tokens: int) -> tuple[int, int, int, int, int]:
        """:func:`kv_block_shape` for this model."""
        return kv_block_shape(self.arch, block_tokens)

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def prefill(
        self,
        token_ids: torch.Tensor,
        past: PastKV | None = None,
        position: int | None = None,
        *,
        past_loader: PastLoader | None = None,
        cache: RequestKV | None = None,
    ) -> Prefill:
        """Run ``token_ids`` through the model after a cached context; return their KV and the last logits.

        Attention covers the cached context (``position`` tokens) plus the new tokens, causally. Only
        the last token's logits are computed (as vLLM does for a prefill).

        Args:
            token_ids: the new tokens, int64 ``[n]``, ``n >= 1`` (ids in ``[0, vocab_size)``; checked
                when given on the CPU).
            past: the cached context's KV, every layer at once (:data:`PastKV`).
            position: tokens of cached context (the new tokens' first absolute position); defaults
                to ``past``'s tokens, else ``cache.tokens``, else 0; required with ``past_loader``.
            past_loader: instead of ``past``, ``layer -> (K, V)`` of the context for that layer,
                called just before the layer runs, so a caller can load layer ``i`` while layer
                ``i - 1`` computes (:class:`~exo_runtime.engine.loader.LayerwiseLoader`).
            cache: the request's :class:`RequestKV`. The new tokens' K/V are written into its rows
                ``position .. position + n`` and attention reads its rows ``0 .. position + n``; the
                context given by ``past`` or ``past_loader`` is copied into rows ``0 .. position``
                (not when it already is those rows, as a loader given ``into=cache`` returns);
                without either, the cache must already hold ``position`` tokens. Afterwards
                ``cache.tokens == position + n``. Without a cache, one of ``position + n`` tokens is
                made for this call (the context copied into it once).

        Returns:
            :class:`Prefill`: the new tokens' KV (positions ``position ..``; views of the cache's
            rows) and the last logits.

        Raises:
            ValueError: for malformed ids, both ``past`` and ``past_loader``, a context whose shape
                disagrees with the model or with ``position``, or a cache that is not the model's,
                too small, or holding fewer than ``position`` tokens.

        """
        ids = self._check_ids(token_ids)
        n = ids.numel()
        if past is not None and past_loader is not None:
            raise ValueError("give either past or past_loader, not both")
        if past is not None:
            if len(past) != self.arch.layers:
                raise ValueError(f"past has {len(past)} layers; the model has {self.arch.layers}")
            if position is None:
                position = int(past[0][0].shape[1])
        elif past_loader is not None:
            if position is None:
                raise ValueError("position (the cached context's tokens) is required with past_loader")
        elif position is None:
            position = cache.tokens if cache is not None else 0
        held = cache.tokens if cache is not None and past is None and past_loader is None else 0
        if position < 0 or (past is None and past_loader is None and position > held):
            raise ValueError(
                f"position {position} needs a cached context of that many tokens (past, past_loader or a "
                f"cache holding them; {held} held)"
            )
        if cache is None:
            cache = RequestKV.for_model(self, position + n)
        else:
            self._check_cache(cache, position + n)

        cos, sin = self._rotary(position, n)
        x = F.embedding(ids, self.embed)
        for i, layer in enumerate(self.layers):
            context: KV | None = None
            if past is not None:
                context = past[i]
            elif past_loader is not None:
                context = past_loader(i)
            if context is not None and not cache.holds(i, context, position):
                cache.write(i, 0, self._check_context(context, i, position))
            x = self._layer(layer, x, cos, sin, cache.k[i], cache.v[i], position)
        cache.tokens = position + n
        last = F.rms_norm(x[-1:], (self.hidden_size,), self.final_norm, RMS_EPS)
        logits = F.linear(last, self.lm_head)[0].float()
        return Prefill(cache.kv(position, position + n), logits)

    def _check_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.dim() != 1 or token_ids.numel() == 0:
            raise ValueError(f"token_ids must be a non-empty 1-D tensor, got shape {tuple(token_ids.shape)}")
        if token_ids.dtype != torch.int64:
            raise ValueError(f"token_ids must be int64, got {token_ids.dtype}")
        if token_ids.device.type == "cpu":
            lo, hi = int(token_ids.min()), int(token_ids.max())
            if lo < 0 or hi >= self.arch.vocab_size:
                raise ValueError(f"token ids must lie in [0, {self.arch.vocab_size}), got [{lo}, {hi}]")
        ids = token_ids.to(self.device, non_blocking=True)
        if self.vocab_rows != self.arch.vocab_size:
            ids = ids % self.vocab_rows  # stands in for the vocab-parallel lookup and its all-reduce
        return ids

    def _check_context(self, context: KV, layer: int, position: int) -> KV:
        want = (self.kv_heads, position, self.head_dim)
        k, v = context
        if tuple(k.shape) != want or tuple(v.shape) != want:
            raise ValueError(
                f"layer {layer}'s cached K/V are {tuple(k.shape)}/{tuple(v.shape)}; expected {want} "
                "([kv_heads_per_rank, tokens, head_dim])"
            )
        return k, v

    def _check_cache(self, cache: RequestKV, tokens: int) -> None:
        want = (self.arch.layers, self.kv_heads, self.head_dim, self.device, self.dtype)
        got = (cache.layers, cache.kv_heads, cache.head_dim, cache.device, cache.dtype)
        if got[:3] != want[:3] or cache.dtype != self.dtype or not same_device(cache.device, self.device):
            raise ValueError(f"the cache is (layers, kv_heads, head_dim, device, dtype) {got}; the model's are {want}")
        if tokens > cache.capacity_tokens:
            raise ValueError(f"the cache holds {cache.capacity_tokens} tokens; this prefill reaches token {tokens}")

    def _rotary(self, position: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The cosines and sines ``[n, 1, head_dim]`` for absolute positions ``position .. position + n - 1``."""
        pos = torch.arange(position, position + n, device=self.device, dtype=torch.float64)
        angles = torch.outer(pos, self._inv_freq).float()
        angles = torch.cat((angles, angles), dim=1)[:, None, :]
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def _layer(
        self,
        w: LayerWeights,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        k_rows: torch.Tensor,
        v_rows: torch.Tensor,
        position: int,
    ) -> torch.Tensor:
        """One decoder layer over ``x`` ``[n, hidden]``, its new K/V written into the cache's rows.

        ``k_rows``/``v_rows`` are the cache's ``[capacity, kv_heads, head_dim]``; the new tokens go at
        ``position ..``.
        """
        n, d = x.shape[0], self.head_dim
        end = position + n
        h = F.rms_norm(x, (self.hidden_size,), w.attn_norm, RMS_EPS)
        q, k, v = F.linear(h, w.qkv).split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=1)
        # q rotated straight into a [heads, n, d] buffer, k and v straight into the cache's rows
        q_heads = torch.empty((self.heads, n, d), device=x.device, dtype=x.dtype)
        _rotate(q.view(n, self.heads, d), cos, sin, out=q_heads.transpose(0, 1))
        _rotate(k.view(n, self.kv_heads, d), cos, sin, out=k_rows[position:end])
        v_rows[position:end].copy_(v.view(n, self.kv_heads, d))
        attn = self._attend(q_heads, k_rows[:end].transpose(0, 1), v_rows[:end].transpose(0, 1), position)
        x = x + F.linear(attn.transpose(0, 1).reshape(n, self.heads * d), w.o)
        h = F.rms_norm(x, (self.hidden_size,), w.mlp_norm, RMS_EPS)
        gate, up = F.linear(h, w.gate_up).chunk(2, dim=1)
        return x + F.linear(F.silu(gate) * up, w.down)

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, position: int) -> torch.Tensor:
        """Causal attention of ``q`` ``[heads, n, d]`` (positions ``position ..``), ``[heads, n, d]``.

        ``keys``/``values`` are ``[kv_heads, position + n, d]`` views of the cache.
        """
        gqa = self.heads != self.kv_heads
        if position == 0:
            return F.scaled_dot_product_attention(q[None], keys[None], values[None], is_causal=True, enable_gqa=gqa)[0]
        if q.device.type == "cpu":
            return attend_after_context(q, keys, values, position)
        from torch.nn.attention.bias import causal_lower_right

        # Lower-right causal bias lets SDPA use its flash kernel (GQA included) without a mask.
        bias = causal_lower_right(q.shape[1], keys.shape[1])
        return F.scaled_dot_product_attention(q[None], keys[None], values[None], attn_mask=bias, enable_gqa=gqa)[0]


def attend_after_context(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, position: int) -> torch.Tensor:
    """Causal attention of new tokens after ``position`` context tokens, on the CPU, with no mask built.

    ``q`` is ``[heads, n, d]`` (contiguous), ``keys``/``values`` ``[kv_heads, position + n, d]`` (any
    strides, last dimension contiguous); query head ``h`` reads KV head ``h // (heads / kv_heads)``
    (grouped-query attention, as SDPA's ``enable_gqa``). Every new token sees the whole context, so
    that part is one unmasked flash-attention pass, with each KV head's query heads folded into its
    rows (K/V are not repeated); the new tokens over themselves are one ``is_causal`` pass; the two
    are merged by their log-sum-exp. Returns ``[heads, n, d]`` in ``q``'s dtype.
    """
    heads, n, d = q.shape
    kv_heads = keys.shape[0]
    group = heads // kv_heads
    out_ctx, lse_ctx = _flash_cpu(
        q.reshape(1, kv_heads, group * n, d), keys[None, :, :position], values[None, :, :position]
    )
    k_new, v_new = keys[:, position:], values[:, position:]
    if group > 1:  # n tokens only: cheap next to the context
        k_new, v_new = k_new.repeat_interleave(group, dim=0), v_new.repeat_interleave(group, dim=0)
    out_new, lse_new = _flash_cpu(q[None], k_new[None], v_new[None], is_causal=True)
    lse_ctx = lse_ctx.reshape(heads, n, 1)
    lse_new = lse_new.reshape(heads, n, 1)
    lse = torch.logaddexp(lse_ctx, lse_new)
    out = out_ctx.reshape(heads, n, d).float() * (lse_ctx - lse).exp()
    out += out_new[0].float() * (lse_new - lse).exp()
    return out.to(q.dtype)


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices name the same one (``cuda`` and ``cuda:0`` alike where one has no index)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _flash_cpu(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU flash-attention kernel SDPA dispatches to, with its log-sum-exp (``[B, H, L]``, float32)."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, is_causal)
    return out, lse


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half form, as Hugging Face's Llama) of ``x`` ``[n, heads, d]`` into ``out``."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    torch.mul(x, cos, out=out)
    return out.addcmul_(rotated, sin)


class RequestKV:
    """One request's KV for every layer, preallocated for all its tokens (cached, new and outputs).

    Per layer, :attr:`k` and :attr:`v` are each ``[capacity_tokens, kv_heads, head_dim]``
    (token-major: a block's layer slice ``[block_tokens, kv_heads, head_dim]`` is one contiguous run
    of rows). :meth:`DecoderModel.prefill` writes each chunk's new K/V into the rows after the
    context and attends over a view of the rows so far; :meth:`layer` and :meth:`kv` give the
    :data:`PastKV` layout ``[kv_heads, tokens, head_dim]`` as views.

    Args:
        layers, kv_heads, head_dim: the model's KV shape per rank.
        capacity_tokens: the most tokens the request will hold (>= 1).
        device, dtype: where and in what the KV is kept (the model's).

    Raises:
        ValueError: for ``capacity_tokens < 1``.

    """

    def __init__(
        self,
        layers: int,
        kv_heads: int,
        head_dim: int,
        capacity_tokens: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity_tokens < 1:
            raise ValueError(f"capacity_tokens must be >= 1, got {capacity_tokens}")
        self.layers, self.kv_heads, self.head_dim = layers, kv_heads, head_dim
        self.capacity_tokens = capacity_tokens
        self.device, self.dtype = torch.device(device), dtype
        data = torch.empty((2, layers, capacity_tokens, kv_heads, head_dim), device=self.device, dtype=dtype)
        self.k: list[torch.Tensor] = list(data[0].unbind(0))
        """Per layer, K ``[capacity_tokens, kv_heads, head_dim]`` (after the rotary embedding)."""
        self.v: list[torch.Tensor] = list(data[1].unbind(0))
        """Per layer, V ``[capacity_tokens, kv_heads, head_dim]``."""
        self.tokens = 0
        """Leading tokens whose KV the cache holds (set by :meth:`DecoderModel.prefill`)."""

    @classmethod
    def for_model(cls, model: DecoderModel, capacity_tokens: int) -> RequestKV:
        """A cache of ``capacity_tokens`` tokens shaped, placed and typed for ``model``."""
        return cls(model.arch.layers, model.kv_heads, model.head_dim, capacity_tokens, model.device, model.dtype)

    def nbytes(self) -> int:
        """Bytes the cache holds allocated."""
        return 2 * self.layers * self.capacity_tokens * self.kv_heads * self.head_dim * self.dtype.itemsize

    def layer(self, layer: int, start: int = 0, stop: int | None = None) -> KV:
        """Layer ``layer``'s K and V of tokens ``start .. stop`` (``tokens`` by default), views ``[kv_heads, t, d]``."""
        stop = self.tokens if stop is None else stop
        return self.k[layer][start:stop].transpose(0, 1), self.v[layer][start:stop].transpose(0, 1)

    def kv(self, start: int = 0, stop: int | None = None) -> PastKV:
        """Every layer's :meth:`layer` (views)."""
        return [self.layer(i, start, stop) for i in range(self.layers)]

    def holds(self, layer: int, kv: KV, tokens: int) -> bool:
        """Whether ``kv`` is exactly this cache's rows ``0 .. tokens`` of ``layer`` (written in place)."""
        k, v = kv
        mine_k, mine_v = self.layer(layer, 0, tokens)
        return all(
            a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
            for a, b in ((k, mine_k), (v, mine_v))
        )

    def write(self, layer: int, start: int, kv: KV) -> None:
        """Copy ``kv`` (``[kv_heads, t, head_dim]``, any device or dtype) into ``layer``'s rows ``start ..``."""
        k, v = kv
        stop = start + k.shape[1]
        self.k[layer][start:stop].copy_(k.transpose(0, 1))
        self.v[layer][start:stop].copy_(v.transpose(0, 1))

    def write_blocks(self, layer: int, blocks: Sequence[torch.Tensor] | torch.Tensor, tokens: int) -> None:
        """Copy ``layer`` of a prefix's blocks (each :func:`kv_block_shape`) into rows ``0 .. tokens``.

        Raises:
            ValueError: when ``tokens`` exceeds the blocks' tokens or the cache's capacity.

        """
        block_tokens = blocks_shape(blocks)[2]
        if not 0 <= tokens <= min(len(blocks) * block_tokens, self.capacity_tokens):
            raise ValueError(
                f"tokens must lie in [0, {min(len(blocks) * block_tokens, self.capacity_tokens)}] for "
                f"{len(blocks)} blocks of {block_tokens} tokens and a cache of {self.capacity_tokens}, got {tokens}"
            )
        full = tokens // block_tokens
        if isinstance(blocks, torch.Tensor) and full:  # one copy for the whole blocks
            rows = slice(0, full * block_tokens)
            self.k[layer][rows].view(full, block_tokens, self.kv_heads, self.head_dim).copy_(blocks[:full, 0, layer])
            self.v[layer][rows].view(full, block_tokens, self.kv_heads, self.head_dim).copy_(blocks[:full, 1, layer])
            first = full
        else:
            first = 0
        for b in range(first, -(-tokens // block_tokens)):
            lo = b * block_tokens
            hi = min(lo + block_tokens, tokens)
            self.k[layer][lo:hi].copy_(blocks[b][0, layer, : hi - lo])
            self.v[layer][lo:hi].copy_(blocks[b][1, layer, : hi - lo])


# ---------------------------------------------------------------------- KV blocks
def kv_to_blocks(kv: PastKV, block_tokens: int) -> list[torch.Tensor]:
    """Cut a run of KV into blocks of ``block_tokens`` tokens, each one contiguous tensor.

    Each block is shaped :func:`kv_block_shape` (see the module docstring for the order); its
    ``numel()`` is exactly ``2 x layers x kv_heads_per_rank x head_dim x block_tokens``. The run must
    start on a block boundary; only full blocks are returned (a partial tail is never cached). The
    blocks are views of one buffer allocated here (each contiguous), in ``kv``'s dtype and device.

    Raises:
        ValueError: for an empty ``kv`` or ``block_tokens < 1``.

    """
    if not kv:
        raise ValueError("kv has no layers")
    if block_tokens < 1:
        raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
    k0 = kv[0][0]
    kv_heads, tokens, head_dim = k0.shape
    full = tokens // block_tokens
    if full == 0:
        return []
    out = torch.empty((full, 2, len(kv), block_tokens, kv_heads, head_dim), dtype=k0.dtype, device=k0.device)
    span = full * block_tokens
    for layer, (k, v) in enumerate(kv):
        # [heads, full*T, d] -> [full, T, heads, d]
        out[:, 0, layer].copy_(k[:, :span].unflatten(1, (full, block_tokens)).permute(1, 2, 0, 3))
        out[:, 1, layer].copy_(v[:, :span].unflatten(1, (full, block_tokens)).permute(1, 2, 0, 3))
    return list(out.unbind(0))


def layer_kv_from_blocks(
    blocks: Sequence[torch.Tensor] | torch.Tensor, layer: int, tokens: int | None = None
) -> KV:
    """One layer's ``(K, V)`` ``[kv_heads_per_rank, tokens, head_dim]`` from a prefix's blocks.

    Args:
        blocks: the prefix's blocks in order, each shaped :func:`kv_block_shape` (a decoded flat
            row views as one with ``row.view(model.block_shape(block_tokens))``).
        layer: which layer.
        tokens: keep only the first ``tokens`` tokens (a fully cached prompt recomputes its last
            token); all by default.

    Raises:
        ValueError: for no blocks, blocks of different shapes or not 5-D, or too few tokens.

    """
    shape = blocks_shape(blocks)
    total = len(blocks) * shape[2]
    keep = total if tokens is None else tokens
    if not 0 <= keep <= total:
        raise ValueError(f"tokens must lie in [0, {total}] for {len(blocks)} blocks, got {tokens}")
    k = torch.cat([b[0, layer] for b in blocks])[:keep]
    v = torch.cat([b[1, layer] for b in blocks])[:keep]
    return k.transpose(0, 1), v.transpose(0, 1)


def blocks_to_kv(blocks: Sequence[torch.Tensor] | torch.Tensor, tokens: int | None = None) -> PastKV:
    """The inverse of :func:`kv_to_blocks`: a cached prefix's :data:`PastKV` from its blocks.

    Same arguments and errors as :func:`layer_kv_from_blocks`; values keep the blocks' dtype and
    device (prefill converts to the model's).
    """
    layers = blocks_shape(blocks)[1]
    return [layer_kv_from_blocks(blocks, i, tokens) for i in range(layers)]


def blocks_shape(blocks: Sequence[torch.Tensor] | torch.Tensor) -> tuple[int, ...]:
    """The common shape of a prefix's KV blocks, checked: 5-D, ``2`` first, all alike.

    Raises:
        ValueError: for no blocks, blocks not shaped like :func:`kv_block_shape`, or blocks that differ.

    """
    if len(blocks) == 0:
        raise ValueError("no blocks given")
    shape = tuple(blocks[0].shape)
    if len(shape) != 5 or shape[0] != 2:
        raise ValueError(
            f"a KV block must be shaped (2, layers, block_tokens, kv_heads, head_dim), got {shape}; "
            "view a flat row with kv_block_shape()"
        )
    for b in blocks:
        if tuple(b.shape) != shape:
            raise ValueError(f"blocks differ in shape: {shape} and {tuple(b.shape)}")
    return shape
