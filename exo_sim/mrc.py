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
hierarchy. This is the one place besides :mod:`exo_sim.future` that holds a whole trace: at the
peak, 42 B per reference plus 32 per reuse and 65 per slot of the merge sort (reuses padded to a power
of two), counted in :mod:`exo_sim.mrc_memory`, which ``exo-mrc`` holds to ``mrc.memory_budget``.

**LRU under prefix reuse, exactly, in one pass** (:func:`prefix_lru_pass`; ``hierarchy.reuse`` is
``prefix``: the rules are :mod:`exo_sim.driver`'s). The engine's LRU order is kept as a stack in
which every request, once done, puts its cacheable blocks back tail-first (its reads then its
writes, head most recent); a prompt's partial last block never enters it. Let ``D`` be a block's
depth in that stack *when its request starts* (∞ if it is not there) — from the stack distances of
the flattened release order, ``D = dist(i) - (i - s) + #{j in [s, i): prev(j) > prev(i)}`` for a
request starting at ``s`` (the last term is 0 when the request's blocks were, as usual, deeper the
further down its chain they lie). The cache of ``C`` blocks holds the top ``C - f`` blocks of the
stack, where ``f`` is 1 after a request whose partial last block took a slot while it ran (it
evicted one block and left its slot free; the next request's first new block fills it) — so
``f``, not the partial block itself, is how it shrinks the cache, by one, for the next request.
Lookups come before any eviction, so read ``k`` of a request is a hit iff ``k < cap`` (the n-1 cap:
``floor((prompt tokens - 1) / block_tokens)``, and no partial block before it) and the running
maximum of ``D`` up to ``k`` is at most ``C - f``: one threshold per read, hits at every capacity
from one sorted array. Two rules break the stack property, and are handled exactly:

* **refusal**: a request of more blocks than ``C`` is refused at ``C`` (it leaves no trace), so
  capacities that refuse different requests see different streams: the pass runs once per distinct
  set of admitted requests among the capacities asked (one pass for every ``C`` >= the largest
  request; the rest cost less, their streams being shorter);
* **duplicate copies**: a read computed while a copy of its block is resident (a fully cached
  prompt whose last block is full, reads past a partial block inside a chain, a block repeated in a
  request, ids that are not chains) gets a second copy, and the first one stays as a dead slot at
  exactly the capacities where the block was resident — a capacity-dependent hole. The pass finds,
  per capacity, the first request where that can happen (read ``k`` past the cached prefix — its
  running maximum or ``cap`` stopped it — whose block was resident when the request started,
  ``C - f >= D_k``, or repeats an earlier read of the request); up to that request the curve is
  exact, and from there the capacity is finished by the decision core itself
  (:class:`~exo_sim.driver.Driver` on a :class:`~exo_sim.hierarchy.Hierarchy` preloaded with the
  stack's top ``C - f`` blocks): ``method`` says ``prefix_stack_distance+engine`` for those rows.
  Neither Mooncake trace ever does it (their ids are chains and no fully cached prompt ends on a
  full block), so their curves are one pass throughout.

The curve's ``hit_ratio`` is then the prefix-hit ratio: hit blocks (the cached prefixes) over the
read blocks of the requests served (refused ones are not counted, as in the replay's summary);
``token_hit_ratio`` is hit tokens over prompt tokens.

**Other policies** have no stack property: their curve is one single-tier replay per capacity (the
very replay of ``exo-replay experiment=single_tier``), run in parallel processes.

**Sampled curves** (``mrc.sample_rate`` < 1 or ``mrc.sample_size``): SHARDS for LRU, miniature
simulation for the rest, streaming over the workload — :mod:`exo_sim.mrc_sampling`.

Either way the tier is ``mrc_single_tier``: one tier of ``N`` blocks, exclusive, evicting one block
when full, storing blocks in the configured hierarchy's top-tier codec (which gives
``capacity_bytes``), with the configured ``hierarchy.reuse``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from exo_sim.driver import resolve_reuse
from exo_sim.errors import ConfigError
from exo_sim.policies import policy_names
from exo_sim.spec import Locator, Spec, block_bytes, build_spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.base import Workload

if TYPE_CHECKING:
    from exo_sim.mrc_sampling import Sampling

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
    "reuse",
    "hit_tokens",
    "prompt_tokens",
    "token_hit_ratio",
    "refused_requests",
    "sample_rate",
)
"""Columns of ``mrc.parquet``. ``hit_ratio`` is ``hits / accesses``: read blocks served from the cache
over read blocks of the requests served — under ``reuse`` = ``prefix`` the blocks of each request's
cached prefix, so it is the prefix-hit ratio; ``token_hit_ratio`` is ``hit_tokens / prompt_tokens``;
``refused_requests``: requests larger than the tier, refused under prefix reuse (not counted above);
``sample_rate``: 1 for an exact curve, else the spatial sample's rate (:mod:`exo_sim.mrc_sampling`)."""

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
    return _lru_curve(blocks, reads, None, capacities)[0]


def _lru_curve(
    blocks: np.ndarray, reads: np.ndarray | None, tokens: np.ndarray | None, capacities: Ints
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lru_hits` and the tokens of those hits (``tokens``: each reference's; ``None``: no tokens)."""
    dist = stack_distances(blocks)
    counted = dist > 0 if reads is None else (dist > 0) & reads
    caps = np.asarray(capacities, dtype=np.int64)
    if tokens is None:
        hits = np.searchsorted(np.sort(dist[counted]), caps, side="right")
        return hits, np.zeros_like(hits)
    order = np.argsort(dist[counted], kind="stable")
    hits_sorted = dist[counted][order]
    hits = np.searchsorted(hits_sorted, caps, side="right")
    cum = np.zeros(hits_sorted.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.asarray(tokens, dtype=np.int64)[counted][order], out=cum[1:])
    return hits, cum[hits]


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


# ------------------------------------------------------------------ one-pass LRU under prefix reuse
@dataclass
class RequestArrays:
    """A whole workload as columns: every reference's block, tokens and write flag.

    Request ``r`` is references ``offsets[r]`` to ``offsets[r + 1]``.
    """

    blocks: np.ndarray
    tokens: np.ndarray
    writes: np.ndarray
    offsets: np.ndarray

    @property
    def n_requests(self) -> int:
        """Requests in the workload."""
        return int(self.offsets.shape[0]) - 1

    def tail(self, start: int) -> RequestArrays:
        """The requests from ``start`` on."""
        lo = int(self.offsets[start])
        return RequestArrays(
            self.blocks[lo:], self.tokens[lo:], self.writes[lo:], self.offsets[start:] - lo
        )


def request_arrays(workload: Workload) -> RequestArrays:
    """Stream ``workload`` into :class:`RequestArrays` (every reference, with its request)."""
    blocks: list[np.ndarray] = []
    tokens: list[np.ndarray] = []
    writes: list[np.ndarray] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    base = 0
    for chunk in workload.chunks():
        blocks.append(np.asarray(chunk.blocks, dtype=np.int64))
        tokens.append(np.asarray(chunk.tokens, dtype=np.int64))
        writes.append(np.asarray(chunk.writes, dtype=bool))
        offsets.append(np.asarray(chunk.offsets[1:], dtype=np.int64) + base)
        base += chunk.n_refs
    if not blocks:
        z = np.zeros(0, dtype=np.int64)
        return RequestArrays(z, z.copy(), np.zeros(0, dtype=bool), offsets[0])
    return RequestArrays(np.concatenate(blocks), np.concatenate(tokens), np.concatenate(writes),
                         np.concatenate(offsets))


@dataclass
class PrefixPass:
    """What :func:`prefix_lru_pass` found at each capacity (arrays in the order of ``capacities``).

    Attributes:
        hits: hit blocks; where ``engine_from[i] >= 0``, only those of the requests before it.
        accesses / prompt_tokens: read blocks / read tokens of the requests served (not refused).
        refused: requests larger than the capacity.
        engine_from: the first request that makes a duplicate copy at that capacity (from there the
            stack no longer describes the cache), or -1 if none does.
        preload: where ``engine_from[i] >= 0``, the cache's blocks when that request starts, LRU
            first; else ``None``.
    """

    capacities: np.ndarray
    hits: np.ndarray
    accesses: np.ndarray
    prompt_tokens: np.ndarray
    refused: np.ndarray
    engine_from: np.ndarray
    preload: list[np.ndarray | None]


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    cs = np.zeros(values.shape[0] + 1, dtype=np.int64)
    np.cumsum(values, out=cs[1:])
    return cs[offsets[1:]] - cs[offsets[:-1]]


def prefix_lru_pass(req: RequestArrays, block_tokens: int, capacities: Ints) -> PrefixPass:
    """Prefix-reuse LRU hits of a single tier at every capacity, in one pass (see the module docstring).

    Exactly the replay's hits (``Driver`` + ``Hierarchy``, one tier, watermarks 1.0) at every capacity
    where ``engine_from`` is -1; elsewhere exact up to that request (:func:`prefix_lru_hits` finishes
    those capacities with the engine).
    """
    caps = np.asarray(capacities, dtype=np.int64)
    full = int(block_tokens)
    n_caps = caps.shape[0]
    offsets = np.asarray(req.offsets, dtype=np.int64)
    n_req = req.n_requests
    n_refs = int(req.blocks.shape[0])
    n_total = np.diff(offsets)
    ref_req = np.repeat(np.arange(n_req, dtype=np.int64), n_total)
    is_read = ~req.writes
    tokens = req.tokens
    # per request: reads, prompt tokens, the n-1 cap, the first partial read, the transient partial block
    n_reads = _segment_sums(is_read.astype(np.int64), offsets)
    prompt = _segment_sums(np.where(is_read, tokens, 0), offsets)
    cs_reads = np.zeros(n_refs + 1, dtype=np.int64)
    np.cumsum(is_read, out=cs_reads[1:])
    read_rank = cs_reads[:-1] - cs_reads[offsets[:-1]][ref_req]  # index among its request's reads
    cap = np.where(prompt > 0, (prompt - 1) // full, 0)
    partial_read = is_read & (tokens != full)
    first_partial = np.full(n_req, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_partial, ref_req[partial_read], read_rank[partial_read])
    beta = np.minimum(cap, first_partial)  # reads from here on are never hits
    transient = is_read & (read_rank == n_reads[ref_req] - 1) & (tokens != full)
    has_transient = np.zeros(n_req, dtype=bool)
    has_transient[ref_req[transient]] = True
    # the release order: each request's cacheable blocks, writes then reads, each last first
    width = int(n_total.max()) + 1 if n_req else 1
    pos = np.arange(n_refs, dtype=np.int64) - offsets[:-1][ref_req]
    keep = np.flatnonzero(~transient)
    key = ref_req[keep] * (2 * width) + np.where(req.writes[keep], 0, width) + (width - 1 - pos[keep])
    release = keep[np.argsort(key, kind="stable")]

    # served requests, refused ones, read blocks and tokens at each capacity
    by_size = np.argsort(n_total, kind="stable")
    sizes_sorted = n_total[by_size]
    served = np.searchsorted(sizes_sorted, caps, side="right")

    def upto(values: np.ndarray) -> np.ndarray:
        cs = np.zeros(n_req + 1, dtype=np.int64)
        np.cumsum(values[by_size], out=cs[1:])
        return cs[served]

    hits = np.zeros(n_caps, dtype=np.int64)
    engine_from = np.full(n_caps, -1, dtype=np.int64)
    preload: list[np.ndarray | None] = [None] * n_caps
    for group in np.unique(served):
        where = np.flatnonzero(served == group)
        if group == 0:
            continue  # nothing served: no hits
        admitted = n_total <= sizes_sorted[group - 1]
        _prefix_group(
            req, full, caps[where], where, admitted, ref_req, is_read, read_rank, beta, transient,
            has_transient, n_reads, n_total, release, hits, engine_from, preload,
        )
    return PrefixPass(caps, hits, upto(n_reads), upto(prompt), n_req - served, engine_from, preload)


def _prefix_group(
    req: RequestArrays,
    full: int,
    caps: np.ndarray,
    where: np.ndarray,
    admitted: np.ndarray,
    ref_req: np.ndarray,
    is_read: np.ndarray,
    read_rank: np.ndarray,
    beta: np.ndarray,
    transient: np.ndarray,
    has_transient: np.ndarray,
    n_reads: np.ndarray,
    n_total: np.ndarray,
    release: np.ndarray,
    hits: np.ndarray,
    engine_from: np.ndarray,
    preload: list[np.ndarray | None],
) -> None:
    """One pass over the requests ``admitted`` (those that every capacity in ``caps`` serves)."""
    n_refs = int(req.blocks.shape[0])
    f_idx = release[admitted[ref_req[release]]]
    fb = req.blocks[f_idx]
    fr = ref_req[f_idx]
    m = int(f_idx.shape[0])
    inf = m + 2  # deeper than any block: "not in the stack"
    seg = np.zeros(m, dtype=np.int64)
    if m:
        seg[1:] = np.cumsum(fr[1:] != fr[:-1])
    starts = np.flatnonzero(np.r_[True, fr[1:] != fr[:-1]]) if m else np.zeros(0, dtype=np.int64)
    s = starts[seg]
    # depth of each released block when its request starts: D = (s - p) - #{reuse pairs (p', i') with
    # p' > p and i' < s}; earlier_greater counts i' < i, so the pairs inside [s, i) are added back
    prev = previous_occurrence(fb)
    reuse = np.flatnonzero(prev >= 0)
    p = prev[reuse]
    eg = earlier_greater(p)
    sr = s[reuse]
    before = p < sr  # else the block was released earlier in this same request
    depth = np.full(m, inf, dtype=np.int64)
    corr = np.zeros(reuse.shape[0], dtype=np.int64)
    if m:
        big = m + 2
        run = np.maximum.accumulate(prev + 1 + seg * big) - seg * big - 1  # running max of prev per segment
        prior = np.full(reuse.shape[0], -1, dtype=np.int64)
        inside = reuse > sr
        prior[inside] = run[reuse[inside] - 1]
        odd = np.flatnonzero(before & (prior > p))  # a block released earlier in the request was shallower
        if odd.shape[0]:
            bounds = np.flatnonzero(np.r_[True, sr[odd][1:] != sr[odd][:-1], True])
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                js = odd[a:b]
                lo_i = int(sr[js[0]])
                span = prev[lo_i : int(reuse[js[-1]])]
                cols = np.arange(span.shape[0])
                corr[js] = ((span[None, :] > p[js, None]) & (cols[None, :] < (reuse[js] - lo_i)[:, None])).sum(axis=1)
    depth[reuse[before]] = (sr - p - eg + corr)[before]
    again = reuse[~before]
    stranding = np.zeros(n_refs, dtype=bool)
    if again.shape[0]:
        depth[again] = -1
        src = prev[again]
        while True:  # a repeat has its first release's depth
            depth[again] = depth[src]
            if not (depth[again] < 0).any():
                break
        # the repeat that comes later in the request is computed while its block is held: a copy
        later = f_idx[src]
        stranding[later[is_read[later]]] = True
    d_ref = np.full(n_refs, inf, dtype=np.int64)
    d_ref[f_idx] = depth

    # the free slot a partial block leaves: f(C) = [C >= lo] for the next request
    adm_idx = np.flatnonzero(admitted)
    lo = np.where(has_transient[adm_idx], 0, inf)
    readless = n_reads[adm_idx] == 0
    if readless.any():  # a request with no reads keeps the slot free unless one of its writes is new
        cur: int = inf
        w_idx = np.flatnonzero(req.writes)
        w_req = ref_req[w_idx]
        for j, r in enumerate(adm_idx.tolist()):
            if n_reads[r] > 0:
                cur = 0 if has_transient[r] else inf
            elif n_total[r] > 0:
                a, b = (int(x) for x in np.searchsorted(w_req, [r, r + 1]))
                cur = max(cur, min(inf, int(d_ref[w_idx[a:b]].max()) + 1))
            lo[j] = cur
    lo_prev = np.full(admitted.shape[0], inf, dtype=np.int64)
    lo_prev[adm_idx] = np.r_[inf, lo[:-1]]

    # reads, in request order: running max of D, the n-1 cap, and the threshold capacity of each hit
    r_idx = np.flatnonzero(is_read & admitted[ref_req])
    dr = d_ref[r_idx]
    rq = ref_req[r_idx]
    b2 = inf + 1
    run_max = np.maximum.accumulate(dr + rq * b2) - rq * b2
    v = np.where(read_rank[r_idx] < beta[rq], run_max, inf)
    lp = lo_prev[rq]
    thr = v + (lp <= v)  # hit at C iff C >= thr
    clipped = np.minimum(caps, m + 1)
    hits[where] = np.searchsorted(np.sort(thr), clipped, side="right")
    # duplicate copies: read k is computed at C (C < thr[k]) while resident (C >= thr(D_k), or always for
    # a repeat inside its request)
    rs = stranding[r_idx]
    lo_k = np.where(rs, 0, dr + (lp <= dr))
    cand = ~transient[r_idx] & (rs | (dr < inf)) & (lo_k < thr)
    if not cand.any():
        return
    c_lo, c_hi, c_req = lo_k[cand], thr[cand], rq[cand]
    for j, c in enumerate(clipped.tolist()):
        hit_here = (c_lo <= c) & (c < c_hi)
        if not hit_here.any():
            continue
        first = int(c_req[int(np.argmax(hit_here))])
        out = int(where[j])
        engine_from[out] = first
        upto = int(np.searchsorted(rq, first))
        hits[out] = int(np.count_nonzero(thr[:upto] <= c))
        # the cache when ``first`` starts: the stack's top C - f blocks
        head = int(np.searchsorted(fr, first))
        rev = fb[:head][::-1]
        blocks, first_at = np.unique(rev, return_index=True)
        order = blocks[np.argsort(first_at, kind="stable")]
        room = int(caps[j]) - int(int(caps[j]) >= lo_prev[first])
        preload[out] = order[: max(0, room)][::-1].copy()


def engine_prefix_hits(
    cfg: Any, req: RequestArrays, capacity: int, codec: str, start_state: np.ndarray | None = None
) -> int:
    """Prefix-reuse hits of the decision core on one LRU tier of ``capacity`` blocks over ``req``.

    The cache starts holding ``start_state`` (LRU first; default: empty). From an empty cache this is
    the single-tier replay's hit count (:func:`~exo_sim.replay.run_replay` makes the same decisions).
    """
    from exo_sim.driver import Driver
    from exo_sim.hierarchy import Hierarchy

    spec = build_spec(single_tier_config(cfg, capacity, "lru", codec))
    h = Hierarchy(spec)
    if start_state is not None and start_state.shape[0]:
        left = h.preload(h.top, start_state.tolist())
        assert not left, "the preloaded stack does not fit the tier"
    driver = Driver(h, "prefix", spec.block_tokens)
    blocks = req.blocks.tolist()
    tokens = req.tokens.tolist()
    writes = req.writes.tolist() if req.writes.any() else None
    off = req.offsets.tolist()
    for r in range(req.n_requests):
        a, b = off[r], off[r + 1]
        driver.request(blocks[a:b], tokens[a:b], writes[a:b] if writes is not None else None)
    return int(h.hits[h.top])


def _engine_hits(args: tuple[dict[str, Any], int, str, RequestArrays, np.ndarray]) -> int:
    container, capacity, codec, req, start_state = args
    return engine_prefix_hits(OmegaConf.create(container), req, capacity, codec, start_state)


def prefix_lru_hits(
    cfg: Any, req: RequestArrays, block_tokens: int, capacities: Ints, codec: str, jobs: int = 1
) -> tuple[PrefixPass, np.ndarray]:
    """Exact prefix-reuse LRU hits at each capacity, and whether each capacity needed the decision core.

    :func:`prefix_lru_pass`, then, at a capacity where a duplicate copy occurs, the core
    (:class:`~exo_sim.driver.Driver`) from that request on, started from the pass's cache there.
    """
    res = prefix_lru_pass(req, block_tokens, capacities)
    todo = np.flatnonzero(res.engine_from >= 0)
    if todo.shape[0]:
        container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        work = []
        for i in todo.tolist():
            state = res.preload[i]
            assert state is not None
            work.append((container, int(res.capacities[i]), codec, req.tail(int(res.engine_from[i])), state))
        if jobs <= 1 or len(work) <= 1:
            extra = [_engine_hits(w) for w in work]
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
                extra = list(pool.map(_engine_hits, work))
        res.hits[todo] += np.asarray(extra, dtype=np.int64)
    return res, res.engine_from >= 0


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
    block size, payload, workload and ``hierarchy.reuse`` are ``cfg``'s. Resolved, so it can cross process boundaries.
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
    reuse = str((c.get("hierarchy") or {}).get("reuse", "auto"))
    c["hierarchy"] = {"mode": "exclusive", "high_watermark": 1.0, "low_watermark": 1.0, "reuse": reuse}
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
    reuse: str = "block"
    """``hierarchy.reuse`` resolved for this payload and workload: ``prefix`` or ``block``."""
    sampling: Sampling | None = None
    """A :class:`~exo_sim.mrc_sampling.Sampling` when ``mrc.sample_rate`` or ``mrc.sample_size`` asks for
    sampled curves; ``None`` for the exact ones."""


def plan_mrc(cfg: Any, locate: Locator | None = None) -> MrcPlan:
    """Validate ``cfg`` (hierarchy, workload and the ``mrc`` section) and return the plan.

    Raises:
        ConfigError: naming the first bad key.
        TraceError: if the workload's trace is missing or unreadable.
    """
    spec = build_spec(cfg, locate)
    workload = make_workload(cfg.workload, spec.block_tokens, locate)
    reuse = resolve_reuse(str(cfg.hierarchy.reuse), str(cfg.payload.kind), workload, locate)
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
    from exo_sim.mrc_sampling import sampling_settings

    sampling = sampling_settings(m, reuse, fail)
    return MrcPlan(spec, workload, policies, spec.tiers[0].codec, jobs, reuse, sampling)


ReplayPoint = tuple[int, int, int, int, int]
"""One single-tier replay's ``(hits, accesses, hit_tokens, prompt_tokens, refused requests)``."""


def _replay_point(args: tuple[dict[str, Any], int, str, str]) -> ReplayPoint:
    from exo_sim.replay import run_replay

    container, capacity, policy, codec = args
    cfg = single_tier_config(OmegaConf.create(container), capacity, policy, codec)
    s = run_replay(cfg).summary
    return (int(s["tiers"][0]["hits"]), int(s["accesses"]), int(s["hit_tokens"]), int(s["prompt_tokens"]),
            int(s["requests_refused"]))


def replay_points(cfg: Any, capacities: Ints, policy: str, codec: str, jobs: int = 1) -> list[ReplayPoint]:
    """:data:`ReplayPoint` of single-tier replays of ``cfg``'s workload at each capacity."""
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    work = [(container, int(c), policy, codec) for c in capacities]
    if jobs <= 1 or len(work) <= 1:
        return [_replay_point(w) for w in work]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        return list(pool.map(_replay_point, work, chunksize=max(1, len(work) // (4 * jobs))))


def replay_hits(
    cfg: Any, capacities: Ints, policy: str, codec: str, jobs: int = 1
) -> list[tuple[int, int]]:
    """``(hits, accesses)`` of single-tier replays of ``cfg``'s workload at each capacity."""
    return [(pt[0], pt[1]) for pt in replay_points(cfg, capacities, policy, codec, jobs)]


def curve_frame(
    capacities: Ints,
    hits: Ints,
    accesses: int | Ints,
    spec: Spec,
    block_bytes: int,
    policy: str,
    method: str | Sequence[str],
    reuse: str = "block",
    hit_tokens: int | Ints | None = None,
    prompt_tokens: int | Ints | None = None,
    refused: int | Ints = 0,
    sample_rate: float = 1.0,
) -> pd.DataFrame:
    """One curve as rows of ``mrc.parquet`` (tokens default to full blocks: ``hits`` x block tokens)."""
    caps = np.asarray(capacities, dtype=np.int64)
    shape = caps.shape

    def col(x: int | Ints | None, default: np.ndarray) -> np.ndarray:
        return default if x is None else np.broadcast_to(np.asarray(x, dtype=np.int64), shape)

    h = np.asarray(hits, dtype=np.int64)
    acc = col(accesses, h)
    ht = col(hit_tokens, h * spec.block_tokens)
    pt = col(prompt_tokens, acc * spec.block_tokens)
    ratio = np.divide(h, acc, out=np.zeros(shape[0]), where=acc > 0)
    return pd.DataFrame(
        {
            "capacity_blocks": caps,
            "capacity_bytes": caps * block_bytes,
            "capacity_tokens": caps * spec.block_tokens,
            "hit_ratio": ratio,
            "miss_ratio": 1.0 - ratio,
            "policy": policy,
            "method": method if isinstance(method, str) else list(method),
            "hits": h,
            "accesses": acc,
            "reuse": reuse,
            "hit_tokens": ht,
            "prompt_tokens": pt,
            "token_hit_ratio": np.divide(ht, pt, out=np.zeros(shape[0]), where=pt > 0),
            "refused_requests": col(refused, np.zeros(shape, dtype=np.int64)),
            "sample_rate": float(sample_rate),
        }
    )[list(COLUMNS)]


@dataclass
class MrcResult:
    """The curves (``mrc.parquet``'s rows) and facts about the pass."""

    frame: pd.DataFrame
    distinct_blocks: int
    references: int
    reads: int
    reuse: str = "block"
    notes: list[str] = field(default_factory=list)
    """What a reader of the curves must know (a trace with no reuse gives curves that are all 0)."""


def run_mrc(cfg: Any, locate: Locator | None = None, plan: MrcPlan | None = None) -> MrcResult:
    """Compute the miss-ratio curves ``cfg.mrc`` asks for (see the module docstring).

    Raises:
        ExoError: on invalid config or trace, before any curve is returned.
    """
    plan = plan or plan_mrc(cfg, locate)
    if plan.sampling is not None:
        from exo_sim.mrc_sampling import run_sampled_mrc

        return run_sampled_mrc(cfg, plan)
    bb = block_bytes(plan.spec.content, plan.codec, cfg.codec)
    req = request_arrays(plan.workload)
    blocks, reads = req.blocks, ~req.writes
    distinct = int(np.unique(blocks).shape[0]) if blocks.shape[0] else 0
    caps = curve_capacities(cfg.mrc, distinct)
    n_reads = int(np.count_nonzero(reads))
    frames = []
    spec, reuse = plan.spec, plan.reuse
    for policy in plan.policies:
        if policy == "lru" and reuse == "prefix":
            res, engine = prefix_lru_hits(cfg, req, spec.block_tokens, caps, plan.codec, plan.jobs)
            method = np.where(engine, "prefix_stack_distance+engine", "prefix_stack_distance").tolist()
            frames.append(curve_frame(caps, res.hits, res.accesses, spec, bb, policy, method, reuse,
                                      res.hits * spec.block_tokens, res.prompt_tokens, res.refused))
        elif policy == "lru":
            hits, hit_tokens = _lru_curve(blocks, None if n_reads == blocks.shape[0] else reads, req.tokens, caps)
            prompt = int(req.tokens[reads].sum())
            frames.append(curve_frame(caps, hits, n_reads, spec, bb, policy, "stack_distance", reuse,
                                      hit_tokens, prompt))
        else:
            pts = np.asarray(replay_points(cfg, caps, policy, plan.codec, plan.jobs), dtype=np.int64).reshape(-1, 5)
            frames.append(curve_frame(caps, pts[:, 0], pts[:, 1], spec, bb, policy, "replay", reuse,
                                      pts[:, 2], pts[:, 3], pts[:, 4]))
    frame = pd.concat(frames, ignore_index=True)
    notes = reuse_notes(frame, distinct, int(blocks.shape[0]))
    return MrcResult(frame, distinct, int(blocks.shape[0]), n_reads, reuse, notes)


def curve_capacities(m: Any, distinct_blocks: int) -> np.ndarray:
    """The capacities ``mrc`` section ``m`` asks for, given the trace's distinct blocks (the default top)."""
    if m.capacities_blocks is not None:
        return np.unique(np.asarray(list(m.capacities_blocks), dtype=np.int64))
    hi = int(m.max_blocks) if m.max_blocks is not None else max(distinct_blocks, int(m.min_blocks))
    return capacity_grid(int(m.min_blocks), hi, int(m.points), str(m.spacing))


def reuse_notes(frame: pd.DataFrame, distinct_blocks: int, references: int) -> list[str]:
    """A note when the curves are all 0 and why: no block referenced twice, or none again within the capacities."""
    if references and distinct_blocks == references:
        return [
            f"the trace has no reuse: each of its {references:,} block references is to a different block, "
            "so a cache of any size never hits and every curve is 0 (this trace says nothing about hit ratios)"
        ]
    if references and not frame.empty and int(frame["hits"].max()) == 0:
        largest = int(frame["capacity_blocks"].max())
        return [f"every curve is 0: no block is read again within the largest capacity ({largest:,} blocks)"]
    return []


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

