"""Re-encoding rows read from one tier's codec into another's, a chunk at a time.

A chunk of source rows is decoded into float32 scratch, any raw bytes (RAG text) are carried over as
they are, and the chunk is encoded for the destination into a bounce buffer and written. The new
copy's error bound is the source copy's plus this encoding's; it stays lossless only if both are. A
corrupted source row is never re-encoded: its block's data is regenerated in its place (or, with
nothing to regenerate it from, the new copy is marked stale).
"""

from __future__ import annotations

import torch

from exo_runtime.executor.births import BirthData
from exo_runtime.executor.linkio import LinkIO
from exo_runtime.executor.meters import Meters
from exo_runtime.executor.records import Copy, LinkGroup
from exo_runtime.executor.tiers import Tiers
from exo_runtime.executor.workspace import Workspace
from exo_runtime.integrity import row_crcs


class Recoder:
    """Decodes rows from their source codec and encodes them for their destination's.

    Args:
        tiers: the stores and codecs of both ends.
        births: regenerates a corrupted source row's block.
        meters: where codec work is counted.
        io: writes the re-encoded rows.
        workspace: the scratch and bounce buffer a chunk goes through.
        raw_bytes: raw bytes (RAG text) of one block, after its encoded elements.
    """

    def __init__(
        self, tiers: Tiers, births: BirthData, meters: Meters, io: LinkIO, workspace: Workspace, raw_bytes: int
    ) -> None:
        self.tiers = tiers
        self.births = births
        self.meters = meters
        self.io = io
        self.ws = workspace
        self.raw_bytes = raw_bytes

    def reencode(self, p: LinkGroup, idx: list[int], rows_in: torch.Tensor, cps: list[Copy], bad: list[int]) -> None:
        """Re-encode and write additions ``idx`` of ``p``, read into ``rows_in`` from copies ``cps``.

        ``bad`` are the indices (into ``idx``) of corrupted source rows; ``rows_in`` is never modified.
        """
        s, k = p.src, p.dst
        blocks = [p.blocks[i] for i in idx]
        cs, ck, dst = self.tiers.codecs[s], self.tiers.codecs[k], self.tiers.stores[k]
        assert cs is not None and ck is not None and dst is not None
        ws, nraw = self.ws, self.raw_bytes
        stride = self.tiers.stride(k)
        per = ws.chunk_rows(stride)
        bad_set = set(bad)
        for a in range(0, len(idx), per):
            z = min(len(idx), a + per)
            rows_out = ws.rows(ws.bounce_out, z - a, stride)
            xs = ws.scratch[: z - a]
            self.meters.decode(cs, rows_in[a:z], xs)
            if nraw:
                rows_out[:, ck.nbytes : ck.nbytes + nraw].copy_(rows_in[a:z, cs.nbytes : cs.nbytes + nraw])
            reborn = [j for j in range(a, z) if j in bad_set]
            if reborn:  # the corrupted blocks' data is regenerated (or left stale), never used
                raw = rows_out[:, ck.nbytes : ck.nbytes + nraw] if nraw else None
                for j in reborn:
                    one_raw = raw[j - a : j - a + 1] if raw is not None else None
                    if self.births.factory is None:
                        xs[j - a].zero_()
                    else:
                        self.births.regenerate([blocks[j]], xs[j - a : j - a + 1], one_raw)
            got = self.meters.encode(ck, xs, rows_out)
            crcs = row_crcs(rows_out, dst.slot_bytes)
            for j in range(a, z):
                i, e = idx[j], got[j - a]
                if j in bad_set:
                    p.note(i, crcs[j - a], e, ck.lossless, self.births.factory is None)
                else:
                    c = cps[j]
                    p.note(i, crcs[j - a], c.bound + e, ck.lossless and c.lossless, c.stale)
            self.io.write(p, [p.slots[idx[j]] for j in range(a, z)], rows_out)
