"""Inverse queries: the capacity that reaches a prefix hit ratio, and the cheapest hierarchy for a TTFT p99.

Pseudocode::

    curve = hits / read blocks of one LRU tier of C blocks over the workload, exact at every C
            (hierarchy.reuse = prefix: exo_sim.mrc.prefix_lru_hits; block: LRU stack distances)
    ceiling = curve at a C that never evicts (every reference fits)
    for each target h in plan.hit_targets:
        h > ceiling: unreachable, say the ceiling
        else C(h): a log grid from the smallest C that refuses no request, then a k-ary search in the
               bracket [last grid point under h, first at or over h] until the two are one block apart,
               so C(h) reaches h and C(h) - 1 does not (where the decision core finishes the curve, a
               replay per capacity, the search stops after a fixed number of them and gives the bracket)
    for each tier below the top: its share of C(h), the usable blocks of the tiers above taken first
        (an exclusive LRU hierarchy read as one LRU stack), in its codec's bytes, over its watermark
    hierarchy: every (tier, h) share as a candidate (that tier resized, the others as configured),
        priced by plan.cost_per_gb; in order of cost, timed (exo_sim.sim.run.run_sim, the sweep's
        workload and rate, the recommended policy and codec mix) until one meets
        plan.ttft_p99_target_s or plan.hierarchy_sims runs are spent; the configured hierarchy's p99
        is the sweep's own
        none meets: say which constraint binds (the top tier's refusals, the workload's reuse ceiling,
        or the target itself at the capacities tried)

The curve's C is in blocks of the (possibly 1:k miniature) workload it was drawn from; shares are
given at full scale (x k).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from exo_sim.errors import ConfigError
from exo_sim.mrc import RequestArrays, capacity_grid, lru_hits, prefix_lru_hits
from exo_sim.spec import DEFAULT_FILE_SPARE_FRACTION, Locator, Spec, file_spare_fraction, slab_bytes
from experiments.planning.capacity import CapacityReport

MEDIA = ("cuda", "pinned", "shm", "ram", "file")
"""Media a price in ``plan.cost_per_gb`` may name instead of a tier."""

SEARCH_POINTS = 32
"""Capacities evaluated per round of the search (one pass of the curve each round)."""

ENGINE_GRID = 8
ENGINE_EVALS = 40
"""Where the decision core finishes the curve (a replay per capacity): the first grid's points, and
the replays after which the search stops (each round probes two capacities per open bracket, where
the straight line between its ends crosses the target and one block below)."""


@dataclass(frozen=True)
class InverseSettings:
    """``plan.hit_targets``, ``plan.cost_per_gb`` (resolved per tier), ``plan.ttft_p99_target_s``."""

    hit_targets: tuple[float, ...]
    price_per_gb: dict[str, float]
    ttft_p99_target_s: float | None
    hierarchy_sims: int


def inverse_settings(cfg: Any, spec: Spec, locate: Locator | None = None) -> InverseSettings:
    """Check the inverse-query knobs of ``cfg.plan`` against ``spec``'s tiers.

    Raises:
        ConfigError: a hit target outside (0, 1), a price that is negative or names neither a tier nor
            a medium, a tier left without a price, a TTFT target that is not positive, a count that is
            not positive.
    """

    def fail(key: str, problem: str) -> ConfigError:
        where = (locate(key) or locate(key.split("[", 1)[0])) if locate else None
        return ConfigError(key, problem, where)

    p = cfg.plan
    targets = []
    for i, value in enumerate(p.hit_targets):
        h = float(value)
        if not 0.0 < h < 1.0:
            raise fail(f"plan.hit_targets[{i}]", f"must be a prefix hit ratio in (0, 1), got {value}")
        targets.append(h)
    if not targets:
        raise fail("plan.hit_targets", "is empty; give at least one prefix hit ratio in (0, 1)")
    names = [t.name for t in spec.tiers]
    prices: dict[str, float] = {}
    for key, value in p.cost_per_gb.items():
        k = str(key)
        if k not in names and k not in MEDIA:
            raise fail(f"plan.cost_per_gb.{k}", f"names neither a tier of {spec.hardware} ({', '.join(names)}) "
                       f"nor a medium ({', '.join(MEDIA)})")
        if not float(value) >= 0.0:
            raise fail(f"plan.cost_per_gb.{k}", f"must be a price >= 0 per GB, got {value}")
        prices[k] = float(value)
    per_tier = {}
    for t in spec.tiers:
        price = prices.get(t.name, prices.get(t.medium))
        if price is None:
            raise fail("plan.cost_per_gb",
                       f"gives no price for tier {t.name} (medium {t.medium}); name it or its medium")
        per_tier[t.name] = price
    target = p.ttft_p99_target_s
    if target is not None and not float(target) > 0.0:
        raise fail("plan.ttft_p99_target_s", f"must be > 0 seconds (or null), got {target}")
    if int(p.hierarchy_sims) <= 0:
        raise fail("plan.hierarchy_sims", f"must be > 0, got {p.hierarchy_sims}")
    return InverseSettings(
        hit_targets=tuple(sorted(set(targets))),
        price_per_gb=per_tier,
        ttft_p99_target_s=None if target is None else float(target),
        hierarchy_sims=int(p.hierarchy_sims),
    )


# ------------------------------------------------------------------ the curve and its inverse
class HitCurve:
    """The prefix hit ratio (hit blocks / read blocks served) of one LRU tier, exact at any capacity.

    Capacities below :attr:`min_blocks` refuse requests (under prefix reuse a request larger than the
    tier is refused), which changes the stream, so the inverse searches from there. Every capacity
    evaluated is kept (:attr:`points`).
    """

    def __init__(self, cfg: Any, req: RequestArrays, block_tokens: int, codec: str, reuse: str, jobs: int = 1):
        self.cfg, self.req, self.block_tokens, self.codec, self.reuse = cfg, req, block_tokens, codec, reuse
        self.jobs = jobs
        sizes = np.diff(req.offsets)
        self.min_blocks = max(1, int(sizes.max())) if reuse == "prefix" and sizes.shape[0] else 1
        self.never_evicts_blocks = max(self.min_blocks, int(req.blocks.shape[0]) + 1)
        self.points: dict[int, float] = {}
        self.engine: set[int] = set()  # capacities the decision core finished (not one pass)
        self.brackets: dict[float, tuple[int, int]] = {}  # per target: (largest C known to fail, the answer)

    def ratios(self, capacities: Sequence[int] | np.ndarray) -> np.ndarray:
        """Hit ratios at ``capacities`` (blocks), computing only those not evaluated before."""
        caps = [int(c) for c in capacities]
        todo = sorted({c for c in caps if c not in self.points})
        if todo:
            if self.reuse == "prefix":
                res, engine = prefix_lru_hits(self.cfg, self.req, self.block_tokens, todo, self.codec, self.jobs)
                acc = res.accesses
                for c, h, a, e in zip(todo, res.hits.tolist(), acc.tolist(), engine.tolist(), strict=True):
                    self.points[c] = h / a if a else 0.0
                    if e:
                        self.engine.add(c)
            else:
                reads = ~self.req.writes
                n = int(np.count_nonzero(reads))
                hits = lru_hits(self.req.blocks, reads, todo)
                for c, h in zip(todo, hits.tolist(), strict=True):
                    self.points[c] = h / n if n else 0.0
        return np.asarray([self.points[c] for c in caps], dtype=float)

    @property
    def ceiling(self) -> float:
        """The hit ratio of a tier that never evicts."""
        return float(self.ratios([self.never_evicts_blocks])[0])

    def capacities_for(self, targets: Sequence[float]) -> dict[float, int | None]:
        """Per target, a capacity C (blocks) with ratio(C) >= target; ``None`` over the ceiling.

        The search keeps ``lo`` failing and ``hi`` reaching the target. Where the curve is one pass it
        runs until they are one block apart (ratio(C - 1) < target: the smallest such C, the curve being
        monotone there); where the decision core finishes it (a duplicate copy), each capacity costs a
        replay, so it stops after :data:`ENGINE_EVALS` of them and :attr:`brackets` says how far the
        smallest C may lie below the answer. :attr:`min_blocks` when that capacity already reaches it.
        """
        lo_c, hi_c = self.min_blocks, self.never_evicts_blocks
        self.ratios([lo_c, hi_c])
        costly = bool(self.engine)
        grid = capacity_grid(lo_c, hi_c, ENGINE_GRID if costly else SEARCH_POINTS, "log")
        r = self.ratios(grid)
        ceiling = self.ceiling
        out: dict[float, int | None] = {}
        brackets: dict[float, tuple[int, int]] = {}
        for t in targets:
            if t > ceiling:
                out[t] = None
                continue
            i = int(np.flatnonzero(r >= t)[0])
            if i == 0:
                out[t] = int(grid[0])
                self.brackets[t] = (int(grid[0]) - 1, int(grid[0]))
            else:
                brackets[t] = (int(grid[i - 1]), int(grid[i]))
        spent = len(self.engine)
        per = SEARCH_POINTS
        while brackets and not (costly and spent >= ENGINE_EVALS):
            probe: set[int] = set()
            for t, (lo, hi) in brackets.items():
                if costly:  # replays are dear: probe where the line between the ends crosses t, and one below
                    r_lo, r_hi = self.points[lo], self.points[hi]
                    frac = (t - r_lo) / (r_hi - r_lo) if r_hi > r_lo else 0.5
                    c0 = min(max(lo + math.ceil(frac * (hi - lo)), lo + 2), hi - 1)
                    probe.update(c for c in (c0 - 1, c0) if lo < c < hi)
                    continue
                n = min(per, hi - lo - 1)
                probe.update(np.unique(np.linspace(lo, hi, n + 2)[1:-1].round().astype(np.int64)).tolist())
            self.ratios(sorted(probe))
            spent += len(probe)
            for t, (lo, hi) in list(brackets.items()):
                inside = [c for c in probe if lo < c < hi]
                hi = min([c for c in inside if self.points[c] >= t], default=hi)
                lo = max([c for c in inside if c < hi and self.points[c] < t], default=lo)
                brackets[t] = (lo, hi)
                if hi - lo <= 1:
                    out[t] = hi
                    self.brackets[t] = brackets.pop(t)
        for t, (lo, hi) in brackets.items():  # the engine's budget is spent: the reaching end of the bracket
            out[t] = hi
            self.brackets[t] = (lo, hi)
        return {t: out[t] for t in targets}

    def frame_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Every capacity evaluated (from :attr:`min_blocks` on), sorted, with its hit ratio."""
        caps = np.asarray(sorted(c for c in self.points if c >= self.min_blocks), dtype=np.int64)
        return caps, np.asarray([self.points[int(c)] for c in caps], dtype=float)


