"""The cross-check's outputs: ``crosscheck.parquet``, the summary line, and the report (Markdown, HTML).

``crosscheck.parquet`` is long: one row per (config, quantity) with the model's value, the runtime's,
the relative error, and for decisions whether they matched. The report says what was run on which
host, the verdict per config, decisions, errors, where each clock spent its time, the figures, and
why the two clocks differ where they do.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.crosschecking.compare import Comparison, Metric
from experiments.crosschecking.figures import error_figure, latency_figure, occupancy_figure
from experiments.crosschecking.suite import Host, RunPair
from experiments.planning.document import Document

ERROR_METRICS = ("makespan_s", "latency_p50_s", "latency_p95_s", "latency_p99_s")


@dataclass
class ReportInputs:
    """Everything the report needs besides the comparisons."""

    suite: str
    host: Host
    pairs: list[RunPair]
    tolerance: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    elapsed_s: float
    cpus: int


def results_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row per (config, quantity): ``kind``, ``metric``, ``where``, ``sim``, ``runtime``, ``rel_error``,
    ``identical`` (decisions: the row's verdict; one ``decisions`` row per config), ``passes``."""
    rows: list[dict[str, Any]] = []
    for c in comparisons:
        rows.append({
            "config": c.config, "kind": "decisions", "metric": "decisions", "where": "",
            "sim": float(c.checked - len(c.differences)), "runtime": float(c.checked),
            "rel_error": 0.0 if c.identical else math.nan, "identical": c.identical,
            "detail": "; ".join(c.differences),
        })
        for m in c.metrics:
            rows.append({
                "config": c.config, "kind": m.kind, "metric": m.name, "where": m.where,
                "sim": m.sim, "runtime": m.runtime, "rel_error": m.rel_error, "identical": c.identical,
                "detail": "",
            })
    return pd.DataFrame(rows)


def _abs_errors(comparisons: Sequence[Comparison], name: str) -> list[float]:
    return [abs(e) for e in (c.error(name) for c in comparisons) if not math.isnan(e)]


def summary_line(comparisons: Sequence[Comparison]) -> str:
    """``decisions identical K/N; makespan error median X%, worst Y%; p99 latency error median Z%``.

    Errors are absolute relative errors of the model against the runtime.
    """
    k = sum(c.identical for c in comparisons)
    mk = _abs_errors(comparisons, "makespan_s")
    p99 = _abs_errors(comparisons, "latency_p99_s")

    def pct(xs: list[float], f: Any) -> str:
        return f"{f(xs) * 100:.1f}%" if xs else "n/a"

    return (
        f"decisions identical {k}/{len(comparisons)}; makespan error median {pct(mk, statistics.median)}, "
        f"worst {pct(mk, max)}; p99 latency error median {pct(p99, statistics.median)}"
    )


def _finite_abs_error(m: Metric) -> float:
    return 0.0 if math.isinf(m.rel_error) else abs(m.rel_error)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x * 100:+.1f}%")


