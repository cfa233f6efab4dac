"""Codecs on real tensors, one module each, found through a registry by name.

``fp32``, ``fp16``, ``bf16`` (``cast``), ``int8`` and ``int4`` (symmetric per-group absmax, ``absmax``).
Each one's byte size equals :func:`exo_sim.codecs.encoded_bytes` for the same codec mix.
"""

from __future__ import annotations

from exo_runtime.codecs.base import Codec
from exo_sim.config import CodecMixConfig
from exo_sim.registry import Registry

__all__ = ["Codec", "codec_names", "make_codec", "register"]

CODECS: Registry[Codec] = Registry("runtime codec", "name", __name__, skip=("base", "absmax"))
register = CODECS.register
"""Class decorator: register a :class:`Codec` under its ``name``."""


def codec_names() -> list[str]:
    """Every registered codec, sorted."""
    return CODECS.names()


def make_codec(name: str, elements: int, mix: CodecMixConfig) -> Codec:
    """The codec ``name`` for blocks of ``elements`` float elements; ``KeyError`` if unknown."""
    return CODECS.get(name)(elements, mix)
