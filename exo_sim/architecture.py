"""A Llama-style decoder's shape, and what its weights cost in bytes at a given precision.

One :class:`Architecture` sizes three things: the KV cache (``2 x layers x kv_heads x head_dim``
elements per token), the weights a GPU holds besides the KV cache, and the FLOPs of a forward pass
(``2 x`` :meth:`Architecture.matmul_params_per_rank` per token, attention aside).

The model (per layer): ``q_proj`` hidden -> heads x head_dim, ``k_proj`` and ``v_proj`` hidden ->
kv_heads x head_dim, ``o_proj`` heads x head_dim -> hidden, a gated MLP (``gate_proj`` and
``up_proj`` hidden -> intermediate, ``down_proj`` intermediate -> hidden), two RMSNorms of hidden
weights; then a final RMSNorm, the token embedding (vocab x hidden) and ``lm_head`` (hidden -> vocab;
shared with the embedding when ``tied_embeddings``). No biases (Llama has none).

Tensor parallelism (Megatron style, as vLLM shards Llama): every linear layer is split over
``tensor_parallel`` ranks, attention by head; norms are replicated; the embedding and ``lm_head``
are split by vocabulary (``ceil(vocab / tp)`` rows per rank; vLLM also pads the vocabulary to a
multiple of 64 per rank, which is not counted). When ``tensor_parallel`` exceeds ``kv_heads`` the KV
heads are replicated, one per rank, as vLLM does; ``tensor_parallel`` must then be a multiple of
``kv_heads`` (and otherwise divide it) — :func:`architecture_problem` says so.

Weight precisions (:func:`weight_bytes_per_rank`), all counted exactly:

* ``bf16`` / ``fp16``: 2 bytes per parameter, everything.
* ``fp8``: linear layers' weights 1 byte each plus one float32 scale per output channel (per rank),
  as vLLM's per-channel FP8 checkpoints store them; embedding, ``lm_head`` and norms stay bf16.
* ``int8``: linear layers' weights 1 byte each plus one fp16 scale per group of ``group_size``
  input elements per output channel (symmetric, no zero point); embedding, ``lm_head`` and norms
  stay bf16.
* ``int4``: the AWQ/GPTQ layout — linear layers' weights packed two per byte, plus, per group of
  ``group_size`` input elements per output channel, one fp16 scale (2 bytes) and one 4-bit zero point
  packed with the others (0.5 byte); embedding, ``lm_head`` and norms stay bf16 (AWQ and GPTQ leave
  them unquantized). A row whose input does not split evenly into groups counts its last, partial
  group whole.

Activation scales, GPTQ's ``g_idx`` (act-order) and a checkpoint's metadata are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
"""Weight precisions :func:`weight_bytes_per_rank` knows."""

_BF16_BYTES = 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Architecture:
    """A Llama-style decoder's shape (per model, not per rank).

    Sizes are counts (layers, heads) or element counts (``hidden_size``, ``head_dim``); nothing here
    is in bytes. ``tensor_parallel`` is the number of ranks the model is split over; every ``*_per_rank``
    figure is one rank's share. Assumes the shape is consistent (see :func:`architecture_problem`).
    """

    layers: int
    hidden_size: int
    intermediate_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    tensor_parallel: int = 1
    tied_embeddings: bool = False

    def heads_per_rank(self) -> int:
        """Attention (query) heads one rank computes."""
        return self.attention_heads // self.tensor_parallel

    def kv_heads_per_rank(self) -> int:
        """KV heads one rank holds: ``kv_heads / tp``, or 1 (replicated) when tp exceeds them."""
        return max(1, self.kv_heads // self.tensor_parallel)

    def _linear_shapes_per_rank(self) -> list[tuple[int, int]]:
        """(input elements, output channels) of one layer's linear weights on one rank."""
        h, tp = self.hidden_size, self.tensor_parallel
        q = self.heads_per_rank() * self.head_dim
        kv = self.kv_heads_per_rank() * self.head_dim
        i = self.intermediate_size // tp
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def _linear_params_per_rank(self) -> int:
        """Per-layer linear weights of every layer on one rank (no embedding, no lm_head)."""
        return self.layers * sum(a * b for a, b in self._linear_shapes_per_rank())

    def _norm_params(self) -> int:
        """RMSNorm weights: two per layer and the final one (replicated on every rank)."""
        return (2 * self.layers + 1) * self.hidden_size

    def _vocab_rows_per_rank(self) -> int:
        return _ceil_div(self.vocab_size, self.tensor_parallel)

    def _embedding_params_per_rank(self) -> int:
        """Embedding plus lm_head on one rank (counted once when they are tied)."""
        one = self._vocab_rows_per_rank() * self.hidden_size
        return one if self.tied_embeddings else 2 * one

    def params(self) -> int:
        """Parameters of the whole model (Llama-3-8B: 8,030,261,248)."""
        whole = Architecture(
            self.layers, self.hidden_size, self.intermediate_size, self.attention_heads,
            self.kv_heads, self.head_dim, self.vocab_size, 1, self.tied_embeddings,
        )
        return whole.params_per_rank()

    def params_per_rank(self) -> int:
        """Parameters one rank holds: linear weights / tp, norms replicated, vocab rows / tp.

        With KV heads replicated (tp > kv_heads) the ranks together hold more than :meth:`params`.
        """
        return self._linear_params_per_rank() + self._norm_params() + self._embedding_params_per_rank()

    def matmul_params_per_rank(self) -> int:
        """Weights one rank multiplies per token: every layer's linear weights plus lm_head's rows.

        A forward pass costs ``2 x`` this many FLOPs per token on a rank, attention's score and
        value products aside. The embedding is a lookup, not a matmul, and is not counted; lm_head
        is, tied or not.
        """
        return self._linear_params_per_rank() + self._vocab_rows_per_rank() * self.hidden_size

    def kv_elements_per_token_per_rank(self) -> int:
        """KV-cache elements one token costs on one rank: ``2 x layers x kv_heads_per_rank x head_dim``."""
        return 2 * self.layers * self.kv_heads_per_rank() * self.head_dim


