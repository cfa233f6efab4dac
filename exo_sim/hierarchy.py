"""The decision core: a pure, deterministic state machine over the tiers of a :class:`Spec`.

For each block access it decides hits, promotions, evictions, demotions and drops; it knows nothing
of time. The replay drives it with no clock, the SimPy model with simulated time, the runtime with
the wall clock — so their decisions are identical for the same config and workload.

The loop is written once, in C (``exo_sim/native/hierarchy.c``, the extension ``exo_sim._core``):
:class:`Hierarchy` is :class:`~exo_sim._core.HierarchyCore` plus what is read rather than decided
(counters, link bytes, invariants), in Python. Its rules::

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

A tier's policy is a compiled one (called through its C vtable) or any :class:`Policy` written in
Python (called through its bound methods: slower, same decisions). Bypassed tiers (no room for one
block under their watermark) are skipped by every move. When
``record_moves`` is on, every move is appended to :attr:`Hierarchy.moves` as a :class:`Move`,
one access's moves are meant to be applied as a batch (read every source, then
write every destination), since the tier a block is promoted from may receive a demoted victim.
Moves are listed in decision order: the block admitted first, then each victim it displaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from exo_sim._core import HierarchyCore
from exo_sim.policies import NEVER, Policy, get_policy
from exo_sim.spec import Spec


class Move(NamedTuple):
    """One block changing place: ``src``/``dst`` are tier indices, ``None`` for computed / dropped."""

    block: int
    src: int | None
    dst: int | None
    bytes_src: int
    bytes_dst: int


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


class Where(Mapping[int, int]):
    """The core's block index (key -> tier) as a read-only mapping; iterating takes a snapshot."""

    def __init__(self, core: HierarchyCore) -> None:
        self._core = core

    def __getitem__(self, key: int) -> int:
        t = self._core.tier_of(key)
        if t is None:
            raise KeyError(key)
        return t

    def get(self, key: int, default: Any = None) -> Any:  # noqa: D102 - Mapping.get, one C call
        t = self._core.tier_of(key)
        return default if t is None else t

    def __contains__(self, key: object) -> bool:
        return self._core.tier_of(key) is not None  # type: ignore[arg-type]  # any int-like; else None

    def __iter__(self) -> Iterator[int]:
        return iter(self._core.where_dict())

    def __len__(self) -> int:
        return self._core.where_len()

    def __repr__(self) -> str:
        return repr(self._core.where_dict())


class Hierarchy(HierarchyCore):
    """Decision core over the tiers of ``spec`` (the loop itself is compiled: ``exo_sim/native``).

    Args:
        spec: the resolved hierarchy.
        record_moves: append every :class:`Move` to :attr:`moves` (the runtime needs them; the
            replay and the timed model count flows instead).

    """

    def __init__(self, spec: Spec, record_moves: bool = False) -> None:
        policies: list[Policy | None] = [
            get_policy(t.policy)(t.high_blocks) if t.usable else None for t in spec.tiers
        ]
        super().__init__(
            policies,
            [t.high_blocks for t in spec.tiers],
            [max(t.low_blocks, 1) - 1 for t in spec.tiers],
            [t.block_bytes for t in spec.tiers],
            spec.mode == "write_through",
            record_moves,
            Move,
        )
        self.spec = spec
        self.usable = [t.usable for t in spec.tiers]
        self.where = Where(self)

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

    def access(self, block: int, next_access: int = NEVER) -> int:
        """Read one block; return the tier index it was found in, or -1 if it had to be computed."""
        found = self.tier_of(block)
        if self.needs_future:
            self.access_many((block,), (next_access,))
        else:
            self.access_many((block,))
        return -1 if found is None else found

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
