"""The prefill compute model: seconds to prefill ``n`` new tokens after ``p`` cached ones on a device.

TTFT = queueing + loading the cached prefix + prefilling the rest; this module gives the last part::

    prefill_s(n, p) = a + b*n + c*n*(p + n/2) + d*p

* ``a`` (s): fixed per forward pass — kernel launches and scheduling, and reading the weights once
  (a forward pass streams every weight from device memory once, whatever ``n``).
* ``b`` (s/token): the weights' FLOPs, ``2 x`` the weights a token is multiplied by.
* ``c`` (s/token pair): attention's FLOPs per (query, key) pair; causal query ``i`` of ``n`` sees
  ``p + i`` keys, so the pairs are ``sum_i (p + i) ~= n x (p + n/2)``.
* ``d`` (s/token): reading the cached context's KV (``p`` tokens) from device memory.

Every figure is per tensor-parallel rank (the ranks work in parallel; their all-reduces are not
counted). Two sources: ``derived`` from the architecture and a device's spec-sheet peaks times an
assumed efficiency (:func:`derive_prefill_cost`), and ``calibrated``, fitted non-negative on relative
error from measured prefills, keeping a term only where the measurements show it
(:func:`fit_prefill_cost`). :func:`resolve_prefill_cost` picks one from a composed config.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from exo_sim.architecture import Architecture, architecture_of, architecture_problem, weight_bytes_per_rank
from exo_sim.errors import ConfigError

Locator = Callable[[str], "str | None"]
"""Maps a dotted config key to where its value came from (as :data:`exo_sim.spec.Locator`)."""

TERMS = ("a", "b", "c", "d")
"""The model's terms, in coefficient order (fixed, per token, per token pair, per cached token)."""

SOURCES = ("derived", "calibrated")

_COEFFICIENT_KEYS = ("a_s", "b_s_per_token", "c_s_per_token_pair", "d_s_per_token")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PrefillCost:
    """``prefill_s(n, p) = a_s + b_s_per_token*n + c_s_per_token_pair*n*(p + n/2) + d_s_per_token*p``.

    Attributes:
        a_s: seconds per forward pass, whatever its size.
        b_s_per_token: seconds per new token (the weights' FLOPs).
        c_s_per_token_pair: seconds per (query, key) pair of causal attention.
        d_s_per_token: seconds per cached context token (reading its KV).
        source: ``"derived"`` (architecture x spec sheet x assumed efficiency) or ``"calibrated"``
            (fitted to measured prefills).
        basis: one line on where the figures come from.

    """

    a_s: float
    b_s_per_token: float
    c_s_per_token_pair: float
    d_s_per_token: float
    source: str
    basis: str = ""

    def __post_init__(self) -> None:
        for key, value in zip(_COEFFICIENT_KEYS, self.coefficients(), strict=True):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be finite and >= 0, got {value}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")

    def coefficients(self) -> tuple[float, float, float, float]:
        """``(a, b, c, d)`` in :data:`TERMS` order."""
        return (self.a_s, self.b_s_per_token, self.c_s_per_token_pair, self.d_s_per_token)

    def as_config(self) -> dict[str, float]:
        """The coefficients as a ``hardware.compute.prefill`` section's keys."""
        return dict(zip(_COEFFICIENT_KEYS, self.coefficients(), strict=True))

    @overload
    def seconds(self, n: float, p: float = 0) -> float: ...

    @overload
    def seconds(self, n: npt.ArrayLike, p: npt.ArrayLike = 0) -> float | FloatArray: ...

    def seconds(self, n: npt.ArrayLike, p: npt.ArrayLike = 0) -> float | FloatArray:
        """Seconds to prefill ``n`` new tokens after ``p`` cached ones (in one forward pass).

        ``n`` and ``p`` may be numbers or numpy arrays (broadcast together); a number in gives a
        float out. ``n = 0`` costs nothing: there is no forward pass.
        """
        a, b, c, d = self.coefficients()
        if isinstance(n, int | float) and isinstance(p, int | float):  # one request (the timed model): no numpy
            return a + b * n + c * n * (p + n / 2.0) + d * p if n > 0 else 0.0
        n_arr = np.asarray(n, dtype=np.float64)
        p_arr = np.asarray(p, dtype=np.float64)
        cost = a + b * n_arr + c * n_arr * (p_arr + n_arr / 2.0) + d * p_arr
        out = np.where(n_arr > 0, cost, 0.0)
        if out.ndim == 0:
            return float(out)
        return out


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def fitted_section(compute: Any, name: str, keys: Sequence[str]) -> Any:
    """``compute.<name>`` (``prefill``, ``encode``) when it gives any of the fitted ``keys``, else ``None``."""
    fitted = getattr(compute, name, None)
    if fitted is None or all(getattr(fitted, key, None) is None for key in keys):
        return None
    return fitted


