"""A sampler thread recording memory pressure and I/O while the runtime works -> ``telemetry.parquet``.

Every ``runtime.telemetry_interval_s`` it records: GPU memory used and free (pynvml, when there is a
GPU; NaN otherwise), the process's resident set, the system's available memory, and disk I/O byte
counters — the process's own (``/proc/<pid>/io``: what really reached the block layer, which O_DIRECT
file I/O does) and the system's (NaN where the platform hides them).
"""

from __future__ import annotations

import math
import threading
import time

import pandas as pd
import psutil

from exo_runtime.nvml import GpuMemoryProbe

COLUMNS = (
    "time_s",
    "gpu_used_bytes",
    "gpu_free_bytes",
    "rss_bytes",
    "available_bytes",
    "process_read_bytes",
    "process_write_bytes",
    "disk_read_bytes",
    "disk_write_bytes",
)


class TelemetrySampler:
    """Background sampler (see the module docstring); ``start()``, then ``stop()`` returns the table.

    Args:
        interval_s: seconds between samples (> 0).
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.gpu = GpuMemoryProbe()
        self.process = psutil.Process()
        self.rows: list[tuple[float, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="exo-telemetry", daemon=True)
        self._t0 = time.perf_counter()

    def start(self) -> None:
        """Take a first sample now and keep sampling in the background."""
        self._t0 = time.perf_counter()
        self.sample()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Record one row."""
        nan = math.nan
        gpu = self.gpu.read()
        try:
            pio = self.process.io_counters()
            p_read, p_write = float(pio.read_bytes), float(pio.write_bytes)
        except (psutil.Error, AttributeError, NotImplementedError):
            p_read = p_write = nan
        disk = psutil.disk_io_counters()
        self.rows.append(
            (
                time.perf_counter() - self._t0,
                float(gpu[0]) if gpu else nan,
                float(gpu[1]) if gpu else nan,
                float(self.process.memory_info().rss),
                float(psutil.virtual_memory().available),
                p_read,
                p_write,
                float(disk.read_bytes) if disk else nan,
                float(disk.write_bytes) if disk else nan,
            )
        )

    def stop(self) -> pd.DataFrame:
        """Stop the thread, take a last sample and return every row as a DataFrame."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        return pd.DataFrame(self.rows, columns=list(COLUMNS))
