"""The planning run: everything ``exo-plan`` computes for one phase, in order, before the report.

Pseudocode::

    check the phase, the plan's knobs, the config, every swept mix and the workload   (before any work)
    if the weights do not fit the GPU tier: say what would, go on with the first that fits here
    capacities per tier x codec, fits; the audit of the seed workstation's claims
    if the target is over plan.max_overcommit x what the hierarchy holds in int4: stop here, say why
    size the workload to the phase (full size for the replay and curves, a 1:k miniature for the sweep)
    measure its live context
    timed sweep: exo-sim -m policy=... codec=... (Hydra's launcher)  -> ranked, recommended
    the recommended configuration at full size (replay) when the sweep was a miniature
    LRU curve of the top tier, this phase and the next; capacity for the same hit ratio next phase
    bottleneck from the recommended run; the operators' checklist
    figures, report.md / report.html, plan.json
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from exo_sim.codecs import CODECS
from exo_sim.errors import ConfigError
from exo_sim.replay import run_replay
from exo_sim.sim.model import TimedModel
from exo_sim.sim.settings import SimSettings, sim_settings, with_compute
from exo_sim.spec import Locator, Spec, block_bytes, build_spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.share import ShareCount, share_count
from experiments.planning import figures
from experiments.planning.accuracy import PlanAccuracy, accuracy_reasons, budget_from, plan_accuracy
from experiments.planning.audit import Audit, run_audit
from experiments.planning.bottleneck import Resource, arrival_span_s, busiest_resource, resources, verdict
from experiments.planning.capacity import (
    DENSEST,
    CapacityReport,
    ProfileCapacity,
    capacity_report,
    profile_capacities,
    uniform_mix,
)
from experiments.planning.curves import LruCurve, lru_curve
from experiments.planning.inverse import InverseReport, InverseSettings, inverse_settings, run_inverse
from experiments.planning.notes import overload_notes
from experiments.planning.operators import (
    BreakEven,
    BytesPerToken,
    Headroom,
    Pinning,
    TierPrefix,
    TierShare,
    break_even,
    bytes_per_token,
    pinning,
    prefix_by_tier,
    tier_shares,
    typical_new_tokens,
)
from experiments.planning.ranking import Ranking, rank
from experiments.planning.settings import PlanSettings, plan_settings
from experiments.planning.sizers import LiveContext, Sizer, sizer_for
from experiments.planning.sweep import run_sweep, sweep_command, write_sweep_config
from experiments.planning.weights import WeightsFit, fit_weights

Say = Callable[[str], None]


@dataclass
class NextPhase:
    """What the next phase needs of the top tier, for the hit ratio the top tier reaches now."""

    name: str | None
    target_tokens: int | None
    hit_ratio_now: float
    capacity_blocks: int | None
    capacity_bytes: int | None
    capacity_tokens: int | None
    max_hit_ratio: float | None
    hold_bytes: dict[str, int]
    note: str


@dataclass
class Plan:
    """Everything the report shows (see the module docstring); ``simulated`` is false when skipped."""

    out_dir: Path
    settings: PlanSettings
    hardware: str
    payload: str
    workload_kind: str
    mode: str
    block_tokens: int
    mix: str
    policy: str
    spec: Spec
    sim: SimSettings
    capacity: CapacityReport
    audit: Audit
    profiles: list[ProfileCapacity]
    bpt: list[BytesPerToken]
    pin: list[Pinning]
    skip_reason: str = ""
    weights: WeightsFit | None = None  # set when the configured weights did not fit the GPU tier
    top_tokens: int = 0
    sizing_text: str = ""
    sized: bool = False
    sizing_overrides: dict[str, Any] = field(default_factory=dict)
    sweep_overrides: dict[str, Any] = field(default_factory=dict)
    k_sweep: int = 1
    k_replay: int = 1
    live: LiveContext | None = None
    sweep_command: list[str] = field(default_factory=list)
    sweep_requests: int = 0
    sweep_accesses: int = 0
    sweep_span_s: float = 0.0
    ranking: Ranking | None = None
    rec_summary: dict[str, Any] = field(default_factory=dict)
    rec_capacity: CapacityReport | None = None
    full_summary: dict[str, Any] | None = None
    shares: list[TierShare] = field(default_factory=list)
    curve: LruCurve | None = None
    next_curve: LruCurve | None = None
    next_phase: NextPhase | None = None
    resources: list[Resource] = field(default_factory=list)
    bottleneck: str = ""
    breakeven: list[BreakEven] = field(default_factory=list)
    prefix: list[TierPrefix] = field(default_factory=list)  # the recommended run's prefix hits per tier
    headroom: Headroom | None = None
    figures: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    inverse_settings: InverseSettings | None = None
    inverse: InverseReport | None = None  # capacities for the hit targets, the cheapest hierarchy for the p99
    accuracy: PlanAccuracy | None = None  # each swept mix's measured accuracy (or why not measured)
    split: ShareCount | None = None  # workload.engines > 1: this engine's share of the trace


def _replace(cfg: Any, **sections: Any) -> DictConfig:
    """A deep copy of ``cfg`` with whole sections replaced (not merged)."""
    out = copy.deepcopy(cfg)
    for key, value in sections.items():
        out[key] = value
    return out  # type: ignore[no-any-return]


def _apply(cfg: Any, overrides: dict[str, Any]) -> DictConfig:
    """A deep copy of ``cfg`` with dotted-key ``overrides`` applied."""
    out = copy.deepcopy(cfg)
    for key, value in overrides.items():
        OmegaConf.update(out, key, value, merge=False)
    return out  # type: ignore[no-any-return]


def capacity_overrides(cfg: Any, scale: int) -> dict[str, Any]:
    """Every tier's capacity divided by ``scale`` (a 1:``scale`` miniature); nothing at scale 1.

    A GPU tier's KV budget is divided, not its device bytes (the weights do not shrink with the
    miniature): the miniature's GPU tier is that share of the budget, taken as a KV pool
    (``hardware.gpu.kv_pool``).
    """
    if scale <= 1:
        return {}
    spec = build_spec(cfg)
    out: dict[str, Any] = {}
    pooled = False
    for i, t in enumerate(cfg.hardware.tiers):
        budget = spec.tiers[i].kv_budget_bytes
        if budget is not None:
            out[f"hardware.tiers.{i}.capacity_bytes"] = budget // scale
            pooled = True
        elif t.capacity_bytes is not None:
            out[f"hardware.tiers.{i}.capacity_bytes"] = int(t.capacity_bytes) // scale
        else:
            out[f"hardware.tiers.{i}.capacity_blocks"] = max(1, int(t.capacity_blocks) // scale)
    if pooled:
        out["hardware.gpu.kv_pool"] = True
    return out


MIN_TOP_UNITS = 2
"""A miniature's top tier must still hold this many of the workload's locality units (sessions)."""


def miniature_scale(
    target_tokens: int, limit_tokens: int, spec: Spec, min_blocks: int, unit_blocks: float = 1.0
) -> int:
    """The k of a 1:k miniature that brings ``target_tokens`` under ``limit_tokens``.

    A miniature divides the tiers and the number of sessions by k but not a session's own context, so k
    stops where the top tier (in ``spec``'s codec mix) would hold fewer than :data:`MIN_TOP_UNITS` of
    the workload's locality units (``unit_blocks`` blocks each: one session's live context), or where
    any usable tier would hold fewer than ``min_blocks`` blocks of the payload's largest codec.
    """
    k = max(1, math.ceil(target_tokens / limit_tokens))
    largest = max(block_bytes(spec.content, c, uniform_mix({}, c)) for c in CODECS)
    for t in spec.tiers:
        if t.usable:
            room = t.capacity_bytes if t.kv_budget_bytes is None else t.kv_budget_bytes
            k = min(k, max(1, room // (min_blocks * largest)))
    top = next(t for t in spec.tiers if t.usable)
    return max(1, min(k, math.floor(top.high_blocks / (MIN_TOP_UNITS * max(1.0, unit_blocks)))))


def _with_group_sizes(mix: Any, cfg: Any) -> DictConfig:
    """Swept codec mix ``mix`` with ``cfg``'s group and scale sizes (the sweep passes them on too)."""
    merged = OmegaConf.merge(mix, {k: cfg.codec[k] for k in ("int8_group_size", "int4_group_size", "scale_bytes")})
    assert isinstance(merged, DictConfig)
    return merged


