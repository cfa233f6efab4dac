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

``p`` (read-only) and ``list_of(key)`` (``"T1"``, ``"T2"``, ``"B1"``, ``"B2"`` or ``None``) show the
state. ``verify`` checks the four lists' links against their counts and the index (one index over
the four lists, so they are disjoint by construction), ``0 <= p <= c`` and ``|B1| + |B2| <= 2c`` (the
paper's ``|T1| + |B1| <= c`` and ``|T1| + |T2| + |B1| + |B2| <= 2c`` hold on a single tier, but an
``insert`` that needs no victim, room left by ``remove``, may exceed them for a while).

Compiled (``exo_sim/native/arc.c``): the four lists are doubly linked lists of nodes in one array
with one int64 hash map from key to node; the hierarchy calls it through its C vtable, and the
methods here call that same code.
"""

from __future__ import annotations

from exo_sim._core import ARCPolicy
from exo_sim.policies import register

register("arc")(ARCPolicy)

__all__ = ["ARCPolicy"]
