"""The store interface: one tier's memory as one pre-allocated slab cut into fixed slots.

A store is created once per tier with room for the tier's ``capacity_blocks`` blocks of
``block_bytes`` each (the decision core's own figures, so the budget can never be exceeded) and a free
list that hands out slots. It knows slots and bytes only — never block ids, codecs or policies:

* ``allocate()`` -> a free slot (:class:`StoreFull` when there is none);
* ``write(slots, rows)`` / ``read(slots, rows)`` copy whole blocks between slots and host staging rows,
  a batch at a time (``rows[i]`` <-> ``slots[i]``; runs of consecutive slots are copied in one go);
* ``free(slot)``;
* ``verify()`` checks the free list against the slots in use.

Staging rows are uint8 host tensors of shape ``(n, stride)`` with ``stride >= row_bytes`` and, for a
store with ``row_align > 1``, rows aligned to it. Only the first ``slot_bytes`` of a row are the block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from exo_sim.spec import TierSpec


class StoreFull(RuntimeError):
    """No free slot is left (the executor never asks for more than the decision core allows)."""


class StoreInvariantError(AssertionError):
    """A store's free list contradicts its slots in use (raised by :meth:`Store.verify`)."""


@dataclass(frozen=True)
class Footprint:
    """What a store takes from the machine, in bytes, by kind of resource.

    ``host_bytes`` is ordinary or page-locked process memory (``locked_bytes`` of it page-locked);
    ``shm_bytes`` is POSIX shared memory (in ``/dev/shm``, which is also host memory); ``disk_bytes`` the
    file it pre-allocates; ``device_bytes`` GPU memory.
    """

    device_bytes: int = 0
    host_bytes: int = 0
    locked_bytes: int = 0
    shm_bytes: int = 0
    disk_bytes: int = 0


@dataclass(frozen=True)
class StoreSettings:
    """Run-wide settings a store may need.

    Attributes:
        data_dir: where durable stores keep their files.
        prefault: touch every page of a memory slab at creation (no page fault in a timed copy).
        resume: reuse an existing file (its blocks are recovered by the caller).
        persist: keep a durable store's slab after the process, under its name in ``data_dir``, for a
            later ``resume`` (``exo-run`` sets it when ``runtime.data_dir`` is given). Otherwise the slab
            has no name from its creation on and goes with the process, even one killed with ``kill -9``.
        spare_fraction: extra slots a durable store keeps for copy-on-write reuse.
        tag: a name unique to this process, for named resources (shared memory).
        io_threads: positioned I/O calls a durable store keeps in flight at once.
    """

    data_dir: Path
    prefault: bool = True
    resume: bool = False
    persist: bool = False
    spare_fraction: float = 0.05
    tag: str = "exo"
    io_threads: int = 4


