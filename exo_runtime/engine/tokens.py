"""Token ids from a trace: a block's tokens are a deterministic function of its id.

A trace names blocks, not text. In a Mooncake trace a block's hash id names its whole prefix (the
hash chains over every earlier block), and exo's generated workloads give ids the same meaning, so
making a block's tokens a function of its id alone makes the same prefix always yield the same
tokens — which is what a prefix cache relies on.

**The function.** Block ``b`` (any int64; negative ids are taken modulo 2^64) under ``seed`` has the
token sequence read from a Philox-4x64 counter-based generator (numpy's
:class:`numpy.random.Philox`) keyed by the two 64-bit words ``(b mod 2^64, seed mod 2^64)``: each
raw 64-bit output ``r`` becomes the id ``((r >> 32) x vocab_size) >> 32`` in ``[0, vocab_size)``
(a multiply-shift; its bias is below ``vocab_size / 2^32``). Only the bit generator's raw stream is
used, which numpy keeps stable across versions (``Generator`` methods may change). A partial block
of ``tokens < block_tokens`` tokens takes the first ``tokens`` ids of the same sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_MASK64 = (1 << 64) - 1


def block_token_ids(
    block_id: int, block_tokens: int, vocab_size: int, tokens: int | None = None, seed: int = 0
) -> np.ndarray:
    """The token ids of block ``block_id``: int64 ``[tokens]`` (``block_tokens`` by default).

    Raises:
        ValueError: for ``vocab_size`` outside ``[1, 2^32)`` or ``tokens`` outside ``[0, block_tokens]``.

    """
    if not 1 <= vocab_size < 1 << 32:
        raise ValueError(f"vocab_size must lie in [1, 2^32), got {vocab_size}")
    count = block_tokens if tokens is None else tokens
    if not 0 <= count <= block_tokens:
        raise ValueError(f"tokens must lie in [0, {block_tokens}], got {tokens}")
    key = np.array([int(block_id) & _MASK64, int(seed) & _MASK64], dtype=np.uint64)
    raw = np.random.Philox(key=key).random_raw(count)
    ids = ((raw >> np.uint64(32)) * np.uint64(vocab_size)) >> np.uint64(32)
    return ids.astype(np.int64)


def request_token_ids(
    blocks: Sequence[int] | np.ndarray,
    tokens: Sequence[int] | np.ndarray,
    block_tokens: int,
    vocab_size: int,
    seed: int = 0,
) -> torch.Tensor:
    """A request's prompt: its blocks' ids concatenated, int64 ``[sum(tokens)]`` on the CPU.

    Args:
        blocks: the block ids the request references, in order.
        tokens: tokens each block carries (``block_tokens``, fewer for a partial last block), as a
            :class:`~exo_sim.workloads.base.RequestChunk`'s ``tokens`` column gives them.
        block_tokens: tokens per full block.
        vocab_size: the model's vocabulary.
        seed: mixed into every block's key (0 unless a run wants other text for the same trace).

    Raises:
        ValueError: when ``blocks`` and ``tokens`` differ in length, or as :func:`block_token_ids`.

    """
    if len(blocks) != len(tokens):
        raise ValueError(f"{len(blocks)} blocks but {len(tokens)} token counts")
    parts = [
        block_token_ids(int(b), block_tokens, vocab_size, int(t), seed) for b, t in zip(blocks, tokens, strict=True)
    ]
    if not parts:
        return torch.empty(0, dtype=torch.int64)
    return torch.from_numpy(np.concatenate(parts))
