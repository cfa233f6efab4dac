"""The timed model's SimPy timelines, asserted whole, on tiny cases computed by hand.

Blocks are 4,096 bytes in fp16 (see tests/simcases.py); prefill runs at one block per second unless
a test gives its own prefill cost. Expected times are written as latency + bytes / bandwidth from the
figures each test gives. Every request that computes or loads anything holds a compute engine from
the moment it gets one until its load and prefill are done: the log's ``engine`` job spans exactly
that (so it covers the request's promotions too); background demotions hold no engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from exo_sim.errors import ConfigError
from exo_sim.sim.arrivals import THINK_TIMES
from exo_sim.sim.model import TimedModel
from tests.simcases import (
    ELEMENTS,
    FP16_BYTES,
    FP32_BYTES,
    INT8_BYTES,
    column,
    latencies,
    link,
    make_cfg,
    settings_of,
    simulate,
    timeline,
)

BW = 4096.0  # bytes/s: one fp16 block per second
LAT = 0.25  # s
ONE = LAT + FP16_BYTES / BW  # one block over the t0-t1 link: 1.25 s


def approx_timeline(expected: list[tuple[float, float, str, str]]) -> list[object]:
    return [(pytest.approx(a, abs=1e-9), pytest.approx(b, abs=1e-9), s, r) for a, b, s, r in sorted(expected)]


def assert_parts(m: TimedModel, queue: list[float], load: list[float], compute: list[float], ttft: list[float]) -> None:
    """The request columns queue_s, load_s, compute_s and ttft_s, request by request."""
    assert column(m, "queue_s") == pytest.approx(queue, abs=1e-9)
    assert column(m, "load_s") == pytest.approx(load, abs=1e-9)
    assert column(m, "compute_s") == pytest.approx(compute, abs=1e-9)
    assert column(m, "ttft_s") == pytest.approx(ttft, abs=1e-9)
    assert latencies(m) == column(m, "ttft_s")


def test_one_transfer() -> None:
    """r0 computes A; r1 computes B and demotes A; r2 promotes A (and demotes B) over the link.

    r2 computes nothing but still takes the engine for its load: 20 -> 20 + 1.25."""
    cfg = make_cfg([1, 4], [link("t0", "t1", BW, LAT)])
    m = simulate(cfg, [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "engine", "r0"),  # 16 tokens at 16 tokens/s
            (10.0, 11.0, "engine", "r1"),
            (10.0, 10.0 + ONE, "t0->t1", "r1"),  # A demoted in the background: no engine
            (20.0, 20.0 + ONE, "engine", "r2"),  # held while A loads
            (20.0, 20.0 + ONE, "t1->t0", "r2"),  # A promoted
            (20.0, 20.0 + ONE, "t0->t1", "r2"),  # B demoted: the other direction of a duplex link
        ]
    )
    assert_parts(m, queue=[0.0, 0.0, 0.0], load=[0.0, 0.0, ONE], compute=[1.0, 1.0, 0.0], ttft=[1.0, 1.0, ONE])
    assert m.makespan_s == pytest.approx(20.0 + ONE)
    usage = {u.name: u for u in m.link_usage()}
    assert usage["t0->t1"].bytes_moved == 2 * FP16_BYTES and usage["t0->t1"].transfers == 2
    assert usage["t1->t0"].busy_s == pytest.approx(ONE)


def test_two_loads_contend_for_the_engine_and_the_channel() -> None:
    """r2 and r3 arrive together and both promote from t1. With one engine r3 waits for it (r2 holds
    it through its load); with two engines r3 gets one at once and waits for the link's one channel
    instead; only with two of each is there no wait."""
    requests = [(0.0, [1, 2]), (10.0, [3, 4]), (20.0, [1]), (20.0, [2])]
    both = LAT + 2 * FP16_BYTES / BW  # r1 demotes A and B in one batched transfer: 0.25 + 2 = 2.25 s
    m = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT)]), requests)
    assert timeline(m) == approx_timeline(
        [
            (0.0, 2.0, "engine", "r0"),  # A, B: 32 tokens at 16 tokens/s
            (10.0, 12.0, "engine", "r1"),  # C, D
            (10.0, 10.0 + both, "t0->t1", "r1"),
            (20.0, 20.0 + ONE, "engine", "r2"),  # r2 loads A holding the engine: 20 -> 21.25
            (20.0, 20.0 + ONE, "t1->t0", "r2"),
            (20.0, 20.0 + ONE, "t0->t1", "r2"),  # C, r2's victim, in the background
            (20.0 + ONE, 20.0 + 2 * ONE, "engine", "r3"),  # r3 gets the engine when r2 lets it go
            (20.0 + ONE, 20.0 + 2 * ONE, "t1->t0", "r3"),  # and only then loads B: 21.25 -> 22.5
            (20.0 + ONE, 20.0 + 2 * ONE, "t0->t1", "r3"),  # D, demoted once r3 holds the engine
        ]
    )
    assert_parts(m, queue=[0.0, 0.0, 0.0, ONE], load=[0.0, 0.0, ONE, ONE], compute=[2.0, 2.0, 0.0, 0.0],
                 ttft=[2.0, 2.0, ONE, 2 * ONE])

    # two channels, one engine: the link no longer queues, the engine still does
    two_ch = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT, channels=2)]), requests)
    assert latencies(two_ch) == pytest.approx([2.0, 2.0, ONE, 2 * ONE])
    assert column(two_ch, "queue_s")[3] == pytest.approx(ONE)
    # two engines, one channel: r3 starts loading at 20 but its promotion queues behind r2's on the
    # link (21.25 -> 22.5); its 2.5 s are all load
    two_eng = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT)], compute_engines=2), requests)
    assert_parts(two_eng, queue=[0.0] * 4, load=[0.0, 0.0, ONE, 2 * ONE], compute=[2.0, 2.0, 0.0, 0.0],
                 ttft=[2.0, 2.0, ONE, 2 * ONE])
    both_two = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT, channels=2)], compute_engines=2), requests)
    assert latencies(both_two) == pytest.approx([2.0, 2.0, ONE, ONE])  # no wait anywhere

    simplex = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT, duplex=False)]), requests)
    # one resource for both directions, FIFO. A request's victims are demoted once it holds the engine,
    # after its own load is queued: r2 (engine at 20) queues A, then C: A 20 -> 21.25 (r2 served),
    # C -> 22.5; r3 gets the engine at 21.25 (queued 1.25) and queues B behind C: B 22.5 -> 23.75 (r3
    # served: 2 x 1.25 of load), then D -> 25
    assert_parts(simplex, queue=[0.0, 0.0, 0.0, ONE], load=[0.0, 0.0, ONE, 2 * ONE],
                 compute=[2.0, 2.0, 0.0, 0.0], ttft=[2.0, 2.0, ONE, 3 * ONE])
    assert [e[2] for e in timeline(simplex)].count("t0<->t1") == 5


def three_tier_chain(**sim: Any) -> Any:
    links = [link("t0", "t1", 4096.0, 0.25), link("t1", "t2", 8192.0, 0.5), link("t2", "t3", 2048.0, 0.125)]
    return make_cfg([1, 1, 1, 1], links, **sim)


# A block of 4,096 bytes over each hop: t0-t1 0.25 + 1 = 1.25 s; t1-t2 0.5 + 0.5 = 1 s; t2-t3 0.125 + 2 = 2.125 s
H01, H12, H23 = 0.25 + 1.0, 0.5 + 0.5, 0.125 + 2.0
REQS = [(0.0, [1]), (10.0, [2]), (20.0, [3]), (30.0, [4]), (100.0, [1])]


def test_three_hop_promotion_store_and_forward() -> None:
    """A falls to t3 through the cascade; r4 promotes it over three links, one after the other."""
    m = simulate(three_tier_chain(), REQS)
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "engine", "r0"),
            (10.0, 11.0, "engine", "r1"),
            (10.0, 10.0 + H01, "t0->t1", "r1"),
            (20.0, 21.0, "engine", "r2"),
            (20.0, 20.0 + H01, "t0->t1", "r2"),
            (20.0 + H01, 20.0 + H01 + H12, "t1->t2", "r2"),
            (30.0, 31.0, "engine", "r3"),
            (30.0, 30.0 + H01, "t0->t1", "r3"),
            (30.0 + H01, 30.0 + H01 + H12, "t1->t2", "r3"),
            (30.0 + H01 + H12, 30.0 + H01 + H12 + H23, "t2->t3", "r3"),
            # r4: A climbs t3 -> t2 -> t1 -> t0 (holding the engine) while D, C, B cascade down
            # (background)
            (100.0, 100.0 + H23 + H12 + H01, "engine", "r4"),
            (100.0, 100.0 + H23, "t3->t2", "r4"),
            (100.0 + H23, 100.0 + H23 + H12, "t2->t1", "r4"),
            (100.0 + H23 + H12, 100.0 + H23 + H12 + H01, "t1->t0", "r4"),
            (100.0, 100.0 + H01, "t0->t1", "r4"),
            (100.0 + H01, 100.0 + H01 + H12, "t1->t2", "r4"),
            (100.0 + H01 + H12, 100.0 + H01 + H12 + H23, "t2->t3", "r4"),
        ]
    )
    assert latencies(m)[4] == pytest.approx(H23 + H12 + H01)  # 2.125 + 1 + 1.25 = 4.375 s
    assert column(m, "load_s")[4] == pytest.approx(H23 + H12 + H01) and column(m, "compute_s")[4] == 0.0


def test_three_hop_promotion_pipelined() -> None:
    """Pipelined: all three links held at once for the latencies plus the slowest hop's bytes."""
    m = simulate(three_tier_chain(multi_hop="pipeline"), REQS)
    piped3 = (0.25 + 0.5 + 0.125) + max(4096 / 4096.0, 4096 / 8192.0, 4096 / 2048.0)  # 2.875 s
    piped2 = (0.25 + 0.5) + max(4096 / 4096.0, 4096 / 8192.0)  # r2's two demotions: 1.75 s
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "engine", "r0"),
            (10.0, 11.0, "engine", "r1"),
            (10.0, 10.0 + H01, "t0->t1", "r1"),  # one hop: an ordinary transfer
            (20.0, 21.0, "engine", "r2"),
            (20.0, 20.0 + piped2, "t0->t1", "r2"),
            (20.0, 20.0 + piped2, "t1->t2", "r2"),
            (30.0, 31.0, "engine", "r3"),
            *[(30.0, 30.0 + piped3, name, "r3") for name in ("t0->t1", "t1->t2", "t2->t3")],
            (100.0, 100.0 + piped3, "engine", "r4"),  # held while A comes up
            *[(100.0, 100.0 + piped3, name, "r4") for name in ("t3->t2", "t2->t1", "t1->t0")],
            *[(100.0, 100.0 + piped3, name, "r4") for name in ("t0->t1", "t1->t2", "t2->t3")],
        ]
    )
    assert latencies(m)[4] == pytest.approx(piped3)


