"""One engine's share of a workload (``workload.engines`` / ``workload.engine``).

The shares of N engines partition the trace exactly; a session's requests land on one engine; a chained
trace's requests follow the engine that has seen most of their prefix (a conversation's next turn) or go
to the least-loaded one (a new conversation, even under a root every request shares); the CLIs run the
share; bad settings are refused in one sentence. Expected engines are worked out by hand, or come from
splitmix64's finaliser written out here in Python integers (the published constants), not from the
module under test.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from exo_sim.errors import ConfigError
from exo_sim.workloads import make_workload
from exo_sim.workloads.agent_sessions import AgentSessionsWorkloadConfig
from exo_sim.workloads.base import RequestChunk, Workload
from exo_sim.workloads.mooncake import MooncakeWorkloadConfig
from exo_sim.workloads.share import EngineShare, count_share, request_keys
from exo_sim.workloads.zipf import ZipfWorkloadConfig

MASK = (1 << 64) - 1
HASH_TOKENS = 512  # Mooncake's tokens per hash id


def splitmix_engine(key: int, engines: int) -> int:
    """splitmix64's finaliser (Steele, Lea & Flood 2014; Vigna's splitmix64.c) on ``key``, mod ``engines``."""
    z = (key + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return (z ^ (z >> 31)) % engines


def write_mooncake(path: Path, rows: list[tuple[int, list[int]]]) -> Path:
    """A Mooncake trace of ``(timestamp_ms, hash_ids)`` rows, full 512-token hash ids, 600 output tokens."""
    path.write_text("".join(
        json.dumps({"timestamp": ts, "input_length": HASH_TOKENS * len(h), "output_length": 600, "hash_ids": h})
        + "\n"
        for ts, h in rows
    ))
    return path


def rooted_rows(n: int = 300, roots: int = 30, seed: int = 7) -> list[tuple[int, list[int]]]:
    """``n`` requests 10 ms apart, each a prefix root (of ``roots``) extended by 0-3 ids of its own."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        root = int(rng.integers(roots))
        rows.append((10 * i, [root, *(1000 + 4 * i + j for j in range(int(rng.integers(4))))]))
    return rows


def mooncake(path: Path, block_tokens: int, engines: int = 1, engine: int = 0, **knobs: Any) -> Workload:
    cfg = OmegaConf.structured(MooncakeWorkloadConfig(path=str(path), engines=engines, engine=engine, **knobs))
    return make_workload(cfg, block_tokens)


Request = tuple[float, tuple[int, ...], tuple[bool, ...], tuple[int, ...], int]


def requests(w: Workload) -> list[Request]:
    """Every request of ``w``: arrival, blocks, writes, tokens and session (-1: none), in order."""
    out = []
    for c in w.chunks():
        for i in range(c.n_requests):
            lo, hi = int(c.offsets[i]), int(c.offsets[i + 1])
            out.append((
                float(c.arrival_s[i]),
                tuple(int(b) for b in c.blocks[lo:hi]),
                tuple(bool(x) for x in c.writes[lo:hi]),
                tuple(int(t) for t in c.tokens[lo:hi]),
                -1 if c.session_ids is None else int(c.session_ids[i]),
            ))
    return out


@pytest.mark.parametrize("engines", [2, 3, 5])
def test_shares_partition_the_trace_exactly(tmp_path: Path, engines: int) -> None:
    # 256-token blocks (two per hash id) and output writes: every column must survive the cut unchanged
    path = write_mooncake(tmp_path / "trace.jsonl", rooted_rows())
    whole = requests(mooncake(path, 256, write_output=True))
    assert len({r[0] for r in whole}) == len(whole) == 300  # arrivals are distinct: they name requests
    shares = [requests(mooncake(path, 256, engines, k, write_output=True)) for k in range(engines)]
    owner: dict[float, int] = {}
    for k, share in enumerate(shares):
        for r in share:
            assert owner.setdefault(r[0], k) == k  # in one share only
    assert len(owner) == len(whole) and sum(len(s) for s in shares) == len(whole)  # every request, once
    for k, share in enumerate(shares):  # each share is the whole trace's requests of its engine, in order, unchanged
        assert share == [r for r in whole if owner[r[0]] == k]
        assert share, f"engine {k} of {engines} got no request of 30 prefix roots"


