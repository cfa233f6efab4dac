"""The executor: composes the jobs of :mod:`exo_runtime.executor` and runs a batch through them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from exo_runtime.buffers import StagingPool
from exo_runtime.codecs import Codec
from exo_runtime.executor.births import BirthData
from exo_runtime.executor.books import Books
from exo_runtime.executor.checks import Checks
from exo_runtime.executor.copy_paths import Copier, Repairs
from exo_runtime.executor.linkio import LinkIO
from exo_runtime.executor.meters import Meters
from exo_runtime.executor.netting import freed_partials, net
from exo_runtime.executor.recode import Recoder
from exo_runtime.executor.records import BirthSource, Copy, Corruption, LinkGroup
from exo_runtime.executor.schedule import schedule
from exo_runtime.executor.slots import SlotBatch
from exo_runtime.executor.tiers import Tiers
from exo_runtime.executor.workspace import Workspace
from exo_runtime.manifest import Manifest
from exo_runtime.stores import Store
from exo_runtime.stores.file import NO_SPACE_ERRNOS
from exo_runtime.timing import CodecMeter
from exo_sim.hierarchy import Hierarchy, Move


class Executor:
    """Applies the decision core's moves to real stores (see :mod:`exo_runtime.executor`).

    Args:
        hierarchy: the decision core (``record_moves=True``), shared with the driver.
        stores: one store per tier index, ``None`` for a bypassed tier.
        codecs: one codec per tier index, ``None`` for a bypassed tier.
        factory: where a computed block's data comes from, written as its move is applied; ``None``
            when it is known only after the batch (a prefix's KV, computed by the model after the
            cached prefix is loaded): the batch then gives such a block its slot, marked pending,
            and :meth:`~exo_runtime.engine.tierio.TierIO.store` writes its data once computed.
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
        self.hierarchy = hierarchy
        self.spec = hierarchy.spec
        self.staging = staging
        """The staging pool a batch stages sources in (the driver may replace it with a larger one)."""
        self.elements = self.spec.content.elements
        self.raw_bytes = self.spec.content.raw_bytes
        self.tiers = tiers = Tiers(stores, codecs)
        ws = Workspace(self.elements, scratch_bytes, tiers.widest(), staging.pinned, integrity == "full")
        self.books = books = Books(tiers, hierarchy, manifests, manifest_interval_s, factory is None)
        self.meters = meters = Meters(self.elements)
        self.io = io = LinkIO(tiers, books.copies, meters)
        self.birth_data = births = BirthData(tiers, books, meters, ws, factory, self.elements, self.raw_bytes)
        self.checks = checks = Checks(integrity, tiers, books, births, meters, ws, self.raw_bytes)
        recoder = Recoder(tiers, births, meters, io, ws, self.raw_bytes)
        self.copier = Copier(tiers, books, io, checks, births, recoder, ws)
        self.batches = 0
        self.staged_blocks = 0
        self.max_batch_moves = 0

    # ------------------------------------------------------------------ the batch
    def apply(self, moves: Sequence[Move]) -> None:
        """Carry out ``moves`` (one request's, or a part of one ending on an access) as one batch.

        Raises:
            DiskFullError: a durable write failed for lack of space; the batch was undone.
        """
        books, tiers = self.books, self.tiers
        origin = freed_partials(books, self.hierarchy.where)
        if not moves and not origin:
            return
        self.batches += 1
        self.max_batch_moves = max(self.max_batch_moves, len(moves))
        plans, removals = net(origin, moves, books, self.hierarchy.holds, tiers.usable, tiers.durable)
        slots = SlotBatch(tiers, books, removals)
        repairs: Repairs = []
        plan: LinkGroup | None = None
        self.copier.active = None
        try:
            for plan in plans:
                plan.reserve(slots.allocate(plan.dst, len(plan.blocks)))
            schedule(
                plans,
                slots.reused,
                books.copies,
                tiers.durable,
                lambda p, idx, release: self.copier.carry_out(p, idx, release, repairs),
                self._stage,
            )
        except OSError as err:
            plan = self.copier.active or plan  # the plan whose write failed (or whose slots were sought)
            if err.errno not in NO_SPACE_ERRNOS or plan is None:
                raise
            slots.undo(plans)
            raise slots.full_disk(err, plan, self.spec) from None
        finally:
            self.staging.reset()
        books.record(plans, removals, slots.reused)
        for s, b in repairs:
            if self.hierarchy.holds(s, b) and s in books.copies.get(b, {}):
                self.birth_data.repair(s, b)
        books.maybe_commit()

    def _stage(self, p: LinkGroup, i: int) -> torch.Tensor:
        """Read addition ``i`` of ``p``'s source into a staging row (its slot is about to be reused)."""
        row = self.staging.rows(1, self.tiers.stride(p.src))
        self.io.read(p.src, p.dst, [p.blocks[i]], row)
        self.staged_blocks += 1
        return row

    def staging_bytes_per_move(self) -> int:
        """Upper bound of staging bytes one move needs (one staged row)."""
        return self.tiers.widest()

    # ------------------------------------------------------------------ books
    @property
    def stores(self) -> list[Store | None]:
        """One store per tier index, ``None`` for a bypassed tier."""
        return self.tiers.stores

    @property
    def codecs(self) -> list[Codec | None]:
        """One codec per tier index, ``None`` for a bypassed tier."""
        return self.tiers.codecs

    @property
    def factory(self) -> BirthSource | None:
        """Where a computed block's data comes from (``None``: written after its batch)."""
        return self.birth_data.factory

    @property
    def integrity(self) -> str:
        """``off``, ``checksum`` or ``full``."""
        return self.checks.mode

    @property
    def copies(self) -> dict[int, dict[int, Copy]]:
        """Key -> tier index -> the copy that tier holds."""
        return self.books.copies

    @property
    def birth_crc(self) -> dict[int, int]:
        """Key -> the CRC-32 of its block's birth data."""
        return self.books.birth_crc

    @property
    def data_of(self) -> dict[int, int]:
        """Key -> the block whose data it holds, for the duplicate copies held (absent: the key itself)."""
        return self.books.data_of

    @property
    def transient(self) -> set[int]:
        """Keys of uncacheable (partial) blocks held: freed once the core has let them go."""
        return self.books.transient

    @property
    def pending(self) -> set[int]:
        """Keys given slots whose data is not written yet (``factory=None``)."""
        return self.books.pending

    @property
    def corruptions(self) -> list[Corruption]:
        """Every corrupted copy found on read, in order."""
        return self.checks.corruptions

    @property
    def reads_checked(self) -> int:
        """Blocks whose bytes were checked on read."""
        return self.checks.reads_checked

    @reads_checked.setter
    def reads_checked(self, n: int) -> None:
        self.checks.reads_checked = n

    @property
    def births(self) -> int:
        """Blocks whose data was generated or stored as born."""
        return self.meters.births

    @births.setter
    def births(self, n: int) -> None:
        self.meters.births = n

    def _stride(self, *tiers: int) -> int:
        return self.tiers.stride(*tiers)

    def _codec_meter(self, name: str) -> CodecMeter:
        return self.meters.codec(name)

    def _list(self, k: int, b: int, slot: int, crc: int, bound: float, lossless: bool) -> None:
        self.books.list_copy(k, b, slot, crc, bound, lossless)

    def _unlist(self, k: int, b: int) -> int | None:
        return self.books.unlist_copy(k, b)

    def commit(self) -> None:
        """Commit every dirty manifest now."""
        self.books.commit()

    def adopt(self, k: int, block: int, copy: Copy, birth_crc: int) -> None:
        """Record a copy recovered from an earlier run (its slot already claimed in the store)."""
        self.books.adopt(k, block, copy, birth_crc)

    def verify(self) -> None:
        """Check that the memories hold exactly what the decision core says, and each store's books.

        Raises:
            AssertionError: naming the first disagreement.
        """
        self.books.verify()

    def measured(self) -> dict[str, Any]:
        """Measured per-link bandwidth and per-codec throughput, for ``summary.json``."""
        return self.meters.measured(self.spec, self.tiers.cuda)
