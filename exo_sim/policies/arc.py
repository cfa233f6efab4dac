"""ARC: two LRU lists, T1 (seen once) and T2 (seen again), with ghost lists B1/B2 steering a target p.

Pseudocode (c = capacity; lists keep their LRU end first; p starts at 0.0)::

    prepare_insert(x):                       # a miss on x, before room is made for it
        if x in B1: p = min(p + max(|B2| / |B1|, 1), c); remove x from B1; ghost_hit = 1
        if x in B2: p = max(p - max(|B1| / |B2|, 1), 0); remove x from B2; ghost_hit = 2
    hit(x):     move x to the MRU end of T2 (from T1 or T2)
    insert(x):  MRU end of T2 if x was a ghost hit, else MRU end of T1
    victim():   if ghost_hit: return replace()
                if |T1| + |B1| + 1 > c:
                    if B1: drop the LRU of B1; return replace()
                    else: evict the LRU of T1 outright (no ghost)
                else:
                    if |T1| + |B1| + |T2| + |B2| >= 2c and B2: drop the LRU of B2
                    return replace()
    replace():  if (|T1| > 0 and (|T1| > p or (|T1| == p and ghost_hit == 2))) or |T2| == 0:
                    move the LRU of T1 to the MRU end of B1
                else:
                    move the LRU of T2 to the MRU end of B2

This is libCacheSim's ``ARC.c`` (current version) exactly: ``p`` and ``delta`` are floats, delta is
computed before the ghost entry is removed, p is clamped to [0, c], the ``+ 1`` is the incoming
block's size, ``|T2| == 0`` forces a T1 eviction, and when ``T1 ∪ B1`` is full with B1 empty the T1
victim leaves without a ghost entry.

**The pre-eviction hook.** libCacheSim adjusts ``p`` and drops the ghost entry when it *looks up*
the missing key, before it evicts, and the victim it then picks depends on that (through p and
``ghost_hit``). The :class:`~exo_sim.policies.base.Policy` interface calls ``victim()`` before
``insert(key)`` and never names the incoming key, so ARC adds one method, :meth:`prepare_insert`,
that the caller invokes on a miss *before* asking for victims. With it, ARC matches libCacheSim
exactly. Without it (a caller that only knows the base interface), ``insert`` still handles a ghost
hit itself (adjusts p, takes the key out of its ghost list, puts it in T2), which is a sound ARC, but
the victims for that miss were chosen with the old p.

``remove(x)`` (a block promoted out of the tier) unlinks x from T1/T2 and does **not** add it to a
ghost list, like libCacheSim's ``ARC_remove``: a promotion is not an eviction.

Under prefix reuse a release changes nothing: a hit moves a block to T2's MRU end in chain order,
so within one request the head is less recent than the tail and goes first.
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError


@register("arc")
class ARCPolicy(Policy):
    """Adaptive Replacement Cache (Megiddo & Modha, FAST '03) as implemented by libCacheSim."""

    __slots__ = ("_t1", "_t2", "_b1", "_b2", "p", "_ghost_hit", "_pending")

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._t1: OrderedDict[int, None] = OrderedDict()
        self._t2: OrderedDict[int, None] = OrderedDict()
        self._b1: OrderedDict[int, None] = OrderedDict()
        self._b2: OrderedDict[int, None] = OrderedDict()
        self.p: float = 0.0
        """Target size of T1 in blocks (a float, as in libCacheSim)."""
        self._ghost_hit = 0
        self._pending: int | None = None

    def prepare_insert(self, key: int) -> None:
        """Announce a miss on ``key`` before the victims that make room for it are chosen.

        A ghost hit adapts ``p`` and removes ``key`` from its ghost list here, as libCacheSim does
        on lookup; the following ``victim()`` calls and ``insert(key)`` then act on it.
        """
        self._pending = key
        self._ghost_hit = self._ghost_lookup(key)

    def _ghost_lookup(self, key: int) -> int:
        """Adapt ``p`` for a ghost hit on ``key`` and drop the ghost entry; return which list (0: none)."""
        b1 = self._b1
        b2 = self._b2
        if key in b1:
            delta = len(b2) / len(b1)
            p = self.p + (delta if delta > 1 else 1)
            self.p = p if p < self.capacity_blocks else float(self.capacity_blocks)
            del b1[key]
            return 1
        if key in b2:
            delta = len(b1) / len(b2)
            p = self.p - (delta if delta > 1 else 1)
            self.p = p if p > 0 else 0.0
            del b2[key]
            return 2
        return 0

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Put ``key`` at the MRU end of T2 after a ghost hit, else at the MRU end of T1."""
        hit = self._ghost_hit if key == self._pending else self._ghost_lookup(key)
        if hit:
            self._t2[key] = None
        else:
            self._t1[key] = None
        self._ghost_hit = 0
        self._pending = None

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Move the resident ``key`` to the MRU end of T2."""
        t1 = self._t1
        if key in t1:
            del t1[key]
            self._t2[key] = None
        else:
            self._t2.move_to_end(key)

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` without a ghost entry (``KeyError`` if it is not resident)."""
        if key in self._t1:
            del self._t1[key]
        else:
            del self._t2[key]

    def victim(self) -> int:
        """Choose, forget and return the next victim, following libCacheSim's ``ARC_evict``."""
        if self._ghost_hit:
            return self._replace()
        t1 = self._t1
        b1 = self._b1
        c = self.capacity_blocks
        if len(t1) + len(b1) + 1 > c:
            if b1:
                b1.popitem(last=False)
                return self._replace()
            return t1.popitem(last=False)[0]
        b2 = self._b2
        if b2 and len(t1) + len(b1) + len(self._t2) + len(b2) >= 2 * c:
            b2.popitem(last=False)
        return self._replace()

    def _replace(self) -> int:
        """REPLACE of the paper: demote the LRU of T1 or T2 to its ghost list and return it."""
        t1 = self._t1
        n1 = len(t1)
        if (n1 and (n1 > self.p or (n1 == self.p and self._ghost_hit == 2))) or not self._t2:
            key = t1.popitem(last=False)[0]
            self._b1[key] = None
        else:
            key = self._t2.popitem(last=False)[0]
            self._b2[key] = None
        return key

    def __len__(self) -> int:
        return len(self._t1) + len(self._t2)

    def __contains__(self, key: object) -> bool:
        return key in self._t1 or key in self._t2

    def verify(self) -> None:
        """Check that T1, T2, B1, B2 are pairwise disjoint, p is within [0, c] and the ghosts are bounded.

        The paper's ``|T1| + |B1| <= c`` and ``|T1| + |T2| + |B1| + |B2| <= 2c`` hold on a single
        tier, but an ``insert`` that needs no victim (room left by ``remove``) may exceed them for a
        while; what always holds is ``|B1| + |B2| <= 2c`` (a victim adds at most one ghost entry, and
        only while the four lists hold fewer than 2c keys, or after dropping one).
        """
        super().verify()
        lists = {"T1": self._t1.keys(), "T2": self._t2.keys(), "B1": self._b1.keys(), "B2": self._b2.keys()}
        names = list(lists)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                common = lists[a] & lists[b]
                if common:
                    raise PolicyInvariantError(f"arc: keys in both {a} and {b}: {sorted(common)[:5]}")
        c = self.capacity_blocks
        if not 0 <= self.p <= c:
            raise PolicyInvariantError(f"arc: p = {self.p} outside [0, {c}]")
        ghosts = len(self._b1) + len(self._b2)
        if ghosts > 2 * c:
            raise PolicyInvariantError(f"arc: {ghosts} ghost entries exceed 2c = {2 * c}")
