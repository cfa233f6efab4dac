"""Checksums of blocks: CRC-32C at birth, on every write, checked on every read.

Every block gets a CRC-32C (Castagnoli, :func:`exo_runtime.native.crc32c`) of its birth
representation (float32 elements then raw bytes, which is exactly its ``fp32`` encoding) when it is
born. Every copy of it in a tier records the CRC-32C of the bytes written there; a read must give
those bytes back bit for bit. A copy whose codecs were all lossless must moreover equal its birth
checksum. With ``integrity=full`` decoded values are also compared with regenerated birth data against
the copy's accumulated error bound. A load computes the checksum in the same pass that decodes the
block (:func:`exo_runtime.native.fused_rows`).
"""

from __future__ import annotations

import torch

from exo_runtime.native import crc32c, fused_rows

INTEGRITY_MODES = ("off", "checksum", "full")


def row_crcs(rows: torch.Tensor, nbytes: int, which: list[int] | None = None) -> list[int]:
    """CRC-32C of the first ``nbytes`` of each row of a uint8 host tensor (or of rows ``which``)."""
    out = fused_rows(rows, range(rows.shape[0]) if which is None else which, nbytes)
    assert out is not None
    return out


def birth_crcs(x: torch.Tensor, raw: torch.Tensor | None, raw_bytes: int) -> list[int]:
    """CRC-32C of each block's birth representation: float32 elements, then raw bytes."""
    xs = x.contiguous().view(torch.uint8)
    out = row_crcs(xs, xs.shape[1])
    if raw is not None and raw_bytes:
        out = [crc32c(raw[i, :raw_bytes].contiguous(), c) for i, c in enumerate(out)]
    return out