def _s(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if abs(x) < 1 else f"{x:.4g} s"


def _figures(
    comparisons: Sequence[Comparison], pairs: Sequence[RunPair], out: Path, band: float
) -> list[tuple[str, str]]:
    lat_rows, err_rows, occ = [], [], []
    for c in comparisons:
        for q in ("p50", "p95", "p99"):
            m = c.metric(f"latency_{q}_s")
            if m is not None:
                lat_rows.append({"config": c.config, "percentile": q, "sim_s": m.sim, "runtime_s": m.runtime})
        for m in c.metrics:
            if m.name in ERROR_METRICS or m.name == "link_busy_s":
                label = m.name.replace("latency_", "").replace("_s", "")
                err_rows.append({"config": c.config, "metric": label, "rel_error": m.rel_error})
    for p in pairs:
        for source, frame in (("model", p.sim_series), ("runtime", p.runtime_series)):
            occ.append(frame[["tier", "time_s", "occupancy"]].assign(config=p.name, source=source))
    out_figs = []
    if lat_rows:
        out_figs.append((latency_figure(pd.DataFrame(lat_rows), out, band),
                         "Request latency predicted by the model against that measured by the runtime"))
    if err_rows:
        out_figs.append((error_figure(pd.DataFrame(err_rows), out), "The model's relative errors by metric"))
    if occ:
        out_figs.append((occupancy_figure(pd.concat(occ, ignore_index=True), out),
                         "Occupancy of each tier over time, model (dashed) and runtime (solid)"))
    return out_figs


def _breakdown(p: RunPair) -> list[str]:
    """Where each clock spent a config's time: copies, codecs, recompute, and the rest."""
    s, r = p.sim_summary, p.runtime_summary
    m = r.get("measured", {})
    r_links = sum(float(lk["seconds"]) for lk in m.get("links", []))
    r_codec = sum(float(c["encode_s"]) + float(c["decode_s"]) for c in m.get("codecs", []))
    births = m.get("births", {})
    r_birth = float(births.get("generate_s", 0.0)) + sum(float(w["seconds"]) for w in births.get("writes", []))
    r_rest = float(r["makespan_s"]) - r_links - r_codec - r_birth
    host = s.get("host", {})
    pairs = host.get("pair_usage", [])
    s_links = sum(float(u["busy_s"]) for u in pairs if u["src"] != "birth")
    s_codec = float(s["codec"]["busy_s"])
    s_birth = float(s["compute"]["busy_s"]) + sum(float(u["busy_s"]) for u in pairs if u["src"] == "birth")
    s_check = float(host.get("checksum_s", 0.0))
    s_book = float(host.get("bookkeeping_s", 0.0))
    s_rest = float(host.get("busy_s", s["makespan_s"])) - s_links - s_codec - s_birth - s_check - s_book
    return [
        p.name,
        f"{_s(s_links)} / {_s(r_links)}",
        f"{_s(s_codec)} / {_s(r_codec)}",
        f"{_s(s_birth)} / {_s(r_birth)}",
        f"{_s(s_check + s_book + s_rest)} / {_s(r_rest)}",
    ]


def write_report(comparisons: Sequence[Comparison], inputs: ReportInputs, out: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (figures beside them); return their paths."""
    tol = inputs.tolerance
    doc = Document(f"Cross-check: the timed model against the runtime (suite {inputs.suite})")
    line = summary_line(comparisons)
    doc.paragraph(f"**{line}**")
    passed = sum(c.passes(tol) for c in comparisons)
    doc.paragraph(
        f"{passed} of {len(comparisons)} configs pass (decisions identical, makespan and p99 latency within "
        f"±{tol:.0%}). The project's target: decisions identical on every config, median makespan error at "
        "most 5 %, worst at most 15 %, p99 latency error at most 15 %. Errors are `(model - runtime) / "
        "runtime`; the summary line takes their absolute values."
    )
    doc.bullets([c.verdict(tol) for c in comparisons])

    doc.heading("What ran where")
    h = inputs.host
    cal = h.calibration
    la, lb = inputs.load_before, inputs.load_after
    doc.paragraph(
        f"One command: `exo-calibrate` measured this host into `hardware=calibrated/{h.profile}` and the "
        f"serial executor `sim=calibrated/{h.profile}`; then each config ran on the timed model and on "
        f"the runtime, one after the other, in {inputs.elapsed_s:.0f} s. The machine has {inputs.cpus} CPUs "
        f"and is shared: load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1 / 5 / 15 min) before, "
        f"{lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f} after. Other processes take the CPU from the runtime at "
        "random moments, which the model cannot know: timings are noisy."
    )
    if cal is not None:
        rows = [[lk["src"] + " -> " + lk["dst"], f"{lk['fits']['down'][0]:.3f}", f"{lk['fits']['down'][1]:.2f}",
                 f"{lk['fits']['up'][0]:.3f}", f"{lk['fits']['up'][1]:.2f}"] for lk in cal.links]
        doc.paragraph("The calibrated profile (the copy benchmark fitted over the calibration's block sizes, "
                      "and codecs at its largest):")
        doc.table(["link src -> dst", "GB/s", "latency µs", "dst -> src GB/s", "dst -> src latency µs"], rows)
        doc.table(["codec", "encode GB/s", "decode GB/s"],
                  [[k, f"{e:.3f}", f"{d:.3f}"] for k, (e, d) in sorted(cal.codecs.items())])
        hf = cal.host
        if hf is not None:
            bk = hf.bookkeeping
            doc.paragraph(
                f"CRC-32 as the runtime checksums: {hf.checksum_gbps:.2f} GB/s on bytes just written to a "
                f"buffer, {hf.checksum_cold_gbps:.2f} GB/s on a slab's row in place. A file tier's manifest "
                f"commit: {hf.commit_us:.0f} µs + {hf.commit_entry_us:.2f} µs per block it holds. The runtime's "
                f"own bookkeeping, fitted on fixed calibration workloads (not this suite): {bk.request_us:.1f} µs "
                f"per request, {bk.reference_us:.2f} µs per reference, {bk.batch_us:.1f} µs per batch, "
                f"{bk.move_us:.1f} µs per move."
            )
    doc.paragraph(
        "Some speeds depend on the block's size and on what the runtime's one thread did just before (the "
        "CPU's caches, the allocator, the drive's state), so for each config they were measured at its "
        "block size rather than read off the profile: codec speeds, the birth time, and the file tier's "
        "reads and writes from the runtime's own meters on a fixed calibration workload (Zipf reads over "
        "tiers of 8, 16, 32 blocks of the config's payload, every move re-encoding — not the config's "
        "workload, capacities or policy); memory copies by the profile's copy benchmark at the config's "
        "block sizes. The runtime's \"recompute\" of a missing block is seeded data generation (its "
        "stand-in for a prefill), not a model's prefill: its rate is what the model is given as "
        "`sim.prefill_tokens_per_s`."
    )
    rows = []
    for p in inputs.pairs:
        cfg = p.sim_summary["config"]
        codecs = sorted({t["codec"] for t in p.sim_summary["tiers"] if not t["bypassed"]})
        tp = cfg["hardware"]["codec_throughput"]
        links = []
        for lk in cfg["hardware"]["links"]:
            links.append(f"{lk['src']}->{lk['dst']} {lk['bandwidth_gbps']:.2f}")
            if lk.get("reverse_bandwidth_gbps"):
                links.append(f"{lk['dst']}->{lk['src']} {lk['reverse_bandwidth_gbps']:.2f}")
        rows.append([
            p.name, f"{p.prefill_tokens_per_s:,.0f}",
            ", ".join(f"{c} {tp[c]['encode_gbps']:.2f}/{tp[c]['decode_gbps']:.2f}" for c in codecs if c in tp),
            ", ".join(links),
        ])
    doc.table(["config", "prefill (births) tokens/s", "codec encode/decode GB/s", "links GB/s"], rows,
              ["l", "r", "l", "l"])

    doc.heading("Configs")
    rows = []
    for p in inputs.pairs:
        s = p.runtime_summary
        cfg = s["config"]
        top = s["tiers"][0]
        rows.append([
            p.name, str(cfg["workload"]["kind"]), str(cfg["policy"]["name"]), str(cfg["codec"]["name"]),
            str(cfg["hierarchy"]["mode"]), f"{top['block_bytes']:,}", str(s["requests"]), str(s["accesses"]),
            f"{top['hit_ratio']:.3f}", str(sum(t["evictions"] for t in s["tiers"])), str(s["recomputed_blocks"]),
        ])
    doc.table(["config", "workload", "policy", "codec", "mode", "top block B", "requests", "accesses",
               "top hit ratio", "evictions", "recomputed"], rows)

    doc.heading("Decisions")
    doc.table(["config", "values compared", "identical", "first difference"],
              [[c.config, str(c.checked), "yes" if c.identical else "**no**",
                c.differences[0] if c.differences else ""] for c in comparisons])

    doc.heading("Time")
    rows = []
    runs = {p.name: p.runtime_makespans_s for p in inputs.pairs}
    for c in comparisons:
        mk = c.metric("makespan_s")
        busy_rows = [m for m in c.metrics if m.name == "link_busy_s"]
        worst: Metric | None = max(busy_rows, key=_finite_abs_error, default=None)
        rows.append([
            c.config, _s(mk.sim) if mk else "", _s(mk.runtime) if mk else "",
            ", ".join(f"{x:.3g}" for x in runs.get(c.config, [])), _pct(c.error("makespan_s")),
            _pct(c.error("latency_p50_s")), _pct(c.error("latency_p95_s")), _pct(c.error("latency_p99_s")),
            f"{worst.where} {_pct(worst.rel_error)}" if worst else "",
        ])
    doc.table(["config", "makespan model", "makespan runtime", "runtime runs (s)", "error", "p50 error",
               "p95 error", "p99 error", "worst link busy error"], rows)
    doc.paragraph("Per pair of tiers (as the runtime meters its copies), bytes carried and busy time:")
    rows = []
    for c in comparisons:
        for m in c.metrics:
            if m.name == "link_bytes":
                busy = c.metric("link_busy_s", m.where)
                rows.append([c.config, m.where, f"{int(m.sim):,}", f"{int(m.runtime):,}", _pct(m.rel_error),
                             _s(busy.sim) if busy else "", _s(busy.runtime) if busy else "",
                             _pct(busy.rel_error) if busy else ""])
    doc.table(["config", "pair", "bytes model", "bytes runtime", "error", "busy model", "busy runtime", "error"],
              rows)
    doc.paragraph(
        "Where each clock spent the time (model / runtime). The runtime meters its copies, codec calls and "
        "births itself; everything else it did — checksums, the decision core, the executor's bookkeeping, "
        "manifest commits — is in its last column. The model's last column is its checksum and "
        "bookkeeping time."
    )
    doc.table(["config", "copies", "codecs", "recompute (births)", "the rest"],
              [_breakdown(p) for p in inputs.pairs])

    doc.heading("Figures")
    for path, caption in _figures(comparisons, inputs.pairs, out, tol):
        doc.figure(path, caption)

    doc.heading("Why the clocks differ")
    doc.paragraph(
        "The model mirrors what the runtime does: one thread carries out a request's moves one after the "
        "other (`sim.executor=serial`); the moves are applied in the runtime's batches and netted as its "
        "executor nets them (a block demoted and promoted back in one batch is not copied; a block born "
        "and demoted is born in the lower tier; a write-through copy of a born block is born twice); "
        "demotions inside the request; a multi-hop copy as one direct copy; each direction of a link at its "
        "own speed; a block that changes codec read in one encoding and written in the other; the "
        "runtime's checksums (every read, every re-encoded block, every birth; in place or just after a "
        "copy); the birth of every block a request computes or writes; the file tier's manifest commits "
        "when its spare slots run out and on time; and its own bookkeeping. What it leaves out, and so "
        "where the residual error comes from:"
    )
    doc.bullets([
        "**Other processes on a shared machine**: they take CPU time and memory bandwidth from the runtime "
        "(and from the calibration) at moments the model cannot know; it shows as scatter between runs of "
        "the same config, several percent on this machine (`crosscheck.repeats` runs the runtime several "
        "times and keeps the run of median makespan).",
        "**Cache state the model does not track**: a block copied straight between memory tiers is "
        "checksummed in place at the rate measured on a slab larger than the cache; a block that moved a "
        "moment ago (a small, hot working set) is still in cache and is checked and copied faster.",
        "**Steps measured apart**: a codec call or a copy right after another kind of step (a file write, "
        "a birth) runs slower or faster than in calibration, depending on what that step left in the "
        "caches and the allocator; the per-config rates take this in only on average.",
        "**Staged blocks and runs of slots**: when a slot is reused within a batch the runtime stages a "
        "block (one more copy), and consecutive slots are read and written in one call; the model charges "
        "each block one read and one write.",
        "**Bookkeeping as fitted**: the runtime's Python work per request, reference, batch and move is "
        "fitted on tiny blocks; with large blocks a few per-call costs (timers, meters) are per block and "
        "not per batch.",
    ])
    md = out / "report.md"
    html = out / "report.html"
    md.write_text(doc.markdown())
    html.write_text(doc.html())
    return md, html
