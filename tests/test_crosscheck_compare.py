"""The cross-check's comparison logic on constructed results: identical decisions pass, a changed count
fails and says where, time errors are (model - runtime) / runtime, the summary line is exact."""

from __future__ import annotations

import copy
import math
from typing import Any

import pandas as pd
import pytest

from experiments.crosschecking.compare import Comparison, Metric, compare, compare_occupancy
from experiments.crosschecking.report import results_frame, summary_line


def tier(name: str, **counts: float) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "hits": 10, "misses": 5, "promotions": 3, "demotions": 4, "evictions": 4,
                           "drops": 0, "writes": 9, "final_occupancy_blocks": 2, "peak_occupancy_blocks": 2,
                           "mean_occupancy_blocks": 1.5}
    row.update(counts)
    return row


def summary(makespan_s: float = 2.0, p99_s: float = 0.1, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": 4, "accesses": 15, "new_blocks": 0, "recomputed_blocks": 5,
        "tiers": [tier("shared"), tier("ram", hits=3, misses=2, promotions=0)],
        "links": [{"src": "ram", "dst": "shared", "bytes_moved": 3072}],
        "makespan_s": makespan_s,
        "latency_s": {"p50": p99_s / 4, "p95": p99_s / 2, "p99": p99_s},
        "compute": {"busy_s": 0.5}, "codec": {"busy_s": 0.25},
        "link_usage": [{"src": "ram", "dst": "shared", "bytes_moved": 3072, "busy_s": 0.2}],
    }
    out.update(extra)
    return out


def series(*occupancy: tuple[int, str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"access_index": a, "tier": t, "occupancy_blocks": n, "time_s": float(a),
                          "occupancy": n / 2} for a, t, n in occupancy])


SERIES = series((0, "shared", 0), (0, "ram", 0), (8, "shared", 2), (8, "ram", 1), (15, "shared", 2), (15, "ram", 2))


def test_identical_decisions_pass_and_time_errors_are_relative_to_the_runtime() -> None:
    c = compare("cfg", summary(makespan_s=2.2, p99_s=0.09), summary(), SERIES, SERIES.copy())
    assert c.identical and c.differences == []
    assert c.checked == 4 + 2 * 10 + 1 + len(SERIES)  # top-level counts, tiers, link bytes, occupancy samples
    assert c.error("makespan_s") == pytest.approx(0.1)
    assert c.error("latency_p99_s") == pytest.approx(-0.1)
    assert c.passes(0.15) and not c.passes(0.05)
    assert c.verdict(0.15).startswith("cfg: decisions identical (") and c.verdict(0.15).endswith("-> PASS")
    assert "makespan model 2.2 s vs runtime 2 s (+10.0%)" in c.verdict(0.15)


def test_a_changed_count_fails_and_says_where() -> None:
    rt = summary()
    sim = copy.deepcopy(rt)
    sim["tiers"][1]["evictions"] = 5
    c = compare("cfg", sim, rt, SERIES, SERIES.copy())
    assert not c.identical and not c.passes(1.0)
    assert c.differences == ["tier ram: evictions model 5, runtime 4"]
    assert "decisions DIFFER: tier ram: evictions model 5, runtime 4 -> FAIL" in c.verdict(0.15).replace(
        "; makespan model 2 s vs runtime 2 s (+0.0%); p99 model 100 ms vs runtime 100 ms (+0.0%)", "")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(recomputed_blocks=6), "recomputed_blocks: model 6, runtime 5"),
        (lambda s: s["tiers"][0].update(mean_occupancy_blocks=1.25), "tier shared: mean_occupancy_blocks model 1.25, "
                                                                       "runtime 1.5"),
        (lambda s: s["links"][0].update(bytes_moved=4096), "bytes moved ram->shared: model 4096, runtime 3072"),
        (lambda s: s["host"].update(batches=7), "batches of moves: model 7, runtime 6"),
    ],
)
def test_each_kind_of_decision_difference_is_named(change: Any, expected: str) -> None:
    rt = summary(runtime={"batches": 6})
    sim = copy.deepcopy(rt)
    sim["host"] = {"batches": 6, "pair_usage": []}
    change(sim)
    c = compare("cfg", sim, rt, SERIES, SERIES.copy())
    assert c.differences == [expected]


def test_occupancy_differences_name_the_tier_and_access_index() -> None:
    other = SERIES.copy()
    other.loc[(other["access_index"] == 8) & (other["tier"] == "ram"), "occupancy_blocks"] = 2
    diffs, checked = compare_occupancy(SERIES, other)
    assert diffs == ["occupancy of tier ram at access 8: model 1, runtime 2 blocks"]
    assert checked == len(SERIES)
    missing = SERIES[SERIES["access_index"] != 15]
    diffs, _ = compare_occupancy(missing, SERIES)
    assert diffs == ["occupancy samples: 2 (access index, tier) samples only in one series, first access 15 tier "
                     "ram only in the runtime's"]


def test_pairs_compare_the_models_serial_usage_with_the_runtimes_links_and_births() -> None:
    rt = summary(measured={"births": {"generate_s": 0.4, "writes": [{"dst": "shared", "bytes": 5120,
                                                                        "seconds": 0.01}]},
                           "codecs": [{"encode_s": 0.1, "decode_s": 0.1}]})
    sim = summary(host={"batches": 3, "pair_usage": [
        {"src": "ram", "dst": "shared", "bytes_moved": 3072, "busy_s": 0.25},
        {"src": "birth", "dst": "shared", "bytes_moved": 5120, "busy_s": 0.02},
        {"src": "shared", "dst": "ram", "bytes_moved": 4096, "busy_s": 0.1},
    ]})
    c = compare("cfg", sim, rt, SERIES, SERIES.copy())
    busy = {m.where: m for m in c.metrics if m.name == "link_busy_s"}
    assert busy["ram->shared"].rel_error == pytest.approx(0.25)
    assert busy["birth->shared"].rel_error == pytest.approx(1.0)
    assert math.isinf(busy["shared->ram"].rel_error)  # the runtime never copied that pair
    components = {m.name: m for m in c.metrics if m.kind == "component"}
    assert components["recompute_s"].rel_error == pytest.approx(0.25)
    assert components["codec_s"].rel_error == pytest.approx(0.25)


def test_metric_error_when_the_runtime_took_no_time() -> None:
    assert Metric("x", 0.0, 0.0).rel_error == 0.0
    assert math.isinf(Metric("x", 1.0, 0.0).rel_error)


def test_summary_line_takes_absolute_errors() -> None:
    def made(name: str, mk: float, p99: float, identical: bool = True) -> Comparison:
        return Comparison(name, [] if identical else ["tier ram: hits model 1, runtime 2"], 10,
                          [Metric("makespan_s", 1.0 + mk, 1.0), Metric("latency_p99_s", 1.0 + p99, 1.0)])

    comps = [made("a", 0.02, -0.10), made("b", -0.08, 0.04), made("c", 0.12, 0.20, identical=False)]
    assert summary_line(comps) == ("decisions identical 2/3; makespan error median 8.0%, worst 12.0%; "
                                   "p99 latency error median 10.0%")
    frame = results_frame(comps)
    assert list(frame[frame["kind"] == "decisions"]["identical"]) == [True, True, False]
    assert frame[frame["metric"] == "makespan_s"]["rel_error"].round(6).tolist() == [0.02, -0.08, 0.12]
