"""How one link's additions are carried out: born, from staging, or along the cheapest copy path.

::

    born:          generate a chunk of blocks' data, encode it, write it (one batched write)
    staged:        the source row was read ahead into the staging pool: check it, write it
    same codec, source slab on the host (``copy_path == "source"``):
                   check each source row in place, then copy it straight into the destination
    same codec, destination slab on the host (``"destination"``):
                   the source reads each run of rows straight into the destination's slab; check them
    otherwise:     stream through a small reused bounce buffer: read a chunk (one batched read),
                   check it, re-encode it if the codec changes, write it (one batched write)

Each read releases the additions waiting on its slot (:mod:`~exo_runtime.executor.schedule`). A
corrupted source row is never used: the block is regenerated instead and the corrupted copy is queued
for repair.
"""

from __future__ import annotations

import torch

from exo_runtime.executor.births import BirthData
from exo_runtime.executor.books import Books
from exo_runtime.executor.checks import Checks
from exo_runtime.executor.linkio import LinkIO
from exo_runtime.executor.recode import Recoder
from exo_runtime.executor.records import BIRTH, LinkGroup, Release
from exo_runtime.executor.tiers import Tiers
from exo_runtime.executor.workspace import Workspace
from exo_runtime.stores.base import runs
from exo_runtime.stores.transfer import copy_path
from exo_runtime.timing import Span

Repairs = list[tuple[int, int]]
"""``(tier, key)`` of corrupted source copies found, to rewrite once the batch is recorded."""


