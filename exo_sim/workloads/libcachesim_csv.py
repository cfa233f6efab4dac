"""``libcachesim_csv``: a libCacheSim-style CSV trace, streamed; each object is one block.

Columns are chosen by header name or by 1-based column number (as libCacheSim's ``obj_id_field``
numbers them), with or without a header line and with any one-character delimiter. Each row is one
request reading one block, the object; its size is ignored, as with ``oracle_general``. With a time
column, arrivals are ``(time - first time) x time_unit_s`` seconds and must not go backwards;
without one, every request arrives at 0.

Object ids are integers (values above 2**63 - 1 are refused); with ``obj_id_is_num: false`` they are
strings, numbered by 63 bits of their BLAKE2b hash (deterministic; two distinct ids collide with
probability 2**-63, so about 5e-8 for a trace of 10^6 distinct ids, 5 % for 10^9).
Problems are refused with the file and line (see :mod:`exo_sim.tracecsv`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from omegaconf import MISSING

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError, TraceError
from exo_sim.tracecsv import Column, CsvTrace
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

_ID_MASK = (1 << 63) - 1


@dataclass
class LibCacheSimCsvWorkloadConfig(WorkloadConfig):
    """A CSV trace of object requests; ``*_field`` is a header name or a 1-based column number."""

    kind: str = "libcachesim_csv"
    path: str = MISSING
    has_header: bool = True
    delimiter: str = ","
    obj_id_field: str = "lbn"
    obj_id_is_num: bool = True
    time_field: Optional[str] = "time"
    time_unit_s: float = 1.0
    max_records: Optional[int] = None


def hash_ids(values: np.ndarray) -> np.ndarray:
    """Stable 63-bit ids for string object ids (BLAKE2b, first 8 bytes, top bit cleared)."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little") & _ID_MASK
            for v in values
        ),
        dtype=np.int64,
        count=values.shape[0],
    )


@register
class LibCacheSimCsvWorkload(Workload):
    """Reader of libCacheSim CSV traces (see the module docstring)."""

    kind = "libcachesim_csv"
    schema = LibCacheSimCsvWorkloadConfig

    def validate(self) -> None:
        """Refuse bad sizes, a missing or empty file and a column the file does not have."""
        c = self.cfg
        if c.max_records is not None and c.max_records <= 0:
            raise ConfigError("workload.max_records", f"must be > 0, got {c.max_records}")
        if not c.time_unit_s > 0:
            raise ConfigError("workload.time_unit_s", f"must be > 0, got {c.time_unit_s}")
        self._columns()

    def _columns(self) -> tuple[CsvTrace, list[Column]]:
        c = self.cfg
        trace = CsvTrace(str(c.path), bool(c.has_header), str(c.delimiter))
        cols = [trace.column(c.obj_id_field, "workload.obj_id_field", "int" if c.obj_id_is_num else "str")]
        if c.time_field is not None:
            cols.append(trace.column(c.time_field, "workload.time_field", "float"))
        return trace, cols

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield one single-block request per row."""
        c = self.cfg
        trace, cols = self._columns()
        t0: float | None = None
        last = -np.inf
        unit = float(c.time_unit_s)
        for line, values in trace.batches(cols, c.max_records):
            raw = values[0]
            if c.obj_id_is_num:
                ids = raw.astype(np.int64)
                if ids.shape[0] and int(ids.min()) < 0:
                    i = int(np.argmax(ids < 0))
                    raise TraceError(
                        trace.path, f"object id {ids[i]} is negative ({cols[0].key})", line + i
                    )
            else:
                ids = hash_ids(raw)
            m = ids.shape[0]
            if len(cols) > 1:
                times = values[1].astype(np.float64)
                prev = np.concatenate(([last], times[:-1]))
                back = times < prev
                if back.any():
                    i = int(np.argmax(back))
                    raise TraceError(
                        trace.path,
                        f"time {times[i]:g} is earlier than the previous row's {prev[i]:g}; rows must be in "
                        "time order",
                        line + i,
                    )
                if m:
                    last = float(times[-1])
                    if t0 is None:
                        t0 = float(times[0])
                arrival = (times - (t0 or 0.0)) * unit
            else:
                arrival = np.zeros(m, dtype=np.float64)
            yield RequestChunk.fixed_reads(arrival, ids, 1, self.block_tokens)

    def describe(self) -> dict[str, Any]:
        """Kind, path and column choice."""
        c = self.cfg
        return {
            "kind": self.kind,
            "path": str(c.path),
            "obj_id_field": str(c.obj_id_field),
            "obj_id_is_num": bool(c.obj_id_is_num),
            "time_field": None if c.time_field is None else str(c.time_field),
            "time_unit_s": float(c.time_unit_s),
            "max_records": c.max_records,
        }
