"""The one-pass LRU curve under prefix reuse (exo_sim.mrc.prefix_lru_pass / prefix_lru_hits) against the
decision core: by hand, against single-tier replays on the Mooncake traces, on random request chains,
and exo-mrc end to end."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR
from exo_sim.errors import ConfigError
from exo_sim.mrc import (
    COLUMNS,
    RequestArrays,
    engine_prefix_hits,
    plan_mrc,
    prefix_lru_hits,
    prefix_lru_pass,
    request_arrays,
    run_mrc,
    single_tier_config,
)
from exo_sim.replay import run_replay
from tests.conftest import trace_path
from tests.test_mrc import run


def write_trace(path: Path, requests: list[tuple[list[int], int]]) -> Path:
    """A Mooncake JSONL trace: one ``(hash ids, input tokens)`` a line (512-token blocks)."""
    path.write_text("".join(
        json.dumps({"timestamp": t, "input_length": n, "output_length": 1, "hash_ids": ids}) + "\n"
        for t, (ids, n) in enumerate(requests)
    ))
    return path


def mooncake(path: Path | str, *more: str) -> list[str]:
    return ["experiment=single_tier", "workload=mooncake", f"workload.path={path}", *more]


def caps_override(caps: list[int]) -> str:
    return f"mrc.capacities_blocks=[{','.join(map(str, caps))}]"


def assert_equals_replays(make_cfg: Callable[..., Any], overrides: list[str], caps: list[int]) -> pd.DataFrame:
    """The one-pass rows equal single-tier replays at every capacity, column by column."""
    frame = run_mrc(make_cfg(*overrides, caps_override(caps))).frame
    assert list(frame.columns) == list(COLUMNS)
    assert frame["reuse"].unique().tolist() == ["prefix"]
    for cap in caps:
        s = run_replay(make_cfg(*overrides, f"capacity_blocks={cap}", "policy=lru")).summary
        assert s["reuse"] == "prefix"
        row = frame[frame["capacity_blocks"] == cap].iloc[0]
        got = (row["hits"], row["accesses"], row["hit_tokens"], row["prompt_tokens"], row["refused_requests"])
        want = (s["tiers"][0]["hits"], s["accesses"], s["hit_tokens"], s["prompt_tokens"], s["requests_refused"])
        assert got == want, cap
        assert row["hit_ratio"] == pytest.approx(s["tiers"][0]["hit_ratio"])
        assert row["token_hit_ratio"] == pytest.approx(s["hit_ratio_tokens"])
        assert row["capacity_bytes"] == s["tiers"][0]["capacity_bytes"]
    return frame


# ------------------------------------------------------------------ small traces, by hand
# 512-token blocks; a prompt's partial last block is never cached but takes a slot while it runs.
HAND = [
    ([1, 2, 3], 1200),     # 1, 2 cached; 3 partial
    ([1, 2, 4], 1100),     # hits 1, 2 (cap = 2)
    ([11, 12], 700),       # 11 computed; partial 12 evicts 2 (the chain's tail) at C=3
    ([1, 2, 14], 1100),    # C=3: 1 hit, 2 recomputed; C>=4: 2 hits
    ([1, 6, 7, 8, 9], 2100),  # refused below 5 blocks; 1 hit; partial 9 evicts 2 at C=5
    ([1, 2, 10], 1300),    # C=5: 1 hit (2 was evicted by 9); C=3, 4 and >= 6: 2 hits
]
# capacity -> (hits, read blocks served, requests refused)
HAND_CURVE = {2: (0, 2, 5), 3: (5, 14, 1), 4: (6, 14, 1), 5: (6, 19, 0), 6: (7, 19, 0), 7: (7, 19, 0)}


def test_hand_trace(make_cfg: Callable[..., Any], tmp_path: Path) -> None:
    """Refusal, the n-1 cap, tail-first release and the partial block's slot, counted by hand.

    At C=5 a stack that ignored the partial block would keep block 2 (5 cached blocks after request 5)
    and give 7 hits; the engine evicts 2 for the partial block 9, and the curve says 6, as it does.
    """
    overrides = mooncake(write_trace(tmp_path / "hand.jsonl", HAND))
    caps = sorted(HAND_CURVE)
    frame = assert_equals_replays(make_cfg, overrides, caps)
    got = {int(r.capacity_blocks): (int(r.hits), int(r.accesses), int(r.refused_requests)) for r in frame.itertuples()}
    assert got == HAND_CURVE
    assert frame["method"].unique().tolist() == ["prefix_stack_distance"]
    assert (frame["hit_tokens"] == frame["hits"] * 512).all()
    assert frame.loc[frame["capacity_blocks"] == 3, "prompt_tokens"].item() == 1200 + 1100 + 700 + 1100 + 1300


DUPLICATE = [
    ([1, 2], 1024),        # a full last block
    ([1, 2], 1024),        # fully cached: the n-1 cap recomputes 2 beside its resident copy (stranded)
    ([1, 2, 3], 1100),     # the lookup uses the first copy: 2 hits
    ([1, 2, 3], 1100),
]


def test_duplicate_copy_is_finished_by_the_engine(make_cfg: Callable[..., Any], tmp_path: Path) -> None:
    """A stranded block's old copy is a dead slot only where it was resident: the pass hands over.

    The pass finds the first request that makes a copy at each capacity (request 1 here, at every
    capacity that serves it) and the decision core finishes from the stack's state there.
    """
    path = write_trace(tmp_path / "dup.jsonl", DUPLICATE)
    caps = [2, 3, 10]
    overrides = mooncake(path)
    plan = plan_mrc(make_cfg(*overrides))
    res = prefix_lru_pass(request_arrays(plan.workload), 512, caps)
    assert res.engine_from.tolist() == [1, 1, 1]
    assert res.hits.tolist() == [0, 0, 0]  # before request 1
    assert [len(p) for p in res.preload if p is not None] == [2, 2, 2]
    frame = assert_equals_replays(make_cfg, overrides, caps)
    assert frame["method"].unique().tolist() == ["prefix_stack_distance+engine"]
    got = {int(r.capacity_blocks): (int(r.hits), int(r.accesses), int(r.refused_requests)) for r in frame.itertuples()}
    assert got == {2: (1, 4, 2), 3: (5, 10, 0), 10: (5, 10, 0)}


# ------------------------------------------------------------------ the Mooncake traces
TRACES = [
    ("conversation_trace.jsonl", 512, 3000, [1, 7, 20, 64, 150, 246, 247, 1000, 8000, 60_000]),
    ("synthetic_trace.jsonl", 512, None, [1, 5, 23, 100, 373, 374, 3000, 20_000, 43_924]),
    ("conversation_trace.jsonl", 256, 1200, [3, 30, 200, 493, 2000, 40_000]),
]


@pytest.mark.parametrize("name,block_tokens,max_requests,caps", TRACES,
                         ids=[f"{t[0].split('_')[0]}-{t[1]}" for t in TRACES])
def test_mooncake_traces_equal_replays(
    make_cfg: Callable[..., Any], name: str, block_tokens: int, max_requests: int | None, caps: list[int]
) -> None:
    """Capacities across refusal (below the largest request), the knee and no eviction at all."""
    path = trace_path(f"mooncake/{name}")
    more = [f"block_tokens={block_tokens}"]
    if max_requests is not None:
        more.append(f"workload.max_requests={max_requests}")
    frame = assert_equals_replays(make_cfg, mooncake(path, *more), caps)
    if block_tokens == 512:  # chains, and no fully cached prompt ends on a full block: no copy, one pass
        assert frame["method"].unique().tolist() == ["prefix_stack_distance"]
    assert (frame["refused_requests"].iloc[0] > 0) and frame["refused_requests"].iloc[-1] == 0


def test_agent_sessions_copies_are_finished_by_the_engine(make_cfg: Callable[..., Any]) -> None:
    """Agent turns re-read their context past a partial block: every such block gets a copy."""
    overrides = ["experiment=single_tier", "workload=agent_sessions", "workload.sessions=40",
                 "workload.concurrency=6", "workload.turns_max=10"]
    frame = assert_equals_replays(make_cfg, overrides, [2, 9, 60, 400, 3000])
    assert "prefix_stack_distance+engine" in set(frame["method"])


# ------------------------------------------------------------------ random chains against the core
BT = 256


@pytest.fixture(scope="module")
def scan_cfg() -> DictConfig:
    """A single-tier config whose blocks are ``BT`` tokens (the engine reads only the hierarchy)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("config", overrides=["experiment=single_tier", "workload=scan"])


