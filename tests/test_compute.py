"""The prefill compute model: derived coefficients, seconds(n, p), the non-negative fit, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from exo_sim.architecture import Architecture
from exo_sim.compute import PrefillCost, derive_prefill_cost, fit_prefill_cost, nnls, resolve_prefill_cost
from exo_sim.config import ComputeConfig
from exo_sim.errors import ConfigError


def test_derived_llama3_8b_on_h100_by_hand(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cost = resolve_prefill_cost(make_cfg("hardware=h100_node", "payload=llama3_8b_kv"))
    assert cost is not None and cost.source == "derived"
    # Llama-3-8B: 32 layers, hidden 4096, intermediate 14336, 32 heads, 8 KV heads, head_dim 128,
    # vocabulary 128256, untied, tp 1, bf16 weights. Per layer, the linear weights:
    q = o = 4096 * 4096  # 16,777,216 each
    k = v = 4096 * 8 * 128  # 4,194,304 each
    mlp = 3 * 4096 * 14336  # gate, up, down: 176,160,768
    per_layer = q + k + v + o + mlp
    assert per_layer == 218_103_808
    layers = 32 * per_layer  # 6,979,321,856
    lm_head = embedding = 128256 * 4096  # 525,336,576 each
    norms = (2 * 32 + 1) * 4096
    assert layers + norms + lm_head + embedding == 8_030_261_248  # the model card's count
    weight_bytes = 2 * (layers + norms + lm_head + embedding)  # bf16: 16,060,522,496 B
    # H100 SXM: 989 TFLOP/s bf16 dense x 0.5 assumed; 3.35 TB/s x 0.8 assumed; 2 ms per forward pass
    flops = 989e12 * 0.5  # 4.945e14 FLOP/s
    mem = 3.35e12 * 0.8  # 2.68e12 B/s
    b = 2 * layers / flops  # 1.3958643712e10 / 4.945e14 = 2.8228e-5 s/token
    c = 4 * 32 * 32 * 128 / flops  # 524,288 FLOPs per (query, key) pair / 4.945e14 = 1.0602e-9 s
    d = 2 * 32 * 8 * 128 * 2 / mem  # 131,072 B of KV per cached token / 2.68e12 = 4.8907e-8 s
    a = 0.002 + (weight_bytes - 2 * embedding) / mem + 2 * lm_head / flops  # 2 ms + 5.6007 ms + 2.1 us
    assert cost.b_s_per_token == pytest.approx(b, rel=1e-12)
    assert cost.c_s_per_token_pair == pytest.approx(c, rel=1e-12)
    assert cost.d_s_per_token == pytest.approx(d, rel=1e-12)
    assert cost.a_s == pytest.approx(a, rel=1e-12)
    assert cost.b_s_per_token == pytest.approx(2.8228e-5, rel=1e-4)
    assert cost.a_s == pytest.approx(7.6028e-3, rel=1e-4)
    assert "assumed" in cost.basis


def test_derive_scales_with_tensor_parallel() -> None:
    arch1 = Architecture(32, 4096, 14336, 32, 8, 128, 128256)
    arch2 = Architecture(32, 4096, 14336, 32, 8, 128, 128256, tensor_parallel=2)
    compute = ComputeConfig(peak_flops=1e15, flops_efficiency=1.0, memory_bytes_per_s=1e12, memory_efficiency=1.0)
    one = derive_prefill_cost(arch1, compute, 0)
    two = derive_prefill_cost(arch2, compute, 0)
    assert two.c_s_per_token_pair == pytest.approx(one.c_s_per_token_pair / 2)
    assert two.d_s_per_token == pytest.approx(one.d_s_per_token / 2)
    assert two.b_s_per_token == pytest.approx(one.b_s_per_token / 2, rel=1e-3)


def test_seconds_on_hand_values() -> None:
    cost = PrefillCost(0.01, 1e-4, 1e-8, 1e-6, "calibrated")
    # 0.01 + 1e-4 x 1000 + 1e-8 x 1000 x (2000 + 500) + 1e-6 x 2000 = 0.01 + 0.1 + 0.025 + 0.002
    assert cost.seconds(1000, 2000) == pytest.approx(0.137, rel=1e-12)
    assert isinstance(cost.seconds(1000, 2000), float)
    assert cost.seconds(1) == pytest.approx(0.01 + 1e-4 + 1e-8 * 0.5, rel=1e-12)
    assert cost.seconds(0, 5000) == 0.0  # nothing to compute: no forward pass
    got = cost.seconds(np.array([1000, 1000, 0]), np.array([2000, 0, 10]))
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, [0.137, 0.01 + 0.1 + 0.005, 0.0], rtol=1e-12)


def test_prefill_cost_refuses_negative_coefficients() -> None:
    with pytest.raises(ValueError, match="a_s"):
        PrefillCost(-1e-3, 0.0, 0.0, 0.0, "calibrated")
    with pytest.raises(ValueError, match="source"):
        PrefillCost(0.0, 0.0, 0.0, 0.0, "guessed")


# --- fitting ----------------------------------------------------------------------------------------

GRID_N = np.array([1, 4, 16, 64, 256, 1024, 2048, 4096])
GRID_P = np.array([0, 256, 2048, 8192, 16384])


def _grid() -> tuple[np.ndarray, np.ndarray]:
    n, p = np.meshgrid(GRID_N, GRID_P)
    return n.ravel().astype(float), p.ravel().astype(float)


def _measure(true: PrefillCost, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, p = _grid()
    rng = np.random.default_rng(seed)
    seconds = np.asarray(true.seconds(n, p)) * np.exp(rng.normal(0.0, noise, n.size))
    return n, p, seconds


TRUE = PrefillCost(2.5e-3, 2.3e-4, 4.3e-8, 1.5e-7, "derived")


def test_fit_recovers_exact_coefficients() -> None:
    n, p, seconds = _measure(TRUE, noise=0.0)
    cost, res = fit_prefill_cost(n, p, seconds)
    assert cost.source == "calibrated" and res.dropped == ()
    np.testing.assert_allclose(cost.coefficients(), TRUE.coefficients(), rtol=1e-6)
    assert res.max < 1e-9 and len(res.relative) == n.size


def test_fit_recovers_coefficients_under_noise() -> None:
    n, p, seconds = _measure(TRUE, noise=0.02, seed=1)
    cost, res = fit_prefill_cost(n, p, seconds)
    assert res.dropped == ()
    np.testing.assert_allclose(cost.coefficients(), TRUE.coefficients(), rtol=0.1)
    assert res.median < 0.03 and res.max < 0.1
    assert "median relative error" in cost.basis


@pytest.mark.parametrize("zero", ["a", "d"])
def test_fit_drops_a_true_zero_term(zero: str) -> None:
    coefs = dict(zip("abcd", TRUE.coefficients(), strict=True))
    coefs[zero] = 0.0
    true = PrefillCost(coefs["a"], coefs["b"], coefs["c"], coefs["d"], "derived")
    n, p, seconds = _measure(true, noise=0.02, seed=2)
    cost, res = fit_prefill_cost(n, p, seconds)
    assert res.dropped == (zero,)
    fitted = dict(zip("abcd", cost.coefficients(), strict=True))
    assert fitted[zero] == 0.0
    for term in "abcd":
        if term != zero:
            assert fitted[term] == pytest.approx(coefs[term], rel=0.1)
    assert res.median < 0.03


def test_fit_is_non_negative_where_least_squares_is_not() -> None:
    # b x n + c x n^2/2 minus a fixed 2 ms: unconstrained least squares wants a < 0 (as the probe
    # fitted); the fit keeps every coefficient >= 0.
    n = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
    p = np.zeros_like(n)
    seconds = 1e-4 * n + 1e-8 * n * n / 2 - 2e-3
    design = np.column_stack([np.ones_like(n), n, n * n / 2]) / seconds[:, None]
    unconstrained = np.linalg.lstsq(design, np.ones_like(n), rcond=None)[0]
    assert unconstrained[0] < 0
    cost, res = fit_prefill_cost(n, p, seconds)
    assert all(c >= 0 for c in cost.coefficients())
    assert cost.a_s == 0.0 and "a" in res.dropped


def test_fit_refuses_bad_measurements() -> None:
    with pytest.raises(ValueError, match="one length"):
        fit_prefill_cost([1, 2], [0], [1.0, 2.0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        fit_prefill_cost([0], [0], [1.0])
    with pytest.raises(ValueError, match="> 0 seconds"):
        fit_prefill_cost([1], [0], [0.0])


def _nnls_brute_force(a: np.ndarray, y: np.ndarray) -> float:
    """The NNLS optimum's residual norm: the best unconstrained fit on a support that stays >= 0."""
    best = float(np.linalg.norm(y))
    for size in range(1, a.shape[1] + 1):
        for cols in itertools.combinations(range(a.shape[1]), size):
            x = np.linalg.lstsq(a[:, cols], y, rcond=None)[0]
            if np.all(x >= 0):
                best = min(best, float(np.linalg.norm(a[:, cols] @ x - y)))
    return best


