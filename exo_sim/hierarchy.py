"""The decision core: a pure, deterministic state machine over the tiers of a :class:`Spec`.

For each block access it decides hits, promotions, evictions, demotions and drops; it knows nothing
of time. The replay drives it with no clock, the SimPy model with simulated time, the runtime with
the wall clock — so their decisions are identical for the same config and workload.

The loop is written once, here::

    access(b):
        t = tier holding b (the highest one, under write-through)
        t is the top tier      -> hit; policy(top).access(b)
        t is a lower tier      -> hit at t, miss above it; promote b to the top tier
                                  (exclusive: b leaves t; write-through: the last tier keeps its copy)
        nowhere                -> miss everywhere; b is computed and admitted to the top tier
                                  (write-through: and persisted to the last tier)
    admit(k, b):
        if tier k would go over its high watermark:
            evict victims (policy(k).victim()) until it is at its low watermark, each one
            demoted to the next usable tier (admit(k+1, victim), cascading) or dropped off the last
        policy(k).insert(b)

Bypassed tiers (no room for one block under their watermark) are skipped by every move. When
``record_moves`` is on, every move is appended to :attr:`Hierarchy.moves` as a :class:`Move`,
one access's moves are meant to be applied as a batch (read every source, then
write every destination), since the tier a block is promoted from may receive a demoted victim.
Moves are listed in decision order: the block admitted first, then each victim it displaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from exo_sim.policies import NEVER, Policy, get_policy
from exo_sim.spec import Spec


class Move(NamedTuple):
    """One block changing place: ``src``/``dst`` are tier indices, ``None`` for computed / dropped."""

    block: int
    src: int | None
    dst: int | None
    bytes_src: int
    bytes_dst: int


_new_move = tuple.__new__
"""``_new_move(Move, (block, src, dst, bytes_src, bytes_dst))`` is ``Move(...)`` without NamedTuple's
Python-level ``__new__``: recording a move then costs about half as much (the timed model and the
runtime record every one)."""


class _Bypassed(Policy):
    """Stands in for the policy of a bypassed tier; the core never routes a block to one."""

    def __init__(self) -> None:
        super().__init__(1)

    def insert(self, key: int, next_access: int = NEVER) -> None:  # noqa: D102
        raise AssertionError("a block was routed to a bypassed tier")

    access = insert

    def remove(self, key: int) -> None:  # noqa: D102
        raise AssertionError("a bypassed tier holds nothing")

    def victim(self) -> int:  # noqa: D102
        raise AssertionError("a bypassed tier holds nothing")

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return False


_BYPASSED = _Bypassed()


class HierarchyInvariantError(AssertionError):
    """The hierarchy's state contradicts itself (raised by :meth:`Hierarchy.verify`)."""


@dataclass
class TierCounters:
    """Counts for one tier; ``misses`` are accesses that reached the tier and did not find the block."""

    hits: int = 0
    misses: int = 0
    promotions: int = 0
    demotions: int = 0
    evictions: int = 0
    drops: int = 0
    stranded: int = 0
    writes: int = 0
    used_blocks: int = 0
    peak_blocks: int = 0
    mean_blocks: float = 0.0