def random_requests(rng: random.Random) -> RequestArrays:
    """Block chains from a tree: shared heads, partial last blocks, partial blocks inside a chain,
    repeated prompts, written output blocks, requests with no reads, empty ones, a few non-chains."""
    children: dict[int | None, list[int]] = {}
    ids = [0]
    fresh = [10**9]
    reqs: list[tuple[list[int], list[int], list[bool]]] = []
    for _ in range(rng.randint(1, 30)):
        u = rng.random()
        if u < 0.05:
            reqs.append(([], [], []))
            continue
        if u < 0.1:
            n = rng.randint(1, 2)
            reqs.append(([fresh[0] + i for i in range(n)], [BT] * n, [True] * n))
            fresh[0] += n
            continue
        if u < 0.3 and reqs:
            reqs.append(reqs[rng.randrange(len(reqs))])
            continue
        blocks: list[int] = []
        cur: int | None = None
        for _ in range(rng.randint(1, 7)):
            opts = children.setdefault(cur, [])
            if opts and rng.random() < 0.7:
                b = rng.choice(opts)
            else:
                b, ids[0] = ids[0], ids[0] + 1
                opts.append(b)
            if rng.random() < 0.03:
                b = rng.randrange(ids[0])  # not a chain
            blocks.append(b)
            cur = b
        tokens = [BT] * len(blocks)
        if rng.random() < 0.6:
            tokens[-1] = rng.randint(1, BT - 1)
        if len(tokens) > 2 and rng.random() < 0.1:
            tokens[1] = rng.randint(1, BT - 1)
        if len(blocks) > 1 and rng.random() < 0.05:
            blocks[-1] = blocks[0]
        writes = [False] * len(blocks)
        if rng.random() < 0.3:
            n = rng.randint(1, 2)
            blocks += [fresh[0] + i for i in range(n)]
            fresh[0] += n
            tokens += [BT] * n
            writes += [True] * n
        reqs.append((blocks, tokens, writes))
    offsets = np.cumsum([0] + [len(r[0]) for r in reqs]).astype(np.int64)
    return RequestArrays(
        np.array([b for r in reqs for b in r[0]], dtype=np.int64),
        np.array([t for r in reqs for t in r[1]], dtype=np.int64),
        np.array([w for r in reqs for w in r[2]], dtype=bool),
        offsets,
    )


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.integers(1, 24), min_size=1, max_size=6, unique=True))
def test_random_chains_equal_the_engine(scan_cfg: DictConfig, rng: random.Random, caps: list[int]) -> None:
    """Hits equal the decision core's from an empty cache at every capacity: the pass alone where it
    finds no duplicate copy, the pass then the core from its state where it does."""
    req = random_requests(rng)
    caps = sorted(caps)
    alone = prefix_lru_pass(req, BT, caps)
    done, engine = prefix_lru_hits(scan_cfg, req, BT, caps, "fp16")
    assert (engine == (alone.engine_from >= 0)).all()
    for i, cap in enumerate(caps):
        want = engine_prefix_hits(scan_cfg, req, cap, "fp16")
        assert done.hits[i] == want, (cap, int(alone.engine_from[i]))
        if not engine[i]:
            assert alone.hits[i] == want