def test_nnls_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        m, k = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        a = rng.normal(size=(m, k)) * 10.0 ** rng.integers(-6, 6, size=k)
        y = rng.normal(size=m)
        x = nnls(a, y)
        assert np.all(x >= 0)
        assert np.linalg.norm(a @ x - y) <= _nnls_brute_force(a, y) + 1e-9 * np.linalg.norm(y)


# --- resolving from a composed config ----------------------------------------------------------------


def test_fitted_coefficients_are_used_as_given(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        "hardware=ci_cpu",
        "payload=llama3_8b_kv",
        "hardware.compute.prefill.b_s_per_token=1e-5",
        "hardware.compute.prefill.c_s_per_token_pair=2e-9",
        "hardware.compute.prefill.payload=llama3_8b_kv",
    )
    cost = resolve_prefill_cost(cfg)
    assert cost == PrefillCost(0.0, 1e-5, 2e-9, 0.0, "calibrated", cost.basis)  # type: ignore[union-attr]


def test_no_compute_model_is_none(make_cfg) -> None:  # type: ignore[no-untyped-def]
    assert resolve_prefill_cost(make_cfg("payload=rag_chunk_minilm")) is None
    assert resolve_prefill_cost(make_cfg("payload.hidden_size=0")) is None  # KV shape only
    assert (
        resolve_prefill_cost(make_cfg("hardware.compute.peak_flops=null", "hardware.compute.memory_bytes_per_s=null"))
        is None
    )


