"""Codecs on real tensors, one module each, found through a registry by name.

``fp32``, ``fp16``, ``bf16`` (``cast``), ``int8`` and ``int4`` (symmetric per-group absmax, ``absmax``).
Each one's byte size equals :func:`exo_sim.codecs.encoded_bytes` for the same codec mix.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from exo_runtime.codecs.base import Codec
from exo_sim.config import CodecMixConfig

__all__ = ["Codec", "codec_names", "make_codec", "register"]

_REGISTRY: dict[str, type[Codec]] = {}
_loaded = False

C = TypeVar("C", bound=type[Codec])


def register(cls: C) -> C:
    """Class decorator: register a :class:`Codec` under its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"codec {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "absmax"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def codec_names() -> list[str]:
    """Every registered codec, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def make_codec(name: str, elements: int, mix: CodecMixConfig) -> Codec:
    """The codec ``name`` for blocks of ``elements`` float elements; ``KeyError`` if unknown."""
    _load_all()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no runtime codec {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return cls(elements, mix)
