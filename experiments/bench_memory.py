"""Benchmark of the replay's memory per tracked block (issue 13: at most 150 B per resident block).

Replays a scan over ``--distinct`` distinct blocks, each read once, into a cache large enough to keep
every one of them, so that at the end every block is resident and tracked:

  * ``single``: one LRU tier of ``--distinct`` blocks (``experiment=single_tier``);
  * ``four``: the four-tier seed workstation (default payload and codecs), its bottom tier (NVMe)
    enlarged to twice the bytes of ``--distinct`` blocks so that nothing is dropped.

Each replay runs in a fresh Python process. It prints the process's peak RSS (``getrusage``'s
``ru_maxrss``) minus its RSS just before the replay (imports, config and spec done), divided by the
blocks resident at the end (the summary's ``final_occupancy_blocks`` over the tiers)::

    bytes per resident block: X (target <= 150)

The figure counts everything the replay holds (the decision core's index and policy queues, the
workload's current chunk, the time series), not only the per-block state; at small ``--distinct`` the
fixed part weighs more. Sizes: the issue's figure is at ``--distinct 10000000``; ``1000000`` is
quick for development.

    python experiments/bench_memory.py [--distinct N] [--configs single,four]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = ("single", "four")
TARGET_BYTES_PER_BLOCK = 150


def _compose(name: str, distinct: int) -> object:
    """The config of replay ``name`` over ``distinct`` blocks."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from exo_sim.cli.entry import CONF_DIR
    from exo_sim.spec import build_spec

    scan = ["workload=scan", f"workload.blocks={distinct}", "workload.loops=1", "output.progress=false"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        if name == "single":
            return compose("config", overrides=["experiment=single_tier", f"capacity_blocks={distinct}", "policy=lru",
                                                 *scan])
        cfg = compose("config", overrides=scan)
    bottom = build_spec(cfg).tiers[-1]
    with open_dict(cfg):
        cfg.hardware.tiers[bottom.index].capacity_bytes = 2 * distinct * bottom.block_bytes
    return cfg


def measure(name: str, distinct: int) -> dict[str, float]:
    """Run replay ``name`` in this process and return its memory figures (call once per process)."""
    import psutil

    from exo_sim.cli.entry import setup
    from exo_sim.replay import run_replay

    setup()
    cfg = _compose(name, distinct)
    base = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    summary = run_replay(cfg).summary
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    tiers = summary["tiers"]
    resident = sum(int(t["final_occupancy_blocks"]) for t in tiers)
    return {
        "baseline_rss_bytes": base,
        "peak_rss_bytes": peak,
        "resident_blocks": resident,
        "dropped_blocks": sum(int(t["drops"]) for t in tiers),
        "tiers": len(tiers),
        "wall_s": wall,
        "bytes_per_block": (peak - base) / resident if resident else float("nan"),
    }


def main() -> None:
    """Parse the arguments, run each replay in its own process and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distinct", type=int, default=10_000_000, help="distinct blocks in the trace (default 10^7)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: single, four")
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.distinct <= 0:
        ap.error(f"--distinct must be > 0, got {args.distinct}")
    if args.child:
        print(json.dumps(measure(args.child, args.distinct)))
        return
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        ap.error(f"--configs must name some of {', '.join(CONFIGS)}, got {args.configs!r}")
    print(f"trace: one scan over {args.distinct:,} distinct blocks, all resident at the end")
    for name in names:
        run = subprocess.run(
            [sys.executable, __file__, "--child", name, "--distinct", str(args.distinct)],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            tail = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"{name}: the replay failed (exit {run.returncode}): {tail}", file=sys.stderr)
            sys.exit(1)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        label = "single-tier LRU" if name == "single" else f"four-tier seed ({r['tiers']} tiers)"
        print(
            f"{label}: peak RSS {r['peak_rss_bytes'] / 1e6:,.1f} MB - baseline {r['baseline_rss_bytes'] / 1e6:,.1f} MB "
            f"over {r['resident_blocks']:,} resident blocks ({r['dropped_blocks']:,} dropped; "
            f"replay {r['wall_s']:.1f} s)"
        )
        print(f"  bytes per resident block: {r['bytes_per_block']:.1f} (target <= {TARGET_BYTES_PER_BLOCK})")


if __name__ == "__main__":
    main()
