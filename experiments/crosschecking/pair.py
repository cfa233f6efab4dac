"""The cross-check's result type: one config's two runs in the common schema.

Kept apart from :mod:`experiments.crosschecking.suite` (which runs ``exo-run`` and imports torch) so
that the comparison, the report and their tests read it without the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class RunPair:
    """One config's two runs: the timed model's and the runtime's results (common schema)."""

    name: str
    sim_summary: dict[str, Any]
    sim_series: pd.DataFrame
    sim_requests: pd.DataFrame
    runtime_summary: dict[str, Any]
    runtime_series: pd.DataFrame
    runtime_requests: pd.DataFrame
    runtime_makespans_s: list[float]
    calibrated: dict[str, str] = field(default_factory=dict)
    """Each figure the model used -> ``calibrated on this host`` or ``assumption``."""


__all__ = ["RunPair"]
