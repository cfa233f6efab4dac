"""``int4``: symmetric per-group absmax to ``[-7, 7]``, two elements per byte, scales after.

Each value is stored as the nibble ``q + 8`` (1..15); element ``2i`` of a group in the low nibble of
byte ``i``, element ``2i + 1`` in the high one. A group with an odd number of elements pads its last
byte with the nibble 8 (zero), so every group starts on a byte — which is how
:func:`exo_sim.codecs.encoded_bytes` counts them.
"""

from __future__ import annotations

import torch

from exo_runtime.codecs import register
from exo_runtime.codecs.absmax import AbsmaxCodec


@register
class Int4Codec(AbsmaxCodec):
    """Two 4-bit values per byte; the group's scale in ``codec.scale_bytes`` bytes."""

    name = "int4"
    bits = 4
    qmax = 7

    def _pack_part(self, q: torch.Tensor, groups: int, size: int) -> torch.Tensor:
        n = q.shape[0]
        nib = (q.view(n, groups, size).to(torch.int16) + 8).to(torch.uint8)
        if size % 2:
            nib = torch.nn.functional.pad(nib, (0, 1), value=8)
        pairs = nib.view(n, groups, -1, 2)
        return (pairs[..., 0] | (pairs[..., 1] << 4)).reshape(n, -1)

    def _pack(self, q: torch.Tensor) -> torch.Tensor:
        g, full = self.group, self.full_groups
        parts = []
        if full:
            parts.append(self._pack_part(q[:, : full * g], full, g))
        if self.rest:
            parts.append(self._pack_part(q[:, full * g :], 1, self.rest))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _unpack_part(self, packed: torch.Tensor, groups: int, size: int) -> torch.Tensor:
        n = packed.shape[0]
        b = packed.reshape(n, groups, -1)
        nib = torch.stack(((b & 0x0F), (b >> 4)), dim=-1).reshape(n, groups, -1)[:, :, :size]
        return (nib.to(torch.float32) - 8.0).reshape(n, groups * size)

    def _unpack(self, data: torch.Tensor, n: int) -> torch.Tensor:
        g, full = self.group, self.full_groups
        per_full = (g + 1) // 2
        raw = torch.empty((n, self.data_bytes), dtype=torch.uint8)
        raw.copy_(data[:, : self.data_bytes])
        parts = []
        if full:
            parts.append(self._unpack_part(raw[:, : full * per_full], full, g))
        if self.rest:
            parts.append(self._unpack_part(raw[:, full * per_full :], 1, self.rest))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
