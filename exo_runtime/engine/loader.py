"""Feeding a cached prefix to prefill one layer at a time, so that loading overlaps compute.

:meth:`~exo_runtime.engine.model.DecoderModel.prefill` calls ``past_loader(layer)`` just before each
layer runs. Two loaders, both built from the prefix's decoded blocks (shaped
:func:`~exo_runtime.engine.model.kv_block_shape`), chosen by :func:`layer_loader`:

* On a GPU, :class:`LayerwiseLoader` copies layer ``i``'s K and V from pinned host memory to the
  device on a dedicated copy stream, ``prefetch_layers`` layers ahead of the layer being computed,
  and records one CUDA event per layer; asking for layer ``i`` makes the compute stream wait on
  that event only. So the copy of layer ``i`` runs while layer ``i - 1`` computes — LMCache's and
  vLLM's layer-wise KV loading.
* On the CPU there is nothing to overlap with: :func:`host_loader` gathers the layer when asked.

Given ``into`` (the request's :class:`~exo_runtime.engine.model.RequestKV`), either loader writes the
prefix straight into the cache's rows ``0 .. tokens`` — once — and returns views of them, which
``prefill(..., cache=into)`` recognises and does not copy again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from exo_runtime.engine.model import KV, PastLoader, RequestKV, blocks_shape, layer_kv_from_blocks, same_device


def host_loader(
    blocks: Sequence[torch.Tensor] | torch.Tensor,
    tokens: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    into: RequestKV | None = None,
) -> PastLoader:
    """A synchronous ``past_loader``: layer ``i``'s K and V gathered from ``blocks`` when asked.

    ``tokens`` keeps the first ``tokens`` of the prefix (all by default); the result is moved to
    ``device`` and ``dtype`` (the blocks' dtype by default). With ``into``, the layer is written
    into that cache's rows ``0 .. tokens`` (converted to its dtype) and views of them are returned.
    """
    if into is not None:
        keep = len(blocks) * blocks_shape(blocks)[2] if tokens is None else tokens

        def load_into(layer: int) -> KV:
            into.write_blocks(layer, blocks, keep)
            return into.layer(layer, 0, keep)

        return load_into

    def load(layer: int) -> KV:
        k, v = layer_kv_from_blocks(blocks, layer, tokens)
        return k.to(device, dtype or k.dtype), v.to(device, dtype or v.dtype)

    return load


class LayerwiseLoader:
    """A ``past_loader`` that streams a prefix's blocks to a GPU layer by layer on a copy stream.

    Construct it just before the prefill (it allocates the prefix's KV on the device and starts the
    first copies), pass it as ``past_loader``, keep it alive until the prefill returns.

    Args:
        blocks: the prefix's blocks in order, on the host, each shaped ``kv_block_shape``; blocks that
            are not in ``dtype`` or not pinned are converted and pinned once here (a copy — decode
            straight into pinned memory to avoid it).
        device: the CUDA device the model runs on.
        dtype: the model's compute dtype.
        tokens: keep the first ``tokens`` tokens of the prefix (all by default).
        prefetch_layers: how many layers ahead of the one being computed copies are issued (>= 1).
        into: the request's cache on ``device`` in ``dtype``: the prefix is copied into its rows
            ``0 .. tokens`` (the default allocates one of ``tokens``).

    Raises:
        ValueError: when ``device`` is not a CUDA device or CUDA is unavailable, for malformed
            blocks, or for an ``into`` on another device or dtype or too small.

    """

    def __init__(
        self,
        blocks: Sequence[torch.Tensor] | torch.Tensor,
        device: torch.device | str,
        dtype: torch.dtype,
        tokens: int | None = None,
        prefetch_layers: int = 1,
        into: RequestKV | None = None,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise ValueError(f"LayerwiseLoader needs a CUDA device; got {self.device} (use host_loader)")
        if prefetch_layers < 1:
            raise ValueError(f"prefetch_layers must be >= 1, got {prefetch_layers}")
        blocks_shape(blocks)
        self._blocks = [_pinned(b, dtype) for b in blocks]
        _, self.layers, self.block_tokens, heads, head_dim = self._blocks[0].shape
        total = len(self._blocks) * self.block_tokens
        self.tokens = total if tokens is None else tokens
        if not 0 <= self.tokens <= total:
            raise ValueError(f"tokens must lie in [0, {total}], got {tokens}")
        self.prefetch_layers = prefetch_layers
        self.bytes_loaded = 0
        """Bytes copied host -> device so far."""
        self._stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        if into is None:
            into = RequestKV(self.layers, heads, head_dim, max(1, self.tokens), self.device, dtype)
        elif (
            not same_device(into.device, self.device)
            or (into.dtype, into.layers) != (dtype, self.layers)
            or into.capacity_tokens < self.tokens
        ):
            raise ValueError(
                f"into is a cache of {into.layers} layers x {into.capacity_tokens} tokens on {into.device} in "
                f"{into.dtype}; the prefix needs {self.layers} x {self.tokens} on {self.device} in {dtype}"
            )
        # Allocated on the compute stream before any copy is issued, held until the loader dies.
        self._k, self._v = into.k, into.v
        for buf in self._k + self._v:
            buf.record_stream(self._stream)
        self._events = [torch.cuda.Event() for _ in range(self.layers)]
        self._stream.wait_stream(compute)  # memory the allocator just handed out may still be in use there
        self._issued = 0
        self._issue_through(prefetch_layers - 1)

    def _issue_through(self, last: int) -> None:
        """Issue the copies of every layer up to ``last`` not issued yet."""
        t = self.block_tokens
        with torch.cuda.stream(self._stream):
            while self._issued <= min(last, self.layers - 1):
                layer = self._issued
                for b, block in enumerate(self._blocks[: -(-self.tokens // t)]):
                    rows = min(t, self.tokens - b * t)  # the last block may be cut at `tokens`
                    self._k[layer][b * t : b * t + rows].copy_(block[0, layer, :rows], non_blocking=True)
                    self._v[layer][b * t : b * t + rows].copy_(block[1, layer, :rows], non_blocking=True)
                    self.bytes_loaded += 2 * block[0, layer, :rows].numel() * block.element_size()
                self._events[layer].record(self._stream)
                self._issued += 1

    def __call__(self, layer: int) -> KV:
        """Layer ``layer``'s K and V on the device, ``[kv_heads_per_rank, tokens, head_dim]``.

        Issues the copies up to ``layer + prefetch_layers`` and makes the current stream wait for
        this layer's copy only; the host does not block.
        """
        self._issue_through(layer + self.prefetch_layers)
        torch.cuda.current_stream(self.device).wait_event(self._events[layer])
        k = self._k[layer][: self.tokens].transpose(0, 1)
        v = self._v[layer][: self.tokens].transpose(0, 1)
        return k, v


def _pinned(block: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if block.device.type != "cpu":
        raise ValueError(f"LayerwiseLoader loads from host memory; a block is on {block.device}")
    if block.dtype != dtype:
        block = block.to(dtype)
    if not block.is_contiguous():
        block = block.contiguous()
    return block if block.is_pinned() else block.pin_memory()


def layer_loader(
    blocks: Sequence[torch.Tensor] | torch.Tensor,
    device: torch.device | str,
    dtype: torch.dtype,
    tokens: int | None = None,
    into: RequestKV | None = None,
) -> PastLoader:
    """The loader for ``device``: :class:`LayerwiseLoader` on a CUDA device, :func:`host_loader` otherwise.

    With ``into`` (the request's cache), the prefix is written into it once (see the module docstring).
    """
    if torch.device(device).type == "cuda":
        return LayerwiseLoader(blocks, device, dtype, tokens, into=into)
    return host_loader(blocks, tokens, device, dtype, into=into)
