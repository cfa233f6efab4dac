"""Host buffers the runtime reuses: page-aligned, page-locked when a GPU exists, never per block.

Staging rows handed to a store are views into one :class:`StagingPool`, carved afresh for each batch
of moves by a bump allocator (:meth:`StagingPool.rows`) and given back all at once
(:meth:`StagingPool.reset`): nothing is allocated per block. Every region starts on a
:data:`ALIGN_BYTES` boundary, which is what ``O_DIRECT`` file I/O requires of its buffers.
"""

from __future__ import annotations

import torch

ALIGN_BYTES = 4096
"""Alignment of every staging region and of file-tier rows (a page; ``O_DIRECT``'s strictest need)."""


def align_up(n: int, align: int = ALIGN_BYTES) -> int:
    """``n`` rounded up to a multiple of ``align``."""
    return -(-n // align) * align


def host_buffer(nbytes: int, pinned: bool) -> torch.Tensor:
    """A 1-D uint8 host tensor of ``nbytes`` whose first byte is :data:`ALIGN_BYTES`-aligned.

    Args:
        nbytes: size in bytes.
        pinned: allocate page-locked memory (``cudaHostAlloc`` through torch); only with a GPU.
    """
    raw = torch.empty(nbytes + ALIGN_BYTES, dtype=torch.uint8, pin_memory=pinned)
    offset = (-raw.data_ptr()) % ALIGN_BYTES
    return raw[offset : offset + nbytes]


class StagingFull(RuntimeError):
    """A batch asked the staging pool for more than it holds (the executor sizes batches to avoid it)."""


class StagingPool:
    """One reusable host buffer of ``nbytes``, handed out as aligned 2-D row regions.

    Args:
        nbytes: pool size in bytes.
        pinned: page-locked (only when a GPU exists, so that device copies are true DMA).
    """

    def __init__(self, nbytes: int, pinned: bool) -> None:
        self.nbytes = nbytes
        self.pinned = pinned
        self.buffer = host_buffer(nbytes, pinned)
        self._top = 0

    def reset(self) -> None:
        """Give every region back (the next batch reuses the same bytes)."""
        self._top = 0

    @property
    def used_bytes(self) -> int:
        """Bytes handed out since the last :meth:`reset`."""
        return self._top

    def rows(self, n: int, stride_bytes: int) -> torch.Tensor:
        """A ``(n, stride_bytes)`` uint8 view starting on an aligned byte; :class:`StagingFull` if none.

        A stride that is a multiple of :data:`ALIGN_BYTES` keeps every row aligned.
        """
        start = self._top
        end = start + n * stride_bytes
        if end > self.nbytes:
            raise StagingFull(f"staging pool of {self.nbytes} bytes cannot hold {n} rows of {stride_bytes}")
        self._top = min(self.nbytes, align_up(end))
        return self.buffer[start:end].view(n, stride_bytes)

    @staticmethod
    def region_bytes(n: int, stride_bytes: int) -> int:
        """Pool bytes :meth:`rows` consumes for ``n`` rows (alignment padding included)."""
        return align_up(n * stride_bytes)
