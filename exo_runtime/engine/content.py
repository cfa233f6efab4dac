"""What a computed block holds under block reuse: the engine's output for that block alone.

Under ``hierarchy.reuse=block`` a block is reused on its own, wherever it lies in a request, so its
data must be a function of the block alone. Two sources, each usable as the executor's birth
source (``birth(blocks, x, raw)``), called when the batch that admits a missed block runs:

* :class:`BlockPrefill` (a ``kv_cache`` payload on an unchained workload): the model prefills the
  block's own tokens (:func:`~exo_runtime.engine.tokens.block_token_ids`) at position 0, with no
  context (position-independent caching of a chunk, as RAG KV caches do); the block is that KV.
* :class:`ChunkEmbedding` (a ``rag_chunk`` payload): the block's chunks' real text
  (:mod:`~exo_runtime.engine.chunks`) as its raw bytes, and the encoder's embedding of each chunk
  as its elements — a miss re-embeds its chunks.

Both add their compute time to a :class:`ComputeClock`, so the runtime can split a request's time
into loading and computing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from exo_runtime.engine.chunks import block_chunk_ids, chunk_bytes, chunk_text
from exo_runtime.engine.encoder import MiniLMEncoder
from exo_runtime.engine.model import DecoderModel, kv_to_blocks
from exo_runtime.engine.tokens import block_token_ids


class ComputeClock:
    """Seconds of model compute, summed (the device synchronised at each end on a GPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.s = 0.0
        self.tokens = 0
        """Tokens run through the model (or chunk tokens through the encoder)."""
        self._t0 = 0.0

    def start(self) -> None:
        """Start timing a piece of compute."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._t0 = time.perf_counter()

    def stop(self, tokens: int = 0) -> float:
        """Stop timing; add and return the seconds since :meth:`start`."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - self._t0
        self.s += dt
        self.tokens += tokens
        return dt


class BlockPrefill:
    """A KV block's data: the model's KV of the block's own tokens at position 0 (see the module doc)."""

    def __init__(self, model: DecoderModel, block_tokens: int, clock: ComputeClock, token_seed: int = 0) -> None:
        self.model = model
        self.block_tokens = block_tokens
        self.clock = clock
        self.token_seed = token_seed

    def kv_of(self, block: int) -> torch.Tensor:
        """Block ``block``'s KV, float32, shaped ``kv_block_shape`` (timed on the clock)."""
        ids = torch.from_numpy(
            block_token_ids(block, self.block_tokens, self.model.arch.vocab_size, seed=self.token_seed)
        )
        self.clock.start()
        kv = self.model.prefill(ids).kv
        out = kv_to_blocks(kv, self.block_tokens)[0].float().cpu()
        self.clock.stop(self.block_tokens)
        return out

    def birth(self, blocks: Sequence[int], x: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Fill ``x[i]`` with block ``blocks[i]``'s KV (``raw`` is unused: a KV block has no raw bytes)."""
        for i, b in enumerate(blocks):
            x[i].copy_(self.kv_of(b).reshape(-1))


class ChunkEmbedding:
    """A RAG block's data: its chunks' text bytes and the encoder's embedding of each chunk."""

    def __init__(
        self, encoder: MiniLMEncoder, chunks_per_block: int, chunk_chars: int, chunk_nbytes: int, clock: ComputeClock
    ) -> None:
        self.encoder = encoder
        self.chunks = chunks_per_block
        self.chunk_chars = chunk_chars
        self.chunk_nbytes = chunk_nbytes
        self.clock = clock

    def birth(self, blocks: Sequence[int], x: torch.Tensor, raw: torch.Tensor | None) -> None:
        """Fill ``x[i]`` with block ``blocks[i]``'s chunk embeddings and ``raw[i]`` with their text."""
        ids = [c for b in blocks for c in block_chunk_ids(b, self.chunks)]
        texts = [chunk_text(c, self.chunk_chars) for c in ids]
        tokens = self.encoder.tokenize(texts)
        self.clock.start()
        step = self.encoder.batch_size
        emb = torch.cat([self.encoder.encode_ids(tokens[a : a + step]) for a in range(0, len(tokens), step)])
        self.clock.stop(sum(len(t) for t in tokens))
        x[: len(blocks)].view(len(blocks), -1).copy_(emb.view(len(blocks), -1).cpu())
        if raw is not None:
            for i in range(len(blocks)):
                mine = ids[i * self.chunks : (i + 1) * self.chunks]
                data = b"".join(chunk_bytes(c, self.chunk_chars, self.chunk_nbytes) for c in mine)
                raw[i, : len(data)].copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))


__all__ = ["BlockPrefill", "ChunkEmbedding", "ComputeClock"]
