"""Workloads (generators and trace readers), one per module, found through a registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError
from exo_sim.registry import Registry
from exo_sim.workloads.base import RequestChunk, Workload
from exo_sim.workloads.share import EngineShare, split_settings

__all__ = ["RequestChunk", "Workload", "make_workload", "register", "workload_schemas"]

WORKLOADS: Registry[Workload] = Registry("workload", "kind", __name__)
register = WORKLOADS.register
"""Class decorator: register a :class:`Workload` under its ``kind``."""


def workload_schemas() -> dict[str, type[WorkloadConfig]]:
    """Config dataclass of every workload kind, by kind."""
    return {kind: WORKLOADS.get(kind).schema for kind in WORKLOADS.names()}


def make_workload(
    cfg: Any, block_tokens: int, locate: Callable[[str], str | None] | None = None
) -> Workload:
    """Build and validate the workload ``cfg`` describes; :class:`ConfigError` if its kind is unknown.

    With ``workload.engines`` above 1 the workload is one engine's share of it (``workload.engine``),
    :class:`~exo_sim.workloads.share.EngineShare`: every clock that builds its workload here sees it.
    """
    kind = cfg.kind
    if kind not in WORKLOADS:
        raise ConfigError(
            "workload.kind",
            f"is {kind!r}, not a known workload ({', '.join(WORKLOADS.names())})",
            locate("workload.kind") if locate else None,
        )
    split = split_settings(cfg, locate)
    workload = WORKLOADS.get(kind)(cfg, block_tokens)
    workload.validate()
    return EngineShare(workload, split.engines, split.engine) if split.split else workload
