"""Every trace reader streams: reading a trace 4x longer takes about the same memory.

Each reader (Mooncake JSONL, oracleGeneral binary, libCacheSim CSV, Azure CSV) reads a generated
trace of N and of 4N requests while its chunks are consumed one by one. The measure is the Python
allocations' peak (tracemalloc, which numpy reports to) plus what the Arrow pool holds as chunks
arrive (the CSV readers parse in Arrow). The same measure taken while *keeping* every chunk must grow
about 4x, so the bound is one a whole-file reader would break. Chunks are made small so that both
traces span many of them, as real traces span many chunks of the default size.

oracleGeneral is also checked on resident memory (RSS): a memory map of the file would not show in
tracemalloc, yet every page it touched would stay resident.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pytest

import exo_sim.tracecsv
import exo_sim.workloads.mooncake
import exo_sim.workloads.oracle_general
from exo_sim.workloads.azure import AzureWorkload, AzureWorkloadConfig
from exo_sim.workloads.base import Workload
from exo_sim.workloads.libcachesim_csv import LibCacheSimCsvWorkload, LibCacheSimCsvWorkloadConfig
from exo_sim.workloads.mooncake import MooncakeWorkload, MooncakeWorkloadConfig
from exo_sim.workloads.oracle_general import RECORD, OracleGeneralWorkload, OracleGeneralWorkloadConfig

N = 4000  # requests in the short trace; the long one has 4N


def _mooncake(path: Path, n: int) -> Workload:
    rng = np.random.default_rng(n)
    with open(path, "w") as f:
        for i, k in enumerate(rng.integers(1, 9, n).tolist()):
            ids = rng.integers(0, 50_000, k).tolist()
            f.write(json.dumps({"timestamp": i, "input_length": 512 * k, "output_length": 7, "hash_ids": ids}) + "\n")
    return MooncakeWorkload(MooncakeWorkloadConfig(path=str(path), write_output=True), 256)


def _oracle(path: Path, n: int) -> Workload:
    rec = np.zeros(n, dtype=RECORD)
    rec["ts"] = np.arange(n)
    rec["obj_id"] = np.random.default_rng(n).integers(0, 50_000, n)
    rec["obj_size"] = 1
    rec["next_vtime"] = -1
    rec.tofile(path)
    return OracleGeneralWorkload(OracleGeneralWorkloadConfig(path=str(path)), 256)


def _libcachesim_csv(path: Path, n: int) -> Workload:
    ids = np.random.default_rng(n).integers(0, 50_000, n)
    pd.DataFrame({"time": np.arange(n), "lbn": ids, "size": 4096}).to_csv(path, index=False)
    return LibCacheSimCsvWorkload(LibCacheSimCsvWorkloadConfig(path=str(path)), 256)


def _azure(path: Path, n: int) -> Workload:
    rng = np.random.default_rng(n)
    stamps = pd.Timestamp("2023-11-16 18:17:03") + pd.to_timedelta(np.arange(n) * 10, unit="ms")
    pd.DataFrame(
        {
            "TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "ContextTokens": rng.integers(1, 4096, n),
            "GeneratedTokens": rng.integers(1, 300, n),
        }
    ).to_csv(path, index=False)
    return AzureWorkload(AzureWorkloadConfig(path=str(path)), 256)


READERS: dict[str, Callable[[Path, int], Workload]] = {
    "mooncake": _mooncake,
    "oracle_general": _oracle,
    "libcachesim_csv": _libcachesim_csv,
    "azure": _azure,
}


def _peak_bytes(w: Workload, keep: bool) -> tuple[int, int]:
    """(references read, peak bytes: tracemalloc peak + Arrow pool growth) while ``w``'s chunks stream."""
    w.validate()
    held = []
    refs = 0
    arrow_base = pa.total_allocated_bytes()
    arrow_peak = 0
    tracemalloc.start()
    try:
        for chunk in w.chunks():
            refs += chunk.n_refs
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - arrow_base)
            if keep:
                held.append(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return refs, peak + arrow_peak


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few hundred requests, so that N requests span many of them."""
    monkeypatch.setattr(exo_sim.workloads.mooncake, "CHUNK_LINES", 256)
    monkeypatch.setattr(exo_sim.workloads.oracle_general, "CHUNK_RECORDS", 256)
    monkeypatch.setattr(exo_sim.tracecsv, "BLOCK_BYTES", 1 << 12)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.usefixtures("small_chunks")
def test_reader_memory_does_not_grow_with_the_trace(tmp_path: Path, reader: str) -> None:
    make = READERS[reader]
    short_refs, short_peak = _peak_bytes(make(tmp_path / "short", N), keep=False)
    long_refs, long_peak = _peak_bytes(make(tmp_path / "long", 4 * N), keep=False)
    assert long_refs >= 3 * short_refs  # the long trace really is about 4x longer
    # streaming: the long trace's peak is within 1.5x of the short one's (plus 64 KiB for noise)
    assert long_peak < 1.5 * short_peak + (1 << 16), (reader, short_peak, long_peak)
    # the control: a reader that kept the whole trace would grow about 4x under the same measure
    _, short_kept = _peak_bytes(make(tmp_path / "short", N), keep=True)
    _, long_kept = _peak_bytes(make(tmp_path / "long", 4 * N), keep=True)
    assert long_kept > 2.5 * short_kept, (reader, short_kept, long_kept)
    assert long_kept > 2 * long_peak, (reader, long_kept, long_peak)


def _rss_growth(w: Workload) -> int:
    """Largest RSS above the level before reading, sampled at every chunk, in bytes."""
    proc = psutil.Process()
    w.validate()
    base = proc.memory_info().rss
    peak = base
    for _chunk in w.chunks():
        peak = max(peak, proc.memory_info().rss)
    return peak - base


def test_oracle_general_resident_memory_does_not_grow_with_the_trace(tmp_path: Path) -> None:
    """24 MB of records, then 96 MB: a memory map would add the file's size to RSS; plain reads do not."""
    n = 1 << 20
    short = _oracle(tmp_path / "short.bin", n)
    long = _oracle(tmp_path / "long.bin", 4 * n)
    _rss_growth(short)  # first read: imports and allocator arenas settle
    grow_short = _rss_growth(short)
    grow_long = _rss_growth(long)
    long_file = (tmp_path / "long.bin").stat().st_size
    assert grow_long < grow_short + (8 << 20), (grow_short, grow_long)
    assert grow_long < long_file / 4, (grow_long, long_file)
