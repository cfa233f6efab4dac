"""Measuring the engine's prefill cost on this device, for a calibrated profile's ``compute.prefill``.

The engine's model (the payload's architecture, seeded random weights — the cost of a forward pass
does not depend on the weights' values) prefills ``n`` new tokens after ``p`` cached ones over a
grid of ``(n, p)``, on the device ``exo-run`` would use, at its dtype and thread count; each point is
the best of ``repeats`` timed runs after one warm-up. :func:`exo_sim.compute.fit_prefill_cost` then
fits ``a + b*n + c*n*(p + n/2) + d*p`` (non-negative, relative error, only the terms the
measurements show); the coefficients and residuals go into the profile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from exo_runtime.engine.fit import check_engine_fits
from exo_runtime.engine.model import DecoderModel, default_compute_dtype
from exo_sim.architecture import architecture_of
from exo_sim.compute import FitResiduals, PrefillCost, fit_prefill_cost
from exo_sim.errors import ExoError

PREFILL_GRID = tuple((n, p) for n in (16, 64, 256, 1024) for p in (0, 256, 1024))
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
    payload: Any, block_tokens: int, seed: int, repeats: int, grid: tuple[tuple[int, int], ...] = PREFILL_GRID
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
    points = []
    for n, p in grid:
        ids = torch.randint(0, arch.vocab_size, (p + n,), generator=gen)
        past = model.prefill(ids[:p]).kv if p else None
        best = float("inf")
        for i in range(max(1, repeats) + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model.prefill(ids[p:], past=past, position=p)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first run warms up
                best = min(best, time.perf_counter() - t0)
        points.append((n, p, best))
    cost, residuals = fit_prefill_cost(
        [x[0] for x in points], [x[1] for x in points], [x[2] for x in points], basis="exo-calibrate"
    )
    dtype_name = str(dtype).removeprefix("torch.")
    return PrefillCalibration(
        str(payload.name), str(device), dtype_name, torch.get_num_threads(), points, cost, residuals
    )


__all__ = ["PREFILL_GRID", "PrefillCalibration", "calibrate_prefill"]