def test_every_shipped_profile_derives_a_cost(make_cfg) -> None:  # type: ignore[no-untyped-def]
    for hardware in ("seed_workstation", "h100_node", "ci_small", "ci_cpu", "single_tier"):
        cost = resolve_prefill_cost(make_cfg(f"hardware={hardware}", "payload=llama3_8b_kv"))
        assert cost is not None and cost.source == "derived", hardware
        assert all(c > 0 for c in cost.coefficients()), hardware


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["hardware.compute.peak_flops=0"], "hardware.compute.peak_flops", "must be > 0"),
        (["hardware.compute.peak_flops=-1e12"], "hardware.compute.peak_flops", "must be > 0"),
        (["hardware.compute.flops_efficiency=0"], "hardware.compute.flops_efficiency", "in (0, 1]"),
        (["hardware.compute.flops_efficiency=1.2"], "hardware.compute.flops_efficiency", "in (0, 1]"),
        (["hardware.compute.memory_efficiency=-0.5"], "hardware.compute.memory_efficiency", "in (0, 1]"),
        (["hardware.compute.memory_efficiency=1.01"], "hardware.compute.memory_efficiency", "in (0, 1]"),
        (["hardware.compute.memory_bytes_per_s=0"], "hardware.compute.memory_bytes_per_s", "must be > 0"),
        (["hardware.compute.memory_bytes_per_s=-3e9"], "hardware.compute.memory_bytes_per_s", "must be > 0"),
        (["hardware.compute.memory_bytes_per_s=null"], "hardware.compute.memory_bytes_per_s", "is not given"),
        (["hardware.compute.forward_overhead_s=-0.001"], "hardware.compute.forward_overhead_s", "must be >= 0"),
        (["hardware.compute.prefill.a_s=-1e-3"], "hardware.compute.prefill.a_s", "must be >= 0"),
        (["hardware.compute.prefill.b_s_per_token=-1e-6"], "hardware.compute.prefill.b_s_per_token", "must be >= 0"),
        (["hardware.compute.prefill.c_s_per_token_pair=-1e-9"], "hardware.compute.prefill.c_s_per_token_pair", "must be >= 0"),
        (["hardware.compute.prefill.d_s_per_token=-1e-7"], "hardware.compute.prefill.d_s_per_token", "must be >= 0"),
        (["hardware.compute.prefill.a_s=1e-3", "hardware.compute.prefill.payload=llama3_70b_kv"],
         "hardware.compute.prefill.payload", "measured with"),
        (["hardware=ci_cpu", "hardware.compute.peak_flops=0"], "hardware.compute.peak_flops", "must be > 0"),
        (["payload=rag_chunk_minilm", "hardware.compute.flops_efficiency=2"], "hardware.compute.flops_efficiency", "in (0, 1]"),
    ],
)
def test_bad_compute_names_key(make_cfg, overrides, key, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        resolve_prefill_cost(make_cfg(*overrides))
    assert err.value.key == key
    message = str(err.value)
    assert f"`{key}`" in message and fragment in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0


def test_error_names_where_the_value_came_from(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        resolve_prefill_cost(make_cfg("hardware.compute.peak_flops=0"), locate=lambda key: "the command line")
    assert "(the command line)" in str(err.value)
