"""A BERT sentence encoder's shape (all-MiniLM-L6-v2's), and the FLOPs of embedding one chunk with it.

A ``rag_chunk`` payload's block is chunks of text, each with one embedding; a miss re-embeds the
block's chunks with this encoder (the runtime runs it: :mod:`exo_runtime.engine.encoder`). This
module is its torch-free description, shared by the runtime (which builds the network from it) and
the timed model (which costs a forward pass from it, :mod:`exo_sim.encode_cost`).

The network (BERT, post-LayerNorm): word, position and token-type embeddings summed and normalised;
per layer, ``query``, ``key``, ``value`` and ``output`` projections (hidden -> hidden, with biases),
bidirectional multi-head attention, a LayerNorm, an MLP (hidden -> intermediate -> hidden, GELU, with
biases) and a LayerNorm; the sentence embedding is the mean of the last layer's token states over the
real tokens, L2-normalised. all-MiniLM-L6-v2 (:data:`MINILM_L6`): 6 layers, hidden 384, 12 heads of
64, intermediate 1536, vocabulary 30,522, 512 positions, 2 token types.

FLOPs of one chunk of ``t`` tokens (``[CLS]`` and ``[SEP]`` included): ``2 x matmul_params x t`` for
the projections and the MLP, plus ``4 x layers x hidden x t^2`` for attention — every token attends
to every token of its own chunk (``t^2`` pairs; ``Q K^T`` and ``P V``, ``2 x hidden`` FLOPs each per
pair and layer over all heads). Chunks are encoded independently: a batch of ``k`` chunks costs ``k``
times one chunk, no attention across chunks. LayerNorms, softmax, GELU, the embedding sums and the
pooling (``O(t x hidden)`` each) are not counted: under 1 % of the FLOPs at 256 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_SEQ_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (``[CLS]`` and ``[SEP]`` included):
longer texts are truncated."""

ENCODE_BATCH_CHUNKS = 32
"""Chunks the runtime's encoder embeds per forward pass (a miss of more chunks takes several passes)."""

ENCODER_WEIGHT_BYTES = 4
"""Bytes per encoder weight as the runtime holds them: float32, on every device."""


@dataclass(frozen=True)
class EncoderArch:
    """A BERT encoder's shape (counts and element sizes; nothing here is in bytes)."""

    layers: int = 6
    hidden_size: int = 384
    attention_heads: int = 12
    intermediate_size: int = 1536
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        """Elements per attention head."""
        return self.hidden_size // self.attention_heads

    def matmul_params(self) -> int:
        """Weights a token is multiplied by: per layer Q, K, V, output (h x h each) and the MLP (2 x h x i)."""
        h, i = self.hidden_size, self.intermediate_size
        return self.layers * (4 * h * h + 2 * h * i)

    def flops_per_token(self) -> float:
        """The weights' FLOPs per token: ``2 x`` :meth:`matmul_params`."""
        return 2.0 * self.matmul_params()

    def flops_per_token_pair(self) -> float:
        """Attention's FLOPs per (query, key) pair of one chunk: ``QK^T`` and ``AV``, ``2 x hidden`` each, per layer."""
        return 4.0 * self.layers * self.hidden_size

    def flops_per_chunk(self, tokens: int) -> float:
        """FLOPs of encoding one chunk of ``tokens`` tokens: ``2 x matmul_params x t + 4 x layers x hidden x t^2``.

        Bidirectional attention: ``t^2`` (query, key) pairs. What is left out: see the module docstring.
        """
        t = float(tokens)
        return self.flops_per_token() * t + self.flops_per_token_pair() * t * t

    def embedding_params(self) -> int:
        """The embedding tables (word, position, token type): looked up row by row, not streamed."""
        return (self.vocab_size + self.max_positions + self.type_vocab_size) * self.hidden_size

    def layer_params(self) -> int:
        """Every layer's weights, biases and LayerNorms, plus the embedding LayerNorm: read once per forward pass."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
        return self.layers * per_layer + 2 * h

    def parameters(self) -> int:
        """All parameters (embeddings, layers, LayerNorms; no pooler)."""
        return self.embedding_params() + self.layer_params()


MINILM_L6 = EncoderArch()
"""all-MiniLM-L6-v2's architecture (its ``config.json``)."""


def flops_per_chunk(tokens: int, arch: EncoderArch = MINILM_L6) -> float:
    """FLOPs to encode one chunk of ``tokens`` tokens, ``[CLS]``/``[SEP]`` included (see :class:`EncoderArch`)."""
    return arch.flops_per_chunk(tokens)


def encoder_of(payload_cfg: Any) -> EncoderArch | None:
    """The encoder that embeds a payload's chunks: all-MiniLM-L6-v2 for ``rag_chunk``; ``None`` otherwise."""
    return MINILM_L6 if str(payload_cfg.kind) == "rag_chunk" else None


def chunk_tokens(payload_cfg: Any) -> int:
    """Tokens the encoder runs per chunk of a ``rag_chunk`` payload.

    ``tokens_per_chunk``, at most :data:`MAX_SEQ_TOKENS` (the encoder truncates longer chunks).
    """
    return min(int(payload_cfg.tokens_per_chunk), MAX_SEQ_TOKENS)


__all__ = [
    "ENCODER_WEIGHT_BYTES",
    "ENCODE_BATCH_CHUNKS",
    "MAX_SEQ_TOKENS",
    "MINILM_L6",
    "EncoderArch",
    "chunk_tokens",
    "encoder_of",
    "flops_per_chunk",
]
