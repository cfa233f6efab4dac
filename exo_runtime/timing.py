"""Timing of real copies and codec work, and the meters that add them up per link and per codec.

Host work is timed with ``perf_counter_ns``. A span that touches GPU memory also records CUDA events
on the current stream and synchronises before it stops, so the wall time includes the copy's end and
the device's own time is kept beside it (``device_ns``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Meter:
    """Bytes, time and operations accumulated by one link or codec direction."""

    bytes: int = 0
    ns: int = 0
    device_ns: int = 0
    blocks: int = 0
    ops: int = 0

    def add(self, nbytes: int, ns: int, blocks: int, device_ns: int = 0) -> None:
        """Count one timed operation over ``blocks`` blocks."""
        self.bytes += nbytes
        self.ns += ns
        self.device_ns += device_ns
        self.blocks += blocks
        self.ops += 1

    @property
    def gbps(self) -> float | None:
        """Achieved throughput in GB/s (10^9 bytes/s), ``None`` before any timed byte."""
        return self.bytes / self.ns if self.ns else None


class Span:
    """Times one operation: ``with Span(cuda) as span: ...`` then ``span.ns`` and ``span.device_ns``."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.ns = 0
        self.device_ns = 0
        self._events: tuple[Any, Any] | None = None
        self._t0 = 0

    def __enter__(self) -> Span:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self._events = (start, end)
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._events is not None:
            start, end = self._events
            end.record()
            end.synchronize()
            self.device_ns = int(start.elapsed_time(end) * 1e6)
        self.ns = time.perf_counter_ns() - self._t0


@dataclass
class CodecMeter:
    """Encode and decode work of one codec; bytes are float32 bytes of the elements (4 per element)."""

    encode: Meter = field(default_factory=Meter)
    decode: Meter = field(default_factory=Meter)
    max_error_bound: float = 0.0
    max_error_measured: float | None = None