def test_requests_queue_for_the_compute_engine() -> None:
    """Two requests arrive together missing 2 and 1 blocks: 16 tokens/s prefills a block a second, and
    the second waits for the one engine (2 s) before its own 1 s; with two engines neither waits."""
    requests = [(0.0, [1, 2]), (0.0, [3])]
    m = simulate(make_cfg([8], []), requests)
    assert timeline(m) == approx_timeline([(0.0, 2.0, "engine", "r0"), (2.0, 3.0, "engine", "r1")])
    assert_parts(m, queue=[0.0, 2.0], load=[0.0, 0.0], compute=[2.0, 1.0], ttft=[2.0, 3.0])
    two = simulate(make_cfg([8], [], compute_engines=2), requests)
    assert timeline(two) == approx_timeline([(0.0, 2.0, "engine", "r0"), (0.0, 1.0, "engine", "r1")])
    assert_parts(two, queue=[0.0, 0.0], load=[0.0, 0.0], compute=[2.0, 1.0], ttft=[2.0, 1.0])
    cols, hits = m.request_columns()
    assert list(cols["recomputed_blocks"]) == [2, 1] and hits.sum() == 0
    assert list(cols["prefill_tokens"]) == [32, 16] and m.engine_busy_s == pytest.approx(3.0)