class Hierarchy:
    """Decision core over the tiers of ``spec``.

    Args:
        spec: the resolved hierarchy.
        record_moves: append every :class:`Move` to :attr:`moves` (the timed model and the runtime
            need them; the replay does not).

    """

    def __init__(self, spec: Spec, record_moves: bool = False) -> None:
        self.spec = spec
        self.record_moves = record_moves
        self.moves: list[Move] = []
        n = len(spec.tiers)
        self.n_tiers = n
        self.usable = [t.usable for t in spec.tiers]
        usable_idx = [t.index for t in spec.tiers if t.usable]
        self.top = usable_idx[0]
        self.last = usable_idx[-1]
        # next usable tier below each tier (None below the last)
        self._below: list[int | None] = [
            next((j for j in usable_idx if j > i), None) for i in range(n)
        ]
        self.write_through = spec.mode == "write_through" and self.last != self.top
        self.policies: list[Policy | None] = [
            get_policy(t.policy)(t.high_blocks) if t.usable else None for t in spec.tiers
        ]
        self.needs_future = any(p is not None and p.needs_future for p in self.policies)
        # the same policies with a stand-in at bypassed tiers, so hot paths index without checks
        self._active: list[Policy] = [p if p is not None else _BYPASSED for p in self.policies]
        self._high = [t.high_blocks for t in spec.tiers]
        self._evict_to = [max(t.low_blocks, 1) - 1 for t in spec.tiers]
        self._bytes = [t.block_bytes for t in spec.tiers]
        # what _admit needs of each tier, bound once: it runs for every level of every cascade
        self._ops = [
            (p, p.prepare_insert, p.insert, p.victim, self._high[i], self._evict_to[i], self._below[i])
            for i, p in enumerate(self._active)
        ]
        self.where: dict[int, int] = {}
        self.next_access: dict[int, int] = {}
        self.used = [0] * n
        self.peak = [0] * n
        self.hits = [0] * n
        self.promotions = [0] * n
        self.demotions = [0] * n
        self.drops = [0] * n
        self.stranded = [0] * n
        self.accesses = 0
        self.new_blocks = 0
        self.recomputed_blocks = 0
        self.persists = 0
        self._flows_mark = self._flow_totals()
        # prefix reuse (see "Requests" below): keys pinned by the request in flight, in the order it
        # took them; extra copies of a block (a recomputed block that was still resident elsewhere);
        # keys of uncacheable (partial) blocks, freed when their request ends
        self._pinned: list[int] = []
        self._pinned_set: set[int] = set()
        self._copies: dict[int, list[int]] = {}
        self._owner: dict[int, int] = {}
        self._transient: set[int] = set()
        self._next_key = -1
        # occupancy summed over accesses = used_now x accesses - sum over changes of (delta x when)
        self._change_time = [0] * n
        self.now = 0

    def holds(self, k: int, key: int) -> bool:
        """Whether tier ``k`` holds ``key`` (a block, or a copy's key) now."""
        return key in self._active[k]

    def held(self, k: int) -> int:
        """How many keys tier ``k`` holds now."""
        return len(self._active[k])

    @property
    def top_room(self) -> int:
        """Blocks the top tier holds under its high watermark."""
        return self._high[self.top]

    @property
    def request_room(self) -> int:
        """The most blocks one request may hold in the top tier at once (prefix reuse).

        Eviction brings the tier down to its low watermark, and the request's own blocks cannot be
        victims, so a request fits when its blocks fit under the low watermark.
        """
        return self._evict_to[self.top] + 1

    # ------------------------------------------------------------------ hot path
    def access_many(self, blocks: Sequence[int], next_access: Sequence[int] | None = None) -> None:
        """Read each block of ``blocks`` in order (the replay's fast path; no per-access result).

        ``next_access[i]`` is the access index of ``blocks[i]``'s next read (or :data:`NEVER`); it is
        needed only when a policy has ``needs_future``. A top-tier hit costs one dict lookup and the
        policy's ``touch``; everything else goes through :meth:`_access_slow`.
        """
        top = self.top
        where_get = self.where.get
        top_policy = self._active[top]
        slow = self._access_slow
        admit = self._admit
        base = self.accesses
        n_slow = 0
        n_new = 0
        if self.write_through:  # a computed block is also persisted: the slow path does that
            admit = None  # type: ignore[assignment]
        if next_access is None:
            if self.needs_future:
                raise ValueError("a policy needs next-access times and none were given")
            touch = top_policy.touch
            for i, b in enumerate(blocks):
                t = where_get(b)
                if t == top:
                    if touch is not None:
                        touch(b)
                elif t is None and admit is not None:  # computed and admitted at the top
                    n_new += 1
                    self.now = base + i
                    admit(top, b, NEVER, None)
                else:
                    n_slow += 1
                    slow(b, NEVER, base + i, t)
        else:
            nxt = self.next_access
            top_access = top_policy.access
            for i, b in enumerate(blocks):
                na = next_access[i]
                nxt[b] = na
                t = where_get(b)
                if t == top:
                    top_access(b, na)
                elif t is None and admit is not None:
                    n_new += 1
                    self.now = base + i
                    admit(top, b, na, None)
                else:
                    n_slow += 1
                    slow(b, na, base + i, t)
        self.hits[top] += len(blocks) - n_slow - n_new
        self.recomputed_blocks += n_new
        self.accesses = base + len(blocks)
        self.now = self.accesses

    def access(self, block: int, next_access: int = NEVER) -> int:
        """Read one block; return the tier index it was found in, or -1 if it had to be computed."""
        found = self.where.get(block, -1)
        if self.needs_future:
            self.access_many((block,), (next_access,))
        else:
            self.access_many((block,))
        return found

    def write(self, block: int, next_access: int = NEVER) -> None:
        """A request appends a new block (its own output): admit it to the top tier, no miss counted.

        Writing a block that is already resident refreshes it in place (counted as a write, not a hit).
        """
        self.now = self.accesses
        if self.needs_future:
            self.next_access[block] = next_access
        t = self.where.get(block)
        if t is not None:
            policy = self.policies[t]
            assert policy is not None
            policy.access(block, next_access)
            return
        self.new_blocks += 1
        self._admit(self.top, block, next_access, None)
        if self.write_through:
            self._persist(block, next_access)

    def preload(self, k: int, blocks: Sequence[int]) -> list[int]:
        """Place blocks an earlier run left in tier ``k`` (the runtime's resume), oldest first.

        Nothing is counted as an access, hit or move; only occupancy grows (so the tier's derived
        ``writes`` include them). Blocks already resident, and those that would take the tier over its
        high watermark, are not placed: they are returned.
        """
        policy = self.policies[k]
        if policy is None:
            return list(blocks)
        left: list[int] = []
        for b in blocks:
            if b in self.where or b in policy or self.used[k] >= self._high[k]:
                left.append(b)
                continue
            if policy.prepare_insert is not None:
                policy.prepare_insert(b)
            policy.insert(b, self._next_of(b))
            self._set_used(k, self.used[k] + 1)
            self.where[b] = k
        return left

    # ------------------------------------------------------------------ requests (prefix reuse)
    # A serving engine's request, block by block (the driver, exo_sim/driver.py, walks it): ``find``
    # each block of the cached prefix and ``use`` it, ``compute`` every block from the first missing
    # one on, then ``end_request``. Blocks the request holds are pinned in the top tier until then
    # (never a victim there), and are released tail-first, as vLLM's free queue takes them back.
    def find(self, b: int) -> tuple[int, int] | None:
        """The copy of block ``b`` a lookup uses, as ``(key, tier)``, or ``None`` if it is not resident.

        A block recomputed while an older copy was still resident has several copies (each under its
        own key); the lookup uses the one made first, as vLLM's block pool does.
        """
        if self._copies:
            keys = self._copies.get(b)
            if keys:
                key = keys[0]
                return key, self.where[key]
        t = self.where.get(b)
        return None if t is None else (b, t)

    def use(self, key: int, tier: int, next_access: int = NEVER) -> None:
        """Serve one block of the cached prefix from the copy ``key`` in ``tier`` (a hit there).

        A hit below the top is promoted to the top tier, as :meth:`access` does. The copy stays pinned
        in the top tier until :meth:`end_request`.
        """
        self.now = self.accesses
        if self.needs_future:
            self.next_access[key] = next_access
        if tier == self.top:
            self.hits[tier] += 1
            self._active[tier].access(key, next_access)
        else:
            self._access_slow(key, next_access, self.accesses, tier)
        self.accesses += 1
        self._pin(key)

    def compute(self, b: int, next_access: int = NEVER, cacheable: bool = True, read: bool = True) -> None:
        """Prefill block ``b`` (``read``) or write it as output (``read=False``) and admit it to the top tier.

        A block read past the cached prefix while a copy is still resident somewhere is *stranded*
        there (counted at that tier); its recomputed KV becomes a second copy (the old one stays
        until it is evicted, and is then dropped rather than demoted), exactly as vLLM caches a
        recomputed block beside an identical one. An uncacheable block (a prompt's partial last
        block) takes a top-tier slot under a key of its own until :meth:`end_request` frees it. A
        write of a resident block refreshes it in place.
        """
        self.now = self.accesses
        found = self.find(b) if cacheable else None
        if not read:
            if found is not None:  # refreshed in place
                key, t = found
                self._active[t].access(key, next_access)
                self._pin(key)
                return
            self.new_blocks += 1
        else:
            self.accesses += 1
            self.recomputed_blocks += 1
        key = b
        if found is not None or not cacheable:
            key = self._next_key
            self._next_key -= 1
            if cacheable:
                assert found is not None
                old_key, t = found
                if read:
                    self.stranded[t] += 1
                keys = self._copies.get(b)
                if keys is None:
                    self._copies[b] = [old_key, key]
                else:
                    keys.append(key)
                self._owner[key] = b
            else:
                self._transient.add(key)
        if self.needs_future:
            self.next_access[key] = next_access
        self._admit(self.top, key, next_access, None)
        if self.write_through and cacheable and found is None:
            self._persist(key, next_access)
        self._pin(key)

    def end_request(self) -> None:
        """The request in flight finished: release its blocks tail-first and free its uncacheable ones.

        Each cacheable block is handed to its tier's policy ``release`` hook, last block first (LRU
        moves it to the MRU end, so a chain's tail is evicted before its head); an uncacheable block
        leaves the top tier, its slot free.
        """
        top = self.top
        policy = self._active[top]
        release = policy.release
        transient = self._transient
        for key in reversed(self._pinned):
            if key in transient:
                transient.discard(key)
                if self.where.get(key) == top:
                    policy.remove(key)
                    del self.where[key]
                    self._set_used(top, self.used[top] - 1)
            elif release is not None and self.where.get(key) == top:
                release(key)
        self._pinned.clear()
        self._pinned_set.clear()

    def _pin(self, key: int) -> None:
        if self.where.get(key) == self.top:
            self._pinned.append(key)
            self._pinned_set.add(key)

    def _victim_unpinned(self) -> int:
        """The top tier's next victim that the request in flight does not hold.

        Blocks it holds that the policy offers first are set aside and re-inserted afterwards (as new
        arrivals: a pinned block cannot leave, so the policy is asked again).
        """
        policy = self._active[self.top]
        held: list[int] = []
        v = policy.victim()
        while v in self._pinned_set:
            held.append(v)
            v = policy.victim()
        for key in held:
            policy.insert(key, self._next_of(key))
        return v

    def _other_copy(self, v: int) -> bool:
        """``v`` is leaving its tier as a victim: if another copy of its block stays, forget ``v`` and say so."""
        b = self._owner.get(v, v)
        keys = self._copies.get(b)
        if keys is None or len(keys) < 2:
            return False
        keys.remove(v)
        if v != b:
            del self._owner[v]
        if keys == [b]:
            del self._copies[b]
        return True

    def _forget(self, v: int) -> None:
        """``v`` was dropped and is resident nowhere now: it is no longer a copy of its block."""
        b = self._owner.pop(v, v)
        keys = self._copies.get(b)
        if keys is not None and v in keys:
            keys.remove(v)
            if not keys or keys == [b]:
                del self._copies[b]

    # ------------------------------------------------------------------ slow path
    def _access_slow(self, b: int, na: int, now: int, t: int | None) -> None:
        """Everything but a top-tier hit (``t``: the tier holding ``b``, or ``None``)."""
        self.now = now
        top = self.top
        if t is None:
            self.recomputed_blocks += 1
            self._admit(top, b, na, None)
            if self.write_through:
                self._persist(b, na)
            return
        policy = self._active[t]
        self.hits[t] += 1
        self.promotions[t] += 1
        if self.write_through and t == self.last:
            policy.access(b, na)  # the last tier keeps its persisted copy
        else:
            policy.remove(b)
            self.used[t] -= 1
            self._change_time[t] -= now
            del self.where[b]
        self._admit(top, b, na, t)

    def _set_used(self, k: int, value: int) -> None:
        self._change_time[k] += (value - self.used[k]) * self.now
        self.used[k] = value
        if value > self.peak[k]:
            self.peak[k] = value

    def _admit(self, k: int, b: int, na: int, src: int | None) -> None:
        """Admit ``b`` (coming from tier ``src``, or computed) into tier ``k``; victims cascade down.

        The cascade is a loop carrying one block down: a full tier gives up one victim per admitted
        block, the common case, written inline for speed. A tier over its high watermark that evicts
        down to a lower watermark gives up several; all but the last are routed by recursion.
        """
        used, where, rec, wt, ops = self.used, self.where, self.record_moves, self.write_through, self._ops
        pinned, top = self._pinned_set, self.top
        while True:
            policy, prepare, insert, victim, high, evict_to, below = ops[k]
            if pinned and k == top:  # the request in flight holds some top-tier blocks: never evict those
                victim = self._victim_unpinned
            if rec:
                self.moves.append(
                    _new_move(Move, (b, src, k, self._bytes[src] if src is not None else 0, self._bytes[k]))
                )
            if prepare is not None:
                prepare(b)
            u = used[k]
            if u < high:  # room: no victim
                insert(b, na)
                used[k] = u + 1
                self._change_time[k] += self.now
                if u >= self.peak[k]:
                    self.peak[k] = u + 1
                if not (wt and k == self.last and b in where):
                    where[b] = k
                return
            n_out = u - evict_to
            if n_out == 1:  # one out, one in: occupancy unchanged
                v = victim()
                victims = None
            else:
                victims = [victim() for _ in range(n_out)]
                v = victims.pop()
                self._set_used(k, u + 1 - n_out)
            insert(b, na)
            if not (wt and k == self.last and b in where):
                where[b] = k
            if victims:
                for other in victims:
                    nxt = self._route(k, other)
                    if nxt is not None:
                        self._admit(nxt, other, self._next_of(other), k)
            if wt:
                nxt = self._route(k, v)
                if nxt is None:
                    return
            else:  # exclusive, inline: demote one tier down (where[v] is rewritten there) or drop
                nxt = below
                if nxt is None or (self._copies and self._other_copy(v)):
                    self.drops[k] += 1
                    del where[v]
                    if nxt is None and self._copies:  # off the last tier: gone, even if it was the only copy
                        self._forget(v)
                    if rec:
                        self.moves.append(_new_move(Move, (v, k, None, self._bytes[k], 0)))
                    return
                self.demotions[k] += 1
            b, na, src, k = v, (self.next_access.get(v, NEVER) if self.needs_future else NEVER), k, nxt

    def _next_of(self, v: int) -> int:
        return self.next_access.get(v, NEVER) if self.needs_future else NEVER

    def _route(self, k: int, v: int) -> int | None:
        """Victim ``v`` left tier ``k``: return the tier to demote it to, or ``None`` if it is dropped.

        Exclusive: the next usable tier down; off the last tier it is dropped. Write-through: a victim
        of the last tier is dropped from it (any upper copy stays, now the only one); a victim of the
        tier above the last is dropped without a write when the last tier holds its clean copy.
        """
        below = self._below[k]
        where = self.where
        # another copy of the block stays: no need to keep this one (unless, under write-through, this
        # very key stays in another tier: its persisted copy, or the upper one of a last-tier victim)
        if self._copies and not self._kept_elsewhere(k, v) and self._other_copy(v):
            self.drops[k] += 1
            if where.get(v) == k:
                del where[v]
            self._drop_move(v, k)
            return None
        if self.write_through:
            last = self.last
            if k == last:
                self.drops[k] += 1
                if where.get(v) == last:
                    del where[v]
                    if self._copies:
                        self._forget(v)
                self._drop_move(v, k)
                return None
            last_policy = self.policies[last]
            assert last_policy is not None
            if below == last and v in last_policy:
                self.drops[k] += 1
                where[v] = last
                self._drop_move(v, k)
                return None
        if below is None:
            self.drops[k] += 1
            del where[v]
            if self._copies:
                self._forget(v)
            self._drop_move(v, k)
            return None
        self.demotions[k] += 1
        if self.write_through:
            del where[v]  # so that a demotion into the last tier re-indexes it there
        return below

    def _kept_elsewhere(self, k: int, v: int) -> bool:
        """Write-through: victim ``v`` of tier ``k`` stays resident in another tier under the same key."""
        if not self.write_through:
            return False
        if k == self.last:
            return self.where.get(v, k) != k
        last_policy = self.policies[self.last]
        return last_policy is not None and v in last_policy

    def _drop_move(self, v: int, k: int) -> None:
        if self.record_moves:
            self.moves.append(_new_move(Move, (v, k, None, self._bytes[k], 0)))

    def _persist(self, b: int, na: int) -> None:
        """Write-through: give the last tier a copy of a block that was just admitted at the top."""
        last = self.last
        last_policy = self.policies[last]
        assert last_policy is not None
        if b in last_policy:
            last_policy.access(b, na)
            return
        self.persists += 1
        self._admit(last, b, na, self.top)

    # ------------------------------------------------------------------ results
    def counters(self) -> list[TierCounters]:
        """Per-tier counts so far (``misses`` derived: accesses that reached a tier minus its hits)."""
        out: list[TierCounters] = []
        reached = self.accesses
        now = self.accesses
        for k in range(self.n_tiers):
            area = self.used[k] * now - self._change_time[k]
            # every block written into a tier is still there, was evicted, or left by promotion
            evictions = self.demotions[k] + self.drops[k]
            removed = 0 if (self.write_through and k == self.last) else self.promotions[k]
            out.append(
                TierCounters(
                    hits=self.hits[k],
                    misses=reached - self.hits[k],
                    promotions=self.promotions[k],
                    demotions=self.demotions[k],
                    evictions=evictions,
                    drops=self.drops[k],
                    stranded=self.stranded[k],
                    writes=self.used[k] + evictions + removed,
                    used_blocks=self.used[k],
                    peak_blocks=self.peak[k],
                    mean_blocks=area / now if now else 0.0,
                )
            )
            reached -= self.hits[k]
        return out

    def _flow_totals(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int]:
        return (
            tuple(self.promotions),
            tuple(self.demotions),
            tuple(self.drops),
            self.recomputed_blocks + self.new_blocks,
            self.persists,
        )

    def take_flows(self) -> dict[tuple[int | None, int | None], int]:
        """Moves since the last call, counted by ``(src, dst)``; no move list needed.

        Every move the core makes is one of: computed -> top (``(None, top)``), a promotion
        ``(t, top)``, a demotion ``(k, next usable tier)``, a drop ``(k, None)`` or a write-through
        persist ``(top, last)``. So the counters alone give, per request, exactly the counts that
        ``record_moves`` would list — the timed model uses this instead of the list.
        """
        cur = self._flow_totals()
        prev = self._flows_mark
        self._flows_mark = cur
        out: dict[tuple[int | None, int | None], int] = {}
        top = self.top
        for t, (now_p, was_p, now_d, was_d, now_x, was_x) in enumerate(
            zip(cur[0], prev[0], cur[1], prev[1], cur[2], prev[2], strict=True)
        ):
            if now_p != was_p:
                out[(t, top)] = now_p - was_p
            if now_d != was_d:
                key = (t, self._below[t])
                out[key] = out.get(key, 0) + now_d - was_d
            if now_x != was_x:
                out[(t, None)] = now_x - was_x
        if cur[3] != prev[3]:
            out[(None, top)] = cur[3] - prev[3]
        if cur[4] != prev[4]:
            key = (top, self.last)
            out[key] = out.get(key, 0) + cur[4] - prev[4]
        return out

    def link_bytes(self) -> dict[tuple[int, int], int]:
        """Bytes moved so far between tiers, by ``(src, dst)`` (source encoding), from the counters."""
        out: dict[tuple[int, int], int] = {}
        for t in range(self.n_tiers):
            if self.promotions[t]:
                out[(t, self.top)] = self.promotions[t] * self._bytes[t]
            below = self._below[t]
            if self.demotions[t] and below is not None:
                out[(t, below)] = out.get((t, below), 0) + self.demotions[t] * self._bytes[t]
        if self.persists:
            key = (self.top, self.last)
            out[key] = out.get(key, 0) + self.persists * self._bytes[self.top]
        return out

    def verify(self, in_request: bool = False) -> None:
        """Check every invariant; raise :class:`HierarchyInvariantError` on the first broken one.

        Bytes used equal the sum of resident blocks (every block in a tier takes that tier's block
        size, so this is ``used`` blocks == the policy's resident count); no tier is over its high
        watermark; in exclusive mode no block is in two tiers; every located block is resident where
        the index says; hits + misses of the top tier equal the accesses.

        Prefix reuse's books: every key a block's copy list names is resident, listed once, and is
        the block itself or a key (negative) whose owner is that block; a list never names the block
        alone; every owner entry is a listed copy; every resident negative key is a copy or an
        uncacheable block's; pinned keys are resident in the top tier. Unless ``in_request`` (a
        request is in flight), nothing is pinned and no uncacheable block is left.
        """
        def fail(msg: str) -> HierarchyInvariantError:
            return HierarchyInvariantError(msg)

        per_tier = [0] * self.n_tiers
        for b, k in self.where.items():
            per_tier[k] += 1
            policy = self.policies[k]
            if policy is None or b not in policy:
                raise fail(f"block {b} indexed in tier {k} but not resident there")
            for j, other in enumerate(self.policies):
                if other is None or j == k:
                    continue
                if b in other and not (self.write_through and j == self.last):
                    raise fail(f"block {b} is in tiers {k} and {j}")
        for k, policy in enumerate(self.policies):
            if policy is None:
                if self.used[k]:
                    raise fail(f"bypassed tier {k} holds {self.used[k]} blocks")
                continue
            policy.verify()
            if len(policy) != self.used[k]:
                raise fail(f"tier {k}: used {self.used[k]} blocks but policy holds {len(policy)}")
            if self.used[k] > self._high[k]:
                raise fail(f"tier {k}: {self.used[k]} blocks over its high watermark {self._high[k]}")
            if self.used[k] * self._bytes[k] > self.spec.tiers[k].capacity_bytes:
                raise fail(f"tier {k}: bytes used exceed capacity")
            if not (self.write_through and k == self.last) and per_tier[k] != self.used[k]:
                raise fail(f"tier {k}: index says {per_tier[k]} blocks, used says {self.used[k]}")
        c = self.counters()
        top = c[self.top]
        if top.hits + top.misses != self.accesses:
            raise fail("top tier hits + misses != accesses")
        self._verify_requests(in_request)

    def _verify_requests(self, in_request: bool) -> None:
        """The prefix-reuse part of :meth:`verify`."""
        where, owner = self.where, self._owner
        for b, keys in self._copies.items():
            if not keys or keys == [b]:
                raise HierarchyInvariantError(f"block {b}: copy list {keys} names no extra copy")
            if len(set(keys)) != len(keys):
                raise HierarchyInvariantError(f"block {b}: copy list {keys} names a key twice")
            for key in keys:
                if key not in where:
                    raise HierarchyInvariantError(f"block {b}: copy {key} is listed but resident nowhere")
                if key != b and (key >= 0 or owner.get(key) != b):
                    raise HierarchyInvariantError(f"block {b}: copy {key} has owner {owner.get(key)}")
        for key, b in owner.items():
            if key not in self._copies.get(b, ()):
                raise HierarchyInvariantError(f"key {key} is owned by block {b} but not among its copies")
        for key in self._transient:
            if key in owner or where.get(key) != self.top:
                raise HierarchyInvariantError(f"uncacheable key {key} is a copy or not in the top tier")
        for key in where:
            if key < 0 and key not in owner and key not in self._transient:
                raise HierarchyInvariantError(f"key {key} is neither a copy of a block nor an uncacheable block")
        if set(self._pinned) != self._pinned_set:
            raise HierarchyInvariantError("pinned list and set disagree")
        for key in self._pinned_set:
            if where.get(key) != self.top:
                raise HierarchyInvariantError(f"pinned key {key} is not in the top tier")
        if not in_request and (self._pinned or self._transient):
            raise HierarchyInvariantError(
                f"no request is in flight, yet {len(self._pinned)} keys are pinned and "
                f"{len(self._transient)} uncacheable blocks held"
            )
