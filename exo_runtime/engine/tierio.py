"""The engine's own reads and writes of block data in the tiers, on the executor's books.

The executor moves blocks between tiers; the engine does two more things with them:

* **load** a cached prefix from the tier that holds it (the top tier, after the batch promoted it):
  read each block's slot, verify it against the CRC-32C set when it was stored (every block, top-tier
  hits included), decode it into float32 rows — checksum and decode in one pass over the bytes, read
  in place from a host-memory slab. The first block that is stale or fails its checksum
  ends the usable prefix: it is reported (:class:`~exo_runtime.executor.Corruption`), marked stale so
  that nothing serves it, and it and every later block are recomputed by the caller.
* **store** computed blocks' data into the slots the batch gave them (``Executor.pending``) or into
  a stale copy being repaired: encode in the tier's codec, take the CRC-32C of the bytes written,
  list the copy in the tier's manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from exo_runtime.buffers import host_buffer
from exo_runtime.executor import Copy, Corruption, Executor
from exo_runtime.integrity import birth_crcs, row_crcs
from exo_runtime.native import fused_decoder, fused_rows
from exo_runtime.stores.base import runs
from exo_runtime.timing import Meter, Span

BlockData = tuple[torch.Tensor, torch.Tensor | None]
"""A block's data: float32 elements ``[elements]`` and its raw bytes (``None`` for a KV block)."""


