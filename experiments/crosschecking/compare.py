"""Comparing one config's two runs: decisions must be identical; time is the model's relative error.

Decisions come from the one decision core, so both clocks make the same ones by construction; they
are still checked, so that a change to one clock that alters a decision fails (and is named):

* run-wide: requests, accesses, new and recomputed blocks; per tier its hits, misses, promotions,
  demotions, evictions, drops, writes, final, peak and mean occupancy; the bytes the core moved
  between each pair of tiers; the occupancy of every tier at every sampled access index;
* per request (``requests.parquet``): :data:`REQUEST_DECISIONS` — its cached tokens (its hits),
  stranded blocks, prefilled tokens, and whether it was refused.

Time, as ``(model - runtime) / runtime``:

* TTFT per request, ``e_i`` over the requests neither clock refused: its distribution, and the median
  and p99 of ``|e_i|``;
* the run's TTFT p50 and p99, and its makespan;
* per pair of tiers (``src->dst``, as the runtime measures its copies) the bytes carried and the busy
  time, against the model's ``pair_usage`` (the engine's own copies), or its ``link_usage`` where it
  has no ``pair_usage``;
* the share of TTFT spent queueing, loading the cached prefix and computing, measured (the runtime's
  requests) beside predicted (the model's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from exo_sim.results import TIER_DECISION_KEYS

if TYPE_CHECKING:
    from experiments.crosschecking.pair import RunPair

TOP_KEYS = ("requests", "accesses", "new_blocks", "recomputed_blocks")
"""Run-wide decision counts compared exactly."""

TIER_KEYS = TIER_DECISION_KEYS
"""Per-tier decision counts compared exactly (the mean occupancy is derived from counts alike)."""

REQUEST_DECISIONS = ("cached_tokens", "stranded_blocks", "prefill_tokens", "refused")
"""Per-request columns of ``requests.parquet`` that are decisions, compared request by request."""

TTFT_PARTS = ("queue", "load", "compute")
"""TTFT's parts, as ``requests.parquet`` has them (``<part>_s``)."""

MAX_LISTED = 5
"""Mismatches of one kind named one by one before the rest are counted."""

REQUEST_ERROR_COLUMNS = ("request", "model_ttft_s", "runtime_ttft_s", "error")
"""Columns of :attr:`Comparison.ttft`: one row per request neither clock refused."""


@dataclass(frozen=True)
class Metric:
    """One timed quantity from both clocks.

    ``kind``: ``ttft`` (the run's TTFT percentiles, seconds), ``time`` (makespan, seconds),
    ``link`` (a pair of tiers' ``bytes`` or busy seconds; ``where`` names the pair, ``ram->nvme``) or
    ``share`` (the fraction of TTFT spent in one part; ``where`` names the part).
    """

    name: str
    sim: float
    runtime: float
    kind: str = "time"
    where: str = ""

    @property
    def rel_error(self) -> float:
        """``(sim - runtime) / runtime``; 0 when both are 0, infinite when only the runtime's is."""
        return rel_error(self.sim, self.runtime)


def rel_error(model: float, runtime: float) -> float:
    """``(model - runtime) / runtime``: 0 when both are 0, ``±inf`` when only the runtime's is, NaN if either is."""
    if math.isnan(model) or math.isnan(runtime):
        return math.nan
    if runtime == 0:
        return 0.0 if model == 0 else math.copysign(math.inf, model)
    return (model - runtime) / runtime


