"""Runtime copy efficiency: the executor's per-link bandwidth during a run vs a raw copy, same memories.

Runs ``exo-run``'s function on a config whose tiers all store fp16 (so a move is a pure copy, no
re-encoding), then, for every link that carried traffic, measures with ``exo-calibrate``'s own
function a raw copy of blocks of the same size between fresh stores of the same media (one block per
read and write, shuffled slots, best of ``--repeats``) in the same process, and prints both and their
ratio. The executor's figure counts, per link, the bytes it moved over the time its batched reads and
writes took (the bookkeeping between them is not a copy and is left out; the run's makespan is printed
too). Target: ratio >= 0.8 on every link.

    python experiments/bench_runtime.py                 # 1 MiB blocks (Llama-3-8B shape, 1 layer)
    python experiments/bench_runtime.py --layers 4      # 4 MiB blocks
    python experiments/bench_runtime.py --kv-heads 1 --objects 12000 --tier-mib 8,16,64   # 128 KiB blocks

On a GPU host, add ``--hardware ci_small`` (cuda and pinned tiers) to include the pinned <-> device links.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from exo_runtime.calibrate import measure_link
from exo_runtime.run import run_runtime
from exo_sim.cli.entry import CONF_DIR, setup


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hardware", default="ci_cpu")
    ap.add_argument("--layers", type=int, default=1, help="KV layers per block (1 -> 1 MiB fp16 blocks)")
    ap.add_argument("--kv-heads", type=int, default=8, help="KV heads (8 -> 1 MiB per layer, 1 -> 128 KiB)")
    ap.add_argument("--accesses", type=int, default=6000)
    ap.add_argument("--objects", type=int, default=1500)
    ap.add_argument("--blocks-per-request", type=int, default=8)
    ap.add_argument("--tier-mib", default="64,128,512", help="capacities of the tiers, MiB, hot to cold")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-ratio", type=float, default=0.8)
    ap.add_argument("overrides", nargs="*", help="extra config overrides (runtime.file_io_threads=1 ...)")
    args = ap.parse_args(argv)

    caps = [int(x) * 2**20 for x in args.tier_mib.split(",")]
    overrides = [
        f"hardware={args.hardware}",
        "payload=llama3_8b_kv",
        f"payload.layers={args.layers}",
        f"payload.kv_heads={args.kv_heads}",
        "codec=fp16",
        "policy=lru",
        "workload=zipf",
        f"workload.accesses={args.accesses}",
        f"workload.objects={args.objects}",
        f"workload.blocks_per_request={args.blocks_per_request}",
        "workload.alpha=0.8",
        "runtime.compute=seeded",  # the executor's copies are measured, not a model's prefill
        "output.progress=false",
    ] + [f"hardware.tiers.{i}.capacity_bytes={c}" for i, c in enumerate(caps)] + args.overrides
    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)

    with tempfile.TemporaryDirectory(prefix="exo-bench-", dir=".") as tmp:
        t0 = time.perf_counter()
        result = run_runtime(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - t0
        s = result.summary
        links = [lk for lk in s["measured"]["links"] if lk["blocks"] >= 8]
        moved = sum(lk["bytes"] for lk in s["measured"]["links"])
        print(
            f"run: {s['hardware']}, {s['accesses']} accesses in {s['requests']} requests, "
            f"block {links[0]['block_bytes'] if links else 0} B, makespan {s['makespan_s']:.2f} s "
            f"(wall {wall:.2f} s), {moved / 2**20:.0f} MiB moved between tiers, "
            f"{moved / s['makespan_s'] / 1e9:.2f} GB/s over the makespan"
        )
        print(f"{'link':<18} {'media':<12} {'blocks':>7} {'executor GB/s':>14} {'raw copy GB/s':>14} {'ratio':>6}")
        worst = float("inf")
        for lk in links:
            there, _ = measure_link(
                lk["src"], lk["src_medium"], lk["dst"], lk["dst_medium"], lk["block_bytes"],
                max(64 * lk["block_bytes"], 64 * 2**20), args.repeats, Path(tmp),
            )
            raw = there.bandwidth_gbps
            ratio = lk["bandwidth_gbps"] / raw
            worst = min(worst, ratio)
            print(
                f"{lk['src'] + '->' + lk['dst']:<18} {lk['src_medium'] + '->' + lk['dst_medium']:<12} "
                f"{lk['blocks']:>7} {lk['bandwidth_gbps']:>14.3f} {raw:>14.3f} {ratio:>6.2f}"
            )
    ok = worst >= args.min_ratio
    print(f"worst ratio {worst:.2f} ({'meets' if ok else 'BELOW'} the {args.min_ratio}x target)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
