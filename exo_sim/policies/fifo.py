"""FIFO: evict the block that was inserted first; hits change nothing.

Pseudocode::

    hit(x):     (nothing)
    insert(x):  append x at the tail
    victim():   pop the head (oldest insertion)
    remove(x):  unlink x

Under prefix reuse a request's new blocks are inserted head first and a release changes nothing,
so FIFO evicts a chain's head before its tail: the tail is left resident but unusable (stranded)
until it ages out. That is FIFO's real cost on prefix caches, and the results count it.

Matches libCacheSim's ``FIFO.c`` exactly (a hit does not touch the queue). The queue is an
``OrderedDict`` so that popping the oldest key is O(1). ``touch`` (the hierarchy's hit fast path)
is ``None``: there is nothing to do on a hit.
"""

from __future__ import annotations

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, QueuePolicy


@register("fifo")
class FIFOPolicy(QueuePolicy):
    """First in, first out; the first key of an ``OrderedDict`` is the oldest insertion."""

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self.touch = None  # a hit changes nothing

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Do nothing: FIFO ignores hits."""
