"""Block size conversion: replay a trace recorded at one block size at a smaller one.

A trace names its blocks at its own granularity (Mooncake: one hash id per 512 tokens). To plan the
same trace at ``target_tokens`` per block, each source block of ``r <= source_tokens`` tokens is split,
deterministically, into ``ceil(r / target_tokens)`` blocks, all full but the last::

    k = source_tokens // target_tokens            (target must divide source)
    source block h, sub-block j (0 <= j < k)  ->  block id  h * k + j
    tokens of sub-block j                      =  min(target_tokens, r - j * target_tokens)

Equal source ids give equal sub-block ids (the reuse of the trace is kept, block for block), distinct
source ids never share a sub-block id, and ``k == 1`` leaves ids unchanged. Ids the converter hands
out are below :data:`FRESH_ID_BASE`; readers number the blocks a trace does not name (a request's
output) from there up, so the two can never collide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRESH_ID_BASE: int = 1 << 62
"""First id of blocks a reader creates itself (outputs); split trace ids always stay below it."""


class SplitRangeError(ValueError):
    """A source block id is negative or too large to split without leaving the id space."""

    def __init__(self, index: int, block: int, limit: int) -> None:
        self.index = index
        self.block = block
        self.limit = limit
        super().__init__(f"block id {block} is outside 0..{limit - 1}")


@dataclass(frozen=True)
class BlockSplit:
    """Split blocks of ``source_tokens`` tokens into blocks of ``target_tokens`` tokens.

    Raises:
        ValueError: if either size is not positive or ``target_tokens`` does not divide
            ``source_tokens`` (callers turn this into a :class:`~exo_sim.errors.ConfigError`).

    """

    source_tokens: int
    target_tokens: int

    def __post_init__(self) -> None:
        if self.source_tokens <= 0 or self.target_tokens <= 0:
            raise ValueError("block sizes must be > 0")
        if self.source_tokens % self.target_tokens:
            raise ValueError(
                f"{self.target_tokens} tokens per block does not divide the trace's "
                f"{self.source_tokens} tokens per block"
            )

    @property
    def factor(self) -> int:
        """Blocks each full source block becomes."""
        return self.source_tokens // self.target_tokens

    @property
    def id_limit(self) -> int:
        """Source ids must be below this so that every split id stays below :data:`FRESH_ID_BASE`."""
        return FRESH_ID_BASE // self.factor

    def split(self, blocks: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split source blocks (ids and token counts, in order) into target blocks.

        Args:
            blocks: source block ids, int64, each in ``0 .. id_limit - 1``.
            tokens: tokens each source block carries, ``1 .. source_tokens``.

        Returns:
            ``(ids, tokens, counts)``: target ids and tokens in order, and how many target blocks each
            source block became (so request offsets can be carried over with :meth:`offsets`).

        Raises:
            SplitRangeError: naming the first source block whose id is out of range.

        """
        blocks = np.asarray(blocks, dtype=np.int64)
        tokens = np.asarray(tokens, dtype=np.int64)
        limit = self.id_limit
        bad = (blocks < 0) | (blocks >= limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise SplitRangeError(i, int(blocks[i]), limit)
        k = self.factor
        if k == 1:
            return blocks.copy(), tokens.copy(), np.ones(blocks.shape[0], dtype=np.int64)
        t = self.target_tokens
        counts = (tokens + (t - 1)) // t
        total = int(counts.sum())
        starts = np.cumsum(counts) - counts
        sub = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
        ids = np.repeat(blocks, counts) * k + sub
        out_tokens = np.minimum(t, np.repeat(tokens, counts) - sub * t)
        return ids, out_tokens, counts

    @staticmethod
    def offsets(source_offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Request offsets over the target blocks, from offsets over the source blocks."""
        ends = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        return ends[np.asarray(source_offsets, dtype=np.int64)]


def whole_blocks(total_tokens: np.ndarray, block_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each run of ``total_tokens[i]`` tokens into blocks of ``block_tokens`` (last one partial).

    Returns:
        ``(counts, tokens)``: blocks per run, and the tokens of every block in order.

    """
    total_tokens = np.asarray(total_tokens, dtype=np.int64)
    counts = (total_tokens + (block_tokens - 1)) // block_tokens
    starts = np.cumsum(counts) - counts
    sub = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    tokens = np.minimum(block_tokens, np.repeat(total_tokens, counts) - sub * block_tokens)
    return counts, tokens