# ------------------------------------------------------------------ per tier
@dataclass(frozen=True)
class TierAnswer:
    """What tier ``tier`` needs for the hierarchy to reach ``target`` (full scale; ``None``: unreachable).

    ``blocks`` is the usable share (the curve's capacity less ``above_blocks``, the usable blocks of the
    tiers above); ``capacity_bytes`` the tier's bytes for that share over its high watermark, in its codec.
    """

    tier: str
    medium: str
    codec: str
    target: float
    total_blocks: int | None
    above_blocks: int
    blocks: int | None
    tokens: int | None
    capacity_bytes: int | None
    configured_blocks: int
    configured_bytes: int


def _bytes_for(
    blocks: int, high: float, block_bytes: int, medium: str = "ram", spare_fraction: float = DEFAULT_FILE_SPARE_FRACTION
) -> int:
    """Bytes a ``medium`` tier needs to hold ``blocks`` under its high watermark ``high``.

    By the medium's own slab layout (:func:`exo_sim.spec.slab_bytes`): a ``file`` tier pads each block
    to whole rows and keeps copy-on-write spare slots, so it needs more than blocks x block bytes.
    """
    raw = math.ceil(blocks / high - 1e-9) if high > 0 else blocks
    while math.floor(high * raw + 1e-9) < blocks:
        raw += 1
    return slab_bytes(medium, block_bytes, raw, spare_fraction)


