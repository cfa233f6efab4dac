"""Workload sizers, one per workload kind, found through a registry (:class:`exo_sim.registry.Registry`).

A sizer turns a phase's target (tokens of live context) into the workload's own knobs; a workload
kind with no sizer (a trace) is used as given by :class:`~experiments.planning.sizers.base.Sizer`.
"""

from __future__ import annotations

from exo_sim.registry import Registry
from experiments.planning.sizers.base import LiveContext, Sizer

__all__ = ["SIZERS", "LiveContext", "Sizer", "register", "sizer_for"]

SIZERS: Registry[Sizer] = Registry("workload sizer", "kind", __name__)
register = SIZERS.register


def sizer_for(kind: str) -> type[Sizer]:
    """The sizer of workload ``kind``; the base (used as given) when none is registered."""
    return SIZERS.get(kind) if kind in SIZERS else Sizer
