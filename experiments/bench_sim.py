"""Benchmark of the SimPy timed model against the fast replay, in one process, on the same config.

The config is the four-tier default (seed workstation: VRAM / shared / RAM / NVMe, Llama-3-8B KV
cache, the seed codec mix and policies) on the Mooncake conversation trace at its own block size of
512 tokens (12,031 requests, 158,578 block references). Prints, for each, the wall time of the run itself and its
rate in block references per second (best of ``--repeats`` runs each, all runs listed), the ratio
sim / replay, and checks that both made the same decisions.

    python experiments/bench_sim.py [--repeats 3] [--trace PATH] [override ...]

Targets: the timed model >= 250,000 block references/s (issue 4), and >= 0.5x the replay's rate (issue 13;
it was 0.25x before the decision core was compiled, 0.42x after, before the timed model drove its
requests by event callbacks instead of one SimPy process each). Both clocks read and parse the trace
inside the timed run, as a user's run does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from exo_sim.cli.entry import CONF_DIR, default_traces_dir, setup
from exo_sim.replay import run_replay
from exo_sim.sim.run import run_sim


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trace", default=str(Path(default_traces_dir()) / "mooncake" / "conversation_trace.jsonl"))
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides (e.g. hardware=h100_node)")
    args = ap.parse_args()
    if not Path(args.trace).is_file():
        sys.exit(f"error: the Mooncake trace {args.trace} is absent (give --trace PATH)")
    setup()
    # int4 weights: the default seed workstation's 8 GiB vram does not hold bf16 Llama-3-8B
    overrides = ["workload=mooncake", f"workload.path={args.trace}", "block_tokens=512", "payload.weight_dtype=int4",
                 *args.overrides]
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    print("config: " + " ".join(overrides))

    replay_s, sim_s = [], []
    for _ in range(args.repeats):
        rep = run_replay(cfg)
        replay_s.append(rep.summary["elapsed_s"])
        sim = run_sim(cfg)
        sim_s.append(sim.summary["elapsed_s"])
    refs = rep.summary["accesses"]
    same = rep.summary["tiers"] == sim.summary["tiers"] and rep.summary["links"] == sim.summary["links"]
    replay_rate, sim_rate = refs / min(replay_s), refs / min(sim_s)
    s = sim.summary
    print(f"block references: {refs:,} in {s['requests']:,} requests; decisions identical: {same}")
    print(f"replay: {replay_rate:12,.0f} refs/s  (runs: {', '.join(f'{t:.3f}' for t in replay_s)} s)")
    print(f"sim:    {sim_rate:12,.0f} refs/s  (runs: {', '.join(f'{t:.3f}' for t in sim_s)} s)")
    print(f"ratio sim/replay: {sim_rate / replay_rate:.3f}   (targets: sim >= 250,000 refs/s, ratio >= 0.5)")
    print(
        f"simulated: makespan {s['makespan_s']:.1f} s, TTFT p50 {s['ttft_s']['p50']:.4g} s "
        f"p99 {s['ttft_s']['p99']:.4g} s, {s['reuse']} reuse, top-tier hit ratio {s['tiers'][0]['hit_ratio']:.4f}"
    )


if __name__ == "__main__":
    main()
