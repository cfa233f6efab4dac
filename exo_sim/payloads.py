"""Payloads: what a block of tokens holds before any codec is applied.

A block of ``block_tokens`` tokens has some floating-point elements (which a codec encodes) and some
raw bytes (stored as they are):

* ``kv_cache``: ``2 x layers x kv_heads x head_dim`` elements per token (K and V, per KV head — GQA
  models have far fewer KV heads than attention heads, so the hidden size is the wrong figure).
  Under tensor parallelism each rank holds ``kv_heads / tensor_parallel`` heads, or one replicated
  head when ``tensor_parallel`` is a multiple of ``kv_heads`` (any other ratio is refused by
  :func:`exo_sim.spec.build_spec`); figures are per rank.
* ``rag_chunk``: whole chunks of text (``chunk_chars x text_bytes_per_char`` raw bytes) each with one
  ``embedding_dim`` vector; a block holds ``block_tokens / tokens_per_chunk`` chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from exo_sim.config import PayloadConfig

PAYLOAD_KINDS = ("kv_cache", "rag_chunk")


@dataclass(frozen=True)
class BlockContent:
    """What one block holds: ``elements`` floats for the codec plus ``raw_bytes`` stored as is."""

    elements: int
    raw_bytes: int


def kv_heads_per_rank(payload: PayloadConfig) -> int:
    """KV heads one tensor-parallel rank holds (heads are replicated when TP exceeds them)."""
    tp = max(1, int(payload.tensor_parallel))
    return max(1, -(-int(payload.kv_heads) // tp))


def block_content(payload: PayloadConfig, block_tokens: int) -> BlockContent:
    """Elements and raw bytes of one block of ``block_tokens`` tokens (per rank for KV caches).

    Assumes the payload was validated by :func:`exo_sim.spec.build_spec`.
    """
    if payload.kind == "kv_cache":
        per_token = 2 * int(payload.layers) * kv_heads_per_rank(payload) * int(payload.head_dim)
        return BlockContent(elements=per_token * block_tokens, raw_bytes=0)
    chunks = block_tokens // int(payload.tokens_per_chunk)
    return BlockContent(
        elements=chunks * int(payload.embedding_dim),
        raw_bytes=chunks * int(payload.chunk_chars) * int(payload.text_bytes_per_char),
    )
