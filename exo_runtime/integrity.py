"""Checksums of blocks: CRC-32 at birth, on every write, checked on every read.

Every block gets a CRC-32 of its birth representation (float32 elements then raw bytes, which is
exactly its ``fp32`` encoding) when it is born. Every copy of it in a tier records the CRC-32 of the
bytes written there; a read must give those bytes back bit for bit. A copy whose codecs were all
lossless must moreover equal its birth checksum. With ``integrity=full`` decoded values are also
compared with regenerated birth data against the copy's accumulated error bound.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

INTEGRITY_MODES = ("off", "checksum", "full")


def row_crcs(rows: torch.Tensor, nbytes: int, which: list[int] | None = None) -> list[int]:
    """CRC-32 of the first ``nbytes`` of each row of a uint8 host tensor (or of rows ``which``)."""
    arr: Any = rows.numpy()
    if which is None:
        return [zlib.crc32(arr[i, :nbytes]) for i in range(arr.shape[0])]
    return [zlib.crc32(arr[i, :nbytes]) for i in which]


def birth_crcs(x: torch.Tensor, raw: torch.Tensor | None, raw_bytes: int) -> list[int]:
    """CRC-32 of each block's birth representation: float32 elements, then raw bytes."""
    xs: Any = x.numpy()
    rs: Any = raw.numpy() if raw is not None and raw_bytes else None
    out = []
    for i in range(xs.shape[0]):
        c = zlib.crc32(xs[i])
        if rs is not None:
            c = zlib.crc32(rs[i, :raw_bytes], c)
        out.append(c)
    return out
