"""Checks of what a read gave back: the bytes written, and with ``integrity=full`` values within bound.

A read whose bytes are not the ones written (their CRC-32 is not the copy's; or, for a copy no lossy
codec touched, not its block's birth CRC) — or, with ``integrity=full``, whose decoded values stray
beyond the copy's error bound from regenerated birth data — is reported corrupted
(:class:`~exo_runtime.executor.records.Corruption`) and never used: the block is regenerated instead
(:mod:`~exo_runtime.executor.births`). A stale copy is known not to hold its block's data: it is carried
along, never checked, never served.
"""

from __future__ import annotations

import torch

from exo_runtime.executor.births import BirthData
from exo_runtime.executor.books import Books
from exo_runtime.executor.meters import Meters
from exo_runtime.executor.records import Copy, Corruption
from exo_runtime.executor.tiers import Tiers
from exo_runtime.executor.workspace import Workspace
from exo_runtime.integrity import row_crcs


class Checks:
    """Checks rows read from a tier against their copies' records; keeps the corruptions found.

    Args:
        mode: ``off``, ``checksum`` or ``full``.
        tiers: the stores and codecs read.
        books: the birth checksums and what each key's data is.
        births: regenerates the reference data ``full`` compares against.
        meters: where the largest decoded error measured is kept, per codec.
        workspace: the scratch decoded and reference values go to.
        raw_bytes: raw bytes (RAG text) of one block, after its encoded elements.
    """

    def __init__(
        self,
        mode: str,
        tiers: Tiers,
        books: Books,
        births: BirthData,
        meters: Meters,
        workspace: Workspace,
        raw_bytes: int,
    ) -> None:
        self.mode = mode
        self.tiers = tiers
        self.books = books
        self.births = births
        self.meters = meters
        self.ws = workspace
        self.raw_bytes = raw_bytes
        self.corruptions: list[Corruption] = []
        self.reads_checked = 0

    def check(
        self,
        s: int,
        blocks: list[int],
        cps: list[Copy],
        rows: torch.Tensor,
        slots: list[int] | None = None,
    ) -> list[int]:
        """Indices of blocks whose bytes are not what was written (``full``: or stray beyond bound).

        ``rows[j]`` holds block ``j``; or, with ``slots``, ``rows[slots[j]]`` does (a slab checked in
        place). With ``integrity=off`` nothing is checked (no index is returned).
        """
        if self.mode == "off":
            return []
        store, codec = self.tiers.stores[s], self.tiers.codecs[s]
        assert store is not None and codec is not None
        crcs = row_crcs(rows, store.slot_bytes, slots)
        if slots is not None and self.mode == "full":
            rows = rows[torch.tensor(slots, dtype=torch.long)]
        self.reads_checked += len(blocks)
        birth_crc = self.books.birth_crc
        bad: list[int] = []
        for j, b in enumerate(blocks):
            c = cps[j]
            if c.stale:  # known not to hold the block's data: carried along, never served
                continue
            if crcs[j] != c.crc:
                reason = "stored bytes fail their checksum"
            elif c.lossless and codec.lossless and c.crc != birth_crc.get(b, c.crc):
                reason = "lossless copy differs from its birth checksum"
            else:
                continue
            bad.append(j)
            self.corruptions.append(Corruption(self.books.block_of(b), store.name, c.slot, reason))
        if self.mode == "full":
            bad.extend(self._full_check(s, blocks, cps, rows, set(bad)))
        return sorted(bad)

    def _full_check(
        self, s: int, blocks: list[int], cps: list[Copy], rows: torch.Tensor, skip: set[int]
    ) -> list[int]:
        """Decode and compare with regenerated birth data against each copy's error bound."""
        codec, store = self.tiers.codecs[s], self.tiers.stores[s]
        ws = self.ws
        assert codec is not None and store is not None and ws.scratch2 is not None
        assert self.births.factory is not None, "integrity=full needs a birth source (runtime.compute=seeded)"
        meter = self.meters.codec(codec.name)
        bad: list[int] = []
        raw_ref = torch.empty((ws.scratch_rows, max(1, self.raw_bytes)), dtype=torch.uint8)
        for a in range(0, len(blocks), ws.scratch_rows):
            z = min(len(blocks), a + ws.scratch_rows)
            xs, ref = ws.scratch[: z - a], ws.scratch2[: z - a]
            codec.decode(rows[a:z], xs)
            self.births.regenerate(blocks[a:z], ref, raw_ref)
            err = (xs - ref).abs().amax(dim=1).to(torch.float64).tolist()
            for j, e in enumerate(err):
                c = cps[a + j]
                meter.max_error_measured = max(meter.max_error_measured or 0.0, e)
                raw_ok = True
                if self.raw_bytes:
                    got = rows[a + j, codec.nbytes : codec.nbytes + self.raw_bytes]
                    raw_ok = bool(torch.equal(got, raw_ref[j, : self.raw_bytes]))
                within = e == 0.0 if c.lossless else e <= c.bound * (1 + 1e-6)
                if a + j not in skip and not (within and raw_ok):
                    bad.append(a + j)
                    reason = f"decoded error {e:.3g} exceeds its bound {c.bound:.3g}"
                    self.corruptions.append(Corruption(self.books.block_of(blocks[a + j]), store.name, c.slot, reason))
        return bad
