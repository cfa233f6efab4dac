"""``cuda``: a slab of GPU device memory (the VRAM tier).

The slab is one ``torch.empty`` on the current device, sized before anything else is allocated and
only after the fit check has compared it with the device's free memory (pynvml). Copies to and from
host staging rows are asynchronous on the current stream (true DMA when the staging pool is
page-locked, which it is whenever a GPU exists); :meth:`CudaStore.synchronize` waits for them, and the
executor times them with CUDA events. On a machine with no GPU this store is unavailable and a
profile naming ``cuda`` is refused — host memory is never passed off as VRAM.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from exo_runtime.stores import register
from exo_runtime.stores.base import Footprint, Store, StoreSettings, runs
from exo_sim.spec import TierSpec


@register
class CudaStore(Store):
    """A slab of device memory (see the module docstring)."""

    medium = "cuda"
    device = "cuda"
    description = "GPU device memory"

    def __init__(self, tier: TierSpec, settings: StoreSettings) -> None:
        super().__init__(tier, settings)
        self.slab = torch.empty((self.slots, self.slot_bytes), dtype=torch.uint8, device="cuda")
        if settings.prefault:
            self.slab.zero_()
            torch.cuda.synchronize()

    @classmethod
    def unavailable(cls) -> str | None:
        """Needs a CUDA device that torch can use."""
        if not torch.cuda.is_available():
            return "this machine has no usable GPU (torch.cuda.is_available() is false)"
        return None

    @classmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """Device memory for every slot."""
        return Footprint(device_bytes=tier.capacity_blocks * tier.block_bytes)

    def read(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Device -> host copies, one per run of consecutive slots, asynchronous."""
        b = self.slot_bytes
        for i, s, r in runs(slots):
            rows[i : i + r, :b].copy_(self.slab[s : s + r], non_blocking=True)

    def write(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """Host -> device copies, one per run of consecutive slots, asynchronous."""
        b = self.slot_bytes
        for i, s, r in runs(slots):
            self.slab[s : s + r].copy_(rows[i : i + r, :b], non_blocking=True)

    def synchronize(self) -> None:
        """Wait for the copies issued on the current stream."""
        torch.cuda.current_stream().synchronize()

    def close(self) -> None:
        """Release the device slab."""
        self.slab = torch.empty(0, dtype=torch.uint8)
        torch.cuda.empty_cache()
