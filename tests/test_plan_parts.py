"""The planning report's parts on constructed inputs: ranking, bottleneck, break-even, curves, sizing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from exo_sim.compute import PrefillCost
from exo_sim.errors import ConfigError
from exo_sim.sim.settings import sim_settings
from exo_sim.spec import build_spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.base import RequestChunk, Workload
from experiments.planning.bottleneck import resources, verdict
from experiments.planning.curves import lru_curve
from experiments.planning.document import Document
from experiments.planning.operators import break_even, prefix_by_tier, tier_shares, typical_new_tokens
from experiments.planning.planner import miniature_scale
from experiments.planning.ranking import rank
from experiments.planning.settings import plan_settings
from experiments.planning.sizers import sizer_for
from experiments.planning.sizers.agent_sessions import AgentSessionsSizer
from tests.hierarchies import small_spec

MIXES = {c: OmegaConf.create({"name": c, "default": c, "per_tier": {}}) for c in ("fp16", "int8", "int4")}


def _sweep(p99: dict[str, float], refused: dict[str, int] | None = None,
           p50: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for i, (codec, lat) in enumerate(p99.items()):
        rows.append(
            {"job": str(i), "policy": "lru", "codec": codec, "top_hit_ratio": 0.5, "hit_ratio_tokens": 0.4,
             "ttft_p50_s": (p50 or {}).get(codec, lat / 2), "ttft_p99_s": lat, "recomputed_tokens": 0,
             "stranded_blocks": 3, "requests_refused": (refused or {}).get(codec, 0), "bytes_moved": 10**9,
             "requests": 10, "accesses": 100}
        )
    return pd.DataFrame(rows)


def test_ranking_prefers_precision_within_the_tolerance():
    spec = small_spec([4, 8])
    r = rank(_sweep({"int4": 1.00, "int8": 1.04, "fp16": 1.50}), MIXES, spec, 0.05)
    assert list(r.table["codec"]) == ["int4", "int8", "fp16"]
    assert list(r.table["eligible"]) == [True, True, False]
    assert r.recommended.codec == "int8" and r.fastest.codec == "int4"
    text = " ".join(r.reasons())
    assert "policy=lru codec=int4 (TTFT p99 1 s)" in text and "4.0 % faster at p99" in text
    assert text.startswith("It has a TTFT (time to first token) p99 of 1.04 s and p50 of 520 ms")
    assert "latency" not in text


def test_ranking_takes_compression_when_it_pays():
    spec = small_spec([4, 8])
    r = rank(_sweep({"int4": 1.00, "int8": 1.20, "fp16": 1.50}), MIXES, spec, 0.05, baseline=("lru", "fp16"))
    assert r.recommended.codec == "int4"
    text = " ".join(r.reasons())
    assert "policy=lru codec=int8 (8 bits), 20.0 % slower at TTFT p99 (1.2 s)" in text
    assert "TTFT p99 1.5 s -> 1 s, p50 750 ms -> 500 ms" in text  # against the configuration as given
    assert "4-bit values (lossy" in text


def test_ranking_puts_refused_requests_first_then_p99_then_p50():
    spec = small_spec([4, 8])
    # int8 is the quickest but refused 5 requests: its TTFT is over fewer of them, so it ranks last
    r = rank(_sweep({"int4": 2.00, "int8": 1.00, "fp16": 2.05}, refused={"int8": 5}), MIXES, spec, 0.05)
    assert list(r.table["codec"]) == ["int4", "fp16", "int8"]
    assert list(r.table["eligible"]) == [True, True, False]
    assert r.recommended.codec == "fp16"
    text = " ".join(r.reasons())
    assert "1 configuration(s) refuse more requests and rank after it whatever their TTFT (the quickest, " \
           "policy=lru codec=int8, has a TTFT p99 of 1 s but refuses 5" in text
    # equal p99: the lower p50 first
    r = rank(_sweep({"int4": 1.0, "int8": 1.0}, p50={"int4": 0.9, "int8": 0.3}), MIXES, spec, 0.0)
    assert list(r.table["codec"]) == ["int8", "int4"]
    # the recommended one refused requests: said, with the share
    r = rank(_sweep({"int4": 1.0}, refused={"int4": 4}), MIXES, spec, 0.05)
    assert "4 of its 10 requests (40.0 %) were refused" in " ".join(r.reasons())


def test_bottleneck_demand_is_busy_time_over_the_arrival_span():
    summary = {
        "makespan_s": 40.0,
        "link_usage": [
            {"link": "a->b", "busy_s": 30.0, "channels": 1, "busy_fraction": 0.75, "bytes_moved": 3 * 10**9,
             "transfers": 3, "bandwidth_gbps": 1.0},
            {"link": "b->c", "busy_s": 8.0, "channels": 2, "busy_fraction": 0.1, "bytes_moved": 0, "transfers": 1,
             "bandwidth_gbps": 1.0},
        ],
        "codec": {"busy_s": 5.0, "workers": 1, "utilisation": 0.125},
        "prefill": {"busy_s": 1.0, "slots": 1, "utilisation": 0.025},
    }
    res = resources(summary, arrival_span_s=10.0, live_peak_tokens=100, capacity_tokens=400)
    demand = {r.name: r.demand for r in res}
    assert demand == {"link a->b": 3.0, "link b->c": 0.4, "codec engines": 0.5, "prefill engines": 0.1,
                      "hierarchy capacity": 0.25}
    assert res[0].name == "link a->b"
    assert verdict(res).startswith("The bottleneck is the link a->b: it is offered 3.00x")
    short = resources(summary, 10.0, live_peak_tokens=900, capacity_tokens=200)  # 4.5x over a 3.0x link
    assert verdict(short).startswith("The bottleneck is the hierarchy's capacity")
    # a trace's footprint counts blocks read once: shown, never named the bottleneck
    trace = resources(summary, 10.0, live_peak_tokens=900, capacity_tokens=200, footprint=True)
    assert trace[0].kind == "footprint" and trace[0].demand == 4.5
    assert verdict(trace).startswith("The bottleneck is the link a->b")
    # the timed model's summary names the prefill engines' section "compute" (engines, busy_s)
    timed = {**summary, "compute": {"engines": 2, "busy_s": 80.0, "utilisation": 0.75}}
    del timed["prefill"]
    top = resources(timed, 10.0, live_peak_tokens=100, capacity_tokens=400)[0]
    assert (top.name, top.demand, top.utilisation) == ("prefill engines", 4.0, 0.75)


def test_break_even_by_hand_on_ci_small(make_cfg):
    cfg = make_cfg("hardware=ci_small")  # seed mix: vram int8, shared int8, ram fp16, nvme fp32
    spec = build_spec(cfg)
    # sim_settings alone: a flat 10,000 tokens/s (PrefillCost b = 1e-4 s/token, no other term)
    rows = {b.tier: b for b in break_even(spec, sim_settings(cfg.sim))}
    load_shared = 17_039_360 / 25e9  # one int8 block over shared->vram, no codec change
    assert rows["shared"].load_s_per_block == pytest.approx(load_shared)
    assert rows["shared"].recompute_s_one_block == pytest.approx(256 / 10_000)
    assert rows["shared"].breakeven_tokens == 256  # one block already pays
    assert rows["shared"].new_tokens == 256  # n defaults to one block
    # ram (fp16) -> shared -> vram (int8): two links, then fp16 decode at 8 GB/s + int8 encode at 4 GB/s of
    # 4 x 16,777,216 bytes; 29.3 ms per block is slower than recomputing it (25.6 ms): never pays
    load_ram = 33_554_432 / 12e9 + 33_554_432 / 25e9 + 67_108_864 / 8e9 + 67_108_864 / 4e9
    assert rows["ram"].load_s_per_block == pytest.approx(load_ram)
    assert rows["ram"].latency_s == pytest.approx(12e-6)
    assert rows["ram"].breakeven_tokens is None and rows["ram"].horizon_tokens == 2_097_152
    # a recompute only 3 us slower than a load: the link's 10 us latency is repaid after ceil(10/3) = 4 blocks
    rate = 256 / (load_shared + 3e-6)
    rows = {b.tier: b for b in break_even(spec, sim_settings(OmegaConf.merge(cfg.sim, {"prefill_tokens_per_s": rate})))}
    assert rows["shared"].breakeven_tokens == 4 * 256
    # sim.multi_hop=pipeline holds the route's links at once: the slowest link's bytes, not their sum
    piped = replace(sim_settings(cfg.sim), pipeline=True)
    ram = {b.tier: b for b in break_even(spec, piped)}["ram"]
    assert ram.load_s_per_block == pytest.approx(33_554_432 / 12e9 + 67_108_864 / 8e9 + 67_108_864 / 4e9)


def test_break_even_with_a_superlinear_prefill_cost_by_hand(make_cfg):
    cfg = make_cfg("hardware=ci_small")
    spec = build_spec(cfg)
    # b = d: the per-token terms cancel and recomputing a p-token prefix costs c x p^2 / 2 only:
    # prefill_s(n + p, 0) - prefill_s(n, p) = (b - d) p + c p^2 / 2, whatever n
    cost = PrefillCost(0.01, 1e-4, 1e-9, 1e-4, "calibrated", "by hand")
    settings = replace(sim_settings(cfg.sim), prefill_cost=cost)
    load = 17_039_360 / 25e9  # shared -> vram, per int8 block; 10 us of latency once
    # k blocks: recompute 1e-9 x (256 k)^2 / 2 = 3.2768e-5 k^2 s against 1e-5 + k x 681.57 us:
    # k = 20: 13.107 ms < 13.641 ms (recompute is quicker); k = 21: 14.451 ms > 14.323 ms (loading wins)
    assert 3.2768e-5 * 20**2 < 1e-5 + 20 * load and 3.2768e-5 * 21**2 > 1e-5 + 21 * load
    for n in (1, 4096):
        shared = {b.tier: b for b in break_even(spec, settings, new_tokens=n)}["shared"]
        assert shared.breakeven_tokens == 21 * 256 == 5376
        assert shared.new_tokens == n
        assert shared.recompute_s_one_block == pytest.approx(3.2768e-5)
        assert shared.load_s_at_breakeven == pytest.approx(1e-5 + 21 * load)
        assert shared.recompute_s_at_breakeven == pytest.approx(3.2768e-5 * 21**2)
    # linear only (c = 0) and a block recomputes 0.1 us quicker than it loads: loading never wins
    flat = PrefillCost(0.01, 1e-4 + (load - 1e-7) / 256, 0.0, 1e-4, "calibrated", "by hand")
    shared = {b.tier: b for b in break_even(spec, replace(settings, prefill_cost=flat))}["shared"]
    assert shared.breakeven_tokens is None
    # layerwise overlap over 32 layers: with n = 4096 the rest's prefill (> 0.4 s) outlasts the load, which
    # then costs only load / 32 = 21.6 us for one block, under the 32.8 us its recompute costs: from one block
    lw = replace(settings, layerwise=True, layers=32)
    assert (1e-5 + load) / 32 < 3.2768e-5 < cost.seconds(4096, 256)
    shared = {b.tier: b for b in break_even(spec, lw, new_tokens=4096)}["shared"]
    assert shared.breakeven_tokens == 256


def test_typical_new_tokens_and_prefix_hits_by_hand():
    requests = pd.DataFrame({"prefill_tokens": [100, 300, 5000, 0], "refused": [False, False, True, False]})
    assert typical_new_tokens(requests, 256) == 100  # median of 100, 300, 0 (the refused one is left out)
    assert typical_new_tokens(requests.assign(refused=True), 256) == 256  # none ran: one block
    summary = {
        "prompt_tokens": 1000,
        "hit_tokens_by_tier": {"vram": 512, "host": 256},
        "tiers": [{"name": "vram", "stranded": 3}, {"name": "host", "stranded": 0}, {"name": "disk"}],
    }
    rows = prefix_by_tier(summary)
    assert [(x.tier, x.hit_tokens, x.hit_ratio_tokens, x.stranded_blocks) for x in rows] == [
        ("vram", 512, 0.512, 3), ("host", 256, 0.256, 0), ("disk", 0, 0.0, 0)
    ]


def test_tier_shares_flag_a_small_write_through_last_tier():
    summary = {"tiers": [
        {"name": "vram", "capacity_tokens": 1000, "hits": 60, "misses": 40},
        {"name": "host", "capacity_tokens": 500, "hits": 1, "misses": 39},
    ]}
    wt = tier_shares(summary, "write_through")
    assert wt[1].flag.startswith("write-through into a tier no larger")
    assert wt[1].size_vs_above == 0.5 and wt[1].share_of_reads == 0.01 and wt[1].cumulative_hit_ratio == 0.61
    ex = tier_shares(summary, "exclusive")
    assert ex[1].flag == ""  # 1 % of reads is above the 0.5 % floor; exclusive tiers add their capacity


class _Fixed(Workload):
    kind = "fixed_for_test"

    def __init__(self, blocks: list[int]) -> None:
        super().__init__({}, 1)
        self._blocks = np.asarray(blocks, dtype=np.int64)

    def chunks(self) -> Iterator[RequestChunk]:
        n = self._blocks.shape[0]
        yield RequestChunk(
            arrival_s=np.zeros(n), offsets=np.arange(n + 1), blocks=self._blocks, writes=np.zeros(n, dtype=bool),
            tokens=np.ones(n, dtype=np.int64),
        )


def test_lru_curve_and_its_inverse_by_hand():
    # 1 2 3 1 2 3: the three reuses each have stack distance 3
    c = lru_curve(_Fixed([1, 2, 3, 1, 2, 3]), block_tokens=1, scale=2)
    assert c.reads == 6 and c.distinct_blocks == 3
    assert list(c.hit_ratio(np.array([1, 2, 3, 10]))) == [0.0, 0.0, 0.5, 0.5]
    assert c.capacity_for(0.5) == 3 and c.capacity_for(0.51) is None and c.capacity_for(0.0) == 0
    frame = c.frame(points=3)
    assert list(frame["capacity_blocks"]) == [2, 4, 6]  # curve capacities 1, 2, 3 at 1:2 -> full size
    assert list(frame["hit_ratio"]) == [0.0, 0.0, 0.5]


def test_live_context_by_hand():
    # requests of sessions 0 1 0 1 2 writing 10 20 5 7 3 tokens; a session stops counting after its last turn
    sid = np.array([0, 1, 0, 1, 2])
    live = AgentSessionsSizer._live(sid, np.array([10, 20, 5, 7, 3]), 100)
    assert list(live) == [110, 130, 135, 127, 103]


def test_agent_sessions_sized_to_the_target(make_cfg):
    cfg = make_cfg("workload=agent_sessions")
    settings = plan_settings(cfg)
    sizer = sizer_for("agent_sessions")(cfg.workload, 256, settings)
    over = sizer.overrides(262_144)
    assert over["workload.concurrency"] == round((262_144 - 2048) / sizer.per_session_tokens)
    # the configured per-session rate (10 requests/s over 32 sessions) times the sized concurrency
    assert over["workload.request_rate_per_s"] == pytest.approx(10 / 32 * over["workload.concurrency"])
    wl = OmegaConf.merge(cfg.workload, {k.split(".", 1)[1]: v for k, v in over.items()})
    live = sizer.measure_stream(make_workload(wl, 256))
    assert live.mean_tokens == pytest.approx(262_144, rel=0.10)
    # every cached block is full (a stream's partial tail is never cached): slots hold exactly the tokens
    assert live.peak_tokens >= live.mean_tokens and live.mean_slot_tokens == live.mean_tokens
    mini = sizer.overrides(262_144, scale=3)
    assert mini["workload.concurrency"] == round(over["workload.concurrency"] / 3)
    assert mini["workload.request_rate_per_s"] == over["workload.request_rate_per_s"]


def test_miniature_keeps_sessions_in_the_top_tier(make_cfg):
    # h100_node, Llama-3-8B in bf16: the VRAM's KV budget is 80 GiB x 0.9 = 77,309,411,328 B
    # - 16,060,522,496 B weights - 341,049,344 B workspace = 60,907,839,488 B = 3,574 int8 blocks
    spec = build_spec(make_cfg("hardware=h100_node", "payload=llama3_8b_kv"))
    assert spec.tiers[0].capacity_blocks == 60_907_839_488 // 17_039_360 == 3574
    assert miniature_scale(10_485_760, 1_048_576, spec, min_blocks=8) == 10
    # one session's context of 400 blocks: the miniature's top tier must still hold two of them
    assert miniature_scale(10_485_760, 1_048_576, spec, min_blocks=8, unit_blocks=400) == 3574 // 800 == 4
    assert miniature_scale(262_144, 1_048_576, spec, min_blocks=8) == 1


def test_miniature_scale_counts_the_kv_budget_not_the_device(make_cfg):
    # seed workstation, int4 weights: 1,662,037,196 B of KV budget (test_bytes.py); 8 blocks of the
    # largest codec (fp32: 65,536 x 256 x 4 = 67,108,864 B) fit in it 3 times, in the 8 GiB device 16 times
    spec = build_spec(make_cfg("payload.weight_dtype=int4"))
    assert miniature_scale(10_485_760, 1_048_576, spec, min_blocks=8) == 1_662_037_196 // (8 * 67_108_864) == 3


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("plan.policies=[lru,nope]", "plan.policies[1]"),
        ("plan.codecs=[]", "plan.codecs"),
        ("phase.next_phase=3m", "phase.next_phase"),
        ("phase.target_tokens=0", "phase.target_tokens"),
        ("plan.p99_tolerance=1.5", "plan.p99_tolerance"),
        ("plan.sweep_jobs=0", "plan.sweep_jobs"),
        ("+plan.audit_claimed_tokens.gpu=5", "plan.audit_claimed_tokens.gpu"),
    ],
)
def test_bad_plan_knobs_are_refused_naming_the_key(make_cfg, override, key):
    with pytest.raises(ConfigError) as err:
        plan_settings(make_cfg(override))
    assert err.value.key == key


def test_document_writes_markdown_and_escaped_html():
    doc = Document("t <1>")
    doc.heading("A & B")
    doc.paragraph("**bold** and `code` <x>")
    doc.table(["a", "b"], [["x|y", 2]])
    md, html = doc.markdown(), doc.html()
    assert "## A & B" in md and "| x\\|y | 2 |" in md and "| --- | ---: |" in md
    assert "<h2>A &amp; B</h2>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "&lt;x&gt;" in html and '<td class="num">2</td>' in html


def test_bytes_per_token_per_rank_and_per_node(make_cfg):
    from experiments.planning.capacity import capacity_report
    from experiments.planning.operators import bytes_per_token

    # Llama-3-70B at TP=8: 8 KV heads over 8 ranks -> one head per rank: 2 x 80 x 1 x 128 values per token
    cfg = make_cfg("payload=llama3_70b_kv", "payload.tensor_parallel=8", "hardware=h100_node")
    rows = {b.codec: b for b in bytes_per_token(capacity_report(cfg, build_spec(cfg), 1))}
    assert rows["fp16"].per_rank == 2 * 80 * 1 * 128 * 2 == 40_960
    assert rows["fp16"].per_node == 8 * 40_960 == 327_680  # what a host tier shared by the node must hold
    assert rows["int8"].per_rank == (2 * 80 * 128 * 256 + 2 * 80 * 128 * 256 // 128 * 2) / 256
    assert rows["int4"].top_tier_gain_vs_fp16 < 4  # scales eat into the nominal 4x
