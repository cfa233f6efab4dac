"""Every calibration fit, on synthetic measurements made from coefficients written here.

Each fit gets measurements built from known coefficients, exact and with a deterministic noise of
a stated size, and must give those coefficients back: to rounding without noise, within a tolerance
stated (and argued) beside each test with it. Edge cases: a coefficient that is truly zero, too few
or degenerate points, and the residual a fit reports against one computed here with numpy.

The fits: a link's latency and bandwidth (:func:`~exo_runtime.calibrate.fit_link`; the copies
:func:`~exo_runtime.calibrate.measure_link` times are fed to it as :class:`CopyMeasurement` rows),
the prefill compute (:func:`~exo_sim.compute.fit_prefill_cost` on the grid
:func:`~exo_runtime.engine.calibrate_compute.calibrate_prefill` measures, and that function itself
with a model whose times are known). The engine's own costs (call + per-block fits) are tested in
tests/test_calibrate_engine.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from exo_runtime.calibrate import CopyMeasurement, fit_link
from exo_runtime.engine import calibrate_compute
from exo_runtime.engine.calibrate_compute import PREFILL_GRID, PrefillCalibration, calibrate_prefill
from exo_sim.compute import PrefillCost, fit_prefill_cost

SIGNS = list(itertools.product((1.0, -1.0), repeat=3))
"""Every sign pattern of a +-1 % error over three sizes: the noise the noisy link fits are fed."""
SIGN_IDS = ["".join("+" if s > 0 else "-" for s in signs) for signs in SIGNS]


# --------------------------------------------------------------------------- links (fit_link)
def _copies(sizes: list[int], latency_s: float, bytes_per_s: float, factors: list[float]) -> list[CopyMeasurement]:
    """What :func:`measure_link` returns at each size: ``blocks`` copies of ``latency + bytes / rate``."""
    out = []
    for size, f in zip(sizes, factors, strict=True):
        blocks = max(4, 64 * 2**20 // size)  # as measure_link sizes its rounds (64 MiB per size)
        out.append(CopyMeasurement("a", "b", "ram", "shm", size, blocks, blocks * (latency_s + size / bytes_per_s) * f))
    return out


DEFAULT_SIZES = [65536, 1048576, 8388608]  # runtime.calibrate.block_sizes_bytes' default
LINKS = [(3e-6, 12e9), (20e-6, 2e9)]  # (latency s, bytes/s): a memory copy, a drive


def test_copy_measurement_reports_throughput_and_time_per_block() -> None:
    m = CopyMeasurement("a", "b", "ram", "shm", block_bytes=1_000_000, blocks=50, seconds=0.01)
    assert m.bandwidth_gbps == pytest.approx(5.0)  # 50 MB in 10 ms
    assert m.per_block_us == pytest.approx(200.0)


@pytest.mark.parametrize(("latency_s", "bytes_per_s"), LINKS)
def test_fit_link_recovers_latency_and_bandwidth_exactly(latency_s: float, bytes_per_s: float) -> None:
    bw, lat = fit_link(_copies(DEFAULT_SIZES + [262144], latency_s, bytes_per_s, [1.0] * 4))
    assert bw == pytest.approx(bytes_per_s / 1e9, rel=1e-9)
    assert lat == pytest.approx(latency_s * 1e6, abs=1e-6)


@pytest.mark.parametrize(("latency_s", "bytes_per_s"), LINKS)
@pytest.mark.parametrize("signs", SIGNS, ids=SIGN_IDS)
def test_fit_link_under_one_percent_noise(latency_s: float, bytes_per_s: float, signs: tuple[float, ...]) -> None:
    # Each time off by +-1 %. Tolerances: the bandwidth within 2 % (twice the noise); the latency
    # within 2 % of the smallest block's time (twice the noise on the point nearest the intercept).
    # An unweighted fit misses the latency by up to 1 % of the *largest* block's time (8 MiB at
    # 12 GB/s: 7 us, more than the 3 us latency), which this fails.
    eps = 0.01
    bw, lat = fit_link(_copies(DEFAULT_SIZES, latency_s, bytes_per_s, [1 + eps * s for s in signs]))
    smallest_s = latency_s + DEFAULT_SIZES[0] / bytes_per_s
    assert bw == pytest.approx(bytes_per_s / 1e9, rel=2 * eps)
    assert abs(lat - latency_s * 1e6) <= 2 * eps * smallest_s * 1e6


def test_fit_link_reports_a_true_zero_latency_as_the_floor_never_negative() -> None:
    bw, lat = fit_link(_copies(DEFAULT_SIZES, 0.0, 10e9, [1.0] * 3))
    assert bw == pytest.approx(10.0, rel=1e-9) and lat == 0.01  # profiles need a latency > 0
    # noise that pulls the intercept below zero: still the floor, and the bandwidth within 2 %
    noisy = _copies(DEFAULT_SIZES, 0.0, 10e9, [0.99, 1.01, 1.01])
    times = np.array([m.seconds / m.blocks for m in noisy])
    assert np.polyfit(DEFAULT_SIZES, times, 1, w=1 / times)[1] < 0  # the unclipped intercept
    bw, lat = fit_link(noisy)
    assert bw == pytest.approx(10.0, rel=0.02) and lat == 0.01


def test_fit_link_with_one_size_reports_what_that_size_measured() -> None:
    # Documented: the bandwidth measured at the largest size, the smallest per-block time as latency.
    one = _copies([1048576], 5e-6, 4e9, [1.0])
    per_block_s = 5e-6 + 1048576 / 4e9  # 267.144 us
    bw, lat = fit_link(one)
    assert bw == pytest.approx(1048576 / per_block_s / 1e9) and lat == pytest.approx(per_block_s * 1e6)
    # the same size twice is still one size
    assert fit_link(one + _copies([1048576], 5e-6, 4e9, [1.01])) == pytest.approx((bw, lat))


def test_fit_link_falls_back_when_time_falls_with_size() -> None:
    # Not physical (a larger block copied faster): the largest size's bandwidth, the smallest time.
    points = [
        CopyMeasurement("a", "b", "ram", "shm", 65536, 10, 10 * 50e-6),
        CopyMeasurement("a", "b", "ram", "shm", 1048576, 10, 10 * 40e-6),
    ]
    bw, lat = fit_link(points)
    assert bw == pytest.approx(1048576 / 40e-6 / 1e9) and lat == pytest.approx(40.0)


def test_fit_link_refuses_no_measurements_or_zero_times() -> None:
    with pytest.raises(ValueError, match="fit_link needs"):
        fit_link([])
    with pytest.raises(ValueError, match="fit_link needs"):
        fit_link([CopyMeasurement("a", "b", "ram", "shm", 65536, 4, 0.0)])


# --------------------------------------------------------------------------- prefill compute
# A CPU-sized model: 2 ms a forward pass, 150 us a token, 40 ns a (query, key) pair, 2 us a cached
# token; on PREFILL_GRID every term is at least ~3 % of some measurement, above the fit's 1 % tolerance.
PREFILL_TRUE = (2e-3, 150e-6, 40e-9, 2e-6)
PREFILL_NOISE = [1, -1, 1, 1, -1, -1, -1, 1, 1, -1, 1, -1]  # one sign per grid point, fixed


def _grid_times(coef: tuple[float, float, float, float], eps: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PREFILL_GRID's points and their times from ``a + b n + c n (p + n/2) + d p``, written out here."""
    n = np.array([g[0] for g in PREFILL_GRID], dtype=np.float64)
    p = np.array([g[1] for g in PREFILL_GRID], dtype=np.float64)
    a, b, c, d = coef
    seconds = a + b * n + c * n * (p + n / 2) + d * p
    return n, p, seconds * (1 + eps * np.array(PREFILL_NOISE[: n.size], dtype=np.float64))


