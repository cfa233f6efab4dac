"""Queueing sanity of the timed model on Poisson workloads: Little's law, an M/D/1 queue for the
compute engine against Pollaczek-Khinchine, and link / engine utilisation against bytes moved (from
the replay) and the prefill cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from omegaconf import DictConfig

from exo_sim.replay import run_replay
from exo_sim.sim.run import run_sim
from tests.simcases import column, latencies, make_cfg, settings_of, simulate

# 4 requests/s: ci_small's derived prefill cost (llama3_8b on its GPU) holds the one compute engine about
# 0.16 s a request on average (load and prefill), so the engine is about two-thirds busy; at 10/s (the
# rate before the compute engine existed) it would be overloaded and its queue grow without bound
POISSON = ["hardware=ci_small", "workload.objects=2000", "workload.accesses=40000", "workload.blocks_per_request=2",
           "sim=poisson", "sim.arrival_rate_per_s=4"]


def batch_se(x: np.ndarray, batches: int = 20) -> float:
    """Standard error of the mean of ``x`` from the means of ``batches`` consecutive batches (batch
    means absorb the correlation between neighbouring requests that a plain sd/sqrt(n) ignores)."""
    means = np.array([b.mean() for b in np.array_split(x, batches)])
    return float(means.std(ddof=1) / np.sqrt(batches))


@pytest.fixture(scope="module")
def poisson_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, object]:
    from hydra import compose, initialize_config_dir

    from exo_sim.cli.entry import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=POISSON)
    sim = run_sim(cfg)
    return run_replay(cfg).summary, sim.summary, sim


def test_littles_law(poisson_run: tuple[dict, dict, object]) -> None:
    """L = lambda W, two ways.

    * Exactly, over the whole run: the time-average number in the system (integrated at every
      arrival and departure) times the makespan is the sum of the latencies, since every request is
      in the system for exactly its TTFT; equal up to float rounding.
    * Statistically, with Poisson arrivals (PASTA): the mean number an arrival finds in the system
      estimates L; lambda = requests / last arrival, W = mean TTFT. The tolerance is 4 batch-means
      standard errors of that mean plus the drain at the end (a few requests' worth over 5,000 s).
    """
    _, s, sim = poisson_run
    req = sim.requests  # type: ignore[attr-defined]
    lat = req["ttft_s"].to_numpy()
    assert s["mean_in_system"] * s["makespan_s"] == pytest.approx(lat.sum(), rel=1e-9)

    seen = req["in_system_at_arrival"].to_numpy().astype(float)
    lam = len(req) / req["arrival_s"].iloc[-1]
    assert lam == pytest.approx(4.0, rel=0.03)  # the process's own rate
    little = lam * lat.mean()
    tol = 4 * batch_se(seen) + 0.01
    assert abs(seen.mean() - little) <= tol, (seen.mean(), little, tol)
    assert 0.1 < little < 5  # a loaded but stable system, where the check means something
    assert 0.3 < s["compute"]["utilisation"] < 0.9


@pytest.mark.parametrize("rho", [0.5, 0.7])
def test_md1_queue_matches_pollaczek_khinchine(rho: float) -> None:
    """One tier, every request two new blocks (block reuse: no hits, nothing loaded): each request
    holds the one compute engine for the same prefill of n = 32 tokens, p = 0, under the cost
    a = 0.25 s, b = 1/64 s a token, c = 1/1024 s a pair: S = 0.25 + 32/64 + 32 x 16/1024 = 1.25 s.
    With Poisson arrivals at rho / S that is M/D/1: the mean wait for the engine is
    Pollaczek-Khinchine's Wq = rho S / (2 (1 - rho)) (0.625 s at rho 0.5, 1.458 s at 0.7)."""
    n, service = 20_000, 0.25 + 32 / 64 + 32 * 16 / 1024
    rate = rho / service
    cfg = make_cfg([2], [], prefill=(0.25, 1 / 64, 1 / 1024, 0.0), arrival="poisson", arrival_rate_per_s=rate)
    assert settings_of(cfg).prefill_cost.seconds(32, 0) == pytest.approx(service)
    m = simulate(cfg, [(0.0, [2 * i, 2 * i + 1]) for i in range(n)])
    queue = np.array(column(m, "queue_s"))
    expected = rho * service / (2 * (1 - rho))
    assert abs(queue.mean() - expected) <= 4 * batch_se(queue), (rho, queue.mean(), expected)
    assert column(m, "compute_s") == pytest.approx([service] * n) and not any(column(m, "load_s"))
    ttft = np.array(latencies(m))
    assert ttft == pytest.approx(queue + service)  # TTFT = queue + load (0) + compute
    assert queue.min() == 0.0  # the first request, at least, finds the engine idle
    assert m.engine_busy_s == pytest.approx(n * service)


def test_utilisation_matches_bytes_moved(poisson_run: tuple[dict, dict, object]) -> None:
    """Each link direction carries exactly the replay's flows that cross it; its utilisation is those
    bytes over bandwidth x makespan (<= 1) and its busy time, in store-and-forward, is one latency
    per transfer plus bytes / bandwidth."""
    rep, s, sim = poisson_run
    flows = {(f["src"], f["dst"]): f["bytes_moved"] for f in rep["links"]}
    order = ["vram", "shared", "ram", "nvme"]

    def crossing(a: str, b: str) -> int:  # a -> b adjacent; sum the flows whose path includes it
        i, j = order.index(a), order.index(b)
        total = 0
        for (src, dst), nbytes in flows.items():
            s_i, d_i = order.index(src), order.index(dst)
            lo, hi = sorted((s_i, d_i))
            if lo <= min(i, j) and max(i, j) <= hi and (d_i - s_i) * (j - i) > 0:
                total += nbytes
        return total

    makespan = s["makespan_s"]
    assert makespan > 0
    for u in s["link_usage"]:
        assert u["bytes_moved"] == crossing(u["src"], u["dst"]), u["link"]
        bw = u["bandwidth_gbps"] * 1e9
        util = u["bytes_moved"] / (bw * u["channels"] * makespan)
        assert u["utilisation"] == pytest.approx(util, rel=1e-12)
        assert 0 <= u["utilisation"] <= u["busy_fraction"] <= 1
        assert u["busy_s"] == pytest.approx(u["transfers"] * u["latency_us"] * 1e-6 + u["bytes_moved"] / bw, rel=1e-9)
    assert sum(u["bytes_moved"] > 0 for u in s["link_usage"]) == 6

    # compute: each request prefills its missing tokens at the profile's cost (block reuse: p = 0) and
    # holds its engine for its load and then its prefill (overlap=none)
    req = sim.requests  # type: ignore[attr-defined]
    assert s["reuse"] == "block" and s["compute"]["overlap"] == "none"
    cost = s["compute"]["prefill_cost"]
    a, b, c = cost["a_s"], cost["b_s_per_token"], cost["c_s_per_token_pair"]
    n = req["prefill_tokens"].to_numpy().astype(float)
    assert req["compute_s"].to_numpy() == pytest.approx(np.where(n > 0, a + b * n + c * n * n / 2, 0.0), rel=1e-9)
    assert s["compute"]["busy_s"] == pytest.approx((req["load_s"] + req["compute_s"]).sum(), rel=1e-9)
    assert (req["ttft_s"] - req["queue_s"] - req["load_s"] - req["compute_s"]).abs().max() < 1e-9
    # codec work: 65,536 x 256 elements at 4 bytes, decoded and re-encoded at ci_small's speeds (GB/s)
    u_bytes = 65_536 * 256 * 4
    enc = {"int8": 4e9, "fp16": 8e9, "fp32": 12e9}
    dec = {"int8": 6e9, "fp16": 8e9, "fp32": 12e9}
    codec = {"vram": "int8", "shared": "int8", "ram": "fp16", "nvme": "fp32"}
    block = {t["name"]: t["block_bytes"] for t in s["tiers"]}
    expected = sum(
        nbytes // block[src] * (u_bytes / dec[codec[src]] + u_bytes / enc[codec[dst]])
        for (src, dst), nbytes in flows.items()
        if codec[src] != codec[dst]
    )
    assert s["codec"]["busy_s"] == pytest.approx(expected, rel=1e-9)
    assert 0 < s["codec"]["utilisation"] <= 1 and 0 < s["compute"]["utilisation"] <= 1


def test_latency_summary_matches_requests(poisson_run: tuple[dict, dict, object]) -> None:
    _, s, sim = poisson_run
    lat = sim.requests["ttft_s"].to_numpy()  # type: ignore[attr-defined]
    assert (lat >= 0).all()
    for q in (50, 95, 99):
        assert s["ttft_s"][f"p{q}"] == pytest.approx(np.percentile(lat, q))
    assert s["latency_s"] == s["ttft_s"]
    assert s["makespan_s"] >= sim.requests["served_s"].max()  # type: ignore[attr-defined]


def test_more_codec_engines_never_hurt(make_cfg: Callable[..., DictConfig]) -> None:
    """Same decisions, eight codec engines instead of one: codec work is the last step of a chain and
    a FIFO queue with more servers starts no job later, so no load ends later, no compute engine is
    let go later and no request waits longer; the tail shrinks."""
    one = run_sim(make_cfg(*POISSON, "workload.accesses=8000"))
    eight = run_sim(make_cfg(*POISSON, "workload.accesses=8000", "sim.codec_workers=8"))
    assert one.summary["tiers"] == eight.summary["tiers"]
    a, b = one.requests["ttft_s"].to_numpy(), eight.requests["ttft_s"].to_numpy()
    assert (b <= a + 1e-9).all()
    assert eight.summary["ttft_s"]["p99"] < one.summary["ttft_s"]["p99"]
    assert eight.summary["codec"]["busy_s"] == pytest.approx(one.summary["codec"]["busy_s"])