# A prefill cost whose terms are all easy: a = 0.5 s, b = 1/16 s a token, c = 1/640 s a (query, key)
# pair, d = 1/32 s a cached token: prefill_s(n, p) = 0.5 + n/16 + n (p + n/2)/640 + p/32.
COST = (0.5, 1 / 16, 1 / 640, 1 / 32)


def test_one_request_without_cache_only_computes() -> None:
    """Nothing cached: the request takes the idle engine at once and prefills; TTFT is the prefill."""
    # block reuse, flat 16 tokens/s: two blocks = 32 tokens = 2 s
    m = simulate(make_cfg([8], []), [(0.0, [1, 2])])
    assert timeline(m) == approx_timeline([(0.0, 2.0, "engine", "r0")])
    assert_parts(m, queue=[0.0], load=[0.0], compute=[2.0], ttft=[2.0])

    # prefix reuse with the cost above: three blocks = 48 tokens, none cached (p = 0):
    # 0.5 + 48/16 + 48 x (0 + 24)/640 + 0 = 0.5 + 3 + 1.8 = 5.3 s
    m = simulate(make_cfg([8], [], prefill=COST), [(0.0, [1, 2, 3])], reuse="prefix")
    assert timeline(m) == approx_timeline([(0.0, 5.3, "engine", "r0")])
    assert_parts(m, queue=[0.0], load=[0.0], compute=[5.3], ttft=[5.3])
    assert column(m, "cached_tokens") == [0.0] and column(m, "prefill_tokens") == [48.0]