@dataclass
class Comparison:
    """One config's verdict material.

    Attributes:
        config: the config's name.
        differences: every decision that differs, one sentence each (empty: identical).
        checked: decision values compared (run-wide, per tier, per link, occupancy samples, per request).
        requests_compared: requests present in both ``requests.parquet``.
        metrics: the timed quantities (:class:`Metric`).
        ttft: per-request TTFT of both clocks and ``error`` (:data:`REQUEST_ERROR_COLUMNS`).
        links_basis: what the model's side of the ``link`` metrics is: ``pair_usage`` or ``link_usage``.
    """

    config: str
    differences: list[str] = field(default_factory=list)
    checked: int = 0
    requests_compared: int = 0
    metrics: list[Metric] = field(default_factory=list)
    ttft: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REQUEST_ERROR_COLUMNS)))
    links_basis: str = "pair_usage"

    @property
    def identical(self) -> bool:
        """Whether every decision matched (run-wide, per tier, occupancy and per request)."""
        return not self.differences

    def metric(self, name: str, where: str = "") -> Metric | None:
        """The metric called ``name`` (at ``where``), if present."""
        return next((m for m in self.metrics if m.name == name and m.where == where), None)

    def error(self, name: str, where: str = "") -> float:
        """Relative error of a metric (NaN when absent)."""
        m = self.metric(name, where)
        return m.rel_error if m is not None else math.nan

    @property
    def abs_errors(self) -> np.ndarray:
        """``|e_i|``, the per-request TTFT errors' absolute values."""
        return np.abs(self.ttft["error"].to_numpy(dtype=float))

    @property
    def ttft_median_abs_error(self) -> float:
        """The median of ``|e_i|`` over the requests compared (NaN when none was served)."""
        a = self.abs_errors
        return float(np.median(a)) if len(a) else math.nan

    @property
    def ttft_p99_abs_error(self) -> float:
        """The 99th percentile of ``|e_i|`` (linear interpolation; NaN when none was served)."""
        a = self.abs_errors
        return float(np.percentile(a, 99)) if len(a) else math.nan

    @property
    def ttft_p99_error(self) -> float:
        """Relative error of the run's TTFT p99 (NaN when none was served)."""
        return self.error("ttft_p99_s")

    @property
    def makespan_error(self) -> float:
        """Relative error of the makespan."""
        return self.error("makespan_s")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def compare_decisions(
    sim: dict[str, Any], runtime: dict[str, Any], sim_series: pd.DataFrame, runtime_series: pd.DataFrame
) -> tuple[list[str], int]:
    """Every decision of the two summaries and occupancy series; return (differences, values checked).

    A difference reads like ``tier ram: evictions model 961, runtime 960``.
    """
    diffs: list[str] = []
    checked = 0
    for key in TOP_KEYS:
        checked += 1
        if not _close(sim.get(key), runtime.get(key)):
            diffs.append(f"{key}: model {sim.get(key)}, runtime {runtime.get(key)}")
    s_tiers, r_tiers = sim.get("tiers", []), runtime.get("tiers", [])
    if [t["name"] for t in s_tiers] != [t["name"] for t in r_tiers]:
        diffs.append(f"tiers: model {[t['name'] for t in s_tiers]}, runtime {[t['name'] for t in r_tiers]}")
    else:
        for s, r in zip(s_tiers, r_tiers, strict=True):
            for key in TIER_KEYS:
                checked += 1
                if not _close(s.get(key), r.get(key)):
                    diffs.append(f"tier {s['name']}: {key} model {s.get(key)}, runtime {r.get(key)}")
    s_links = {(lk["src"], lk["dst"]): lk["bytes_moved"] for lk in sim.get("links", [])}
    r_links = {(lk["src"], lk["dst"]): lk["bytes_moved"] for lk in runtime.get("links", [])}
    for pair in sorted(set(s_links) | set(r_links)):
        checked += 1
        if s_links.get(pair, 0) != r_links.get(pair, 0):
            diffs.append(
                f"bytes moved {pair[0]}->{pair[1]}: model {s_links.get(pair, 0)}, runtime {r_links.get(pair, 0)}"
            )
    series_diffs, n = compare_occupancy(sim_series, runtime_series)
    return diffs + series_diffs, checked + n


def compare_occupancy(sim: pd.DataFrame, runtime: pd.DataFrame) -> tuple[list[str], int]:
    """Occupancy (blocks) of every tier at every sampled access index; return (differences, checked)."""
    cols = ["access_index", "tier", "occupancy_blocks"]
    s = sim[cols].drop_duplicates(["access_index", "tier"], keep="last")
    r = runtime[cols].drop_duplicates(["access_index", "tier"], keep="last")
    merged = s.merge(r, on=["access_index", "tier"], how="outer", suffixes=("_sim", "_rt"), indicator=True)
    diffs: list[str] = []
    only = merged[merged["_merge"] != "both"]
    if len(only):
        first = only.iloc[0]
        side = "model" if first["_merge"] == "left_only" else "runtime"
        diffs.append(
            f"occupancy samples: {len(only)} (access index, tier) samples only in one series, first access "
            f"{int(first['access_index'])} tier {first['tier']} only in the {side}'s"
        )
    both = merged[merged["_merge"] == "both"]
    bad = both[both["occupancy_blocks_sim"] != both["occupancy_blocks_rt"]]
    for _, row in bad.head(MAX_LISTED).iterrows():
        diffs.append(
            f"occupancy of tier {row['tier']} at access {int(row['access_index'])}: "
            f"model {int(row['occupancy_blocks_sim'])}, runtime {int(row['occupancy_blocks_rt'])} blocks"
        )
    if len(bad) > MAX_LISTED:
        diffs.append(f"occupancy: {len(bad) - MAX_LISTED} more samples differ")
    return diffs, int(len(merged))


