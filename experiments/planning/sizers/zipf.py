"""Sizing ``zipf``: as many objects (whole blocks) as the target's tokens.

Pseudocode::

    objects  = ceil(target / scale / block_tokens)
    accesses = objects x zipf_reads_per_block
    popularity (alpha), request size and request rate: as configured

Every object is live: the population is the live context. Its measured value is the footprint — the
objects the stream really references, which the tail of a steep Zipf may leave a little short.
"""

from __future__ import annotations

from typing import Any

from experiments.planning.sizers import register
from experiments.planning.sizers.base import Sizer


@register
class ZipfSizer(Sizer):
    """Sizes ``zipf`` by its number of objects (see the module docstring)."""

    kind = "zipf"
    scalable = True

    def overrides(self, target_tokens: int, scale: int = 1) -> dict[str, Any]:
        """Objects and accesses for ``target_tokens / scale`` tokens."""
        objects = max(1, -(-target_tokens // (scale * self.block_tokens)))
        return {
            "workload.objects": objects,
            "workload.accesses": objects * int(self.settings.zipf_reads_per_block),
        }

    def describe(self, target_tokens: int) -> str:
        """How the objects were sized."""
        o = self.overrides(target_tokens)
        return (
            f"zipf sized by its population: {o['workload.objects']:,} objects of {self.block_tokens} tokens hold "
            f"{target_tokens:,} tokens, read {self.settings.zipf_reads_per_block} times each on average "
            f"(alpha {float(self.cfg.alpha):g}, blocks_per_request {int(self.cfg.blocks_per_request)}, "
            f"{float(self.cfg.request_rate_per_s):g} requests/s as configured)."
        )
