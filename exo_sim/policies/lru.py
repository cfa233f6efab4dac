"""LRU: evict the least recently used block.

Pseudocode::

    hit(x):     move x to the MRU end
    insert(x):  append x at the MRU end
    victim():   pop the LRU end
    remove(x):  unlink x

Matches libCacheSim's ``LRU.c`` exactly (insert at head, evict tail, hit moves to head); there is
nothing to break ties on. An ``OrderedDict`` is the queue: ``move_to_end`` and
``popitem(last=False)`` are O(1) in C, which a plain ``dict`` cannot offer (popping its oldest key
rescans the deleted prefix of its entry table). The hierarchy's hit fast path, ``touch``, is bound
straight to ``OrderedDict.move_to_end``.
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError


@register("lru")
class LRUPolicy(Policy):
    """Least recently used; order is kept by an ``OrderedDict`` whose first key is the LRU block."""

    __slots__ = ("_order",)

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._order: OrderedDict[int, None] = OrderedDict()
        self.touch = self._order.move_to_end  # a hit is one C call

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Append ``key`` at the MRU end."""
        self._order[key] = None

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Move the resident ``key`` to the MRU end (``KeyError`` if it is not resident)."""
        self._order.move_to_end(key)

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` (``KeyError`` if it is not resident)."""
        del self._order[key]

    def victim(self) -> int:
        """Pop and return the LRU key (``KeyError`` if empty)."""
        return self._order.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def verify(self) -> None:
        """Check the resident count against capacity and that every value is the ``None`` marker."""
        super().verify()
        if any(v is not None for v in self._order.values()):
            raise PolicyInvariantError("lru: queue holds a value other than None")
