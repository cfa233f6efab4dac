"""Sampled miss-ratio curves: SHARDS for LRU, miniature simulation for every other policy.

**Spatial sampling.** A block is in the sample iff ``hash(id) mod P < T`` with ``P = 2**32`` and
threshold ``T = round(R * P)`` (the rate actually used is ``T / P``). The hash (:func:`block_hash`) is
SplitMix64's finaliser over the id's 64 bits (add 0x9E3779B97F4A7C15, then xor-shift-multiply by
0xBF58476D1CE4E5B9 and 0x94D049BB133111EB, shifts 30, 27, 31), computed in numpy on whole chunks; the
sample keeps every reference of a sampled block and none of the others, so reuse inside the sample is
reuse in the trace. Every pass streams over the workload's chunks: memory is the sample's.

**SHARDS** (Waldspurger et al., FAST'15) for the exact LRU curve: the stack distance of a sampled
reference, measured within the sample, estimates ``R`` times its distance in the trace, so a read of
sampled distance ``d`` is a hit at capacity ``C`` iff ``d / R <= C``. Each sampled read weighs ``1/R``.
The distances are computed a batch at a time with :func:`exo_sim.mrc.stack_distances`, the batch
preceded by the sample's LRU stack so far (each resident block once, least recent first — which
reproduces the stack exactly). *Fixed size* (``size`` = ``s_max``): the sample holds at most ``s_max``
distinct blocks; when a batch would take it past ``s_max`` the threshold drops to the ``s_max + 1``-th
smallest hash among them, and the blocks at or above it leave the stack and the batch. Reads weigh
``1/R`` at the rate in force when their batch was measured — the paper's rescaling of the histogram
when the rate drops, written as weights. *Count correction* (SHARDS_adj): the sample's weighted reads
rarely add up to the trace's reads (a hot block in or out of the sample moves them a lot); the
difference — the trace's reads minus the weighted sampled reads, possibly negative — is added to the
hits at every capacity, as to the histogram's first bucket. At ``R = 1`` the curve is the exact one.

**Miniature simulation** (Waldspurger et al., ATC'17) for every other policy: the sampled trace
(whole requests' sampled references, in order) is replayed through the normal single-tier replay
(:func:`exo_sim.replay.run_replay`: the decision core) at capacity ``max(1, round(C * R))``. Its
misses, each weighing ``1/R``, estimate the trace's misses at ``C``, and the rest of the trace's reads
are hits: the same count correction as SHARDS' (a hot block in the sample brings extra reads, mostly
hits; scaling the miniature's own hit *ratio* instead credits them to every other block too, and
measured 4.3 pp MAE against 2.4 pp this way, FIFO at 1 % on 10^7 Zipf(0.8) references). With a fixed
size, the sample is first taken at a dropping threshold as above and trimmed to the final one, so
the replayed trace is the fixed-rate sample at ``T / P``.

**Not under prefix reuse.** There a read hits only if its whole chain before it is resident, so a
block's fate depends on blocks that are not in the sample; sampling by each request's prefix root
keeps chains whole, but one root (a shared system prompt) can carry most of the trace, so the sample
is one lucky or unlucky draw. :func:`sampling_settings` refuses sampling there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from exo_sim.errors import ConfigError
from exo_sim.mrc import (
    MrcPlan,
    MrcResult,
    ReplayPoint,
    curve_capacities,
    curve_frame,
    reuse_notes,
    single_tier_config,
    stack_distances,
)
from exo_sim.spec import block_bytes, build_spec
from exo_sim.workloads.base import RequestChunk, Workload

HASH_MODULUS = 1 << 32
"""``P``: a block is sampled iff ``block_hash(id) < T`` for a threshold ``T`` in ``[1, P]``."""
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK = np.uint64(HASH_MODULUS - 1)
BATCH_REFS = 1 << 16
"""Sampled references gathered before a batch is measured (at least the stack's size, so the stack
prepended to each batch costs at most as much as the batch)."""


def block_hash(blocks: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of each block id, modulo :data:`HASH_MODULUS` (uint64 in ``[0, P)``)."""
    z = np.asarray(blocks, dtype=np.int64).view(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    return z & _MASK


def rate_threshold(rate: float) -> int:
    """The threshold ``T = round(rate * P)`` of a sample rate in ``(0, 1]`` (at least 1)."""
    return max(1, min(HASH_MODULUS, round(rate * HASH_MODULUS)))


@dataclass(frozen=True)
class Sampling:
    """How ``exo-mrc`` samples: a fixed ``rate`` (``0 < rate < 1``) or a fixed ``size`` (distinct blocks)."""

    rate: float | None = None
    size: int | None = None

    def first_threshold(self) -> int:
        """The threshold the pass starts at (a fixed size starts by keeping every block)."""
        return rate_threshold(self.rate) if self.rate is not None else HASH_MODULUS

    def method(self, kind: str, threshold: int) -> str:
        """The ``method`` column: ``shards@0.01``, ``mini@0.01``, ``shards[100000]@0.0101``."""
        size = "" if self.size is None else f"[{self.size}]"
        return f"{kind}{size}@{threshold / HASH_MODULUS:.4g}"


def sampling_settings(m: Any, reuse: str, fail: Callable[[str, str], ConfigError]) -> Sampling | None:
    """Validate ``mrc.sample_rate`` / ``mrc.sample_size``; ``None`` means the exact curves.

    Raises:
        ConfigError: (built by ``fail(key, problem)``) both set, a value out of range, or sampling
            under prefix reuse.
    """
    rate, size = m.get("sample_rate"), m.get("sample_size")
    if rate is not None and size is not None:
        raise fail("mrc.sample_size", f"and mrc.sample_rate ({rate}) are both set; give one of them")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < float(rate) <= 1:
            raise fail("mrc.sample_rate", f"must be a number in (0, 1] (1: the exact curves), got {rate!r}")
        if float(rate) * HASH_MODULUS < 0.5:
            raise fail("mrc.sample_rate", f"is {rate}, below the hash's resolution (1 / 2**32)")
        if float(rate) == 1.0:
            return None
        key = "mrc.sample_rate"
        sampling = Sampling(rate=float(rate))
    elif size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise fail("mrc.sample_size", f"must be a whole number of blocks >= 1, got {size!r}")
        key = "mrc.sample_size"
        sampling = Sampling(size=int(size))
    else:
        return None
    if reuse == "prefix":
        raise fail(key, "cannot be used under hierarchy.reuse=prefix (a read hits only if its whole prefix "
                        "chain is resident, which a sample of blocks cannot see); set hierarchy.reuse=block "
                        "or drop the sampling")
    return sampling


@dataclass
class TraceCounts:
    """What a pass counted over the whole trace (not just the sample)."""

    references: int = 0
    reads: int = 0
    read_tokens: int = 0

    def add(self, chunk: RequestChunk) -> None:
        """Count ``chunk``'s references, reads and read tokens."""
        self.references += chunk.n_refs
        reads = ~chunk.writes
        self.reads += int(np.count_nonzero(reads))
        self.read_tokens += int(chunk.tokens[reads].sum())


def _lowered(blocks: np.ndarray, size: int | None) -> int | None:
    """The new threshold if the distinct ``blocks`` are more than ``size``: the ``size + 1``-th smallest hash."""
    if size is None:
        return None
    distinct = np.unique(blocks)
    if distinct.shape[0] <= size:
        return None
    return int(np.partition(block_hash(distinct), size)[size])


# ------------------------------------------------------------------ SHARDS (LRU)
@dataclass
class ShardsCurve:
    """SHARDS' estimate, before capacities are chosen: weighted sampled reads and their scaled distances.

    Attributes:
        scaled: sampled distance / rate of every sampled read that reuses a block, sorted.
        weights / tokens: each such read's weight (1 / rate) and tokens, in the order of ``scaled``.
        sampled_reads / sampled_read_tokens: the weighted sampled reads and their tokens.
        counts: the whole trace's references, reads and read tokens.
        threshold: the final threshold; ``distinct_sampled``: distinct blocks in the final sample.
        sampled_refs: references measured (every batch's, before any later trim).
    """

    scaled: np.ndarray
    weights: np.ndarray
    tokens: np.ndarray
    sampled_reads: float
    sampled_read_tokens: float
    counts: TraceCounts
    threshold: int
    distinct_sampled: int
    sampled_refs: int

    @property
    def rate(self) -> float:
        """The final sample rate ``T / P``."""
        return self.threshold / HASH_MODULUS

    def hits(self, capacities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimated read hits and hit tokens at each capacity, count-corrected, within ``[0, reads]``."""
        caps = np.asarray(capacities, dtype=np.float64)
        n = np.searchsorted(self.scaled, caps, side="right")
        cum_w = np.concatenate([[0.0], np.cumsum(self.weights)])
        cum_t = np.concatenate([[0.0], np.cumsum(self.weights * self.tokens)])
        c = self.counts
        hits = cum_w[n] + (c.reads - self.sampled_reads)
        hit_tokens = cum_t[n] + (c.read_tokens - self.sampled_read_tokens)
        return (np.clip(np.rint(hits), 0, c.reads).astype(np.int64),
                np.clip(np.rint(hit_tokens), 0, c.read_tokens).astype(np.int64))


def shards_lru(workload: Workload, sampling: Sampling, batch_refs: int = BATCH_REFS) -> ShardsCurve:
    """One streaming SHARDS pass over ``workload`` (fixed rate or fixed size; see the module docstring)."""
    threshold = sampling.first_threshold()
    counts = TraceCounts()
    stack = np.zeros(0, dtype=np.int64)  # the sample's LRU stack, least recent first
    pend: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending = 0
    scaled: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    tokens: list[np.ndarray] = []
    sums = [0.0, 0.0]
    measured = 0

    def flush() -> None:
        nonlocal stack, threshold, pending, measured
        if not pend:
            return
        blocks = np.concatenate([p[0] for p in pend])
        reads = np.concatenate([p[1] for p in pend])
        toks = np.concatenate([p[2] for p in pend])
        pend.clear()
        pending = 0
        cat = np.concatenate([stack, blocks])
        lowered = _lowered(cat, sampling.size)
        if lowered is not None:
            threshold = lowered
            keep = block_hash(cat) < threshold
            n_stack = int(np.count_nonzero(keep[: stack.shape[0]]))
            tail = keep[stack.shape[0]:]
            cat, blocks, reads, toks = cat[keep], blocks[tail], reads[tail], toks[tail]
        else:
            n_stack = stack.shape[0]
        rate = threshold / HASH_MODULUS
        dist = stack_distances(cat)[n_stack:]
        hit = reads & (dist > 0)
        scaled.append(dist[hit] / rate)
        weights.append(np.full(int(np.count_nonzero(hit)), 1.0 / rate))
        tokens.append(toks[hit].astype(np.float64))
        sums[0] += np.count_nonzero(reads) / rate
        sums[1] += float(toks[reads].sum()) / rate
        measured += blocks.shape[0]
        rev = cat[::-1]
        distinct, first = np.unique(rev, return_index=True)
        stack = distinct[np.argsort(-first, kind="stable")]

    for chunk in workload.chunks():
        counts.add(chunk)
        keep = block_hash(chunk.blocks) < threshold
        if not keep.any():
            continue
        pend.append((np.asarray(chunk.blocks, dtype=np.int64)[keep], ~chunk.writes[keep],
                     np.asarray(chunk.tokens, dtype=np.int64)[keep]))
        pending += int(np.count_nonzero(keep))
        if pending >= max(batch_refs, stack.shape[0]):
            flush()
    flush()
    s = np.concatenate(scaled) if scaled else np.zeros(0)
    order = np.argsort(s, kind="stable")
    w = np.concatenate(weights)[order] if weights else np.zeros(0)
    t = np.concatenate(tokens)[order] if tokens else np.zeros(0)
    return ShardsCurve(s[order], w, t, sums[0], sums[1], counts, threshold, int(stack.shape[0]), measured)


# ------------------------------------------------------------------ miniature simulation
@dataclass
class SampledTrace:
    """The sampled references of a trace, as whole requests' columns (requests left with none dropped).

    Request ``r`` is references ``offsets[r]`` to ``offsets[r + 1]``, arriving at ``arrival_s[r]``.
    """

    blocks: np.ndarray
    writes: np.ndarray
    tokens: np.ndarray
    offsets: np.ndarray
    arrival_s: np.ndarray
    threshold: int
    counts: TraceCounts

    @property
    def rate(self) -> float:
        """The sample rate ``T / P``."""
        return self.threshold / HASH_MODULUS

    @property
    def distinct_blocks(self) -> int:
        """Distinct blocks in the sample."""
        return int(np.unique(self.blocks).shape[0])


def sample_trace(workload: Workload, sampling: Sampling, batch_refs: int = BATCH_REFS) -> SampledTrace:
    """Stream ``workload`` and keep its sampled references (trimmed to the final threshold for a fixed size)."""
    threshold = sampling.first_threshold()
    counts = TraceCounts()
    cols: list[list[np.ndarray]] = [[], [], [], [], []]  # blocks, writes, tokens, request index, arrival
    fresh = 0
    base = 0
    for chunk in workload.chunks():
        counts.add(chunk)
        keep = block_hash(chunk.blocks) < threshold
        req = np.repeat(np.arange(base, base + chunk.n_requests, dtype=np.int64), np.diff(chunk.offsets))
        base += chunk.n_requests
        if not keep.any():
            continue
        cols[0].append(np.asarray(chunk.blocks, dtype=np.int64)[keep])
        cols[1].append(chunk.writes[keep])
        cols[2].append(np.asarray(chunk.tokens, dtype=np.int64)[keep])
        cols[3].append(req[keep])
        cols[4].append(np.asarray(chunk.arrival_s, dtype=np.float64)[req[keep] - (base - chunk.n_requests)])
        fresh += int(np.count_nonzero(keep))
        if sampling.size is not None and fresh >= max(batch_refs, sampling.size):
            threshold = _trim(cols, threshold, sampling.size)
            fresh = 0
    if sampling.size is not None:
        threshold = _trim(cols, threshold, sampling.size)
    if not cols[0]:
        z = np.zeros(0, dtype=np.int64)
        return SampledTrace(z, np.zeros(0, dtype=bool), z.copy(), np.zeros(1, dtype=np.int64), np.zeros(0),
                            threshold, counts)
    blocks, writes, tokens, req, arrival = (np.concatenate(c) for c in cols)
    starts = np.flatnonzero(np.concatenate([[True], req[1:] != req[:-1]]))
    offsets = np.append(starts, blocks.shape[0]).astype(np.int64)
    return SampledTrace(blocks, writes, tokens, offsets, arrival[starts], threshold, counts)


def _trim(cols: list[list[np.ndarray]], threshold: int, size: int) -> int:
    """Lower the threshold so at most ``size`` distinct blocks stay, dropping the others' references."""
    if not cols[0]:
        return threshold
    merged = [np.concatenate(c) for c in cols]
    lowered = _lowered(merged[0], size)
    if lowered is not None:
        keep = block_hash(merged[0]) < lowered
        merged = [c[keep] for c in merged]
        threshold = lowered
    for c, m in zip(cols, merged, strict=True):
        c[:] = [m]
    return threshold


class SampledWorkload(Workload):
    """A :class:`SampledTrace` as a workload, so the normal replay can run it (not in the registry)."""

    kind = "sampled"

    def __init__(self, trace: SampledTrace, block_tokens: int, chunk_refs: int = BATCH_REFS) -> None:
        super().__init__(None, block_tokens)
        self.trace = trace
        self.chunk_refs = chunk_refs

    def chunks(self) -> Iterator[RequestChunk]:
        """The sampled requests, about ``chunk_refs`` references a chunk (never splitting a request)."""
        t = self.trace
        n_req = t.offsets.shape[0] - 1
        r = 0
        while r < n_req:
            end = int(np.searchsorted(t.offsets, t.offsets[r] + self.chunk_refs, side="right")) - 1
            end = min(n_req, max(end, r + 1))
            a, b = int(t.offsets[r]), int(t.offsets[end])
            yield RequestChunk(arrival_s=t.arrival_s[r:end], offsets=t.offsets[r: end + 1] - a,
                               blocks=t.blocks[a:b], writes=t.writes[a:b], tokens=t.tokens[a:b])
            r = end

    def estimated_refs(self) -> int:
        """The sampled references."""
        return int(self.trace.blocks.shape[0])

    def describe(self) -> dict[str, Any]:
        """Kind and sample rate."""
        return {"kind": self.kind, "sample_rate": self.trace.rate}


def mini_capacity(capacity: int, rate: float) -> int:
    """The miniature cache's blocks for a capacity of ``capacity`` blocks: ``max(1, round(capacity * rate))``."""
    return max(1, round(capacity * rate))


def _mini_point(args: tuple[dict[str, Any], int, str, str, str, SampledTrace]) -> ReplayPoint:
    from exo_sim.replay import run_replay

    container, capacity, policy, codec, reuse, trace = args
    cfg = single_tier_config(OmegaConf.create(container), capacity, policy, codec)
    spec = replace(build_spec(cfg), reuse=reuse)
    s = run_replay(cfg, prepared=(spec, SampledWorkload(trace, spec.block_tokens))).summary
    return (int(s["tiers"][0]["hits"]), int(s["accesses"]), int(s["hit_tokens"]), int(s["prompt_tokens"]),
            int(s["requests_refused"]))


def mini_points(
    cfg: Any, trace: SampledTrace, capacities: np.ndarray, policy: str, codec: str, reuse: str = "block",
    jobs: int = 1,
) -> list[ReplayPoint]:
    """:data:`~exo_sim.mrc.ReplayPoint` of the sampled trace replayed at each capacity scaled by the rate."""
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    work = [(container, mini_capacity(int(c), trace.rate), policy, codec, reuse, trace) for c in capacities]
    if jobs <= 1 or len(work) <= 1:
        return [_mini_point(w) for w in work]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        return list(pool.map(_mini_point, work))


def mini_estimate(points: list[ReplayPoint], counts: TraceCounts, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The trace's hits (blocks and tokens) from the miniatures: the trace's reads less their misses / ``rate``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 5)
    misses = (pts[:, 1] - pts[:, 0]) / rate
    miss_tokens = (pts[:, 3] - pts[:, 2]) / rate
    hits = np.clip(counts.reads - misses, 0, counts.reads)
    hit_tokens = np.clip(counts.read_tokens - miss_tokens, 0, counts.read_tokens)
    return np.rint(hits).astype(np.int64), np.rint(hit_tokens).astype(np.int64)


def estimated_distinct(distinct_sampled: int, threshold: int) -> int:
    """The trace's distinct blocks estimated from the sample's: ``distinct_sampled / rate``."""
    return math.ceil(distinct_sampled * HASH_MODULUS / threshold)


# ------------------------------------------------------------------ exo-mrc
def run_sampled_mrc(cfg: Any, plan: MrcPlan) -> MrcResult:
    """The curves of ``plan`` (an :class:`~exo_sim.mrc.MrcPlan` whose ``sampling`` is set), sampled.

    LRU by SHARDS (one streaming pass), every other policy by miniature simulation of one sampled
    trace (one streaming pass, then one replay of the sample per capacity). Returns an
    :class:`~exo_sim.mrc.MrcResult` whose ``distinct_blocks`` is estimated from the sample.
    """
    sampling = plan.sampling
    assert sampling is not None, "run_sampled_mrc needs a plan with sampling"
    spec, reuse = plan.spec, plan.reuse
    bb = block_bytes(spec.content, plan.codec, cfg.codec)
    shards = shards_lru(plan.workload, sampling) if "lru" in plan.policies else None
    trace = sample_trace(plan.workload, sampling) if any(p != "lru" for p in plan.policies) else None
    if shards is not None:
        counts, distinct = shards.counts, estimated_distinct(shards.distinct_sampled, shards.threshold)
    else:
        assert trace is not None
        counts, distinct = trace.counts, estimated_distinct(trace.distinct_blocks, trace.threshold)
    caps = curve_capacities(cfg.mrc, distinct)
    frames = []
    for policy in plan.policies:
        if policy == "lru":
            assert shards is not None
            hits, hit_tokens = shards.hits(caps)
            method, rate = sampling.method("shards", shards.threshold), shards.rate
        else:
            assert trace is not None
            pts = mini_points(cfg, trace, caps, policy, plan.codec, reuse, plan.jobs)
            hits, hit_tokens = mini_estimate(pts, counts, trace.rate)
            method, rate = sampling.method("mini", trace.threshold), trace.rate
        frames.append(curve_frame(caps, hits, counts.reads, spec, bb, policy, method, reuse, hit_tokens,
                                  counts.read_tokens, sample_rate=rate))
    frame = pd.concat(frames, ignore_index=True)
    notes = reuse_notes(frame, distinct, counts.references)
    rates = ", ".join(sorted({f"{m}" for m in frame["method"]}))
    notes.append(f"sampled curves ({rates}): estimates from a spatial sample of the blocks, not exact; "
                 f"distinct blocks ({distinct:,}) estimated from the sample")
    return MrcResult(frame, distinct, counts.references, counts.reads, reuse, notes)
