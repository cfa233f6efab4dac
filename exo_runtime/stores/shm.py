"""``shm``: POSIX shared memory, the shared tier of a machine with no GPU.

The slab is one ``shm_open`` object (``/dev/shm/<tag>-<tier>``, the tag naming the process) mapped into
the process. Lifetime: its name is unlinked as soon as it is mapped (``shm_unlink`` in the same
constructor call, the only window in which a name exists), so a run killed with ``kill -9`` or by a
timeout leaves nothing behind in ``/dev/shm``; the mapping stays valid until the process ends, and the
memory goes back with it. This is host memory another process
could map — not page-locked and not GPU-visible, and the runtime says so in its results.
"""

from __future__ import annotations

import os
from multiprocessing import shared_memory

import torch

from exo_runtime.errors import MachineError
from exo_runtime.stores import register
from exo_runtime.stores.base import Footprint, StoreSettings
from exo_runtime.stores.slab import HostSlabStore
from exo_sim.spec import TierSpec


@register
class ShmStore(HostSlabStore):
    """A slab of POSIX shared memory (see the module docstring)."""

    medium = "shm"
    description = "POSIX shared memory (not page-locked, not GPU-visible)"

    @classmethod
    def unavailable(cls) -> str | None:
        """POSIX shared memory needs ``/dev/shm`` (Linux)."""
        if not os.path.isdir("/dev/shm"):
            return "this machine has no /dev/shm for POSIX shared memory"
        return None

    @classmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """Shared memory (in /dev/shm) for every slot."""
        return Footprint(shm_bytes=tier.capacity_blocks * tier.block_bytes)

    def _make_slab(self, nbytes: int, settings: StoreSettings) -> torch.Tensor:
        name = f"{settings.tag}-{self.name}"
        try:
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=max(nbytes, 1))
        except OSError as err:
            raise MachineError(
                f"cannot create {nbytes} bytes of POSIX shared memory for tier {self.name}: {err.strerror}"
            ) from None
        self._shm.unlink()  # the mapping outlives the name: nothing is left behind on kill -9
        return torch.frombuffer(self._shm.buf, dtype=torch.uint8)[:nbytes]

    def close(self) -> None:
        """Drop the slab's views and unmap the shared memory."""
        super().close()
        shm: shared_memory.SharedMemory | None = getattr(self, "_shm", None)
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # a view is still referenced somewhere; the mapping goes at exit
                pass
            del self._shm
