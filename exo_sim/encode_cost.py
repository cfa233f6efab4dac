"""The encode compute model: seconds for the encoder to (re-)embed a ``rag_chunk`` payload's chunks.

A miss of a RAG block re-embeds its chunks (and a written block embeds them for the first time) with
the payload's encoder (:mod:`exo_sim.encoder_arch`). Chunks are encoded independently — attention
stays within a chunk — in forward passes of at most ``batch_chunks`` chunks, so ``k`` chunks of ``t``
tokens cost::

    encode_s(k, t) = a * ceil(k / batch_chunks) + b * k * t + c * k * t^2

* ``a`` (s): fixed per forward pass — kernel launches, and reading the encoder's weights once.
* ``b`` (s/token): the weights' FLOPs per token (``2 x`` the projection and MLP weights).
* ``c`` (s/token pair): attention's FLOPs per (query, key) pair of one chunk (``t^2`` pairs a chunk).

Two sources, as for the prefill cost (:mod:`exo_sim.compute`): ``derived`` from the encoder's
architecture and the profile's ``hardware.compute`` peaks times its assumed efficiencies
(:func:`derive_encode_cost`), and ``calibrated``, fitted non-negative on relative error from measured
forward passes, keeping a term only where the measurements show it (:func:`fit_encode_cost`), read
from the profile's ``hardware.compute.encode``. :func:`resolve_encode_cost` picks one from a composed
config; :func:`block_encode_cost` turns it into seconds per re-embedded block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from exo_sim.compute import SOURCES, FitResiduals, check_compute, fit_nonnegative_terms, fitted_section
from exo_sim.encoder_arch import ENCODE_BATCH_CHUNKS, ENCODER_WEIGHT_BYTES, EncoderArch, chunk_tokens, encoder_of
from exo_sim.errors import ConfigError

Locator = Callable[[str], "str | None"]
"""Maps a dotted config key to where its value came from (as :data:`exo_sim.spec.Locator`)."""

ENCODE_TERMS = ("a", "b", "c")
"""The model's terms, in coefficient order (per forward pass, per token, per token pair)."""

