"""Eviction policies, one per module, found through a registry (never an if/elif chain).

A module in this package registers its class with :func:`register`; :func:`get_policy` and
:func:`policy_names` import every module of the package once, so adding a policy is adding one file
here (and one YAML option under ``conf/policy/``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError

__all__ = ["NEVER", "Policy", "PolicyInvariantError", "get_policy", "policy_names", "register"]

_REGISTRY: dict[str, type[Policy]] = {}
_loaded = False

P = TypeVar("P", bound=type[Policy])


def register(name: str) -> Callable[[P], P]:
    """Class decorator: register a :class:`Policy` subclass under ``name``."""

    def deco(cls: P) -> P:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"policy {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def policy_names() -> list[str]:
    """Names of every registered policy, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get_policy(name: str) -> type[Policy]:
    """The policy class registered as ``name``; ``KeyError`` naming the known ones if absent."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
