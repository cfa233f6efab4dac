"""The executor: same decisions as the replay, real bytes that stay intact, corruption never served."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from exo_runtime.buffers import StagingPool
from exo_runtime.codecs import make_codec
from exo_runtime.executor import Executor
from exo_runtime.payload_data import BlockFactory
from exo_runtime.run import run_runtime
from exo_runtime.stores import StoreSettings, store_class
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import run_replay
from exo_sim.results import REQUEST_COLUMNS, TIER_DECISION_KEYS
from exo_sim.spec import build_spec
from tests.runtime_overrides import compose_cfg, tiers

COUNTS = TIER_DECISION_KEYS

CASES = {
    "lru-exclusive": [],
    "fifo-pressure": ["policy=fifo", "hierarchy=pressure"],
    "s3fifo-write_through": ["policy=s3fifo", "hierarchy=write_through"],
    "arc-int4-everywhere": ["policy=arc", "codec=int4"],
    "belady-fp32": ["policy=belady", "codec=fp32"],
    "lfu-agent-sessions-writes": [
        "policy=lfu",
        "workload=agent_sessions",
        "workload.sessions=12",
        "workload.concurrency=4",
        "workload.turns_max=8",
        "workload.turn_tokens_max=2048",
        "workload.prefix_tokens=512",
    ],
    "bypassed-middle-tier": ["hardware.tiers.1.high_watermark=0.01", "hardware.tiers.1.low_watermark=0.01"],
    "kv-payload-big-requests": [
        "payload=llama3_8b_kv",
        "payload.layers=1",
        "payload.kv_heads=2",
        "block_tokens=16",
        "workload.blocks_per_request=64",
        "workload.accesses=2000",
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_counts_equal_the_replay(case: str, tmp_path: Path) -> None:
    cfg = compose_cfg(*CASES[case])
    runtime = run_runtime(cfg, tmp_path / "run")
    replay = run_replay(cfg)
    assert runtime.fault is None
    rs, ps = runtime.summary, replay.summary
    assert rs["source"] == "runtime" and rs["complete"] is True
    for key in ("accesses", "requests", "new_blocks", "recomputed_blocks", "requests_exceeding_top_tier"):
        assert rs[key] == ps[key], key
    for got, want in zip(rs["tiers"], ps["tiers"], strict=True):
        assert {k: got[k] for k in COUNTS} == {k: want[k] for k in COUNTS}, got["name"]
    assert rs["links"] == ps["links"]
    ts_run = pd.read_parquet(tmp_path / "run" / "timeseries.parquet").drop(columns="time_s")
    assert ts_run.equals(replay.series.frame(replay.spec).drop(columns="time_s"))
    # every block the core holds is really stored, checked on each read and never found corrupted
    assert rs["runtime"]["integrity"]["corrupted"] == []
    assert rs["runtime"]["integrity"]["reads_checked"] > 0


def test_results_files_and_measurements(tmp_path: Path) -> None:
    result = run_runtime(compose_cfg(), tmp_path / "run")
    s = result.summary
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert list(req.columns) == [*REQUEST_COLUMNS, "hits_shared", "hits_ram", "hits_nvme"]
    assert len(req) == s["requests"] == 750
    for tier in s["tiers"]:
        assert int(req[f"hits_{tier['name']}"].sum()) == tier["hits"]
    assert int(req["recomputed_blocks"].sum()) == s["recomputed_blocks"]
    assert bool((req["served_s"] >= req["arrival_s"]).all())
    assert s["latency_s"]["p50"] <= s["latency_s"]["p99"] <= s["makespan_s"]

    tel = pd.read_parquet(tmp_path / "run" / "telemetry.parquet")
    assert len(tel) >= 2 and bool((tel["rss_bytes"] > 0).all()) and bool((tel["available_bytes"] > 0).all())
    assert tel["gpu_used_bytes"].isna().all() == (not torch.cuda.is_available())

    links = {(lk["src"], lk["dst"]): lk for lk in s["measured"]["links"]}
    assert ("shared", "ram") in links and ("ram", "nvme") in links
    for lk in links.values():
        assert lk["bytes"] > 0 and lk["seconds"] > 0 and lk["bandwidth_gbps"] > 0
    codecs = {c["codec"]: c for c in s["measured"]["codecs"]}
    assert codecs["int8"]["encode_gbps"] > 0 and codecs["fp16"]["decode_gbps"] > 0
    media = {st["tier"]: st for st in s["runtime"]["stores"]}
    assert media["nvme"]["io"] == "O_DIRECT" and media["shared"]["medium"] == "shm"
    assert any("POSIX shared memory" in n for n in s["notes"])


def test_full_integrity_measures_errors_within_bounds(tmp_path: Path) -> None:
    s = run_runtime(compose_cfg("runtime.integrity=full"), tmp_path / "run").summary
    assert s["runtime"]["integrity"]["corrupted"] == []
    codecs = {c["codec"]: c for c in s["measured"]["codecs"]}
    # shared stores int8 and is read back on every demotion: its measured error is real and bounded
    assert 0 < codecs["int8"]["max_error_measured"] <= codecs["int8"]["max_error_bound"]
    assert codecs["fp32"]["max_error_bound"] == 0.0


def _executor(*overrides: str) -> tuple[Executor, Hierarchy, list]:
    """An executor over ram-only tiers, driven by hand (no file tier, no manifest)."""
    cfg = compose_cfg(*overrides)
    spec = build_spec(cfg)
    settings = StoreSettings(data_dir=Path("."), tag="exo-test-exec")
    stores = [store_class(t.medium)(t, settings) for t in spec.tiers]
    codecs = [make_codec(t.codec, spec.content.elements, cfg.codec) for t in spec.tiers]
    h = Hierarchy(spec, record_moves=True)
    factory = BlockFactory(cfg.payload, spec.block_tokens, 0)
    ex = Executor(h, stores, codecs, factory, StagingPool(1 << 22, False), 1 << 22, "checksum", {}, 1.0)
    return ex, h, stores


def test_a_corrupted_copy_is_reported_and_never_served() -> None:
    ex, h, stores = _executor("hardware.tiers.2.medium=ram", *tiers(4, 8, 16))

    def access(b: int) -> None:
        h.access(b)
        ex.apply(h.moves)
        h.moves.clear()

    for b in range(10):
        access(b)
    victim = next(b for b, held in ex.copies.items() if 1 in held)  # a block now in the ram tier
    slot = ex.copies[victim][1].slot
    stores[1].host_view()[slot, 3] ^= 0xFF  # one flipped bit pattern in its stored bytes
    access(victim)  # promoted: read from ram, found corrupted
    assert [(c.block, c.tier) for c in ex.corruptions] == [(victim, "ram")]
    # what reached the top tier is the block's real data (regenerated), not the corrupted bytes
    top = ex.copies[victim][0]
    got = torch.empty((1, ex.elements))
    ex.codecs[0].decode(stores[0].host_view()[top.slot : top.slot + 1], got)
    want = torch.empty((1, ex.elements))
    ex.factory.birth([victim], want, None)
    assert float((got - want).abs().max()) <= top.bound
    ex.verify()
    h.verify()
    for st in stores:
        st.close()


def test_corruption_in_a_run_makes_a_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that meets a corrupted block still finishes, lists it, and returns an IntegrityFault."""
    from exo_runtime import executor as executor_module

    real_apply = executor_module.Executor.apply
    state = {"calls": 0}

    def apply_then_corrupt(self: Executor, moves: object) -> None:
        real_apply(self, moves)  # type: ignore[arg-type]
        state["calls"] += 1
        if state["calls"] == 200:  # flip a byte of some block stored in the ram tier
            block, held = next((b, c) for b, c in self.copies.items() if 1 in c)
            self.stores[1].host_view()[held[1].slot, 0] ^= 0x55  # type: ignore[union-attr]

    monkeypatch.setattr(executor_module.Executor, "apply", apply_then_corrupt)
    result = run_runtime(compose_cfg(), tmp_path / "run")
    corrupted = result.summary["runtime"]["integrity"]["corrupted"]
    assert len(corrupted) == 1  # this seeded workload reads the damaged block again
    assert result.fault is not None and "corrupted or lost" in str(result.fault)
    assert corrupted[0]["tier"] == "ram" and result.summary["complete"] is True


def test_paced_arrivals_follow_the_workloads_clock(tmp_path: Path) -> None:
    cfg = compose_cfg("runtime.pace_arrivals=true", "workload.accesses=200", "workload.request_rate_per_s=2000")
    req = run_runtime(cfg, tmp_path / "run").requests
    from exo_sim.workloads import make_workload

    chunk = next(make_workload(cfg.workload, 256).chunks())
    due = chunk.arrival_s[: len(req)] - chunk.arrival_s[0]
    assert list(req["arrival_s"]) == pytest.approx(list(due))
    assert bool((req["served_s"] >= req["arrival_s"]).all())
    assert float(req["served_s"].iloc[-1]) >= float(due[-1])  # it really waited for the last arrival
