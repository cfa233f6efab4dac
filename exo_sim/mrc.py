"""Miss-ratio curves: the hit ratio of one cache tier at many capacities.

**LRU, exactly, in one pass.** LRU has the stack property: a read hits in a cache of ``C`` blocks iff
its *stack distance* — 1 + the number of distinct blocks referenced since the previous reference to
the same block — is at most ``C``. For a reuse at position ``i`` whose previous reference is at ``p``,
the distinct blocks in between are the positions ``j`` in ``(p, i)`` that are the last reference of
their block before ``i``; every other position in between is the ``p'`` of a reuse pair ``(p', i')``
nested inside, ``p < p' < i' < i``. So::

    distance(i) = (i - p) - #{reuse pairs (p', i') with i' < i and p' > p}

Taking the reuse pairs in order of ``i``, the count is, for each pair, how many earlier pairs have a
larger ``p`` — per-element inversion counts, found for all pairs at once by a bottom-up merge sort
in numpy: ``O(R log R)`` for ``R`` reuses, a few tens of milliseconds for 10^5. Hits at every
capacity then come from one sorted array of distances. Writes (a request's new blocks) move their
block to the top of the stack like any reference but count as neither hit nor miss, as in the
hierarchy. This is the one place besides :mod:`exo_sim.future` that holds a whole trace: 8 bytes
per reference, plus about 40 per reuse while distances are computed.

**Other policies** have no stack property: their curve is one single-tier replay per capacity (the
very replay of ``exo-replay experiment=single_tier``), run in parallel processes.

Either way the tier is ``mrc_single_tier``: one tier of ``N`` blocks, exclusive, evicting one block
when full, storing blocks in the configured hierarchy's top-tier codec (which gives
``capacity_bytes``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from exo_sim.errors import ConfigError
from exo_sim.policies import policy_names
from exo_sim.spec import Locator, Spec, block_bytes, build_spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.base import Workload

COLUMNS = (
    "capacity_blocks",
    "capacity_bytes",
    "capacity_tokens",
    "hit_ratio",
    "miss_ratio",
    "policy",
    "method",
    "hits",
    "accesses",
)
"""Columns of ``mrc.parquet``."""

SPACINGS = ("log", "linear")
Ints = Sequence[int] | np.ndarray
"""Capacities or counts: a sequence of ints or an integer array."""
TIER_NAME = "cache"


# ------------------------------------------------------------------ one-pass LRU
def previous_occurrence(blocks: np.ndarray) -> np.ndarray:
    """For each position, the previous position holding the same block, or -1."""
    blocks = np.asarray(blocks)
    order = np.argsort(blocks, kind="stable")
    sb = blocks[order]
    same = sb[1:] == sb[:-1]
    prev = np.full(blocks.shape[0], -1, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    return prev


def earlier_greater(values: np.ndarray) -> np.ndarray:
    """For each ``i``, how many ``j < i`` have ``values[j] > values[i]`` (values distinct).

    A bottom-up merge sort on rows of a padded power-of-two array: at each level the two sorted halves
    of every row are merged by one stable ``argsort`` (timsort merges two runs in linear time), and
    each element of a right half learns how many elements of its left half are greater.
    """
    values = np.asarray(values, dtype=np.int64)
    r = values.shape[0]
    counts = np.zeros(r, dtype=np.int64)
    if r < 2:
        return counts
    size = 1 << (r - 1).bit_length()
    vals = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    vals[:r] = values
    ids = np.arange(size, dtype=np.int64)
    acc = np.zeros(size, dtype=np.int64)
    h = 1
    while h < size:
        rows = vals.reshape(-1, 2 * h)
        perm = np.argsort(rows, axis=1, kind="stable")
        ids = np.take_along_axis(ids.reshape(-1, 2 * h), perm, axis=1)
        from_right = perm >= h
        # a right element at merged position s has s - (its index in the right half) left elements
        # before it, hence h - that many left elements greater than it
        greater = h - (np.arange(2 * h) - (perm - h))
        acc[ids[from_right]] += greater[from_right]
        vals = np.take_along_axis(rows, perm, axis=1).ravel()
        ids = ids.ravel()
        h *= 2
    counts[:] = acc[:r]
    return counts


def stack_distances(blocks: np.ndarray) -> np.ndarray:
    """LRU stack distance of every reference (1 = the most recent block); 0 for a first reference."""
    prev = previous_occurrence(blocks)
    reuse = np.flatnonzero(prev >= 0)
    p = prev[reuse]
    dist = np.zeros(prev.shape[0], dtype=np.int64)
    dist[reuse] = reuse - p - earlier_greater(p)
    return dist


def lru_hits(blocks: np.ndarray, reads: np.ndarray | None, capacities: Ints) -> np.ndarray:
    """Exact LRU read hits at each capacity (blocks), from one pass over the references.

    Args:
        blocks: every reference's block id, in order (reads and writes).
        reads: ``True`` where the reference is a read (``None``: all are); writes move their block to
            the top of the stack but are not counted.
        capacities: cache sizes in blocks.
    """
    dist = stack_distances(blocks)
    counted = dist > 0 if reads is None else (dist > 0) & reads
    hits_sorted = np.sort(dist[counted])
    return np.searchsorted(hits_sorted, np.asarray(capacities, dtype=np.int64), side="right")


def references(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Stream ``workload`` into ``(block ids, is-read mask)`` over all its references."""
    blocks: list[np.ndarray] = []
    reads: list[np.ndarray] = []
    for chunk in workload.chunks():
        blocks.append(chunk.blocks)
        reads.append(~chunk.writes)
    if not blocks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    return np.concatenate(blocks).astype(np.int64, copy=False), np.concatenate(reads)