def _fitted(compute: Any) -> Any:
    """``compute.prefill`` when it gives any fitted coefficient, else ``None``."""
    return fitted_section(compute, "prefill", _COEFFICIENT_KEYS)


def check_compute(compute: Any, locate: Locator | None = None, prefix: str = "hardware.compute") -> None:
    """Refuse a bad ``hardware.compute`` section with a :class:`ConfigError` naming the key.

    Peak FLOP/s and memory bandwidth must be > 0 (and given together when the cost is derived),
    efficiencies in (0, 1], the forward overhead >= 0, ``compute_element_bytes`` >= 1 and fitted
    coefficients finite and >= 0.
    """
    for name in ("peak_flops", "memory_bytes_per_s"):
        value = getattr(compute, name, None)
        if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
            raise _fail(locate, f"{prefix}.{name}", f"must be > 0, got {value}")
    for name in ("flops_efficiency", "memory_efficiency"):
        value = float(getattr(compute, name))
        if not 0 < value <= 1:
            raise _fail(locate, f"{prefix}.{name}", f"must be in (0, 1] (a fraction of the peak), got {value}")
    overhead = float(compute.forward_overhead_s)
    if not (math.isfinite(overhead) and overhead >= 0):
        raise _fail(locate, f"{prefix}.forward_overhead_s", f"must be >= 0, got {overhead}")
    if int(compute.compute_element_bytes) < 1:
        raise _fail(locate, f"{prefix}.compute_element_bytes", f"must be >= 1, got {compute.compute_element_bytes}")
    fitted = _fitted(compute)
    if fitted is not None:
        for key in _COEFFICIENT_KEYS:
            value = getattr(fitted, key)
            if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
                raise _fail(locate, f"{prefix}.prefill.{key}", f"must be >= 0 (a fitted coefficient), got {value}")
        return
    peak, bandwidth = compute.peak_flops, compute.memory_bytes_per_s
    if peak is not None and bandwidth is None:
        raise _fail(
            locate, f"{prefix}.memory_bytes_per_s", "is not given; deriving the prefill cost needs it"
        )
    if bandwidth is not None and peak is None:
        raise _fail(
            locate, f"{prefix}.peak_flops", "is not given; deriving the prefill cost needs it"
        )


