"""Workloads (generators and trace readers), one per module, found through a registry."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError
from exo_sim.workloads.base import RequestChunk, Workload

__all__ = ["RequestChunk", "Workload", "make_workload", "register", "workload_schemas"]

_REGISTRY: dict[str, type[Workload]] = {}
_loaded = False

W = TypeVar("W", bound=type[Workload])


def register(cls: W) -> W:
    """Class decorator: register a :class:`Workload` under its ``kind``."""
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise ValueError(f"workload {cls.kind!r} registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def workload_schemas() -> dict[str, type[WorkloadConfig]]:
    """Config dataclass of every workload kind, by kind."""
    _load_all()
    return {kind: cls.schema for kind, cls in sorted(_REGISTRY.items())}


def make_workload(
    cfg: Any, block_tokens: int, locate: Callable[[str], str | None] | None = None
) -> Workload:
    """Build and validate the workload ``cfg`` describes; :class:`ConfigError` if its kind is unknown."""
    _load_all()
    kind = cfg.kind
    if kind not in _REGISTRY:
        raise ConfigError(
            "workload.kind",
            f"is {kind!r}, not a known workload ({', '.join(sorted(_REGISTRY))})",
            locate("workload.kind") if locate else None,
        )
    workload = _REGISTRY[kind](cfg, block_tokens)
    workload.validate()
    return workload
