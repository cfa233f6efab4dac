"""The executor: carries out the decision core's moves with real bytes, a batch at a time.

The driver feeds requests to the shared :class:`~exo_sim.hierarchy.Hierarchy` (``record_moves=True``);
after each request (or part of one, when its moves would not fit the staging pool) it hands the new
moves to :meth:`Executor.apply`, which makes the memories agree with the core::

    apply(moves):
        for each block the moves touch:
            before = the tiers that physically hold it;  after = the tiers whose policy holds it now
            each tier in after - before is an addition, fed from the tier the moves carried it from
            (or born, when it was computed); each tier in before - after is a removal
        group additions by link (source tier, destination tier)
        read every group's sources into staging (one batched read per link), check their checksums
        decode / re-encode where the codec changes (or generate births), batched per link
        write every destination, durable tiers first, coldest first, each link in one batched write
        (slots come from the free list, then from this batch's removals in the same tier)
        free the removals' slots; record the new copies (and the manifest entries of durable tiers)

Reading every source before writing any destination is what lets a tier give up a promoted block's
slot to a demoted victim in the same batch. Nothing is allocated per block: staging rows are views
into one reused pool. Each batched read and write is timed (``perf_counter_ns``; CUDA events when a
GPU store takes part) and counted against its link; codec work against its codec.

A write that the medium refuses for lack of space (ENOSPC, EFBIG, EDQUOT) undoes the batch — every
block stays where it was before it, which is possible because durable writes come first, before any
slot of a removal is reused — and raises :class:`~exo_runtime.errors.DiskFullError`. A read whose
bytes are not the ones written (or, with ``integrity=full``, whose decoded values stray beyond the
codec's bound) is reported corrupted and never used: the block is regenerated instead, as a real
system would recompute it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from exo_runtime.buffers import StagingPool, align_up
from exo_runtime.codecs import Codec
from exo_runtime.errors import DiskFullError
from exo_runtime.integrity import birth_crcs, row_crcs
from exo_runtime.manifest import Manifest
from exo_runtime.payload_data import BlockFactory, block_seed
from exo_runtime.stores import Store
from exo_runtime.stores.file import NO_SPACE_ERRNOS
from exo_runtime.timing import CodecMeter, Meter, Span
from exo_sim.hierarchy import Hierarchy, Move

BIRTH = -1
"""Origin of a block that is computed (born) rather than copied from a tier."""


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


@dataclass
class _Prepared:
    """A group of blocks ready to be written into tier ``dst``: their encoded rows and records."""

    src: int
    dst: int
    blocks: list[int]
    rows: torch.Tensor
    crcs: list[int]
    bounds: list[float]
    lossless: list[bool]
    slots: list[int] = field(default_factory=list)


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
        factory: the blocks' birth data.
        staging: the host staging pool.
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
        factory: BlockFactory,
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
        self.policies = [hierarchy.policies[k] for k in range(len(stores))]
        self.elements = factory.elements
        self.raw_bytes = factory.raw_bytes
        self.cuda = any(s is not None and s.device == "cuda" for s in stores)
        rows = max(1, scratch_bytes // (4 * self.elements))
        self.scratch_rows = rows
        self.scratch = torch.empty((rows, self.elements), dtype=torch.float32)
        self.scratch2 = (
            torch.empty((rows, self.elements), dtype=torch.float32) if integrity == "full" else None
        )
        self.copies: dict[int, dict[int, Copy]] = {}
        self.birth_crc: dict[int, int] = {}
        self.link_read: dict[tuple[int, int], Meter] = {}
        self.link_write: dict[tuple[int, int], Meter] = {}
        self.birth_meter = Meter()
        self.birth_write: dict[int, Meter] = {}
        self.codec_meters: dict[str, CodecMeter] = {}
        self.corruptions: list[Corruption] = []
        self.reads_checked = 0
        self.births = 0
        self.batches = 0
        self.max_batch_moves = 0
        self._last_commit = time.perf_counter()

    # ------------------------------------------------------------------ helpers
    def _stride(self, *tiers: int) -> int:
        stores = [self.stores[k] for k in tiers]
        width = max(s.row_bytes for s in stores if s is not None)
        align = max(s.row_align for s in stores if s is not None)
        return align_up(width, align) if align > 1 else width

    def _cuda(self, *tiers: int) -> bool:
        return any(self.stores[k] is not None and self.stores[k].device == "cuda" for k in tiers if k >= 0)  # type: ignore[union-attr]

    def _codec_meter(self, name: str) -> CodecMeter:
        meter = self.codec_meters.get(name)
        if meter is None:
            meter = self.codec_meters[name] = CodecMeter()
        return meter

    def staging_bytes_per_move(self) -> int:
        """Upper bound of staging bytes one move needs (a read row and an encoded row)."""
        return 2 * max(self._stride(k) for k in self.usable)

    # ------------------------------------------------------------------ the batch
    def apply(self, moves: Sequence[Move]) -> None:
        """Carry out ``moves`` (one request's, or a part of one ending on an access) as one batch.

        Raises:
            DiskFullError: a durable write failed for lack of space; the batch was undone.
        """
        if not moves:
            return
        self.batches += 1
        self.max_batch_moves = max(self.max_batch_moves, len(moves))
        copies = self.copies
        origin: dict[int, dict[int, int]] = {}
        for b, src, dst, _, _ in moves:
            o = origin.get(b)
            if o is None:
                before = copies.get(b)
                o = origin[b] = {k: k for k in before} if before else {}
            if dst is not None:
                o[dst] = BIRTH if src is None else o[src]
        groups: dict[tuple[int, int], list[int]] = {}
        removals: dict[int, list[int]] = {}
        policies = self.policies
        empty: dict[int, Copy] = {}
        for b, o in origin.items():
            before = copies.get(b, empty)
            for k in self.usable:
                inside = b in policies[k]  # type: ignore[operator]
                if inside:
                    if k not in before:
                        groups.setdefault((o[k], k), []).append(b)
                elif k in before:
                    removals.setdefault(k, []).append(b)
        try:
            prepared: list[_Prepared] = []
            births: dict[int, list[int]] = {}
            for (s, k), blocks in groups.items():
                if s == BIRTH:
                    births.setdefault(k, []).extend(blocks)
                else:
                    bad = self._transfer_in(s, k, blocks, prepared)
                    for b in bad:  # regenerate it; repair the bad copy if the core keeps one there
                        births.setdefault(k, []).append(b)
                        if b in policies[s]:  # type: ignore[operator]
                            removals.setdefault(s, []).append(b)
                            births.setdefault(s, []).append(b)
            for k, blocks in births.items():
                prepared.append(self._born(k, blocks))
            self._write_all(prepared, removals)
        finally:
            self.staging.reset()
        self._maybe_commit()

    def _transfer_in(self, s: int, k: int, blocks: list[int], prepared: list[_Prepared]) -> list[int]:
        """Read ``blocks`` from tier ``s`` and prepare them for tier ``k``; return the corrupted ones."""
        src = self.stores[s]
        assert src is not None
        cps = [self.copies[b][s] for b in blocks]
        order = sorted(range(len(blocks)), key=lambda i: cps[i].slot)
        blocks = [blocks[i] for i in order]
        cps = [cps[i] for i in order]
        cs, ck = self.codecs[s], self.codecs[k]
        assert cs is not None and ck is not None
        same = cs.name == ck.name
        n = len(blocks)
        rows_in = self.staging.rows(n, self._stride(s, k) if same else self._stride(s))
        with Span(self._cuda(s)) as span:
            src.read([c.slot for c in cps], rows_in)
            src.synchronize()
        self.link_read.setdefault((s, k), Meter()).add(n * src.slot_bytes, span.ns, n, span.device_ns)

        bad: list[int] = []
        if self.integrity != "off":
            bad = self._check(s, blocks, cps, rows_in)
        if bad:
            keep = [i for i, b in enumerate(blocks) if b not in set(bad)]
            if not keep:
                return bad
            idx = torch.tensor(keep, dtype=torch.long)
            rows_in = rows_in.index_select(0, idx)  # rare path: corrupted rows were dropped
            blocks = [blocks[i] for i in keep]
            cps = [cps[i] for i in keep]
            n = len(blocks)
        if same:
            prepared.append(
                _Prepared(
                    s,
                    k,
                    blocks,
                    rows_in,
                    [c.crc for c in cps],
                    [c.bound for c in cps],
                    [c.lossless for c in cps],
                )
            )
            return bad
        dst = self.stores[k]
        assert dst is not None
        rows_out = self.staging.rows(n, self._stride(k))
        bounds: list[float] = []
        dec, enc = self._codec_meter(cs.name), self._codec_meter(ck.name)
        for a in range(0, n, self.scratch_rows):
            z = min(n, a + self.scratch_rows)
            xs = self.scratch[: z - a]
            with Span(False) as sp:
                cs.decode(rows_in[a:z], xs)
            dec.decode.add(4 * self.elements * (z - a), sp.ns, z - a)
            with Span(False) as sp:
                got = ck.encode(xs, rows_out[a:z])
            enc.encode.add(4 * self.elements * (z - a), sp.ns, z - a)
            bounds.extend(got.tolist())
        if self.raw_bytes:
            rows_out[:, ck.nbytes : ck.nbytes + self.raw_bytes].copy_(
                rows_in[:, cs.nbytes : cs.nbytes + self.raw_bytes]
            )
        total = [c.bound + e for c, e in zip(cps, bounds, strict=True)]
        for e in bounds:
            enc.max_error_bound = max(enc.max_error_bound, e)
        prepared.append(
            _Prepared(
                s,
                k,
                blocks,
                rows_out,
                row_crcs(rows_out, dst.slot_bytes),
                total,
                [c.lossless and ck.lossless for c in cps],
            )
        )
        return bad

    def _check(self, s: int, blocks: list[int], cps: list[Copy], rows: torch.Tensor) -> list[int]:
        """Blocks whose read rows are not what was written (and, ``full``, not within their bound)."""
        store = self.stores[s]
        assert store is not None
        crcs = row_crcs(rows, store.slot_bytes)
        self.reads_checked += len(blocks)
        bad: list[int] = []
        for i, b in enumerate(blocks):
            c = cps[i]
            if crcs[i] != c.crc:
                reason = "stored bytes fail their checksum"
            elif c.lossless and self.codecs[s].lossless and c.crc != self.birth_crc.get(b, c.crc):  # type: ignore[union-attr]
                reason = "lossless copy differs from its birth checksum"
            else:
                continue
            bad.append(b)
            self.corruptions.append(Corruption(b, store.name, c.slot, reason))
        if self.integrity == "full":
            bad.extend(self._full_check(s, blocks, cps, rows, set(bad)))
        return bad

    def _full_check(
        self, s: int, blocks: list[int], cps: list[Copy], rows: torch.Tensor, skip: set[int]
    ) -> list[int]:
        """Decode and compare with regenerated birth data against each copy's error bound."""
        codec, store = self.codecs[s], self.stores[s]
        assert codec is not None and store is not None and self.scratch2 is not None
        meter = self._codec_meter(codec.name)
        bad: list[int] = []
        raw_ref = torch.empty((self.scratch_rows, max(1, self.raw_bytes)), dtype=torch.uint8)
        for a in range(0, len(blocks), self.scratch_rows):
            z = min(len(blocks), a + self.scratch_rows)
            xs, ref = self.scratch[: z - a], self.scratch2[: z - a]
            codec.decode(rows[a:z], xs)
            self.factory.birth(blocks[a:z], ref, raw_ref)
            err = (xs - ref).abs().amax(dim=1).to(torch.float64).tolist()
            for i, e in enumerate(err):
                b, c = blocks[a + i], cps[a + i]
                worst = meter.max_error_measured or 0.0
                meter.max_error_measured = max(worst, e)
                raw_ok = True
                if self.raw_bytes:
                    got = rows[a + i, codec.nbytes : codec.nbytes + self.raw_bytes]
                    raw_ok = bool(torch.equal(got, raw_ref[i, : self.raw_bytes]))
                within = e == 0.0 if c.lossless else e <= c.bound * (1 + 1e-6)
                if b not in skip and not (within and raw_ok):
                    bad.append(b)
                    self.corruptions.append(
                        Corruption(b, store.name, c.slot, f"decoded error {e:.3g} exceeds its bound {c.bound:.3g}")
                    )
        return bad

    def _born(self, k: int, blocks: list[int]) -> _Prepared:
        """Generate ``blocks``' birth data and encode it for tier ``k``."""
        ck, dst = self.codecs[k], self.stores[k]
        assert ck is not None and dst is not None
        n = len(blocks)
        rows = self.staging.rows(n, self._stride(k))
        bounds: list[float] = []
        enc = self._codec_meter(ck.name)
        for a in range(0, n, self.scratch_rows):
            z = min(n, a + self.scratch_rows)
            xs = self.scratch[: z - a]
            raw = rows[a:z, ck.nbytes : ck.nbytes + self.raw_bytes] if self.raw_bytes else None
            with Span(False) as sp:
                self.factory.birth(blocks[a:z], xs, raw)
            self.birth_meter.add(4 * self.elements * (z - a), sp.ns, z - a)
            for b, c in zip(blocks[a:z], birth_crcs(xs, raw, self.raw_bytes), strict=True):
                self.birth_crc[b] = c
            with Span(False) as sp:
                got = ck.encode(xs, rows[a:z])
            enc.encode.add(4 * self.elements * (z - a), sp.ns, z - a)
            bounds.extend(got.tolist())
        for e in bounds:
            enc.max_error_bound = max(enc.max_error_bound, e)
        self.births += n
        crcs = [self.birth_crc[b] for b in blocks] if ck.lossless else row_crcs(rows, dst.slot_bytes)
        return _Prepared(BIRTH, k, blocks, rows, crcs, bounds, [ck.lossless] * n)

    # ------------------------------------------------------------------ writes
    def _write_all(self, prepared: list[_Prepared], removals: dict[int, list[int]]) -> None:
        """Allocate and write every prepared group; then free removals and record the new copies."""
        stores, copies = self.stores, self.copies
        vacating: dict[int, list[int]] = {k: [copies[b][k].slot for b in bs] for k, bs in removals.items()}
        reused: dict[int, set[int]] = {}
        unlisted: list[tuple[int, int, tuple[int, int, int, int, float, bool]]] = []
        done: list[_Prepared] = []
        order = sorted(prepared, key=lambda p: (not stores[p.dst].durable, -p.dst))  # type: ignore[union-attr]
        try:
            for p in order:
                store = stores[p.dst]
                assert store is not None
                p.slots = self._allocate(p.dst, len(p.blocks), vacating, reused, removals, unlisted)
                with Span(self._cuda(p.src, p.dst)) as span:
                    store.write(p.slots, p.rows)
                    store.synchronize()
                nbytes = len(p.blocks) * store.slot_bytes
                if p.src == BIRTH:
                    meter = self.birth_write.setdefault(p.dst, Meter())
                else:
                    meter = self.link_write.setdefault((p.src, p.dst), Meter())
                meter.add(nbytes, span.ns, len(p.blocks), span.device_ns)
                done.append(p)
        except OSError as err:
            if err.errno not in NO_SPACE_ERRNOS:
                raise
            self._undo(order, done, p, reused, unlisted)
            block = p.blocks[0]
            where = [self.spec.tiers[k].name for k in sorted(copies.get(block, {}))]
            name = self.spec.tiers[p.dst].name
            path = getattr(stores[p.dst], "path", name)
            raise DiskFullError(
                f"writing block {block} to tier {name} ({path}) failed: {err.strerror or err}; "
                f"the batch was undone, so every block stays where it was (block {block} in "
                f"{', '.join(where) or 'no tier: it is recomputed when next needed'})"
            ) from None

        for k, bs in removals.items():
            store = stores[k]
            assert store is not None
            man = self.manifests.get(k)
            taken = reused.get(k, set())
            for b in bs:
                held = copies[b]
                c = held.pop(k)
                if c.slot not in taken:
                    store.free(c.slot)
                if man is not None:
                    man.remove(b)
                if not held:
                    del copies[b]
                    self.birth_crc.pop(b, None)
        for p in prepared:
            man = self.manifests.get(p.dst)
            for i, b in enumerate(p.blocks):
                copies.setdefault(b, {})[p.dst] = Copy(p.slots[i], p.crcs[i], p.bounds[i], p.lossless[i])
                if man is not None:
                    man.put(b, p.slots[i], p.crcs[i], self.birth_crc.get(b, 0), p.bounds[i], p.lossless[i])

    def _allocate(
        self,
        k: int,
        n: int,
        vacating: dict[int, list[int]],
        reused: dict[int, set[int]],
        removals: dict[int, list[int]],
        unlisted: list[tuple[int, int, tuple[int, int, int, int, float, bool]]],
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
            if man is not None:
                for b in removals[k]:
                    entry = man.entries.get(b)
                    if entry is not None and entry[0] in pool[:short]:
                        unlisted.append((k, b, entry))
                        man.remove(b)
                man.commit()
                self._last_commit = time.perf_counter()
            take, vacating[k] = pool[:short], pool[short:]
            reused.setdefault(k, set()).update(take)
            slots.extend(take)
        return slots

    def _undo(
        self,
        order: list[_Prepared],
        done: list[_Prepared],
        failed: _Prepared,
        reused: dict[int, set[int]],
        unlisted: list[tuple[int, int, tuple[int, int, int, int, float, bool]]],
    ) -> None:
        """Give back every slot this batch allocated; put back manifest entries it dropped."""
        for p in [*done, failed]:
            store = self.stores[p.dst]
            assert store is not None
            taken = reused.get(p.dst, set())
            for slot in p.slots:
                if slot not in taken:
                    store.free(slot)
        for k, b, entry in unlisted:
            self.manifests[k].restore(b, entry)

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

    def verify(self) -> None:
        """Check that the memories hold exactly what the decision core says, and each store's books.

        Raises:
            AssertionError: naming the first disagreement.
        """
        per_tier = [0] * len(self.stores)
        for b, copies in self.copies.items():
            for k in copies:
                per_tier[k] += 1
                if b not in self.policies[k]:  # type: ignore[operator]
                    raise AssertionError(f"block {b} is stored in tier {k} but the core has it elsewhere")
        for k in self.usable:
            store = self.stores[k]
            assert store is not None
            store.verify()
            held = len(self.policies[k])  # type: ignore[arg-type]
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


__all__ = ["BIRTH", "Copy", "Corruption", "Executor", "block_seed", "recovered_copy"]