# ------------------------------------------------------------------ config and exo-mrc end to end
def test_prefix_needs_chains_and_the_tier_keeps_the_reuse(make_cfg: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError) as err:
        plan_mrc(make_cfg("experiment=single_tier", "workload=scan", "hierarchy.reuse=prefix"))
    assert "`hierarchy.reuse`" in str(err.value)
    cfg = make_cfg("experiment=single_tier", "workload=scan", "hierarchy.reuse=block")
    assert single_tier_config(cfg, 10, "lru", "fp16").hierarchy.reuse == "block"


def test_exo_mrc_under_prefix_equals_exo_replay(tmp_path: Path) -> None:
    """LRU in one pass and FIFO by replays, under prefix reuse, against exo-replay's summaries."""
    path = trace_path("mooncake/synthetic_trace.jsonl")
    out = tmp_path / "mrc"
    caps = [3, 40, 2000]
    r = run("exo-mrc", *mooncake(path, "workload.max_requests=600"), caps_override(caps), "mrc.policies=[lru,fifo]",
            f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "prefix reuse" in r.stdout and "prefix-hit ratio (hit blocks / read blocks)" in r.stdout
    frame = pd.read_parquet(out / "mrc.parquet")
    assert list(frame.columns) == list(COLUMNS)
    assert frame.groupby("policy")["method"].first().to_dict() == {"fifo": "replay", "lru": "prefix_stack_distance"}
    for policy, cap in [("lru", 40), ("fifo", 2000)]:
        run_dir = tmp_path / f"replay-{policy}-{cap}"
        r = run("exo-replay", *mooncake(path, "workload.max_requests=600"), f"capacity_blocks={cap}",
                f"policy={policy}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        s = json.loads((run_dir / "summary.json").read_text())
        row = frame[(frame["policy"] == policy) & (frame["capacity_blocks"] == cap)].iloc[0]
        assert (row["hits"], row["accesses"], row["hit_tokens"], row["refused_requests"]) == (
            s["tiers"][0]["hits"], s["accesses"], s["hit_tokens"], s["requests_refused"])
        assert row["reuse"] == s["reuse"] == "prefix"