# A 4-layer payload: a block is 4 x 2,048 elements, 16,384 bytes in fp16; the link carries one in 1 s
LAYERS = 4
BLOCK4 = LAYERS * FP16_BYTES


@pytest.mark.parametrize(
    ("bandwidth", "load"),
    [
        (16_384.0, 0.5 + 2 * BLOCK4 / 16_384.0),  # 2.5 s: shorter than the 3.5 s prefill
        (4_096.0, 0.5 + 2 * BLOCK4 / 4_096.0),  # 8.5 s: longer
    ],
)
def test_cached_prefix_loads_then_computes_or_overlaps_layerwise(bandwidth: float, load: float) -> None:
    """r0 reads the chain 1, 2, 3 with 1 and 2 cached in t1 (prefix reuse). Its prompt is 48 tokens,
    so up to floor(47 / 16) = 2 blocks may be cached: both are, and are loaded in one transfer of
    2 x 16,384 bytes; block 3 is prefilled after them: n = 16 new tokens, p = 32 cached ones:
    0.5 + 16/16 + 16 x (32 + 8)/640 + 32/32 = 0.5 + 1 + 1 + 1 = 3.5 s.

    overlap=none: load, then compute: TTFT = load + 3.5. overlap=layerwise: both start at 0 and the
    pair takes max(load, 3.5) + min(load, 3.5) / 4 layers."""
    compute = 0.5 + 16 / 16 + 16 * (32 + 16 / 2) / 640 + 32 / 32
    assert compute == pytest.approx(3.5)
    cfgs = {
        overlap: make_cfg([4, 8], [link("t0", "t1", bandwidth, 0.5)], layers=LAYERS, prefill=COST, overlap=overlap)
        for overlap in ("none", "layerwise")
    }
    settings = settings_of(cfgs["layerwise"])
    assert settings.layers == LAYERS and settings.layerwise
    assert settings.prefill_cost.coefficients() == pytest.approx(COST)
    assert settings.prefill_cost.seconds(16, 32) == pytest.approx(compute)  # p = the cached tokens

    def run(overlap: str, reuse: str = "prefix") -> TimedModel:
        return simulate(cfgs[overlap], [(0.0, [1, 2, 3])], reuse=reuse, preload={1: [1, 2]})

    none = run("none")
    assert timeline(none) == approx_timeline(
        [(0.0, load, "t1->t0", "r0"), (0.0, load + compute, "engine", "r0")]
    )
    assert_parts(none, queue=[0.0], load=[load], compute=[compute], ttft=[load + compute])
    assert column(none, "cached_tokens") == [32.0] and column(none, "prefill_tokens") == [16.0]
    assert column(none, "bytes_loaded") == [2 * BLOCK4]

    layerwise = run("layerwise")
    pair = max(load, compute) + min(load, compute) / LAYERS  # 3.5 + 2.5/4 = 4.125 s; 8.5 + 3.5/4 = 9.375 s
    assert timeline(layerwise) == approx_timeline([(0.0, load, "t1->t0", "r0"), (0.0, pair, "engine", "r0")])
    # the parts still say what each took; together they overlap, so they add up to more than the TTFT
    assert_parts(layerwise, queue=[0.0], load=[load], compute=[compute], ttft=[pair])

    # block reuse charges the same prefill with p = 0: 0.5 + 16/16 + 16 x 8/640 + 0 = 1.7 s
    block = run("none", reuse="block")
    assert_parts(block, queue=[0.0], load=[load], compute=[1.7], ttft=[load + 1.7])


