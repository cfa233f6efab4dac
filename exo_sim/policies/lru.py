"""LRU: evict the least recently used block.

Pseudocode::

    hit(x):     move x to the MRU end
    insert(x):  append x at the MRU end
    victim():   pop the LRU end
    remove(x):  unlink x

Under prefix reuse a finished request's blocks are released tail-first and each moves to the MRU
end again (``release``), so its chain's head is the most recent and its tail is evicted first, as
in vLLM's free queue: the resident set stays prefix-closed (a chain's cached blocks are a prefix).

Matches libCacheSim's ``LRU.c`` exactly (insert at head, evict tail, hit moves to head); there is
nothing to break ties on. Compiled (``exo_sim/native/queue.c``): the queue is a doubly linked list
of 16-byte nodes in one array, indexed by an int64 hash map; the hierarchy calls it through its C
vtable, and the methods here (``insert``, ``access``, ``victim``...) call that same code.
"""

from __future__ import annotations

from exo_sim._core import LRUPolicy
from exo_sim.policies import register

register("lru")(LRUPolicy)

__all__ = ["LRUPolicy"]
