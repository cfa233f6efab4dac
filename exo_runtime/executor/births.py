"""Blocks' data where no copy supplies it: born blocks, regenerated corrupted ones, repaired copies.

A block the core computed is born: its data comes from the birth source (the engine's model, or
seeded data), is checksummed (its birth CRC, which every lossless copy must equal), encoded for its
tier and written. A corrupted copy is never used: the block is regenerated instead, as a real system
would recompute it, and a copy the core keeps in the corrupted tier is rewritten (repaired). Without
a birth source (``factory=None``) there is nothing to regenerate from: such a copy is marked stale
and recomputed when next used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from exo_runtime.executor.books import Books
from exo_runtime.executor.meters import Meters
from exo_runtime.executor.records import BIRTH, BirthSource, LinkGroup
from exo_runtime.executor.tiers import Tiers
from exo_runtime.executor.workspace import Workspace
from exo_runtime.integrity import birth_crcs, row_crcs
from exo_runtime.timing import Span


class BirthData:
    """Generates, encodes and records blocks' birth data.

    Args:
        tiers: the codecs and stores written.
        books: the copies and birth checksums.
        meters: where generating and encoding is counted.
        workspace: the scratch generated data is written to, and the bounce row a repair uses.
        factory: the birth source, ``None`` when a block's data is known only after its batch.
        elements: float32 elements of one block.
        raw_bytes: raw bytes (RAG text) of one block, after its encoded elements.
    """

    def __init__(
        self,
        tiers: Tiers,
        books: Books,
        meters: Meters,
        workspace: Workspace,
        factory: BirthSource | None,
        elements: int,
        raw_bytes: int,
    ) -> None:
        self.tiers = tiers
        self.books = books
        self.meters = meters
        self.ws = workspace
        self.factory = factory
        self.elements = elements
        self.raw_bytes = raw_bytes

    def regenerate(self, keys: Sequence[int], xs: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Write the birth data of ``keys``' blocks into ``xs`` and ``raw`` (untimed; needs a factory)."""
        assert self.factory is not None
        self.factory.birth(self.books.blocks_of(keys), xs, raw)

    def fill(self, k: int, blocks: list[int], rows: torch.Tensor, p: LinkGroup, idx: list[int]) -> None:
        """Generate ``blocks``' birth data, encode it for tier ``k`` into ``rows``; note ``p``'s records ``idx``."""
        ck, dst = self.tiers.codecs[k], self.tiers.stores[k]
        assert ck is not None and dst is not None
        ws = self.ws
        n = len(blocks)
        xs = ws.scratch[:n] if n <= ws.scratch_rows else torch.empty((n, self.elements))
        raw = rows[:, ck.nbytes : ck.nbytes + self.raw_bytes] if self.raw_bytes else None
        if self.factory is None:  # nothing to regenerate from: the copy stays stale until recomputed
            xs.zero_()
            if raw is not None:
                raw.zero_()
            got = ck.encode(xs, rows).tolist()
            crcs = row_crcs(rows, dst.slot_bytes)
            for j, i in enumerate(idx):
                p.note(i, crcs[j], got[j], False, True)
            return
        with Span(False) as sp:
            self.factory.birth(self.books.blocks_of(blocks), xs, raw)
        self.meters.birth_meter.add(4 * self.elements * n, sp.ns, n)
        birth_crc = self.books.birth_crc
        for b, c in zip(blocks, birth_crcs(xs, raw, self.raw_bytes), strict=True):
            birth_crc[b] = c
        got = self.meters.encode(ck, xs, rows)
        crcs = [birth_crc[b] for b in blocks] if ck.lossless else row_crcs(rows, dst.slot_bytes)
        for j, i in enumerate(idx):
            p.note(i, crcs[j], got[j], ck.lossless, False)
        self.meters.births += n

    def repair(self, s: int, b: int) -> None:
        """Rewrite, in place, a corrupted copy the core keeps in tier ``s``, from regenerated data."""
        store = self.tiers.stores[s]
        assert store is not None
        books = self.books
        c = books.copies[b][s]
        if self.factory is None:  # recomputed when next used (the engine's load finds it stale)
            c.stale = True
            books.unlist_copy(s, b)
            return
        p = LinkGroup(BIRTH, s, [b])
        p.reserve([c.slot])
        rows = self.ws.rows(self.ws.bounce_out, 1, self.tiers.stride(s))
        self.fill(s, [b], rows, p, [0])
        store.write([c.slot], rows)
        store.synchronize()
        new = books.copies[b][s] = p.copy(0)
        books.list_copy(s, b, new.slot, new.crc, new.bound, new.lossless)
