"""The executor: carries out the decision core's moves with real bytes, a batch at a time.

The driver feeds requests to the shared :class:`~exo_sim.hierarchy.Hierarchy` (``record_moves=True``);
after each request (or part of one, when its moves would not fit the staging pool) it hands the new
moves to :meth:`Executor.apply`, which makes the memories agree with the core::

    apply(moves):
        for each block the moves touch:
            before = the tiers that physically hold it;  after = the tiers whose policy holds it now
            each tier in after - before is an addition, fed from the tier the moves carried it from
            (or born, when the core computed it); each tier in before - after is a removal
        group additions by link (source tier, destination tier), sources in slot order
        allocate every destination slot: free slots first, then slots this batch's removals give up
        an addition whose destination slot still holds a block another addition must read waits for
        that read; the others are ready
        stage (read into the staging pool) whatever durable additions wait on, so they are all ready
        repeat: take the ready additions of one link (durable tiers first, coldest first) and
            stream them through a small reused bounce buffer: read a chunk (one batched read), check
            it, re-encode it if the codec changes, write it (one batched write); each read releases
            the additions waiting on its slot
            when nothing is ready but some wait (a cycle: a promoted block and the victim that takes
            its slot), stage one waited-on source to break it
        free the removals' slots that were not reused; record the new copies (and manifest entries)

Ordering by these dependencies lets a tier give up a promoted block's slot to a demoted victim in the
same batch while a victim's cascade runs coldest first, each block read just before it is written:
blocks go through a bounce buffer of about :data:`STREAM_BYTES` and from source to destination while
still in the CPU's cache, as in a raw copy; only cycle breakers are staged. Nothing is allocated per
block: staging and bounce rows are views into buffers made once. Each batched read and write is
timed (``perf_counter_ns``; CUDA events when a GPU store takes part) and counted against its link;
codec work against its codec.

Keys and data. The core names a block's extra copies (a block recomputed while an older copy was
still resident, under prefix reuse) and a prompt's uncacheable partial block by keys of their own,
negative ints. A block's data is a function of its id (:class:`~exo_runtime.payload_data.BlockFactory`),
so a duplicate copy is born with, checked against and regenerated from its block's data (the core's
owner of the key, remembered here from its birth on); a partial block's from its key. A durable
tier's manifest lists blocks by id, one copy each: a duplicate copy is listed under its block's id
when no other copy of the block in that tier is (so a resumed run finds the block, whichever copy
survived), and a partial block is never listed (it lives only while its request runs). The core frees
a partial block at the end of its request without a move; the next batch frees its slot here.

A write the medium refuses for lack of space (ENOSPC, EFBIG, EDQUOT) undoes the batch — every block
stays where it was before it, which holds because durable writes come first and no slot of a
non-durable tier has been overwritten yet — and raises :class:`~exo_runtime.errors.DiskFullError`. A
read whose bytes are not the ones written (or, with ``integrity=full``, whose decoded values stray
beyond the copy's error bound) is reported corrupted and never used: the block is regenerated instead,
as a real system would recompute it, and a copy the core keeps in that tier is rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from exo_runtime.buffers import StagingPool, align_up, host_buffer
from exo_runtime.codecs import Codec
from exo_runtime.errors import DiskFullError
from exo_runtime.integrity import birth_crcs, row_crcs
from exo_runtime.manifest import Manifest
from exo_runtime.stores import Store
from exo_runtime.stores.base import runs
from exo_runtime.stores.file import NO_SPACE_ERRNOS
from exo_runtime.stores.transfer import copy_path
from exo_runtime.timing import CodecMeter, Meter, Span
from exo_sim.hierarchy import Hierarchy, Move

BIRTH = -1
"""Origin of a block that is computed (born) rather than copied from a tier."""

STREAM_BYTES = 1 << 20
"""Bytes of one streamed chunk: small enough to stay in cache between its read and its write."""

Entry = tuple[int, int, int, int, float, bool]


class BirthSource(Protocol):
    """Where a computed block's data comes from: the engine's model, or seeded data (``compute=seeded``).

    ``fill(blocks, x, raw)`` writes block ``blocks[i]``'s float32 elements into ``x[i]`` and its raw
    bytes (RAG text) into ``raw[i, :raw_bytes]``; a block's data must depend on the block alone.
    """

    def birth(self, blocks: Sequence[int], x: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Fill ``x[i]`` and ``raw[i]`` with block ``blocks[i]``'s data."""


@dataclass(slots=True)
class Copy:
    """One tier's copy of a block: its slot, the CRC-32 of its stored bytes, and its fidelity.

    ``bound`` is the bound on its decoded elements' distance from the birth data (the sum of the
    bounds of every lossy encoding on its way); ``lossless`` says no lossy codec ever touched it.
    """

    slot: int
    crc: int
    bound: float
    lossless: bool
    stale: bool = False
    """Its bytes are not the block's data (its KV is not computed yet, or it was copied from a
    corrupted source with nothing to regenerate it from): never served, never listed in a manifest."""


