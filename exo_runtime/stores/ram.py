"""``ram``: ordinary, pageable process memory (the system-RAM tier); it goes back with the process."""

from __future__ import annotations

import torch

from exo_runtime.buffers import host_buffer
from exo_runtime.stores import register
from exo_runtime.stores.base import Footprint, StoreSettings
from exo_runtime.stores.slab import HostSlabStore
from exo_sim.spec import TierSpec


@register
class RamStore(HostSlabStore):
    """A slab of ordinary host memory."""

    medium = "ram"
    description = "pageable host memory"

    @classmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """Host memory for every slot."""
        return Footprint(host_bytes=tier.capacity_blocks * tier.block_bytes)

    def _make_slab(self, nbytes: int, settings: StoreSettings) -> torch.Tensor:
        return host_buffer(nbytes, pinned=False)
