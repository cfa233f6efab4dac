"""FIFO: evict the block that was inserted first; hits change nothing.

Pseudocode::

    hit(x):     (nothing)
    insert(x):  append x at the tail
    victim():   pop the head (oldest insertion)
    remove(x):  unlink x

Under prefix reuse a request's new blocks are inserted head first and a release changes nothing,
so FIFO evicts a chain's head before its tail: the tail is left resident but unusable (stranded)
until it ages out. That is FIFO's real cost on prefix caches, and the results count it.

Matches libCacheSim's ``FIFO.c`` exactly (a hit does not touch the queue). Compiled with LRU
(``exo_sim/native/queue.c``, the same queue); ``touch`` (the hierarchy's hit fast path) is ``None``:
there is nothing to do on a hit.
"""

from __future__ import annotations

from exo_sim._core import FIFOPolicy
from exo_sim.policies import register

register("fifo")(FIFOPolicy)

__all__ = ["FIFOPolicy"]
