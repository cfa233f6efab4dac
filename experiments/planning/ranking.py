"""Ranking the sweep's configurations and choosing the one to recommend, with the reason in numbers.

Rule::

    rank       by refused requests (fewer first), then time to first token (TTFT) p99, then TTFT p50,
               then recomputed tokens, then the prefix hit ratio (hit tokens / prompt tokens, higher
               first), then bytes moved
    eligible   refusing no more requests than the best, and TTFT p99 within plan.p99_tolerance of its
    budget     where accuracy was measured (plan.accuracy_budget), only mixes within the budget are
               eligible, the tolerance counted from the best of them; if none is, the budget is not applied
    recommend  among the eligible, the most precise codec mix — the finest codec every block passes
               through (its coarsest tier), then the mean bits over the tiers — then the best rank

A refused request (its context needs more blocks than the top tier gives one request: a server could
not run it) has no TTFT, so a configuration that refuses more requests has its TTFT over fewer of them
and is not comparable on TTFT: it ranks after any that refuses fewer. Lossy compression is recommended
only where it buys TTFT: a mix that stores fewer bits has to be faster by more than the tolerance to win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from exo_sim.codecs import CODECS
from exo_sim.spec import Spec
from experiments.planning.units import seconds as _s
from experiments.planning.units import slower as _slower


def mix_bits(mix: Any, spec: Spec) -> tuple[int, float]:
    """``(coarsest, mean)`` bits per element over ``spec``'s usable tiers under codec mix ``mix``."""
    bits = [
        CODECS[str(mix.per_tier.get(t.name, mix.default))].bits_per_element for t in spec.tiers if t.usable
    ]
    return min(bits), sum(bits) / len(bits)