def _indexed(requests: pd.DataFrame) -> pd.DataFrame:
    """The frame indexed by its ``request`` column (its row position when it has none)."""
    if "request" in requests.columns:
        return requests.set_index("request", drop=False)
    return requests.assign(request=np.arange(len(requests))).set_index("request", drop=False)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so it prints as ``512``, not ``np.int64(512)``)."""
    return value.item() if isinstance(value, np.generic) else value


def compare_requests(sim: pd.DataFrame, runtime: pd.DataFrame) -> tuple[list[str], int, int]:
    """Per request, the decisions of :data:`REQUEST_DECISIONS`; return (differences, values checked,
    requests compared).

    A difference reads like ``request 7: cached_tokens model 512, runtime 256``; a request only one
    clock has, or a column one frame lacks, is a difference too.
    """
    s, r = _indexed(sim), _indexed(runtime)
    diffs: list[str] = []
    only_s = s.index.difference(r.index)
    only_r = r.index.difference(s.index)
    for side, only in (("model", only_s), ("runtime", only_r)):
        if len(only):
            diffs.append(f"requests: {len(only)} only in the {side}'s requests.parquet, first request {only[0]}")
    common = s.index.intersection(r.index)
    checked = 0
    for col in REQUEST_DECISIONS:
        missing = [side for side, f in (("model", s), ("runtime", r)) if col not in f.columns]
        if missing:
            diffs.append(f"requests.parquet: column {col} missing from the {' and the '.join(missing)}'s")
            continue
        a, b = s.loc[common, col], r.loc[common, col]
        checked += len(common)
        bad = common[(a != b).to_numpy()]
        for req in bad[:MAX_LISTED]:
            model: Any = s.at[req, col]
            measured: Any = r.at[req, col]
            diffs.append(f"request {req}: {col} model {_plain(model)}, runtime {_plain(measured)}")
        if len(bad) > MAX_LISTED:
            diffs.append(f"requests: {len(bad) - MAX_LISTED} more differ in {col}")
    return diffs, checked, len(common)


def ttft_errors(sim: pd.DataFrame, runtime: pd.DataFrame) -> pd.DataFrame:
    """Per request neither clock refused: both TTFTs and ``e_i = (model - runtime) / runtime``.

    Columns :data:`REQUEST_ERROR_COLUMNS`, ordered by request.
    """
    s, r = _indexed(sim), _indexed(runtime)
    common = s.index.intersection(r.index).sort_values()
    s, r = s.loc[common], r.loc[common]
    served = np.ones(len(common), dtype=bool)
    for f in (s, r):
        if "refused" in f.columns:
            served &= ~f["refused"].to_numpy(dtype=bool)
    model = s["ttft_s"].to_numpy(dtype=float)[served]
    measured = r["ttft_s"].to_numpy(dtype=float)[served]
    errors = [rel_error(float(m), float(x)) for m, x in zip(model, measured, strict=True)]
    return pd.DataFrame({
        "request": common.to_numpy()[served].astype(np.int64),
        "model_ttft_s": model,
        "runtime_ttft_s": measured,
        "error": np.asarray(errors, dtype=float),
    })


def _served_ttft(requests: pd.DataFrame) -> np.ndarray:
    served = ~requests["refused"].to_numpy(dtype=bool) if "refused" in requests.columns else slice(None)
    return requests["ttft_s"].to_numpy(dtype=float)[served]


def ttft_shares(requests: pd.DataFrame) -> dict[str, float]:
    """The share of TTFT in each part of :data:`TTFT_PARTS`, over the requests served.

    Share of a part = its seconds summed over the requests / the three parts' seconds summed. When
    the parts add up to the TTFT (no layerwise overlap of load and compute) that is its share of the
    total TTFT. NaN for every part when no request was served or the parts took no time.
    """
    served = requests[~requests["refused"].astype(bool)] if "refused" in requests.columns else requests
    sums = {p: float(served[f"{p}_s"].sum()) if f"{p}_s" in served.columns else math.nan for p in TTFT_PARTS}
    total = sum(sums.values())
    if not total > 0:
        return dict.fromkeys(TTFT_PARTS, math.nan)
    return {p: v / total for p, v in sums.items()}


def _pairs(rows: list[dict[str, Any]], bytes_key: str, busy_key: str) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for row in rows:
        key = f"{row['src']}->{row['dst']}"
        b, t = out.get(key, (0.0, 0.0))
        out[key] = (b + float(row[bytes_key]), t + float(row[busy_key]))
    return out


def model_pairs(sim: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], str]:
    """The model's (bytes, busy seconds) per ``src->dst`` and which usage they come from.

    ``pair_usage`` (top-level, or under ``host``) when the model's engine copied blocks itself;
    otherwise ``link_usage`` (per link resource and direction).
    """
    rows = sim.get("pair_usage") or (sim.get("host") or {}).get("pair_usage") or []
    if rows:
        return _pairs(rows, "bytes_moved", "busy_s"), "pair_usage"
    return _pairs(sim.get("link_usage", []), "bytes_moved", "busy_s"), "link_usage"


def runtime_pairs(runtime: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The runtime's measured (bytes, seconds) per ``src->dst``: ``measured.links``, else ``link_usage``."""
    links = (runtime.get("measured") or {}).get("links")
    if links:
        return _pairs(links, "bytes", "seconds")
    return _pairs(runtime.get("link_usage", []), "bytes_moved", "busy_s")


