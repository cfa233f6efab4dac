"""GPU memory through pynvml (NVIDIA's management library), when there is a GPU.

Every function returns ``None`` where no NVIDIA GPU or driver is present, so callers need no
special case for a machine without one.
"""

from __future__ import annotations

import os
from typing import Any


def _handle() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        index = int(visible) if visible.isdigit() else 0
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # no driver, no library, no device: no GPU to watch
        return None


class GpuMemoryProbe:
    """Reads the first visible GPU's memory (used and free bytes); ``available`` is false without one."""

    def __init__(self) -> None:
        self.handle = _handle()

    @property
    def available(self) -> bool:
        """Whether a GPU is being watched."""
        return self.handle is not None

    def read(self) -> tuple[int, int, int] | None:
        """``(used_bytes, free_bytes, total_bytes)``, or ``None`` without a GPU."""
        if self.handle is None:
            return None
        import pynvml

        info = pynvml.nvmlDeviceGetMemoryInfo(self.handle)
        return int(info.used), int(info.free), int(info.total)

    def name(self) -> str | None:
        """The GPU's name, or ``None``."""
        if self.handle is None:
            return None
        import pynvml

        name = pynvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else str(name)
