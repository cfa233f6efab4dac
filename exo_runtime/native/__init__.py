"""Compiled kernels: block checksums (CRC-32C) and the fused checksum + decode of a load.

The C lives in ``fused.c`` (built by ``pip install -e .``, see ``setup.py``) and works on raw
addresses; the functions here check every tensor and size before handing addresses over, so nothing
the C reads or writes is out of bounds.

* :func:`crc32c` — the standard CRC-32C (Castagnoli) of a buffer, chained like ``zlib.crc32``.
* :func:`fused_rows` — for chosen rows of a uint8 host tensor (a store's slab or staging rows): each
  row's CRC-32C and, for a codec with a fused decoder, its float32 decode, in one pass over the bytes.
* :func:`set_simd`, :func:`set_stream_bytes` — which kernels and stores run (tests and benches; the
  results never depend on them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import exo_runtime.native._fused as _fused
except ImportError as err:  # pragma: no cover - a checkout that was never built
    raise ImportError(
        f"exo_runtime.native._fused is not built ({err}); run `pip install -e .` in the repository, "
        "which compiles exo_runtime/native/fused.c"
    ) from None

__all__ = ["crc32c", "features", "fused_decoder", "fused_rows", "l3_cache_bytes", "set_simd", "set_stream_bytes"]

_CAST_KINDS = {"fp32": (1, 4), "fp16": (2, 2), "bf16": (3, 2)}
"""Cast codecs with a fused decoder: name -> (kind in fused.c, encoded bytes per element)."""
_INT8 = 4


def features() -> dict[str, bool]:
    """Which fast kernels this CPU runs (SSE4.2 crc32, AVX2 + F16C) and whether they are in use."""
    out: dict[str, bool] = _fused.features()
    return out


def set_simd(on: bool) -> bool:
    """Use the fast kernels where the CPU has them (``True``, the default) or portable C; returns the old setting.

    The two give identical results; tests run both.
    """
    return bool(_fused.set_simd(on))


def set_stream_bytes(nbytes: int) -> int:
    """Write a :func:`fused_rows` output of at least ``nbytes`` with non-temporal stores; returns the old value.

    Such stores skip the caches (and the read of every output line a normal store makes): right for an
    output too large to stay in cache for its reader. The default is half this CPU's L3 cache
    (:func:`l3_cache_bytes`), 16 MiB where that is unknown. The results are the same either way.
    """
    return int(_fused.set_stream_bytes(nbytes))


def l3_cache_bytes(cpu_sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int | None:
    """The L3 cache of CPU 0 in bytes (Linux sysfs: what a core really shares), or ``None`` if unknown."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for index in sorted(cpu_sysfs.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "3":
                continue
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if size[-1:] in units and size[:-1].isdigit():
            return int(size[:-1]) * units[size[-1]]
        if size.isdigit():
            return int(size)
    return None


def crc32c(data: torch.Tensor | bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """The CRC-32C of ``data``'s bytes, continuing from ``crc`` (chained as zlib's CRC-32 is).

    ``data`` is a contiguous CPU tensor or anything that exposes a buffer. Chaining: the checksum of
    ``a + b`` is the checksum of ``b`` continuing from that of ``a``.

    Raises:
        ValueError: a tensor that is not on the CPU or not contiguous.
    """
    if isinstance(data, torch.Tensor):
        if data.device.type != "cpu" or not data.is_contiguous():
            raise ValueError("crc32c needs a contiguous CPU tensor")
        return int(_fused.crc32c(data.data_ptr(), data.numel() * data.element_size(), crc))
    arr = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if not arr.flags.c_contiguous:
        raise ValueError("crc32c needs a contiguous buffer")
    return int(_fused.crc32c(arr.ctypes.data, arr.nbytes, crc))


def fused_decoder(codec: Any) -> tuple[int, ...] | None:
    """The fused decoder of ``codec`` as ``(kind, group, scale_offset, scale_bytes)``, or ``None`` when it has none.

    ``fp32``, ``fp16``, ``bf16`` and ``int8`` have one, provided their block layout is the one the C
    assumes (checked here against the codec's own sizes); any other codec is decoded by torch.
    """
    name, elements, nbytes = codec.name, codec.elements, codec.nbytes
    if name in _CAST_KINDS:
        kind, width = _CAST_KINDS[name]
        return (kind, 1, 0, 0) if nbytes == elements * width else None
    if name == "int8":
        scale_bytes = torch.empty(0, dtype=codec.scale_dtype).element_size()
        groups = -(-elements // codec.group)
        if codec.data_bytes == elements and nbytes == elements + groups * scale_bytes and scale_bytes in (2, 4):
            return (_INT8, codec.group, codec.data_bytes, scale_bytes)
    return None


def _host_rows(t: torch.Tensor, what: str) -> None:
    if t.device.type != "cpu" or t.dtype != torch.uint8 or t.dim() != 2 or (t.shape[1] > 1 and t.stride(1) != 1):
        raise ValueError(f"{what} must be a 2-D uint8 CPU tensor with contiguous rows")


def fused_rows(
    src: torch.Tensor,
    which: Sequence[int],
    nbytes: int,
    codec: Any = None,
    out: torch.Tensor | None = None,
    check: bool = True,
) -> list[int] | None:
    """Checksum rows ``src[which[i]]`` and decode them into ``out[i]``, in one pass over their bytes.

    Args:
        src: uint8 host rows (``(rows, width)``, each row contiguous): a slab or staging rows.
        which: the rows to read, in order.
        nbytes: bytes of each row to checksum (the block: ``slot_bytes``).
        codec: decode with this codec's fused decoder (see :func:`fused_decoder`); ``None``: checksum only.
        out: float32 ``(>= len(which), codec.elements)``, contiguous; required with ``codec``.
        check: compute checksums (``False``: decode only).

    Returns:
        Each row's CRC-32C of its first ``nbytes``, or ``None`` when ``check`` is false.

    Raises:
        ValueError: a tensor of the wrong kind or size, a row index out of range, or a codec with no
            fused decoder.
    """
    _host_rows(src, "src")
    rows, width = src.shape
    if not 0 <= nbytes <= width:
        raise ValueError(f"nbytes {nbytes} is outside the rows' width {width}")
    if any(not 0 <= i < rows for i in which):
        raise ValueError(f"a row index is outside 0..{rows - 1}")
    base, step = src.data_ptr(), src.stride(0)
    addrs = [base + i * step for i in which]
    if codec is None:
        return _fused.rows(addrs, nbytes, 0, 0, 0, 0, check)  # type: ignore[no-any-return]
    dec = fused_decoder(codec)
    if dec is None:
        raise ValueError(f"codec {codec.name} has no fused decoder")
    if codec.nbytes > nbytes:
        raise ValueError(f"a {codec.name} block is {codec.nbytes} bytes, more than the {nbytes} given")
    if (
        out is None
        or out.device.type != "cpu"
        or out.dtype != torch.float32
        or out.dim() != 2
        or out.shape[0] < len(which)
        or out.shape[1] != codec.elements
        or not out.is_contiguous()
    ):
        raise ValueError(f"out must be a contiguous float32 CPU tensor of at least {len(which)} x {codec.elements}")
    kind, group, scale_off, scale_bytes = dec
    res = _fused.rows(addrs, nbytes, kind, codec.elements, out.data_ptr(), out.stride(0) * 4, check, group,
                      scale_off, scale_bytes)
    return res  # type: ignore[no-any-return]


_l3 = l3_cache_bytes()
if _l3:  # an output larger than half of it would not stay in cache for its reader
    set_stream_bytes(_l3 // 2)
