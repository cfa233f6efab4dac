"""The planning report, section by section, as a :class:`~experiments.planning.document.Document`.

Sections: summary; what was simulated; capacity; policies and codec mixes; the top tier's hit-ratio
curve and the next phase; the bottleneck; what operators get wrong (bytes per token, what each lower
tier buys, load versus recompute, pinning, headroom); the audit of the seed workstation's claims (only
when the profile is the seed's own); how the report was made. The summary opens with one line per
question (target, recommendation, bottleneck, next phase, ceiling) and ends with its notes: the
overload warnings of :mod:`experiments.planning.notes`. Every number is taken from the
:class:`~experiments.planning.planner.Plan`.
"""

from __future__ import annotations

import shlex
from typing import Any

from exo_sim.codecs import CODECS
from experiments.planning.accuracy_section import accuracy_section
from experiments.planning.capacity import DENSEST
from experiments.planning.document import Document
from experiments.planning.inverse_section import inverse_section
from experiments.planning.notes import overload_notes
from experiments.planning.planner import Plan
from experiments.planning.units import gib as _gib
from experiments.planning.units import pct as _pct
from experiments.planning.units import seconds as _s
from experiments.planning.units import times as _times
from experiments.planning.units import tokens as _tok


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB"


def _block_room(tier: Any) -> int:
    """The bytes of a resolved tier that hold blocks: a GPU tier's KV budget, else its capacity."""
    return int(tier.capacity_bytes if tier.kv_budget_bytes is None else tier.kv_budget_bytes)


def build_report(plan: Plan) -> Document:
    """The whole report for ``plan``."""
    st = plan.settings
    doc = Document(
        f"exo planning report: phase {st.phase_name} ({st.target_tokens:,} tokens) - {plan.payload} on {plan.hardware}"
    )
    _summary(doc, plan)
    _simulated(doc, plan)
    _capacity(doc, plan)
    _sweep(doc, plan)
    accuracy_section(doc, plan)
    _curve(doc, plan)
    inverse_section(doc, plan)
    _bottleneck(doc, plan)
    _operators(doc, plan)
    if shows_audit(plan):
        _audit(doc, plan)
    _made(doc, plan)
    return doc


def shows_audit(plan: Plan) -> bool:
    """Whether the report carries the seed audit: only for the audited (seed) profile itself."""
    return plan.hardware == plan.audit.hardware


def _fit_sentences(plan: Plan) -> list[str]:
    cap, target = plan.capacity, plan.settings.target_tokens
    top = cap.top
    out = []
    top_now = top.usable_tokens()
    if cap.fits_top():
        out.append(f"The top tier ({top.name}) alone holds the target: {top_now:,} tokens in {top.codec}.")
    else:
        densest = max(CODECS, key=lambda c: top.usable_tokens(c))
        enough = "enough" if cap.fits_top(densest) else "still short"
        alone = f"in {densest} it would hold {top.usable_tokens(densest):,}, {enough}"
        out.append(
            f"The top tier ({top.name}) alone does **not** hold the target: {top_now:,} tokens in {top.codec} "
            f"({_times(top_now / target)} the target); {alone}."
        )
    dist = cap.distinct_tokens()
    how = (
        "at once (sum of the tiers)"
        if cap.mode == "exclusive"
        else "at once (write-through: the tiers above the last hold copies)"
    )
    if cap.fits_hierarchy():
        out.append(
            f"The whole hierarchy holds it under {plan.mix}: {dist:,} tokens {how}, {dist / target:.1f}x the target."
        )
    else:
        most = cap.best_distinct_tokens
        tail = (
            f"in {DENSEST} everywhere it would hold {most:,} ({_times(most / target)})"
            + (", enough." if most >= target else ", still short.")
        )
        out.append(
            f"The whole hierarchy does **not** hold the target under {plan.mix}: {dist:,} tokens {how} "
            f"({_times(dist / target)}); {tail}"
        )
    return out


def _prefix_text(plan: Plan) -> str:
    """The recommended run's prefix hit ratio per tier: ``vram 0.412, shared 0.087, ...``."""
    return ", ".join(f"{x.tier} {x.hit_ratio_tokens:.3f}" for x in plan.prefix) or "per tier: not reported"


def _refused_text(r: Any) -> str:
    """A note on a run's refused requests (``""`` when none)."""
    refused, n = int(r.requests_refused), int(r.requests)
    if not refused:
        return ""
    return (
        f"**{refused:,} of {n:,} requests ({100 * refused / max(1, n):.1f} %) were refused** in that run: each needs "
        "more blocks than the top tier can give one request, so a server could not run them at all (they have no "
        "TTFT, and the figures above are over the requests that ran). A larger top tier, a denser codec there, "
        "fewer weight bytes or more tensor-parallel ranks would run them."
    )


