"""What the executor's jobs hand each other: a tier's copy of a block, a corrupted copy, one link's additions.

A copy records where a block lives in a tier (its slot), the CRC-32 of the bytes stored there and how
far its decoded values may stray from the block's birth data. A batch's additions are grouped by link
(source tier, or :data:`BIRTH`, and destination tier); each :class:`LinkGroup` gathers, as its
additions are carried out, the records their new copies will have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

BIRTH = -1
"""Origin of a block that is computed (born) rather than copied from a tier."""

Entry = tuple[int, int, int, int, float, bool]
"""A manifest entry as :class:`~exo_runtime.manifest.Manifest` keeps it: slot, crc, birth crc, sequence
number, error bound, lossless."""


class BirthSource(Protocol):
    """Where a computed block's data comes from: the engine's model, or seeded data (``compute=seeded``).

    ``birth(blocks, x, raw)`` writes block ``blocks[i]``'s float32 elements into ``x[i]`` and its raw
    bytes (RAG text) into ``raw[i, :raw_bytes]``; a block's data must depend on the block alone.
    """

    def birth(self, blocks: Sequence[int], x: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Fill ``x[i]`` and ``raw[i]`` with block ``blocks[i]``'s data."""


@dataclass(slots=True)
class Copy:
    """One tier's copy of a block: its slot, the CRC-32 of its stored bytes, and its fidelity.

    ``bound`` is the bound on its decoded elements' distance from the birth data (the sum of the
    bounds of every lossy encoding on its way); ``lossless`` says no lossy codec ever touched it.
    """

    slot: int
    crc: int
    bound: float
    lossless: bool
    stale: bool = False
    """Its bytes are not the block's data (its KV is not computed yet, or it was copied from a
    corrupted source with nothing to regenerate it from): never served, never listed in a manifest."""


@dataclass
class Corruption:
    """A copy whose bytes (or decoded values) were not what was written."""

    block: int
    tier: str
    slot: int
    reason: str


@dataclass
class LinkGroup:
    """One link group of a batch: blocks from tier ``src`` (or born) into tier ``dst``.

    ``slots`` are the destination slots given to ``blocks``; ``staged`` holds the source rows read
    ahead into the staging pool, by index; ``crcs``, ``bounds``, ``lossless`` and ``stale`` are the
    records of the new copies, filled in as each addition is carried out.
    """

    src: int
    dst: int
    blocks: list[int]
    slots: list[int] = field(default_factory=list)
    staged: dict[int, torch.Tensor] = field(default_factory=dict)
    crcs: list[int] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    lossless: list[bool] = field(default_factory=list)
    stale: list[bool] = field(default_factory=list)

    def reserve(self, slots: list[int]) -> None:
        """Take the destination ``slots`` (one per block) and blank the new copies' records."""
        n = len(self.blocks)
        self.slots = slots
        self.crcs, self.bounds, self.lossless, self.stale = [0] * n, [0.0] * n, [False] * n, [False] * n

    def note(self, i: int, crc: int, bound: float, lossless: bool, stale: bool) -> None:
        """Record what addition ``i``'s new copy holds."""
        self.crcs[i], self.bounds[i], self.lossless[i], self.stale[i] = crc, bound, lossless, stale

    def keep(self, i: int, c: Copy) -> None:
        """Addition ``i``'s new copy holds the source copy ``c``'s bytes unchanged."""
        self.crcs[i], self.bounds[i], self.lossless[i], self.stale[i] = c.crc, c.bound, c.lossless, c.stale

    def copy(self, i: int) -> Copy:
        """Addition ``i``'s new copy, as recorded."""
        return Copy(self.slots[i], self.crcs[i], self.bounds[i], self.lossless[i], self.stale[i])


Release = Callable[[LinkGroup, list[int]], None]
"""Called with a group and indices of its additions once their source slots are read."""


def recovered_copy(entry: Any) -> tuple[int, Copy, int]:
    """``(block, copy, birth_crc)`` from a manifest record."""
    return (
        int(entry["block"]),
        Copy(int(entry["slot"]), int(entry["crc"]), float(entry["error_bound"]), bool(entry["lossless"])),
        int(entry["birth_crc"]),
    )
