"""Judging comparisons against targets: one line per config, and the suite's summary line.

Per config (:func:`verdict_line`): its decisions identical, the median of its per-request TTFT
``|e_i|`` within ``Targets.ttft_median``, its run's p99 TTFT error within ``Targets.ttft_p99`` and
its makespan error within ``Targets.makespan``.

Over the suite (:func:`suite_errors`, the one place X, Y, Z and W are computed)::

    hits identical K/N; TTFT error median X%, p99 Y%; makespan error median Z%, worst W%

K of N configs have every decision identical (per request too); X is the median over configs of
each config's median ``|e_i|``; Y the median over configs of ``|error|`` of the run's p99 TTFT; Z and
W the median and the worst over configs of ``|makespan error|``. A config with no value (no request
served) is left out of that median. The suite meets its targets (:func:`suite_misses`) when K = N,
X <= ``ttft_median``, Y <= ``ttft_p99``, Z <= ``makespan_median`` and W <= ``makespan``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.crosschecking.compare import Comparison


@dataclass(frozen=True)
class Targets:
    """The model's error targets, as fractions (0.10 is 10 %).

    Attributes:
        ttft_median: a config's median per-request ``|e_i|``; over the suite, X's bound.
        ttft_p99: ``|error|`` of a config's p99 TTFT; over the suite, Y's bound.
        makespan: ``|error|`` of a config's makespan; over the suite, the worst's (W's) bound.
        makespan_median: over the suite, the median ``|makespan error|``'s (Z's) bound.

    Raises:
        ValueError: a target that is not a positive number.
    """

    ttft_median: float = 0.10
    ttft_p99: float = 0.15
    makespan: float = 0.15
    makespan_median: float = 0.05

    def __post_init__(self) -> None:
        for name in ("ttft_median", "ttft_p99", "makespan", "makespan_median"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"target {name} must be a positive fraction, got {value!r}")


def pct(x: float, signed: bool = False) -> str:
    """A fraction as a percentage with one decimal (``n/a`` for NaN, ``inf`` for infinite)."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "+inf" if signed and x > 0 else ("-inf" if x < 0 else "inf")
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


SLACK = 1e-12
"""Added to every bound: an error that is the bound up to floating-point rounding meets it."""


def _within(x: float, bound: float) -> bool:
    return not math.isnan(x) and abs(x) <= bound + SLACK


def passes(c: Comparison, targets: Targets) -> bool:
    """Decisions identical, median ``|e_i|``, p99 TTFT error and makespan error within the targets.

    A config with no TTFT to compare (no request served) does not pass: nothing supports the claim.
    """
    return (
        c.identical
        and _within(c.ttft_median_abs_error, targets.ttft_median)
        and _within(c.ttft_p99_error, targets.ttft_p99)
        and _within(c.makespan_error, targets.makespan)
    )


def verdict_line(c: Comparison, targets: Targets) -> str:
    """One line: the config, its hits identical or what differs, its TTFT and makespan errors, PASS or FAIL.

    E.g. ``zipf: hits identical (40 requests, 612 values); TTFT median |err| 4.2%, p99 err +3.1%,
    makespan err -2.0% -> PASS``.
    """
    if c.identical:
        head = f"hits identical ({c.requests_compared} requests, {c.checked} values)"
    else:
        more = f" and {len(c.differences) - 1} more" if len(c.differences) > 1 else ""
        head = f"hits DIFFER: {c.differences[0]}{more}"
    word = "PASS" if passes(c, targets) else "FAIL"
    return (
        f"{c.config}: {head}; TTFT median |err| {pct(c.ttft_median_abs_error)}, "
        f"p99 err {pct(c.ttft_p99_error, signed=True)}, makespan err {pct(c.makespan_error, signed=True)}"
        f" -> {word}"
    )


@dataclass(frozen=True)
class SuiteErrors:
    """The suite's summary figures (fractions; NaN where no config has a value).

    Attributes:
        identical: K, configs whose decisions (per request too) are identical.
        configs: N, configs compared.
        ttft_median: X, the median over configs of each config's median ``|e_i|``.
        ttft_p99: Y, the median over configs of ``|error|`` of the run's p99 TTFT.
        makespan_median: Z, the median over configs of ``|makespan error|``.
        makespan_worst: W, the largest ``|makespan error|``.
    """

    identical: int
    configs: int
    ttft_median: float
    ttft_p99: float
    makespan_median: float
    makespan_worst: float

    def line(self) -> str:
        """``hits identical K/N; TTFT error median X%, p99 Y%; makespan error median Z%, worst W%``."""
        return (
            f"hits identical {self.identical}/{self.configs}; TTFT error median {pct(self.ttft_median)}, "
            f"p99 {pct(self.ttft_p99)}; makespan error median {pct(self.makespan_median)}, "
            f"worst {pct(self.makespan_worst)}"
        )


def _finite_abs(values: Sequence[float]) -> list[float]:
    return [abs(v) for v in values if not math.isnan(v)]


def suite_errors(comparisons: Sequence[Comparison]) -> SuiteErrors:
    """K, N, X, Y, Z and W of the suite's comparisons (see the module docstring)."""
    x = _finite_abs([c.ttft_median_abs_error for c in comparisons])
    y = _finite_abs([c.ttft_p99_error for c in comparisons])
    mk = _finite_abs([c.makespan_error for c in comparisons])
    return SuiteErrors(
        identical=sum(c.identical for c in comparisons),
        configs=len(comparisons),
        ttft_median=statistics.median(x) if x else math.nan,
        ttft_p99=statistics.median(y) if y else math.nan,
        makespan_median=statistics.median(mk) if mk else math.nan,
        makespan_worst=max(mk) if mk else math.nan,
    )


def summary_line(comparisons: Sequence[Comparison]) -> str:
    """The suite's summary line (:meth:`SuiteErrors.line` of :func:`suite_errors`)."""
    return suite_errors(comparisons).line()


def suite_misses(errors: SuiteErrors, targets: Targets) -> list[str]:
    """The suite's targets it misses, one phrase each (empty: it meets them all)."""
    misses = []
    if errors.identical != errors.configs:
        misses.append(f"hits identical on {errors.identical} of {errors.configs} configs, not all")
    for label, value, bound in (
        ("TTFT error median", errors.ttft_median, targets.ttft_median),
        ("TTFT p99 error median", errors.ttft_p99, targets.ttft_p99),
        ("makespan error median", errors.makespan_median, targets.makespan_median),
        ("makespan error worst", errors.makespan_worst, targets.makespan),
    ):
        if math.isnan(value):
            misses.append(f"{label} has no value")
        elif value > bound + SLACK:
            misses.append(f"{label} {pct(value)} > {pct(bound)}")
    return misses
