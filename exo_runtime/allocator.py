"""The C allocator's settings for the engine: keep freed memory instead of returning it to the OS.

A forward pass allocates and frees tensors of megabytes each. glibc's ``malloc`` serves those with
``mmap`` and gives them back on ``free`` (its thresholds adapt, and trimming returns the top of the
heap), so the next pass page-faults the same memory in again: thousands of faults per prefill of a
few hundred tokens, which made ``exo-run``'s prefills slower than the same prefills timed back to
back. Both ``exo-run`` and ``exo-calibrate`` call :func:`keep_freed_memory` before any work, so the
engine and its calibration run under the same allocator. Elsewhere than glibc it does nothing, and
says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 << 20
"""Allocations below this come from the heap (reused) rather than from a fresh ``mmap``."""
TRIM_THRESHOLD_BYTES = 256 << 20
"""Free memory at the top of the heap kept, up to this, rather than returned to the OS."""

_done: str | None = None


def keep_freed_memory() -> str:
    """Set glibc's mmap and trim thresholds once per process; returns what was done, in words."""
    global _done
    if _done is not None:
        return _done
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _done = "allocator left as it is (not glibc)"
        return _done
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    _done = (
        f"glibc malloc keeps freed memory (mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, trim threshold "
        f"{TRIM_THRESHOLD_BYTES >> 20} MiB)" if ok else "glibc refused the allocator settings; left as it is"
    )
    return _done


__all__ = ["keep_freed_memory"]
