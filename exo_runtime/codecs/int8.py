"""``int8``: symmetric per-group absmax, one signed byte per element (``qmax`` 127), scales after."""

from __future__ import annotations

import torch

from exo_runtime.codecs import register
from exo_runtime.codecs.absmax import AbsmaxCodec


@register
class Int8Codec(AbsmaxCodec):
    """One int8 per element; the group's scale in ``codec.scale_bytes`` bytes."""

    name = "int8"
    bits = 8
    qmax = 127

    def _pack(self, q: torch.Tensor) -> torch.Tensor:
        return q.view(torch.uint8)

    def _unpack(self, data: torch.Tensor, n: int) -> torch.Tensor:
        q = torch.empty((n, self.elements), dtype=torch.int8)
        q.view(torch.uint8).copy_(data[:, : self.elements])
        return q.to(torch.float32)
