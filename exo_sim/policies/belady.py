"""Belady's MIN: evict the resident block whose next reference is furthest in the future.

Pseudocode::

    insert(x, t) / hit(x, t):  next[x] = t; (t, x) takes x's place in a max-heap on t
    victim():                  pop the top (t, x) of the heap; evict x
    remove(x):                 forget next[x]; take x out of the heap

``t`` is the access index (vtime) of x's next reference, or ``NEVER`` (``sys.maxsize``, which is
libCacheSim's ``INT64_MAX``) when x is not referenced again: infinitely far, so such blocks go first.
Only the *order* of these numbers matters, so any numbering works as long as the caller numbers every
access it replays the same way and ``t`` is the number of the *next* access to the same block. The
single-tier tests use the oracleGeneral traces' own field: there the i-th record (0-based) is vtime
i + 1 and ``next_access_vtime`` names the record of the next request (-1, none, becomes ``NEVER``),
which is exactly what libCacheSim's ``Belady`` reads. A replay that numbers accesses 0, 1, 2, ... and
passes the index of the next one is equally right.

Matches libCacheSim's ``Belady.c`` (a priority queue keyed on ``next_access_vtime``, updated on
every hit; ``EVICT_IMMEDIATELY_IF_NO_FUTURE_ACCESS`` off). Two resident blocks can only tie at
``NEVER``; libCacheSim breaks that tie by heap position, here by the smaller key, and the choice
cannot change a hit count (neither block is referenced again).

Under prefix reuse a release changes nothing: the order is the future, not the past; a chain's
head is read again no later than its tail, so MIN keeps heads at least as long.

Compiled (``exo_sim/native/belady.c``): an indexed binary heap ordered by (next access, descending;
key, ascending), so the first entry is the victim; each key has one entry, moved in place on an
update (no stale entries, nothing to rebuild), and an int64 hash map from key to node. As in the
former Python version, ``access`` of a key that is not resident makes it resident and ``insert`` of
a resident key updates it. ``verify`` checks that every resident key has exactly its heap entry and
that the heap is ordered. The class attribute ``needs_future`` is True: the replay computes
``next_access`` for it.
"""

from __future__ import annotations

from exo_sim._core import BeladyPolicy
from exo_sim.policies import register

register("belady")(BeladyPolicy)

__all__ = ["BeladyPolicy"]
