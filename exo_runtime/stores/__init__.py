"""Stores, one per storage medium, each in its own module, found through a registry by medium.

``cuda`` (device memory), ``pinned`` (page-locked host memory), ``shm`` (POSIX shared memory), ``ram``
(ordinary memory), ``file`` (a pre-allocated file with O_DIRECT I/O). Adding a medium is one module
here that decorates its class with :func:`register`.
"""

from __future__ import annotations

from exo_runtime.stores.base import Footprint, Store, StoreFull, StoreSettings
from exo_sim.registry import Registry

__all__ = ["Footprint", "Store", "StoreFull", "StoreSettings", "media", "register", "store_class"]

STORES: Registry[Store] = Registry("store medium", "medium", __name__, skip=("base", "slab"))
register = STORES.register
"""Class decorator: register a :class:`Store` under its ``medium``."""


def media() -> list[str]:
    """Every medium with a registered store, sorted."""
    return STORES.names()


def store_class(medium: str) -> type[Store]:
    """The store registered for ``medium``; ``KeyError`` naming the known ones if absent."""
    return STORES.get(medium)
