"""The cross-check's outputs: ``crosscheck.parquet``, the per-request errors, and the report (Markdown, HTML).

``crosscheck.parquet`` is long: one row per (config, quantity) with the model's value, the runtime's,
the relative error, and for decisions whether they matched (:func:`results_frame`).
``crosscheck_requests.parquet`` has one row per (config, request) with both TTFTs and the error
(:func:`request_errors_frame`). The report says what ran on which host, which figures were calibrated
on it and which are assumptions, the verdict per config and over the suite, decisions, TTFT, makespan,
links and where TTFT goes, with figures per config.

It reads of each :class:`~experiments.crosschecking.pair.RunPair` its ``name``,
``runtime_summary`` (``config``, ``tiers``, ``requests``, ``accesses``), ``runtime_makespans_s`` and,
when present, ``calibrated`` (figure name -> ``calibrated on this host`` or ``assumption``); of the
:class:`~experiments.crosschecking.suite.Host` its ``profile`` and ``calibration.path``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from experiments.crosschecking.compare import REQUEST_DECISIONS, TTFT_PARTS, Comparison
from experiments.crosschecking.figures import config_figure, errors_figure
from experiments.crosschecking.verdict import Targets, passes, pct, suite_errors, suite_misses, verdict_line
from experiments.planning.document import Document

if TYPE_CHECKING:
    from experiments.crosschecking.pair import RunPair
    from experiments.crosschecking.suite import Host

RESULTS_FILE = "crosscheck.parquet"
REQUESTS_FILE = "crosscheck_requests.parquet"


@dataclass
class ReportInputs:
    """Everything the report needs besides the comparisons."""

    suite: str
    host: Host
    pairs: list[RunPair]
    targets: Targets
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    elapsed_s: float
    cpus: int


def results_frame(comparisons: Sequence[Comparison], targets: Targets | None = None) -> pd.DataFrame:
    """One row per (config, quantity).

    Columns: ``config``; ``kind`` (``decisions``, ``ttft_error``, ``ttft``, ``time``, ``link``,
    ``share``); ``metric``; ``where`` (a link's ``src->dst``, a share's part); ``sim`` and ``runtime``
    (the two clocks' values; for ``decisions`` the values that matched and those compared; NaN for
    ``ttft_error``); ``rel_error`` (``(sim - runtime) / runtime``; for ``ttft_error`` the median and p99
    of the per-request ``|e_i|``; for ``decisions`` 0 when identical, NaN when not); ``identical``
    (the config's decisions); ``detail`` (the differences); and, with ``targets``, ``passes``.
    """
    rows: list[dict[str, Any]] = []
    for c in comparisons:
        base = {"config": c.config, "identical": c.identical}
        if targets is not None:
            base["passes"] = passes(c, targets)
        rows.append({**base, "kind": "decisions", "metric": "decisions", "where": "",
                     "sim": float(c.checked - len(c.differences)) if c.identical else math.nan,
                     "runtime": float(c.checked), "rel_error": 0.0 if c.identical else math.nan,
                     "detail": "; ".join(c.differences)})
        for name, value in (("median_abs_error", c.ttft_median_abs_error), ("p99_abs_error", c.ttft_p99_abs_error)):
            rows.append({**base, "kind": "ttft_error", "metric": name, "where": "", "sim": math.nan,
                         "runtime": math.nan, "rel_error": value, "detail": f"{len(c.ttft)} requests"})
        for m in c.metrics:
            rows.append({**base, "kind": m.kind, "metric": m.name, "where": m.where, "sim": m.sim,
                         "runtime": m.runtime, "rel_error": m.rel_error, "detail": ""})
    return pd.DataFrame(rows)


def request_errors_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row per (config, request neither clock refused): ``config``, ``request``, ``model_ttft_s``,
    ``runtime_ttft_s``, ``error`` (``(model - runtime) / runtime``)."""
    frames = [c.ttft.assign(config=c.config) for c in comparisons]
    cols = ["config", "request", "model_ttft_s", "runtime_ttft_s", "error"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def write_tables(comparisons: Sequence[Comparison], out: Path, targets: Targets | None = None) -> tuple[Path, Path]:
    """Write ``crosscheck.parquet`` and ``crosscheck_requests.parquet`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    results, requests = out / RESULTS_FILE, out / REQUESTS_FILE
    results_frame(comparisons, targets).to_parquet(results, index=False)
    request_errors_frame(comparisons).to_parquet(requests, index=False)
    return results, requests


def _s(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x * 1e3:.3g} ms" if abs(x) < 1 else f"{x:.4g} s"


def _shares(c: Comparison) -> dict[str, dict[str, float]]:
    """``measured`` and ``predicted``: each part's share of TTFT, and the mean TTFT (``mean_ttft_s``)."""
    out: dict[str, dict[str, float]] = {"measured": {}, "predicted": {}}
    for part in TTFT_PARTS:
        m = c.metric("ttft_share", part)
        out["measured"][part] = m.runtime if m else math.nan
        out["predicted"][part] = m.sim if m else math.nan
    served = len(c.ttft)
    out["measured"]["mean_ttft_s"] = float(c.ttft["runtime_ttft_s"].mean()) if served else math.nan
    out["predicted"]["mean_ttft_s"] = float(c.ttft["model_ttft_s"].mean()) if served else math.nan
    return out


def _calibrated_section(doc: Document, pairs: Sequence[RunPair]) -> None:
    """Which figures the model took from this host's calibration and which are assumptions."""
    tables = {p.name: dict(getattr(p, "calibrated", None) or {}) for p in pairs}
    doc.heading("Calibrated on this host, and assumptions")
    if not any(tables.values()):
        doc.paragraph("The run did not say which of the model's figures were calibrated on this host and which "
                      "are assumptions (no config's pair carries `calibrated`).")
        return
    doc.paragraph("What the timed model was given, figure by figure: measured on this host by `exo-calibrate`, or "
                  "an assumption (a shipped default or a value the profile states without measuring it).")
    distinct = {tuple(sorted(t.items())) for t in tables.values()}
    if len(distinct) == 1:
        only = next(iter(tables.values()))
        doc.table(["figure", "source"], [[k, v] for k, v in sorted(only.items())], ["l", "l"])
    else:
        doc.table(["config", "figure", "source"],
                  [[name, k, v] for name, t in tables.items() for k, v in sorted(t.items())], ["l", "l", "l"])


def _get(node: Any, *path: str) -> str:
    """``node[path[0]][path[1]]...`` as text, empty when any key is missing."""
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ""
        node = node[key]
    return str(node)


def _configs_section(doc: Document, pairs: Sequence[RunPair]) -> None:
    rows = []
    for p in pairs:
        s = p.runtime_summary
        cfg = s.get("config", {})
        tiers = s.get("tiers", [])
        top = tiers[0] if tiers else {}
        rows.append([
            p.name, _get(cfg, "workload", "kind"), _get(cfg, "policy", "name"), _get(cfg, "codec", "name"),
            _get(cfg, "hierarchy", "mode"),
            " / ".join(str(t.get("name", "")) for t in tiers),
            f"{top['block_bytes']:,}" if "block_bytes" in top else "", str(s.get("requests", "")),
            f"{top['hit_ratio']:.3f}" if "hit_ratio" in top else "",
        ])
    doc.table(["config", "workload", "policy", "codec", "mode", "tiers", "top block B", "requests",
               "top hit ratio"], rows, ["l"] * 6 + ["r"] * 3)


def _figures(doc: Document, comparisons: Sequence[Comparison], out: Path, targets: Targets) -> None:
    doc.heading("Figures")
    errors = request_errors_frame(comparisons)
    if len(errors):
        doc.figure(errors_figure(errors, out, targets.ttft_median),
                   f"Per-request TTFT error of every config (box: quartiles; shaded: ±{targets.ttft_median:.0%})")
    for c in comparisons:
        doc.heading(c.config, 3)
        doc.figure(
            config_figure(c.config, c.ttft, pd.DataFrame.from_dict(_shares(c), orient="index"), out,
                          targets.ttft_median),
            f"{c.config}: TTFT per request predicted by the timed model against measured by the runtime "
            f"(identity line, ±{targets.ttft_median:.0%} shaded); the distribution of the per-request error; "
            "the share of TTFT spent queueing, loading the cached prefix and computing, measured beside "
            "predicted",
        )


def write_report(comparisons: Sequence[Comparison], inputs: ReportInputs, out: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (figures beside them) into ``out``; return their paths."""
    t = inputs.targets
    errors = suite_errors(comparisons)
    misses = suite_misses(errors, t)
    doc = Document(f"Cross-check: the timed model against the serving engine (suite {inputs.suite})")
    doc.paragraph(f"**{errors.line()}**")
    verdict = "meets every target" if not misses else "misses: " + "; ".join(misses)
    doc.paragraph(
        f"The suite {verdict}. Targets: hits identical on every config; over configs, the median of each "
        f"config's median per-request TTFT error at most {pct(t.ttft_median)}, the median p99 TTFT error at "
        f"most {pct(t.ttft_p99)}, the median makespan error at most {pct(t.makespan_median)} and the worst at "
        f"most {pct(t.makespan)}. A config passes when its decisions are identical, its median per-request "
        f"|error| is within {pct(t.ttft_median)}, its p99 TTFT error within {pct(t.ttft_p99)} and its "
        f"makespan error within {pct(t.makespan)}; {sum(passes(c, t) for c in comparisons)} of "
        f"{len(comparisons)} pass. Errors are `(model - runtime) / runtime`."
    )
    doc.bullets([verdict_line(c, t) for c in comparisons])

    doc.heading("What ran where")
    h = inputs.host
    la, lb = inputs.load_before, inputs.load_after
    cal = getattr(h, "calibration", None)
    where = f" (written to `{cal.path}`)" if cal is not None and getattr(cal, "path", None) else ""
    doc.paragraph(
        f"Per config: `exo-calibrate` measured this host into `hardware=calibrated/{h.profile}`{where}; the "
        "timed model `exo-plan` uses predicted the run on that profile; `exo-run` served it (prefix reuse, "
        f"a real model's prefill). All in {inputs.elapsed_s:.0f} s on {inputs.cpus} CPUs; load average "
        f"{la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1 / 5 / 15 min) before, {lb[0]:.2f} / {lb[1]:.2f} / "
        f"{lb[2]:.2f} after. Other processes on a shared machine take time from the runtime at moments the "
        "model cannot know."
    )
    _calibrated_section(doc, inputs.pairs)

    doc.heading("Configs")
    _configs_section(doc, inputs.pairs)

    doc.heading("Decisions")
    doc.paragraph(
        "Both clocks drive the one decision core, so every decision is identical by construction; it is "
        "checked all the same: run-wide and per-tier counts, bytes moved per pair of tiers, occupancy at "
        f"every sampled access, and per request: {', '.join(f'`{c}`' for c in REQUEST_DECISIONS)}."
    )
    doc.table(["config", "requests compared", "values compared", "identical", "first difference"],
              [[c.config, str(c.requests_compared), str(c.checked), "yes" if c.identical else "**no**",
                c.differences[0] if c.differences else ""] for c in comparisons], ["l", "r", "r", "l", "l"])

    doc.heading("Time to first token")
    rows = []
    for c in comparisons:
        p50, p99 = c.metric("ttft_p50_s"), c.metric("ttft_p99_s")
        rows.append([
            c.config, str(len(c.ttft)), pct(c.ttft_median_abs_error), pct(c.ttft_p99_abs_error),
            _s(p50.sim) if p50 else "", _s(p50.runtime) if p50 else "", pct(c.error("ttft_p50_s"), True),
            _s(p99.sim) if p99 else "", _s(p99.runtime) if p99 else "", pct(c.ttft_p99_error, True),
        ])
    doc.table(["config", "requests", "median abs(e)", "p99 abs(e)", "p50 model", "p50 runtime", "p50 error",
               "p99 model", "p99 runtime", "p99 error"], rows)
    doc.paragraph("`e` is each served request's `(model - runtime) / runtime`; its median and p99 are over the "
                  "requests; the p50 and p99 columns are the run's TTFT percentiles.")

    doc.heading("Makespan")
    runs = {p.name: p.runtime_makespans_s for p in inputs.pairs}
    rows = []
    for c in comparisons:
        mk = c.metric("makespan_s")
        rows.append([c.config, _s(mk.sim) if mk else "", _s(mk.runtime) if mk else "",
                     ", ".join(f"{x:.4g}" for x in runs.get(c.config, [])), pct(c.makespan_error, True)])
    doc.table(["config", "model", "runtime", "runtime repeats (s)", "error"], rows)

    doc.heading("Links")
    doc.paragraph("Per pair of tiers, bytes carried and busy time: the runtime as it measures its copies, the "
                  "model's per pair when its engine copies blocks itself (`pair_usage`), else per link "
                  "resource and direction (`link_usage`; a copy over two links then shows as two pairs).")
    rows = []
    for c in comparisons:
        for m in c.metrics:
            if m.name == "link_bytes":
                busy = c.metric("link_busy_s", m.where)
                rows.append([c.config, m.where, c.links_basis, f"{int(m.sim):,}", f"{int(m.runtime):,}",
                             pct(m.rel_error, True), _s(busy.sim) if busy else "",
                             _s(busy.runtime) if busy else "", pct(busy.rel_error, True) if busy else ""])
    if rows:
        doc.table(["config", "pair", "model from", "bytes model", "bytes runtime", "error", "busy model",
                   "busy runtime", "error"], rows, ["l", "l", "l"] + ["r"] * 6)
    else:
        doc.paragraph("No config moved blocks between tiers.")

    doc.heading("Where TTFT goes")
    doc.paragraph("Share of TTFT spent queueing for the engine, loading the cached prefix and computing, over the "
                  "served requests (each part's seconds summed over requests / the parts' sum), measured by the "
                  "runtime / predicted by the model.")
    rows = []
    for c in comparisons:
        shares = _shares(c)
        meas, pred = shares["measured"], shares["predicted"]
        rows.append([c.config, *(f"{pct(meas[part])} / {pct(pred[part])}" for part in TTFT_PARTS),
                     f"{_s(meas['mean_ttft_s'])} / {_s(pred['mean_ttft_s'])}"])
    doc.table(["config", *TTFT_PARTS, "mean TTFT"], rows)

    out.mkdir(parents=True, exist_ok=True)
    _figures(doc, comparisons, out, t)
    md, html = out / "report.md", out / "report.html"
    md.write_text(doc.markdown())
    html.write_text(doc.html())
    return md, html
