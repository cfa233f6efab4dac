"""Benchmark of the one-pass LRU miss-ratio curve against 100 libCacheSim LRU runs, in one process.

On Mooncake's conversation trace (288,500 block references, one block per 512-token hash id) prints:
  * the Mooncake reader's streaming rate (block references/s; target >= 1M/s), best of --repeat;
  * the one-pass exact LRU curve (stack distances, ``exo_sim.mrc.lru_hits``) over 100 capacities
    (log-spaced, 1 .. distinct blocks), from the references in memory, best of --repeat; and the same
    including the trace read;
  * 100 separate libCacheSim LRU runs (C ``process_trace``) at the same capacities over an
    oracleGeneral file written from the same references (object size ignored, hash table sized to
    the trace: hashpower = ceil(log2(distinct)) + 1, faster than libCacheSim's default of 24);
  * their ratio (target >= 10x) and whether the 100 miss counts are identical;
  * under prefix reuse (``hierarchy.reuse=prefix``, the default for Mooncake on a KV-cache payload),
    at 512-token blocks: the one-pass exact prefix-hit LRU curve (``exo_sim.mrc.prefix_lru_hits``) at
    the same 100 capacities, best of --repeat, against 100 single-tier replays (``run_replay``, the
    Driver-based replay of ``exo-replay experiment=single_tier``, each reading the trace as it does),
    run one after another in this process; their ratio (target >= 10x), and the largest difference
    between the two curves (hits, and hit ratio). ``--replays N`` times N of the 100 (evenly spaced)
    and scales their time to 100, saying so.

    python experiments/bench_mrc.py [--trace PATH] [--capacities 100] [--repeat 3] [--replays 100]

With ``--sampled``, instead: sampled curves (``exo_sim.mrc_sampling``) against exact ones on a
synthetic trace of --refs references (default 10^8) to --objects blocks (default 10^7; Zipf(--alpha
0.8), seeded, generated in numpy chunks by the ``zipf`` workload — a trace this long does not touch
every block, so the distinct count is printed). At --points capacities (default 8, log-spaced from
--min-fraction of the distinct blocks to all of them; kept few because every exact curve but LRU's is
one full replay per capacity) it prints, for LRU by SHARDS at --rate (default 1 %) and at a fixed
size (--size distinct blocks, default rate x distinct), and for --policies (default fifo, s3fifo) by
miniature simulation at --rate: the mean absolute error against the exact curve in percentage points
of miss ratio, and the speed-up over the exact curve (LRU: the one-pass stack-distance curve of the
trace in memory; others: one full replay per capacity on --jobs processes), each side timed from the
generated trace (generation included; its time alone is printed too), with libCacheSim's published
anchors beside. The one-pass exact LRU curve holds the whole trace (about 140 bytes a reference at its
peak, see ``exo_sim.mrc_memory``); ``--exact-lru replay`` draws it by one replay per capacity instead,
holding only the cache (the way to run the default 10^8 references on a machine of 24 GB).

    python experiments/bench_mrc.py --sampled [--refs 100000000] [--objects 10000000] [--alpha 0.8]
        [--seed 0] [--rate 0.01] [--size N] [--points 8] [--min-fraction 0.001] [--policies fifo s3fifo]
        [--jobs CPUS] [--exact-lru one-pass|replay]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from exo_sim._core import KeySet
from exo_sim.cli.entry import CONF_DIR, default_traces_dir, setup
from exo_sim.mrc import (
    capacity_grid,
    lru_hits,
    plan_mrc,
    prefix_lru_hits,
    references,
    replay_points,
    request_arrays,
    single_tier_config,
)
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
    ap.add_argument("--replays", type=int, default=None,
                    help="prefix section: time this many of the replays and scale to all (default: all)")
    ap.add_argument("--sampled", action="store_true", help="the sampled-curve section only (see above)")
    ap.add_argument("--refs", type=int, default=100_000_000)
    ap.add_argument("--objects", type=int, default=10_000_000)
    ap.add_argument("--alpha", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.01)
    ap.add_argument("--size", type=int, default=None,
                    help="fixed-size SHARDS: distinct blocks (default rate x distinct)")
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--min-fraction", type=float, default=0.001)
    ap.add_argument("--policies", nargs="+", default=["fifo", "s3fifo"])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--exact-lru", choices=["one-pass", "replay"], default="one-pass",
                    help="the exact LRU curve: one pass over the trace in memory, or one replay per capacity")
    args = ap.parse_args()
    if args.sampled:
        sampled_section(args)
        return
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
    prefix_section(args.trace, caps, args.repeat, args.replays)


def prefix_section(trace: str, caps: np.ndarray, repeat: int, n_replays: int | None) -> None:
    """The one-pass prefix-hit LRU curve against single-tier replays (see the module docstring)."""
    from hydra import compose, initialize_config_dir

    from exo_sim.replay import run_replay

    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=["experiment=single_tier", "workload=mooncake", f"workload.path={trace}",
                                           "block_tokens=512"])
    plan = plan_mrc(cfg)
    print(f"\nprefix reuse ({plan.reuse}), {plan.spec.block_tokens}-token blocks, {plan.spec.payload}/{plan.codec}:")
    read_s = one_pass_s = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        req = request_arrays(plan.workload)
        read_s = min(read_s, time.perf_counter() - t)
        t = time.perf_counter()
        res, engine = prefix_lru_hits(cfg, req, plan.spec.block_tokens, caps, plan.codec)
        one_pass_s = min(one_pass_s, time.perf_counter() - t)
    sizes = np.diff(req.offsets)
    print(f"one-pass prefix LRU curve, {len(caps)} capacities: {one_pass_s * 1e3:.1f} ms "
          f"({(one_pass_s + read_s) * 1e3:.1f} ms with the trace read); "
          f"{int(np.count_nonzero(caps < sizes.max()))} capacities below the largest request "
          f"({int(sizes.max())} blocks) refuse some requests; {int(engine.sum())} needed the engine "
          f"(a duplicate copy)")
    n = len(caps) if n_replays is None else max(1, min(len(caps), n_replays))
    pick = np.unique(np.round(np.linspace(0, len(caps) - 1, n)).astype(np.int64))
    theirs = np.zeros((len(pick), 3), dtype=np.int64)
    t = time.perf_counter()
    for j, i in enumerate(pick):
        s = run_replay(single_tier_config(cfg, int(caps[i]), "lru", plan.codec)).summary
        theirs[j] = (s["tiers"][0]["hits"], s["accesses"], s["requests_refused"])
    replay_s = (time.perf_counter() - t) * len(caps) / len(pick)
    scaled = "" if len(pick) == len(caps) else f" (timed {len(pick)}, scaled to {len(caps)})"
    print(f"single-tier replays (run_replay), {len(caps)} capacities one after another: "
          f"{replay_s:.1f} s{scaled}, {replay_s / len(caps) * 1e3:.0f} ms each")
    print(f"ratio one-pass prefix / {len(caps)} replays: {replay_s / one_pass_s:.1f}x faster (target >= 10x); "
          f"with the trace read: {replay_s / (one_pass_s + read_s):.1f}x")
    ours = np.stack([res.hits[pick], res.accesses[pick], res.refused[pick]], axis=1)
    hit_diff = int(np.abs(ours[:, 0] - theirs[:, 0]).max())
    ratio = np.divide(ours[:, 0], ours[:, 1], out=np.zeros(len(pick)), where=ours[:, 1] > 0)
    their_ratio = np.divide(theirs[:, 0], theirs[:, 1], out=np.zeros(len(pick)), where=theirs[:, 1] > 0)
    print(f"identical (hits, read blocks, refused) at all {len(pick)} capacities replayed: "
          f"{bool(np.array_equal(ours, theirs))}; largest difference: {hit_diff} hit blocks, "
          f"{float(np.abs(ratio - their_ratio).max()):.6f} in prefix-hit ratio (hit blocks / read blocks)")
    for i in (0, len(caps) // 2, len(caps) - 1):
        print(f"  {int(caps[i]):>7,} blocks: prefix-hit ratio {res.hits[i] / max(1, res.accesses[i]):.4f} "
              f"({int(res.hits[i]):,} / {int(res.accesses[i]):,}), {int(res.refused[i]):,} requests refused")


ANCHORS = {
    "shards": "libCacheSim: SHARDS 1 %: MAE 0.08 pp, 22x faster",
    "mini": "libCacheSim: mini 1 %: MAE 0.15-0.48 pp",
}


def sampled_section(args: argparse.Namespace) -> None:
    """Sampled curves against exact ones on a synthetic Zipf trace (see the module docstring)."""
    from hydra import compose, initialize_config_dir

    from exo_sim.mrc_sampling import Sampling, estimated_distinct, mini_estimate, mini_points, sample_trace, shards_lru

    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=[
            "experiment=single_tier", "workload=zipf", f"workload.objects={args.objects}",
            f"workload.accesses={args.refs}", f"workload.alpha={args.alpha}", f"workload.seed={args.seed}"])
    plan = plan_mrc(cfg)
    workload = plan.workload
    t = time.perf_counter()
    gen_refs = sum(c.n_refs for c in workload.chunks())
    gen_s = time.perf_counter() - t
    print(f"synthetic trace: {gen_refs:,} references to {args.objects:,} blocks, Zipf({args.alpha}), seed {args.seed}; "
          f"generated in {gen_s:.1f} s (streamed, nothing kept)")

    t = time.perf_counter()
    if args.exact_lru == "one-pass":
        blocks, _ = references(workload)
        distinct = int(np.unique(blocks).shape[0])
        n = int(blocks.shape[0])
    else:  # count the distinct blocks streaming: the trace is never held
        seen = KeySet()
        n = 0
        for chunk in workload.chunks():
            seen.update(np.ascontiguousarray(chunk.blocks, dtype=np.int64))
            n += chunk.n_refs
        distinct = len(seen)
        del seen
    lo = max(1, round(args.min_fraction * distinct))
    caps = capacity_grid(lo, distinct, args.points, "log")
    print(f"{distinct:,} distinct blocks; {len(caps)} capacities {', '.join(f'{c:,}' for c in caps)} blocks")
    if args.exact_lru == "one-pass":
        exact_hits = lru_hits(blocks, None, caps)
        del blocks
        lru_s = time.perf_counter() - t
        exact = {"lru": exact_hits / n}
        print(f"exact lru (one-pass stack distances, trace in memory): {lru_s:.1f} s")
    else:
        count_s = time.perf_counter() - t
        t = time.perf_counter()
        pts = np.asarray(replay_points(cfg, caps, "lru", plan.codec, args.jobs), dtype=np.float64).reshape(-1, 5)
        lru_s = time.perf_counter() - t
        exact = {"lru": pts[:, 0] / pts[:, 1]}
        print(f"exact lru ({len(caps)} full replays on {args.jobs} processes; counting the blocks first took "
              f"{count_s:.1f} s more): {lru_s:.1f} s")
    exact_s = {"lru": lru_s}
    for policy in args.policies:
        t = time.perf_counter()
        pts = np.asarray(replay_points(cfg, caps, policy, plan.codec, args.jobs), dtype=np.float64).reshape(-1, 5)
        exact_s[policy] = time.perf_counter() - t
        exact[policy] = pts[:, 0] / pts[:, 1]
        print(f"exact {policy} ({len(caps)} full replays on {args.jobs} processes): {exact_s[policy]:.1f} s")

    def report(label: str, policy: str, hits: np.ndarray, seconds: float, anchor: str) -> None:
        mae = float(np.abs(hits / n - exact[policy]).mean()) * 100
        worst = float(np.abs(hits / n - exact[policy]).max()) * 100
        print(f"  {label:<28} MAE {mae:.3f} pp (max {worst:.3f}), {seconds:.1f} s, "
              f"{exact_s[policy] / seconds:.1f}x faster than exact   [{anchor}]")

    print("sampled (miss-ratio error in percentage points; time includes generating the trace):")
    size = args.size or max(1, round(args.rate * distinct))
    for sampling in (Sampling(rate=args.rate), Sampling(size=size)):
        t = time.perf_counter()
        sh = shards_lru(workload, sampling)
        sh_s = time.perf_counter() - t
        label = f"lru {sampling.method('shards', sh.threshold)}"
        report(label, "lru", sh.hits(caps)[0], sh_s, ANCHORS["shards"])
        print(f"    {sh.distinct_sampled:,} blocks in the final sample "
              f"(distinct estimated {estimated_distinct(sh.distinct_sampled, sh.threshold):,}), "
              f"{sh.sampled_refs:,} references measured")
    t = time.perf_counter()
    trace = sample_trace(workload, Sampling(rate=args.rate))
    sample_s = time.perf_counter() - t
    print(f"  sampled trace for miniature simulation: {trace.blocks.shape[0]:,} references, "
          f"{trace.distinct_blocks:,} blocks, {sample_s:.1f} s (counted in each policy's time below)")
    for policy in args.policies:
        t = time.perf_counter()
        mini = mini_points(cfg, trace, caps, policy, plan.codec, plan.reuse, args.jobs)
        mini_s = time.perf_counter() - t + sample_s
        report(f"{policy} mini@{trace.rate:.4g}", policy, mini_estimate(mini, trace.counts, trace.rate)[0], mini_s,
               ANCHORS["mini"])


if __name__ == "__main__":
    main()