def test_two_requests_contend_for_the_engine() -> None:
    """r0 (1 cached in t1, 2 to compute) and r1 (3 to compute) arrive together. r0 holds the one
    engine through its load (1.25 s) and its prefill (1 s); r1 queues for all of it: its queue_s is
    r0's service, 2.25 s, and its TTFT 2.25 + 1."""
    requests = [(0.0, [1, 2]), (0.0, [3])]
    cfg = make_cfg([8, 8], [link("t0", "t1", BW, LAT)])
    m = simulate(cfg, requests, preload={1: [1]})
    service0 = ONE + 1.0
    assert timeline(m) == approx_timeline(
        [
            (0.0, ONE, "t1->t0", "r0"),
            (0.0, service0, "engine", "r0"),
            (service0, service0 + 1.0, "engine", "r1"),
        ]
    )
    assert_parts(m, queue=[0.0, service0], load=[ONE, 0.0], compute=[1.0, 1.0], ttft=[service0, service0 + 1.0])
    assert m.engine_busy_s == pytest.approx(service0 + 1.0)

    two = simulate(make_cfg([8, 8], [link("t0", "t1", BW, LAT)], compute_engines=2), requests, preload={1: [1]})
    assert timeline(two) == approx_timeline(
        [(0.0, ONE, "t1->t0", "r0"), (0.0, service0, "engine", "r0"), (0.0, 1.0, "engine", "r1")]
    )
    assert_parts(two, queue=[0.0, 0.0], load=[ONE, 0.0], compute=[1.0, 1.0], ttft=[service0, 1.0])