# ------------------------------------------------------------------ capacities and configs
def capacity_grid(lo: int, hi: int, points: int, spacing: str = "log") -> np.ndarray:
    """``points`` distinct integer capacities from ``lo`` to ``hi`` (all of them if fewer exist).

    One point is ``hi`` alone.
    """
    if hi - lo + 1 <= points:
        return np.arange(lo, hi + 1, dtype=np.int64)
    raw = np.geomspace(lo, hi, points) if spacing == "log" else np.linspace(lo, hi, points)
    c = np.round(raw).astype(np.int64)
    c[0], c[-1] = lo, hi
    for i in range(1, points):  # strictly increasing ...
        c[i] = max(c[i], c[i - 1] + 1)
    return np.minimum(c, hi - (points - 1 - np.arange(points)))  # ... and within [lo, hi]


def single_tier_config(cfg: Any, capacity_blocks: int, policy: str, codec: str) -> DictConfig:
    """``cfg`` with its hardware replaced by one tier of ``capacity_blocks`` blocks under ``policy``.

    The tier evicts one block when full (exclusive, watermarks 1.0) and stores blocks in ``codec``;
    block size, payload and workload are ``cfg``'s. Resolved, so it can cross process boundaries.
    """
    c: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    c["hardware"] = {
        "name": "mrc_single_tier",
        "description": f"one tier of {capacity_blocks} blocks (miss-ratio curve)",
        "tiers": [
            {
                "name": TIER_NAME,
                "medium": "ram",
                "capacity_bytes": None,
                "capacity_blocks": int(capacity_blocks),
                "high_watermark": None,
                "low_watermark": None,
            }
        ],
        "links": [],
        "codec_throughput": {},
    }
    c["capacity_blocks"] = int(capacity_blocks)
    c["policy"] = {"name": policy, "default": policy, "per_tier": {}}
    c["hierarchy"] = {"mode": "exclusive", "high_watermark": 1.0, "low_watermark": 1.0}
    c["codec"]["default"] = codec
    c["codec"]["per_tier"] = {}
    c.setdefault("output", {})
    c["output"]["timeseries_points"] = 2
    c["output"]["progress"] = False
    return OmegaConf.create(c)


@dataclass
class MrcPlan:
    """What ``exo-mrc`` will compute: validated, before any work."""

    spec: Spec
    workload: Workload
    policies: list[str]
    codec: str
    jobs: int


def plan_mrc(cfg: Any, locate: Locator | None = None) -> MrcPlan:
    """Validate ``cfg`` (hierarchy, workload and the ``mrc`` section) and return the plan.

    Raises:
        ConfigError: naming the first bad key.
        TraceError: if the workload's trace is missing or unreadable.
    """
    spec = build_spec(cfg, locate)
    workload = make_workload(cfg.workload, spec.block_tokens, locate)
    m = cfg.mrc

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(key, problem, locate(key) if locate else None)

    policies = [str(p) for p in m.policies]
    if not policies:
        raise fail("mrc.policies", "is empty; name at least one policy")
    known = policy_names()
    for i, p in enumerate(policies):
        if p not in known:
            raise fail(f"mrc.policies[{i}]", f"is {p!r}, not a known policy ({', '.join(known)})")
    if len(set(policies)) != len(policies):
        raise fail("mrc.policies", f"repeats a policy: {policies}")
    if m.capacities_blocks is not None:
        if not len(m.capacities_blocks):
            raise fail("mrc.capacities_blocks", "is empty")
        for i, cap in enumerate(m.capacities_blocks):
            if int(cap) <= 0:
                raise fail(f"mrc.capacities_blocks[{i}]", f"must be > 0, got {cap}")
    if m.points <= 0:
        raise fail("mrc.points", f"must be > 0, got {m.points}")
    if m.min_blocks <= 0:
        raise fail("mrc.min_blocks", f"must be > 0, got {m.min_blocks}")
    if m.max_blocks is not None and m.max_blocks < m.min_blocks:
        raise fail("mrc.max_blocks", f"is {m.max_blocks}, below mrc.min_blocks ({m.min_blocks})")
    if m.spacing not in SPACINGS:
        raise fail("mrc.spacing", f"is {m.spacing!r}, not one of {', '.join(SPACINGS)}")
    if m.jobs < 0:
        raise fail("mrc.jobs", f"must be >= 0, got {m.jobs}")
    jobs = int(m.jobs) or (os.cpu_count() or 1)
    return MrcPlan(spec, workload, policies, spec.tiers[0].codec, jobs)


