"""A batch's destination slots: free slots first, then slots the batch's removals give up; undone on a full disk.

Every destination slot is allocated before any addition runs. A tier short of free slots reuses the
slots of the blocks this batch removes from it (the schedule then reads each such slot before it is
overwritten, :mod:`~exo_runtime.executor.schedule`). A durable tier first commits its manifest (which
lets the slots freed before it be reused); if that is not enough, the blocks this batch removes from
it are dropped from the manifest, committed again, and their slots reused.

A write the medium refuses for lack of space (ENOSPC, EFBIG, EDQUOT) undoes the batch — every block
stays where it was before it, which holds because durable writes come first and no slot of a
non-durable tier has been overwritten yet — and raises :class:`~exo_runtime.errors.DiskFullError`.
"""

from __future__ import annotations

from exo_runtime.errors import DiskFullError
from exo_runtime.executor.books import Books
from exo_runtime.executor.records import Entry, LinkGroup
from exo_runtime.executor.tiers import Tiers
from exo_sim.spec import Spec


class SlotBatch:
    """The slots of one batch: what it allocated, which removals' slots it reused, what it unlisted.

    Args:
        tiers: the stores slots come from.
        books: the copies (the removals' slots) and the manifests.
        removals: per tier, the keys this batch removes from it.
    """

    def __init__(self, tiers: Tiers, books: Books, removals: dict[int, list[int]]) -> None:
        self.tiers = tiers
        self.books = books
        self.removals = removals
        copies = books.copies
        self.vacating = {k: [copies[b][k].slot for b in bs] for k, bs in removals.items()}
        """Per tier, the slots its removals give up and no addition has taken yet."""
        self.reused: dict[int, set[int]] = {}
        """Per tier, the removals' slots additions took (never freed: they hold the additions)."""
        self.unlisted: list[tuple[int, int, Entry]] = []
        """``(tier, key, entry)`` of manifest entries dropped so their slots could be reused."""

    def allocate(self, k: int, n: int) -> list[int]:
        """``n`` slots of tier ``k``: free ones first, then slots this batch's removals give up."""
        store = self.tiers.stores[k]
        assert store is not None
        books = self.books
        man = books.manifests.get(k)
        if man is not None and store.free_slots < n:
            books.commit_tier(k)
        short = n - store.free_slots
        slots = [store.allocate() for _ in range(min(n, store.free_slots))]
        if short > 0:
            pool = self.vacating.get(k, [])
            if len(pool) < short:
                raise AssertionError(f"tier {store.name}: {short} slots short in one batch")
            take, self.vacating[k] = pool[:short], pool[short:]
            if man is not None:
                gone = set(take)
                for b in self.removals[k]:
                    block = books.block_of(b)
                    entry = man.entries.get(block) if books.listed[k].get(block) == b else None
                    if entry is not None and entry[0] in gone:
                        self.unlisted.append((k, b, entry))
                        books.unlist_copy(k, b)
                books.commit_tier(k)
            self.reused.setdefault(k, set()).update(take)
            slots.extend(take)
        return slots

    def undo(self, plans: list[LinkGroup]) -> None:
        """Give back every slot this batch allocated; put back the manifest entries it dropped."""
        for p in plans:
            store = self.tiers.stores[p.dst]
            assert store is not None
            taken = self.reused.get(p.dst, set())
            for slot in p.slots:
                if slot not in taken:
                    store.free(slot)
        books = self.books
        for k, b, entry in self.unlisted:
            block = books.block_of(b)
            books.manifests[k].restore(block, entry)
            books.listed[k][block] = b

    def full_disk(self, err: OSError, plan: LinkGroup, spec: Spec) -> DiskFullError:
        """The error of a batch undone because ``plan``'s tier is full: where its first block stays."""
        key = plan.blocks[0]
        block = self.books.block_of(key)
        where = [spec.tiers[k].name for k in sorted(self.books.copies.get(key, {}))]
        name = spec.tiers[plan.dst].name
        path = getattr(self.tiers.stores[plan.dst], "path", name)
        return DiskFullError(
            f"writing block {block} to tier {name} ({path}) failed: {err.strerror or err}; "
            f"the batch was undone, so every block stays where it was (block {block} in "
            f"{', '.join(where) or 'no tier: it is recomputed when next needed'})"
        )
