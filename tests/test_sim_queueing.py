"""Queueing sanity of the timed model on Poisson workloads: Little's law, an M/D/1 queue against
Pollaczek-Khinchine, and link / engine utilisation against bytes moved (from the replay)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from omegaconf import DictConfig

from exo_sim.replay import run_replay
from exo_sim.sim.run import run_sim
from tests.simcases import latencies, make_cfg, simulate

POISSON = ["hardware=ci_small", "workload.objects=2000", "workload.accesses=40000", "workload.blocks_per_request=2",
           "sim=poisson", "sim.arrival_rate_per_s=10"]


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
      in the system for exactly its latency; equal up to float rounding.
    * Statistically, with Poisson arrivals (PASTA): the mean number an arrival finds in the system
      estimates L; lambda = requests / last arrival, W = mean latency. The tolerance is 4 batch-means
      standard errors of that mean plus the drain at the end (a few requests' worth over 2,000 s).
    """
    _, s, sim = poisson_run
    req = sim.requests  # type: ignore[attr-defined]
    lat = req["latency_s"].to_numpy()
    assert s["mean_in_system"] * s["makespan_s"] == pytest.approx(lat.sum(), rel=1e-9)

    seen = req["in_system_at_arrival"].to_numpy().astype(float)
    lam = len(req) / req["arrival_s"].iloc[-1]
    assert lam == pytest.approx(10.0, rel=0.03)  # the process's own rate
    little = lam * lat.mean()
    tol = 4 * batch_se(seen) + 0.01
    assert abs(seen.mean() - little) <= tol, (seen.mean(), little, tol)
    assert 0.1 < little < 5  # a loaded but stable system, where the check means something


def test_md1_queue_matches_pollaczek_khinchine() -> None:
    """One tier, every request a new block: recompute is a single server with a deterministic 1 s
    service and Poisson arrivals (M/D/1). Mean latency W = S + lambda S^2 / (2 (1 - rho))."""
    for rate in (0.5, 0.7):
        n = 20_000
        m = simulate(make_cfg([1], [], arrival="poisson", arrival_rate_per_s=rate), [(0.0, [b]) for b in range(n)])
        lat = np.array(latencies(m))
        service, rho = 1.0, rate * 1.0
        expected = service + rate * service**2 / (2 * (1 - rho))
        assert abs(lat.mean() - expected) <= 4 * batch_se(lat), (rate, lat.mean(), expected)
        assert lat.min() == pytest.approx(service)  # nobody is served faster than the recompute
        assert m.prefill_busy_s == pytest.approx(n * service)


def test_utilisation_matches_bytes_moved(poisson_run: tuple[dict, dict, object]) -> None:
    """Each link direction carries exactly the replay's flows that cross it; its utilisation is those
    bytes over bandwidth x makespan (<= 1) and its busy time, in store-and-forward, is one latency
    per transfer plus bytes / bandwidth."""
    rep, s, _ = poisson_run
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

    # recompute: 256 tokens a block at 10,000 tokens/s
    assert s["prefill"]["busy_s"] == pytest.approx(s["recomputed_blocks"] * 256 / 10_000, rel=1e-9)
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
    assert 0 < s["codec"]["utilisation"] <= 1 and 0 < s["prefill"]["utilisation"] <= 1


def test_latency_summary_matches_requests(poisson_run: tuple[dict, dict, object]) -> None:
    _, s, sim = poisson_run
    lat = sim.requests["latency_s"].to_numpy()  # type: ignore[attr-defined]
    assert (lat >= 0).all()
    for q in (50, 95, 99):
        assert s["latency_s"][f"p{q}"] == pytest.approx(np.percentile(lat, q))
    assert s["makespan_s"] >= sim.requests["served_s"].max()  # type: ignore[attr-defined]


def test_more_codec_engines_never_hurt(make_cfg: Callable[..., DictConfig]) -> None:
    """Same decisions, eight codec engines instead of one: codec work is the last step of a chain and
    a FIFO queue with more servers starts no job later, so no request waits longer; the tail shrinks."""
    one = run_sim(make_cfg(*POISSON, "workload.accesses=8000"))
    eight = run_sim(make_cfg(*POISSON, "workload.accesses=8000", "sim.codec_workers=8"))
    assert one.summary["tiers"] == eight.summary["tiers"]
    a, b = one.requests["latency_s"].to_numpy(), eight.requests["latency_s"].to_numpy()
    assert (b <= a + 1e-9).all()
    assert eight.summary["latency_s"]["p99"] < one.summary["latency_s"]["p99"]
    assert eight.summary["codec"]["busy_s"] == pytest.approx(one.summary["codec"]["busy_s"])
