"""S3-FIFO: a small probationary FIFO, a main FIFO run as a 2-bit CLOCK, and a ghost FIFO of keys.

Pseudocode (S = small, M = main, G = ghost; ``freq`` counts hits while resident)::

    insert(x):  if x in G: remove x from G; put x in M          # it came back soon: keep it longer
                elif no eviction yet and S is full: put x in M
                else: put x in S
                freq[x] = 0
    hit(x):     freq[x] += 1
    victim():   if |M| > M_size or S is empty: evict_main()
                else: evict_small(), then evict_main() if S ran empty without evicting
    evict_small: pop the oldest y of S:
                 if freq[y] >= 2: move y to M with freq 0 and go on; else evict y and append y to G
    evict_main:  pop the oldest y of M:
                 if freq[y] >= 1: reinsert y at M's new end with freq min(freq, 3) - 1 and go on
                 else: evict y

This reproduces libCacheSim's ``S3FIFO.c`` (the 2024 version, default parameters
``small-size-ratio=0.10, ghost-size-ratio=0.90, move-to-main-threshold=2``) block for block:

* sizes are ``S_size = int(capacity * 0.1)``, ``M_size = capacity - S_size`` and
  ``G_size = int(capacity * 0.9)`` keys (no ghost when that is 0), with C's truncating casts;
* a block needs *two* hits in S (``freq >= 2``) to be promoted to M, and arrives there with freq 0;
* before the very first eviction, new blocks go to M once S is full (the ``has_evicted`` flag);
* a promotion from S to M does not end an eviction: S keeps being drained until one block is really
  evicted; if S empties first, M evicts (libCacheSim's outer evict loop does the same);
* M is a CLOCK with a 2-bit counter: on its turn a block with freq f >= 1 goes back with min(f, 3) - 1.

libCacheSim removes an incoming key from G when it *looks it up*, before it makes room; here the
policy learns the key only at ``insert``, after the victims. So G is trimmed lazily: victims are
appended to G untrimmed, and ``insert`` first takes the key out of G, then trims G to ``G_size`` from
its old end. A FIFO of bounded size after a run of appends holds the newest ``G_size`` keys, so this
gives exactly libCacheSim's ghost (the incoming key is never one of the victims just appended).

Deviations, on purpose:

* ``remove(x)`` (a block promoted out of the tier) does **not** put x in G: it leaves the tier
  because it is hot, not because it was evicted.
* libCacheSim refuses capacities with ``S_size == 0`` (< 10 blocks) and, for 10-19 blocks
  (``S_size == 1``), admits nothing at all that is not a ghost hit (its ``S3FIFO_insert`` returns
  NULL when the object is as large as S), so its miss ratio there is 1.0. Here ``S_size`` is at
  least 1 and a block always fits: below 20 blocks this is a sensible S3-FIFO, not libCacheSim's.

Under prefix reuse a release changes nothing. New blocks enter the small FIFO head first, so a
one-off chain leaves head first; the shared heads that are read again reach the main FIFO.
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError

SMALL_SIZE_RATIO = 0.10
"""Share of the capacity given to the small (probationary) FIFO, libCacheSim's default."""
GHOST_SIZE_RATIO = 0.90
"""Ghost FIFO length as a share of the capacity, libCacheSim's default."""
MOVE_TO_MAIN_THRESHOLD = 2
"""Hits a block needs while in the small FIFO to be promoted to main, libCacheSim's default."""


@register("s3fifo")
class S3FIFOPolicy(Policy):
    """S3-FIFO (Yang et al., SOSP '23) with libCacheSim's ``S3FIFO`` sizes and rules."""

    __slots__ = (
        "_small",
        "_main",
        "_ghost",
        "_freq",
        "small_size",
        "main_size",
        "ghost_size",
        "_has_evicted",
    )

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self.small_size = max(1, int(capacity_blocks * SMALL_SIZE_RATIO))
        self.main_size = capacity_blocks - self.small_size
        self.ghost_size = int(capacity_blocks * GHOST_SIZE_RATIO)
        self._small: OrderedDict[int, None] = OrderedDict()
        self._main: OrderedDict[int, None] = OrderedDict()
        self._ghost: OrderedDict[int, None] = OrderedDict()
        self._freq: dict[int, int] = {}
        self._has_evicted = False

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Admit ``key``: to main if it is a ghost (or S is full before any eviction), else to small."""
        ghost = self._ghost
        if key in ghost:
            del ghost[key]
            self._main[key] = None
        elif not self._has_evicted and len(self._small) >= self.small_size:
            self._main[key] = None
        else:
            self._small[key] = None
        self._freq[key] = 0
        if len(ghost) > self.ghost_size:
            popitem = ghost.popitem
            for _ in range(len(ghost) - self.ghost_size):
                popitem(last=False)

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Count a hit on the resident ``key``."""
        self._freq[key] += 1

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` without ghosting it (``KeyError`` if it is not resident)."""
        del self._freq[key]
        if key in self._small:
            del self._small[key]
        else:
            del self._main[key]

    def victim(self) -> int:
        """Evict one block as libCacheSim's ``S3FIFO_evict`` (repeated until something leaves)."""
        self._has_evicted = True
        freq = self._freq
        small = self._small
        main = self._main
        if small and len(main) <= self.main_size:
            while small:
                key = small.popitem(last=False)[0]
                if freq[key] >= MOVE_TO_MAIN_THRESHOLD:
                    main[key] = None
                    freq[key] = 0
                else:
                    del freq[key]
                    if self.ghost_size:
                        self._ghost[key] = None
                    return key
        while True:
            key = main.popitem(last=False)[0]
            f = freq[key]
            if f:
                main[key] = None
                freq[key] = (f if f < 3 else 3) - 1
            else:
                del freq[key]
                return key

    def __len__(self) -> int:
        return len(self._freq)

    def __contains__(self, key: object) -> bool:
        return key in self._freq

    def verify(self) -> None:
        """Check that small and main are disjoint, hold exactly the counted keys, and miss the ghost."""
        super().verify()
        small, main = self._small.keys(), self._main.keys()
        if small & main:
            raise PolicyInvariantError(f"s3fifo: keys in both small and main: {sorted(small & main)[:5]}")
        if len(small) + len(main) != len(self._freq) or (small | main) != self._freq.keys():
            raise PolicyInvariantError("s3fifo: queues and counters disagree")
        if self._ghost.keys() & self._freq.keys():
            raise PolicyInvariantError("s3fifo: a resident key is also a ghost")
        if any(f < 0 for f in self._freq.values()):
            raise PolicyInvariantError("s3fifo: negative counter")
        if self.small_size + self.main_size != self.capacity_blocks:
            raise PolicyInvariantError("s3fifo: queue sizes do not add up to the capacity")