def _prefill_text(plan: Plan) -> str:
    """The prefill cost the timed model used: coefficients, source, engines and overlap."""
    sim, c = plan.sim, plan.sim.prefill_cost
    source = (
        "calibrated: fitted to measured prefills"
        if c.source == "calibrated"
        else "derived from the payload's architecture x the device's peak x an assumed efficiency - an assumption, "
        "not a measurement"
    )
    return (
        f"prefill of n new tokens after p cached ones costs a + b·n + c·n·(p + n/2) + d·p seconds with "
        f"a = {c.a_s:.4g} s, b = {c.b_s_per_token:.4g} s/token, c = {c.c_s_per_token_pair:.4g} s/token pair, "
        f"d = {c.d_s_per_token:.4g} s/cached token ({source}; {c.basis}), on {sim.compute_engines} compute "
        f"engine(s) - one prefill at a time each, no batching - with overlap "
        + (
            f"`layerwise` (the prefix load and the prefill pipelined over {sim.layers} layers)"
            if sim.layerwise
            else "`none` (the prefix is loaded, then the rest prefilled)"
        )
    )


def _per_tier(name: str, options: dict[str, Any], tiers: list[str]) -> str:
    """``seed (vram lru, shared lru, ram fifo, nvme fifo)``: a swept option with per-tier choices, expanded."""
    opt = options.get(name)
    if opt is None or not opt.get("per_tier"):
        return name
    per_tier, default = dict(opt.get("per_tier")), opt.get("default")
    return f"{name} ({', '.join(f'{t} {per_tier.get(t, default)}' for t in tiers)})"


def _ttft(x: float) -> str:
    """A TTFT for the summary: ``< 1 us, all hits`` where the model charged nothing, else :func:`_s`."""
    return "< 1 us, all hits" if x < 1e-6 else _s(x)


def _target_line(plan: Plan) -> str:
    """Answer one: is the phase's target reachable on this profile, and where."""
    cap, target = plan.capacity, plan.settings.target_tokens
    rank = " per rank" if cap.tensor_parallel > 1 else ""
    if cap.fits_top():
        where = f"reachable in the top tier ({cap.top.name}) alone: {cap.top.usable_tokens():,} tokens{rank}"
    elif cap.fits_hierarchy():
        where = (
            f"reachable in the whole hierarchy, not the top tier ({cap.top.name} holds {cap.top.usable_tokens():,}"
            f"{rank}): {cap.distinct_tokens():,} tokens{rank} at once under {plan.mix}"
        )
    elif cap.best_distinct_tokens >= target:
        where = (
            f"not reachable under {plan.mix} ({cap.distinct_tokens():,} tokens{rank}); reachable in {DENSEST} "
            f"everywhere ({cap.best_distinct_tokens:,} tokens{rank})"
        )
    else:
        holders = [p.name for p in plan.profiles if p.tokens[DENSEST] >= target]
        where = f"not reachable on {plan.hardware} in any codec (at most {cap.best_distinct_tokens:,} tokens{rank})" + (
            f"; reachable on {', '.join(holders)} in {DENSEST}" if holders else "; on no profile in conf/hardware/"
        )
    return f"**Target** {target:,} tokens (phase {plan.settings.phase_name}): {where}."


def _next_line(plan: Plan, codec: str) -> str | None:
    """Answer four: what the next phase needs of the top tier."""
    nxt = plan.next_phase
    if nxt is None:
        return None
    rank = " per rank" if plan.capacity.tensor_parallel > 1 else ""
    if nxt.capacity_bytes:
        return (
            f"**Next phase** {nxt.name} ({nxt.target_tokens:,} tokens) needs a top tier of "
            f"{_gib(nxt.capacity_bytes)}{rank} ({nxt.capacity_tokens:,} tokens in {codec}) for the same LRU hit "
            f"ratio ({nxt.hit_ratio_now:.3f})."
        )
    return f"**Next phase**: {nxt.note}" if nxt.note else None


def _ceiling_line(plan: Plan) -> str | None:
    """Answer five: the infinite-cache ceiling, when the hit ratio asked of the next phase is above it."""
    nxt = plan.next_phase
    if nxt is None or nxt.max_hit_ratio is None or nxt.max_hit_ratio >= nxt.hit_ratio_now:
        return None
    return (
        f"**Ceiling**: at phase {nxt.name} even a top tier that never evicts reaches a hit ratio of "
        f"{nxt.max_hit_ratio:.3f}, below the {nxt.hit_ratio_now:.3f} asked of it: no capacity buys that target."
    )


