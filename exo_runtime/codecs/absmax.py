"""Symmetric per-group absmax quantisation, shared by ``int8`` and ``int4``.

Per block, elements are cut into groups of ``group_size`` consecutive elements (the last group may be
shorter). Each group stores one scale ``s = absmax / qmax`` (rounded to the scale's format: fp16 for
``scale_bytes = 2``, fp32 for 4) and each element as ``q = clamp(round(x / s), -qmax, qmax)``;
decoding is ``q * s``. Layout of one block: the quantised data of every group in order, then every
scale — exactly :func:`exo_sim.codecs.encoded_bytes` bytes.

Error bound per group: ``max(s / 2, absmax - qmax * s)`` — half a step for a rounded element, and
what clamping can lose when rounding the scale made it a little small (a zero scale, from an
underflowing fp16, decodes the group to zeros: an error of at most its absmax). A relative slack of
``2^-20`` covers float32 arithmetic. The block's bound is its largest group's.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from exo_runtime.codecs.base import Codec, read_bytes, write_bytes
from exo_sim.codecs import group_size
from exo_sim.config import CodecMixConfig
from exo_sim.errors import ConfigError

SCALE_DTYPES = {2: torch.float16, 4: torch.float32}
"""How the runtime stores a scale of ``codec.scale_bytes`` bytes."""

SLACK = 1.0 + 2.0**-20


class AbsmaxCodec(Codec):
    """Grouped symmetric quantisation to ``bits`` bits (see the module docstring)."""

    bits: ClassVar[int] = 8
    qmax: ClassVar[int] = 127

    def __init__(self, elements: int, mix: CodecMixConfig) -> None:
        super().__init__(elements, mix)
        scale_bytes = int(mix.scale_bytes)
        if scale_bytes not in SCALE_DTYPES:
            raise ConfigError(
                "codec.scale_bytes",
                f"is {scale_bytes}; the runtime stores {self.name} scales as fp16 (2) or fp32 (4)",
            )
        self.scale_dtype = SCALE_DTYPES[scale_bytes]
        self.group = group_size(self.name, mix)
        self.full_groups, self.rest = divmod(elements, self.group)
        self.groups = self.full_groups + (1 if self.rest else 0)
        self.data_bytes = self.nbytes - self.groups * scale_bytes

    # ------------------------------------------------------------------ quantisation
    def _scales(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group absmax and stored scale (as float32), both ``(n, groups)``."""
        n = x.shape[0]
        g, full = self.group, self.full_groups
        parts = []
        if full:
            parts.append(x[:, : full * g].reshape(n, full, g).abs().amax(dim=2))
        if self.rest:
            parts.append(x[:, full * g :].abs().amax(dim=1, keepdim=True))
        absmax = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        scale = (absmax / self.qmax).to(self.scale_dtype).to(torch.float32)
        return absmax, scale

    def _quantise(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``clamp(round(x / s))`` as int8, ``(n, elements)``."""
        n = x.shape[0]
        g, full = self.group, self.full_groups
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.empty((n, self.elements), dtype=torch.int8)
        if full:
            body = torch.round(x[:, : full * g].reshape(n, full, g) / safe[:, :full, None])
            q[:, : full * g].view(n, full, g).copy_(body.clamp_(-self.qmax, self.qmax))
        if self.rest:
            tail = torch.round(x[:, full * g :] / safe[:, full:])
            q[:, full * g :].copy_(tail.clamp_(-self.qmax, self.qmax))
        return q

    def encode(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Quantise, pack, and store data then scales; return each block's error bound."""
        absmax, scale = self._scales(x)
        q = self._quantise(x, scale)
        write_bytes(out, 0, self._pack(q))
        write_bytes(out, self.data_bytes, scale.to(self.scale_dtype))
        bound = torch.maximum(0.5 * scale, absmax - self.qmax * scale).amax(dim=1)
        return bound.to(torch.float64) * SLACK

    def decode(self, data: torch.Tensor, out: torch.Tensor) -> None:
        """Unpack, then ``q * s`` group by group into ``out``."""
        n = data.shape[0]
        g, full = self.group, self.full_groups
        scale = read_bytes(data, self.data_bytes, self.groups, self.scale_dtype).to(torch.float32)
        q = self._unpack(data, n)
        if full:
            torch.mul(
                q[:, : full * g].reshape(n, full, g),
                scale[:, :full, None],
                out=out[:, : full * g].view(n, full, g),
            )
        if self.rest:
            torch.mul(q[:, full * g :], scale[:, full:], out=out[:, full * g :])

    # ------------------------------------------------------------------ packing
    @abstractmethod
    def _pack(self, q: torch.Tensor) -> torch.Tensor:
        """``(n, data_bytes)`` uint8 from int8 values ``(n, elements)``."""

    @abstractmethod
    def _unpack(self, data: torch.Tensor, n: int) -> torch.Tensor:
        """Int values ``(n, elements)`` (any integer or float dtype) from ``data[:, :data_bytes]``."""