def tier_answers(
    cap: CapacityReport,
    totals: dict[float, int | None],
    scale: int,
    spare_fraction: float = DEFAULT_FILE_SPARE_FRACTION,
) -> list[TierAnswer]:
    """Each tier below the top's share of each target's capacity (``totals``: at the curve's scale)."""
    out = []
    above = 0
    bt = cap.block_tokens
    for i, t in enumerate(cap.tiers):
        usable = t.usable_tokens() // bt
        if i == 0:
            above += usable
            continue
        for target, total in totals.items():
            if total is None:
                out.append(TierAnswer(t.name, t.medium, t.codec, target, None, above, None, None, None, usable,
                                      t.capacity_bytes))
                continue
            full = total * scale
            need = max(0, full - above)
            out.append(TierAnswer(
                t.name, t.medium, t.codec, target, full, above, need, need * bt,
                _bytes_for(need, t.high_fraction, t.block_bytes[t.codec], t.medium, spare_fraction), usable,
                t.capacity_bytes,
            ))
        above += usable
    return out


# ------------------------------------------------------------------ the cheapest hierarchy
@dataclass
class Candidate:
    """A hierarchy: the configured one with at most one tier below the top resized (``tier``)."""

    label: str
    capacity_bytes: dict[str, int]
    cost: float
    tier: str | None = None
    target: float | None = None
    ttft_p99_s: float | None = None
    hit_ratio_tokens: float | None = None
    requests_refused: int | None = None
    source: str = ""  # "sweep" (the configured run), "sim" (timed here) or "" (not timed)
    floor_bytes: int = 0  # the resized tier's bytes for one usable block (the least a miniature may give it)
    error: str = ""  # why the timed model refused it, if it did