def test_codec_change_costs_codec_time_and_contends() -> None:
    """t0 int8, t1 fp32: a promotion carries fp32 bytes, then decodes fp32 and encodes int8; the
    victim's demotion carries int8 bytes, then decodes int8 and encodes fp32, on the same engine."""
    u = 4 * ELEMENTS  # uncompressed bytes the codecs work on: 8,192
    tp = {"fp32": (8192.0, 8192.0), "int8": (4096.0, 8192.0)}  # (encode, decode) bytes/s
    cfg = make_cfg([1, 4], [link("t0", "t1", BW, LAT)], codecs=["int8", "fp32"], throughput=tp)
    m = simulate(cfg, [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    down_b = LAT + INT8_BYTES / BW  # 0.7578125 s
    down_codec = u / 8192.0 + u / 8192.0  # decode int8 + encode fp32: 2 s
    up = LAT + FP32_BYTES / BW  # 2.25 s
    up_codec = u / 8192.0 + u / 4096.0  # decode fp32 + encode int8: 3 s
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "engine", "r0"),
            (10.0, 11.0, "engine", "r1"),
            (10.0, 10.0 + down_b, "t0->t1", "r1"),
            (10.0 + down_b, 10.0 + down_b + down_codec, "codec", "r1"),
            (20.0, 20.0 + up, "t1->t0", "r2"),
            (20.0, 20.0 + down_b, "t0->t1", "r2"),
            (20.0 + down_b, 20.0 + down_b + down_codec, "codec", "r2"),
            # the promotion's codec work waits for the demotion's (one codec engine): 22.25 -> 22.7578125
            (20.0 + down_b + down_codec, 20.0 + down_b + down_codec + up_codec, "codec", "r2"),
            # r2's load (link, then codec decode) holds the compute engine until it ends
            (20.0, 20.0 + down_b + down_codec + up_codec, "engine", "r2"),
        ]
    )
    assert latencies(m)[2] == pytest.approx(down_b + down_codec + up_codec)  # 5.7578125 s, all load
    assert column(m, "load_s")[2] == pytest.approx(down_b + down_codec + up_codec)


def test_sync_demotion_waits_for_victims() -> None:
    """With demotion=sync, r1 (compute B, demote A) is served when both are done."""
    slow = link("t0", "t1", 1024.0, LAT)  # 4 s per block: longer than the recompute
    requests = [(0.0, [1]), (10.0, [2])]
    background = simulate(make_cfg([1, 4], [slow]), requests)
    sync = simulate(make_cfg([1, 4], [slow], demotion="sync"), requests)
    assert latencies(background) == pytest.approx([1.0, 1.0])
    assert latencies(sync) == pytest.approx([1.0, LAT + FP16_BYTES / 1024.0])  # 0.25 + 4 = 4.25 s
    assert background.makespan_s == pytest.approx(10.0 + LAT + 4.0)  # the background transfer counts
    # the engine is let go after the 1 s prefill; the wait for the demotion is in no part's column
    assert timeline(sync) == approx_timeline(
        [(0.0, 1.0, "engine", "r0"), (10.0, 11.0, "engine", "r1"), (10.0, 10.0 + LAT + 4.0, "t0->t1", "r1")]
    )
    assert column(sync, "compute_s") == [1.0, 1.0] and column(sync, "load_s") == [0.0, 0.0]


def test_closed_loop_agents_and_think_time() -> None:
    """One agent: issue, served after 1 s of prefill, think 1 s, issue the next. Two agents share
    the compute engine, so the second request of the pair waits."""
    reqs = [(0.0, [b]) for b in range(4)]
    one = simulate(make_cfg([8], [], arrival="closed_loop", agents=1, think_time_s=1.0), reqs)
    cols, _ = one.request_columns()
    assert list(cols["arrival_s"]) == pytest.approx([0.0, 2.0, 4.0, 6.0])
    assert list(cols["served_s"]) == pytest.approx([1.0, 3.0, 5.0, 7.0])
    assert one.makespan_s == pytest.approx(7.0)  # the last think time is not service

    two = simulate(make_cfg([8], [], arrival="closed_loop", agents=2, think_time_s=1.0), reqs)
    cols, _ = two.request_columns()
    assert list(cols["agent"]) == [0, 1, 0, 1]
    assert list(cols["arrival_s"]) == pytest.approx([0.0, 0.0, 2.0, 3.0])
    assert list(cols["served_s"]) == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert list(cols["queue_s"]) == pytest.approx([0.0, 1.0, 0.0, 0.0])  # r1 waits for r0's second