def runs(slots: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """Maximal runs of consecutive slots: ``(position, first_slot, length)``, in order."""
    n = len(slots)
    i = 0
    while i < n:
        first = slots[i]
        j = i + 1
        while j < n and slots[j] == first + (j - i):
            j += 1
        yield i, first, j - i
        i = j


class Store(ABC):
    """One tier's slab of ``slots`` slots of ``slot_bytes`` (see the module docstring).

    Args:
        tier: the tier, resolved (``block_bytes`` and ``capacity_blocks`` size the slab).
        settings: run-wide settings.

    Raises:
        MachineError: when the slab cannot be created on this machine.
    """

    medium: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    """Where the slab lives: ``cpu`` (host memory or a file) or ``cuda``."""
    row_align: ClassVar[int] = 1
    """Alignment the store needs of staging rows (address and stride)."""
    durable: ClassVar[bool] = False
    """Whether blocks can survive the process (a manifest then records them)."""
    persistent: bool = False
    """Whether this slab does outlive the process (a durable store created with ``settings.persist``);
    one that does not is nameless from its creation on, so nothing of it is left after any exit."""
    description: ClassVar[str] = ""

    def __init__(self, tier: TierSpec, settings: StoreSettings) -> None:
        self.tier = tier
        self.name = tier.name
        self.slot_bytes = tier.block_bytes
        self.slots = self.physical_slots(tier, settings)
        self.row_bytes = self.row_bytes_for(tier.block_bytes)
        self._free: list[int] = list(range(self.slots - 1, -1, -1))  # pops 0, 1, 2, ...
        self._in_use = bytearray(self.slots)
        self.in_use = 0

    # ------------------------------------------------------------------ what a medium declares
    @classmethod
    def unavailable(cls) -> str | None:
        """Why this medium cannot be used on this machine, or ``None`` when it can."""
        return None

    @classmethod
    def physical_slots(cls, tier: TierSpec, settings: StoreSettings) -> int:
        """Slots the slab holds (the tier's capacity in blocks; durable stores add spares)."""
        return tier.capacity_blocks

    @classmethod
    def row_bytes_for(cls, slot_bytes: int) -> int:
        """Bytes of a staging row the store reads or writes per slot."""
        return slot_bytes

    @classmethod
    @abstractmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """What a store for ``tier`` would take from the machine (checked before allocating)."""

    # ------------------------------------------------------------------ slots
    def allocate(self) -> int:
        """Take a free slot; :class:`StoreFull` if none is free."""
        if not self._free:
            raise StoreFull(f"store {self.name}: no free slot of {self.slots}")
        slot = self._free.pop()
        self._in_use[slot] = 1
        self.in_use += 1
        return slot

    def free(self, slot: int) -> None:
        """Give ``slot`` back; its bytes are not touched."""
        if not self._in_use[slot]:
            raise StoreInvariantError(f"store {self.name}: slot {slot} freed twice")
        self._in_use[slot] = 0
        self.in_use -= 1
        self._release(slot)

    def _release(self, slot: int) -> None:
        self._free.append(slot)

    def claim(self, slots: Sequence[int]) -> None:
        """Mark ``slots`` in use without allocating them (blocks recovered from an earlier run)."""
        taken = set(slots)
        for slot in taken:
            if self._in_use[slot]:
                raise StoreInvariantError(f"store {self.name}: slot {slot} claimed twice")
            self._in_use[slot] = 1
        self.in_use += len(taken)
        self._free = [s for s in self._free if s not in taken]

    @property
    def free_slots(self) -> int:
        """Slots :meth:`allocate` can hand out now."""
        return len(self._free)

    # ------------------------------------------------------------------ bytes
    @abstractmethod
    def read(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Copy each slot ``slots[i]`` into staging row ``rows[i]`` (first ``row_bytes`` bytes)."""

    @abstractmethod
    def write(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Copy staging row ``rows[i]`` into slot ``slots[i]``.

        Raises:
            OSError: from a durable store whose medium refused the write (the slot may be torn).
        """

    def host_view(self) -> torch.Tensor | None:
        """The slab as a ``(slots, slot_bytes)`` uint8 host tensor, if it is addressable host memory.

        A store that returns one can be copied to and from directly (no bounce row): the executor
        and calibration hand its slot rows straight to the other store's ``read`` or ``write``.
        """
        return None

    def synchronize(self) -> None:  # noqa: B027 - a no-op unless the medium copies asynchronously
        """Wait until every copy issued so far has finished (GPU copies are asynchronous)."""

    def sync(self) -> None:  # noqa: B027 - only durable stores have anything to do
        """Make every write so far durable (durable stores only)."""

    def reclaim(self) -> None:  # noqa: B027 - only durable stores defer reuse
        """Durable stores: let slots freed since the last manifest commit be reused."""

    def verify(self) -> None:
        """Check the free list against the slots in use; :class:`StoreInvariantError` if they disagree."""
        free = self._free
        if len(set(free)) != len(free):
            raise StoreInvariantError(f"store {self.name}: a slot is twice in the free list")
        if any(self._in_use[s] for s in free):
            raise StoreInvariantError(f"store {self.name}: a slot in use is in the free list")
        in_use = sum(self._in_use)
        if in_use != self.in_use:
            raise StoreInvariantError(f"store {self.name}: {in_use} slots marked, {self.in_use} counted")
        if in_use + len(free) + self._pending() != self.slots:
            raise StoreInvariantError(
                f"store {self.name}: {in_use} in use + {len(free)} free + {self._pending()} pending "
                f"!= {self.slots} slots"
            )

    def _pending(self) -> int:
        return 0

    def close(self) -> None:  # noqa: B027 - most slabs go back with their last reference
        """Release the slab (memory stores) or the file handle (durable stores)."""

    def describe(self) -> dict[str, object]:
        """Facts for the summary: medium, slots, bytes."""
        return {
            "tier": self.name,
            "medium": self.medium,
            "device": self.device,
            "slots": self.slots,
            "slot_bytes": self.slot_bytes,
            "row_bytes": self.row_bytes,
            "description": self.description,
        }