def _relative_residuals(cost: PrefillCost, n: np.ndarray, p: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    a, b, c, d = cost.a_s, cost.b_s_per_token, cost.c_s_per_token_pair, cost.d_s_per_token
    return (a + b * n + c * n * (p + n / 2) + d * p - seconds) / seconds


def test_the_calibration_grid_identifies_every_prefill_term_exactly() -> None:
    assert len(PREFILL_GRID) == len(PREFILL_NOISE)
    n, p, seconds = _grid_times(PREFILL_TRUE)
    cost, res = fit_prefill_cost(n, p, seconds)
    assert res.dropped == ()
    assert cost.coefficients() == pytest.approx(PREFILL_TRUE, rel=1e-6)
    assert res.max < 1e-9


def test_prefill_fit_under_one_percent_noise_and_its_reported_residuals() -> None:
    # +-1 % on each time. Tolerance 15 % per coefficient: the weakest (a, d) move that much when 1 %
    # of a 3-5 ms point is shared out between them; the reported residuals must be the fit's own.
    n, p, seconds = _grid_times(PREFILL_TRUE, eps=0.01)
    cost, res = fit_prefill_cost(n, p, seconds)
    assert res.dropped == ()
    assert cost.coefficients() == pytest.approx(PREFILL_TRUE, rel=0.15)
    mine = _relative_residuals(cost, n, p, seconds)
    assert res.relative == pytest.approx(mine.tolist(), abs=1e-12)
    assert res.median == pytest.approx(float(np.median(np.abs(mine))), abs=1e-12)
    assert res.max == pytest.approx(float(np.abs(mine).max()), abs=1e-12)
    # least squares on relative error: no worse than the true coefficients' own 1 % (RMS)
    assert float(np.sqrt(np.mean(mine**2))) <= 0.01 + 1e-12


@pytest.mark.parametrize("zero", [0, 3])
def test_prefill_fit_gives_a_true_zero_term_zero_never_negative(zero: int) -> None:
    coef = list(PREFILL_TRUE)
    coef[zero] = 0.0
    for eps in (0.0, 0.01):
        n, p, seconds = _grid_times((coef[0], coef[1], coef[2], coef[3]), eps)
        cost, res = fit_prefill_cost(n, p, seconds)
        got = cost.coefficients()
        assert got[zero] == 0.0 and "ad"[zero // 3] in res.dropped
        assert all(g >= 0 for g in got)
        kept = [i for i in range(4) if i != zero]
        assert [got[i] for i in kept] == pytest.approx([coef[i] for i in kept], rel=1e-6 if eps == 0 else 0.15)


def test_prefill_fit_drops_a_term_under_its_tolerance_even_on_exact_data() -> None:
    # Documented: a term whose removal costs at most ``tolerance`` (one point of median relative error)
    # goes. d = 0.1 us a cached token is at most 1.5 % of a grid point: dropped by default, kept
    # (exactly) with no tolerance.
    coef = (2e-3, 150e-6, 40e-9, 0.1e-6)
    n, p, seconds = _grid_times(coef)
    assert (0.1e-6 * p / seconds).max() < 0.02
    _, res = fit_prefill_cost(n, p, seconds)
    assert res.dropped == ("d",)
    cost, res = fit_prefill_cost(n, p, seconds, tolerance=0.0, max_tolerance=0.0)
    assert res.dropped == () and cost.coefficients() == pytest.approx(coef, rel=1e-6)


def test_prefill_fit_on_degenerate_grids_keeps_the_fewest_terms_that_fit() -> None:
    # One point shows one term; one n cannot tell a from b*n, nor c*n*p from d*p. Documented: the fit
    # keeps the fewest terms that reproduce the grid (their values are then not the device's).
    cost, res = fit_prefill_cost([64], [0], [0.0159])
    assert len(res.dropped) == 3 and res.max < 1e-12
    assert cost.seconds(64, 0) == pytest.approx(0.0159)
    n, p = np.array([64.0, 64.0, 64.0]), np.array([0.0, 256.0, 1024.0])
    a, b, c, d = PREFILL_TRUE
    seconds = a + b * n + c * n * (p + n / 2) + d * p
    cost, res = fit_prefill_cost(n, p, seconds)
    got = cost.coefficients()
    assert res.max < 1e-9 and min(got) >= 0
    assert (got[0] > 0) + (got[1] > 0) == 1 and (got[2] > 0) + (got[3] > 0) == 1
    with pytest.raises(ValueError, match="non-empty"):
        fit_prefill_cost([], [], [])


def test_prefill_calibration_writes_the_fitted_coefficients_into_the_profile() -> None:
    n, p, seconds = _grid_times(PREFILL_TRUE)
    cost, res = fit_prefill_cost(n, p, seconds)
    points = [(int(a), int(b), float(s)) for a, b, s in zip(n, p, seconds, strict=True)]
    cal = PrefillCalibration("tiny_llama_kv", "cpu", "float32", 2, points, cost, res)
    section = yaml.safe_load("\n".join(line for line in cal.yaml_lines() if not line.startswith("#")))
    prefill = section["compute"]["prefill"]
    written = (prefill["a_s"], prefill["b_s_per_token"], prefill["c_s_per_token_pair"], prefill["d_s_per_token"])
    assert written == pytest.approx(PREFILL_TRUE, rel=1e-6)
    assert prefill["payload"] == "tiny_llama_kv" and section["compute"]["compute_element_bytes"] == 4


class _ClockedPrefill:
    """A stand-in for the engine's prefill whose time on a fake clock is known.

    The first timed prefill of each grid point (the warm-up) costs ten times more, and the next three
    1 % more, exactly, and 1 % less than the cost: :func:`calibrate_prefill` must drop the warm-up and
    keep the median.
    """

    clock = [0.0]

    def __init__(self) -> None:
        self.calls: dict[tuple[int, int], int] = {}

    def __call__(self, model: Any, ids: Any, past: Any, cached: int, chunk_tokens: int) -> None:
        n, p = int(ids.shape[0]), int(cached)
        assert (past is None) == (p == 0) and chunk_tokens == 4096
        k = self.calls[(n, p)] = self.calls.get((n, p), 0) + 1
        a, b, c, d = PREFILL_TRUE
        self.clock[0] += (a + b * n + c * n * (p + n / 2) + d * p) * {1: 10.0, 2: 1.01, 3: 1.0, 4: 0.99}[k]


def test_calibrate_prefill_fits_the_times_it_measures(monkeypatch: pytest.MonkeyPatch, make_cfg: Callable[..., Any]) -> None:
    cfg = make_cfg("payload=tiny_llama_kv")
    monkeypatch.setattr(calibrate_compute, "DecoderModel", lambda *a, **k: SimpleNamespace())
    monkeypatch.setattr(calibrate_compute, "check_engine_fits", lambda *a, **k: None)
    monkeypatch.setattr(calibrate_compute, "context_blocks", lambda model, ids, block_tokens: "blocks")
    monkeypatch.setattr(calibrate_compute, "prefill_request", _ClockedPrefill())
    monkeypatch.setattr(calibrate_compute.time, "perf_counter", lambda: _ClockedPrefill.clock[0])
    monkeypatch.setattr(calibrate_compute.torch.cuda, "is_available", lambda: False)
    cal = calibrate_prefill(cfg.payload, 16, seed=0, repeats=3)
    n, p, seconds = _grid_times(PREFILL_TRUE)
    assert [(pt[0], pt[1]) for pt in cal.points] == list(PREFILL_GRID)
    assert [pt[2] for pt in cal.points] == pytest.approx(seconds.tolist(), rel=1e-9)  # median, warm-up dropped
    assert cal.cost.coefficients() == pytest.approx(PREFILL_TRUE, rel=1e-6)
