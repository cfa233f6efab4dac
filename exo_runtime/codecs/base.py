"""The codec interface: how a tier's blocks are stored, on real tensors.

A codec encodes the floating-point part of a batch of blocks (float32 tensors of shape
``(n, elements)``) into bytes and decodes them back. Its byte size for one block is exactly
:func:`exo_sim.codecs.encoded_bytes` for the same :class:`~exo_sim.config.CodecMixConfig` — the model's
byte math and the runtime's bytes are the same number (a test holds them together).

``encode`` returns, per block, a bound on the absolute error of any decoded element against the
value it was given (0 for a lossless codec); decoded values never stray further. Rows of encoded bytes
may be strided views into staging (rows longer than the block); only the first ``nbytes`` are touched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from exo_sim.codecs import encoded_bytes
from exo_sim.config import CodecMixConfig


class Codec(ABC):
    """One storage format for ``elements`` float32 elements per block.

    Args:
        elements: floating-point elements per block.
        mix: the codec mix (group sizes and scale bytes of the integer codecs).

    Raises:
        ConfigError: when the runtime cannot store the mix's parameters.
    """

    name: ClassVar[str] = ""
    lossless: ClassVar[bool] = False
    """Whether decode(encode(x)) == x bit for bit for every float32 x."""

    def __init__(self, elements: int, mix: CodecMixConfig) -> None:
        self.elements = elements
        self.nbytes = encoded_bytes(self.name, elements, mix)

    @abstractmethod
    def encode(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` (``(n, elements)`` float32) into ``out[:, :nbytes]`` (uint8).

        Returns:
            float64 tensor ``(n,)``: per block, the bound on ``|decoded - x|`` over its elements.
        """

    @abstractmethod
    def decode(self, data: torch.Tensor, out: torch.Tensor) -> None:
        """Decode ``data[:, :nbytes]`` (uint8) into ``out`` (``(n, elements)`` float32, contiguous)."""


def write_bytes(out: torch.Tensor, start: int, values: torch.Tensor) -> None:
    """Copy the bytes of ``values`` (``(n, ...)``, contiguous) into ``out[:, start:...]``."""
    n = values.shape[0]
    raw = values.reshape(n, -1).view(torch.uint8)
    out[:, start : start + raw.shape[1]].copy_(raw)


def read_bytes(data: torch.Tensor, start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """``count`` values of ``dtype`` per row, from ``data[:, start:...]`` (a contiguous copy)."""
    size = torch.empty(0, dtype=dtype).element_size()
    n = data.shape[0]
    buf = torch.empty((n, count * size), dtype=torch.uint8)
    buf.copy_(data[:, start : start + count * size])
    return buf.view(dtype)
