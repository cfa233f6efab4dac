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

Compiled (``exo_sim/native/sieve.c``): one doubly linked list, oldest first, over an array of
17-byte nodes (key, links, visited bit), indexed by an int64 hash map, and the hand, the node the
next sweep starts at (unset only when the policy is empty). ``touch`` (the hierarchy's hit path)
sets the visited bit; the hierarchy calls the C vtable, and the methods here call that same code.
"""

from __future__ import annotations

from exo_sim._core import SievePolicy
from exo_sim.policies import register

register("sieve")(SievePolicy)

__all__ = ["SievePolicy"]