def _summary(doc: Document, plan: Plan) -> None:
    doc.heading("Summary")
    tiers = [t.name for t in plan.spec.tiers]
    items = [_target_line(plan)]
    if plan.split is not None:
        items.append(f"**Split**: {plan.split.sentence()}")
    if plan.ranking is None:
        items.append(f"**Recommendation**: none, nothing was simulated. {plan.skip_reason}")
    else:
        r = plan.ranking.recommended
        expanded = [
            f"{what} {text}"
            for what, name, options in (
                ("policy", r.policy, plan.settings.policies),
                ("codec", r.codec, plan.settings.codecs),
            )
            if (text := _per_tier(str(name), options, tiers)) != str(name)
        ]
        items.append(
            f"**Recommended: policy={r.policy}, codec={r.codec}** - "
            + "".join(f"{e}; " for e in expanded)
            + f"TTFT (time to first token) p99 {_ttft(r.ttft_p99_s)}, p50 {_ttft(r.ttft_p50_s)}."
        )
        items.append(f"**Bottleneck**: {plan.bottleneck}")
        items += [x for x in (_next_line(plan, str(r.codec)), _ceiling_line(plan)) if x]
    items += (plan.weights.sentences() if plan.weights is not None else []) + _fit_sentences(plan)
    if plan.ranking is None:
        holders = [p for p in plan.profiles if p.tokens[DENSEST] >= plan.settings.target_tokens]
        if holders:
            items.append(
                "Profiles in conf/hardware/ that would hold it in "
                f"{DENSEST}: {', '.join(f'{p.name} ({p.tokens[DENSEST]:,})' for p in holders)}."
            )
        else:
            biggest = max(plan.profiles, key=lambda p: p.tokens[DENSEST])
            items.append(
                f"No profile in conf/hardware/ holds it either: the largest, {biggest.name}, holds "
                f"{biggest.tokens[DENSEST]:,} tokens of {plan.payload} in {DENSEST}."
            )
    else:
        r = plan.ranking.recommended
        items.append(
            f"In the recommended run: prefix hit ratio {r.hit_ratio_tokens:.3f} of prompt "
            f"tokens ({_prefix_text(plan)}), {int(r.recomputed_tokens):,} tokens recomputed and "
            f"{int(r.stranded_blocks):,} blocks stranded in the timed run (reasons below)."
        )
        refused = _refused_text(r)
        if refused:
            items.append(refused)
        never = [b.tier for b in plan.breakeven if b.breakeven_tokens is None]
        if never and plan.breakeven:
            items.append(
                f"Loading a cached prefix from {', '.join(never)} is slower than recomputing it at any length up to "
                f"{plan.breakeven[0].horizon_tokens:,} tokens (the profile's prefill cost): those hits do not pay."
            )
        flags = [s for s in plan.shares if s.flag]
        for s in flags:
            items.append(f"Tier {s.tier}: {s.flag}.")
    doc.bullets(items)
    notes = overload_notes(plan)
    doc.paragraph("Notes: none." if not notes else "Notes:")
    if notes:
        doc.bullets([f"**Warning**: {n}" for n in notes])