@dataclass
class Ranking:
    """The ranked sweep (``table``, best first, with ``rank`` and ``eligible``) and the choices.

    ``tiers`` names the usable tiers, top first: the table has ``hit_ratio_tokens_<tier>`` for each
    when the planner added them (prefix hit tokens found in that tier / prompt tokens).
    """

    table: pd.DataFrame
    recommended: pd.Series
    fastest: pd.Series
    baseline: pd.Series | None
    tolerance: float
    as_given: str = ""
    tiers: tuple[str, ...] = ()
    accuracy: list[str] = field(default_factory=list)
    """Sentences on the measured accuracy (or that it was not measured), appended to :meth:`reasons`."""

    def by_tier(self, row: pd.Series) -> str:
        """``row``'s prefix hit ratio per tier (``vram 0.412, shared 0.087``), or ``""`` when not known."""
        cols = [(t, f"hit_ratio_tokens_{t}") for t in self.tiers]
        known = [(t, row[c]) for t, c in cols if c in row.index and pd.notna(row[c])]
        return ", ".join(f"{t} {_ratio(float(v))}" for t, v in known)

    def reasons(self) -> list[str]:
        """Why the recommended configuration, in sentences built from the numbers."""
        r, f, t = self.recommended, self.fastest, self.table
        where = self.by_tier(r)
        out = [
            f"It has a TTFT (time to first token) p99 of {_s(r.ttft_p99_s)} and p50 of {_s(r.ttft_p50_s)}; "
            f"{_ratio(r.hit_ratio_tokens)} of prompt tokens were found cached"
            + (f" ({where})" if where else "")
            + f", {int(r.recomputed_tokens):,} tokens were recomputed, {_int(r.stranded_blocks)} blocks stranded "
            f"and {_gb(r.bytes_moved)} moved between tiers (rank {int(r['rank'])} of {len(t)})."
        ]
        refused = int(r.requests_refused)
        if refused:
            out.append(
                f"{refused:,} of its {int(r.requests):,} requests ({100 * refused / max(1, int(r.requests)):.1f} %) "
                "were refused: their context needs more blocks than the top tier can give one request, so a server "
                "could not run them; its TTFT is over the requests that ran."
            )
        more = t[t.requests_refused > refused]
        if len(more):
            quick = more[more.ttft_p99_s < r.ttft_p99_s]
            out.append(
                f"{len(more)} configuration(s) refuse more requests and rank after it whatever their TTFT"
                + (
                    f" (the quickest, {_name(quick.iloc[0])}, has a TTFT p99 of {_s(quick.iloc[0].ttft_p99_s)} "
                    f"but refuses {int(quick.iloc[0].requests_refused):,}: a TTFT over fewer requests is not "
                    "comparable)"
                    if len(quick)
                    else ""
                )
                + "."
            )
        if r.job != f.job:
            slower = (r.ttft_p99_s - f.ttft_p99_s) / f.ttft_p99_s if f.ttft_p99_s else 0.0
            out.append(
                f"The best-ranked configuration, {_name(f)} (TTFT p99 {_s(f.ttft_p99_s)}), stores coarser data "
                f"(down to {int(f.coarsest_bits)} bits against {int(r.coarsest_bits)}) and is only "
                f"{100 * slower:.1f} % faster at p99, within the {100 * self.tolerance:g} % tolerance: its extra "
                "compression is not worth its loss."
            )
        else:
            others = t[t.job != r.job]
            finer = others[others.coarsest_bits > r.coarsest_bits]
            if not finer.empty:
                best_finer = finer.iloc[0]
                worse = (
                    f"{_slower(best_finer.ttft_p99_s, r.ttft_p99_s)} at TTFT p99 ({_s(best_finer.ttft_p99_s)}): "
                    f"more than the {100 * self.tolerance:g} % tolerance"
                    if int(best_finer.requests_refused) <= refused
                    else f"refuses {int(best_finer.requests_refused):,} requests against {refused:,}"
                )
                out.append(
                    f"The best configuration that stores finer data, {_name(best_finer)} "
                    f"({int(best_finer.coarsest_bits)} bits), {worse}, so the compression pays."
                )
            if len(others):
                nxt = others.iloc[0]
                out.append(
                    f"The runner-up, {_name(nxt)}, has a TTFT p99 of {_s(nxt.ttft_p99_s)} and p50 of "
                    f"{_s(nxt.ttft_p50_s)}, and a prefix hit ratio of {_ratio(nxt.hit_ratio_tokens)}."
                )
        if r.coarsest_bits < 16:
            exact = t[t.coarsest_bits >= 16]
            tail = "."
            if not exact.empty:
                e = exact.iloc[0]
                tail = (
                    f"; the best configuration without quantisation is {_name(e)} with a TTFT p99 of "
                    f"{_s(e.ttft_p99_s)}"
                    + (f", refusing {int(e.requests_refused):,} requests." if int(e.requests_refused) else ".")
                )
            check = (
                "see its measured accuracy below" if self.accuracy else "check the model's accuracy at that precision"
            )
            out.append(
                f"Its coarsest tier stores {int(r.coarsest_bits)}-bit values (lossy: symmetric per-group absmax with "
                f"one scale per group): {check} before adopting it{tail}"
            )
        b = self.baseline
        if b is not None and b.job != r.job:
            out.append(
                f"Against the configuration as given ({_name(b)}): TTFT p99 {_s(b.ttft_p99_s)} -> "
                f"{_s(r.ttft_p99_s)}, p50 {_s(b.ttft_p50_s)} -> {_s(r.ttft_p50_s)}, prefix hit ratio "
                f"{_ratio(b.hit_ratio_tokens)} -> {_ratio(r.hit_ratio_tokens)}, recomputed tokens "
                f"{int(b.recomputed_tokens):,} -> {int(r.recomputed_tokens):,}"
                + (
                    f", refused requests {int(b.requests_refused):,} -> {refused:,}"
                    if int(b.requests_refused) or refused
                    else ""
                )
                + "."
            )
        elif b is not None:
            out.append("It is the configuration as given: no swept alternative beats it.")
        elif self.as_given:
            out.append(
                f"The configuration as given ({self.as_given}) was not in the sweep (plan.policies x plan.codecs)."
            )
        return out + self.accuracy


def _name(row: pd.Series) -> str:
    return f"policy={row.policy} codec={row.codec}"


def _ratio(x: float) -> str:
    return f"{x:.3f}"