class TierIO:
    """Loads prefixes out of tiers and stores computed blocks into them (see the module docstring).

    Args:
        executor: the executor whose stores, codecs and books are used.
        pinned: allocate the decode buffer in page-locked memory (a GPU loads from it on a copy stream).
    """

    def __init__(self, executor: Executor, pinned: bool = False) -> None:
        self.ex = executor
        self.pinned = pinned
        self.load_meter: dict[int, Meter] = {}
        """Per tier: bytes read out of it for a prefill, and the read + check + decode time."""
        self.store_meter: dict[int, Meter] = {}
        """Per tier: bytes of computed blocks encoded and written into it."""
        self._rows = torch.empty(0, dtype=torch.uint8)
        self._xs = torch.empty(0, dtype=torch.float32)

    def _staging(self, n: int, stride: int) -> torch.Tensor:
        """``n`` staging rows of ``stride`` bytes for a store that cannot be read in place (page-aligned: O_DIRECT)."""
        if self._rows.numel() < n * stride:
            self._rows = host_buffer(n * stride, self.pinned)
        return self._rows[: n * stride].view(n, stride)

    def _decoded(self, n: int) -> torch.Tensor:
        """``n`` float32 rows of a block's elements, the decode's output."""
        e = self.ex.elements
        if self._xs.numel() < n * e:
            self._xs = torch.empty(n * e, dtype=torch.float32, pin_memory=self.pinned)
        return self._xs[: n * e].view(n, e)

    # ------------------------------------------------------------------ load
    def load(self, k: int, keys: Sequence[int]) -> tuple[torch.Tensor, int]:
        """Read, verify and decode ``keys``' copies in tier ``k``; return ``(rows, usable)``.

        ``rows[:usable]`` (float32 ``[usable, elements]``, a view of a buffer reused by the next call)
        hold the leading blocks that passed; the block at ``usable`` (if any) was stale or corrupted
        and has been reported and marked stale.

        One pass over each block's bytes computes its CRC-32C and writes its float32 decode
        (:func:`~exo_runtime.native.fused_rows`). A store whose slab is host memory is read in place;
        any other (a file, GPU memory) is first copied into staging rows by its ``read``. Codecs
        without a fused decoder are checksummed in that pass and then decoded by torch. Copies from
        the first stale one on are not read at all.
        """
        ex = self.ex
        n = len(keys)
        store, codec = ex.stores[k], ex.codecs[k]
        assert store is not None and codec is not None
        xs = self._decoded(n)
        if n == 0:
            return xs, 0
        cps = [ex.copies[key][k] for key in keys]
        check = ex.integrity != "off"
        fused = fused_decoder(codec) is not None
        with Span(store.device == "cuda") as span:
            fresh = next((j for j, c in enumerate(cps) if c.stale), n)
            slots = [c.slot for c in cps[:fresh]]
            slab = store.host_view()
            if slab is None:
                src, which = self._staging(fresh, ex._stride(k)), list(range(fresh))
                store.read(slots, src)
                store.synchronize()
            else:
                src, which = slab, slots
            crcs = fused_rows(src, which, store.slot_bytes, codec if fused else None, xs, check) if fresh else []
            usable = fresh
            if check and crcs is not None:
                ex.reads_checked += fresh
                usable = next((j for j in range(fresh) if crcs[j] != cps[j].crc), fresh)
            if usable < n:
                reason = (
                    "copy holds no valid data (pending or copied from a corrupted source)"
                    if usable == fresh
                    else "stored bytes fail their checksum"
                )
                key = keys[usable]
                ex.corruptions.append(Corruption(ex.data_of.get(key, key), store.name, cps[usable].slot, reason))
                cps[usable].stale = True
                ex._unlist(k, key)
            if usable and not fused:
                for i, s, r in runs(which[:usable]):
                    codec.decode(src[s : s + r], xs[i : i + r])
        self.load_meter.setdefault(k, Meter()).add(usable * store.slot_bytes, span.ns, usable, span.device_ns)
        dec = ex._codec_meter(codec.name)
        dec.decode.add(4 * ex.elements * usable, 0, usable)
        return xs, usable

    # ------------------------------------------------------------------ store
    def store(self, data: Mapping[int, BlockData], keys: Sequence[int] | None = None) -> int:
        """Write ``data`` (block id -> its data) into every stale copy of ``keys`` (default: the pending ones).

        A key's data is looked up under the block it holds (a duplicate copy under its block's id).
        Returns the copies written.

        Raises:
            KeyError: a pending key whose block has no data in ``data``.
        """
        ex = self.ex
        todo = sorted(ex.pending) if keys is None else list(keys)
        per_tier: dict[int, list[tuple[int, Copy]]] = {}
        for key in todo:
            for k, c in ex.copies.get(key, {}).items():
                if c.stale:
                    per_tier.setdefault(k, []).append((key, c))
        written = 0
        for k, items in sorted(per_tier.items()):
            written += self._store_tier(k, items, data)
        for key in todo:
            ex.pending.discard(key)
        return written

    def _store_tier(self, k: int, items: list[tuple[int, Copy]], data: Mapping[int, BlockData]) -> int:
        ex = self.ex
        store, codec = ex.stores[k], ex.codecs[k]
        assert store is not None and codec is not None
        n = len(items)
        stride = ex._stride(k)
        rows = torch.zeros((n, stride), dtype=torch.uint8)
        xs = torch.empty((n, ex.elements), dtype=torch.float32)
        raw = rows[:, codec.nbytes : codec.nbytes + ex.raw_bytes] if ex.raw_bytes else None
        for j, (key, _) in enumerate(items):
            x, r = data[ex.data_of.get(key, key)]
            xs[j].copy_(x.reshape(-1))
            if raw is not None and r is not None:
                raw[j].copy_(r[: ex.raw_bytes])
        births = birth_crcs(xs, raw, ex.raw_bytes)
        enc = ex._codec_meter(codec.name)
        with Span(False) as sp:
            bounds = codec.encode(xs, rows).tolist()
        enc.encode.add(4 * ex.elements * n, sp.ns, n)
        crcs = births if codec.lossless else row_crcs(rows, store.slot_bytes)
        with Span(store.device == "cuda") as span:
            store.write([c.slot for _, c in items], rows)
            store.synchronize()
        self.store_meter.setdefault(k, Meter()).add(n * store.slot_bytes, span.ns, n, span.device_ns)
        for j, (key, c) in enumerate(items):
            enc.max_error_bound = max(enc.max_error_bound, bounds[j])
            ex.birth_crc[key] = births[j]
            new = Copy(c.slot, crcs[j], bounds[j], codec.lossless)
            ex.copies[key][k] = new
            ex._list(k, key, new.slot, new.crc, new.bound, new.lossless)
        ex.births += n
        return n


__all__ = ["BlockData", "TierIO"]