def _validate(cfg: Any, settings: PlanSettings, locate: Locator | None) -> tuple[Spec, SimSettings]:
    """Check the config, the timed model's settings, every swept mix and the workload."""
    spec = build_spec(cfg, locate)
    sim = with_compute(sim_settings(cfg.sim, locate), cfg, locate)  # the prefill cost exo-sim's jobs use
    TimedModel(spec, sim, locate)
    for name, mix in settings.codecs.items():
        mixed = _replace(cfg, codec=_with_group_sizes(mix, cfg))
        try:
            TimedModel(build_spec(mixed, locate), sim, locate)
        except ConfigError as err:
            raise ConfigError(err.key, f"{err.problem} (under codec mix {name} of plan.codecs)", err.where) from None
    for mix in settings.policies.values():
        build_spec(_replace(cfg, policy=mix), locate)
    make_workload(cfg.workload, spec.block_tokens, locate)
    return spec, sim


def make_plan(
    cfg: Any,
    out_dir: str | Path,
    locate: Locator | None = None,
    say: Say | None = None,
) -> Plan:
    """Compute the plan for ``cfg`` (its phase, hardware, payload and workload) into ``out_dir``.

    Args:
        cfg: the composed root config (``conf/plan.yaml``'s, or any with ``phase`` and ``plan``).
        out_dir: the report's folder (Hydra's run folder); the sweep runs under ``out_dir/sweep``.
        locate: names the origin of a config key in error messages.
        say: called with one line of progress per stage (nothing by default).

    Raises:
        ExoError: on invalid input, before any work starts.
        SweepFailed: if the timed sweep fails.
    """
    say = say or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    settings = plan_settings(cfg, locate)
    budget_from(cfg)  # plan.accuracy_budget refused before any work
    cfg, weights = fit_weights(cfg, locate)
    spec, sim = _validate(cfg, settings, locate)
    inverse_knobs = inverse_settings(cfg, spec, locate)
    if weights is not None:
        say(f"the configured weights do not fit {weights.tier}; going on with {weights.chosen.label}")
    target = settings.target_tokens
    cap = capacity_report(cfg, spec, target)
    audit = run_audit(settings, spec.block_tokens)
    plan = Plan(
        out_dir=out,
        settings=settings,
        hardware=spec.hardware,
        payload=spec.payload,
        workload_kind=str(cfg.workload.kind),
        mode=spec.mode,
        block_tokens=spec.block_tokens,
        mix=str(cfg.codec.name),
        policy=str(cfg.policy.name),
        spec=spec,
        sim=sim,
        capacity=cap,
        audit=audit,
        profiles=profile_capacities(cfg, spec.block_tokens),
        bpt=bytes_per_token(cap),
        pin=pinning(spec, settings.pin_gbps),
        weights=weights,
        timings_s=timings,
        inverse_settings=inverse_knobs,
    )
    say(
        f"phase {settings.phase_name}: {target:,} tokens of {spec.payload} on {spec.hardware}; the hierarchy holds "
        f"{cap.distinct_tokens():,} in {plan.mix}, {cap.best_distinct_tokens:,} in {DENSEST}"
    )
    lap("capacities and audit")
    overcommit = target / cap.best_distinct_tokens if cap.best_distinct_tokens else math.inf
    if overcommit > settings.max_overcommit:
        plan.skip_reason = (
            f"The target is {overcommit:,.1f}x what the whole {spec.hardware} hierarchy holds at once even in "
            f"{DENSEST} ({cap.best_distinct_tokens:,} tokens of {spec.payload}), over plan.max_overcommit "
            f"({settings.max_overcommit:g}x): nearly every read would be a recompute, so nothing was simulated."
        )
        say("not simulated: " + plan.skip_reason)
        plan.split = share_count(make_workload(cfg.workload, spec.block_tokens))
        _finish(plan, say, lap)
        return plan

    _simulate(plan, cfg, settings, spec, sim, say, lap)
    _finish(plan, say, lap)
    return plan


