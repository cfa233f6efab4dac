"""Generators: agent_sessions, repo_scan, scan — statistics pinned for a seed, from their parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exo_sim.errors import ConfigError
from exo_sim.workloads import make_workload
from exo_sim.workloads.agent_sessions import AgentSessionsWorkload, AgentSessionsWorkloadConfig
from exo_sim.workloads.base import Workload
from exo_sim.workloads.repo_scan import RepoScanWorkload, RepoScanWorkloadConfig
from exo_sim.workloads.scan import ScanWorkload, ScanWorkloadConfig


def requests_of(w: Workload) -> list[dict[str, Any]]:
    """Every request as a dict (reads, writes, tokens, arrival, session)."""
    out = []
    for c in w.chunks():
        for i in range(c.n_requests):
            s, e = int(c.offsets[i]), int(c.offsets[i + 1])
            wr = c.writes[s:e]
            out.append(
                {
                    "arrival_s": float(c.arrival_s[i]),
                    "reads": c.blocks[s:e][~wr].tolist(),
                    "writes": c.blocks[s:e][wr].tolist(),
                    "read_tokens": c.tokens[s:e][~wr].tolist(),
                    "write_tokens": c.tokens[s:e][wr].tolist(),
                    "blocks": c.blocks[s:e].tolist(),
                    "session": None if c.session_ids is None else int(c.session_ids[i]),
                }
            )
    return out


def agents(block_tokens: int = 256, **kw: Any) -> AgentSessionsWorkload:
    w = AgentSessionsWorkload(AgentSessionsWorkloadConfig(**kw), block_tokens)
    w.validate()
    return w


def uniform_sd(lo: int, hi: int) -> float:
    """Standard deviation of the discrete uniform distribution on lo..hi."""
    return math.sqrt(((hi - lo + 1) ** 2 - 1) / 12)


# ------------------------------------------------------------------ agent_sessions
def test_agent_sessions_fixed_parameters_give_exact_counts() -> None:
    S, C, T, x, prefix = 7, 3, 5, 600, 300  # noqa: N806
    # one shared full prefix block (256 tokens); each stream starts with the prefix's other 44 tokens.
    # Per session, tail + 600 new tokens: 44+600 = 644 -> 2 full blocks, tail 132; 732 -> 2, 220;
    # 820 -> 3, 52; 652 -> 2, 140; 740 -> 2, 228. Turn k reads the prefix block and the full blocks so far.
    full_per_turn = [2, 2, 3, 2, 2]
    reads_per_turn = [1, 3, 5, 8, 10]
    reqs = requests_of(
        agents(sessions=S, concurrency=C, turns_min=T, turns_max=T, turn_tokens_min=x, turn_tokens_max=x,
               prefix_tokens=prefix, seed=3)
    )
    assert len(reqs) == S * T
    assert sum(len(r["writes"]) for r in reqs) == S * sum(full_per_turn)
    assert sum(len(r["reads"]) for r in reqs) == S * sum(reads_per_turn)
    all_blocks = [x for r in reqs for x in r["blocks"]]
    assert len(set(all_blocks)) == 1 + S * sum(full_per_turn)

    context: dict[int, list[int]] = {}
    turn: dict[int, int] = {}
    for r in reqs:
        s = r["session"]
        ctx = context.setdefault(s, [])
        k = turn.get(s, 0)
        # each turn re-reads the shared prefix, then the session's whole context, in order; all full
        assert r["reads"] == [0] + ctx
        assert r["read_tokens"] == [256] * len(r["reads"])
        assert r["write_tokens"] == [256] * full_per_turn[k]
        ctx += r["writes"]
        turn[s] = k + 1
    assert sorted(turn) == list(range(S)) and set(turn.values()) == {T}


def test_agent_sessions_a_stream_shorter_than_a_block_reads_its_tail() -> None:
    # prefix 12 < 16 tokens: no shared block. Turn 1: 12 + 20 = 32 -> writes 2 full blocks (tail 0);
    # turn 2: 20 -> 1 full, tail 4. With 3-token turns and no prefix the stream needs 6 turns to fill
    # a block: until then each turn reads its tail (3, 6, 9, 12, 15 tokens) as one partial block.
    reqs = requests_of(agents(16, sessions=1, concurrency=1, turns_min=2, turns_max=2, turn_tokens_min=20,
                              turn_tokens_max=20, prefix_tokens=12))
    assert [(r["reads"], r["writes"]) for r in reqs] == [([], [0, 1]), ([0, 1], [2])]
    reqs = requests_of(agents(16, sessions=1, concurrency=1, turns_min=6, turns_max=6, turn_tokens_min=3,
                              turn_tokens_max=3, prefix_tokens=0))
    assert [r["read_tokens"] for r in reqs] == [[3], [6], [9], [12], [15], []]
    assert [len(set(r["reads"])) for r in reqs[:5]] == [1] * 5 and len({r["reads"][0] for r in reqs[:5]}) == 5
    assert reqs[5]["write_tokens"] == [16]


def test_agent_sessions_concurrency_start_and_end() -> None:
    S, C = 40, 6  # noqa: N806
    reqs = requests_of(agents(sessions=S, concurrency=C, turns_min=2, turns_max=9, seed=1))
    first = {}
    last = {}
    for i, r in enumerate(reqs):
        first.setdefault(r["session"], i)
        last[r["session"]] = i
    assert sorted(first) == list(range(S))
    # never more than C sessions interleave, and C of them do
    alive = [sum(1 for s in range(S) if first[s] <= i <= last[s]) for i in range(len(reqs))]
    assert max(alive) == C
    # the first C sessions start together; session C starts only once one of them has ended
    assert max(first[s] for s in range(C)) < len(reqs)
    assert first[C] > min(last[s] for s in range(C))
    turns = [sum(1 for r in reqs if r["session"] == s) for s in range(S)]
    assert min(turns) >= 2 and max(turns) <= 9
    # written blocks are new: a session's writes never appear before it writes them
    seen: set[int] = set()
    for r in reqs:
        assert not set(r["writes"]) & seen
        seen.update(r["blocks"])


def test_agent_sessions_random_statistics_match_their_parameters() -> None:
    kw = dict(sessions=600, concurrency=16, turns_min=2, turns_max=12, turn_tokens_min=100, turn_tokens_max=3000,
              prefix_tokens=1000, request_rate_per_s=5.0, seed=11)
    reqs = requests_of(agents(**kw))
    per_session: dict[int, int] = {}
    for r in reqs:
        per_session[r["session"]] = per_session.get(r["session"], 0) + 1
    turns = np.array(list(per_session.values()))
    assert abs(turns.mean() - 7.0) < 5 * uniform_sd(2, 12) / math.sqrt(600)
    # a turn writes the full blocks its tokens complete: what it adds, give or take a 256-token tail
    added = np.array([sum(r["write_tokens"]) for r in reqs])
    assert added.min() >= 0 and added.max() <= 3000 + 255
    assert abs(added.mean() - 1550) < 5 * uniform_sd(100, 3000) / math.sqrt(len(reqs)) + 256 / 2
    gaps = np.diff([0.0] + [r["arrival_s"] for r in reqs])
    assert abs(gaps.mean() - 0.2) < 5 * 0.2 / math.sqrt(len(gaps))  # exponential: sd = mean
    # prefix sharing: every request starts with the same 3 full prefix blocks (1,000 = 3 x 256 + 232)
    assert all(r["reads"][:3] == [0, 1, 2] for r in reqs)
    # determinism: same seed, same stream; another seed, another stream
    assert requests_of(agents(**kw)) == reqs
    assert requests_of(agents(**{**kw, "seed": 12})) != reqs


def test_agent_sessions_without_prefix() -> None:
    reqs = requests_of(agents(sessions=3, concurrency=1, turns_min=2, turns_max=2, turn_tokens_min=256,
                              turn_tokens_max=256, prefix_tokens=0))
    # one session at a time: s0 t1, s0 t2, s1 t1, ...
    assert [r["session"] for r in reqs] == [0, 0, 1, 1, 2, 2]
    assert [r["reads"] for r in reqs] == [[], [0], [], [2], [], [4]]
    assert [r["writes"] for r in reqs] == [[0], [1], [2], [3], [4], [5]]


@pytest.mark.parametrize(
    "kw,key",
    [({"sessions": 0}, "workload.sessions"), ({"turns_min": 5, "turns_max": 4}, "workload.turns_max"),
     ({"prefix_tokens": -1}, "workload.prefix_tokens"), ({"request_rate_per_s": 0.0}, "workload.request_rate_per_s")],
)
def test_agent_sessions_refuse_bad_parameters(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"`{key}`"):
        agents(**kw)


# ------------------------------------------------------------------ repo_scan
def scan_repo(block_tokens: int = 256, **kw: Any) -> RepoScanWorkload:
    w = RepoScanWorkload(RepoScanWorkloadConfig(**kw), block_tokens)
    w.validate()
    return w


def test_repo_scan_fixed_sizes_exact() -> None:
    # 2500 chars -> ceil(2500 * 256 / 1024) = 625 tokens -> 3 blocks of 256 (256, 256, 113)
    reqs = requests_of(scan_repo(files=10, file_chars_median=2500, file_chars_sigma=0.0, batch_files=4, passes=2,
                                 shuffle=False))
    assert len(reqs) == 2 * math.ceil(10 / 4)
    assert [len(r["reads"]) for r in reqs] == [12, 12, 6] * 2
    assert [x for r in reqs for x in r["reads"]] == list(range(30)) * 2
    assert reqs[0]["read_tokens"][:3] == [256, 256, 113]
    assert not any(r["writes"] for r in reqs)
    # at 512 tokens a file is 2 blocks (512, 113); at 16 it is ceil(625 / 16) = 40
    r512 = requests_of(scan_repo(512, files=10, file_chars_median=2500, file_chars_sigma=0.0, batch_files=4,
                                 passes=1, shuffle=False))
    assert r512[0]["read_tokens"][:2] == [512, 113] and sum(len(r["reads"]) for r in r512) == 20
    r16 = requests_of(scan_repo(16, files=10, file_chars_median=2500, file_chars_sigma=0.0, batch_files=4,
                                passes=1, shuffle=False))
    assert sum(len(r["reads"]) for r in r16) == 400


def test_repo_scan_shuffled_passes_cover_the_codebase_once_each() -> None:
    w = scan_repo(files=300, batch_files=7, passes=3, shuffle=True, seed=5)
    reqs = requests_of(w)
    total = w.describe()["codebase_blocks"]
    per_pass = math.ceil(300 / 7)
    assert len(reqs) == 3 * per_pass
    orders = []
    for p in range(3):
        blocks = [x for r in reqs[p * per_pass : (p + 1) * per_pass] for x in r["reads"]]
        assert sorted(blocks) == list(range(total))  # every block exactly once per pass
        orders.append(blocks)
    assert orders[0] != orders[1] != orders[2]  # a fresh order each pass
    assert w.estimated_refs() == 3 * total


def test_repo_scan_file_sizes_follow_the_lognormal() -> None:
    """Mean blocks per file at 256 tokens = E[ceil(C / 1024)] = sum_k P(C > 1024 k), C log-normal."""
    n, median, sigma = 4000, 4096, 1.0
    w = scan_repo(files=n, file_chars_median=median, file_chars_sigma=sigma, file_chars_max=10**9, seed=2)
    counts, _ = w.file_blocks()

    def survival(c: float) -> float:
        return 0.5 * math.erfc((math.log(c) - math.log(median)) / (sigma * math.sqrt(2)))

    expected = 1.0 + sum(survival(1024 * k) for k in range(1, 20_000))
    assert abs(counts.mean() - expected) < 5 * counts.std() / math.sqrt(n)
    chars = w.file_chars()
    assert abs(np.median(np.log(chars)) - math.log(median)) < 0.1


# ------------------------------------------------------------------ scan
def test_scan_is_an_exact_loop() -> None:
    w = ScanWorkload(ScanWorkloadConfig(blocks=50, loops=3, blocks_per_request=8, seed=0), 256)
    w.validate()
    reqs = requests_of(w)
    assert len(reqs) == math.ceil(150 / 8)
    assert [x for r in reqs for x in r["reads"]] == list(range(50)) * 3
    assert [len(r["reads"]) for r in reqs] == [8] * 18 + [6]
    assert w.estimated_refs() == 150


def test_generators_are_registered_with_their_configs(make_cfg: Callable[..., Any]) -> None:
    for kind in ("agent_sessions", "repo_scan", "scan"):
        cfg = make_cfg(f"workload={kind}")
        assert make_workload(cfg.workload, 256).kind == kind
