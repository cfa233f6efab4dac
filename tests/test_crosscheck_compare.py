"""The cross-check's comparison, verdicts, summary line and report on hand-made results.

Every expected value below is worked out by hand in the comments (numpy's percentile is linear:
the p-th percentile of n sorted values sits at position p/100 * (n - 1)).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from experiments.crosschecking.compare import Comparison, compare, compare_occupancy, compare_requests, ttft_shares
from experiments.crosschecking.pair import RunPair as Pair
from experiments.crosschecking.report import (
    ReportInputs,
    request_errors_frame,
    results_frame,
    write_report,
    write_tables,
)
from experiments.crosschecking.verdict import (
    SuiteErrors,
    Targets,
    passes,
    suite_errors,
    suite_misses,
    summary_line,
    verdict_line,
)


def tier(name: str, **counts: float) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "hits": 10, "misses": 5, "promotions": 3, "demotions": 4, "evictions": 4,
                           "drops": 0, "writes": 9, "final_occupancy_blocks": 2, "peak_occupancy_blocks": 2,
                           "mean_occupancy_blocks": 1.5, "block_bytes": 1024, "hit_ratio": 10 / 15}
    row.update(counts)
    return row


def summary(makespan_s: float = 10.0, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": 6, "accesses": 15, "new_blocks": 0, "recomputed_blocks": 5,
        "tiers": [tier("shared"), tier("ram", hits=3, misses=2, promotions=0)],
        "links": [{"src": "ram", "dst": "shared", "bytes_moved": 3072}],
        "makespan_s": makespan_s,
        "link_usage": [{"src": "ram", "dst": "shared", "bytes_moved": 3072, "busy_s": 0.2}],
        "config": {"workload": {"kind": "zipf"}, "policy": {"name": "lru"}, "codec": {"name": "fp16"},
                   "hierarchy": {"mode": "exclusive"}},
    }
    out.update(extra)
    return out


def series(*occupancy: tuple[int, str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"access_index": a, "tier": t, "occupancy_blocks": n, "time_s": float(a),
                          "occupancy": n / 2} for a, t, n in occupancy])


SERIES = series((0, "shared", 0), (0, "ram", 0), (8, "shared", 2), (8, "ram", 1), (15, "shared", 2), (15, "ram", 2))


def requests(ttft_s: list[float], refused: list[bool] | None = None, cached: list[int] | None = None,
             queue_s: list[float] | None = None, load_s: list[float] | None = None) -> pd.DataFrame:
    """A requests.parquet: parts default to all compute; hits default to 256 cached tokens per request."""
    n = len(ttft_s)
    queue = queue_s or [0.0] * n
    load = load_s or [0.0] * n
    return pd.DataFrame({
        "request": range(n),
        "arrival_s": [float(i) for i in range(n)],
        "ttft_s": ttft_s,
        "queue_s": queue,
        "load_s": load,
        "compute_s": [t - q - lo for t, q, lo in zip(ttft_s, queue, load, strict=True)],
        "prompt_tokens": [1024] * n,
        "cached_tokens": cached or [256] * n,
        "prefill_tokens": [768] * n,
        "stranded_blocks": [0] * n,
        "refused": refused or [False] * n,
    })


# Config a: 5 served requests and a sixth refused by both clocks (its TTFT must not count).
# e_i = (model - runtime) / runtime = +0.10, -0.10, 0, +0.20, 0 -> |e| sorted 0, 0, 0.1, 0.1, 0.2:
# median 0.1; p99 at position 3.96: 0.1 + 0.96 * 0.1 = 0.196.
# The run's p99: runtime sorted 1, 2, 4, 5, 10 -> 5 + 0.96 * 5 = 9.8; model 1.1, 1.8, 4, 6, 10 -> 6 + 0.96 * 4
# = 9.84; error 0.04 / 9.8. p50: 4 and 4, error 0. Makespan 11 vs 10: +0.1.
A_RUNTIME = [1.0, 2.0, 4.0, 5.0, 10.0, 0.3]
A_MODEL = [1.1, 1.8, 4.0, 6.0, 10.0, 0.0]
A_REFUSED = [False] * 5 + [True]


def config_a() -> Comparison:
    return compare("a", summary(11.0), summary(10.0), SERIES, SERIES.copy(),
                   requests(A_MODEL, A_REFUSED), requests(A_RUNTIME, A_REFUSED))


def config_b() -> Comparison:
    # e_i = 0.25 for all four: median 0.25; p99 2.5 vs 2: +0.25; makespan 9.5 vs 10: -0.05.
    return compare("b", summary(9.5, requests=4), summary(10.0, requests=4), SERIES, SERIES.copy(),
                   requests([2.5] * 4), requests([2.0] * 4))


def config_c() -> Comparison:
    # e_i = -0.05, 0, +0.1: median |e| 0.05. p99 at position 1.98: runtime 2 + 0.98 * 2 = 3.96, model
    # 2 + 0.98 * 2.4 = 4.352, error 0.392 / 3.96. Makespan 7 vs 10: -0.3. Request 1's hits differ.
    return compare("c", summary(7.0, requests=3), summary(10.0, requests=3), SERIES, SERIES.copy(),
                   requests([0.95, 2.0, 4.4]), requests([1.0, 2.0, 4.0], cached=[256, 0, 256]))


def test_identical_hits_pass_and_ttft_errors_are_per_served_request() -> None:
    c = config_a()
    assert c.identical and c.differences == []
    assert c.requests_compared == 6
    # 4 run-wide counts, 10 per tier x 2, 1 link, 6 occupancy samples, 4 request columns x 6 requests
    assert c.checked == 4 + 20 + 1 + 6 + 24
    assert c.ttft["request"].tolist() == [0, 1, 2, 3, 4]  # the refused one is left out
    assert c.ttft["error"].tolist() == pytest.approx([0.1, -0.1, 0.0, 0.2, 0.0])
    assert c.ttft_median_abs_error == pytest.approx(0.1)
    assert c.ttft_p99_abs_error == pytest.approx(0.196)
    assert c.error("ttft_p50_s") == pytest.approx(0.0)
    assert c.ttft_p99_error == pytest.approx(0.04 / 9.8)
    assert c.makespan_error == pytest.approx(0.1)


def test_one_requests_cached_tokens_changed_fails_the_hits_check() -> None:
    c = config_c()
    assert not c.identical
    assert c.differences == ["request 1: cached_tokens model 256, runtime 0"]
    assert not passes(c, Targets(ttft_median=1.0, ttft_p99=1.0, makespan=1.0))
    assert verdict_line(c, Targets()).startswith("c: hits DIFFER: request 1: cached_tokens model 256, runtime 0;")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("stranded_blocks", 2, "request 3: stranded_blocks model 0, runtime 2"),
        ("prefill_tokens", 512, "request 3: prefill_tokens model 768, runtime 512"),
        ("refused", True, "request 3: refused model False, runtime True"),
    ],
)
def test_each_per_request_decision_is_checked(column: str, value: Any, expected: str) -> None:
    sim = requests([1.0] * 5)
    runtime = sim.copy()
    runtime.loc[3, column] = value
    diffs, checked, n = compare_requests(sim, runtime)
    assert diffs == [expected] and checked == 4 * 5 and n == 5


def test_a_request_only_one_clock_has_is_a_difference() -> None:
    sim = requests([1.0] * 5)
    diffs, _, n = compare_requests(sim, sim.iloc[:4])
    assert diffs == ["requests: 1 only in the model's requests.parquet, first request 4"] and n == 4
    diffs, _, _ = compare_requests(sim, sim.drop(columns="stranded_blocks"))
    assert diffs == ["requests.parquet: column stranded_blocks missing from the runtime's"]


def test_a_changed_count_fails_and_says_where() -> None:
    rt = summary()
    sim = copy.deepcopy(rt)
    sim["tiers"][1]["evictions"] = 5
    frames = requests([1.0] * 6)
    c = compare("cfg", sim, rt, SERIES, SERIES.copy(), frames, frames.copy())
    assert c.differences == ["tier ram: evictions model 5, runtime 4"]


def test_occupancy_differences_name_the_tier_and_access_index() -> None:
    other = SERIES.copy()
    other.loc[(other["access_index"] == 8) & (other["tier"] == "ram"), "occupancy_blocks"] = 2
    diffs, checked = compare_occupancy(SERIES, other)
    assert diffs == ["occupancy of tier ram at access 8: model 1, runtime 2 blocks"]
    assert checked == len(SERIES)


def test_links_compare_the_models_pair_usage_with_the_runtimes_measured_links() -> None:
    rt = summary(measured={"links": [{"src": "ram", "dst": "shared", "bytes": 3072, "blocks": 3, "seconds": 0.2}]})
    sim = summary(pair_usage=[{"src": "ram", "dst": "shared", "blocks": 3, "bytes_moved": 3072, "busy_s": 0.25},
                              {"src": "shared", "dst": "ram", "blocks": 4, "bytes_moved": 4096, "busy_s": 0.1}])
    frames = requests([1.0] * 6)
    c = compare("cfg", sim, rt, SERIES, SERIES.copy(), frames, frames.copy())
    assert c.links_basis == "pair_usage"
    assert c.error("link_bytes", "ram->shared") == 0.0
    assert c.error("link_busy_s", "ram->shared") == pytest.approx(0.25)  # 0.25 s against 0.2 s
    assert math.isinf(c.error("link_busy_s", "shared->ram"))  # the runtime never copied that pair
    # without pair_usage the model's link_usage is its side
    plain = compare("cfg", summary(link_usage=[{"src": "ram", "dst": "shared", "bytes_moved": 3072, "busy_s": 0.3}]),
                    rt, SERIES, SERIES.copy(), frames, frames.copy())
    assert plain.links_basis == "link_usage"
    assert plain.error("link_busy_s", "ram->shared") == pytest.approx(0.5)


def test_ttft_shares_over_served_requests() -> None:
    # served: queue 0.1 + 0.3 = 0.4, load 0.2 + 0.2 = 0.4, compute 0.7 + 0.5 = 1.2 of 2.0; the refused
    # request's 5 s of queueing is left out.
    frame = requests([1.0, 1.0, 5.0], refused=[False, False, True], queue_s=[0.1, 0.3, 5.0], load_s=[0.2, 0.2, 0.0])
    assert ttft_shares(frame) == pytest.approx({"queue": 0.2, "load": 0.2, "compute": 0.6})
    c = compare("s", summary(requests=3), summary(requests=3), SERIES, SERIES.copy(),
                requests([1.0, 1.0, 5.0], refused=[False, False, True], load_s=[0.5, 0.5, 0.0]), frame)
    share = {m.where: (m.sim, m.runtime) for m in c.metrics if m.kind == "share"}
    assert share["queue"] == pytest.approx((0.0, 0.2))
    assert share["load"] == pytest.approx((0.5, 0.2))
    assert share["compute"] == pytest.approx((0.5, 0.6))


def test_summary_line_and_suite_errors_by_hand() -> None:
    comps = [config_a(), config_b(), config_c()]
    errors = suite_errors(comps)
    assert (errors.identical, errors.configs) == (2, 3)
    assert errors.ttft_median == pytest.approx(0.10)  # median of 0.10, 0.25, 0.05
    assert errors.ttft_p99 == pytest.approx(0.392 / 3.96)  # median of 0.04 / 9.8, 0.25, 0.392 / 3.96
    assert errors.makespan_median == pytest.approx(0.10)  # median of 0.10, 0.05, 0.30
    assert errors.makespan_worst == pytest.approx(0.30)
    assert summary_line(comps) == ("hits identical 2/3; TTFT error median 10.0%, p99 9.9%; "
                                   "makespan error median 10.0%, worst 30.0%")
    assert suite_misses(errors, Targets()) == [
        "hits identical on 2 of 3 configs, not all",
        "makespan error median 10.0% > 5.0%",
        "makespan error worst 30.0% > 15.0%",
    ]


def test_suite_misses_each_target_and_meets_them_all() -> None:
    good = SuiteErrors(4, 4, ttft_median=0.08, ttft_p99=0.12, makespan_median=0.04, makespan_worst=0.14)
    assert suite_misses(good, Targets()) == []
    bad = SuiteErrors(4, 4, ttft_median=0.11, ttft_p99=0.16, makespan_median=0.04, makespan_worst=math.nan)
    assert suite_misses(bad, Targets()) == ["TTFT error median 11.0% > 10.0%", "TTFT p99 error median 16.0% > 15.0%",
                                            "makespan error worst has no value"]


def test_per_config_verdicts_against_the_callers_targets() -> None:
    a, b = config_a(), config_b()
    loose = Targets(ttft_median=0.12, ttft_p99=0.15, makespan=0.15)
    assert passes(a, loose) and not passes(b, loose)  # b: median |e| 25 %
    assert not passes(a, Targets(ttft_median=0.08))
    assert not passes(a, Targets(makespan=0.05))  # a's makespan is 10 % off
    assert verdict_line(a, loose) == ("a: hits identical (6 requests, 55 values); TTFT median |err| 10.0%, "
                                      "p99 err +0.4%, makespan err +10.0% -> PASS")
    assert verdict_line(b, loose).endswith("TTFT median |err| 25.0%, p99 err +25.0%, makespan err -5.0% -> FAIL")
    with pytest.raises(ValueError, match="target ttft_median must be a positive fraction"):
        Targets(ttft_median=0.0)


def test_results_and_request_errors_frames() -> None:
    comps = [config_a(), config_c()]
    frame = results_frame(comps, Targets(ttft_median=0.12))
    decisions = frame[frame["kind"] == "decisions"]
    assert decisions["identical"].tolist() == [True, False]
    assert decisions["detail"].tolist() == ["", "request 1: cached_tokens model 256, runtime 0"]
    medians = frame[frame["metric"] == "median_abs_error"]["rel_error"].tolist()
    assert medians == pytest.approx([0.1, 0.05])
    assert frame[frame["metric"] == "makespan_s"]["rel_error"].tolist() == pytest.approx([0.1, -0.3])
    assert frame.groupby("config")["passes"].first().to_dict() == {"a": True, "c": False}
    per_request = request_errors_frame(comps)
    assert list(per_request.columns) == ["config", "request", "model_ttft_s", "runtime_ttft_s", "error"]
    assert per_request["config"].tolist() == ["a"] * 5 + ["c"] * 3
    assert per_request[per_request["config"] == "c"]["error"].tolist() == pytest.approx([-0.05, 0.0, 0.1])


def test_a_report_is_written_with_its_figures(tmp_path: Path) -> None:
    from experiments.crosschecking.compare import compare_pair

    wide = [0.002 * 3**i for i in range(8)]  # 2 ms to 4.4 s: the scatter goes log-log
    pairs = [
        Pair("zipf", summary(11.0), SERIES, requests(A_MODEL, A_REFUSED), summary(10.0), SERIES.copy(),
             requests(A_RUNTIME, A_REFUSED, queue_s=[0.1] * 6, load_s=[0.2] * 6), [10.2, 10.0, 9.7],
             {"compute.prefill": "calibrated on this host", "links.ram->shared": "assumption"}),
        Pair("agents", summary(9.0, requests=8), SERIES, requests([t * 1.1 for t in wide]),
             summary(10.0, requests=8), SERIES.copy(), requests(wide), [10.0],
             {"compute.prefill": "calibrated on this host", "links.ram->shared": "assumption"}),
    ]
    comps = [compare_pair(p) for p in pairs]
    inputs = ReportInputs(suite="unit", host=SimpleNamespace(profile="crosscheck", calibration=None),  # type: ignore[arg-type]
                          pairs=pairs, targets=Targets(), load_before=(0.5, 0.4, 0.3),  # type: ignore[arg-type]
                          load_after=(0.6, 0.5, 0.4), elapsed_s=12.0, cpus=2)
    md, html = write_report(comps, inputs, tmp_path)
    text = md.read_text()
    assert f"**{summary_line(comps)}**" in text
    for heading in ("## What ran where", "## Calibrated on this host, and assumptions", "## Decisions",
                    "## Time to first token", "## Makespan", "## Links", "## Where TTFT goes", "## Figures"):
        assert heading in text
    assert "| compute.prefill | calibrated on this host |" in text
    assert "| links.ram->shared | assumption |" in text
    for png in ("ttft_errors_by_config.png", "ttft_zipf.png", "ttft_agents.png"):
        assert (tmp_path / png).stat().st_size > 10_000
        assert f"({png})" in text and f'<img src="{png}"' in html.read_text()
    results, per_request = write_tables(comps, tmp_path)
    assert set(pd.read_parquet(results)["config"]) == {"zipf", "agents"}
    assert len(pd.read_parquet(per_request)) == 5 + 8
