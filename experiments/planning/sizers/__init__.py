"""Workload sizers, one per workload kind, found through a registry.

A sizer turns a phase's target (tokens of live context) into the workload's own knobs; a workload
kind with no sizer (a trace) is used as given by :class:`~experiments.planning.sizers.base.Sizer`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from experiments.planning.sizers.base import LiveContext, Sizer

__all__ = ["LiveContext", "Sizer", "register", "sizer_for"]

_REGISTRY: dict[str, type[Sizer]] = {}
_loaded = False

S = TypeVar("S", bound=type[Sizer])


def register(cls: S) -> S:
    """Class decorator: register a :class:`Sizer` for the workload kind it names."""
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise ValueError(f"sizer for {cls.kind!r} registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def sizer_for(kind: str) -> type[Sizer]:
    """The sizer of workload ``kind``; the base (used as given) when none is registered."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base":
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return _REGISTRY.get(kind, Sizer)