def compare_times(
    sim: dict[str, Any], runtime: dict[str, Any], sim_requests: pd.DataFrame, runtime_requests: pd.DataFrame
) -> tuple[list[Metric], str]:
    """Makespan, the run's TTFT p50 and p99, per-pair bytes and busy time, TTFT shares; and the
    model's links basis (see :func:`model_pairs`).

    The run's percentiles are over the requests each clock served (linear interpolation, as the
    summaries' ``ttft_s``).
    """
    out = [Metric("makespan_s", float(sim["makespan_s"]), float(runtime["makespan_s"]))]
    s_ttft, r_ttft = _served_ttft(sim_requests), _served_ttft(runtime_requests)
    if len(s_ttft) and len(r_ttft):
        for q in (50, 99):
            out.append(Metric(f"ttft_p{q}_s", float(np.percentile(s_ttft, q)), float(np.percentile(r_ttft, q)),
                              "ttft"))
    s_pairs, basis = model_pairs(sim)
    r_pairs = runtime_pairs(runtime)
    for pair in sorted(set(s_pairs) | set(r_pairs)):
        sb, st = s_pairs.get(pair, (0.0, 0.0))
        rb, rt = r_pairs.get(pair, (0.0, 0.0))
        if sb == rb == st == rt == 0:
            continue
        out.append(Metric("link_bytes", sb, rb, "link", pair))
        out.append(Metric("link_busy_s", st, rt, "link", pair))
    s_share, r_share = ttft_shares(sim_requests), ttft_shares(runtime_requests)
    for part in TTFT_PARTS:
        out.append(Metric("ttft_share", s_share[part], r_share[part], "share", part))
    return out, basis


def compare(
    config: str,
    sim: dict[str, Any],
    runtime: dict[str, Any],
    sim_series: pd.DataFrame,
    runtime_series: pd.DataFrame,
    sim_requests: pd.DataFrame,
    runtime_requests: pd.DataFrame,
) -> Comparison:
    """Compare one config's model and runtime results (see the module docstring)."""
    diffs, checked = compare_decisions(sim, runtime, sim_series, runtime_series)
    req_diffs, req_checked, n_requests = compare_requests(sim_requests, runtime_requests)
    metrics, basis = compare_times(sim, runtime, sim_requests, runtime_requests)
    return Comparison(
        config=config,
        differences=diffs + req_diffs,
        checked=checked + req_checked,
        requests_compared=n_requests,
        metrics=metrics,
        ttft=ttft_errors(sim_requests, runtime_requests),
        links_basis=basis,
    )


def compare_pair(pair: RunPair) -> Comparison:
    """:func:`compare` on a :class:`~experiments.crosschecking.pair.RunPair`.

    Reads its ``name``, ``sim_summary``, ``sim_series``, ``sim_requests``, ``runtime_summary``,
    ``runtime_series`` and ``runtime_requests``.
    """
    return compare(pair.name, pair.sim_summary, pair.runtime_summary, pair.sim_series, pair.runtime_series,
                   pair.sim_requests, pair.runtime_requests)
