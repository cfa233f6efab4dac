"""A link's batched reads and writes: one call to the store each, timed and counted against the link.

A read gathers the source slots of some blocks into rows; a write scatters rows into destination slots
and waits for them to land (``synchronize``), so the time measured is the copy's whole time. A span
that touches GPU memory also records CUDA events (:class:`~exo_runtime.timing.Span`).
"""

from __future__ import annotations

import torch

from exo_runtime.executor.meters import Meters
from exo_runtime.executor.records import Copy, LinkGroup
from exo_runtime.executor.tiers import Tiers
from exo_runtime.timing import Span


class LinkIO:
    """Timed, metered reads and writes of the rows of a link.

    Args:
        tiers: the stores read and written.
        copies: the executor's books of copies (key -> tier -> copy), for the source slots.
        meters: where each read and write is counted.
    """

    def __init__(self, tiers: Tiers, copies: dict[int, dict[int, Copy]], meters: Meters) -> None:
        self.tiers = tiers
        self.copies = copies
        self.meters = meters

    def read(self, s: int, k: int, blocks: list[int], rows: torch.Tensor) -> None:
        """Read the copies of ``blocks`` in tier ``s`` into ``rows`` (counted against link ``s`` -> ``k``)."""
        src = self.tiers.stores[s]
        assert src is not None
        with Span(self.tiers.on_cuda(s)) as span:
            src.read([self.copies[b][s].slot for b in blocks], rows)
            src.synchronize()
        self.meters.read(s, k).add(len(blocks) * src.slot_bytes, span.ns, len(blocks), span.device_ns)

    def write(self, p: LinkGroup, slots: list[int], rows: torch.Tensor) -> None:
        """Write ``rows`` into ``slots`` of tier ``p.dst`` (counted against ``p``'s link, or its births)."""
        dst = self.tiers.stores[p.dst]
        assert dst is not None
        with Span(self.tiers.on_cuda(p.src, p.dst)) as span:
            dst.write(slots, rows)
            dst.synchronize()
        self.meters.write(p.src, p.dst).add(len(slots) * dst.slot_bytes, span.ns, len(slots), span.device_ns)
