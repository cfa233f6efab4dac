"""The executor's buffers, made once: float32 scratch for decoded elements and two bounce buffers.

Nothing is allocated per block: staging rows (:class:`~exo_runtime.buffers.StagingPool`) and bounce rows
are views into buffers made once. A streamed chunk is about :data:`STREAM_BYTES`, so that blocks go
from source to destination while still in the CPU's cache, as in a raw copy; a chunk that is decoded
or generated is also no more rows than the scratch holds.
"""

from __future__ import annotations

import torch

from exo_runtime.buffers import align_up, host_buffer

STREAM_BYTES = 1 << 20
"""Bytes of one streamed chunk: small enough to stay in cache between its read and its write."""


class Workspace:
    """Scratch and bounce buffers sized once for a run.

    Args:
        elements: float32 elements of one block.
        scratch_bytes: float32 scratch for decoded elements (at least one block's worth is used).
        widest_bytes: the widest row any link moves (a bounce buffer holds at least one).
        pinned: page-locked bounce buffers (only when a GPU exists).
        full: also make the second scratch ``integrity=full`` compares against.
    """

    def __init__(self, elements: int, scratch_bytes: int, widest_bytes: int, pinned: bool, full: bool) -> None:
        rows = max(1, scratch_bytes // (4 * elements))
        self.scratch_rows = rows
        self.scratch = torch.empty((rows, elements), dtype=torch.float32)
        self.scratch2 = torch.empty((rows, elements), dtype=torch.float32) if full else None
        self.bounce_bytes = align_up(max(STREAM_BYTES, widest_bytes))
        self.bounce_in = host_buffer(self.bounce_bytes, pinned)
        self.bounce_out = host_buffer(self.bounce_bytes, pinned)

    def chunk_rows(self, stride: int, decoded: bool = True) -> int:
        """Rows of ``stride`` bytes in one chunk: what a bounce buffer holds (and, if ``decoded``, the scratch)."""
        fit = self.bounce_bytes // stride
        return max(1, min(self.scratch_rows, fit) if decoded else fit)

    @staticmethod
    def rows(buf: torch.Tensor, n: int, stride: int) -> torch.Tensor:
        """The first ``n`` rows of ``stride`` bytes of bounce buffer ``buf``."""
        return buf[: n * stride].view(n, stride)
