"""The eviction-policy interface shared by every tier of the hierarchy.

A policy holds metadata only: which resident blocks a tier has and in what order it would give them
up. It never counts bytes and never decides *when* to evict: the hierarchy (the one place where
find -> promote/admit -> evict-until-it-fits -> insert is written) asks for a victim whenever the
tier is over its watermark, exactly like libCacheSim's ``cache_get_base`` loop.

Call order, which every implementation may rely on:

* ``prepare_insert(key)`` (only if the policy defines it; ARC does) when ``key`` is about to be
  admitted, *before* any victim is asked for — the policy may look the key up in its ghost lists
  then, as libCacheSim does on its lookup;
* ``insert(key, next_access)`` for a key that is not resident, *after* the hierarchy has made room;
* ``access(key, next_access)`` for a hit on a resident key;
* ``remove(key)`` when a resident key leaves the tier other than as a victim (promotion);
* ``victim()`` chooses a resident key, forgets it, and returns it (the tier is never empty then).

``next_access`` is the access index (vtime) of this key's next reference, or :data:`NEVER` when it is
not referenced again; only policies with ``needs_future = True`` (Belady) read it, and the replay
computes it only for those.

exo's own policies are compiled (``exo_sim/native``; each module here registers its C type, a
virtual subclass of :class:`Policy`). A policy written in Python subclasses :class:`Policy` and
registers itself the same way (``exo_sim.policies.register``); the compiled hierarchy then calls its
methods from C, a slower path with the same decisions (``tests/test_user_policy.py``).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from exo_sim._core import NativePolicy

NEVER: int = sys.maxsize
"""``next_access`` value of a key that is never referenced again."""


class PolicyInvariantError(AssertionError):
    """A policy's metadata contradicts itself (raised by :meth:`Policy.verify`)."""


class Policy(ABC):
    """Eviction metadata for one tier, sized in blocks.

    Args:
        capacity_blocks: how many blocks the tier may hold before it must evict (> 0). Policies
            that split their space (S3-FIFO, ARC) size their parts from it.

    """

    name: ClassVar[str] = ""
    needs_future: ClassVar[bool] = False

    prepare_insert: Callable[[int], None] | None = None
    """Optional hook: told the key about to be admitted before its victims are chosen (see above)."""

    touch: Callable[[int], object] | None
    """Records a hit when next-access times are not in use: a one-argument callable, or ``None`` when
    a hit changes nothing (FIFO). It defaults to :meth:`access`; it must have exactly the effect of
    ``access(key, NEVER)``."""

    release: Callable[[int], object] | None = None
    """Optional hook: under prefix reuse, the request that held this resident key has finished. A
    request's keys arrive tail-first (its chain's last block first), as a serving engine frees them;
    ``None`` (the default) when the policy's order does not change then. Each policy's docstring
    says what it makes of that order."""

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks <= 0:
            raise ValueError("capacity_blocks must be > 0")
        self.capacity_blocks = capacity_blocks
        self.touch = self.access

    @abstractmethod
    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Record ``key`` as newly resident (it was not resident before)."""

    @abstractmethod
    def access(self, key: int, next_access: int = NEVER) -> None:
        """Record a hit on the resident ``key``."""

    @abstractmethod
    def remove(self, key: int) -> None:
        """Forget the resident ``key``, which leaves the tier without being a victim."""

    @abstractmethod
    def victim(self) -> int:
        """Choose the resident key to evict next, forget it and return it."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of resident keys."""

    @abstractmethod
    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is resident."""

    def verify(self) -> None:
        """Check the metadata's internal consistency; raise :class:`PolicyInvariantError` if broken."""
        if len(self) > self.capacity_blocks:
            raise PolicyInvariantError(
                f"{self.name}: {len(self)} resident keys exceed capacity {self.capacity_blocks}"
            )


Policy.register(NativePolicy)  # the compiled policies (exo_sim/native) keep this interface