def _simulated(doc: Document, plan: Plan) -> None:
    doc.heading("What was simulated")
    spec = plan.spec
    doc.paragraph(
        f"Hardware profile **{plan.hardware}** ({plan.capacity.mode}, tiers "
        + ", ".join(f"{t.name} ({t.medium}, {_gib(t.capacity_bytes)})" for t in spec.tiers)
        + f"); payload **{plan.payload}**; **{plan.block_tokens}-token blocks**; workload **{plan.workload_kind}**; "
        f"codec mix as given **{plan.mix}**, policies as given **{plan.policy}**."
    )
    if plan.ranking is None:
        doc.paragraph(plan.skip_reason)
        return
    live = plan.live
    assert live is not None
    k, ks = plan.k_replay, plan.k_sweep
    items = [plan.sizing_text]
    if plan.sizing_overrides:
        items.append(
            "Workload knobs set by the plan: "
            + ", ".join(f"`{k2}={v}`" for k2, v in plan.sizing_overrides.items())
            + (f" (a 1:{k} miniature; see below)" if k > 1 else "")
            + "."
        )
    partial = live.mean_slot_tokens / live.mean_tokens - 1 if live.mean_tokens else 0.0
    target = plan.settings.target_tokens
    if live.footprint:
        items.append(
            f"Measured {live.what}: {_tok(live.mean_tokens)} tokens ({_times(live.mean_tokens / target)} the "
            f"phase's target), {_tok(live.mean_slot_tokens)} in whole blocks (partial last blocks: {_pct(partial)}). "
            "A footprint counts blocks read only once too: it bounds what is ever live from above."
        )
    else:
        items.append(
            f"Measured {live.what}: mean {_tok(live.mean_tokens * k)} tokens "
            f"({_times(live.mean_tokens * k / target)} the target), peak {_tok(live.peak_tokens * k)}; "
            f"in whole blocks (what capacity must hold) mean {_tok(live.mean_slot_tokens * k)}, peak "
            f"{_tok(live.peak_slot_tokens * k)}: partial last blocks cost {_pct(partial)} on top of the tokens."
        )
    items.append(
        f"The replay and the miss-ratio curves stream {live.requests:,} requests ({live.references:,} block "
        f"references, {live.distinct_blocks:,} distinct blocks)"
        + (f" of a 1:{k} miniature (tier capacities and the workload's size / {k})." if k > 1 else " at full size.")
    )
    sweep_scale = (
        f"a **1:{ks} miniature** of the phase - every tier's capacity and the workload's size (concurrent sessions, "
        f"or objects) divided by {ks}, "
        "the request rate kept, so each request and the load per second are as at full size over a run "
        f"{ks}x shorter; the recommended configuration is then replayed at full size (below) to check its hit ratios"
        if ks > 1
        else "the phase at full size"
    )
    items.append(
        f"The timed sweep (SimPy model) ran {len(plan.ranking.table)} configurations on {sweep_scale}: "
        f"{plan.sweep_requests:,} requests and {plan.sweep_accesses:,} block reads each, arrivals spanning "
        f"{_s(plan.sweep_span_s)} of simulated time ({plan.sim.arrival} arrivals)."
    )
    if plan.full_summary is not None:
        full_top = plan.full_summary["tiers"][0]["hit_ratio"]
        mini_top = float(plan.ranking.recommended.top_hit_ratio)
        items.append(
            f"Miniature check: the recommended configuration's top-tier hit ratio is {mini_top:.3f} in the miniature "
            f"and {full_top:.3f} replayed at full size ({plan.full_summary['accesses']:,} reads)."
        )
    items.append(
        f"Assumptions: the profile's link and codec speeds ({plan.hardware}: see its file in conf/hardware/); "
        f"{_prefill_text(plan)}; {plan.sim.codec_workers} codec engine(s); demotions in the "
        f"{'background' if not plan.sim.demotion_sync else 'request path'}. TTFT = waiting for an engine + loading "
        "the cached prefix from lower tiers + prefilling the rest. The model charges codec time only when a block "
        "changes codec between tiers (a uniform mix has none) and does not charge quantising a freshly computed block."
    )
    doc.bullets(items)


def _capacity(doc: Document, plan: Plan) -> None:
    cap = plan.capacity
    doc.heading("Capacity")
    doc.paragraph(
        f"Tokens each tier holds for {plan.payload} at {plan.block_tokens}-token blocks, per codec: "
        "`capacity_bytes // block_bytes` whole blocks x block tokens, from the codecs' exact byte math "
        "(INT8/INT4 scales counted); a GPU tier holds only its KV budget, what the model's weights and "
        "activation workspace leave of the serving engine's share (`hardware.gpu`). **Bold**: the codec the mix "
        "as given stores in that tier."
    )
    # a GPU tier serving the model shows what holds its blocks; a profile without one (or whose GPU
    # tier is a KV pool already) keeps the plain table
    served = any(t.kv_budget_bytes is not None for t in cap.tiers)
    gpu_cols = ["weights", "workspace", "KV budget"] if served else []
    header = ["tier", "medium", "capacity", *gpu_cols] + [f"{c} tokens" for c in CODECS]
    rows: list[list[Any]] = []
    for t in cap.tiers:
        cells = [f"**{t.tokens[c]:,}**" if c == t.codec else f"{t.tokens[c]:,}" for c in CODECS]
        gpu = (
            [_gb(t.weight_bytes), _gb(t.workspace_bytes), _gb(t.kv_budget_bytes)]
            if t.kv_budget_bytes is not None
            else [""] * len(gpu_cols)
        )
        rows.append([t.name, t.medium, _gib(t.capacity_bytes), *gpu, *cells])
    room = ["", "", _gib(sum(t.block_room_bytes for t in cap.tiers))] if served else []
    rows.append(
        ["hierarchy (at once)", cap.mode, _gib(sum(t.capacity_bytes for t in cap.tiers)), *room]
        + [f"{cap.distinct_tokens(c):,}" for c in CODECS]
    )
    rows.append(["block bytes", "", "", *[""] * len(gpu_cols)] + [f"{cap.top.block_bytes[c]:,}" for c in CODECS])
    doc.table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2))
    notes = [f"Under the mix as given ({plan.mix}) the hierarchy holds {cap.distinct_tokens():,} tokens at once."]
    notes += [f"{t.name}: {t.budget_arithmetic}." for t in cap.tiers if t.budget_arithmetic]
    reserved = [t for t in cap.tiers if t.high_fraction < 1.0]
    if reserved:
        notes.append(
            "Watermarks reserve room: "
            + ", ".join(f"{t.name} evicts above {t.high_fraction:g} of its blocks" for t in reserved)
            + "; the hierarchy row and the fits above count only what lies under the high watermarks."
        )
    doc.bullets(_fit_sentences(plan) + notes)
    if not cap.fits_hierarchy():
        doc.paragraph("What each hardware profile in conf/hardware/ holds of this payload (every tier, exclusive):")
        doc.table(
            ["profile", "fp16 tokens", f"{DENSEST} tokens", "holds the target"],
            [
                [p.name, f"{p.tokens['fp16']:,}", f"{p.tokens[DENSEST]:,}",
                 "yes" if p.tokens[DENSEST] >= plan.settings.target_tokens else "no"]
                for p in plan.profiles
            ],
        )
    doc.figure(plan.figures["capacity"], "Tokens per tier and codec (log scale); dashed: the phase's target.")


