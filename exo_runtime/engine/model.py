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
        kv: the new tokens' KV (:data:`PastKV`, ``tokens`` = the new tokens only).
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
    ) -> Prefill:
        """Run ``token_ids`` through the model after a cached context; return their KV and the last logits.

        Attention covers the cached context (``position`` tokens) plus the new tokens, causally. Only
        the last token's logits are computed (as vLLM does for a prefill).

        Args:
            token_ids: the new tokens, int64 ``[n]``, ``n >= 1`` (ids in ``[0, vocab_size)``; checked
                when given on the CPU).
            past: the cached context's KV, every layer at once (:data:`PastKV`).
            position: tokens of cached context (the new tokens' first absolute position); defaults
                to ``past``'s tokens, or 0; required with ``past_loader``.
            past_loader: instead of ``past``, ``layer -> (K, V)`` of the context for that layer,
                called just before the layer runs, so a caller can load layer ``i`` while layer
                ``i - 1`` computes (:class:`~exo_runtime.engine.loader.LayerwiseLoader`).

        Returns:
            :class:`Prefill`: the new tokens' KV (positions ``position ..``) and the last logits.

        Raises:
            ValueError: for malformed ids, both ``past`` and ``past_loader``, or a context whose
                shape disagrees with the model or with ``position``.

        """
        ids = self._check_ids(token_ids)
        n = ids.numel()
        if past is not None and past_loader is not None:
            raise ValueError("give either past or past_loader, not both")
        if past is not None:
            if len(past) != self.arch.layers:
                raise ValueError(f"past has {len(past)} layers; the model has {self.arch.layers}")
            cached = int(past[0][0].shape[1])
            if position is None:
                position = cached
        elif past_loader is not None:
            if position is None:
                raise ValueError("position (the cached context's tokens) is required with past_loader")
        elif position is None:
            position = 0
        if position < 0 or (past is None and past_loader is None and position != 0):
            raise ValueError(f"position {position} needs a cached context of that many tokens (past or past_loader)")

        cos, sin = self._rotary(position, n)
        mask = self._causal_mask(n, position)
        x = F.embedding(ids, self.embed)
        new_kv: PastKV = []
        for i, layer in enumerate(self.layers):
            context: KV | None = None
            if past is not None:
                context = past[i]
            elif past_loader is not None:
                context = past_loader(i)
            if context is not None:
                context = self._check_context(context, i, position)
            x, k, v = self._layer(layer, x, cos, sin, context, mask)
            new_kv.append((k, v))
        last = F.rms_norm(x[-1:], (self.hidden_size,), self.final_norm, RMS_EPS)
        logits = F.linear(last, self.lm_head)[0].float()
        return Prefill(new_kv, logits)

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
        return k.to(self.device, self.dtype), v.to(self.device, self.dtype)

    def _rotary(self, position: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The cosines and sines ``[n, head_dim]`` for absolute positions ``position .. position + n - 1``."""
        pos = torch.arange(position, position + n, device=self.device, dtype=torch.float64)
        angles = torch.outer(pos, self._inv_freq).float()
        angles = torch.cat((angles, angles), dim=1)
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def _causal_mask(self, n: int, position: int) -> torch.Tensor | None:
        """``None`` (plain causal) without context; else new token ``i`` sees keys ``<= position + i``."""
        if position == 0:
            return None
        if self.device.type == "cuda":
            from torch.nn.attention.bias import causal_lower_right

            # Lower-right causal bias lets SDPA use its flash kernel (GQA included) without a mask.
            return causal_lower_right(n, position + n)
        return torch.ones((n, position + n), dtype=torch.bool, device=self.device).tril(position)

    def _layer(
        self,
        w: LayerWeights,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        context: KV | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, d = x.shape[0], self.head_dim
        h = F.rms_norm(x, (self.hidden_size,), w.attn_norm, RMS_EPS)
        q, k, v = F.linear(h, w.qkv).split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=1)
        q = _rotate(q.view(n, self.heads, d).transpose(0, 1), cos, sin)
        k = _rotate(k.view(n, self.kv_heads, d).transpose(0, 1), cos, sin)
        v = v.view(n, self.kv_heads, d).transpose(0, 1).contiguous()  # not a view of the qkv buffer
        keys, values = k, v
        if context is not None:
            keys = torch.cat((context[0], k), dim=1)
            values = torch.cat((context[1], v), dim=1)
        attn = F.scaled_dot_product_attention(
            q.unsqueeze(0),
            keys.unsqueeze(0),
            values.unsqueeze(0),
            attn_mask=mask,
            is_causal=mask is None,
            enable_gqa=self.heads != self.kv_heads,
        )[0]
        x = x + F.linear(attn.transpose(0, 1).reshape(n, self.heads * d), w.o)
        h = F.rms_norm(x, (self.hidden_size,), w.mlp_norm, RMS_EPS)
        gate, up = F.linear(h, w.gate_up).chunk(2, dim=1)
        x = x + F.linear(F.silu(gate) * up, w.down)
        return x, k, v


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half form, as Hugging Face's Llama) of ``x`` ``[heads, n, d]``."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


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
