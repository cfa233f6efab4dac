"""Benchmark of the one-pass LRU miss-ratio curve against 100 libCacheSim LRU runs, in one process.

On Mooncake's conversation trace (288,500 block references, one block per 512-token hash id) prints:
  * the Mooncake reader's streaming rate (block references/s; target >= 1M/s), best of --repeat;
  * the one-pass exact LRU curve (stack distances, ``exo_sim.mrc.lru_hits``) over 100 capacities
    (log-spaced, 1 .. distinct blocks), from the references in memory, best of --repeat; and the same
    including the trace read;
  * 100 separate libCacheSim LRU runs (C ``process_trace``) at the same capacities over an
    oracleGeneral file written from the same references (object size ignored, hash table sized to
    the trace: hashpower = ceil(log2(distinct)) + 1, faster than libCacheSim's default of 24);
  * their ratio (target >= 10x) and whether the 100 miss counts are identical.

    python experiments/bench_mrc.py [--trace PATH] [--capacities 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from exo_sim.cli.entry import default_traces_dir
from exo_sim.mrc import capacity_grid, lru_hits, references
from exo_sim.workloads.mooncake import MooncakeWorkload, MooncakeWorkloadConfig


def write_oracle(path: Path, blocks: np.ndarray) -> None:
    """The references as a libCacheSim oracleGeneral file (ids + 1, size 1, no next-access)."""
    rec = np.zeros(blocks.shape[0], dtype=[("ts", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["ts"] = np.arange(blocks.shape[0]) // 1000
    rec["id"] = blocks.astype(np.uint64) + 1
    rec["size"] = 1
    rec["next"] = -1
    rec.tofile(path)


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(Path(default_traces_dir()) / "mooncake" / "conversation_trace.jsonl"))
    ap.add_argument("--capacities", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lcs-hashpower", type=int, default=None,
                    help="libCacheSim hash table log2 size; default ceil(log2(distinct)) + 1 (its own: 24)")
    args = ap.parse_args()
    import libcachesim as lcs

    workload = MooncakeWorkload(MooncakeWorkloadConfig(path=args.trace), 512)
    workload.validate()

    read_s = math.inf
    for _ in range(args.repeat):
        t = time.perf_counter()
        blocks, reads = references(workload)
        read_s = min(read_s, time.perf_counter() - t)
    n = int(blocks.shape[0])
    distinct = int(np.unique(blocks).shape[0])
    print(f"trace: {args.trace}: {n:,} block references, {distinct:,} distinct blocks")
    print(f"reader: {read_s * 1e3:.1f} ms, {n / read_s:,.0f} block references/s (target >= 1,000,000)")
    for bt in (256, 16):
        split = MooncakeWorkload(MooncakeWorkloadConfig(path=args.trace), bt)
        t = time.perf_counter()
        m = sum(c.n_refs for c in split.chunks())
        dt = time.perf_counter() - t
        print(f"reader split to {bt} tokens/block: {m:,} references in {dt * 1e3:.1f} ms, {m / dt:,.0f}/s")

    caps = capacity_grid(1, distinct, args.capacities, "log")
    one_pass_s = math.inf
    for _ in range(args.repeat):
        t = time.perf_counter()
        hits = lru_hits(blocks, None, caps)
        one_pass_s = min(one_pass_s, time.perf_counter() - t)
    ours = n - hits
    print(f"one-pass LRU curve, {len(caps)} capacities: {one_pass_s * 1e3:.1f} ms "
          f"({(one_pass_s + read_s) * 1e3:.1f} ms with the trace read)")

    hashpower = args.lcs_hashpower or math.ceil(math.log2(distinct)) + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mooncake.oracleGeneral.bin"
        write_oracle(path, blocks)
        params = lcs.ReaderInitParam()
        params.ignore_obj_size = True
        theirs = np.zeros(len(caps), dtype=np.int64)
        t = time.perf_counter()
        for i, c in enumerate(caps):
            reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
            miss_ratio, _ = lcs.LRU(int(c), hashpower=hashpower).process_trace(reader)
            theirs[i] = round(miss_ratio * n)
        lcs_s = time.perf_counter() - t
    print(f"libCacheSim LRU, {len(caps)} separate runs (hashpower {hashpower}): {lcs_s * 1e3:.1f} ms")
    print(f"ratio libCacheSim / one-pass: {lcs_s / one_pass_s:.1f}x (target >= 10x); "
          f"with the trace read: {lcs_s / (one_pass_s + read_s):.1f}x")
    same = bool(np.array_equal(ours, theirs))
    print(f"identical miss counts at all {len(caps)} capacities: {same}")
    if not same:
        bad = np.flatnonzero(ours != theirs)[:5]
        print("  first differences (capacity, exo, libCacheSim):",
              [(int(caps[i]), int(ours[i]), int(theirs[i])) for i in bad])


if __name__ == "__main__":
    main()
