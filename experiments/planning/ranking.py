"""Ranking the sweep's configurations and choosing the one to recommend, with the reason in numbers.

Rule::

    rank       by p99 request latency, then recomputed tokens, then top-tier hit ratio (higher first),
               then bytes moved
    eligible   p99 within plan.p99_tolerance of the best p99
    recommend  among the eligible, the most precise codec mix — the finest codec every block passes
               through (its coarsest tier), then the mean bits over the tiers — then the best rank

Lossy compression is recommended only where it buys latency: a mix that stores fewer bits has to be
faster by more than the tolerance to win.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """The ranked sweep (``table``, best first, with ``rank`` and ``eligible``) and the choices."""

    table: pd.DataFrame
    recommended: pd.Series
    fastest: pd.Series
    baseline: pd.Series | None
    tolerance: float
    as_given: str = ""

    def reasons(self) -> list[str]:
        """Why the recommended configuration, in sentences built from the numbers."""
        r, f, t = self.recommended, self.fastest, self.table
        out = [
            f"It has a p99 latency of {_s(r.latency_p99_s)}, {_ratio(r.top_hit_ratio)} of reads hit the top tier, "
            f"{int(r.recomputed_tokens):,} tokens were recomputed and {_gb(r.bytes_moved)} moved between tiers "
            f"(rank {int(r['rank'])} of {len(t)})."
        ]
        if r.job != f.job:
            slower = (r.latency_p99_s - f.latency_p99_s) / f.latency_p99_s if f.latency_p99_s else 0.0
            out.append(
                f"The fastest configuration, {_name(f)} (p99 {_s(f.latency_p99_s)}), stores coarser data (down to "
                f"{int(f.coarsest_bits)} bits against {int(r.coarsest_bits)}) and is only {100 * slower:.1f} % faster, "
                f"within the {100 * self.tolerance:g} % tolerance: its extra compression is not worth its loss."
            )
        else:
            others = t[t.job != r.job]
            finer = others[others.coarsest_bits > r.coarsest_bits]
            if not finer.empty:
                best_finer = finer.iloc[0]
                out.append(
                    f"The best configuration that stores finer data, {_name(best_finer)} "
                    f"({int(best_finer.coarsest_bits)} bits), is "
                    f"{_slower(best_finer.latency_p99_s, r.latency_p99_s)} at p99 "
                    f"({_s(best_finer.latency_p99_s)}): more than the {100 * self.tolerance:g} % tolerance, so the "
                    "compression pays."
                )
            if len(others):
                nxt = others.iloc[0]
                out.append(
                    f"The runner-up, {_name(nxt)}, has a p99 of {_s(nxt.latency_p99_s)} and a top-tier hit ratio of "
                    f"{_ratio(nxt.top_hit_ratio)}."
                )
        if r.coarsest_bits < 16:
            exact = t[t.coarsest_bits >= 16]
            tail = (
                f"; the best configuration without quantisation is {_name(exact.iloc[0])} with a p99 of "
                f"{_s(exact.iloc[0].latency_p99_s)}."
                if not exact.empty
                else "."
            )
            out.append(
                f"Its coarsest tier stores {int(r.coarsest_bits)}-bit values (lossy: symmetric per-group absmax with "
                f"one scale per group): check the model's accuracy at that precision before adopting it{tail}"
            )
        b = self.baseline
        if b is not None and b.job != r.job:
            out.append(
                f"Against the configuration as given ({_name(b)}): p99 {_s(b.latency_p99_s)} -> "
                f"{_s(r.latency_p99_s)}, top-tier hit ratio {_ratio(b.top_hit_ratio)} -> {_ratio(r.top_hit_ratio)}, "
                f"recomputed tokens {int(b.recomputed_tokens):,} -> {int(r.recomputed_tokens):,}."
            )
        elif b is not None:
            out.append("It is the configuration as given: no swept alternative beats it.")
        elif self.as_given:
            out.append(
                f"The configuration as given ({self.as_given}) was not in the sweep (plan.policies x plan.codecs)."
            )
        return out


def _name(row: pd.Series) -> str:
    return f"policy={row.policy} codec={row.codec}"


def _ratio(x: float) -> str:
    return f"{x:.3f}"


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def rank(
    frame: pd.DataFrame,
    mixes: dict[str, Any],
    spec: Spec,
    tolerance: float,
    baseline: tuple[str, str] | None = None,
    as_given: str = "",
) -> Ranking:
    """Rank the sweep's rows and choose the recommended one (see the module docstring).

    Args:
        frame: ``sweep.parquet`` (one row per job, with ``policy``, ``codec``, ``latency_p99_s`` ...).
        mixes: the swept codec mixes by option name (to know each one's bits).
        spec: the plan's resolved hierarchy (tier names, usable tiers).
        tolerance: ``plan.p99_tolerance``.
        baseline: ``(policy, codec)`` of the configuration as given, if it was swept.
        as_given: how to name the configuration as given when it was not swept.
    """
    t = frame.copy()
    bits = {name: mix_bits(mix, spec) for name, mix in mixes.items()}
    t["coarsest_bits"] = [bits[c][0] for c in t["codec"]]
    t["mean_bits"] = [bits[c][1] for c in t["codec"]]
    t["neg_hit"] = -t["top_hit_ratio"]
    t = t.sort_values(
        ["latency_p99_s", "recomputed_tokens", "neg_hit", "bytes_moved"], kind="stable"
    ).reset_index(drop=True)
    t["rank"] = range(1, len(t) + 1)
    best = float(t["latency_p99_s"].iloc[0])
    t["eligible"] = t["latency_p99_s"] <= best * (1 + tolerance) + 1e-12
    eligible = t[t["eligible"]].sort_values(["coarsest_bits", "mean_bits", "rank"], ascending=[False, False, True])
    t = t.drop(columns=["neg_hit"])
    base = None
    if baseline is not None:
        match = t[(t["policy"] == baseline[0]) & (t["codec"] == baseline[1])]
        base = match.iloc[0] if not match.empty else None
    chosen = t[t["job"] == eligible.iloc[0]["job"]].iloc[0]
    return Ranking(t, chosen, t.iloc[0], base, tolerance, as_given)
