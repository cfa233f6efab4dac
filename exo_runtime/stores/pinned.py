"""``pinned``: page-locked host memory the GPU reads directly (DMA), the shared tier of a GPU host.

The slab is allocated page-locked once, at start (``cudaHostAlloc`` through torch's
``pin_memory=True``); pinning is slow (about 1-2 GB/s), so it is never redone during a run. It
needs a GPU: on a machine without one the shared tier is ``shm`` instead, and a profile naming
``pinned`` is refused.
"""

from __future__ import annotations

import torch

from exo_runtime.buffers import host_buffer
from exo_runtime.stores import register
from exo_runtime.stores.base import Footprint, StoreSettings
from exo_runtime.stores.slab import HostSlabStore
from exo_sim.spec import TierSpec


@register
class PinnedStore(HostSlabStore):
    """A slab of page-locked host memory (needs CUDA)."""

    medium = "pinned"
    description = "page-locked host memory (cudaHostAlloc), GPU-visible"

    @classmethod
    def unavailable(cls) -> str | None:
        """Page-locking goes through the CUDA driver: no GPU, no pinned tier."""
        if not torch.cuda.is_available():
            return "page-locked memory is allocated through CUDA and this machine has no usable GPU"
        return None

    @classmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """Host memory for every slot, all of it page-locked."""
        nbytes = tier.capacity_blocks * tier.block_bytes
        return Footprint(host_bytes=nbytes, locked_bytes=nbytes)

    def _make_slab(self, nbytes: int, settings: StoreSettings) -> torch.Tensor:
        return host_buffer(nbytes, pinned=True)
