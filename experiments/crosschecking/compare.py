"""Comparing one config's two runs: decisions must be identical; time is the model's relative error.

Decisions (they come from the one decision core, so any difference is a bug, and is named): the
requests, accesses, new and recomputed blocks; per tier its hits, misses, promotions, demotions,
evictions, drops, writes, final, peak and mean occupancy; the bytes moved between each pair of tiers
as the core counts them; and the occupancy of every tier at every sampled access index of
``timeseries.parquet`` (both clocks sample at the same indices); and, when the model ran the serial
executor, the number of batches the moves were applied in (it follows from the decisions and the
runtime's staging pool, so it must match too).

Time, as ``(model - runtime) / runtime``: the makespan; request latency p50, p95, p99; per pair of
tiers (``src->dst``, as the runtime measures its copies; ``birth->dst`` for the blocks it writes where
they are born) the bytes carried and the busy time; and, to
explain errors, components the runtime meters on its own: recompute (its seeded birth of blocks)
against the model's prefill time, and codec time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from exo_sim.results import TIER_DECISION_KEYS

TOP_KEYS = ("requests", "accesses", "new_blocks", "recomputed_blocks")
"""Run-wide decision counts compared exactly."""

TIER_KEYS = TIER_DECISION_KEYS
"""Per-tier decision counts compared exactly (the mean occupancy is derived from counts alike)."""

LATENCIES = ("p50", "p95", "p99")

MAX_LISTED = 5
"""Occupancy mismatches named one by one before the rest are counted."""


@dataclass(frozen=True)
class Metric:
    """One timed quantity from both clocks.

    ``kind``: ``time`` (makespan, latency), ``link`` (a pair of tiers' bytes or busy time) or
    ``component`` (diagnostic: recompute or codec seconds). ``where`` names the pair (``ram->nvme``).
    """

    name: str
    sim: float
    runtime: float
    kind: str = "time"
    where: str = ""

    @property
    def rel_error(self) -> float:
        """``(sim - runtime) / runtime``; 0 when both are 0, infinite when only the runtime's is."""
        if self.runtime == 0:
            return 0.0 if self.sim == 0 else math.inf
        return (self.sim - self.runtime) / self.runtime


@dataclass
class Comparison:
    """One config's verdict material: decision differences (none, when identical) and timed metrics."""

    config: str
    differences: list[str] = field(default_factory=list)
    checked: int = 0
    metrics: list[Metric] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Whether every decision matched."""
        return not self.differences

    def metric(self, name: str, where: str = "") -> Metric | None:
        """The metric called ``name`` (at ``where``), if present."""
        return next((m for m in self.metrics if m.name == name and m.where == where), None)

    def error(self, name: str) -> float:
        """Relative error of a run-wide metric (NaN when absent)."""
        m = self.metric(name)
        return m.rel_error if m is not None else math.nan

    def passes(self, tolerance: float) -> bool:
        """Decisions identical and |makespan error| and |p99 error| within ``tolerance``."""
        errs = [self.error("makespan_s"), self.error("latency_p99_s")]
        return self.identical and all(abs(e) <= tolerance for e in errs if not math.isnan(e))

    def verdict(self, tolerance: float) -> str:
        """One line: decisions, makespan and p99 with their errors, PASS or FAIL."""
        if self.identical:
            head = f"decisions identical ({self.checked} values)"
        else:
            more = f" and {len(self.differences) - 1} more" if len(self.differences) > 1 else ""
            head = f"decisions DIFFER: {self.differences[0]}{more}"
        parts = [head]
        for name, label in (("makespan_s", "makespan"), ("latency_p99_s", "p99")):
            m = self.metric(name)
            if m is not None:
                parts.append(f"{label} model {_fmt_s(m.sim)} vs runtime {_fmt_s(m.runtime)} ({_pct(m.rel_error)})")
        word = "PASS" if self.passes(tolerance) else "FAIL"
        return f"{self.config}: " + "; ".join(parts) + f" -> {word}"


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if abs(x) < 1 else f"{x:.3g} s"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x * 100:+.1f}%")


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
    s_batches = (sim.get("host") or {}).get("batches")
    r_batches = (runtime.get("runtime") or {}).get("batches")
    if s_batches is not None and r_batches is not None:
        checked += 1
        if s_batches != r_batches:
            diffs.append(f"batches of moves: model {s_batches}, runtime {r_batches}")
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


def _pairs(rows: list[dict[str, Any]], bytes_key: str) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for row in rows:
        key = f"{row['src']}->{row['dst']}"
        b, t = out.get(key, (0.0, 0.0))
        out[key] = (b + float(row[bytes_key]), t + float(row["busy_s"]))
    return out


def compare_times(sim: dict[str, Any], runtime: dict[str, Any]) -> list[Metric]:
    """Makespan, latency percentiles, per-pair bytes and busy time, recompute and codec seconds."""
    out = [Metric("makespan_s", float(sim["makespan_s"]), float(runtime["makespan_s"]))]
    for q in LATENCIES:
        s, r = sim["latency_s"][q], runtime["latency_s"][q]
        if s is not None and r is not None:
            out.append(Metric(f"latency_{q}_s", float(s), float(r)))
    host = sim.get("host")
    s_pairs = _pairs(host.get("pair_usage", []) if host else sim.get("link_usage", []), "bytes_moved")
    r_pairs = _pairs(runtime.get("link_usage", []), "bytes_moved")
    births = (runtime.get("measured") or {}).get("births", {}).get("writes", [])
    r_pairs.update(_pairs([{"src": "birth", "dst": w["dst"], "bytes": w["bytes"], "busy_s": w["seconds"]}
                           for w in births], "bytes"))
    for pair in sorted(set(s_pairs) | set(r_pairs)):
        sb, st = s_pairs.get(pair, (0.0, 0.0))
        rb, rt = r_pairs.get(pair, (0.0, 0.0))
        out.append(Metric("link_bytes", sb, rb, "link", pair))
        out.append(Metric("link_busy_s", st, rt, "link", pair))
    measured = runtime.get("measured")
    if measured:
        births = measured.get("births", {})
        out.append(Metric("recompute_s", float(sim["compute"]["busy_s"]), float(births.get("generate_s", 0.0)),
                          "component"))
        codec_s = sum(float(c["encode_s"]) + float(c["decode_s"]) for c in measured.get("codecs", []))
        out.append(Metric("codec_s", float(sim["codec"]["busy_s"]), codec_s, "component"))
    return out


def compare(
    config: str,
    sim: dict[str, Any],
    runtime: dict[str, Any],
    sim_series: pd.DataFrame,
    runtime_series: pd.DataFrame,
) -> Comparison:
    """Compare one config's model and runtime results (see the module docstring)."""
    diffs, checked = compare_decisions(sim, runtime, sim_series, runtime_series)
    return Comparison(config, diffs, checked, compare_times(sim, runtime))
