"""Single-tier replay speed of each registered policy on libCacheSim's cloudPhysicsIO trace.

For each policy and capacity, one tier of ``capacity`` blocks replays the trace's 113,872 requests
through the compiled cascade (``exo_sim._core.HierarchyCore.access_many``, every block one unit, with
next-access indices for the policies that need them: the hierarchy's own path), and libCacheSim's
same policy runs ``process_trace`` on the same file (``ignore_obj_size``) in the same process. Each
rate is the best of ``--repeat`` runs, in requests per second; the line gives both miss counts, which
must be equal, and the ratio exo / libCacheSim. libCacheSim's time includes opening and reading the
file (its reader is part of ``process_trace``); exo's starts from the ids already in memory, so the
ratio flatters exo: ``bench_replay.py`` is the like-for-like comparison (both read the file). Without
libCacheSim (a dev extra) only exo's side is printed.

    python experiments/bench_policies.py [--policies arc lfu belady] [--capacities 100 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from exo_sim._core import HierarchyCore
from exo_sim.policies import NEVER, Policy, get_policy, policy_names

TRACE = Path(__file__).resolve().parents[2] / "shared/traces/libcachesim/cloudPhysicsIO.oracleGeneral.bin"
ORACLE_GENERAL = np.dtype([("timestamp", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"), ("next_access", "<i8")])


class _Move(NamedTuple):
    """Unused: the benchmark records no moves."""

    block: int


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Object ids (int64) and next-access vtimes (``NEVER`` for none) of an oracleGeneral file."""
    rec = np.fromfile(path, dtype=ORACLE_GENERAL)
    nxt = rec["next_access"].astype(np.int64)
    return rec["obj_id"].astype(np.int64), np.where(nxt < 0, NEVER, nxt)


def core_misses(cls: type[Policy], capacity: int, keys: np.ndarray, nxt: np.ndarray) -> int:
    """Misses of one tier run by the compiled cascade."""
    core = HierarchyCore([cls(capacity)], [capacity], [capacity - 1], [1], False, False, _Move)
    core.access_many(keys, nxt if cls.needs_future else None)
    return len(keys) - core.hits[0]


LIBCACHESIM = {"lru": "LRU", "fifo": "FIFO", "lfu": "LFU", "s3fifo": "S3FIFO", "sieve": "Sieve", "arc": "ARC",
               "belady": "Belady"}
"""libCacheSim's class of each policy."""


def libcachesim_misses(name: str, capacity: int, path: Path) -> int | None:
    """libCacheSim's miss count for ``name`` at ``capacity`` on the oracleGeneral file (None: not installed)."""
    try:
        import libcachesim as lcs
    except ImportError:
        return None
    params = lcs.ReaderInitParam()
    params.ignore_obj_size = True
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
    cache = getattr(lcs, LIBCACHESIM[name])(capacity)
    miss_ratio, _ = cache.process_trace(reader)
    return round(miss_ratio * reader.get_num_of_req())


def main() -> None:
    """Print one line per policy, capacity and path."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=policy_names())
    ap.add_argument("--capacities", nargs="+", type=int, default=[100, 1000, 5000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trace", type=Path, default=TRACE)
    args = ap.parse_args()
    if not args.trace.exists():
        raise SystemExit(f"trace not found: {args.trace}")
    keys, nxt = read_trace(args.trace)
    print(f"{'policy':8} {'capacity':>8} {'exo misses':>10} {'exo req/s':>12} {'lcs misses':>10} {'lcs req/s':>12} "
          f"{'exo/lcs':>7}")
    for name in args.policies:
        cls = get_policy(name)
        for capacity in args.capacities:
            runs = {}
            for side in ("exo", "lcs"):
                best = float("inf")
                misses: int | None = -1
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    if side == "exo":
                        misses = core_misses(cls, capacity, keys, nxt)
                    else:
                        misses = libcachesim_misses(name, capacity, args.trace) if name in LIBCACHESIM else None
                    best = min(best, time.perf_counter() - t0)
                runs[side] = (misses, len(keys) / best)
            (em, er), (lm, lr) = runs["exo"], runs["lcs"]
            lcs_cols = f"{lm:10d} {lr:12,.0f} {er / lr:6.2f}x" if lm is not None else f"{'-':>10} {'-':>12} {'-':>7}"
            print(f"{name:8} {capacity:8d} {em:10d} {er:12,.0f} {lcs_cols}")

if __name__ == "__main__":
    main()
