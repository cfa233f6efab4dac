"""Hits below the top tier (issue 12): counted where the block was found, reported by every source,
and, where a workload's reuse stays within the tiers above, provably none.

A hand-sized case pins the counting: a cached prefix whose blocks lie in the second and the third
tier is two hits there, two promotions, 32 hit tokens, two ``hits_<tier>`` in the request's row and a
load over both links, worked out by hand, in the timed model and in the replay's walk alike. Then
agent sessions on the seed workstation: their live context fits in vram + shared, so ram and nvme are
never read (the planner says so in one line), no size of ram changes a hit or the TTFT p99, and a
shared tier too small for the live context sends hits to ram in the replay and the timed model alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import pytest
from omegaconf import DictConfig, OmegaConf

from exo_sim.driver import Driver
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import run_replay
from exo_sim.results import build_summary, requests_frame
from exo_sim.sim.run import run_sim
from exo_sim.spec import build_spec
from exo_sim.workloads import make_workload
from experiments.planning.operators import never_read_again, tier_shares
from experiments.planning.sizers.agent_sessions import AgentSessionsSizer
from tests import simcases
from tests.simcases import BLOCK_TOKENS, FP16_BYTES, chunk, column, link, simulate, timeline

# prefill_s(n, p) = 0.5 + n/16 + n (p + n/2)/640 + p/32 (as in tests/test_sim_timeline.py)
COST = (0.5, 1 / 16, 1 / 640, 1 / 32)


def _hand_cfg() -> DictConfig:
    """t0 (4 blocks) - t1 (4) - t2 (8), fp16 everywhere; each link 4,096 B/s (one block a second), 0.25 s latency."""
    return simcases.make_cfg([4, 4, 8], [link("t0", "t1", 4096.0, 0.25), link("t1", "t2", 4096.0, 0.25)], prefill=COST)


def test_a_prefix_found_in_the_second_and_third_tier_is_counted_there() -> None:
    """r0 reads the chain 1, 2, 3 (48 tokens): block 1 lies in t2, block 2 in t1. Up to floor(47 / 16) = 2
    blocks may be cached: block 1 is a hit at t2, block 2 a hit at t1, block 3 is prefilled.

    Counts: 3 reads reach t0 (3 misses there), 3 reach t1 (1 hit, 2 misses), 2 reach t2 (1 hit, 1 miss);
    one promotion from each of t1 and t2. Time, store-and-forward: t2 -> t1 carries block 1 (4,096 B,
    1 s + 0.25 s), then t1 -> t0 carries blocks 1 and 2 (8,192 B, 2 s + 0.25 s): load 3.5 s; the prefill
    of n = 16 tokens after p = 32: 0.5 + 1 + 16 x (32 + 8)/640 + 1 = 3.5 s; TTFT 7 s."""
    cfg = _hand_cfg()
    model = simulate(cfg, [(0.0, [1, 2, 3])], reuse="prefix", preload={2: [1], 1: [2]})
    assert timeline(model) == [  # sorted by start
        (0.0, pytest.approx(1.25), "t2->t1", "r0"),
        (0.0, pytest.approx(7.0), "engine", "r0"),
        (pytest.approx(1.25), pytest.approx(3.5), "t1->t0", "r0"),
    ]
    assert column(model, "load_s") == [pytest.approx(3.5)] and column(model, "ttft_s") == [pytest.approx(7.0)]
    assert column(model, "bytes_loaded") == [2 * FP16_BYTES] and column(model, "cached_tokens") == [32.0]

    spec = model.spec
    summary = build_summary("sim", None, spec, model.h, model.driver.totals, workload={}, elapsed_s=1.0)
    rows = {t["name"]: t for t in summary["tiers"]}
    assert [(rows[n]["hits"], rows[n]["misses"], rows[n]["promotions"]) for n in ("t0", "t1", "t2")] == [
        (0, 3, 0), (1, 2, 1), (1, 1, 1)
    ]
    assert summary["hit_tokens_by_tier"] == {"t0": 0, "t1": BLOCK_TOKENS, "t2": BLOCK_TOKENS}
    assert summary["hit_tokens"] == 2 * BLOCK_TOKENS and summary["prompt_tokens"] == 3 * BLOCK_TOKENS
    assert {(x["src"], x["dst"]): x["bytes_moved"] for x in summary["links"]} == {
        ("t1", "t0"): FP16_BYTES, ("t2", "t0"): FP16_BYTES
    }
    columns, hits = model.request_columns()
    frame = requests_frame(spec, columns, hits)
    assert frame[["hits_t0", "hits_t1", "hits_t2"]].values.tolist() == [[0, 1, 1]]

    # the replay's walk (Driver.chunk, no clock) over a core preloaded alike decides the same
    h = Hierarchy(replace(build_spec(cfg), reuse="prefix"))
    assert h.preload(2, [1]) == [] and h.preload(1, [2]) == []
    walk = Driver(h, "prefix", BLOCK_TOKENS)
    walk.chunk(chunk([(0.0, [1, 2, 3])]))
    assert [(c.hits, c.misses, c.promotions) for c in h.counters()] == [(0, 3, 0), (1, 2, 1), (1, 1, 1)]
    assert walk.totals.found_tokens == [0, BLOCK_TOKENS, BLOCK_TOKENS]


# ---------------------------------------------------------------- agent sessions on the seed workstation
SESSIONS = ["workload=agent_sessions", "workload.sessions=32", "workload.concurrency=4"]


def _hits(summary: dict) -> list[tuple[int, int, int]]:
    return [(t["hits"], t["misses"], t["stranded"]) for t in summary["tiers"]]


def _resized(cfg: DictConfig, tier: int, factor: float) -> DictConfig:
    out = copy.deepcopy(cfg)
    bytes_now = int(build_spec(cfg).tiers[tier].capacity_bytes)
    OmegaConf.update(out, f"hardware.tiers.{tier}.capacity_bytes", int(bytes_now * factor), merge=False)
    return out


@pytest.mark.parametrize("reuse", ["prefix", "block"])
def test_sessions_whose_context_fits_above_never_read_ram(make_cfg: Callable[..., DictConfig], reuse: str) -> None:
    cfg = make_cfg(*SESSIONS, f"hierarchy.reuse={reuse}")
    cfg.output.progress = False
    spec = build_spec(cfg)
    bt = spec.block_tokens
    live = AgentSessionsSizer(cfg.workload, bt, None).measure_stream(make_workload(cfg.workload, bt))
    above = spec.tiers[0].high_blocks + spec.tiers[1].high_blocks
    assert live.peak_slot_tokens // bt < above  # the whole live context fits in vram + shared
    rep, sim = run_replay(cfg).summary, run_sim(cfg).summary
    assert _hits(sim) == _hits(rep)
    tiers = rep["tiers"]
    assert [t["name"] for t in tiers] == ["vram", "shared", "ram", "nvme"]
    assert tiers[1]["hits"] > 0 and tiers[2]["writes"] > 0  # shared serves reads; blocks do reach ram
    assert [(t["hits"], t["stranded"], t["drops"]) for t in tiers[2:]] == [(0, 0, 0), (0, 0, 0)]
    assert never_read_again(tiers, 2, "exclusive") and not never_read_again(tiers, 1, "exclusive")
    flag = tier_shares(rep, "exclusive")[2].flag
    assert flag.startswith(f"none of the {tiers[2]['writes']:,} blocks written into it was read again")
    assert f"(vram, shared: {tiers[0]['capacity_blocks'] + tiers[1]['capacity_blocks']:,} blocks)" in flag
    # so no size of ram changes a hit; nor the TTFT here (promotions vram <- shared need no codec work, and
    # demotions run in the background, on the links' other direction)
    for factor in (1 / 64, 4.0):
        other = _resized(cfg, 2, factor)
        assert _hits(run_replay(other).summary) == _hits(rep)
        again = run_sim(other).summary
        assert _hits(again) == _hits(rep) and again["ttft_s"]["p99"] == pytest.approx(sim["ttft_s"]["p99"])


@pytest.mark.parametrize("reuse", ["prefix", "block"])
def test_a_shared_tier_too_small_for_the_live_context_sends_hits_to_ram(
    make_cfg: Callable[..., DictConfig], reuse: str
) -> None:
    cfg = _resized(make_cfg(*SESSIONS, f"hierarchy.reuse={reuse}"), 1, 1 / 16)
    cfg.output.progress = False
    spec = build_spec(cfg)
    bt = spec.block_tokens
    live = AgentSessionsSizer(cfg.workload, bt, None).measure_stream(make_workload(cfg.workload, bt))
    assert live.peak_slot_tokens // bt > spec.tiers[0].high_blocks + spec.tiers[1].high_blocks
    rep, result = run_replay(cfg).summary, run_sim(cfg)
    sim = result.summary
    assert _hits(sim) == _hits(rep)
    ram = sim["tiers"][2]
    assert ram["hits"] > 0 and ram["promotions"] == ram["hits"]
    assert int(result.requests["hits_ram"].sum()) == ram["hits"]
    if reuse == "prefix":  # a prefix hit is a whole block
        assert sim["hit_tokens_by_tier"]["ram"] == ram["hits"] * bt
    assert tier_shares(rep, "exclusive")[2].flag == ""  # it serves reads: no flag


def test_never_read_again_needs_every_count_and_an_exclusive_hierarchy() -> None:
    def tier(name: str, hits: int, stranded: int = 0, drops: int = 0, writes: int = 5) -> dict:
        return {"name": name, "capacity_tokens": 64, "capacity_blocks": 4, "hits": hits, "misses": 10 - hits,
                "stranded": stranded, "drops": drops, "writes": writes}

    clean = [tier("a", 6), tier("b", 4), tier("c", 0), tier("d", 0)]
    assert never_read_again(clean, 2, "exclusive") and never_read_again(clean, 3, "exclusive")
    assert not never_read_again(clean, 1, "exclusive")  # b served reads
    assert not never_read_again(clean, 2, "write_through")
    # a block dropped off the last tier, or stranded below, may have been read again: no claim
    assert not never_read_again([tier("a", 6), tier("b", 4), tier("c", 0), tier("d", 0, drops=1)], 2, "exclusive")
    assert not never_read_again([tier("a", 6), tier("b", 4), tier("c", 0, stranded=1), tier("d", 0)], 2, "exclusive")
    assert not never_read_again([tier("a", 6), tier("b", 4), tier("c", 0, writes=0), tier("d", 0)], 2, "exclusive")
    assert not never_read_again([tier("a", 6), {"name": "b", "hits": 0, "writes": 3}], 1, "exclusive")  # counts missing
    shares = tier_shares({"tiers": clean}, "exclusive")
    assert shares[2].flag == ("none of the 5 blocks written into it was read again (no hit, none stranded or dropped "
                              "here or below): the tiers above (a, b: 8 blocks) served every hit, so no size of it "
                              "changes a hit at this phase")
    assert shares[3].flag.startswith("none of the 5 blocks") and "(a, b, c: 12 blocks)" in shares[3].flag
    assert shares[1].flag == ""