def _int(x: Any) -> str:
    return f"{int(x):,}" if pd.notna(x) else "?"


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def _with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the columns the ranking reads, from older names or neutral values when absent."""
    t = frame.copy()
    for q in ("p50", "p95", "p99"):
        if f"ttft_{q}_s" not in t and f"latency_{q}_s" in t:
            t[f"ttft_{q}_s"] = t[f"latency_{q}_s"]
    if "ttft_p50_s" not in t:
        t["ttft_p50_s"] = t["ttft_p99_s"]
    for col in ("ttft_p50_s", "ttft_p99_s"):  # no TTFT (every request refused): last on TTFT
        t[col] = pd.to_numeric(t[col], errors="coerce").fillna(math.inf)
    defaults = {"requests_refused": 0, "stranded_blocks": 0, "recomputed_tokens": 0, "bytes_moved": 0}
    for col, value in defaults.items():
        t[col] = pd.to_numeric(t[col], errors="coerce").fillna(value) if col in t else value
    if "hit_ratio_tokens" not in t or t["hit_ratio_tokens"].isna().all():
        t["hit_ratio_tokens"] = t.get("top_hit_ratio", 0.0)
    t["hit_ratio_tokens"] = pd.to_numeric(t["hit_ratio_tokens"], errors="coerce").fillna(0.0)
    return t


def rank(
    frame: pd.DataFrame,
    mixes: dict[str, Any],
    spec: Spec,
    tolerance: float,
    baseline: tuple[str, str] | None = None,
    as_given: str = "",
    admitted: dict[str, bool] | None = None,
) -> Ranking:
    """Rank the sweep's rows and choose the recommended one (see the module docstring).

    Args:
        frame: ``sweep.parquet`` (one row per job, with ``policy``, ``codec``, ``ttft_p99_s``,
            ``ttft_p50_s``, ``requests_refused``, ``hit_ratio_tokens`` ...).
        mixes: the swept codec mixes by option name (to know each one's bits).
        spec: the plan's resolved hierarchy (tier names, usable tiers).
        tolerance: ``plan.p99_tolerance`` (on TTFT p99).
        baseline: ``(policy, codec)`` of the configuration as given, if it was swept.
        as_given: how to name the configuration as given when it was not swept.
        admitted: codec mix name -> within the accuracy budget (``None``: accuracy not measured, no filter).
    """
    t = _with_defaults(frame)
    bits = {name: mix_bits(mix, spec) for name, mix in mixes.items()}
    t["coarsest_bits"] = [bits[c][0] for c in t["codec"]]
    t["mean_bits"] = [bits[c][1] for c in t["codec"]]
    t["neg_hit"] = -t["hit_ratio_tokens"]
    t = t.sort_values(
        ["requests_refused", "ttft_p99_s", "ttft_p50_s", "recomputed_tokens", "neg_hit", "bytes_moved"], kind="stable"
    ).reset_index(drop=True)
    t["rank"] = range(1, len(t) + 1)
    best = float(t["ttft_p99_s"].iloc[0])
    fewest = t["requests_refused"].iloc[0]
    t["eligible"] = (t["requests_refused"] <= fewest) & (t["ttft_p99_s"] <= best * (1 + tolerance) + 1e-12)
    if admitted is not None:
        t["within_budget"] = [bool(admitted.get(str(c), False)) for c in t["codec"]]
        if t["within_budget"].any():
            ok = t[t["within_budget"]]  # the tolerance counts from the best row within the budget
            t["eligible"] = (
                t["within_budget"]
                & (t["requests_refused"] <= ok["requests_refused"].iloc[0])
                & (t["ttft_p99_s"] <= float(ok["ttft_p99_s"].iloc[0]) * (1 + tolerance) + 1e-12)
            )
    eligible = t[t["eligible"]].sort_values(["coarsest_bits", "mean_bits", "rank"], ascending=[False, False, True])
    t = t.drop(columns=["neg_hit"])
    base = None
    if baseline is not None:
        match = t[(t["policy"] == baseline[0]) & (t["codec"] == baseline[1])]
        base = match.iloc[0] if not match.empty else None
    chosen = t[t["job"] == eligible.iloc[0]["job"]].iloc[0]
    tiers = tuple(x.name for x in spec.tiers if x.usable)
    return Ranking(t, chosen, t.iloc[0], base, tolerance, as_given, tiers)
