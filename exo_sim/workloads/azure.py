"""``azure``: Azure's LLM inference traces (``TIMESTAMP,ContextTokens,GeneratedTokens``), streamed.

These traces give arrival times and request sizes only: **no block hashes, so no reuse**. Each request
reads ``ceil(ContextTokens / block_tokens)`` blocks that no other request ever names (fresh ids,
numbered in order), so every read is a miss whatever the cache: use the trace for arrival processes,
request sizes and the load they put on compute and links, never for hit ratios. ``describe()`` and the
summary's notes say so. With ``write_output`` on, each request then writes
``ceil(GeneratedTokens / block_tokens)`` new blocks (``writes=True``).

Arrivals are seconds since the first row's timestamp (ISO 8601, e.g. ``2023-11-16 18:17:03.9799600``)
and must not go backwards. Problems are refused with the file and line (see :mod:`exo_sim.tracecsv`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
from omegaconf import MISSING

from exo_sim.blocksplit import whole_blocks
from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError, TraceError
from exo_sim.tracecsv import Column, CsvTrace
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

NO_REUSE = (
    "the azure trace carries no block hashes: every block is read once and never again, so hit "
    "ratios from it are 0 by construction; use it for arrivals and request sizes only"
)


@dataclass
class AzureWorkloadConfig(WorkloadConfig):
    """An Azure LLM inference CSV trace: arrivals and sizes, no reuse."""

    kind: str = "azure"
    path: str = MISSING
    time_column: str = "TIMESTAMP"
    context_column: str = "ContextTokens"
    generated_column: str = "GeneratedTokens"
    write_output: bool = False
    max_requests: Optional[int] = None


@register
class AzureWorkload(Workload):
    """Reader of Azure LLM inference traces (see the module docstring)."""

    kind = "azure"
    schema = AzureWorkloadConfig

    def validate(self) -> None:
        """Refuse a bad ``max_requests``, a missing or empty file and a column the header lacks."""
        if self.cfg.max_requests is not None and self.cfg.max_requests <= 0:
            raise ConfigError("workload.max_requests", f"must be > 0, got {self.cfg.max_requests}")
        self._columns()

    def _columns(self) -> tuple[CsvTrace, list[Column]]:
        c = self.cfg
        trace = CsvTrace(str(c.path), True, ",")
        return trace, [
            trace.column(c.time_column, "workload.time_column", "str"),
            trace.column(c.context_column, "workload.context_column", "int"),
            trace.column(c.generated_column, "workload.generated_column", "int"),
        ]

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield each row as a request reading its context as fresh blocks (see the module docstring)."""
        trace, cols = self._columns()
        t0: int | None = None
        last = np.iinfo(np.int64).min
        next_id = 0
        for line, (stamps, context, generated) in trace.batches(cols, self.cfg.max_requests):
            parsed = pd.to_datetime(pd.Series(stamps), format="ISO8601", errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise TraceError(
                    trace.path, f"{cols[0].name} {stamps[i]!r} is not a date and time (ISO 8601)", line + i
                )
            ns = parsed.to_numpy().astype("datetime64[ns]").astype(np.int64)
            prev = np.concatenate(([last], ns[:-1]))
            if (ns < prev).any():
                i = int(np.argmax(ns < prev))
                raise TraceError(
                    trace.path,
                    f"{cols[0].name} {stamps[i]} is earlier than the previous row's; rows must be in time "
                    "order",
                    line + i,
                )
            for col, values in ((cols[1], context), (cols[2], generated)):
                if values.shape[0] and int(values.min()) < 0:
                    i = int(np.argmax(values < 0))
                    raise TraceError(trace.path, f"{col.name} {values[i]} is negative", line + i)
            m = ns.shape[0]
            if m == 0:
                continue
            last = int(ns[-1])
            if t0 is None:
                t0 = int(ns[0])
            arrival_s = (ns - t0).astype(np.float64) / 1e9
            n_read, read_tokens = whole_blocks(context, self.block_tokens)
            if self.cfg.write_output:
                n_write, write_tokens = whole_blocks(generated, self.block_tokens)
            else:
                n_write, write_tokens = np.zeros(m, dtype=np.int64), np.zeros(0, dtype=np.int64)
            per = n_read + n_write
            offsets = np.zeros(m + 1, dtype=np.int64)
            np.cumsum(per, out=offsets[1:])
            total = int(offsets[-1])
            # within a request: its reads, then its writes
            local = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], per)
            writes = local >= np.repeat(n_read, per)
            tokens = np.empty(total, dtype=np.int64)
            tokens[~writes] = read_tokens
            tokens[writes] = write_tokens
            blocks = np.arange(next_id, next_id + total, dtype=np.int64)
            next_id += total
            yield RequestChunk(
                arrival_s=arrival_s, offsets=offsets, blocks=blocks, writes=writes, tokens=tokens
            )

    def describe(self) -> dict[str, Any]:
        """Kind, path, and the fact that the trace has no reuse."""
        c = self.cfg
        return {
            "kind": self.kind,
            "path": str(c.path),
            "write_output": bool(c.write_output),
            "max_requests": c.max_requests,
            "reuse": "none",
            "note": NO_REUSE,
        }

    def notes(self) -> list[str]:
        """The trace's lack of reuse, for the summary."""
        return [NO_REUSE]