# Ten requests (512-token blocks: a block id is the hash id) on 2 engines, routed by hand. Hash id 0 is a
# root every request shares. Threshold: over half the request's blocks seen by an engine.
HAND_ROWS = [
    (0, [0, 1]),  # nothing seen: least loaded (tie: lowest) -> 0; loads [1, 0]
    (1, [0, 2]),  # deepest seen 0: 1 of 2 blocks, not over half -> least loaded 1; [1, 1]
    (2, [0, 1, 3]),  # deepest seen 1 (engine 0): 2 of 3 -> 0; [2, 1]
    (3, [0, 4]),  # deepest seen 0: 1 of 2 -> least loaded 1; [2, 2]
    (4, [0, 2, 5]),  # deepest seen 2 (engine 1): 2 of 3 -> 1; [2, 3]
    (5, [0, 1, 3, 6]),  # deepest seen 3 (engine 0): 3 of 4 -> 0; [3, 3]
    (6, [0, 4, 7, 8, 9]),  # deepest seen 4 (engine 1): 2 of 5, not over half -> least loaded (tie) 0; [4, 3]
    (7, [0]),  # deepest seen 0 (both engines): 1 of 1 -> the less loaded of the two, 1; [4, 4]
    (8, [0, 2, 5, 10]),  # deepest seen 5 (engine 1): 3 of 4 -> 1; [4, 5]
    (9, [0, 4, 7, 8, 9, 11]),  # deepest seen 9 (engine 0, since request 6): 5 of 6 -> 0; [5, 5]
]
HAND_ENGINES = [0, 1, 0, 1, 1, 0, 0, 1, 1, 0]


@pytest.mark.parametrize("write_output", [False, True])
def test_a_chained_trace_is_routed_by_its_cached_prefix(tmp_path: Path, write_output: bool) -> None:
    # with write_output each request also writes 2 output blocks: they are not part of its prefix
    path = write_mooncake(tmp_path / "trace.jsonl", HAND_ROWS)
    for k in range(2):
        got = [round(r[0] * 1000) for r in requests(mooncake(path, HASH_TOKENS, 2, k, write_output=write_output))]
        assert got == [ts for (ts, _), e in zip(HAND_ROWS, HAND_ENGINES, strict=True) if e == k]


