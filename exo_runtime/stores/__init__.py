"""Stores, one per storage medium, each in its own module, found through a registry by medium.

``cuda`` (device memory), ``pinned`` (page-locked host memory), ``shm`` (POSIX shared memory), ``ram``
(ordinary memory), ``file`` (a pre-allocated file with O_DIRECT I/O). Adding a medium is one module
here that decorates its class with :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from exo_runtime.stores.base import Footprint, Store, StoreFull, StoreSettings

__all__ = ["Footprint", "Store", "StoreFull", "StoreSettings", "media", "register", "store_class"]

_REGISTRY: dict[str, type[Store]] = {}
_loaded = False

S = TypeVar("S", bound=type[Store])


def register(cls: S) -> S:
    """Class decorator: register a :class:`Store` under its ``medium``."""
    if cls.medium in _REGISTRY and _REGISTRY[cls.medium] is not cls:
        raise ValueError(f"store for medium {cls.medium!r} registered twice")
    _REGISTRY[cls.medium] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "slab"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def media() -> list[str]:
    """Every medium with a registered store, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def store_class(medium: str) -> type[Store]:
    """The store registered for ``medium``; ``KeyError`` naming the known ones if absent."""
    _load_all()
    try:
        return _REGISTRY[medium]
    except KeyError:
        raise KeyError(f"no store for medium {medium!r}; known: {', '.join(sorted(_REGISTRY))}") from None