def test_fixed_rate_and_trace_arrivals() -> None:
    reqs = [(5.0, [1]), (5.5, [1]), (5.25, [1]), (9.0, [1])]  # the third is out of order
    fixed = simulate(make_cfg([8], [], arrival="fixed_rate", arrival_rate_per_s=4.0), reqs)
    assert list(fixed.request_columns()[0]["arrival_s"]) == pytest.approx([0.0, 0.25, 0.5, 0.75])
    trace = simulate(make_cfg([8], []), reqs)
    # shifted to start at 0; the out-of-order one arrives with the one before it
    assert list(trace.request_columns()[0]["arrival_s"]) == pytest.approx([0.0, 0.5, 0.5, 4.0])


def test_poisson_arrivals_have_the_rate() -> None:
    """Mean gap of 20,000 exponential gaps is 1/rate within 4 standard errors (sd = mean = 1/rate)."""
    n, rate = 20_000, 50.0
    m = simulate(make_cfg([8], [], arrival="poisson", arrival_rate_per_s=rate), [(0.0, [1])] * n)
    t = m.request_columns()[0]["arrival_s"]
    assert abs(t[-1] / n - 1 / rate) < 4 * (1 / rate) / n**0.5
    assert THINK_TIMES["fixed"](None, 2.0) == 2.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sim", "key"),
    [
        ({"arrival": "poisson"}, "sim.arrival_rate_per_s"),
        ({"arrival": "poisson", "arrival_rate_per_s": 0.0}, "sim.arrival_rate_per_s"),
        ({"arrival": "fixed_rate", "arrival_rate_per_s": -1.0}, "sim.arrival_rate_per_s"),
        ({"arrival": "trace", "arrival_rate_per_s": 5.0}, "sim.arrival_rate_per_s"),
        ({"arrival": "closed_loop", "agents": 0}, "sim.agents"),
        ({"arrival": "closed_loop", "think_time_s": -1.0}, "sim.think_time_s"),
        ({"arrival": "closed_loop", "think_time_dist": "gamma"}, "sim.think_time_dist"),
        ({"arrival": "bursty"}, "sim.arrival"),
        ({"demotion": "later"}, "sim.demotion"),
        ({"multi_hop": "teleport"}, "sim.multi_hop"),
        ({"prefill_tokens_per_s": 0.0}, "sim.prefill_tokens_per_s"),
        ({"compute_engines": 0}, "sim.compute_engines"),
        ({"overlap": "sideways"}, "sim.overlap"),
        ({"codec_workers": 0}, "sim.codec_workers"),
    ],
)
def test_bad_sim_settings_are_refused_naming_the_key(sim: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        simulate(make_cfg([8], [], **sim), [(0.0, [1])])
    assert err.value.key == key


def test_missing_route_and_codec_speed_are_refused() -> None:
    with pytest.raises(ConfigError, match="no path from tier t1 to tier t0") as err:
        simulate(make_cfg([1, 4], []), [(0.0, [1])])
    assert err.value.key == "hardware.links"
    with pytest.raises(ConfigError) as err:
        only_int8 = {"int8": (BW, BW)}
        simulate(make_cfg([1, 4], [link("t0", "t1", BW, LAT)], codecs=["int8", "fp16"], throughput=only_int8),
                 [(0.0, [1])])
    assert err.value.key == "hardware.codec_throughput.fp16"
    with pytest.raises(ConfigError) as err:
        simulate(make_cfg([1, 4], [link("t0", "t1", BW, LAT), link("t1", "t0", BW, LAT)]), [(0.0, [1])])
    assert err.value.key == "hardware.links[1]"