def _sweep(doc: Document, plan: Plan) -> None:
    doc.heading("Policies and codec mixes")
    if plan.ranking is None:
        doc.paragraph("Not simulated: " + plan.skip_reason)
        return
    rk = plan.ranking
    tiers = list(rk.tiers)
    doc.paragraph(
        "Every policy x codec mix through the timed model (`exo-sim -m`, run in parallel by Hydra's joblib "
        "launcher), ranked by refused requests (fewer first: a request a server cannot run has no time to first "
        "token, so a TTFT over fewer requests is not comparable), then TTFT (time to first token) p99, then TTFT p50, "
        "then recomputed tokens, then the prefix hit ratio. Among the configurations refusing no more requests than "
        f"the best and within {100 * rk.tolerance:g} % of its TTFT p99 (eligible), the one storing the most precise "
        "data (its coarsest tier's codec) is recommended: lossy compression must buy TTFT to be chosen. The prefix "
        "hit ratio is the prompt tokens found cached over all prompt tokens of the requests that ran, also split by "
        f"the tier they were found in ({' / '.join(tiers)}); stranded blocks are resident but past the break of "
        "their request's prefix, so they are recomputed anyway."
        + (f" Figures are from the 1:{plan.k_sweep} miniature's run." if plan.k_sweep > 1 else "")
    )

    def split(r: Any, prefix: str, fmt: str) -> str:
        vals = [r.get(f"{prefix}{t}") for t in tiers]
        return " / ".join("?" if v is None or v != v else format(float(v), fmt) for v in vals)

    rows = []
    for _, r in rk.table.iterrows():
        mark = " **(recommended)**" if r.job == rk.recommended.job else ""
        rows.append(
            [
                int(r["rank"]),
                f"{r.policy}{mark}",
                r.codec,
                _s(r.ttft_p50_s),
                _s(r.ttft_p99_s),
                f"{r.hit_ratio_tokens:.3f}",
                split(r, "hit_ratio_tokens_", ".3f"),
                f"{int(r.stranded_blocks):,} ({split(r, 'stranded_', ',.0f')})",
                f"{int(r.requests_refused):,}",
                f"{int(r.recomputed_tokens):,}",
                f"{r.bytes_moved / 1e9:,.1f}",
                f"{int(r.coarsest_bits)}",
                f"{r.busiest.removeprefix('link ')} ({r.max_demand:.2f})",
                "yes" if r.eligible else "",
            ]
        )
    doc.table(
        ["rank", "policy", "codec mix", "TTFT p50", "TTFT p99", "prefix hit ratio", f"by tier ({' / '.join(tiers)})",
         "stranded blocks (by tier)", "refused requests", "recomputed tokens", "GB moved", "coarsest bits",
         "busiest resource (demand)", "eligible"],
        rows,
        ["r", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l", "l"],
    )
    refusing = rk.table[rk.table["requests_refused"] > 0]
    if len(refusing):
        doc.paragraph(
            f"{len(refusing)} of {len(rk.table)} configurations refused requests (from "
            f"{int(refusing['requests_refused'].min()):,} to {int(refusing['requests_refused'].max()):,} of "
            f"{int(rk.table['requests'].max()):,}): a request whose context needs more blocks than the top tier can "
            "give one request cannot be run by a server at all - it is counted, not timed. A mix that stores the top "
            "tier in fewer bits gives a request more blocks and refuses fewer."
        )
    saturated = rk.table[rk.table["max_demand"] > 1]
    if len(saturated) == len(rk.table):
        doc.paragraph(
            "**Every configuration is saturated**: some resource is offered more work than it can do (demand > 1), "
            "so requests queue for as long as the run lasts and the TTFTs above grow with the run's length "
            "- read them as an order, not as values; the demand column says by how much each one is overloaded."
        )
    elif len(saturated):
        doc.paragraph(
            f"{len(saturated)} of {len(rk.table)} configurations are saturated (demand > 1): their TTFT p99 grows "
            "with the run's length."
        )
    doc.heading("Recommended configuration and why", 3)
    doc.bullets(rk.reasons())
    if plan.prefix:
        tiers_by_name = {t["name"]: t for t in plan.rec_summary.get("tiers", [])}
        doc.paragraph(
            f"Where the recommended configuration found its cached prefixes (timed run, "
            f"{int(plan.rec_summary.get('prompt_tokens') or 0):,} prompt tokens of the requests that ran; reuse "
            f"`{plan.rec_summary.get('reuse', '?')}`):"
        )
        doc.table(
            ["tier", "codec", "prefix hit tokens", "prefix hit ratio (of prompt tokens)", "stranded blocks",
             "block hit ratio (of reads reaching it)"],
            [
                [x.tier, str(tiers_by_name.get(x.tier, {}).get("codec", "")), f"{x.hit_tokens:,}",
                 f"{x.hit_ratio_tokens:.3f}", f"{x.stranded_blocks:,}",
                 f"{float(tiers_by_name.get(x.tier, {}).get('hit_ratio') or 0.0):.3f}"]
                for x in plan.prefix
            ]
            + [["all", "", f"{sum(x.hit_tokens for x in plan.prefix):,}",
                f"{sum(x.hit_ratio_tokens for x in plan.prefix):.3f}",
                f"{sum(x.stranded_blocks for x in plan.prefix):,}", ""]],
            ["l", "l", "r", "r", "r", "r"],
        )
    doc.figure(
        plan.figures["sweep"],
        "Prefix hit ratio and TTFT p99 per policy and codec mix, over the requests that ran (refusals: the table).",
    )


def _curve(doc: Document, plan: Plan) -> None:
    doc.heading("Top-tier hit-ratio curve and the next phase")
    if plan.ranking is None or plan.curve is None:
        doc.paragraph("Not simulated: " + plan.skip_reason)
        return
    nxt = plan.next_phase
    rk = plan.ranking.recommended
    c = plan.curve
    doc.paragraph(
        f"The top tier's hit ratio against its capacity, for LRU (exact, one pass of stack distances over "
        f"{c.reads:,} reads). With the recommended mix the top tier holds {plan.top_tokens:,} tokens "
        f"({rk.codec}); LRU reaches {nxt.hit_ratio_now if nxt else 0:.3f} there, {rk.policy} reached "
        f"{rk.top_hit_ratio:.3f} in the timed run. A top tier that never evicted would reach {c.max_hit_ratio:.3f}."
    )
    if nxt is not None:
        items = []
        if nxt.capacity_bytes:
            items.append(
                f"For phase **{nxt.name}** ({nxt.target_tokens:,} tokens) the same LRU hit ratio "
                f"({nxt.hit_ratio_now:.3f}) needs a top tier of **{_gib(nxt.capacity_bytes)}** "
                f"({nxt.capacity_tokens:,} tokens, {nxt.capacity_blocks:,} blocks of {rk.codec}) - "
                f"{nxt.capacity_bytes / max(1, _block_room(plan.spec.tiers[0])):.2f}x today's "
                f"{_gib(_block_room(plan.spec.tiers[0]))}"
                + (" of KV budget." if plan.spec.tiers[0].kv_budget_bytes is not None else ".")
            )
        if nxt.note:
            items.append(nxt.note)
        if nxt.target_tokens:
            items.append(
                f"Holding phase {nxt.name}'s {nxt.target_tokens:,} tokens at once takes "
                + ", ".join(f"{_gib(b)} in {c2}" for c2, b in nxt.hold_bytes.items())
                + f"; this hierarchy holds {plan.capacity.distinct_tokens():,} tokens in {plan.mix}."
            )
        doc.bullets(items)
    doc.figure(plan.figures["mrc"], "Top-tier hit ratio against capacity (LRU), this phase and the next.")


def _bottleneck(doc: Document, plan: Plan) -> None:
    doc.heading("Bottleneck")
    if plan.ranking is None:
        doc.paragraph("Not simulated: " + plan.skip_reason)
        return
    doc.paragraph(
        plan.bottleneck
        + " Utilisation is busy time over the run's makespan; demand is the same busy time over the span of "
        "arrivals (above 1, the resource cannot keep up with the offered load)."
    )
    doc.table(
        ["resource", "utilisation", "demand", "detail"],
        [[r.name, _pct(r.utilisation), f"{r.demand:.2f}", r.detail] for r in plan.resources],
        ["l", "r", "r", "l"],
    )
    doc.figure(plan.figures["bottleneck"], "Demand per resource in the recommended configuration's timed run.")
    doc.figure(plan.figures["occupancy"], "Occupancy of each tier over simulated time (recommended configuration).")


def _operators(doc: Document, plan: Plan) -> None:
    doc.heading("What operators get wrong")
    cap = plan.capacity
    doc.heading("Bytes per token, exactly", 3)
    p = plan.spec.content
    tp = cap.tensor_parallel
    doc.paragraph(
        f"A {plan.block_tokens}-token block of {plan.payload} holds {p.elements:,} values to encode"
        + (f" and {p.raw_bytes:,} raw bytes" if p.raw_bytes else "")
        + " per rank. KV caches count KV heads (GQA), not the hidden size; INT8/INT4 scales are counted. "
        + (
            f"Tensor parallelism {tp}: each rank holds its share of KV heads, so a host tier shared by the node's "
            f"{tp} ranks needs {tp}x the per-rank bytes."
            if tp > 1
            else "Tensor parallelism 1: per rank = per node (at TP=N, a host tier shared by the N ranks needs N x "
            "these bytes)."
        )
    )
    doc.table(
        ["codec", "bytes/token per rank", "bytes/token per node", "scales share", "vs fp32",
         f"{cap.top.name} tokens vs fp16"],
        [
            [b.codec, f"{b.per_rank:,.1f}", f"{b.per_node:,.1f}", _pct(b.scale_share), f"{b.vs_fp32:.4f}",
             f"{b.top_tier_gain_vs_fp16:.3f}x"]
            for b in plan.bpt
        ],
    )
    doc.heading("What each lower tier buys", 3)
    if plan.ranking is None:
        doc.paragraph("Not simulated: " + plan.skip_reason)
    else:
        src = "full-size replay" if plan.full_summary is not None else "timed run"
        doc.paragraph(
            f"Reads served by each tier in the recommended configuration ({src}) against its size. "
            + (
                "Write-through: a last tier no larger than the tiers above it holds copies and adds almost nothing."
                if plan.mode == "write_through"
                else "Exclusive: each tier adds its own capacity."
            )
        )
        doc.table(
            ["tier", "capacity tokens", "x tier above", "reads served", "cumulative hit ratio", "flag"],
            [
                [s.tier, f"{s.capacity_tokens:,}", f"{s.size_vs_above:.2f}" if s.size_vs_above is not None else "",
                 _pct(s.share_of_reads), f"{s.cumulative_hit_ratio:.3f}", s.flag]
                for s in plan.shares
            ],
            ["l", "r", "r", "r", "r", "l"],
        )
        doc.figure(plan.figures["tiers"], "Share of reads served per tier, and each tier's capacity.")
        doc.heading("Does a hit pay off? Load versus recompute", 3)
        doc.paragraph(_break_even_text(plan))
        doc.table(
            ["tier", "route", "latency", "load per block", "recompute a 1-block prefix", "loading wins from",
             "load / recompute there"],
            [
                [b.tier, b.links, _s(b.latency_s), _s(b.load_s_per_block), _s(b.recompute_s_one_block),
                 f"{b.breakeven_tokens:,} tokens" if b.breakeven_tokens is not None
                 else f"never within {b.horizon_tokens:,} tokens: recompute is faster",
                 f"{_s(b.load_s_at_breakeven)} / {_s(b.recompute_s_at_breakeven)}"
                 if b.load_s_at_breakeven is not None and b.recompute_s_at_breakeven is not None else ""]
                for b in plan.breakeven
            ],
            ["l", "l", "r", "r", "r", "l", "r"],
        )
    doc.heading("Start-up: pinning the shared tier", 3)
    lo, hi = plan.settings.pin_gbps
    if plan.pin:
        doc.paragraph(
            f"Assumption: `cudaHostRegister` pins {lo:g}-{hi:g} GB/s (plan.pin_gbps_low/high; not measured here). "
            "Pin once, in the background or lazily, within what the cgroup allows."
        )
        doc.table(
            ["tier", "capacity", "pinning time"],
            [[p2.tier, _gib(p2.capacity_bytes), f"{_s(p2.fastest_s)} to {_s(p2.slowest_s)}"] for p2 in plan.pin],
        )
    else:
        doc.paragraph("No tier of this profile is page-locked (`pinned`): nothing to pin at start-up.")
    doc.heading("Headroom under bursts", 3)
    if plan.headroom is None:
        doc.paragraph("Not simulated: " + plan.skip_reason)
    else:
        h = plan.headroom
        peaks = ", ".join(f"{name} {_pct(v)}" for name, v in h.tier_peak_occupancy.items())
        state = (
            f"{h.headroom_tokens:,} tokens ({_pct(h.headroom_tokens / h.capacity_tokens)} of the hierarchy) to spare"
            if h.headroom_tokens >= 0
            else f"**{-h.headroom_tokens:,} tokens short**: the peak spills off the last tier and is recomputed"
        )
        doc.bullets(
            [
                (
                    f"The trace's footprint is {h.peak_slot_tokens:,} tokens in whole blocks (every distinct block; "
                    "what is live at once is less)"
                    if plan.live is not None and plan.live.footprint
                    else f"The live context peaks at {h.peak_slot_tokens:,} tokens in whole blocks, "
                    f"{h.burst_factor:.2f}x its steady mean"
                )
                + f"; the hierarchy holds {h.capacity_tokens:,} at once under the recommended mix: {state}.",
                f"Peak occupancy per tier in the timed run: {peaks}.",
                f"At most {h.max_in_system} requests were in the system at once (timed run).",
                "Occupancy is not live context: the blocks of finished sessions are never freed by the workload, "
                "so the tiers fill up with them and they leave only when evicted.",
            ]
        )


def _break_even_text(plan: Plan) -> str:
    """How the load-versus-recompute break-even was computed, with the n it used."""
    c = plan.sim.prefill_cost
    n = plan.breakeven[0].new_tokens if plan.breakeven else plan.block_tokens
    overlap = (
        f"Under `layerwise` overlap loading takes max(load, prefill) + min / {plan.sim.layers} layers alongside the "
        f"rest's prefill, so n matters: here n = {n:,} tokens"
        if plan.sim.layerwise
        else f"n, the request's other tokens, cancels out of the difference; it is taken as {n:,} tokens"
    )
    return (
        "Per tier below the top, for a request whose first p tokens are cached there: loading them costs the links' "
        "latencies once plus p / block tokens x (bytes / bandwidth over the route + re-encoding when the codec "
        "changes); recomputing them costs prefill_s(n + p, 0) - prefill_s(n, p) = "
        f"(b - d)·p + c·p²/2 with the profile's prefill cost (b = {c.b_s_per_token:.4g} s/token, "
        f"c = {c.c_s_per_token_pair:.4g} s/token pair, d = {c.d_s_per_token:.4g} s/cached token, {c.source}): "
        "attention makes recompute grow faster than linearly in p, which favours loading long prefixes. "
        f"{overlap} (the median tokens a request that ran prefilled in the recommended timed run). Solved over every "
        "whole-block prefix: loading wins for every prefix from the length given on. Only whole blocks are cached, "
        "so the answer is at least one block."
    )


def _audit(doc: Document, plan: Plan) -> None:
    a = plan.audit
    doc.heading("Audit of the seed workstation's claims")
    doc.paragraph(
        f"The replaced system published per-tier token capacities for the {a.hardware} and codec savings, typed by "
        f"hand. exo derives them from bytes for the payloads it ships, under the seed mix ({a.mix}), at "
        f"{a.block_tokens}-token blocks. K and M are read as 1024 and 1024^2 (the verdicts hold with 1000). "
        "The claims count KV-cache tokens, so only KV-cache payloads are held against them; a RAG chunk's tokens "
        "are text stored as raw bytes beside one embedding, not comparable (its codec savings are below)."
    )
    doc.table(
        ["payload", "tier", "codec", "block bytes", "blocks", "tokens (exo)", "claimed", "exo / claimed"],
        [
            [r.payload, r.tier, r.codec, f"{r.block_bytes:,}", f"{r.blocks:,}", f"{r.tokens:,}",
             f"{r.claimed_tokens:,}" if r.claimed_tokens else "", f"{r.ratio:.2f}x" if r.ratio is not None else ""]
            for r in a.claims
            if r.claimed_tokens is not None
        ],
        ["l", "l", "l", "r", "r", "r", "r", "r"],
    )
    doc.table(
        ["payload", "codec", "block bytes", "saving vs fp32", "saving vs fp16", "claimed"],
        [
            [r.payload, r.codec, f"{r.block_bytes:,}", _pct(r.reduction_vs_fp32), _pct(r.reduction_vs_fp16),
             _pct(r.claimed) if r.claimed is not None else ""]
            for r in a.reductions
            if r.codec != "fp32"
        ],
        ["l", "l", "r", "r", "r", "r"],
    )
    doc.bullets(a.statements + a.skipped)
    doc.figure(plan.figures["audit"], "Claimed against computed KV-cache tokens per tier (points, log scale).")


def _made(doc: Document, plan: Plan) -> None:
    doc.heading("How this report was made")
    items = [
        "Wall time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in plan.timings_s.items()) + ".",
        "Files beside this report: report.md, report.html, plan.json (the headline numbers), "
        + ", ".join(sorted(plan.figures.values()))
        + (", sweep/ (one folder per configuration: summary.json, timeseries.parquet, requests.parquet; "
           "sweep.parquet), sweep_conf/ (the sections the sweep's jobs read), sweep.log."
           if plan.ranking is not None else "."),
    ]
    if plan.sweep_command:
        items.append("The sweep, to rerun by hand: `" + " ".join(shlex.quote(x) for x in plan.sweep_command) + "`")
    doc.bullets(items)