@dataclass
class HierarchyChoice:
    """The cheapest candidate meeting ``target_s``, or the constraint that binds when none does."""

    target_s: float
    candidates: list[Candidate]
    chosen: Candidate | None
    binding: str


def price(capacities: dict[str, int], per_gb: dict[str, float]) -> float:
    """Cost of a hierarchy: each tier's bytes (in GB of 10^9 bytes) at its price per GB."""
    return sum(b / 1e9 * per_gb[name] for name, b in capacities.items())


def candidates(
    cap: CapacityReport,
    answers: list[TierAnswer],
    per_gb: dict[str, float],
    spare_fraction: float = DEFAULT_FILE_SPARE_FRACTION,
) -> list[Candidate]:
    """The configured hierarchy and one candidate per reachable (tier, target) share, cheapest first."""
    base = {t.name: t.capacity_bytes for t in cap.tiers}
    out = [Candidate("as configured", dict(base), price(base, per_gb))]
    seen = {tuple(base.items())}
    budgets = {t.name for t in cap.tiers if t.kv_budget_bytes is not None}
    tiers = {t.name: t for t in cap.tiers}
    for a in answers:
        if a.capacity_bytes is None or a.tier in budgets:
            continue
        t = tiers[a.tier]
        # a tier holds at least one block
        floor = _bytes_for(1, t.high_fraction, t.block_bytes[t.codec], t.medium, spare_fraction)
        caps = {**base, a.tier: max(a.capacity_bytes, floor)}
        key = tuple(caps.items())
        if key in seen:
            continue
        seen.add(key)
        out.append(Candidate(f"{a.tier} for {a.target:.0%}", caps, price(caps, per_gb), a.tier, a.target,
                             floor_bytes=floor))
    return sorted(out, key=lambda c: (c.cost, c.label))


Timing = tuple[float | None, float | None, int | None, str]
"""A timed candidate's TTFT p99, prefix hit ratio (tokens), refused requests, and the refusal if refused."""


def _timed(args: tuple[dict[str, Any], dict[str, Any]]) -> Timing:
    from exo_sim.errors import ExoError
    from exo_sim.sim.run import run_sim

    container, overrides = args
    cfg = OmegaConf.create(container)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    cfg.output.progress = False
    cfg.output.timeseries_points = 2
    cfg.sim.write_requests = False
    try:
        s = run_sim(cfg).summary
    except ExoError as err:  # a candidate the model refuses is reported, not raised across the pool
        return None, None, None, str(err)
    p99 = s["ttft_s"]["p99"]
    return (None if p99 is None else float(p99)), float(s["hit_ratio_tokens"]), int(s["requests_refused"]), ""


