"""Birth data of blocks: seeded random tensors of the payload's real shape, reproducible at will.

A block's data depends only on ``(seed, block id)``, so the runtime can regenerate any block — to
recompute one the decision core dropped, or to check a decoded block against its original
(``runtime.integrity=full``). Every block is born in float32 (the codecs' input):

* ``kv_cache``: K and V, shape ``(2, layers, block_tokens, kv_heads_per_rank, head_dim)``, standard
  normal values;
* ``rag_chunk``: per chunk, ``chunk_chars x text_bytes_per_char`` bytes of printable ASCII text (stored
  raw by every codec) and one ``embedding_dim`` embedding normalised to unit length, as sentence
  encoders such as MiniLM emit them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from exo_sim.config import PayloadConfig
from exo_sim.payloads import block_content, kv_heads_per_rank

_MASK64 = (1 << 64) - 1


def block_seed(seed: int, block: int) -> int:
    """A 63-bit generator seed for ``block`` under the run's ``seed`` (splitmix64 of the pair)."""
    z = (seed * 0x9E3779B97F4A7C15 + (block & _MASK64) + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


class BlockFactory:
    """Generates blocks' birth data (see the module docstring).

    Args:
        payload: the payload config (validated).
        block_tokens: tokens per block.
        seed: the run's seed.
    """

    def __init__(self, payload: PayloadConfig, block_tokens: int, seed: int) -> None:
        content = block_content(payload, block_tokens)
        self.elements = content.elements
        self.raw_bytes = content.raw_bytes
        self.seed = int(seed)
        self.kind = str(payload.kind)
        self._gen = torch.Generator()
        if self.kind == "kv_cache":
            self.shape: tuple[int, ...] = (
                2,
                int(payload.layers),
                block_tokens,
                kv_heads_per_rank(payload),
                int(payload.head_dim),
            )
            self.chunks = 0
        else:
            self.chunks = block_tokens // int(payload.tokens_per_chunk)
            self.shape = (self.chunks, int(payload.embedding_dim))

    def birth(self, blocks: Sequence[int], x: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Fill ``x[i]`` (float32 elements) and ``raw[i, :raw_bytes]`` with block ``blocks[i]``'s data."""
        gen = self._gen
        for i, b in enumerate(blocks):
            gen.manual_seed(block_seed(self.seed, b))
            row = x[i]
            torch.randn(self.elements, generator=gen, out=row)
            if self.chunks:
                emb = row.view(self.chunks, -1)
                emb.div_(emb.norm(dim=1, keepdim=True).clamp_min_(1e-12))
                if raw is not None and self.raw_bytes:
                    text = torch.randint(32, 127, (self.raw_bytes,), generator=gen, dtype=torch.uint8)
                    raw[i, : self.raw_bytes].copy_(text)
