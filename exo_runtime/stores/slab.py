"""What the host-memory stores share: a slab of host bytes, copied with numpy views.

``ram``, ``shm`` and ``pinned`` differ only in how their slab is obtained; reads and writes are the
same strided numpy copies (a run of consecutive slots is one copy), which cost well under a
microsecond of overhead each, against several for a torch ``copy_`` call.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from exo_runtime.stores.base import Store, StoreSettings, runs
from exo_sim.spec import TierSpec


class HostSlabStore(Store):
    """A store whose slab is ``slots x slot_bytes`` bytes of host memory (see the module docstring)."""

    def __init__(self, tier: TierSpec, settings: StoreSettings) -> None:
        super().__init__(tier, settings)
        self.slab = self._make_slab(self.slots * self.slot_bytes, settings)
        self._np: np.ndarray = self.slab.numpy().reshape(self.slots, self.slot_bytes)
        if settings.prefault:
            self._np.fill(0)

    @abstractmethod
    def _make_slab(self, nbytes: int, settings: StoreSettings) -> torch.Tensor:
        """A 1-D uint8 host tensor of ``nbytes`` backing the slab."""

    def host_view(self) -> torch.Tensor:
        """The slab's slots as rows of host memory."""
        return self.slab[: self.slots * self.slot_bytes].view(self.slots, self.slot_bytes)

    def read(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Copy slots into staging rows (one numpy copy per run of consecutive slots)."""
        out = rows.numpy()
        b = self.slot_bytes
        slab = self._np
        for i, s, r in runs(slots):
            out[i : i + r, :b] = slab[s : s + r]

    def write(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Copy staging rows into slots (one numpy copy per run of consecutive slots)."""
        src = rows.numpy()
        b = self.slot_bytes
        slab = self._np
        for i, s, r in runs(slots):
            slab[s : s + r] = src[i : i + r, :b]

    def close(self) -> None:
        """Drop the slab's views (the memory goes back when the last reference does)."""
        self._np = np.empty((0, self.slot_bytes), dtype=np.uint8)
        self.slab = torch.empty(0, dtype=torch.uint8)
