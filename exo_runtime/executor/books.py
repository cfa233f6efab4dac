"""The executor's books: which copy of which block each tier holds, and what each durable tier lists.

Keys and data. The core names a block's extra copies (a block recomputed while an older copy was
still resident, under prefix reuse) and a prompt's uncacheable partial block by keys of their own,
negative ints. A block's data is a function of its id (:class:`~exo_runtime.payload_data.BlockFactory`),
so a duplicate copy is born with, checked against and regenerated from its block's data (the core's
owner of the key, remembered here from its birth on); a partial block's from its key. A durable
tier's manifest lists blocks by id, one copy each: a duplicate copy is listed under its block's id
when no other copy of the block in that tier is (so a resumed run finds the block, whichever copy
survived), and a partial block is never listed (it lives only while its request runs). The core frees
a partial block at the end of its request without a move; the next batch frees its slot here.

Dirty manifests are committed every ``manifest_interval_s``, at the end of a batch, and whenever a
durable tier needs slots whose release waits on a commit (:mod:`~exo_runtime.executor.slots`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from exo_runtime.executor.records import BIRTH, Copy, LinkGroup
from exo_runtime.executor.tiers import Tiers
from exo_runtime.manifest import Manifest
from exo_sim.hierarchy import Hierarchy


class Books:
    """The copies held, what each key's data is, and the durable tiers' manifests.

    Args:
        tiers: the stores whose slots a removal frees.
        hierarchy: the decision core, asked what a key of its own stands for.
        manifests: the manifest of each durable tier, by tier index.
        manifest_interval_s: how often dirty manifests are committed.
        births_later: born blocks' data is written after their batch (see
            :class:`~exo_runtime.executor.Executor`'s ``factory``): such a block is recorded pending.
    """

    def __init__(
        self,
        tiers: Tiers,
        hierarchy: Hierarchy,
        manifests: dict[int, Manifest],
        manifest_interval_s: float,
        births_later: bool,
    ) -> None:
        self.tiers = tiers
        self.hierarchy = hierarchy
        self.manifests = manifests
        self.manifest_interval_s = manifest_interval_s
        self.births_later = births_later
        self.copies: dict[int, dict[int, Copy]] = {}
        """Key -> tier index -> the copy that tier holds."""
        self.birth_crc: dict[int, int] = {}
        """Key -> the CRC-32 of its block's birth data."""
        self.data_of: dict[int, int] = {}
        """Key -> the block whose data it holds, for the duplicate copies held (absent: the key itself)."""
        self.transient: set[int] = set()
        """Keys of uncacheable (partial) blocks held: freed once the core has let them go."""
        self.pending: set[int] = set()
        """Keys given slots whose data is not written yet (``births_later``): see
        :meth:`~exo_runtime.engine.tierio.TierIO.store`."""
        self.listed: dict[int, dict[int, int]] = {k: {} for k in manifests}
        """Per durable tier: block id -> the key of the copy its manifest entry describes."""
        self.last_commit = time.perf_counter()

    # ------------------------------------------------------------------ keys and data
    def register(self, key: int) -> None:
        """A core key of its own (negative) is born: remember what it is while the core still knows."""
        h = self.hierarchy
        if key in h._transient:
            self.transient.add(key)
            return
        owner = h._owner.get(key)
        if owner is not None:
            self.data_of[key] = owner

    def block_of(self, key: int) -> int:
        """The block id whose data ``key`` holds."""
        return self.data_of.get(key, key)

    def blocks_of(self, keys: Sequence[int]) -> list[int]:
        """The block ids whose data ``keys`` hold (a duplicate copy holds its block's)."""
        d = self.data_of
        return [d.get(b, b) for b in keys] if d else list(keys)

    # ------------------------------------------------------------------ manifests
    def list_copy(self, k: int, b: int, slot: int, crc: int, bound: float, lossless: bool) -> None:
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

    def unlist_copy(self, k: int, b: int) -> int | None:
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

    def relist_block(self, k: int, block: int) -> None:
        """List another copy of ``block`` that tier ``k`` still holds, if any (its listed copy left)."""
        if block in self.listed[k]:
            return
        keys = self.hierarchy._copies.get(block) or [block]
        for key in keys:
            c = self.copies.get(key, {}).get(k)
            if c is not None and not c.stale and self.data_of.get(key, key) == block:
                self.list_copy(k, key, c.slot, c.crc, c.bound, c.lossless)
                return

    def commit(self) -> None:
        """Commit every dirty manifest now."""
        for man in self.manifests.values():
            if man.dirty:
                man.commit()
        self.last_commit = time.perf_counter()

    def commit_tier(self, k: int) -> None:
        """Commit tier ``k``'s manifest now (which lets the slots freed before it be reused)."""
        self.manifests[k].commit()
        self.last_commit = time.perf_counter()

    def maybe_commit(self) -> None:
        """Commit the dirty manifests if ``manifest_interval_s`` has passed since the last commit."""
        now = time.perf_counter()
        if now - self.last_commit >= self.manifest_interval_s:
            self.commit()

    # ------------------------------------------------------------------ a batch's outcome
    def record(self, plans: list[LinkGroup], removals: dict[int, list[int]], reused: dict[int, set[int]]) -> None:
        """Free the removals' slots (unless reused) and record every new copy."""
        copies = self.copies
        relist: list[tuple[int, int]] = []
        left: list[int] = []
        for k, bs in removals.items():
            store = self.tiers.stores[k]
            assert store is not None
            taken = reused.get(k, set())
            for b in bs:
                held = copies[b]
                c = held.pop(k)
                if c.slot not in taken:
                    store.free(c.slot)
                block = self.unlist_copy(k, b)
                if block is not None:
                    relist.append((k, block))
                if not held:
                    del copies[b]
                    left.append(b)
        for p in plans:
            for i, b in enumerate(p.blocks):
                copies.setdefault(b, {})[p.dst] = p.copy(i)
                if p.stale[i]:
                    if p.src == BIRTH and self.births_later:
                        self.pending.add(b)
                else:
                    self.list_copy(p.dst, b, p.slots[i], p.crcs[i], p.bounds[i], p.lossless[i])
        for b in left:  # a block that only changed tiers keeps what is known of it
            if b not in copies:
                self.birth_crc.pop(b, None)
                self.data_of.pop(b, None)
                self.transient.discard(b)
                self.pending.discard(b)
        for k, block in relist:
            self.relist_block(k, block)

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
        stores = self.tiers.stores
        per_tier = [0] * len(stores)
        for b, copies in self.copies.items():
            for k in copies:
                per_tier[k] += 1
                if not self.hierarchy.holds(k, b):
                    raise AssertionError(f"block {b} is stored in tier {k} but the core has it elsewhere")
        for k in self.tiers.usable:
            store = stores[k]
            assert store is not None
            store.verify()
            held = self.hierarchy.held(k)
            if per_tier[k] != held or store.in_use != held:
                raise AssertionError(
                    f"tier {store.name}: the core holds {held} blocks, the executor {per_tier[k]}, "
                    f"the store {store.in_use} slots"
                )