def test_conversations_follow_their_engine_under_a_shared_root(tmp_path: Path) -> None:
    # 24 conversations of 4 turns, interleaved; each opens with the shared root 0 and a 2-id first turn,
    # and each turn adds one id: a turn re-reads over half of its blocks from the previous one
    rows, ts = [], 0
    for turn in range(4):
        for conv in range(24):
            rows.append((ts, [0, *(1000 * (conv + 1) + j for j in range(turn + 2))]))
            ts += 1
    path = write_mooncake(tmp_path / "trace.jsonl", rows)
    conv_of = {t: h[1] // 1000 for t, h in rows}
    owner: dict[int, int] = {}
    for k in range(3):
        share = requests(mooncake(path, HASH_TOKENS, 3, k))
        assert len(share) == 32  # the least-loaded rule spreads the 24 first turns 8 / 8 / 8
        for r in share:
            assert owner.setdefault(conv_of[round(r[0] * 1000)], k) == k
    assert len(owner) == 24


def test_unchained_requests_route_by_their_first_block() -> None:
    cfg: dict[str, Any] = {"objects": 300, "accesses": 2000, "blocks_per_request": 2, "seed": 5}
    whole = requests(make_workload(OmegaConf.structured(ZipfWorkloadConfig(**cfg)), 256))
    for k in range(3):
        share = requests(make_workload(OmegaConf.structured(ZipfWorkloadConfig(**cfg, engines=3, engine=k)), 256))
        assert share == [r for r in whole if splitmix_engine(r[1][0], 3) == k]


def agent_cfg(engines: int = 1, engine: int = 0) -> Any:
    return OmegaConf.structured(AgentSessionsWorkloadConfig(
        sessions=40, concurrency=8, turns_min=2, turns_max=5, turn_tokens_min=256, turn_tokens_max=1024,
        prefix_tokens=512, request_rate_per_s=10.0, seed=3, engines=engines, engine=engine,
    ))


def test_a_sessions_requests_land_on_one_engine() -> None:
    whole = requests(make_workload(agent_cfg(), 256))
    per_session = Counter(r[4] for r in whole)
    assert len(per_session) == 40
    shares = [requests(make_workload(agent_cfg(3, k), 256)) for k in range(3)]
    owner: dict[int, int] = {}
    for k, share in enumerate(shares):
        for r in share:
            assert owner.setdefault(r[4], k) == k
        # a session that went to engine k brought all its turns with it
        assert Counter(r[4] for r in share) == {s: n for s, n in per_session.items() if owner.get(s) == k}
    assert owner == {s: splitmix_engine(s, 3) for s in per_session}
    assert sorted(r for s in shares for r in s) == sorted(whole)


def test_one_engine_is_no_split(tmp_path: Path) -> None:
    path = write_mooncake(tmp_path / "trace.jsonl", [(i, [i % 3]) for i in range(20)])
    w = mooncake(path, HASH_TOKENS, 1, 0)
    assert not isinstance(w, EngineShare)
    assert requests(w) == requests(mooncake(path, HASH_TOKENS))
    share = mooncake(path, HASH_TOKENS, 2, 1)
    assert isinstance(share, EngineShare) and (share.kind, share.chained) == ("mooncake", True)
    assert share.describe()["engines"] == 2 and share.describe()["engine"] == 1


def test_requests_route_by_their_first_read() -> None:
    # request 0 opens with a write (99) then reads 7; request 1 only writes; request 2 reads 5 then 6
    chunk = RequestChunk(
        arrival_s=np.array([0.0, 1.0, 2.0]), offsets=np.array([0, 2, 3, 5]), blocks=np.array([99, 7, 4, 5, 6]),
        writes=np.array([True, False, True, False, False]), tokens=np.full(5, 256),
    )
    assert request_keys(chunk).tolist() == [7, -1, 5]


def test_count_share_counts_this_engines_requests(tmp_path: Path) -> None:
    path = write_mooncake(tmp_path / "trace.jsonl", HAND_ROWS)
    share = mooncake(path, HASH_TOKENS, 2, 1)
    assert isinstance(share, EngineShare)
    count = count_share(share)
    assert (count.requests, count.total_requests) == (5, 10) and count.routed_by.startswith("cached prefix")
    assert "this engine got 5 of 10 requests" in count.sentence() and "`workload.engines=2`" in count.sentence()
    sessions = make_workload(agent_cfg(2, 0), 256)
    assert isinstance(sessions, EngineShare) and count_share(sessions).routed_by == "session"


@pytest.mark.parametrize(("engines", "engine", "key"), [
    (0, 0, "workload.engines"),
    (-2, 0, "workload.engines"),
    (2, 2, "workload.engine"),
    (2, -1, "workload.engine"),
])
def test_bad_split_settings_name_the_key(tmp_path: Path, engines: int, engine: int, key: str) -> None:
    path = write_mooncake(tmp_path / "trace.jsonl", [(0, [1])])
    with pytest.raises(ConfigError, match=f"`{key}`"):
        mooncake(path, HASH_TOKENS, engines, engine)


def run(cmd: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_exo_replay_runs_one_engines_share_of_a_mooncake_trace(tmp_path: Path) -> None:
    path = write_mooncake(tmp_path / "trace.jsonl", HAND_ROWS)
    out = tmp_path / "replay"
    r = run("exo-replay", "hardware=ci_small", "workload=mooncake", f"workload.path={path}", "block_tokens=512",
            "workload.engines=2", "workload.engine=1", "output.progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    # engine 1's requests by hand: 1, 3, 4, 7 and 8, reading 2 + 2 + 3 + 1 + 4 blocks (one per hash id)
    assert (s["requests"], s["accesses"]) == (5, 12)
    assert (s["workload"]["engines"], s["workload"]["engine"]) == (2, 1)


def test_exo_sim_runs_one_engines_share_of_agent_sessions(tmp_path: Path) -> None:
    whole = make_workload(agent_cfg(), 256)
    sids = np.concatenate([c.session_ids for c in whole.chunks() if c.session_ids is not None])
    expected = sum(1 for s in sids.tolist() if splitmix_engine(s, 2) == 1)
    out = tmp_path / "sim"
    c = agent_cfg()
    r = run("exo-sim", "hardware=ci_small", "workload=agent_sessions", "block_tokens=256",
            *(f"workload.{k}={getattr(c, k)}" for k in ("sessions", "concurrency", "turns_min", "turns_max",
                                                        "turn_tokens_min", "turn_tokens_max", "prefix_tokens",
                                                        "request_rate_per_s", "seed")),
            "workload.engines=2", "workload.engine=1", "output.progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["requests"] == expected and 0 < expected < len(sids)


@pytest.mark.parametrize(("cmd", "args", "key"), [
    ("exo-replay", ["workload.engines=0"], "workload.engines"),
    ("exo-sim", ["workload.engines=2", "workload.engine=2"], "workload.engine"),
])
def test_bad_split_on_the_command_line_is_one_sentence(tmp_path: Path, cmd: str, args: list[str], key: str) -> None:
    out = tmp_path / "run"
    r = run(cmd, "hardware=ci_small", *args, f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"config key `{key}` (command-line override" in lines[0]
    assert "Traceback" not in r.stderr and not (out / "summary.json").exists()


AGENT_ARGS = ["workload=agent_sessions", "workload.sessions=40", "workload.concurrency=8", "workload.turns_min=2",
              "workload.turns_max=5", "workload.turn_tokens_min=256", "workload.turn_tokens_max=1024",
              "workload.prefix_tokens=512", "workload.request_rate_per_s=10.0", "workload.seed=3"]


def test_exo_plan_states_the_split(tmp_path: Path) -> None:
    # a target no profile holds: nothing is simulated (seconds), yet the summary and plan.json state the split
    whole = make_workload(agent_cfg(), 256)
    sids = np.concatenate([c.session_ids for c in whole.chunks() if c.session_ids is not None]).tolist()
    expected = sum(1 for s in sids if splitmix_engine(s, 3) == 2)
    out = tmp_path / "plan"
    r = run("exo-plan", "hardware=ci_small", "block_tokens=256", "phase.target_tokens=100000000000000", *AGENT_ARGS,
            "workload.engines=3", "workload.engine=2", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    split = json.loads((out / "plan.json").read_text())["split"]
    assert split == {"engines": 3, "engine": 2, "routed_by": "session", "requests": expected,
                     "total_requests": len(sids)}
    md = (out / "report.md").read_text()
    assert (f"- **Split**: One engine of 3 (`workload.engines=3`, engine 2): requests routed by session; this engine "
            f"got {expected:,} of {len(sids):,} requests.") in md


def test_exo_plan_refuses_a_bad_split_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    r = run("exo-plan", "hardware=ci_small", "workload.engines=2", "workload.engine=5", f"hydra.run.dir={out}",
            cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "config key `workload.engine` (command-line override `workload.engine=5`) must be in 0..1" in r.stderr
    assert not (out / "report.md").exists()
