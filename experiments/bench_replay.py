"""Benchmark of the fast replay against libCacheSim, in one process, on one 2M-access Zipf trace.

Prints, for 2,000,000 Zipf(1.0) references over 100,000 objects with a 10,000-block cache:
  * exo's single-tier LRU replay rate (accesses/s) through `run_replay` (the `exo-replay` code path,
    `experiment=single_tier`, reading the trace from an oracleGeneral file),
  * libCacheSim's rate (its C `process_trace` on the same file) and the ratio exo/libCacheSim,
    and whether their miss counts are identical,
  * the four-tier seed-workstation replay rate on the same references, for the Llama-3-8B KV payload
    and for the RAG-chunk payload.

    python experiments/bench_replay.py [--accesses N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from exo_sim.cli.entry import CONF_DIR, setup
from exo_sim.future import next_access_indices
from exo_sim.policies import NEVER
from exo_sim.replay import run_replay
from exo_sim.workloads.zipf import ZipfWorkload, ZipfWorkloadConfig


def write_oracle(path: Path, objects: int, accesses: int, seed: int) -> None:
    """The seeded Zipf references as a libCacheSim oracleGeneral file."""
    cfg = ZipfWorkloadConfig(objects=objects, accesses=accesses, alpha=1.0, seed=seed)
    blocks = np.concatenate([c.blocks for c in ZipfWorkload(cfg, 256).chunks()])
    nxt = next_access_indices(blocks)
    nxt[nxt == NEVER] = -1
    rec = np.zeros(len(blocks), dtype=[("ts", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["ts"] = np.arange(len(blocks)) // 1000
    rec["id"] = blocks + 1
    rec["size"] = 1
    rec["next"] = nxt
    rec.tofile(path)


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accesses", type=int, default=2_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--capacity", type=int, default=10_000)
    args = ap.parse_args()
    setup()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "zipf.oracleGeneral.bin"
        write_oracle(trace, args.objects, args.accesses, seed=0)
        print(f"trace: {args.accesses:,} Zipf(1.0) references over {args.objects:,} objects; cache {args.capacity:,}")

        with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
            single = compose(
                "config",
                overrides=[
                    "experiment=single_tier",
                    f"capacity_blocks={args.capacity}",
                    "policy=lru",
                    "workload=oracle_general",
                    f"workload.path={trace}",
                ],
            )
            t0 = time.perf_counter()
            res = run_replay(single)
            exo_s = time.perf_counter() - t0
            exo_misses = res.summary["tiers"][0]["misses"]

            four = [
                (payload, compose(
                    "config",
                    overrides=[
                        f"payload={payload}",
                        "payload.weight_dtype=int4",  # bf16 Llama-3-8B weights do not fit the 8 GiB vram
                        f"workload.objects={args.objects}",
                        f"workload.accesses={args.accesses}",
                    ],
                ))
                for payload in ("llama3_8b_kv", "rag_chunk_minilm")
            ]

        try:
            import libcachesim as lcs
        except ImportError:
            lcs = None
        exo_rate = args.accesses / exo_s
        print(f"exo single-tier LRU replay:   {exo_rate:>12,.0f} accesses/s ({exo_s:.2f} s, {exo_misses:,} misses)")
        if lcs is None:
            print("libCacheSim: not installed (pip install -e '.[dev]'); no ratio")
        else:
            params = lcs.ReaderInitParam()
            params.ignore_obj_size = True
            reader = lcs.TraceReader(str(trace), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
            t0 = time.perf_counter()
            miss_ratio, _ = lcs.LRU(args.capacity).process_trace(reader)
            lcs_s = time.perf_counter() - t0
            lcs_misses = round(miss_ratio * args.accesses)
            lcs_rate = args.accesses / lcs_s
            print(f"libCacheSim LRU process_trace:{lcs_rate:>12,.0f} accesses/s ({lcs_s:.2f} s, {lcs_misses:,} misses)")
            print(f"ratio exo / libCacheSim:      {exo_rate / lcs_rate:>12.2f}x  (target >= 0.5x)")
            print(f"miss counts identical:        {exo_misses == lcs_misses}")

        for payload, cfg in four:
            t0 = time.perf_counter()
            res = run_replay(cfg)
            wall = time.perf_counter() - t0
            tiers = res.summary["tiers"]
            print(
                f"four-tier seed_workstation, {payload:<17}{args.accesses / wall:>12,.0f} accesses/s "
                f"({wall:.2f} s; top-tier hit ratio {tiers[0]['hit_ratio']:.3f}, "
                f"{sum(t['evictions'] for t in tiers):,} evictions)  (target >= 1M/s)"
            )


if __name__ == "__main__":
    main()