@dataclass
class _Plan:
    """One link group of a batch: blocks from tier ``src`` (or born) into tier ``dst``."""

    src: int
    dst: int
    blocks: list[int]
    slots: list[int] = field(default_factory=list)
    staged: dict[int, torch.Tensor] = field(default_factory=dict)
    crcs: list[int] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    lossless: list[bool] = field(default_factory=list)
    stale: list[bool] = field(default_factory=list)


@dataclass
class Corruption:
    """A copy whose bytes (or decoded values) were not what was written."""

    block: int
    tier: str
    slot: int
    reason: str


class Executor:
    """Applies the decision core's moves to real stores (see the module docstring).

    Args:
        hierarchy: the decision core (``record_moves=True``), shared with the driver.
        stores: one store per tier index, ``None`` for a bypassed tier.
        codecs: one codec per tier index, ``None`` for a bypassed tier.
        factory: where a computed block's data comes from, written as its move is applied; ``None``
            when it is known only after the batch (a prefix's KV, computed by the model after the
            cached prefix is loaded): the batch then gives such a block its slot, marked pending,
            and :meth:`store_births` writes its data once computed.
        staging: the host staging pool (for sources whose slots a batch reuses).
        scratch_bytes: float32 scratch for decoded elements (at least one block's worth is used).
        integrity: ``off``, ``checksum`` or ``full``.
        manifests: the manifest of each durable tier, by tier index.
        manifest_interval_s: how often dirty manifests are committed.
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        stores: list[Store | None],
        codecs: list[Codec | None],
        factory: BirthSource | None,
        staging: StagingPool,
        scratch_bytes: int,
        integrity: str,
        manifests: dict[int, Manifest],
        manifest_interval_s: float,
    ) -> None:
        self.h = hierarchy
        self.spec = hierarchy.spec
        self.stores = stores
        self.codecs = codecs
        self.factory = factory
        self.staging = staging
        self.integrity = integrity
        self.manifests = manifests
        self.manifest_interval_s = manifest_interval_s
        self.usable = [k for k, s in enumerate(stores) if s is not None]
        self.durable = [s is not None and s.durable for s in stores]
        self.hierarchy = hierarchy
        self.elements = self.spec.content.elements
        self.raw_bytes = self.spec.content.raw_bytes
        self.cuda = any(s is not None and s.device == "cuda" for s in stores)
        rows = max(1, scratch_bytes // (4 * self.elements))
        self.scratch_rows = rows
        self.scratch = torch.empty((rows, self.elements), dtype=torch.float32)
        self.scratch2 = (
            torch.empty((rows, self.elements), dtype=torch.float32) if integrity == "full" else None
        )
        widest = max(self._stride(k) for k in self.usable)
        self.bounce_bytes = align_up(max(STREAM_BYTES, widest))
        pinned = staging.pinned
        self.bounce_in = host_buffer(self.bounce_bytes, pinned)
        self.bounce_out = host_buffer(self.bounce_bytes, pinned)
        self.copies: dict[int, dict[int, Copy]] = {}
        self.birth_crc: dict[int, int] = {}
        self.data_of: dict[int, int] = {}
        """Key -> the block whose data it holds, for the duplicate copies held (absent: the key itself)."""
        self.transient: set[int] = set()
        """Keys of uncacheable (partial) blocks held: freed once the core has let them go."""
        self.listed: dict[int, dict[int, int]] = {k: {} for k in manifests}
        """Per durable tier: block id -> the key of the copy its manifest entry describes."""
        self.link_read: dict[tuple[int, int], Meter] = {}
        self.link_write: dict[tuple[int, int], Meter] = {}
        self.birth_meter = Meter()
        self.birth_write: dict[int, Meter] = {}
        self.codec_meters: dict[str, CodecMeter] = {}
        self.corruptions: list[Corruption] = []
        self.pending: set[int] = set()
        """Keys given slots whose data is not written yet (``factory=None``): see :meth:`store_births`."""
        self.reads_checked = 0
        self.births = 0
        self.batches = 0
        self.staged_blocks = 0
        self.max_batch_moves = 0
        self._active: _Plan | None = None
        self._last_commit = time.perf_counter()

    # ------------------------------------------------------------------ helpers
    def _stride(self, *tiers: int) -> int:
        stores = [self.stores[k] for k in tiers if k >= 0]
        width = max(s.row_bytes for s in stores if s is not None)
        align = max(s.row_align for s in stores if s is not None)
        return align_up(width, align) if align > 1 else width

    def _cuda(self, *tiers: int) -> bool:
        return any(k >= 0 and self.stores[k] is not None and self.stores[k].device == "cuda" for k in tiers)  # type: ignore[union-attr]

    def _codec_meter(self, name: str) -> CodecMeter:
        meter = self.codec_meters.get(name)
        if meter is None:
            meter = self.codec_meters[name] = CodecMeter()
        return meter

    @staticmethod
    def _view(buf: torch.Tensor, n: int, stride: int) -> torch.Tensor:
        return buf[: n * stride].view(n, stride)

    def staging_bytes_per_move(self) -> int:
        """Upper bound of staging bytes one move needs (one staged row)."""
        return max(self._stride(k) for k in self.usable)

    # ------------------------------------------------------------------ keys, data and manifests
    def _register(self, key: int) -> None:
        """A core key of its own (negative) is born: remember what it is while the core still knows."""
        h = self.h
        if key in h._transient:
            self.transient.add(key)
            return
        owner = h._owner.get(key)
        if owner is not None:
            self.data_of[key] = owner

    def _data(self, keys: Sequence[int]) -> list[int]:
        """The block ids whose data ``keys`` hold (a duplicate copy holds its block's)."""
        d = self.data_of
        return [d.get(b, b) for b in keys] if d else list(keys)

    def _list(self, k: int, b: int, slot: int, crc: int, bound: float, lossless: bool) -> None:
        """Record in tier ``k``'s manifest that ``slot`` holds key ``b``'s copy (see the module docstring)."""
        man = self.manifests.get(k)
        if man is None or b in self.transient:
            return
        block = self.data_of.get(b, b)
        listed = self.listed[k]
        cur = listed.get(block)
        if cur is not None and cur != b and k in self.copies.get(cur, {}):
            return  # another copy of the block is listed already
        listed[block] = b
        man.put(block, slot, crc, self.birth_crc.get(b, 0), bound, lossless)

    def _unlist(self, k: int, b: int) -> int | None:
        """Drop key ``b``'s entry from tier ``k``'s manifest, if it has one; return the block id it was under."""
        man = self.manifests.get(k)
        if man is None:
            return None
        block = self.data_of.get(b, b)
        listed = self.listed[k]
        if listed.get(block) != b:
            return None
        del listed[block]
        man.remove(block)
        return block

    def _relist(self, k: int, block: int) -> None:
        """List another copy of ``block`` that tier ``k`` still holds, if any (its listed copy left)."""
        if block in self.listed[k]:
            return
        keys = self.h._copies.get(block) or [block]
        for key in keys:
            c = self.copies.get(key, {}).get(k)
            if c is not None and not c.stale and self.data_of.get(key, key) == block:
                self._list(k, key, c.slot, c.crc, c.bound, c.lossless)
                return

    # ------------------------------------------------------------------ the batch
    def apply(self, moves: Sequence[Move]) -> None:
        """Carry out ``moves`` (one request's, or a part of one ending on an access) as one batch.

        Raises:
            DiskFullError: a durable write failed for lack of space; the batch was undone.
        """
        copies = self.copies
        origin: dict[int, dict[int, int]] = {}
        if self.transient:  # partial blocks the core freed at the end of their request (no move says so)
            resident = self.h.where
            for key in list(self.transient):
                if key not in resident:
                    held = copies.get(key)
                    if held:
                        origin[key] = {k: k for k in held}
                    else:
                        self.transient.discard(key)
        if not moves and not origin:
            return
        self.batches += 1
        self.max_batch_moves = max(self.max_batch_moves, len(moves))
        for b, src, dst, _, _ in moves:
            o = origin.get(b)
            if o is None:
                before = copies.get(b)
                o = origin[b] = {k: k for k in before} if before else {}
            if dst is not None:
                o[dst] = BIRTH if src is None else o[src]
        groups: dict[tuple[int, int], list[int]] = {}
        removals: dict[int, list[int]] = {}
        holds = self.hierarchy.holds
        empty: dict[int, Copy] = {}
        for b, o in origin.items():
            before = copies.get(b, empty)
            for k in self.usable:
                if holds(k, b):
                    if k not in before:
                        if b < 0 and o[k] == BIRTH:
                            self._register(b)
                        groups.setdefault((o[k], k), []).append(b)
                elif k in before:
                    removals.setdefault(k, []).append(b)
        plans = []
        for (s, k), blocks in groups.items():
            if s != BIRTH:
                blocks.sort(key=lambda b: copies[b][s].slot)
            plans.append(_Plan(s, k, blocks))
        plans.sort(key=lambda p: (not self.durable[p.dst], -p.dst))
        vacating = {k: [copies[b][k].slot for b in bs] for k, bs in removals.items()}
        reused: dict[int, set[int]] = {}
        unlisted: list[tuple[int, int, Entry]] = []
        repairs: list[tuple[int, int]] = []
        plan: _Plan | None = None
        self._active = None
        try:
            for plan in plans:
                n = len(plan.blocks)
                plan.slots = self._allocate(plan.dst, n, vacating, reused, removals, unlisted)
                plan.crcs, plan.bounds, plan.lossless, plan.stale = [0] * n, [0.0] * n, [False] * n, [False] * n
            self._schedule(plans, reused, repairs)
        except OSError as err:
            plan = self._active or plan  # the plan whose write failed (or whose slots were sought)
            if err.errno not in NO_SPACE_ERRNOS or plan is None:
                raise
            self._undo(plans, reused, unlisted)
            key = plan.blocks[0]
            block = self.data_of.get(key, key)
            where = [self.spec.tiers[k].name for k in sorted(copies.get(key, {}))]
            name = self.spec.tiers[plan.dst].name
            path = getattr(self.stores[plan.dst], "path", name)
            raise DiskFullError(
                f"writing block {block} to tier {name} ({path}) failed: {err.strerror or err}; "
                f"the batch was undone, so every block stays where it was (block {block} in "
                f"{', '.join(where) or 'no tier: it is recomputed when next needed'})"
            ) from None
        finally:
            self.staging.reset()
        self._record(plans, removals, reused)
        for s, b in repairs:
            if self.hierarchy.holds(s, b) and s in copies.get(b, {}):
                self._repair(s, b)
        self._maybe_commit()

    # ------------------------------------------------------------------ slots
    def _allocate(
        self,
        k: int,
        n: int,
        vacating: dict[int, list[int]],
        reused: dict[int, set[int]],
        removals: dict[int, list[int]],
        unlisted: list[tuple[int, int, Entry]],
    ) -> list[int]:
        """``n`` slots of tier ``k``: free ones first, then slots this batch's removals give up.

        A durable tier first commits its manifest (which lets the slots freed before it be reused);
        if that is not enough, the blocks this batch removes from it are dropped from the manifest,
        committed again, and their slots reused.
        """
        store = self.stores[k]
        assert store is not None
        man = self.manifests.get(k)
        if man is not None and store.free_slots < n:
            man.commit()
            self._last_commit = time.perf_counter()
        short = n - store.free_slots
        slots = [store.allocate() for _ in range(min(n, store.free_slots))]
        if short > 0:
            pool = vacating.get(k, [])
            if len(pool) < short:
                raise AssertionError(f"tier {store.name}: {short} slots short in one batch")
            take, vacating[k] = pool[:short], pool[short:]
            if man is not None:
                gone = set(take)
                for b in removals[k]:
                    block = self.data_of.get(b, b)
                    entry = man.entries.get(block) if self.listed[k].get(block) == b else None
                    if entry is not None and entry[0] in gone:
                        unlisted.append((k, b, entry))
                        self._unlist(k, b)
                man.commit()
                self._last_commit = time.perf_counter()
            reused.setdefault(k, set()).update(take)
            slots.extend(take)
        return slots

    def _undo(self, plans: list[_Plan], reused: dict[int, set[int]], unlisted: list[tuple[int, int, Entry]]) -> None:
        """Give back every slot this batch allocated; put back the manifest entries it dropped."""
        for p in plans:
            store = self.stores[p.dst]
            assert store is not None
            taken = reused.get(p.dst, set())
            for slot in p.slots:
                if slot not in taken:
                    store.free(slot)
        for k, b, entry in unlisted:
            block = self.data_of.get(b, b)
            self.manifests[k].restore(block, entry)
            self.listed[k][block] = b

    # ------------------------------------------------------------------ reads, codecs, writes
    def _read(self, s: int, k: int, blocks: list[int], rows: torch.Tensor) -> None:
        src = self.stores[s]
        assert src is not None
        with Span(self._cuda(s)) as span:
            src.read([self.copies[b][s].slot for b in blocks], rows)
            src.synchronize()
        meter = self.link_read.setdefault((s, k), Meter())
        meter.add(len(blocks) * src.slot_bytes, span.ns, len(blocks), span.device_ns)

    def _write(self, p: _Plan, slots: list[int], rows: torch.Tensor) -> None:
        dst = self.stores[p.dst]
        assert dst is not None
        with Span(self._cuda(p.src, p.dst)) as span:
            dst.write(slots, rows)
            dst.synchronize()
        meter = (
            self.birth_write.setdefault(p.dst, Meter())
            if p.src == BIRTH
            else self.link_write.setdefault((p.src, p.dst), Meter())
        )
        meter.add(len(slots) * dst.slot_bytes, span.ns, len(slots), span.device_ns)

    def _schedule(
        self, plans: list[_Plan], reused: dict[int, set[int]], repairs: list[tuple[int, int]]
    ) -> None:
        """Run every addition in an order that reads each reused slot before overwriting it."""
        copies = self.copies
        unread: dict[tuple[int, int], list[tuple[_Plan, int]]] = {}  # reused slot -> its readers
        for p in plans:
            taken = reused.get(p.src) if p.src != BIRTH else None
            if taken:
                for i, b in enumerate(p.blocks):
                    slot = copies[b][p.src].slot
                    if slot in taken:
                        unread.setdefault((p.src, slot), []).append((p, i))
        waiting: dict[tuple[int, int], list[tuple[_Plan, int]]] = {}
        ready: dict[int, list[int]] = {}
        for n, p in enumerate(plans):
            ready[n] = []
            for i, slot in enumerate(p.slots):
                key = (p.dst, slot)
                if key in unread:
                    waiting.setdefault(key, []).append((p, i))
                else:
                    ready[n].append(i)
        index = {id(p): n for n, p in enumerate(plans)}

        def release(p: _Plan, idx: list[int]) -> None:
            if p.src == BIRTH or not unread:
                return
            for i in idx:
                key = (p.src, copies[p.blocks[i]][p.src].slot)
                readers = unread.get(key)
                if readers is None:
                    continue
                readers.remove((p, i))
                if not readers:
                    del unread[key]
                    for q, j in waiting.pop(key, []):
                        ready[index[id(q)]].append(j)

        def stage(key: tuple[int, int]) -> None:
            for p, i in list(unread.get(key, [])):
                if i not in p.staged:
                    row = self.staging.rows(1, self._stride(p.src))
                    self._read(p.src, p.dst, [p.blocks[i]], row)
                    p.staged[i] = row
                    self.staged_blocks += 1
                release(p, [i])

        for key in [k for k in waiting if self.durable[k[0]]]:  # durable writes never wait
            stage(key)
        while True:
            pick = next((n for n, idx in ready.items() if idx), None)  # plans are in priority order
            if pick is not None:
                p, idx = plans[pick], sorted(ready[pick])
                ready[pick] = []
                self._run(p, idx, release, repairs)
                continue
            if not waiting:
                return
            stage(next(iter(waiting)))  # a cycle: stage one waited-on source to break it

    def _run(
        self,
        p: _Plan,
        idx: list[int],
        release: Any,
        repairs: list[tuple[int, int]],
    ) -> None:
        """Carry out additions ``idx`` of ``p``: born, written from staging, or streamed."""
        self._active = p
        if p.src == BIRTH and self.factory is None:  # its data comes later (store_births)
            for i in idx:
                p.stale[i] = True
            return
        if p.src == BIRTH:
            stride = self._stride(p.dst)
            per = max(1, min(self.scratch_rows, self.bounce_bytes // stride))
            for a in range(0, len(idx), per):
                part = idx[a : a + per]
                rows = self._view(self.bounce_out, len(part), stride)
                self._fill_births(p.dst, [p.blocks[i] for i in part], rows, p, part)
                self._write(p, [p.slots[i] for i in part], rows)
            return
        rest = []
        for i in idx:
            row = p.staged.get(i)
            if row is None:
                rest.append(i)
            else:
                self._finish(p, [i], row, repairs)
        if not rest:
            return
        src, dst = self.stores[p.src], self.stores[p.dst]
        assert src is not None and dst is not None
        path = copy_path(src, dst)
        same = self.codecs[p.src] is self.codecs[p.dst]
        if path == "source" and same:  # the source slab's rows go straight to the destination
            self._copy_from_view(p, rest, release, repairs)
            return
        if path == "destination" and same:  # the source fills the destination slab's rows itself
            view = dst.host_view()
            assert view is not None
            for a, first, r in runs([p.slots[i] for i in rest]):
                part = rest[a : a + r]
                rows = view[first : first + r]
                self._read(p.src, p.dst, [p.blocks[i] for i in part], rows)
                release(p, part)
                self._finish(p, part, rows, repairs, written=True)
            return
        stride = self._stride(p.src, p.dst)
        per = max(1, min(self.scratch_rows, self.bounce_bytes // stride))
        for a in range(0, len(rest), per):
            part = rest[a : a + per]
            rows = self._view(self.bounce_in, len(part), stride)
            self._read(p.src, p.dst, [p.blocks[i] for i in part], rows)
            release(p, part)
            self._finish(p, part, rows, repairs)

    def _copy_from_view(self, p: _Plan, idx: list[int], release: Any, repairs: list[tuple[int, int]]) -> None:
        """Same codec, host source: check each source row in place, then copy it straight over.

        The read is part of the write (one memcpy, or one DMA into a GPU slab): the link's time is
        the write's. A corrupted source row is never copied: the block is regenerated instead.
        """
        src, dst = self.stores[p.src], self.stores[p.dst]
        assert src is not None and dst is not None
        view = src.host_view()
        assert view is not None
        copies, s = self.copies, p.src
        per = max(1, self.bounce_bytes // self._stride(p.src, p.dst))
        for a in range(0, len(idx), per):
            part = idx[a : a + per]
            blocks = [p.blocks[i] for i in part]
            cps = [copies[b][s] for b in blocks]
            for j, i in enumerate(part):
                c = cps[j]
                p.crcs[i], p.bounds[i], p.lossless[i], p.stale[i] = c.crc, c.bound, c.lossless, c.stale
            bad = self._check(s, blocks, cps, view, [c.slot for c in cps]) if self.integrity != "off" else []
            bad_set = set(bad)
            good = [j for j in range(len(part)) if j not in bad_set]
            pairs = sorted((cps[j].slot, p.slots[part[j]]) for j in good)
            with Span(self._cuda(p.src, p.dst)) as span:
                for j0, first, r in runs([sl for sl, _ in pairs]):
                    dst.write([d for _, d in pairs[j0 : j0 + r]], view[first : first + r])
                dst.synchronize()
            nbytes = len(good) * dst.slot_bytes
            self.link_read.setdefault((p.src, p.dst), Meter()).add(nbytes, 0, len(good))
            self.link_write.setdefault((p.src, p.dst), Meter()).add(nbytes, span.ns, len(good), span.device_ns)
            release(p, part)
            if bad:  # regenerated, never copied
                for j in bad:
                    repairs.append((s, blocks[j]))
                fresh = torch.empty((len(bad), self._stride(p.dst)), dtype=torch.uint8)
                self._fill_births(p.dst, [blocks[j] for j in bad], fresh, p, [part[j] for j in bad])
                self._write(p, [p.slots[part[j]] for j in bad], fresh)

    def _finish(
        self,
        p: _Plan,
        idx: list[int],
        rows_in: torch.Tensor,
        repairs: list[tuple[int, int]],
        written: bool = False,
    ) -> None:
        """Check rows read for ``p.blocks[idx]``, re-encode them if needed, and write them.

        ``rows_in`` is never modified (it may be another store's slab); ``written`` says the rows
        already are the destination slots (a direct read), so only corrupted ones are rewritten.
        """
        s, k = p.src, p.dst
        blocks = [p.blocks[i] for i in idx]
        cps = [self.copies[b][s] for b in blocks]
        bad = self._check(s, blocks, cps, rows_in) if self.integrity != "off" else []
        for j in bad:
            repairs.append((s, blocks[j]))
        cs, ck = self.codecs[s], self.codecs[k]
        assert cs is not None and ck is not None
        if cs.name == ck.name:
            for j, i in enumerate(idx):
                c = cps[j]
                p.crcs[i], p.bounds[i], p.lossless[i], p.stale[i] = c.crc, c.bound, c.lossless, c.stale
            if not bad:
                if not written:
                    self._write(p, [p.slots[i] for i in idx], rows_in)
                return
            good = [j for j in range(len(idx)) if j not in set(bad)]
            if good and not written:
                self._write(p, [p.slots[idx[j]] for j in good], rows_in[good])
            fresh = torch.empty((len(bad), self._stride(k)), dtype=torch.uint8)  # regenerated, never used
            self._fill_births(k, [blocks[j] for j in bad], fresh, p, [idx[j] for j in bad])
            self._write(p, [p.slots[idx[j]] for j in bad], fresh)
            return
        dst = self.stores[k]
        assert dst is not None
        stride = self._stride(k)
        per = max(1, min(self.scratch_rows, self.bounce_bytes // stride))
        dec, enc = self._codec_meter(cs.name), self._codec_meter(ck.name)
        bad_set = set(bad)
        for a in range(0, len(idx), per):
            z = min(len(idx), a + per)
            rows_out = self._view(self.bounce_out, z - a, stride)
            xs = self.scratch[: z - a]
            with Span(False) as sp:
                cs.decode(rows_in[a:z], xs)
            dec.decode.add(4 * self.elements * (z - a), sp.ns, z - a)
            if self.raw_bytes:
                rows_out[:, ck.nbytes : ck.nbytes + self.raw_bytes].copy_(
                    rows_in[a:z, cs.nbytes : cs.nbytes + self.raw_bytes]
                )
            reborn = [j for j in range(a, z) if j in bad_set]
            if reborn:  # the corrupted blocks' data is regenerated (or left stale), never used
                raw = rows_out[:, ck.nbytes : ck.nbytes + self.raw_bytes] if self.raw_bytes else None
                for j in reborn:
                    one_raw = raw[j - a : j - a + 1] if raw is not None else None
                    if self.factory is None:
                        xs[j - a].zero_()
                    else:
                        self.factory.birth(self._data([blocks[j]]), xs[j - a : j - a + 1], one_raw)
            with Span(False) as sp:
                got = ck.encode(xs, rows_out).tolist()
            enc.encode.add(4 * self.elements * (z - a), sp.ns, z - a)
            crcs = row_crcs(rows_out, dst.slot_bytes)
            for j in range(a, z):
                i, e = idx[j], got[j - a]
                enc.max_error_bound = max(enc.max_error_bound, e)
                new = j in bad_set
                p.crcs[i] = crcs[j - a]
                p.bounds[i] = e if new else cps[j].bound + e
                p.lossless[i] = ck.lossless and (new or cps[j].lossless)
                p.stale[i] = (new and self.factory is None) or (not new and cps[j].stale)
            self._write(p, [p.slots[idx[j]] for j in range(a, z)], rows_out)

    def _fill_births(self, k: int, blocks: list[int], rows: torch.Tensor, p: _Plan, idx: list[int]) -> None:
        """Generate ``blocks``' birth data, encode it for tier ``k`` into ``rows``; fill ``p``'s records."""
        ck, dst = self.codecs[k], self.stores[k]
        assert ck is not None and dst is not None
        n = len(blocks)
        xs = self.scratch[:n] if n <= self.scratch_rows else torch.empty((n, self.elements))
        raw = rows[:, ck.nbytes : ck.nbytes + self.raw_bytes] if self.raw_bytes else None
        if self.factory is None:  # nothing to regenerate from: the copy stays stale until recomputed
            xs.zero_()
            if raw is not None:
                raw.zero_()
            got = ck.encode(xs, rows).tolist()
            crcs = row_crcs(rows, dst.slot_bytes)
            for j, i in enumerate(idx):
                p.crcs[i], p.bounds[i], p.lossless[i], p.stale[i] = crcs[j], got[j], False, True
            return
        with Span(False) as sp:
            self.factory.birth(self._data(blocks), xs, raw)
        self.birth_meter.add(4 * self.elements * n, sp.ns, n)
        for b, c in zip(blocks, birth_crcs(xs, raw, self.raw_bytes), strict=True):
            self.birth_crc[b] = c
        enc = self._codec_meter(ck.name)
        with Span(False) as sp:
            got = ck.encode(xs, rows).tolist()
        enc.encode.add(4 * self.elements * n, sp.ns, n)
        crcs = [self.birth_crc[b] for b in blocks] if ck.lossless else row_crcs(rows, dst.slot_bytes)
        for j, i in enumerate(idx):
            enc.max_error_bound = max(enc.max_error_bound, got[j])
            p.crcs[i], p.bounds[i], p.lossless[i], p.stale[i] = crcs[j], got[j], ck.lossless, False
        self.births += n

    def _repair(self, s: int, b: int) -> None:
        """Rewrite, in place, a corrupted copy the core keeps in tier ``s``, from regenerated data."""
        store = self.stores[s]
        assert store is not None
        c = self.copies[b][s]
        if self.factory is None:  # recomputed when next used (the engine's load finds it stale)
            c.stale = True
            self._unlist(s, b)
            return
        p = _Plan(BIRTH, s, [b], [c.slot], crcs=[0], bounds=[0.0], lossless=[False], stale=[False])
        rows = self._view(self.bounce_out, 1, self._stride(s))
        self._fill_births(s, [b], rows, p, [0])
        store.write([c.slot], rows)
        store.synchronize()
        self.copies[b][s] = Copy(c.slot, p.crcs[0], p.bounds[0], p.lossless[0])
        self._list(s, b, c.slot, p.crcs[0], p.bounds[0], p.lossless[0])

    # ------------------------------------------------------------------ integrity
    def _check(
        self,
        s: int,
        blocks: list[int],
        cps: list[Copy],
        rows: torch.Tensor,
        slots: list[int] | None = None,
    ) -> list[int]:
        """Indices of blocks whose bytes are not what was written (``full``: or stray beyond bound).

        ``rows[j]`` holds block ``j``; or, with ``slots``, ``rows[slots[j]]`` does (a slab checked in place).
        """
        store, codec = self.stores[s], self.codecs[s]
        assert store is not None and codec is not None
        crcs = row_crcs(rows, store.slot_bytes, slots)
        if slots is not None and self.integrity == "full":
            rows = rows[torch.tensor(slots, dtype=torch.long)]
        self.reads_checked += len(blocks)
        bad: list[int] = []
        for j, b in enumerate(blocks):
            c = cps[j]
            if c.stale:  # known not to hold the block's data: carried along, never served
                continue
            if crcs[j] != c.crc:
                reason = "stored bytes fail their checksum"
            elif c.lossless and codec.lossless and c.crc != self.birth_crc.get(b, c.crc):
                reason = "lossless copy differs from its birth checksum"
            else:
                continue
            bad.append(j)
            self.corruptions.append(Corruption(self.data_of.get(b, b), store.name, c.slot, reason))
        if self.integrity == "full":
            bad.extend(self._full_check(s, blocks, cps, rows, set(bad)))
        return sorted(bad)

    def _full_check(
        self, s: int, blocks: list[int], cps: list[Copy], rows: torch.Tensor, skip: set[int]
    ) -> list[int]:
        """Decode and compare with regenerated birth data against each copy's error bound."""
        codec, store = self.codecs[s], self.stores[s]
        assert codec is not None and store is not None and self.scratch2 is not None
        assert self.factory is not None, "integrity=full needs a birth source (runtime.compute=seeded)"
        meter = self._codec_meter(codec.name)
        bad: list[int] = []
        raw_ref = torch.empty((self.scratch_rows, max(1, self.raw_bytes)), dtype=torch.uint8)
        for a in range(0, len(blocks), self.scratch_rows):
            z = min(len(blocks), a + self.scratch_rows)
            xs, ref = self.scratch[: z - a], self.scratch2[: z - a]
            codec.decode(rows[a:z], xs)
            self.factory.birth(self._data(blocks[a:z]), ref, raw_ref)
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
                    block = self.data_of.get(blocks[a + j], blocks[a + j])
                    self.corruptions.append(Corruption(block, store.name, c.slot, reason))
        return bad

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, plans: list[_Plan], removals: dict[int, list[int]], reused: dict[int, set[int]]) -> None:
        """Free the removals' slots (unless reused) and record every new copy."""
        copies = self.copies
        relist: list[tuple[int, int]] = []
        left: list[int] = []
        for k, bs in removals.items():
            store = self.stores[k]
            assert store is not None
            taken = reused.get(k, set())
            for b in bs:
                held = copies[b]
                c = held.pop(k)
                if c.slot not in taken:
                    store.free(c.slot)
                block = self._unlist(k, b)
                if block is not None:
                    relist.append((k, block))
                if not held:
                    del copies[b]
                    left.append(b)
        for p in plans:
            for i, b in enumerate(p.blocks):
                stale = p.stale[i]
                copies.setdefault(b, {})[p.dst] = Copy(p.slots[i], p.crcs[i], p.bounds[i], p.lossless[i], stale)
                if stale:
                    if p.src == BIRTH and self.factory is None:
                        self.pending.add(b)
                else:
                    self._list(p.dst, b, p.slots[i], p.crcs[i], p.bounds[i], p.lossless[i])
        for b in left:  # a block that only changed tiers keeps what is known of it
            if b not in copies:
                self.birth_crc.pop(b, None)
                self.data_of.pop(b, None)
                self.transient.discard(b)
                self.pending.discard(b)
        for k, block in relist:
            self._relist(k, block)

    # ------------------------------------------------------------------ durability and checks
    def _maybe_commit(self) -> None:
        now = time.perf_counter()
        if now - self._last_commit >= self.manifest_interval_s:
            self.commit()

    def commit(self) -> None:
        """Commit every dirty manifest now."""
        for man in self.manifests.values():
            if man.dirty:
                man.commit()
        self._last_commit = time.perf_counter()

    def adopt(self, k: int, block: int, copy: Copy, birth_crc: int) -> None:
        """Record a copy recovered from an earlier run (its slot already claimed in the store)."""
        self.copies.setdefault(block, {})[k] = copy
        self.birth_crc[block] = birth_crc
        if k in self.listed:
            self.listed[k][block] = block

    def verify(self) -> None:
        """Check that the memories hold exactly what the decision core says, and each store's books.

        Raises:
            AssertionError: naming the first disagreement.
        """
        per_tier = [0] * len(self.stores)
        for b, copies in self.copies.items():
            for k in copies:
                per_tier[k] += 1
                if not self.hierarchy.holds(k, b):
                    raise AssertionError(f"block {b} is stored in tier {k} but the core has it elsewhere")
        for k in self.usable:
            store = self.stores[k]
            assert store is not None
            store.verify()
            held = self.hierarchy.held(k)
            if per_tier[k] != held or store.in_use != held:
                raise AssertionError(
                    f"tier {store.name}: the core holds {held} blocks, the executor {per_tier[k]}, "
                    f"the store {store.in_use} slots"
                )

    # ------------------------------------------------------------------ results
    def measured(self) -> dict[str, Any]:
        """Measured per-link bandwidth and per-codec throughput, for ``summary.json``."""
        names = [t.name for t in self.spec.tiers]
        links = []
        for key in sorted(set(self.link_read) | set(self.link_write)):
            r, w = self.link_read.get(key, Meter()), self.link_write.get(key, Meter())
            s, k = key
            ns = r.ns + w.ns
            links.append(
                {
                    "src": names[s],
                    "dst": names[k],
                    "src_medium": self.spec.tiers[s].medium,
                    "dst_medium": self.spec.tiers[k].medium,
                    "bytes": r.bytes,
                    "blocks": r.blocks,
                    "block_bytes": self.spec.tiers[s].block_bytes,
                    "read_s": r.ns / 1e9,
                    "write_s": w.ns / 1e9,
                    "seconds": ns / 1e9,
                    "bandwidth_gbps": r.bytes / ns if ns else None,
                    "read_ops": r.ops,
                    "write_ops": w.ops,
                    "device_s": (r.device_ns + w.device_ns) / 1e9 if self.cuda else None,
                }
            )
        codecs = []
        for name, m in sorted(self.codec_meters.items()):
            codecs.append(
                {
                    "codec": name,
                    "encode_bytes": m.encode.bytes,
                    "encode_s": m.encode.ns / 1e9,
                    "encode_gbps": m.encode.gbps,
                    "decode_bytes": m.decode.bytes,
                    "decode_s": m.decode.ns / 1e9,
                    "decode_gbps": m.decode.gbps,
                    "max_error_bound": m.max_error_bound,
                    "max_error_measured": m.max_error_measured,
                }
            )
        return {
            "links": links,
            "codecs": codecs,
            "births": {
                "blocks": self.births,
                "generate_bytes": self.birth_meter.bytes,
                "generate_s": self.birth_meter.ns / 1e9,
                "writes": [
                    {"dst": names[k], "bytes": m.bytes, "seconds": m.ns / 1e9, "bandwidth_gbps": m.gbps}
                    for k, m in sorted(self.birth_write.items())
                ],
                "note": "seeded birth data generated and written: the runtime's stand-in for recomputing",
            },
            "throughput_bytes_note": "codec bytes are float32 bytes of the elements (4 per element)",
        }


def recovered_copy(entry: Any) -> tuple[int, Copy, int]:
    """``(block, copy, birth_crc)`` from a manifest record."""
    return (
        int(entry["block"]),
        Copy(int(entry["slot"]), int(entry["crc"]), float(entry["error_bound"]), bool(entry["lossless"])),
        int(entry["birth_crc"]),
    )


__all__ = ["BIRTH", "Copy", "Corruption", "Executor", "recovered_copy"]
