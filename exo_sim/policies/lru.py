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
nothing to break ties on. An ``OrderedDict`` is the queue: ``move_to_end`` and
``popitem(last=False)`` are O(1) in C, which a plain ``dict`` cannot offer (popping its oldest key
rescans the deleted prefix of its entry table). The hierarchy's hit fast path, ``touch``, is bound
straight to ``OrderedDict.move_to_end``.
"""

from __future__ import annotations

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, QueuePolicy


@register("lru")
class LRUPolicy(QueuePolicy):
    """Least recently used; order is kept by an ``OrderedDict`` whose first key is the LRU block."""

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self.touch = self._order.move_to_end  # a hit is one C call
        self.release = self._order.move_to_end  # tail-first: a chain's head ends up most recent

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Move the resident ``key`` to the MRU end (``KeyError`` if it is not resident)."""
        self._order.move_to_end(key)
