"""``fp32``, ``fp16``, ``bf16``: a plain cast of every element (round to nearest even).

Error bounds: fp32 is lossless. fp16 keeps 11 significant bits, so a normal value moves by at most
``2^-11`` of itself, a subnormal by at most ``2^-25``; a block with a value beyond fp16's largest
(65504) gets an infinite bound, since it would overflow. bf16 keeps 8 significant bits: at most
``2^-8`` of the value.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from exo_runtime.codecs import register
from exo_runtime.codecs.base import Codec, write_bytes


class CastCodec(Codec):
    """Elements stored as ``dtype`` (see the module docstring)."""

    dtype: ClassVar[torch.dtype] = torch.float32
    relative_error: ClassVar[float] = 0.0
    absolute_error: ClassVar[float] = 0.0
    largest: ClassVar[float] = float("inf")

    def encode(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Cast and copy the bytes; the bound follows from each block's largest magnitude."""
        n = x.shape[0]
        if self.dtype == torch.float32:
            write_bytes(out, 0, x)
            return torch.zeros(n, dtype=torch.float64)
        write_bytes(out, 0, x.to(self.dtype))
        absmax = x.abs().amax(dim=1).to(torch.float64)
        bound = absmax * self.relative_error + self.absolute_error
        return torch.where(absmax > self.largest, torch.full_like(bound, float("inf")), bound)

    def decode(self, data: torch.Tensor, out: torch.Tensor) -> None:
        """Copy the bytes back and widen to float32."""
        if self.dtype == torch.float32:
            out.view(torch.uint8).copy_(data[:, : self.nbytes])
            return
        narrow = torch.empty(out.shape, dtype=self.dtype)
        narrow.view(torch.uint8).copy_(data[:, : self.nbytes])
        out.copy_(narrow)


@register
class Fp32Codec(CastCodec):
    """float32, as born: lossless."""

    name = "fp32"
    lossless = True
    dtype = torch.float32


@register
class Fp16Codec(CastCodec):
    """IEEE half precision."""

    name = "fp16"
    dtype = torch.float16
    relative_error = 2.0**-11
    absolute_error = 2.0**-25
    largest = 65504.0


@register
class Bf16Codec(CastCodec):
    """bfloat16 (float32's range, 8 significant bits)."""

    name = "bf16"
    dtype = torch.bfloat16
    relative_error = 2.0**-8
    absolute_error = 2.0**-134
    largest = 3.3895313892515355e38