def _simulate(
    plan: Plan, cfg: Any, settings: PlanSettings, spec: Spec, sim: SimSettings, say: Say, lap: Callable[[str], None]
) -> None:
    target = settings.target_tokens
    bt = spec.block_tokens
    sizer: Sizer = sizer_for(str(cfg.workload.kind))(cfg.workload, bt, settings)
    sized = settings.size_workload and sizer.scalable
    plan.sized = sized
    if sized:
        unit = sizer.locality_blocks
        plan.k_replay = miniature_scale(target, settings.replay_live_tokens, spec, settings.min_miniature_blocks, unit)
        plan.k_sweep = miniature_scale(target, settings.sweep_live_tokens, spec, settings.min_miniature_blocks, unit)
        plan.sizing_overrides = sizer.overrides(target, plan.k_replay)
        plan.sweep_overrides = {**sizer.overrides(target, plan.k_sweep), **capacity_overrides(cfg, plan.k_sweep)}
        plan.sizing_text = sizer.describe(target)
    else:
        plan.sizing_text = (
            Sizer(cfg.workload, bt, settings).describe(target)
            if not sizer.scalable
            else f"plan.size_workload is off: the {cfg.workload.kind} workload is used as configured."
        )
    full = _apply(cfg, {**plan.sizing_overrides, **capacity_overrides(cfg, plan.k_replay)})
    full_spec = build_spec(full)
    plan.live = sizer.measure(make_workload(full.workload, bt), full_spec, full.codec)
    plan.split = share_count(make_workload(full.workload, bt))
    if plan.split is not None:
        say(plan.split.sentence())
    lap("workload sizing")
    live = plan.live
    say(
        f"workload {cfg.workload.kind}: {live.what} {live.mean_tokens * plan.k_replay:,.0f} tokens on average "
        f"({live.requests:,} requests, {live.references:,} references)"
        + (f", at 1:{plan.k_replay}" if plan.k_replay > 1 else "")
    )

    # ---- the timed sweep, through exo-sim -m
    policies = list(settings.policies)
    codecs = list(settings.codecs)
    sweep_cfg = _apply(cfg, plan.sweep_overrides)
    conf_dir = plan.out_dir / "sweep_conf"
    overrides = write_sweep_config(sweep_cfg, conf_dir)
    jobs = settings.sweep_jobs
    sweep_dir = plan.out_dir / "sweep"
    plan.sweep_command = sweep_command(policies, codecs, conf_dir, overrides, sweep_dir, jobs)
    n_jobs = len(policies) * len(codecs)
    done = [0]

    def on_job(line: str) -> None:
        done[0] += 1
        say(f"sweep {done[0]}/{n_jobs}: {line.split(':', 1)[0][4:]}")

    say(
        f"timed sweep: {len(policies)} policies x {len(codecs)} codec mixes through exo-sim -m"
        + (f" (a 1:{plan.k_sweep} miniature)" if plan.k_sweep > 1 else "")
    )
    frame = run_sweep(plan.sweep_command, sweep_dir, plan.out_dir / "sweep.log", settings.sweep_timeout_s, on_job)
    frame = with_prefix_columns(frame, sweep_dir, [t.name for t in spec.tiers if t.usable])
    busiest = [busiest_resource(sweep_dir / str(job)) for job in frame["job"]]
    frame["busiest"] = [b.name for b in busiest]
    frame["max_demand"] = [b.demand for b in busiest]
    lap("timed sweep")
    baseline = (plan.policy, plan.mix) if plan.policy in policies and plan.mix in codecs else None
    mixes = {name: _with_group_sizes(mix, cfg) for name, mix in settings.codecs.items()}
    usable = [t.name for t in spec.tiers if t.usable]
    plan.accuracy = plan_accuracy(budget_from(cfg), str(cfg.payload.kind), mixes, usable)
    say("codec accuracy: " + ("measured on trained MiniLM-L6" if plan.accuracy.measured else plan.accuracy.note))
    lap("codec accuracy")
    ranking = rank(
        frame,
        settings.codecs,
        spec,
        settings.p99_tolerance,
        baseline,
        f"policy={plan.policy} codec={plan.mix}",
        plan.accuracy.admitted(),
    )
    ranking.accuracy = accuracy_reasons(plan.accuracy, str(ranking.recommended.codec))
    plan.ranking = ranking
    rec = ranking.recommended
    rec_dir = sweep_dir / str(rec.job)
    plan.rec_summary = json.loads((rec_dir / "summary.json").read_text())
    requests = pd.read_parquet(rec_dir / "requests.parquet")
    plan.sweep_requests = int(rec.requests)
    plan.sweep_accesses = int(rec.accesses)
    plan.sweep_span_s = arrival_span_s(requests)
    plan.prefix = prefix_by_tier(plan.rec_summary)
    say(
        f"recommended: policy={rec.policy} codec={rec.codec} (TTFT p99 {rec.ttft_p99_s:.4g} s, "
        f"p50 {rec.ttft_p50_s:.4g} s)"
    )

    # ---- the recommended configuration at full size
    rec_mix = _with_group_sizes(settings.codecs[str(rec.codec)], cfg)
    rec_cfg = _replace(cfg, codec=rec_mix, policy=settings.policies[str(rec.policy)])
    rec_spec = build_spec(rec_cfg)
    plan.rec_capacity = capacity_report(rec_cfg, rec_spec, target)
    if plan.k_sweep > 1:
        full_rec = _replace(full, codec=rec_mix, policy=settings.policies[str(rec.policy)])
        plan.full_summary = run_replay(full_rec).summary
        lap("full-size replay")
    shares_from = plan.full_summary or plan.rec_summary
    plan.shares = tier_shares(shares_from, spec.mode)

    # ---- curves: this phase and the next
    plan.curve = lru_curve(make_workload(full.workload, bt), bt, plan.k_replay)
    top_blocks = rec_spec.tiers[0].high_blocks
    plan.top_tokens = top_blocks * bt
    h_now = float(plan.curve.hit_ratio(top_blocks // plan.k_replay))
    plan.next_phase = _next_phase(plan, cfg, settings, sizer, sized, rec_spec, h_now)
    lap("miss-ratio curves")

    # ---- inverse queries: capacities for the hit targets, the cheapest hierarchy for the TTFT p99 target
    assert plan.inverse_settings is not None
    rec_policy = settings.policies[str(rec.policy)]
    plan.inverse = run_inverse(
        plan.inverse_settings,
        _replace(full, codec=rec_mix, policy=rec_policy),
        _replace(sweep_cfg, codec=rec_mix, policy=rec_policy),
        plan.rec_capacity,
        (plan.k_replay, plan.k_sweep),
        (float(rec.ttft_p99_s), float(rec.hit_ratio_tokens), int(rec.requests_refused)),
        say,
    )
    lap("inverse queries")

    # ---- bottleneck and the operators' checklist
    peak_full = int(live.peak_slot_tokens * plan.k_replay)
    plan.resources = resources(
        plan.rec_summary, plan.sweep_span_s, peak_full, plan.rec_capacity.distinct_tokens(), live.footprint
    )
    plan.bottleneck = verdict(plan.resources)
    plan.breakeven = break_even(rec_spec, sim, typical_new_tokens(requests, bt))
    plan.headroom = Headroom(
        mean_slot_tokens=live.mean_slot_tokens * plan.k_replay,
        peak_slot_tokens=peak_full,
        capacity_tokens=plan.rec_capacity.distinct_tokens(),
        tier_peak_occupancy={t["name"]: float(t["peak_occupancy"]) for t in plan.rec_summary["tiers"]},
        max_in_system=int(requests["in_system_at_arrival"].max()) + 1 if len(requests) else None,
    )


def with_prefix_columns(frame: pd.DataFrame, sweep_dir: Path, tiers: list[str]) -> pd.DataFrame:
    """``frame`` (``sweep.parquet``) with ``hit_tokens_<tier>`` and ``hit_ratio_tokens_<tier>`` per job.

    From each job's ``summary.json`` (``hit_tokens_by_tier``, ``prompt_tokens``): the prompt tokens
    found cached in each tier over all prompt tokens of the served requests.
    """
    out = frame.copy()
    hits: dict[str, list[float]] = {t: [] for t in tiers}
    for job in out["job"]:
        s = json.loads((sweep_dir / str(job) / "summary.json").read_text())
        by_tier = s.get("hit_tokens_by_tier") or {}
        for t in tiers:
            v = by_tier.get(t)
            hits[t].append(math.nan if v is None else float(v))
    prompt = pd.to_numeric(out["prompt_tokens"], errors="coerce")
    for t in tiers:
        out[f"hit_tokens_{t}"] = hits[t]
        out[f"hit_ratio_tokens_{t}"] = (out[f"hit_tokens_{t}"] / prompt).where(prompt > 0, 0.0)
    return out


def _next_phase(
    plan: Plan, cfg: Any, settings: PlanSettings, sizer: Sizer, sized: bool, rec_spec: Spec, h_now: float
) -> NextPhase:
    nxt, nxt_target = settings.next_phase, settings.next_target_tokens
    top = rec_spec.tiers[0]
    hold = {}
    if nxt_target:
        hold = {c: math.ceil(nxt_target / plan.block_tokens) * b for c, b in plan.capacity.top.block_bytes.items()}
    empty = NextPhase(nxt, nxt_target, h_now, None, None, None, None, hold, "")
    if nxt_target is None:
        empty.note = f"Phase {settings.phase_name} is the roadmap's last: there is no next phase to size."
        return empty
    if not sized:
        empty.note = (
            f"The {cfg.workload.kind} workload is not sized by the phase, so the next phase's curve cannot be "
            "drawn from it; only the bytes to hold the next target are given."
        )
        return empty
    k = miniature_scale(
        nxt_target, settings.replay_live_tokens, rec_spec, settings.min_miniature_blocks, sizer.locality_blocks
    )
    wl = _apply(cfg, sizer.overrides(nxt_target, k)).workload
    plan.next_curve = lru_curve(make_workload(wl, plan.block_tokens), plan.block_tokens, k)
    need = plan.next_curve.capacity_for(h_now)
    if need is None:
        empty.max_hit_ratio = plan.next_curve.max_hit_ratio
        empty.note = (
            f"No LRU top tier reaches a hit ratio of {h_now:.3f} at phase {nxt}: even one that never evicts "
            f"reaches {plan.next_curve.max_hit_ratio:.3f}."
        )
        return empty
    blocks = need * k
    return NextPhase(
        name=nxt,
        target_tokens=nxt_target,
        hit_ratio_now=h_now,
        capacity_blocks=blocks,
        capacity_bytes=blocks * top.block_bytes,
        capacity_tokens=blocks * plan.block_tokens,
        max_hit_ratio=plan.next_curve.max_hit_ratio,
        hold_bytes=hold,
        note="",
    )


def _finish(plan: Plan, say: Say, lap: Callable[[str], None]) -> None:
    """Figures, the report in Markdown and HTML, and ``plan.json``."""
    from experiments.planning.inverse_figure import inverse_figure
    from experiments.planning.report import build_report

    out = plan.out_dir
    f = plan.figures
    f["capacity"] = figures.capacity_figure(plan.capacity, out)
    if plan.hardware == plan.audit.hardware:  # the seed audit is shown for the seed profile only
        f["audit"] = figures.audit_figure(plan.audit, out)
    if plan.ranking is not None and plan.curve is not None:
        note = f" - a 1:{plan.k_sweep} miniature" if plan.k_sweep > 1 else ""
        f["sweep"] = figures.sweep_figure(plan.ranking.table, str(plan.ranking.recommended.job), out, note)
        f["mrc"] = _mrc_figure(plan)
        f["tiers"] = figures.tiers_figure(plan.shares, out)
        ts = pd.read_parquet(out / "sweep" / str(plan.ranking.recommended.job) / "timeseries.parquet")
        r = plan.ranking.recommended
        f["occupancy"] = figures.occupancy_figure(
            ts, out, f"occupancy per tier, policy={r.policy} codec={r.codec}{note}"
        )
        f["bottleneck"] = figures.bottleneck_figure(plan.resources, out)
        if plan.inverse is not None:
            f["inverse"] = inverse_figure(plan.inverse, plan.block_tokens, out)
    lap("figures")
    doc = build_report(plan)
    (out / "report.md").write_text(doc.markdown())
    (out / "report.html").write_text(doc.html())
    (out / "plan.json").write_text(json.dumps(plan_json(plan), indent=2, default=str) + "\n")
    lap("report")
    for note in overload_notes(plan):  # on the console too, whatever the progress setting
        print(f"warning: {note}", file=sys.stderr, flush=True)
    say(f"report: {out / 'report.md'} and {out / 'report.html'}")


def _mrc_figure(plan: Plan) -> str:
    assert plan.curve is not None and plan.ranking is not None
    pts = plan.settings.mrc_points
    k = plan.k_replay
    top_blocks = plan.top_tokens // plan.block_tokens
    curves = {
        f"LRU, phase {plan.settings.phase_name} ({plan.settings.target_tokens:,} tokens)": plan.curve.frame(
            pts, [max(1, top_blocks // k)]
        )
    }
    nxt = plan.next_phase
    if plan.next_curve is not None and nxt is not None:
        curves[f"LRU, phase {nxt.name} ({nxt.target_tokens:,} tokens)"] = plan.next_curve.frame(pts)
    r = plan.ranking.recommended
    marks = [
        (f"LRU at the top tier now: {nxt.hit_ratio_now:.3f}" if nxt else "LRU at the top tier now",
         plan.top_tokens, nxt.hit_ratio_now if nxt else 0.0),
        (f"{r.policy} in the timed run: {r.top_hit_ratio:.3f}", plan.top_tokens, float(r.top_hit_ratio)),
    ]
    if nxt is not None and nxt.capacity_tokens:
        marks.append((f"phase {nxt.name} needs {nxt.capacity_tokens:,} tokens", nxt.capacity_tokens, nxt.hit_ratio_now))
    title = (
        f"top-tier hit-ratio curve (LRU): {plan.workload_kind}, {plan.payload} in {plan.ranking.recommended.codec} "
        f"at the top ({plan.block_tokens}-token blocks)"
    )
    return figures.mrc_figure(curves, marks, plan.top_tokens, plan.out_dir, title)


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan's headline numbers, machine-readable."""
    cap = plan.capacity
    out: dict[str, Any] = {
        "phase": plan.settings.phase_name,
        "target_tokens": plan.settings.target_tokens,
        "hardware": plan.hardware,
        "payload": plan.payload,
        "workload": plan.workload_kind,
        "codec_mix": plan.mix,
        "capacity_tokens": {t.name: t.tokens for t in cap.tiers},
        "distinct_tokens": cap.distinct_tokens(),
        "fits_top_tier": cap.fits_top(),
        "fits_hierarchy": cap.fits_hierarchy(),
        "gpu_tiers": {
            t.name: {"capacity_bytes": t.capacity_bytes, "weight_bytes": t.weight_bytes,
                     "workspace_bytes": t.workspace_bytes, "kv_budget_bytes": t.kv_budget_bytes}
            for t in plan.spec.tiers
            if t.kv_budget_bytes is not None
        },
        "weights_did_not_fit": None
        if plan.weights is None
        else {
            "tier": plan.weights.tier,
            "options": {o.label: o.kv_tokens for o in plan.weights.options},
            "continued_with": plan.weights.chosen.label,
            "overrides": plan.weights.chosen.override_args(),
        },
        "simulated": plan.ranking is not None,
        "skip_reason": plan.skip_reason or None,
        "prefill_cost": asdict(plan.sim.prefill_cost),
        "compute_engines": plan.sim.compute_engines,
        "overlap": "layerwise" if plan.sim.layerwise else "none",
        "timings_s": plan.timings_s,
        "notes": overload_notes(plan),
        "split": None if plan.split is None else plan.split.as_json(),
    }
    if plan.ranking is not None:
        r = plan.ranking.recommended
        out["recommended"] = {
            "policy": r.policy,
            "codec": r.codec,
            "ttft_p99_s": float(r.ttft_p99_s),
            "ttft_p50_s": float(r.ttft_p50_s),
            "hit_ratio_tokens": float(r.hit_ratio_tokens),
            "hit_ratio_tokens_by_tier": {x.tier: x.hit_ratio_tokens for x in plan.prefix},
            "stranded_blocks_by_tier": {x.tier: x.stranded_blocks for x in plan.prefix},
            "requests_refused": int(r.requests_refused),
            "top_hit_ratio": float(r.top_hit_ratio),
            "recomputed_tokens": int(r.recomputed_tokens),
            "bytes_moved": int(r.bytes_moved),
        }
        out["break_even"] = [asdict(b) for b in plan.breakeven]
        out["bottleneck"] = plan.bottleneck
        out["miniature_scale"] = {"sweep": plan.k_sweep, "replay": plan.k_replay}
        if plan.live is not None:
            out["live_context"] = asdict(plan.live)
        if plan.next_phase is not None:
            out["next_phase"] = asdict(plan.next_phase)
        if plan.inverse is not None:
            out["inverse"] = plan.inverse.as_json()
    return out


def print_line(msg: str) -> None:
    """Progress on stderr (``plan: ...``)."""
    print(f"plan: {msg}", file=sys.stderr, flush=True)