def _replay_hits(args: tuple[dict[str, Any], int, str, str]) -> tuple[int, int]:
    from exo_sim.replay import run_replay

    container, capacity, policy, codec = args
    cfg = single_tier_config(OmegaConf.create(container), capacity, policy, codec)
    s = run_replay(cfg).summary
    return int(s["tiers"][0]["hits"]), int(s["accesses"])


def replay_hits(
    cfg: Any, capacities: Ints, policy: str, codec: str, jobs: int = 1
) -> list[tuple[int, int]]:
    """``(hits, accesses)`` of single-tier replays of ``cfg``'s workload at each capacity."""
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    work = [(container, int(c), policy, codec) for c in capacities]
    if jobs <= 1 or len(work) <= 1:
        return [_replay_hits(w) for w in work]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        return list(pool.map(_replay_hits, work, chunksize=max(1, len(work) // (4 * jobs))))


def curve_frame(
    capacities: Ints,
    hits: Ints,
    accesses: int | Ints,
    spec: Spec,
    block_bytes: int,
    policy: str,
    method: str,
) -> pd.DataFrame:
    """One curve as rows of ``mrc.parquet``."""
    caps = np.asarray(capacities, dtype=np.int64)
    h = np.asarray(hits, dtype=np.int64)
    acc = np.broadcast_to(np.asarray(accesses, dtype=np.int64), caps.shape)
    ratio = np.divide(h, acc, out=np.zeros(caps.shape[0]), where=acc > 0)
    return pd.DataFrame(
        {
            "capacity_blocks": caps,
            "capacity_bytes": caps * block_bytes,
            "capacity_tokens": caps * spec.block_tokens,
            "hit_ratio": ratio,
            "miss_ratio": 1.0 - ratio,
            "policy": policy,
            "method": method,
            "hits": h,
            "accesses": acc,
        }
    )[list(COLUMNS)]


@dataclass
class MrcResult:
    """The curves (``mrc.parquet``'s rows) and facts about the pass."""

    frame: pd.DataFrame
    distinct_blocks: int
    references: int
    reads: int


def run_mrc(cfg: Any, locate: Locator | None = None, plan: MrcPlan | None = None) -> MrcResult:
    """Compute the miss-ratio curves ``cfg.mrc`` asks for (see the module docstring).

    Raises:
        ExoError: on invalid config or trace, before any curve is returned.
    """
    plan = plan or plan_mrc(cfg, locate)
    bb = block_bytes(plan.spec.content, plan.codec, cfg.codec)
    blocks, reads = references(plan.workload)
    distinct = int(np.unique(blocks).shape[0]) if blocks.shape[0] else 0
    m = cfg.mrc
    if m.capacities_blocks is not None:
        caps = np.unique(np.asarray(list(m.capacities_blocks), dtype=np.int64))
    else:
        hi = int(m.max_blocks) if m.max_blocks is not None else max(distinct, int(m.min_blocks))
        caps = capacity_grid(int(m.min_blocks), hi, int(m.points), str(m.spacing))
    n_reads = int(np.count_nonzero(reads))
    frames = []
    for policy in plan.policies:
        if policy == "lru":
            hits = lru_hits(blocks, None if n_reads == blocks.shape[0] else reads, caps)
            frames.append(curve_frame(caps, hits, n_reads, plan.spec, bb, policy, "stack_distance"))
        else:
            pairs = replay_hits(cfg, caps, policy, plan.codec, plan.jobs)
            frames.append(
                curve_frame(caps, [h for h, _ in pairs], [a for _, a in pairs], plan.spec, bb, policy, "replay")
            )
    return MrcResult(pd.concat(frames, ignore_index=True), distinct, int(blocks.shape[0]), n_reads)


def plot_mrc(frame: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Draw the miss ratio against capacity (blocks, log scale), one line per policy, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=frame, x="capacity_blocks", y="miss_ratio", hue="policy", marker=".", ax=ax)
    if frame["capacity_blocks"].max() > 10 * max(1, frame["capacity_blocks"].min()):
        ax.set_xscale("log")
    ax.set_xlabel("capacity (blocks)")
    ax.set_ylabel("miss ratio")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

