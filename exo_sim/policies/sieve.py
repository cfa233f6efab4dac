"""SIEVE: a FIFO queue with one visited bit per block and a hand that sweeps from old to new.

Pseudocode::

    insert(x):  visited[x] = 0; put x at the new end of the queue
    hit(x):     visited[x] = 1
    victim():   h = hand, or the oldest block if the hand is unset
                while visited[h]: visited[h] = 0; h = next newer block (wrap to the oldest)
                hand = the block newer than h; evict h
    remove(x):  if hand == x: hand = the block newer than x; unlink x

Under prefix reuse a release changes nothing: every block a request used has its visited bit set,
and the hand sweeps from old to new, so a new chain's head is examined (and evicted) before its tail.

Reproduces libCacheSim's ``Sieve.c``: new blocks go to the head (the new end), the hand moves from
the tail towards the head and wraps to the tail, survivors never move, and the hand lands on the
evicted block's newer neighbour. A removed block that the hand points at passes the hand on to its
newer neighbour, as ``Sieve_remove`` does.

The queue is held as two ``OrderedDict`` s split at the hand: ``_ahead`` holds the hand's block and
everything newer (the part still to sweep, new blocks appended at its end) and ``_behind`` holds the
blocks the hand has already passed this round, oldest first. Passing a visited block moves it from
the front of ``_ahead`` to the end of ``_behind``; when ``_ahead`` runs out the hand wraps and the two
swap at once, so that a block inserted while the hand is unset is swept last, as in libCacheSim
(``_ahead`` is empty only when the policy is). The visited bits are a ``set`` of keys, so a hit is
one C call (bound as ``touch``).
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError


@register("sieve")
class SievePolicy(Policy):
    """SIEVE eviction (Zhang et al., NSDI '24) with libCacheSim's hand and insertion conventions."""

    __slots__ = ("_visited", "_ahead", "_behind")

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._visited: set[int] = set()
        self._ahead: OrderedDict[int, None] = OrderedDict()
        self._behind: OrderedDict[int, None] = OrderedDict()
        self.touch = self._visited.add  # a hit is one C call

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Put ``key`` at the new end of the queue, not visited."""
        self._ahead[key] = None

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Mark the resident ``key`` visited."""
        self._visited.add(key)

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` (``KeyError`` if it is not resident)."""
        self._visited.discard(key)
        ahead = self._ahead
        if key in ahead:
            del ahead[key]
            if not ahead:
                self._wrap()
        else:
            del self._behind[key]

    def victim(self) -> int:
        """Sweep the hand past visited blocks (clearing their bits) and evict the first unvisited one."""
        visited = self._visited
        ahead = self._ahead
        while True:
            key = ahead.popitem(last=False)[0]
            if key in visited:
                visited.discard(key)
                self._behind[key] = None
                if not ahead:
                    ahead = self._wrap()
            else:
                if not ahead:
                    self._wrap()
                return key

    def _wrap(self) -> OrderedDict[int, None]:
        """Move the hand from past the newest block back to the oldest (libCacheSim: pointer = NULL)."""
        self._ahead, self._behind = self._behind, self._ahead
        return self._ahead

    def __len__(self) -> int:
        return len(self._ahead) + len(self._behind)

    def __contains__(self, key: object) -> bool:
        return key in self._ahead or key in self._behind

    def verify(self) -> None:
        """Check that the two halves of the queue are disjoint and visited bits belong to resident keys."""
        super().verify()
        both = self._ahead.keys() & self._behind.keys()
        if both:
            raise PolicyInvariantError(f"sieve: keys on both sides of the hand: {sorted(both)[:5]}")
        if self._behind and not self._ahead:
            raise PolicyInvariantError("sieve: hand left past the newest block without wrapping")
        stray = self._visited - self._ahead.keys() - self._behind.keys()
        if stray:
            raise PolicyInvariantError(f"sieve: visited bits for non-resident keys: {sorted(stray)[:5]}")