def derive_prefill_cost(arch: Architecture, compute_cfg: Any, weight_bytes: int) -> PrefillCost:
    """The prefill cost of ``arch`` on one rank of the device ``compute_cfg`` describes (``derived``).

    With ``F = peak_flops x flops_efficiency`` and ``M = memory_bytes_per_s x memory_efficiency``:

    * ``b = 2 x (matmul_params_per_rank - lm_head_params) / F``: one multiply-add per layer weight
      per token. ``lm_head`` (``ceil(vocab / tp) x hidden`` per rank) gives logits for the last
      token only, as vLLM computes them: its ``2 x lm_head_params / F`` goes to ``a``.
    * ``c = 4 x layers x heads_per_rank x head_dim / F``: per (query, key) pair and layer, each query
      head spends ``2 x head_dim`` FLOPs on its ``Q K^T`` score and ``2 x head_dim`` on ``P V``.
    * ``d = kv_elements_per_token_per_rank x compute_element_bytes / M``: a cached token's K and V
      are read from device memory once per forward pass.
    * ``a = forward_overhead_s + (weight_bytes - embedding_bytes) / M + 2 x lm_head_params / F``:
      every weight is read once per forward pass, except the token embedding, which is looked up
      row by row, not streamed (``embedding_bytes = 2 x ceil(vocab / tp) x hidden``, bf16 in every
      weight precision; 0 when tied to lm_head, which is read); plus one token's logits.

    Assumptions, not measurements: the efficiencies are guesses at what a prefill reaches; reading
    the weights is added to the matmuls rather than overlapped with them (conservative; it matters
    only for short prefills, which are memory-bound); softmax, norms, rotary embeddings and
    activations are not counted (a few FLOPs per element, against thousands per weight); logits are
    taken for one token per forward pass (one sequence; a server batching several prompts in one pass
    takes one per prompt); tensor-parallel all-reduces are not counted.

    Args:
        arch: the model (per-rank figures are taken from it).
        compute_cfg: a ``hardware.compute`` section with ``peak_flops`` and ``memory_bytes_per_s``.
        weight_bytes: bytes of one rank's weights at their stored precision
            (:func:`~exo_sim.architecture.weight_bytes_per_rank`).

    Raises:
        ValueError: when the section lacks ``peak_flops`` or ``memory_bytes_per_s``.

    """
    if compute_cfg.peak_flops is None or compute_cfg.memory_bytes_per_s is None:
        raise ValueError("deriving a prefill cost needs peak_flops and memory_bytes_per_s")
    flops = float(compute_cfg.peak_flops) * float(compute_cfg.flops_efficiency)
    mem = float(compute_cfg.memory_bytes_per_s) * float(compute_cfg.memory_efficiency)
    overhead = float(compute_cfg.forward_overhead_s)
    element_bytes = int(getattr(compute_cfg, "compute_element_bytes", 2))
    vocab_rows = -(-arch.vocab_size // arch.tensor_parallel)
    lm_head_params = vocab_rows * arch.hidden_size
    b = 2.0 * (arch.matmul_params_per_rank() - lm_head_params) / flops
    c = 4.0 * arch.layers * arch.heads_per_rank() * arch.head_dim / flops
    d = arch.kv_elements_per_token_per_rank() * element_bytes / mem
    embedding_bytes = 0 if arch.tied_embeddings else 2 * vocab_rows * arch.hidden_size
    streamed = max(0, weight_bytes - embedding_bytes)
    a = overhead + streamed / mem + 2.0 * lm_head_params / flops
    device = str(getattr(compute_cfg, "device", "") or "device")
    basis = (
        f"derived: {device}, {float(compute_cfg.peak_flops) / 1e12:g} TFLOP/s x {float(compute_cfg.flops_efficiency):g}"
        f" and {float(compute_cfg.memory_bytes_per_s) / 1e9:g} GB/s x {float(compute_cfg.memory_efficiency):g}"
        f" (efficiencies assumed), {overhead * 1e3:g} ms per forward pass, {streamed / 1e9:.3g} GB of"
        f" weights read per pass per rank (tp={arch.tensor_parallel})"
    )
    return PrefillCost(a, b, c, d, "derived", basis)


def resolve_prefill_cost(cfg: Any, locate: Locator | None = None) -> PrefillCost | None:
    """The prefill cost a composed root config gives, or ``None`` when it gives none.

    The hardware profile's ``compute.prefill`` coefficients, when present, are used as given
    (``calibrated``; refused when they name another payload than the config's). Otherwise the cost is
    derived from the payload's architecture and ``compute``'s peaks (:func:`derive_prefill_cost`).
    ``None`` for a ``rag_chunk`` payload, a ``kv_cache`` payload without an architecture (when not
    calibrated) and a profile without compute figures.

    Raises:
        ConfigError: naming the first invalid key of ``hardware.compute`` (or of the payload's
            architecture).

    """
    compute = getattr(cfg.hardware, "compute", None)
    if compute is None:
        return None
    check_compute(compute, locate)
    payload = cfg.payload
    if str(payload.kind) != "kv_cache":
        return None
    fitted = _fitted(compute)
    if fitted is not None:
        if fitted.payload is not None and str(fitted.payload) != str(payload.name):
            raise _fail(
                locate,
                "hardware.compute.prefill.payload",
                f"is {fitted.payload!r}, but the payload is {payload.name!r}; fitted coefficients hold only for "
                "the model they were measured with",
            )
        basis = str(fitted.basis) or f"calibrated: fitted coefficients of hardware {cfg.hardware.name}"
        a, b, c, d = (float(getattr(fitted, key) or 0.0) for key in _COEFFICIENT_KEYS)
        return PrefillCost(a, b, c, d, "calibrated", basis)
    arch = architecture_of(payload)
    if arch is None or compute.peak_flops is None:
        return None
    problem = architecture_problem(arch)
    if problem is not None:
        raise _fail(locate, f"payload.{problem[0]}", problem[1])
    try:
        weights = weight_bytes_per_rank(arch, str(payload.weight_dtype), int(payload.weight_group_size))
    except ValueError as exc:
        key = "payload.weight_group_size" if "group_size" in str(exc) else "payload.weight_dtype"
        raise _fail(locate, key, f"is invalid: {exc}") from None
    return derive_prefill_cost(arch, compute, weights)


# --- fitting ---------------------------------------------------------------------------------------


def nnls(matrix: npt.ArrayLike, target: npt.ArrayLike, max_iter: int | None = None) -> FloatArray:
    """Non-negative least squares, ``argmin_x ||A x - y||`` subject to ``x >= 0`` (Lawson-Hanson).

    The active-set method of Lawson and Hanson (*Solving Least Squares Problems*, 1974, ch. 23):
    move the variable with the largest positive gradient into the passive (free) set, solve the
    unconstrained problem on that set, and step back toward the previous feasible point whenever a
    free variable would go negative, releasing it. Columns are scaled to unit norm first, so terms of
    very different magnitudes (1, n, n^2, p) are treated alike.
    """
    a = np.asarray(matrix, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if a.ndim != 2 or y.shape != (a.shape[0],):
        raise ValueError(f"nnls needs an (m, k) matrix and m targets, got {a.shape} and {y.shape}")
    m, k = a.shape
    norms = np.linalg.norm(a, axis=0)
    scale = np.where(norms > 0, norms, 1.0)
    a = a / scale
    x = np.zeros(k)
    passive = np.zeros(k, dtype=bool)
    stuck = np.zeros(k, dtype=bool)  # entered and left at once, with x unchanged: skip until x moves
    tol = 10 * np.finfo(np.float64).eps * max(m, k) * max(1.0, float(np.abs(a).sum(axis=0).max(initial=0.0)))
    limit = max_iter if max_iter is not None else 30 * max(k, 1)
    steps = 0
    while True:
        gradient = a.T @ (y - a @ x)
        candidates = np.where(passive | stuck, -np.inf, gradient)
        j = int(np.argmax(candidates)) if k else 0
        if k == 0 or candidates[j] <= tol:
            break
        passive[j] = True
        before = x.copy()
        while True:
            steps += 1
            if steps > limit:
                return x / scale
            z = np.zeros(k)
            z[passive] = np.linalg.lstsq(a[:, passive], y, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            blocked = passive & (z <= 0)
            gap = x[blocked] - z[blocked]
            alpha = float(np.min(np.divide(x[blocked], gap, out=np.zeros_like(gap), where=gap > 0)))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
            if not passive.any():
                break
        if not passive[j] and np.array_equal(x, before):
            stuck[j] = True
        else:
            stuck[:] = False
    return x / scale


@dataclass(frozen=True)
class FitResiduals:
    """How well a fitted cost (:class:`PrefillCost`, an encoder's) matches the measurements it was fitted to.

    Attributes:
        median: median of ``|predicted - measured| / measured``.
        max: the largest such relative error.
        relative: the signed relative residual ``(predicted - measured) / measured`` per measurement.
        dropped: the terms the fit set to zero (of :data:`TERMS`; of
            :data:`exo_sim.encode_cost.ENCODE_TERMS` for an encoder's fit).

    """

    median: float
    max: float
    relative: tuple[float, ...]
    dropped: tuple[str, ...]


def _design(n: FloatArray, p: FloatArray) -> FloatArray:
    return np.column_stack([np.ones_like(n), n, n * (p + n / 2.0), p])


def _fit_terms(design: FloatArray, seconds: FloatArray, terms: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """NNLS on relative error, with only ``terms`` free: (coefficients, signed relative residuals)."""
    coef = np.zeros(design.shape[1])
    if terms:
        cols = list(terms)
        coef[cols] = nnls(design[:, cols] / seconds[:, None], np.ones_like(seconds))
    return coef, (design @ coef - seconds) / seconds


def fit_nonnegative_terms(
    design: FloatArray, seconds: FloatArray, tolerance: float, max_tolerance: float
) -> tuple[FloatArray, FloatArray]:
    """Non-negative fit of ``design @ x ~= seconds`` on relative error, keeping only the terms the data show.

    Backward elimination against the full fit: while more than one term is left, refit without each
    in turn and drop the one whose removal leaves the lowest median relative error, provided the fit
    without it is within ``tolerance`` of the full fit's median relative error and ``max_tolerance``
    of its max (the reference is always the full fit, so small losses cannot add up). A term NNLS
    already sets to zero is dropped. Returns ``(coefficients, signed relative residuals)``; a dropped
    term's coefficient is 0. Used by every cost fit (:func:`fit_prefill_cost`,
    :func:`exo_sim.encode_cost.fit_encode_cost`).
    """
    full_coef, full_rel = _fit_terms(design, seconds, range(design.shape[1]))
    ref_median = float(np.median(np.abs(full_rel)))
    ref_max = float(np.max(np.abs(full_rel)))
    kept = [i for i in range(design.shape[1]) if full_coef[i] > 0]
    coef, rel = full_coef, full_rel
    while len(kept) > 1:
        trials = []
        for term in kept:
            t_coef, t_rel = _fit_terms(design, seconds, [x for x in kept if x != term])
            trials.append((float(np.median(np.abs(t_rel))), float(np.max(np.abs(t_rel))), term, t_coef, t_rel))
        med, worst, term, t_coef, t_rel = min(trials, key=lambda x: (x[0], x[1]))
        if med > ref_median + tolerance or worst > ref_max + max_tolerance:
            break
        kept.remove(term)
        coef, rel = t_coef, t_rel
    return coef, rel


def fit_prefill_cost(
    n: npt.ArrayLike,
    p: npt.ArrayLike,
    seconds: npt.ArrayLike,
    *,
    tolerance: float = 0.01,
    max_tolerance: float = 0.05,
    basis: str = "",
) -> tuple[PrefillCost, FitResiduals]:
    """Fit ``a, b, c, d >= 0`` to measured prefills, keeping only the terms the measurements show.

    Each measurement is one forward pass of ``n[i]`` new tokens after ``p[i]`` cached ones that took
    ``seconds[i]``. The fit minimises the *relative* error (each row is weighted by
    ``1 / seconds[i]``, so a 5 ms prefill counts as much as a 5 s one) by non-negative least squares
    (:func:`nnls`).

    Term selection (backward elimination against the full model): fit all four terms; then, while
    more than one term is left, refit without each remaining term in turn and drop the one whose
    removal leaves the lowest median relative error, provided that the fit without it is within
    ``tolerance`` (absolute, default one percentage point) of the full fit's median relative error
    *and* within ``max_tolerance`` (default five points) of its max relative error. The reference is
    always the full fit, so small losses cannot add up. A term NNLS already sets to zero is dropped.
    A grid that cannot tell terms apart (one point; one ``n``, where ``a`` and ``b*n`` move together)
    keeps the fewest terms that fit it: they reproduce the grid, but are not the device's coefficients.

    Returns:
        The fitted :class:`PrefillCost` (``calibrated``) and its :class:`FitResiduals`.

    Raises:
        ValueError: for empty or mismatched inputs, ``n < 1``, ``p < 0`` or ``seconds <= 0``.

    """
    n_arr = np.asarray(n, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    s_arr = np.asarray(seconds, dtype=np.float64).ravel()
    if not (n_arr.size == p_arr.size == s_arr.size) or n_arr.size == 0:
        raise ValueError(
            f"n, p and seconds must be non-empty and of one length, got {n_arr.size}, {p_arr.size}, {s_arr.size}"
        )
    if not np.all(np.isfinite(n_arr) & (n_arr >= 1)):
        raise ValueError("every n must be >= 1 (a measured prefill computes at least one token)")
    if not np.all(np.isfinite(p_arr) & (p_arr >= 0)):
        raise ValueError("every p must be >= 0")
    if not np.all(np.isfinite(s_arr) & (s_arr > 0)):
        raise ValueError("every measured time must be > 0 seconds")
    if tolerance < 0 or max_tolerance < 0:
        raise ValueError("tolerances must be >= 0")

    coef, rel = fit_nonnegative_terms(_design(n_arr, p_arr), s_arr, tolerance, max_tolerance)
    kept = [t for t in range(len(TERMS)) if coef[t] > 0]
    dropped = tuple(TERMS[i] for i in range(len(TERMS)) if i not in kept)
    median = float(np.median(np.abs(rel)))
    worst = float(np.max(np.abs(rel)))
    text = basis or (
        f"calibrated: fitted on {n_arr.size} prefills (n {int(n_arr.min())}-{int(n_arr.max())}, "
        f"p {int(p_arr.min())}-{int(p_arr.max())}); median relative error {median:.1%}, max {worst:.1%}; "
        f"terms dropped: {', '.join(dropped) or 'none'}"
    )
    cost = PrefillCost(float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]), "calibrated", text)
    return cost, FitResiduals(median, worst, tuple(float(r) for r in rel), dropped)
