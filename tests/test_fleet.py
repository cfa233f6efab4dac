"""Fleet traces: engines needed (arithmetic by hand), and one engine's share of a trace (sessions kept
together, the engines' shares a partition of the requests)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from exo_sim.errors import ConfigError
from exo_sim.workloads import make_workload
from exo_sim.workloads.agent_sessions import AgentSessionsWorkloadConfig
from exo_sim.workloads.base import RequestChunk, Workload
from exo_sim.workloads.mooncake import MooncakeWorkloadConfig
from experiments.planning.fleet import (
    EngineShare,
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


def _requests(w: Workload) -> list[tuple[float, tuple[int, ...], int]]:
    out = []
    for c in w.chunks():
        for i in range(c.n_requests):
            sid = -1 if c.session_ids is None else int(c.session_ids[i])
            out.append((float(c.arrival_s[i]), tuple(int(b) for b in c.blocks[c.offsets[i]:c.offsets[i + 1]]), sid))
    return out


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
    one = fleet_verdict(w, {"requests": 5, "compute": {"busy_s": 1.0, "engines": 1}})  # 4 x 0.2 = 0.8
    assert one.engines == 1 and "which one engine serves" in one.sentence()
    with pytest.raises(ValueError):
        mean_service_s({"requests": 0, "compute": {"busy_s": 0.0, "engines": 1}})
    # refused requests (too big for the top tier) never reach an engine: 2.5 s over 5 - 3 served
    assert mean_service_s({"requests": 5, "requests_refused": 3, "compute": {"busy_s": 2.5}}) == pytest.approx(1.25)


def test_mooncake_split_partitions_and_keeps_prefix_roots(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(400):  # 40 prefix roots, each request extends its root with 0-3 ids of its own
        root = int(rng.integers(40))
        rows.append((10 * i, [root, *(1000 + 4 * i + j for j in range(int(rng.integers(4))))]))
    whole = _mooncake(tmp_path, rows)
    all_requests = _requests(whole)
    engines = 4
    shares = [_requests(EngineShare(whole, engines, k)) for k in range(engines)]
    # a partition: every request in exactly one share, order kept within each
    assert Counter(r for s in shares for r in s) == Counter(all_requests)
    assert all(s == sorted(s) for s in shares)
    # a root's requests on one engine: the trace's first hash id (its first run block) decides
    root_engine: dict[int, int] = {}
    for k, s in enumerate(shares):
        for _, blocks, _ in s:
            assert root_engine.setdefault(blocks[0], k) == k
    assert len(root_engine) == len({r[1][0] for r in all_requests})  # the distinct roots, each placed once
    assert all(len(s) > 0 for s in shares)  # 40 roots spread over 4 engines
    roots_by_hash = {h[0] for _, h in rows}
    assert len(roots_by_hash) == len(root_engine)  # one run block id per hash root


def test_agent_sessions_split_by_session() -> None:
    cfg = AgentSessionsWorkloadConfig(sessions=40, concurrency=8, turns_min=2, turns_max=5, turn_tokens_min=256,
                                      turn_tokens_max=1024, prefix_tokens=512, request_rate_per_s=10.0, seed=3)
    whole = make_workload(OmegaConf.structured(cfg), BLOCK)
    all_requests = _requests(whole)
    shares = [_requests(EngineShare(whole, 3, k)) for k in range(3)]
    assert Counter(r for s in shares for r in s) == Counter(all_requests)
    owner: dict[int, int] = {}
    for k, s in enumerate(shares):
        for _, _, sid in s:
            assert sid >= 0 and owner.setdefault(sid, k) == k
    assert len(owner) == 40 and set(owner.values()) == {0, 1, 2}


def test_one_engine_is_the_whole_trace(tmp_path: Path) -> None:
    whole = _mooncake(tmp_path, [(i, [i % 3]) for i in range(20)])
    assert _requests(EngineShare(whole, 1, 0)) == _requests(whole)


def test_bad_split_settings_name_the_key(tmp_path: Path) -> None:
    whole = _mooncake(tmp_path, [(0, [1])])
    with pytest.raises(ConfigError, match="plan.engines"):
        EngineShare(whole, 0)
    with pytest.raises(ConfigError, match="plan.engine"):
        EngineShare(whole, 2, 2)


def test_requests_opening_with_a_write_route_by_their_first_read() -> None:
    from experiments.planning.fleet import request_keys

    chunk = RequestChunk(
        arrival_s=np.array([0.0, 1.0]), offsets=np.array([0, 2, 3]), blocks=np.array([99, 7, 5]),
        writes=np.array([True, False, True]), tokens=np.full(3, BLOCK),
    )
    assert request_keys(chunk).tolist() == [7, -1]


def test_overload_notes_say_how_many_engines() -> None:
    """The plan's notes carry the verdict when the recommended run needs more than one engine."""
    from types import SimpleNamespace

    import pandas as pd

    from experiments.planning.notes import overload_notes

    def plan(busy_s: float) -> SimpleNamespace:
        # 100 requests served over 10 s (10/s; 10 more refused); one compute unit busy busy_s in all
        return SimpleNamespace(
            ranking=SimpleNamespace(recommended=SimpleNamespace(ttft_p99_s=0.5), table=pd.DataFrame()),
            resources=[], sweep_span_s=10.0,
            rec_summary={"requests": 110, "requests_refused": 10, "compute": {"busy_s": busy_s, "engines": 1}},
        )

    # 0.25 s a request x 10/s = 2.5 -> 3 engines
    notes = overload_notes(plan(25.0))
    assert len(notes) == 1 and "it needs 3 engines" in notes[0] and "an offered load of 2.5" in notes[0]
    assert overload_notes(plan(9.0)) == []  # 0.09 s x 10/s = 0.9: one engine serves
