"""Miss-ratio curves: the one-pass LRU curve against simple LRU simulations and the single-tier replay,
replayed curves for other policies, and exo-mrc end to end."""

from __future__ import annotations

import subprocess
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exo_sim.errors import ConfigError
from exo_sim.mrc import (
    COLUMNS,
    capacity_grid,
    earlier_greater,
    lru_hits,
    plan_mrc,
    replay_hits,
    run_mrc,
    stack_distances,
)
from exo_sim.replay import run_replay
from tests.conftest import trace_path


def naive_distances(blocks: list[int]) -> list[int]:
    stack: list[int] = []
    out = []
    for b in blocks:
        if b in stack:
            i = stack.index(b)
            out.append(len(stack) - i)
            stack.pop(i)
        else:
            out.append(0)
        stack.append(b)
    return out


def ordered_dict_lru(blocks: list[int], writes: list[bool], capacity: int) -> int:
    """Read hits of an LRU cache of ``capacity`` blocks; writes insert or refresh without counting."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for b, w in zip(blocks, writes, strict=True):
        if b in cache:
            cache.move_to_end(b)
            hits += not w
            continue
        if len(cache) >= capacity:
            cache.popitem(last=False)
        cache[b] = None
    return hits


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=300))
def test_stack_distances_match_a_naive_stack(blocks: list[int]) -> None:
    assert stack_distances(np.array(blocks, dtype=np.int64)).tolist() == naive_distances(blocks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(10**12), 10**12), unique=True, max_size=200))
def test_earlier_greater_counts(values: list[int]) -> None:
    got = earlier_greater(np.array(values, dtype=np.int64)).tolist()
    assert got == [sum(1 for v in values[:i] if v > values[i]) for i in range(len(values))]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=400),
    st.lists(st.integers(1, 50), min_size=1, max_size=6),
)
def test_lru_hits_with_writes_match_an_lru_cache(refs: list[tuple[int, bool]], capacities: list[int]) -> None:
    blocks = [b for b, _ in refs]
    writes = [w for _, w in refs]
    got = lru_hits(np.array(blocks, dtype=np.int64), ~np.array(writes), capacities)
    assert got.tolist() == [ordered_dict_lru(blocks, writes, c) for c in capacities]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1000), st.integers(0, 5000), st.integers(1, 150), st.sampled_from(["log", "linear"]))
def test_capacity_grid(lo: int, span: int, points: int, spacing: str) -> None:
    hi = lo + span
    grid = capacity_grid(lo, hi, points, spacing)
    assert grid.shape[0] == min(points, hi - lo + 1)
    assert grid[-1] == hi
    assert grid[0] == (lo if grid.shape[0] > 1 else hi)
    assert (np.diff(grid) > 0).all()


# ------------------------------------------------------------------ against the replay
# Block reuse (each resident block a hit on its own); prefix reuse is tests/test_mrc_prefix.py's.
REPLAY_CASES = [
    (
        "mooncake",
        ["workload=mooncake", "workload.path={synthetic}", "hierarchy.reuse=block"],
        [1, 300, 5000, 30_000, 50_000],
    ),
    (
        "agent_sessions",
        ["workload=agent_sessions", "workload.sessions=60", "workload.concurrency=8", "workload.turns_max=12",
         "hierarchy.reuse=block"],
        [1, 40, 400, 2000, 10_000],
    ),
    ("repo_scan", ["workload=repo_scan", "workload.files=300"], [10, 500, 2100, 5000]),
]


@pytest.mark.parametrize("name,overrides,capacities", REPLAY_CASES, ids=[c[0] for c in REPLAY_CASES])
def test_lru_curve_equals_the_single_tier_replay(
    make_cfg: Callable[..., Any], name: str, overrides: list[str], capacities: list[int]
) -> None:
    """Capacity by capacity, the one-pass curve's hits are the replay's (writes included)."""
    synthetic = str(trace_path("mooncake/synthetic_trace.jsonl")) if name == "mooncake" else ""
    ov = [o.format(synthetic=synthetic) for o in overrides]
    cfg = make_cfg("experiment=single_tier", *ov, f"mrc.capacities_blocks=[{','.join(map(str, capacities))}]")
    frame = run_mrc(cfg).frame
    assert list(frame.columns) == list(COLUMNS)
    assert frame["method"].unique().tolist() == ["stack_distance"]
    for cap in capacities:
        s = run_replay(make_cfg("experiment=single_tier", f"capacity_blocks={cap}", "policy=lru", *ov)).summary
        row = frame[frame["capacity_blocks"] == cap].iloc[0]
        assert (row["hits"], row["accesses"]) == (s["tiers"][0]["hits"], s["accesses"]), cap
        assert row["hit_ratio"] == pytest.approx(s["tiers"][0]["hit_ratio"])
        assert row["capacity_bytes"] == s["tiers"][0]["capacity_bytes"]
        assert row["capacity_tokens"] == s["tiers"][0]["capacity_tokens"]
        assert (row["hit_tokens"], row["prompt_tokens"]) == (s["hit_tokens"], s["prompt_tokens"])
        assert row["reuse"] == s["reuse"] == "block" and row["refused_requests"] == 0


def test_scan_curve_is_a_cliff(make_cfg: Callable[..., Any]) -> None:
    """A loop of B blocks, L times: LRU hits nothing below B and (L - 1) x B from B up."""
    B, L = 400, 5  # noqa: N806
    cfg = make_cfg("experiment=single_tier", "workload=scan", f"workload.blocks={B}", f"workload.loops={L}",
                   "mrc.points=30", "mrc.max_blocks=1000", "mrc.policies=[lru,fifo]", "mrc.jobs=2")
    frame = run_mrc(cfg).frame
    for policy in ("lru", "fifo"):  # FIFO behaves the same on a pure loop
        f = frame[frame["policy"] == policy]
        assert (f.loc[f["capacity_blocks"] < B, "hits"] == 0).all()
        assert (f.loc[f["capacity_blocks"] >= B, "hits"] == (L - 1) * B).all()
        assert (f["accesses"] == B * L).all()
    assert frame.loc[frame["policy"] == "fifo", "method"].unique().tolist() == ["replay"]


def test_parallel_replays_equal_serial_ones(make_cfg: Callable[..., Any]) -> None:
    cfg = make_cfg("experiment=single_tier", "workload=zipf", "workload.accesses=20000", "workload.objects=3000")
    caps = [5, 50, 500, 2500]
    serial = replay_hits(cfg, caps, "s3fifo", "fp16", jobs=1)
    assert replay_hits(cfg, caps, "s3fifo", "fp16", jobs=2) == serial
    for cap, (hits, accesses) in zip(caps, serial, strict=True):
        s = run_replay(make_cfg("experiment=single_tier", "workload=zipf", "workload.accesses=20000",
                                "workload.objects=3000", f"capacity_blocks={cap}", "policy=s3fifo")).summary
        assert (hits, accesses) == (s["tiers"][0]["hits"], s["accesses"])


@pytest.mark.parametrize(
    "override,key",
    [
        ("mrc.policies=[lru,nope]", "mrc.policies[1]"),
        ("mrc.policies=[]", "mrc.policies"),
        ("mrc.capacities_blocks=[10,0]", "mrc.capacities_blocks[1]"),
        ("mrc.points=0", "mrc.points"),
        ("mrc.spacing=cubic", "mrc.spacing"),
        ("mrc.max_blocks=0", "mrc.max_blocks"),
        ("mrc.jobs=-1", "mrc.jobs"),
    ],
)
def test_bad_mrc_settings_are_refused(make_cfg: Callable[..., Any], override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan_mrc(make_cfg("experiment=single_tier", "workload=scan", override))
    assert f"`{key}`" in str(err.value)


# ------------------------------------------------------------------ exo-mrc end to end
def run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_exo_mrc_equals_exo_replay_single_tier(tmp_path: Path) -> None:
    path = trace_path("mooncake/synthetic_trace.jsonl")
    out = tmp_path / "mrc"
    caps = [100, 4000, 40_000]
    r = run("exo-mrc", "experiment=single_tier", "workload=mooncake", f"workload.path={path}",
            f"mrc.capacities_blocks=[{','.join(map(str, caps))}]", "mrc.policies=[lru,sieve]",
            f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    frame = pd.read_parquet(out / "mrc.parquet")
    assert list(frame.columns) == list(COLUMNS)
    assert (out / "mrc.png").stat().st_size > 10_000
    assert sorted(frame["policy"].unique()) == ["lru", "sieve"]
    import json

    for policy, cap in [("lru", 100), ("lru", 4000), ("lru", 40_000), ("sieve", 4000)]:
        run_dir = tmp_path / f"replay-{policy}-{cap}"
        r = run("exo-replay", "experiment=single_tier", f"capacity_blocks={cap}", f"policy={policy}",
                "workload=mooncake", f"workload.path={path}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        tier = json.loads((run_dir / "summary.json").read_text())["tiers"][0]
        row = frame[(frame["policy"] == policy) & (frame["capacity_blocks"] == cap)].iloc[0]
        assert row["hits"] == tier["hits"] and row["miss_ratio"] == pytest.approx(1 - tier["hit_ratio"])


def test_exo_mrc_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, -2]}\n')
    out = tmp_path / "mrc"
    r = run("exo-mrc", "experiment=single_tier", "workload=mooncake", f"workload.path={bad}", "block_tokens=512",
            f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 2
    assert f"error: trace {bad} line 1: hash id -2 is outside" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "mrc.parquet").exists() and not (out / "mrc.png").exists()
    r = run("exo-mrc", "experiment=single_tier", "workload=scan", "mrc.policies=[lru,optimal]", f"hydra.run.dir={out}",
            cwd=tmp_path)
    assert r.returncode == 2
    assert "config key `mrc.policies[1]`" in r.stderr and "'optimal', not a known policy" in r.stderr