def architecture_of(payload_cfg: Any) -> Architecture | None:
    """The architecture a ``kv_cache`` payload config describes; ``None`` for ``rag_chunk``.

    Also ``None`` for a ``kv_cache`` payload that gives only its KV shape (``hidden_size`` etc. left
    at 0): such a payload sizes the KV cache but no weights. Does not validate; see
    :func:`architecture_problem`.
    """
    if str(payload_cfg.kind) != "kv_cache":
        return None
    hidden = int(getattr(payload_cfg, "hidden_size", 0) or 0)
    if hidden == 0:
        return None
    return Architecture(
        layers=int(payload_cfg.layers),
        hidden_size=hidden,
        intermediate_size=int(payload_cfg.intermediate_size),
        attention_heads=int(payload_cfg.attention_heads),
        kv_heads=int(payload_cfg.kv_heads),
        head_dim=int(payload_cfg.head_dim),
        vocab_size=int(payload_cfg.vocab_size),
        tensor_parallel=int(payload_cfg.tensor_parallel),
        tied_embeddings=bool(getattr(payload_cfg, "tied_embeddings", False)),
    )


def architecture_problem(arch: Architecture) -> tuple[str, str] | None:
    """The first inconsistency in ``arch`` as ``(field, problem)``, or ``None`` when it is sound.

    ``problem`` ends a sentence that starts with the field's name (``"must be > 0, got 0"``).
    """
    for name in ("layers", "hidden_size", "intermediate_size", "attention_heads", "kv_heads",
                 "head_dim", "vocab_size", "tensor_parallel"):
        value = getattr(arch, name)
        if value <= 0:
            return name, f"must be > 0, got {value}"
    if arch.attention_heads * arch.head_dim != arch.hidden_size:
        return "hidden_size", (
            f"is {arch.hidden_size}, but attention_heads x head_dim = {arch.attention_heads} x "
            f"{arch.head_dim} = {arch.attention_heads * arch.head_dim}; a Llama-style model has them equal"
        )
    if arch.attention_heads % arch.kv_heads:
        return "kv_heads", (
            f"is {arch.kv_heads}, which does not divide attention_heads ({arch.attention_heads}); "
            "each KV head serves a whole group of query heads"
        )
    tp = arch.tensor_parallel
    if arch.kv_heads % tp and tp % arch.kv_heads:
        return "tensor_parallel", (
            f"is {tp}, which neither divides kv_heads ({arch.kv_heads}) nor is a multiple of it; "
            "KV heads are split evenly over the ranks, or replicated when there are more ranks than heads"
        )
    if arch.attention_heads % tp:
        return "tensor_parallel", (
            f"is {tp}, which does not divide attention_heads ({arch.attention_heads})"
        )
    if arch.intermediate_size % tp:
        return "tensor_parallel", (
            f"is {tp}, which does not divide intermediate_size ({arch.intermediate_size})"
        )
    return None


def weight_bytes_per_rank(arch: Architecture, weight_dtype: str, group_size: int) -> int:
    """Bytes of the weights one rank holds at ``weight_dtype`` (see the module doc for the layouts).

    ``group_size`` (input elements per quantization group) matters to ``int8`` and ``int4`` only.

    Raises:
        ValueError: for an unknown ``weight_dtype`` or a ``group_size`` < 1.

    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"unknown weight dtype {weight_dtype!r} (known: {', '.join(WEIGHT_DTYPES)})")
    if weight_dtype in ("bf16", "fp16"):
        return _BF16_BYTES * arch.params_per_rank()
    unquantized = _BF16_BYTES * (arch._norm_params() + arch._embedding_params_per_rank())
    shapes = arch._linear_shapes_per_rank()
    per_layer = 0
    for inputs, outputs in shapes:
        if weight_dtype == "fp8":
            per_layer += inputs * outputs + 4 * outputs
        else:
            if group_size < 1:
                raise ValueError(f"group_size must be >= 1, got {group_size}")
            groups = _ceil_div(inputs, group_size) * outputs
            if weight_dtype == "int8":
                per_layer += inputs * outputs + 2 * groups
            else:  # int4: packed weights + fp16 scale + packed 4-bit zero per group
                per_layer += _ceil_div(inputs * outputs, 2) + 2 * groups + _ceil_div(groups, 2)
    return unquantized + arch.layers * per_layer