class Copier:
    """Carries out a link group's additions.

    Args:
        tiers: the stores and codecs of both ends.
        books: the copies (source slots and records).
        io: timed, metered reads and writes.
        checks: checks every source row read.
        births: born and regenerated blocks' data.
        recoder: re-encodes rows whose codec changes.
        workspace: the bounce buffers a chunk goes through.
    """

    def __init__(
        self,
        tiers: Tiers,
        books: Books,
        io: LinkIO,
        checks: Checks,
        births: BirthData,
        recoder: Recoder,
        workspace: Workspace,
    ) -> None:
        self.tiers = tiers
        self.books = books
        self.io = io
        self.checks = checks
        self.births = births
        self.recoder = recoder
        self.ws = workspace
        self.active: LinkGroup | None = None
        """The group being carried out (whose write a full disk refused, when one did)."""

    def carry_out(self, p: LinkGroup, idx: list[int], release: Release, repairs: Repairs) -> None:
        """Carry out additions ``idx`` of ``p``: born, written from staging, or copied."""
        self.active = p
        ws = self.ws
        if p.src == BIRTH and self.births.factory is None:  # its data comes later (TierIO.store)
            for i in idx:
                p.stale[i] = True
            return
        if p.src == BIRTH:
            stride = self.tiers.stride(p.dst)
            per = ws.chunk_rows(stride)
            for a in range(0, len(idx), per):
                part = idx[a : a + per]
                rows = ws.rows(ws.bounce_out, len(part), stride)
                self.births.fill(p.dst, [p.blocks[i] for i in part], rows, p, part)
                self.io.write(p, [p.slots[i] for i in part], rows)
            return
        rest = []
        for i in idx:
            row = p.staged.get(i)
            if row is None:
                rest.append(i)
            else:
                self.deliver(p, [i], row, repairs)
        if not rest:
            return
        src, dst = self.tiers.stores[p.src], self.tiers.stores[p.dst]
        assert src is not None and dst is not None
        path = copy_path(src, dst)
        same = self.tiers.codecs[p.src] is self.tiers.codecs[p.dst]
        if path == "source" and same:  # the source slab's rows go straight to the destination
            self._from_source_view(p, rest, release, repairs)
            return
        if path == "destination" and same:  # the source fills the destination slab's rows itself
            view = dst.host_view()
            assert view is not None
            for a, first, r in runs([p.slots[i] for i in rest]):
                part = rest[a : a + r]
                rows = view[first : first + r]
                self.io.read(p.src, p.dst, [p.blocks[i] for i in part], rows)
                release(p, part)
                self.deliver(p, part, rows, repairs, written=True)
            return
        stride = self.tiers.stride(p.src, p.dst)
        per = ws.chunk_rows(stride)
        for a in range(0, len(rest), per):
            part = rest[a : a + per]
            rows = ws.rows(ws.bounce_in, len(part), stride)
            self.io.read(p.src, p.dst, [p.blocks[i] for i in part], rows)
            release(p, part)
            self.deliver(p, part, rows, repairs)

    def _from_source_view(self, p: LinkGroup, idx: list[int], release: Release, repairs: Repairs) -> None:
        """Same codec, host source: check each source row in place, then copy it straight over.

        The read is part of the write (one memcpy, or one DMA into a GPU slab): the link's time is
        the write's. A corrupted source row is never copied: the block is regenerated instead.
        """
        src, dst = self.tiers.stores[p.src], self.tiers.stores[p.dst]
        assert src is not None and dst is not None
        view = src.host_view()
        assert view is not None
        copies, s = self.books.copies, p.src
        meters = self.io.meters
        per = self.ws.chunk_rows(self.tiers.stride(p.src, p.dst), decoded=False)
        for a in range(0, len(idx), per):
            part = idx[a : a + per]
            blocks = [p.blocks[i] for i in part]
            cps = [copies[b][s] for b in blocks]
            for j, i in enumerate(part):
                p.keep(i, cps[j])
            bad = self.checks.check(s, blocks, cps, view, [c.slot for c in cps])
            bad_set = set(bad)
            good = [j for j in range(len(part)) if j not in bad_set]
            pairs = sorted((cps[j].slot, p.slots[part[j]]) for j in good)
            with Span(self.tiers.on_cuda(p.src, p.dst)) as span:
                for j0, first, r in runs([sl for sl, _ in pairs]):
                    dst.write([d for _, d in pairs[j0 : j0 + r]], view[first : first + r])
                dst.synchronize()
            nbytes = len(good) * dst.slot_bytes
            meters.read(p.src, p.dst).add(nbytes, 0, len(good))
            meters.write(p.src, p.dst).add(nbytes, span.ns, len(good), span.device_ns)
            release(p, part)
            if bad:  # regenerated, never copied
                for j in bad:
                    repairs.append((s, blocks[j]))
                self._regenerate(p, [part[j] for j in bad])

    def deliver(
        self,
        p: LinkGroup,
        idx: list[int],
        rows_in: torch.Tensor,
        repairs: Repairs,
        written: bool = False,
    ) -> None:
        """Check rows read for ``p.blocks[idx]``, re-encode them if needed, and write them.

        ``rows_in`` is never modified (it may be another store's slab); ``written`` says the rows
        already are the destination slots (a direct read), so only corrupted ones are rewritten.
        """
        s, k = p.src, p.dst
        blocks = [p.blocks[i] for i in idx]
        cps = [self.books.copies[b][s] for b in blocks]
        bad = self.checks.check(s, blocks, cps, rows_in)
        for j in bad:
            repairs.append((s, blocks[j]))
        cs, ck = self.tiers.codecs[s], self.tiers.codecs[k]
        assert cs is not None and ck is not None
        if cs.name != ck.name:
            self.recoder.reencode(p, idx, rows_in, cps, bad)
            return
        for j, i in enumerate(idx):
            p.keep(i, cps[j])
        if not bad:
            if not written:
                self.io.write(p, [p.slots[i] for i in idx], rows_in)
            return
        bad_set = set(bad)
        good = [j for j in range(len(idx)) if j not in bad_set]
        if good and not written:
            self.io.write(p, [p.slots[idx[j]] for j in good], rows_in[good])
        self._regenerate(p, [idx[j] for j in bad])

    def _regenerate(self, p: LinkGroup, idx: list[int]) -> None:
        """Write additions ``idx`` of ``p`` from regenerated data (their source rows were corrupted)."""
        fresh = torch.empty((len(idx), self.tiers.stride(p.dst)), dtype=torch.uint8)  # never a corrupted row
        self.births.fill(p.dst, [p.blocks[i] for i in idx], fresh, p, idx)
        self.io.write(p, [p.slots[i] for i in idx], fresh)