def choose_hierarchy(
    sweep_cfg: Any,
    cand: list[Candidate],
    target_s: float,
    configured: Candidate,
    scale: int,
    sims: int,
    jobs: int,
    ceiling: float,
) -> HierarchyChoice:
    """Time ``cand`` cheapest first on ``sweep_cfg`` (at 1:``scale``) until one meets ``target_s``.

    ``configured`` (already timed by the sweep) is not run again; at most ``sims`` others are, ``jobs``
    at a time (a batch finishes before the cheapest meeting candidate is taken).
    """
    container: dict[str, Any] = OmegaConf.to_container(sweep_cfg, resolve=True)  # type: ignore[assignment]
    index = {str(t["name"]): i for i, t in enumerate(container["hardware"]["tiers"])}
    blocks_sized = {str(t["name"]) for t in container["hardware"]["tiers"] if t.get("capacity_bytes") is None}
    chosen = None
    spent = 0
    # a tier sized in blocks (no bytes) is not resized: its candidates are left untimed
    todo = [c for c in cand if c is not configured and c.tier not in blocks_sized]
    pos = 0
    if configured.ttft_p99_s is not None and configured.ttft_p99_s <= target_s:
        todo = [c for c in todo if c.cost < configured.cost]
    while chosen is None and pos < len(todo) and spent < sims:
        batch = todo[pos : pos + min(max(1, jobs), sims - spent)]
        pos += len(batch)
        spent += len(batch)
        work = []
        for c in batch:
            assert c.tier is not None
            work.append((container, {f"hardware.tiers.{index[c.tier]}.capacity_bytes":
                                     max(c.floor_bytes, c.capacity_bytes[c.tier] // scale)}))
        if len(work) > 1 and jobs > 1:
            with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
                results = list(pool.map(_timed, work))
        else:
            results = [_timed(w) for w in work]
        for c, (p99, hit, refused, error) in zip(batch, results, strict=True):
            c.ttft_p99_s, c.hit_ratio_tokens, c.requests_refused, c.error = p99, hit, refused, error
            c.source = "sim"
        meeting = [c for c in batch if c.ttft_p99_s is not None and c.ttft_p99_s <= target_s]
        if meeting:
            chosen = min(meeting, key=lambda c: c.cost)
    if chosen is None and configured.ttft_p99_s is not None and configured.ttft_p99_s <= target_s:
        chosen = configured
    binding = "" if chosen is not None else _binding(cand, target_s, ceiling, spent, len(todo))
    return HierarchyChoice(target_s, cand, chosen, binding)


def _binding(cand: list[Candidate], target_s: float, ceiling: float, spent: int, total: int) -> str:
    timed = [c for c in cand if c.ttft_p99_s is not None]
    if not timed:
        return f"No candidate could be timed: the TTFT p99 target of {target_s:g} s is not shown to be met."
    best = min(timed, key=lambda c: c.ttft_p99_s or math.inf)
    tried = f"{len(timed)} of {len(cand)} candidates timed" + (
        f" (plan.hierarchy_sims = {spent} runs spent)" if spent < total else "")
    head = (f"No hierarchy tried meets TTFT p99 <= {target_s:g} s ({tried}; the best, {best.label}, "
            f"gives {best.ttft_p99_s:.4g} s). ")
    if best.requests_refused:
        return head + (
            f"The top tier binds: it is not resized here, and it refuses {best.requests_refused:,} requests larger "
            "than it, so what the tiers below hold does not help them.")
    if best.hit_ratio_tokens is not None and best.hit_ratio_tokens >= ceiling - 0.02:
        return head + (
            f"The workload's reuse binds: that hierarchy already finds {best.hit_ratio_tokens:.1%} of prompt tokens "
            f"cached, at the infinite-cache ceiling ({ceiling:.1%} of read blocks); the rest is prefill compute.")
    return head + "The TTFT target binds at the capacities tried: a larger or faster tier than these is needed."


# ------------------------------------------------------------------ the whole query
@dataclass
class InverseReport:
    """The inverse queries' results for the report and ``plan.json``."""

    settings: InverseSettings
    reuse: str
    scale: int
    ceiling: float
    min_blocks: int
    totals: dict[float, int | None]
    tiers: list[TierAnswer]
    curve_blocks: np.ndarray
    curve_ratio: np.ndarray
    exact: bool  # every capacity from one pass (else the decision core finished some: ``brackets``)
    brackets: dict[float, tuple[int, int]] = field(default_factory=dict)  # curve scale: (fails, reaches)
    hierarchy: HierarchyChoice | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The headline numbers, machine-readable."""
        h = self.hierarchy
        return {
            "reuse": self.reuse,
            "miniature_scale": self.scale,
            "ceiling_hit_ratio": self.ceiling,
            "exact": self.exact,
            "bracket_blocks": {f"{t:g}": [lo * self.scale, hi * self.scale] for t, (lo, hi) in self.brackets.items()},
            "capacity_blocks_for": {f"{t:g}": (None if c is None else c * self.scale) for t, c in self.totals.items()},
            "tiers": [a.__dict__ for a in self.tiers],
            "hierarchy": None if h is None else {
                "ttft_p99_target_s": h.target_s,
                "chosen": None if h.chosen is None else h.chosen.__dict__,
                "binding": h.binding or None,
                "candidates": [c.__dict__ for c in h.candidates],
            },
        }


def inverse_report(
    cfg: Any,
    req: RequestArrays,
    codec: str,
    reuse: str,
    scale: int,
    cap: CapacityReport,
    settings: InverseSettings,
) -> InverseReport:
    """The capacities for ``settings.hit_targets`` (from ``req``, a 1:``scale`` workload) and each tier's share."""
    jobs = os.cpu_count() or 1
    curve = HitCurve(cfg, req, cap.block_tokens, codec, reuse, jobs)
    totals = curve.capacities_for(settings.hit_targets)
    blocks, ratio = curve.frame_points()
    notes = []
    if cap.mode == "write_through":
        notes.append("Under write-through the last tier also holds copies of the blocks above it; the shares here "
                     "read the hierarchy as one exclusive LRU stack, so the last tier's share is a lower bound.")
    return InverseReport(settings, reuse, scale, curve.ceiling, curve.min_blocks * scale, totals,
                         tier_answers(cap, totals, scale, file_spare_fraction(cfg)), blocks * scale, ratio,
                         not curve.engine,
                         dict(curve.brackets), notes=notes)


def run_inverse(
    settings: InverseSettings,
    full_cfg: Any,
    sweep_cfg: Any,
    cap: CapacityReport,
    scales: tuple[int, int],
    configured: tuple[float, float, int],
    say: Any = None,
) -> InverseReport:
    """Both inverse queries for the recommended configuration.

    Args:
        settings: the checked knobs.
        full_cfg: the replay's config (the workload the curves are drawn from), recommended mix and policy.
        sweep_cfg: the sweep's config (its workload, rate and miniature tiers), recommended mix and policy.
        cap: the recommended mix's capacities (full scale).
        scales: the 1:k of the replay's and of the sweep's miniatures.
        configured: the sweep's TTFT p99, prefix hit ratio (tokens) and refused requests of ``cap``'s hierarchy.
        say: progress (one line per stage).
    """
    from exo_sim.driver import resolve_reuse
    from exo_sim.mrc import request_arrays
    from exo_sim.spec import build_spec
    from exo_sim.workloads import make_workload

    spec = build_spec(full_cfg)
    workload = make_workload(full_cfg.workload, spec.block_tokens)
    reuse = resolve_reuse(str(full_cfg.hierarchy.reuse), str(full_cfg.payload.kind), workload)
    req = request_arrays(workload)
    out = inverse_report(full_cfg, req, spec.tiers[0].codec, reuse, scales[0], cap, settings)
    if say:
        say(f"inverse: infinite-cache prefix hit ratio {out.ceiling:.3f}; capacities for "
            + ", ".join(f"{t:.0%}: " + ("unreachable" if c is None else f"{c * scales[0]:,} blocks")
                        for t, c in out.totals.items()))
    target = settings.ttft_p99_target_s
    if target is not None:
        cand = candidates(cap, out.tiers, settings.price_per_gb, file_spare_fraction(full_cfg))
        base = next(c for c in cand if c.tier is None)
        base.ttft_p99_s, base.hit_ratio_tokens, base.requests_refused = configured
        base.source = "sweep"
        jobs = os.cpu_count() or 1
        out.hierarchy = choose_hierarchy(sweep_cfg, cand, target, base, scales[1], settings.hierarchy_sims, jobs,
                                         out.ceiling)
        if say:
            h = out.hierarchy
            say("inverse: " + (f"cheapest hierarchy meeting TTFT p99 <= {target:g} s: {h.chosen.label}"
                               if h.chosen else h.binding))
    return out
