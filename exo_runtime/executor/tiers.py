"""The executor's view of the tiers: a store and a codec per tier index, and the rows a link moves.

A bypassed tier has neither (``None``). A link's rows are as wide as the wider of its two tiers' rows,
aligned to the stricter of their alignments (an ``O_DIRECT`` file tier's rows are), so that one buffer
row can be read from the source and written to the destination as it is.
"""

from __future__ import annotations

from exo_runtime.buffers import align_up
from exo_runtime.codecs import Codec
from exo_runtime.stores import Store


class Tiers:
    """The stores and codecs the executor moves blocks between, by tier index.

    Args:
        stores: one store per tier index, ``None`` for a bypassed tier.
        codecs: one codec per tier index, ``None`` for a bypassed tier.
    """

    def __init__(self, stores: list[Store | None], codecs: list[Codec | None]) -> None:
        self.stores = stores
        self.codecs = codecs
        self.usable = [k for k, s in enumerate(stores) if s is not None]
        self.durable = [s is not None and s.durable for s in stores]
        self.cuda = any(s is not None and s.device == "cuda" for s in stores)
        """Some tier lives in GPU memory (its copies are timed with CUDA events too)."""

    def stride(self, *tiers: int) -> int:
        """Bytes of one buffer row that tiers ``tiers`` (``BIRTH``, negative, left out) all read and write."""
        stores = [self.stores[k] for k in tiers if k >= 0]
        width = max(s.row_bytes for s in stores if s is not None)
        align = max(s.row_align for s in stores if s is not None)
        return align_up(width, align) if align > 1 else width

    def widest(self) -> int:
        """The widest row of any usable tier, in bytes."""
        return max(self.stride(k) for k in self.usable)

    def on_cuda(self, *tiers: int) -> bool:
        """Whether any of ``tiers`` (``BIRTH`` left out) lives in GPU memory."""
        return any(k >= 0 and self.stores[k] is not None and self.stores[k].device == "cuda" for k in tiers)  # type: ignore[union-attr]
