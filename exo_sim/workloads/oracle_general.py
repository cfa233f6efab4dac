"""``oracle_general``: libCacheSim's oracleGeneral binary trace, streamed.

Packed little-endian 24-byte records: ``uint32 timestamp; uint64 obj_id; uint32 obj_size;
int64 next_access_vtime`` (-1: never again). Each record is one request reading one block (the object
id); the object size is ignored, as in ``experiment=single_tier``. The trace carries its own future
(``next_access_vtime``), which Belady uses as is. Records are read ``CHUNK_RECORDS`` at a time with
plain reads, so memory does not grow with the trace (a memory map would: every page it touched stays
in the process's resident memory until the map is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from omegaconf import MISSING

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError, TraceError
from exo_sim.policies import NEVER
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

RECORD = np.dtype([("ts", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"), ("next_vtime", "<i8")])
assert RECORD.itemsize == 24

CHUNK_RECORDS = 1 << 16


@dataclass
class OracleGeneralWorkloadConfig(WorkloadConfig):
    """A libCacheSim oracleGeneral binary trace: each object is one block, its size ignored."""

    kind: str = "oracle_general"
    path: str = MISSING
    max_records: Optional[int] = None


@register
class OracleGeneralWorkload(Workload):
    """Reader of oracleGeneral binary traces (see the module docstring)."""

    kind = "oracle_general"
    schema = OracleGeneralWorkloadConfig
    has_future = True

    def validate(self) -> None:
        """Refuse a missing, empty or truncated file and a non-positive ``max_records``."""
        path = str(self.cfg.path)
        if not os.path.isfile(path):
            raise TraceError(path, "no such file (set workload.path)")
        size = os.path.getsize(path)
        if size == 0:
            raise TraceError(path, "the file is empty")
        if size % RECORD.itemsize:
            whole = size // RECORD.itemsize
            raise TraceError(
                path,
                f"size {size} bytes is not a multiple of the 24-byte oracleGeneral record; the file is "
                f"truncated after {whole} whole records",
                line=whole + 1,
                unit="record",
            )
        if self.cfg.max_records is not None and self.cfg.max_records <= 0:
            raise ConfigError("workload.max_records", f"must be > 0, got {self.cfg.max_records}")

    def _n_records(self) -> int:
        n = os.path.getsize(str(self.cfg.path)) // RECORD.itemsize
        if self.cfg.max_records is not None:
            n = min(n, int(self.cfg.max_records))
        return n

    def estimated_refs(self) -> int:
        """Exact number of records replayed."""
        return self._n_records()

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield one single-block request per record, timestamps (seconds) as arrivals."""
        path = str(self.cfg.path)
        n = self._n_records()
        with open(path, "rb") as f:
            for start in range(0, n, CHUNK_RECORDS):
                want = min(CHUNK_RECORDS, n - start)
                rec = np.fromfile(f, dtype=RECORD, count=want)
                if rec.shape[0] < want:
                    raise TraceError(path, "the file shrank while it was read", start + rec.shape[0] + 1, "record")
                nxt = rec["next_vtime"].astype(np.int64)
                nxt[nxt < 0] = NEVER
                yield RequestChunk.fixed_reads(
                    rec["ts"].astype(np.float64), rec["obj_id"].astype(np.int64), 1, self.block_tokens, nxt
                )

    def describe(self) -> dict[str, Any]:
        """Kind, path and record count."""
        return {"kind": self.kind, "path": str(self.cfg.path), "records": self._n_records()}
