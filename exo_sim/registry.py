"""Registries: one family of interchangeable classes (policies, workloads, stores, codecs...) by name.

Every implementation lives in its own module of the family's package and registers itself with a
class decorator; the registry imports the package's modules the first time it is asked for a name, so
adding an implementation is adding one file — never an if/elif chain over kinds.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(Generic[T]):
    """Classes of one family, keyed by a class attribute.

    Args:
        family: what the classes are, for messages (``"policy"``).
        key: the class attribute that names each class (``"name"``, ``"kind"``, ``"medium"``).
        package: the package whose modules register themselves (imported lazily); ``None`` when the
            classes are all defined beside the registry.
        skip: modules of the package that hold no implementation (base classes, shared helpers).
    """

    def __init__(self, family: str, key: str, package: str | None = None, skip: Iterable[str] = ("base",)) -> None:
        self.family = family
        self.key = key
        self.package = package
        self.skip = frozenset(skip)
        self._classes: dict[str, type[T]] = {}
        self._loaded = package is None

    def register(self, cls: C) -> C:
        """Class decorator: register ``cls`` under the value of its key attribute."""
        name = getattr(cls, self.key)
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.family} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    def register_as(self, name: str) -> Callable[[C], C]:
        """Class decorator: set the key attribute to ``name`` and register the class."""

        def deco(cls: C) -> C:
            setattr(cls, self.key, name)
            return self.register(cls)

        return deco

    def _load(self) -> None:
        if self._loaded or self.package is None:
            return
        self._loaded = True
        path = importlib.import_module(self.package).__path__
        for info in pkgutil.iter_modules(path):
            if info.name not in self.skip:
                importlib.import_module(f"{self.package}.{info.name}")

    def unregister(self, name: str) -> None:
        """Forget the class registered as ``name`` (a plug-in's teardown); ``KeyError`` if there is none."""
        del self._classes[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; ``KeyError`` naming the known ones if there is none."""
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.family} {name!r}; known: {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes
