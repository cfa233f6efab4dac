"""Single-tier replay speed of each registered policy on libCacheSim's cloudPhysicsIO trace.

For each policy and capacity, one tier of ``capacity`` blocks replays the trace's 113,872 requests
two ways, and the best of ``--repeat`` runs is printed as requests per second:

* ``core``: the compiled cascade (``exo_sim._core.HierarchyCore.access_many``, one tier, every
  block one unit), with next-access indices for the policies that need them: the hierarchy's path;
* ``loop``: libCacheSim's ``cache_get_base`` loop written in Python against the policy's methods
  (``in`` / ``access`` / ``prepare_insert`` / ``victim`` / ``insert``), as ``tests/test_policies.py``
  drives it.

Both print the miss count, which must be the same for the two paths.

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


def loop_misses(cls: type[Policy], capacity: int, keys: list[int], nxt: list[int]) -> int:
    """Misses of one tier run by a Python loop over the policy's methods."""
    policy = cls(capacity)
    prepare = getattr(policy, "prepare_insert", None)
    misses = 0
    for key, n in zip(keys, nxt, strict=True):
        if key in policy:
            policy.access(key, n)
            continue
        misses += 1
        if prepare is not None:
            prepare(key)
        while len(policy) >= capacity:
            policy.victim()
        policy.insert(key, n)
    return misses


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
    keys_l, nxt_l = keys.tolist(), nxt.tolist()
    print(f"{'policy':8} {'impl':14} {'capacity':>8} {'path':5} {'misses':>8} {'req/s':>12}")
    for name in args.policies:
        cls = get_policy(name)
        impl = "C" if cls.__module__ == "exo_sim._core" else "Python"
        for capacity in args.capacities:
            for path in ("core", "loop"):
                best = float("inf")
                misses = -1
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    if path == "core":
                        misses = core_misses(cls, capacity, keys, nxt)
                    else:
                        misses = loop_misses(cls, capacity, keys_l, nxt_l)
                    best = min(best, time.perf_counter() - t0)
                print(f"{name:8} {impl:14} {capacity:8d} {path:5} {misses:8d} {len(keys) / best:12,.0f}")


if __name__ == "__main__":
    main()
