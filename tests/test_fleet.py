"""Fleet traces: engines needed (arithmetic by hand) and the report's note naming the split setting.

One engine's share of a trace (``workload.engines``) is tested in ``tests/test_workload_share.py``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from omegaconf import OmegaConf

from exo_sim.workloads import make_workload
from exo_sim.workloads.base import Workload
from exo_sim.workloads.mooncake import MooncakeWorkloadConfig
from experiments.planning.fleet import (
    FleetVerdict,
    arrival_rate_per_s,
    engines_needed,
    fleet_verdict,
    mean_service_s,
)

BLOCK = 256


def _mooncake(tmp_path: Path, rows: list[tuple[int, list[int]]]) -> Workload:
    """A Mooncake trace of ``(timestamp_ms, hash_ids)`` rows, 512-token hash ids, full blocks."""
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(
        json.dumps({"timestamp": ts, "input_length": 512 * len(h), "output_length": 10, "hash_ids": h}) + "\n"
        for ts, h in rows
    ))
    return make_workload(OmegaConf.structured(MooncakeWorkloadConfig(path=str(path))), BLOCK)


def test_engines_needed_by_hand() -> None:
    # 10 requests/s x 0.25 s each = 2.5 units busy: 3 one-unit engines, 2 two-unit engines
    assert engines_needed(10.0, 0.25) == 3
    assert engines_needed(10.0, 0.25, units_per_engine=2) == 2
    assert engines_needed(4.0, 0.25) == 1  # exactly one engine's worth
    assert engines_needed(4.1, 0.25) == 2
    assert engines_needed(0.0, 1.0) == 1
    with pytest.raises(ValueError):
        engines_needed(1.0, 1.0, units_per_engine=0)


def test_arrival_rate_and_verdict(tmp_path: Path) -> None:
    # 5 requests at 0, 250, 500, 750, 1000 ms: 4 gaps in 1 s -> 4 requests/s
    w = _mooncake(tmp_path, [(250 * i, [i, 100 + i]) for i in range(5)])
    assert arrival_rate_per_s(w) == (5, pytest.approx(4.0))
    summary = {"requests": 5, "compute": {"busy_s": 2.5, "engines": 1}}  # 0.5 s a request
    assert mean_service_s(summary) == pytest.approx(0.5)
    v = fleet_verdict(w, summary)
    assert (v.engines, v.load) == (2, pytest.approx(2.0))  # 4/s x 0.5 s = 2 engines
    assert "it needs 2 engines" in v.sentence() and "workload.time_scale=2" in v.sentence()
    assert "`workload.engines=2`" in v.sentence()  # the setting that splits the trace, named
    one = fleet_verdict(w, {"requests": 5, "compute": {"busy_s": 1.0, "engines": 1}})  # 4 x 0.2 = 0.8
    assert one.engines == 1 and "which one engine serves" in one.sentence()
    with pytest.raises(ValueError):
        mean_service_s({"requests": 0, "compute": {"busy_s": 0.0, "engines": 1}})
    # refused requests (too big for the top tier) never reach an engine: 2.5 s over 5 - 3 served
    assert mean_service_s({"requests": 5, "requests_refused": 3, "compute": {"busy_s": 2.5}}) == pytest.approx(1.25)


def test_overload_notes_say_how_many_engines() -> None:
    """The plan's notes carry the verdict when the recommended run needs more than one engine."""
    import pandas as pd

    from experiments.planning.notes import overload_notes

    def plan(busy_s: float, split: Any = None) -> SimpleNamespace:
        # 100 requests served over 10 s (10/s; 10 more refused); one compute unit busy busy_s in all
        return SimpleNamespace(
            ranking=SimpleNamespace(recommended=SimpleNamespace(ttft_p99_s=0.5), table=pd.DataFrame()),
            resources=[], sweep_span_s=10.0, split=split,
            rec_summary={"requests": 110, "requests_refused": 10, "compute": {"busy_s": busy_s, "engines": 1}},
        )

    # 0.25 s a request x 10/s = 2.5 -> 3 engines
    notes = overload_notes(plan(25.0))
    assert len(notes) == 1 and "it needs 3 engines" in notes[0] and "an offered load of 2.5" in notes[0]
    assert "`workload.engines=3`" in notes[0]
    assert overload_notes(plan(9.0)) == []  # 0.09 s x 10/s = 0.9: one engine serves
    # the run was already engine 0 of 4's share: that share needs 3 engines, the whole trace about 4 x 3 = 12
    split = overload_notes(plan(25.0, SimpleNamespace(engines=4)))
    assert len(split) == 1 and "this share (one engine of 4) needs 3 engines, the whole trace about 12" in split[0]
    assert "`workload.engines=12`" in split[0] and "`workload.time_scale=3`" in split[0]


def test_verdict_of_a_share_scales_to_the_fleet() -> None:
    # 2 requests/s x 1.5 s on 1 unit = 3 -> 3 engines for this share; it was one of 2: 6 for the trace
    v = FleetVerdict(requests=20, rate_per_s=2.0, service_s=1.5, units_per_engine=1, engines=3, split_engines=2)
    assert (v.load, v.fleet_engines) == (pytest.approx(3.0), 6)
    assert "`workload.engines=6`: about 1/6 of its requests" in v.sentence()
