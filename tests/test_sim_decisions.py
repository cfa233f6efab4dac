"""The timed model makes the replay's decisions: hits, evictions, occupancy by access index, bytes."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from omegaconf import DictConfig

from exo_sim.replay import run_replay
from exo_sim.sim.run import run_sim
from tests.conftest import trace_path

SMALL = ["hardware=ci_small", "workload=zipf", "workload.objects=3000", "workload.accesses=12000",
         "workload.blocks_per_request=4", "output.timeseries_points=300"]

CONFIGS = {
    "seed mix, exclusive": SMALL,
    "write_through": [*SMALL, "hierarchy=write_through"],
    "watermarks (pressure)": [*SMALL, "hierarchy=pressure", "policy=s3fifo", "codec=int8"],
    "arc, fp16, sync demotion, pipelined": [*SMALL, "policy=arc", "codec=fp16", "sim.demotion=sync",
                                            "sim.multi_hop=pipeline"],
    "belady (the future)": [*SMALL, "policy=belady", "workload.accesses=4000"],
    "closed loop": [*SMALL, "sim=closed_loop", "sim.agents=5"],
    "poisson, write_through + watermarks": [*SMALL, "hierarchy=write_through", "hierarchy.high_watermark=0.9",
                                            "hierarchy.low_watermark=0.7", "sim=poisson"],
    "requests larger than the top tier": [*SMALL, "workload.blocks_per_request=40", "workload.accesses=8000"],
    "a bypassed tier (watermark leaves no room)": [*SMALL, "hardware.tiers.1.high_watermark=0.01",
                                                   "hardware.tiers.1.low_watermark=0.01"],
    "no reuse at all": [*SMALL, "workload.objects=50000000", "workload.alpha=0"],
    "agent sessions (writes)": ["hardware=ci_small", "workload=agent_sessions", "workload.sessions=40",
                                "workload.concurrency=8", "workload.turns_max=8", "policy=lru"],
}


def assert_same_decisions(rep: dict, sim: dict) -> None:
    for key in ("requests", "accesses", "new_blocks", "recomputed_blocks", "reuse", "prompt_tokens",
                "hit_tokens", "hit_tokens_by_tier", "prefill_tokens", "stranded_blocks", "requests_refused",
                "requests_exceeding_top_tier", "tiers", "links"):
        assert sim[key] == rep[key], key
    assert sim["source"] == "sim" and rep["source"] == "replay"
    assert set(rep) <= set(sim)  # the sim's summary is the replay's, plus what a clock gives


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sim_decisions_equal_replay(make_cfg: Callable[..., DictConfig], name: str) -> None:
    cfg = make_cfg(*CONFIGS[name])
    rep = run_replay(cfg)
    sim = run_sim(cfg)
    assert_same_decisions(rep.summary, sim.summary)
    r = rep.series.frame(rep.spec).drop(columns="time_s")
    s = sim.series.frame(sim.spec)
    assert s["time_s"].notna().all() and s["time_s"].is_monotonic_increasing
    pd.testing.assert_frame_equal(r, s.drop(columns="time_s"))
    # requests.parquet accounts for every read: found in a tier or recomputed
    req = sim.requests
    assert len(req) == sim.summary["requests"]
    hits = req[[c for c in req.columns if c.startswith("hits_")]].sum()
    assert int(req.loc[~req["refused"], "blocks_read"].sum()) == sim.summary["accesses"]
    assert int(req["refused"].sum()) == sim.summary["requests_refused"]
    for tier in sim.summary["tiers"]:
        assert int(hits[f"hits_{tier['name']}"]) == tier["hits"]
    assert int(req["recomputed_blocks"].sum()) == sim.summary["recomputed_blocks"]
    assert int(req["blocks_written"].sum()) >= sim.summary["new_blocks"]
    if "agent_sessions" in name.replace(" ", "_"):
        assert sim.summary["new_blocks"] > 0  # the writes path was exercised
    if name == "requests larger than the top tier":
        assert sim.summary["requests_exceeding_top_tier"] == sim.summary["requests"] > 0
        assert any("streamed through it" in note for note in sim.summary["notes"])
    if name.startswith("a bypassed tier"):
        assert sim.summary["tiers"][1]["bypassed"] and sim.summary["tiers"][1]["hits"] == 0
        usage = {u["link"]: u["bytes_moved"] for u in sim.summary["link_usage"]}
        # blocks still cross the bypassed tier's links on their way between vram and ram
        assert usage["vram->shared"] == usage["shared->ram"] > 0
    if name == "closed loop":
        assert sim.summary["arrival"] == {"process": "closed_loop", "agents": 5, "think_time_s": 0.05,
                                          "think_time_dist": "exponential", "seed": 0}
        assert set(req["agent"]) == set(range(5))
    sim.hierarchy.verify()


def test_sim_decisions_equal_replay_on_mooncake(make_cfg: Callable[..., DictConfig]) -> None:
    path = trace_path("mooncake/conversation_trace.jsonl")
    cfg = make_cfg("workload=mooncake", f"workload.path={path}", "workload.max_requests=1500", "hardware=ci_small")
    rep, sim = run_replay(cfg), run_sim(cfg)
    assert_same_decisions(rep.summary, sim.summary)
    assert sim.summary["requests"] == 1500
    assert sim.summary["latency_s"]["p99"] >= sim.summary["latency_s"]["p50"] >= 0
