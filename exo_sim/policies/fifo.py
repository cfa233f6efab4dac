"""FIFO: evict the block that was inserted first; hits change nothing.

Pseudocode::

    hit(x):     (nothing)
    insert(x):  append x at the tail
    victim():   pop the head (oldest insertion)
    remove(x):  unlink x

Matches libCacheSim's ``FIFO.c`` exactly (a hit does not touch the queue). The queue is an
``OrderedDict`` so that popping the oldest key is O(1). ``touch`` (the hierarchy's hit fast path)
is ``None``: there is nothing to do on a hit.
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError


@register("fifo")
class FIFOPolicy(Policy):
    """First in, first out; the first key of an ``OrderedDict`` is the oldest insertion."""

    __slots__ = ("_order",)

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._order: OrderedDict[int, None] = OrderedDict()
        self.touch = None  # a hit changes nothing

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Append ``key`` at the tail."""
        self._order[key] = None

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Do nothing: FIFO ignores hits."""

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` (``KeyError`` if it is not resident)."""
        del self._order[key]

    def victim(self) -> int:
        """Pop and return the oldest inserted key (``KeyError`` if empty)."""
        return self._order.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def verify(self) -> None:
        """Check the resident count against capacity and that every value is the ``None`` marker."""
        super().verify()
        if any(v is not None for v in self._order.values()):
            raise PolicyInvariantError("fifo: queue holds a value other than None")
