"""Does a config fit this machine? Checked before anything is allocated, refused in one sentence.

Room is what the machine really has now: free device memory (pynvml, else torch), available host
memory (psutil, capped by the cgroup's ``memory.max`` less its ``memory.current`` when the process
runs in one), free space in ``/dev/shm`` for shared memory, and free disk where the file tiers go
(plus what their slab files already take, when a run resumes on them).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from exo_runtime.errors import MachineError
from exo_runtime.nvml import GpuMemoryProbe
from exo_runtime.stores.base import Footprint

GiB = 1024**3


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB / 100 else f"{n / 1024**2:.1f} MiB"


def cgroup_room_bytes() -> int | None:
    """Bytes the process's cgroup (v2) still allows, or ``None`` when it sets no limit."""
    try:
        rel = next(
            line.split("::", 1)[1].strip()
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text().strip())
    except (OSError, StopIteration, ValueError):
        return None


@dataclass(frozen=True)
class MachineRoom:
    """What this machine can give right now, in bytes (``None``: no such resource)."""

    device_free_bytes: int | None
    host_available_bytes: int
    shm_free_bytes: int | None
    disk_free_bytes: int


def machine_room(data_dir: Path) -> MachineRoom:
    """Measure the room now (see the module docstring)."""
    gpu = GpuMemoryProbe().read()
    device_free: int | None = gpu[1] if gpu else None
    if device_free is None:
        import torch

        if torch.cuda.is_available():
            device_free = int(torch.cuda.mem_get_info()[0])
    host = int(psutil.virtual_memory().available)
    cg = cgroup_room_bytes()
    if cg is not None:
        host = min(host, cg)
    shm = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else None
    return MachineRoom(device_free, host, shm, shutil.disk_usage(data_dir).free)


def check_fit(
    hardware: str,
    parts: list[tuple[str, Footprint]],
    room: MachineRoom,
    reusable_disk_bytes: int = 0,
) -> None:
    """Refuse, in one sentence, a set of footprints the machine cannot hold.

    Args:
        hardware: the profile's name (for the message).
        parts: ``(what, footprint)`` pairs: each tier's store, and the staging buffers.
        room: the machine's room (:func:`machine_room`).
        reusable_disk_bytes: disk the file tiers' existing slab files already hold (resume).

    Raises:
        MachineError: naming what needs how much and what the machine has.
    """

    def need(kind: str) -> tuple[int, str]:
        items = [(what, getattr(fp, kind)) for what, fp in parts if getattr(fp, kind)]
        return sum(n for _, n in items), ", ".join(f"{what} {_gib(n)}" for what, n in items)

    device, device_items = need("device_bytes")
    if device and (room.device_free_bytes is None or device > room.device_free_bytes):
        has = "no GPU" if room.device_free_bytes is None else f"{_gib(room.device_free_bytes)} free"
        raise MachineError(
            f"hardware {hardware} needs {_gib(device)} of GPU memory ({device_items}) but this machine "
            f"has {has}; lower the cuda tier's capacity_bytes or choose a smaller hardware profile"
        )
    shm, shm_items = need("shm_bytes")
    if shm and room.shm_free_bytes is not None and shm > room.shm_free_bytes:
        raise MachineError(
            f"hardware {hardware} needs {_gib(shm)} of shared memory ({shm_items}) but /dev/shm has "
            f"{_gib(room.shm_free_bytes)} free; lower the shm tier's capacity_bytes"
        )
    host_parts = [(w, Footprint(host_bytes=fp.host_bytes + fp.shm_bytes)) for w, fp in parts]
    host = sum(fp.host_bytes for _, fp in host_parts)
    host_items = ", ".join(f"{w} {_gib(fp.host_bytes)}" for w, fp in host_parts if fp.host_bytes)
    if host > room.host_available_bytes:
        raise MachineError(
            f"hardware {hardware} needs {_gib(host)} of host memory ({host_items}) but this machine "
            f"has {_gib(room.host_available_bytes)} available; lower the tiers' capacity_bytes "
            "(hardware.tiers.N.capacity_bytes=...) or choose a smaller hardware profile"
        )
    disk, disk_items = need("disk_bytes")
    if disk - reusable_disk_bytes > room.disk_free_bytes:
        raise MachineError(
            f"hardware {hardware} needs {_gib(disk)} of disk in runtime.data_dir ({disk_items}) but "
            f"it has {_gib(room.disk_free_bytes + reusable_disk_bytes)} free; lower the file tier's "
            "capacity_bytes or point runtime.data_dir at a larger disk"
        )