_COEFFICIENT_KEYS = ("a_s", "b_s_per_token", "c_s_per_token_pair")
_RESIDUAL_KEYS = ("residual_median", "residual_max")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EncodeCost:
    """``encode_s(k, t) = a_s * ceil(k / batch_chunks) + b_s_per_token * k * t + c_s_per_token_pair * k * t^2``.

    Attributes:
        a_s: seconds per forward pass, whatever its size.
        b_s_per_token: seconds per chunk token (the weights' FLOPs).
        c_s_per_token_pair: seconds per (query, key) pair within one chunk.
        source: ``"derived"`` (architecture x spec sheet x assumed efficiency) or ``"calibrated"``
            (fitted to measured forward passes).
        basis: one line on where the figures come from.
        batch_chunks: chunks per forward pass (the runtime's encoder batch).
        residual_median / residual_max: the fit's median and largest relative error on its own
            measurements (``None`` for a derived cost): how well the form fits, not a measurement.

    Raises:
        ValueError: a coefficient that is negative or not finite, an unknown source, ``batch_chunks < 1``.

    """

    a_s: float
    b_s_per_token: float
    c_s_per_token_pair: float
    source: str
    basis: str = ""
    batch_chunks: int = ENCODE_BATCH_CHUNKS
    residual_median: float | None = None
    residual_max: float | None = None

    def __post_init__(self) -> None:
        for key, value in zip(_COEFFICIENT_KEYS, self.coefficients(), strict=True):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be finite and >= 0, got {value}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.batch_chunks < 1:
            raise ValueError(f"batch_chunks must be >= 1, got {self.batch_chunks}")

    def coefficients(self) -> tuple[float, float, float]:
        """``(a, b, c)`` in :data:`ENCODE_TERMS` order."""
        return (self.a_s, self.b_s_per_token, self.c_s_per_token_pair)

    def as_config(self) -> dict[str, float]:
        """The coefficients as a ``hardware.compute.encode`` section's keys."""
        return dict(zip(_COEFFICIENT_KEYS, self.coefficients(), strict=True))

    def pass_seconds(self, chunks: npt.ArrayLike, tokens: npt.ArrayLike) -> float | FloatArray:
        """Seconds of one forward pass over ``chunks`` chunks of ``tokens`` tokens each (no batch split).

        Numbers in give a float out; arrays broadcast. ``chunks = 0`` costs nothing.
        """
        k = np.asarray(chunks, dtype=np.float64)
        t = np.asarray(tokens, dtype=np.float64)
        a, b, c = self.coefficients()
        out = np.where(k > 0, a + b * k * t + c * k * t * t, 0.0)
        return float(out) if out.ndim == 0 else out

    def seconds(self, chunks: int, tokens: int) -> float:
        """Seconds to embed ``chunks`` chunks of ``tokens`` tokens each, in passes of :attr:`batch_chunks`."""
        if chunks <= 0:
            return 0.0
        passes = -(-int(chunks) // self.batch_chunks)
        a, b, c = self.coefficients()
        t = float(tokens)
        return a * passes + chunks * (b * t + c * t * t)

    def describe(self) -> dict[str, Any]:
        """The summary's view: coefficients, batch, residuals, source and basis."""
        return {
            **self.as_config(),
            "batch_chunks": self.batch_chunks,
            "residual_median": self.residual_median,
            "residual_max": self.residual_max,
            "source": self.source,
            "basis": self.basis,
        }


@dataclass(frozen=True)
class BlockEncodeCost:
    """What re-embedding whole blocks of a ``rag_chunk`` payload costs: each block's chunks through the encoder.

    Attributes:
        cost: the encoder's cost per forward pass.
        chunks_per_block: chunks in one block (``block_tokens / tokens_per_chunk``).
        tokens_per_chunk: tokens the encoder runs per chunk (:func:`~exo_sim.encoder_arch.chunk_tokens`).

    """

    cost: EncodeCost
    chunks_per_block: int
    tokens_per_chunk: int

    def seconds(self, blocks: int) -> float:
        """Seconds to embed ``blocks`` whole blocks' chunks (one request's, in batches)."""
        return self.cost.seconds(blocks * self.chunks_per_block, self.tokens_per_chunk)


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def _fitted(compute: Any) -> Any:
    """``compute.encode`` when it gives any fitted coefficient, else ``None``."""
    return fitted_section(compute, "encode", _COEFFICIENT_KEYS)


def check_encode(compute: Any, locate: Locator | None = None, prefix: str = "hardware.compute") -> None:
    """Refuse a bad ``hardware.compute.encode`` section with a :class:`ConfigError` naming the key.

    Fitted coefficients and residuals must be finite and >= 0; residuals (and a payload name) make
    sense only beside coefficients.
    """
    section = getattr(compute, "encode", None)
    if section is None:
        return
    for key in (*_COEFFICIENT_KEYS, *_RESIDUAL_KEYS):
        value = getattr(section, key, None)
        if value is None:
            continue
        number = float(value)
        if not (math.isfinite(number) and number >= 0):
            what = "a fitted coefficient" if key in _COEFFICIENT_KEYS else "a fit's relative error"
            raise _fail(locate, f"{prefix}.encode.{key}", f"must be finite and >= 0 ({what}), got {value}")
    if _fitted(compute) is None:
        for key in (*_RESIDUAL_KEYS, "payload"):
            if getattr(section, key, None) is not None:
                raise _fail(
                    locate, f"{prefix}.encode.{key}",
                    "is set but no coefficient (a_s, b_s_per_token, c_s_per_token_pair) is: it describes no fit",
                )


def derive_encode_cost(arch: EncoderArch, compute_cfg: Any, batch_chunks: int = ENCODE_BATCH_CHUNKS) -> EncodeCost:
    """The encode cost of ``arch`` on the device ``compute_cfg`` describes (``derived``).

    With ``F = peak_flops x flops_efficiency`` and ``M = memory_bytes_per_s x memory_efficiency``:

    * ``b = 2 x matmul_params / F`` (:meth:`EncoderArch.flops_per_token`);
    * ``c = 4 x layers x hidden / F`` (:meth:`EncoderArch.flops_per_token_pair`; bidirectional, so a
      chunk of ``t`` tokens has ``t^2`` pairs);
    * ``a = forward_overhead_s + layer_params x 4 / M``: the layers' weights, biases and LayerNorms
      are read once per forward pass at float32 (as the runtime holds them); the embedding tables are
      looked up row by row, not streamed.

    Assumptions, not measurements: the efficiencies (the same the prefill model takes); the float32
    weights at the profile's ``peak_flops`` (a GPU's peak is quoted at bf16; at float32 it is lower);
    reading the weights added to the matmuls rather than overlapped; LayerNorms, softmax, GELU and
    pooling not counted.

    Raises:
        ValueError: when the section lacks ``peak_flops`` or ``memory_bytes_per_s``.

    """
    if compute_cfg.peak_flops is None or compute_cfg.memory_bytes_per_s is None:
        raise ValueError("deriving an encode cost needs peak_flops and memory_bytes_per_s")
    flops = float(compute_cfg.peak_flops) * float(compute_cfg.flops_efficiency)
    mem = float(compute_cfg.memory_bytes_per_s) * float(compute_cfg.memory_efficiency)
    overhead = float(compute_cfg.forward_overhead_s)
    streamed = arch.layer_params() * ENCODER_WEIGHT_BYTES
    b = arch.flops_per_token() / flops
    c = arch.flops_per_token_pair() / flops
    a = overhead + streamed / mem
    device = str(getattr(compute_cfg, "device", "") or "device")
    basis = (
        f"derived: encoder ({arch.layers} layers, hidden {arch.hidden_size}) on {device}, "
        f"{float(compute_cfg.peak_flops) / 1e12:g} TFLOP/s x {float(compute_cfg.flops_efficiency):g} and "
        f"{float(compute_cfg.memory_bytes_per_s) / 1e9:g} GB/s x {float(compute_cfg.memory_efficiency):g} "
        f"(efficiencies assumed), {overhead * 1e3:g} ms per forward pass, {streamed / 1e6:.3g} MB of float32 "
        f"weights read per pass, {batch_chunks} chunks per pass"
    )
    return EncodeCost(a, b, c, "derived", basis, batch_chunks)


def resolve_encode_cost(cfg: Any, locate: Locator | None = None) -> EncodeCost | None:
    """The encode cost a composed root config gives, or ``None`` when it gives none.

    The hardware profile's ``compute.encode`` coefficients, when present, are used as given
    (``calibrated``; refused when they name another payload than the config's). Otherwise the cost is
    derived from the payload's encoder and ``compute``'s peaks (:func:`derive_encode_cost`). ``None``
    for a payload with no encoder (``kv_cache``) and a profile without compute figures. A bad
    ``compute.encode`` section is refused whatever the payload.

    Raises:
        ConfigError: naming the first invalid key of ``hardware.compute``.

    """
    compute = getattr(cfg.hardware, "compute", None)
    if compute is None:
        return None
    check_encode(compute, locate)
    arch = encoder_of(cfg.payload)
    if arch is None:
        return None
    check_compute(compute, locate)
    fitted = _fitted(compute)
    if fitted is not None:
        payload = str(cfg.payload.name)
        if fitted.payload is not None and str(fitted.payload) != payload:
            raise _fail(
                locate,
                "hardware.compute.encode.payload",
                f"is {fitted.payload!r}, but the payload is {payload!r}; fitted coefficients hold only for "
                "the encoder and chunks they were measured with",
            )
        basis = str(fitted.basis) or f"calibrated: fitted coefficients of hardware {cfg.hardware.name}"
        a, b, c = (float(getattr(fitted, key) or 0.0) for key in _COEFFICIENT_KEYS)
        median, worst = (None if getattr(fitted, k) is None else float(getattr(fitted, k)) for k in _RESIDUAL_KEYS)
        return EncodeCost(a, b, c, "calibrated", basis, ENCODE_BATCH_CHUNKS, median, worst)
    if compute.peak_flops is None:
        return None
    return derive_encode_cost(arch, compute)


def block_encode_cost(cfg: Any, block_tokens: int, locate: Locator | None = None) -> BlockEncodeCost | None:
    """What re-embedding one of ``cfg``'s blocks costs (:func:`resolve_encode_cost` per block), or ``None``."""
    cost = resolve_encode_cost(cfg, locate)
    if cost is None:
        return None
    payload = cfg.payload
    return BlockEncodeCost(cost, int(block_tokens) // int(payload.tokens_per_chunk), chunk_tokens(payload))


# --- fitting ---------------------------------------------------------------------------------------


EncodeFitResiduals = FitResiduals
"""How well a fitted :class:`EncodeCost` matches the forward passes it was fitted to."""


def fit_encode_cost(
    chunks: npt.ArrayLike,
    tokens: npt.ArrayLike,
    seconds: npt.ArrayLike,
    *,
    batch_chunks: int = ENCODE_BATCH_CHUNKS,
    tolerance: float = 0.01,
    max_tolerance: float = 0.05,
    basis: str = "",
) -> tuple[EncodeCost, EncodeFitResiduals]:
    """Fit ``a, b, c >= 0`` to measured forward passes, keeping only the terms the measurements show.

    Each measurement is one forward pass over ``chunks[i]`` chunks of ``tokens[i]`` tokens each that
    took ``seconds[i]`` (so ``chunks[i] <= batch_chunks``). The fit minimises the relative error
    (each row weighted by ``1 / seconds[i]``) by non-negative least squares
    (:func:`exo_sim.compute.nnls`), keeping only the terms the measurements show
    (:func:`fit_nonnegative_terms`, the rule :func:`exo_sim.compute.fit_prefill_cost` follows): a term
    goes when the fit without it stays within ``tolerance`` of the full fit's median relative error
    and ``max_tolerance`` of its max.

    Returns:
        The fitted :class:`EncodeCost` (``calibrated``, residuals filled in) and its residuals.

    Raises:
        ValueError: empty or mismatched inputs, ``chunks`` outside ``[1, batch_chunks]``,
            ``tokens < 1`` or ``seconds <= 0``.

    """
    k = np.asarray(chunks, dtype=np.float64).ravel()
    t = np.asarray(tokens, dtype=np.float64).ravel()
    s = np.asarray(seconds, dtype=np.float64).ravel()
    if not (k.size == t.size == s.size) or k.size == 0:
        raise ValueError(
            f"chunks, tokens and seconds must be non-empty and of one length, got {k.size}, {t.size}, {s.size}"
        )
    if not np.all(np.isfinite(k) & (k >= 1) & (k <= batch_chunks)):
        raise ValueError(f"every chunks count must be in [1, {batch_chunks}] (one forward pass)")
    if not np.all(np.isfinite(t) & (t >= 1)):
        raise ValueError("every tokens count must be >= 1")
    if not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError("every measured time must be > 0 seconds")
    if tolerance < 0 or max_tolerance < 0:
        raise ValueError("tolerances must be >= 0")
    design = np.column_stack([np.ones_like(k), k * t, k * t * t])
    coef, rel = fit_nonnegative_terms(design, s, tolerance, max_tolerance)
    dropped = tuple(name for name, x in zip(ENCODE_TERMS, coef, strict=True) if not x > 0)
    median = float(np.median(np.abs(rel)))
    worst = float(np.max(np.abs(rel)))
    text = basis or (
        f"calibrated: fitted on {k.size} forward passes (chunks {int(k.min())}-{int(k.max())}, tokens "
        f"{int(t.min())}-{int(t.max())}); median relative error {median:.1%}, max {worst:.1%}; terms dropped: "
        f"{', '.join(dropped) or 'none'}"
    )
    cost = EncodeCost(
        float(coef[0]), float(coef[1]), float(coef[2]), "calibrated", text, int(batch_chunks), median, worst
    )
    return cost, EncodeFitResiduals(median, worst, tuple(float(r) for r in rel), dropped)


__all__ = [
    "ENCODE_TERMS",
    "BlockEncodeCost",
    "EncodeCost",
    "EncodeFitResiduals",
    "block_encode_cost",
    "check_encode",
    "derive_encode_cost",
    "fit_encode_cost",
    "resolve_encode_cost",
]
