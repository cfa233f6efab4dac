"""The timed model's SimPy timelines, asserted whole, on tiny cases computed by hand.

Blocks are 4,096 bytes in fp16 (see tests/simcases.py); recompute runs at one block per second.
Expected times are written as latency + bytes / bandwidth from the figures each test gives.
"""

from __future__ import annotations

import pytest

from exo_sim.errors import ConfigError
from exo_sim.sim.arrivals import THINK_TIMES
from tests.simcases import ELEMENTS, FP16_BYTES, FP32_BYTES, INT8_BYTES, latencies, link, make_cfg, simulate, timeline

BW = 4096.0  # bytes/s: one fp16 block per second
LAT = 0.25  # s
ONE = LAT + FP16_BYTES / BW  # one block over the t0-t1 link: 1.25 s


def approx_timeline(expected: list[tuple[float, float, str, str]]) -> list[object]:
    return [(pytest.approx(a, abs=1e-9), pytest.approx(b, abs=1e-9), s, r) for a, b, s, r in sorted(expected)]


def test_one_transfer() -> None:
    """r0 computes A; r1 computes B and demotes A; r2 promotes A (and demotes B) over the link."""
    cfg = make_cfg([1, 4], [link("t0", "t1", BW, LAT)])
    m = simulate(cfg, [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "prefill", "r0"),
            (10.0, 11.0, "prefill", "r1"),
            (10.0, 10.0 + ONE, "t0->t1", "r1"),  # A demoted in the background
            (20.0, 20.0 + ONE, "t1->t0", "r2"),  # A promoted
            (20.0, 20.0 + ONE, "t0->t1", "r2"),  # B demoted: the other direction of a duplex link
        ]
    )
    assert latencies(m) == pytest.approx([1.0, 1.0, ONE])
    assert m.makespan_s == pytest.approx(20.0 + ONE)
    usage = {u.name: u for u in m.link_usage()}
    assert usage["t0->t1"].bytes_moved == 2 * FP16_BYTES and usage["t0->t1"].transfers == 2
    assert usage["t1->t0"].busy_s == pytest.approx(ONE)


def test_two_transfers_contend_for_one_channel() -> None:
    """r2 and r3 arrive together and both promote from t1: the second waits for the first."""
    requests = [(0.0, [1, 2]), (10.0, [3, 4]), (20.0, [1]), (20.0, [2])]
    both = LAT + 2 * FP16_BYTES / BW  # r1 demotes A and B in one batched transfer: 2.25 s
    m = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT)]), requests)
    assert timeline(m) == approx_timeline(
        [
            (0.0, 2.0, "prefill", "r0"),
            (10.0, 12.0, "prefill", "r1"),
            (10.0, 10.0 + both, "t0->t1", "r1"),
            (20.0, 20.0 + ONE, "t1->t0", "r2"),
            (20.0, 20.0 + ONE, "t0->t1", "r2"),  # C, r2's victim
            (20.0 + ONE, 20.0 + 2 * ONE, "t1->t0", "r3"),  # queued behind r2's promotion
            (20.0 + ONE, 20.0 + 2 * ONE, "t0->t1", "r3"),  # D, queued behind C
        ]
    )
    assert latencies(m) == pytest.approx([2.0, 2.0, ONE, 2 * ONE])

    two = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT, channels=2)]), requests)
    assert latencies(two) == pytest.approx([2.0, 2.0, ONE, ONE])  # two channels: no wait

    simplex = simulate(make_cfg([2, 4], [link("t0", "t1", BW, LAT, duplex=False)]), requests)
    # one resource for both directions, promotions queued before demotions: r2's promotion, its
    # demotion, r3's promotion, its demotion, one after the other
    assert latencies(simplex)[2:] == pytest.approx([ONE, 3 * ONE])
    assert [e[2] for e in timeline(simplex)].count("t0<->t1") == 5


def three_tier_chain(**sim: object) -> object:
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
            (0.0, 1.0, "prefill", "r0"),
            (10.0, 11.0, "prefill", "r1"),
            (10.0, 10.0 + H01, "t0->t1", "r1"),
            (20.0, 21.0, "prefill", "r2"),
            (20.0, 20.0 + H01, "t0->t1", "r2"),
            (20.0 + H01, 20.0 + H01 + H12, "t1->t2", "r2"),
            (30.0, 31.0, "prefill", "r3"),
            (30.0, 30.0 + H01, "t0->t1", "r3"),
            (30.0 + H01, 30.0 + H01 + H12, "t1->t2", "r3"),
            (30.0 + H01 + H12, 30.0 + H01 + H12 + H23, "t2->t3", "r3"),
            # r4: A climbs t3 -> t2 -> t1 -> t0 while D, C, B cascade down (background)
            (100.0, 100.0 + H23, "t3->t2", "r4"),
            (100.0 + H23, 100.0 + H23 + H12, "t2->t1", "r4"),
            (100.0 + H23 + H12, 100.0 + H23 + H12 + H01, "t1->t0", "r4"),
            (100.0, 100.0 + H01, "t0->t1", "r4"),
            (100.0 + H01, 100.0 + H01 + H12, "t1->t2", "r4"),
            (100.0 + H01 + H12, 100.0 + H01 + H12 + H23, "t2->t3", "r4"),
        ]
    )
    assert latencies(m)[4] == pytest.approx(H23 + H12 + H01)  # 4.375 s


def test_three_hop_promotion_pipelined() -> None:
    """Pipelined: all three links held at once for the latencies plus the slowest hop's bytes."""
    m = simulate(three_tier_chain(multi_hop="pipeline"), REQS)
    piped3 = (0.25 + 0.5 + 0.125) + max(4096 / 4096.0, 4096 / 8192.0, 4096 / 2048.0)  # 2.875 s
    piped2 = (0.25 + 0.5) + max(4096 / 4096.0, 4096 / 8192.0)  # r2's two demotions: 1.75 s
    assert timeline(m) == approx_timeline(
        [
            (0.0, 1.0, "prefill", "r0"),
            (10.0, 11.0, "prefill", "r1"),
            (10.0, 10.0 + H01, "t0->t1", "r1"),  # one hop: an ordinary transfer
            (20.0, 21.0, "prefill", "r2"),
            (20.0, 20.0 + piped2, "t0->t1", "r2"),
            (20.0, 20.0 + piped2, "t1->t2", "r2"),
            (30.0, 31.0, "prefill", "r3"),
            *[(30.0, 30.0 + piped3, name, "r3") for name in ("t0->t1", "t1->t2", "t2->t3")],
            *[(100.0, 100.0 + piped3, name, "r4") for name in ("t3->t2", "t2->t1", "t1->t0")],
            *[(100.0, 100.0 + piped3, name, "r4") for name in ("t0->t1", "t1->t2", "t2->t3")],
        ]
    )
    assert latencies(m)[4] == pytest.approx(piped3)


def test_recompute_queues_on_the_prefill_engine() -> None:
    """Two requests arrive together missing 2 and 1 blocks: 16 tokens/s recomputes a block a second."""
    requests = [(0.0, [1, 2]), (0.0, [3])]
    m = simulate(make_cfg([8], []), requests)
    assert timeline(m) == approx_timeline([(0.0, 2.0, "prefill", "r0"), (2.0, 3.0, "prefill", "r1")])
    assert latencies(m) == pytest.approx([2.0, 3.0])
    two = simulate(make_cfg([8], [], prefill_slots=2), requests)
    assert latencies(two) == pytest.approx([2.0, 1.0])
    cols, hits = m.request_columns()
    assert list(cols["recomputed_blocks"]) == [2, 1] and hits.sum() == 0


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
            (0.0, 1.0, "prefill", "r0"),
            (10.0, 11.0, "prefill", "r1"),
            (10.0, 10.0 + down_b, "t0->t1", "r1"),
            (10.0 + down_b, 10.0 + down_b + down_codec, "codec", "r1"),
            (20.0, 20.0 + up, "t1->t0", "r2"),
            (20.0, 20.0 + down_b, "t0->t1", "r2"),
            (20.0 + down_b, 20.0 + down_b + down_codec, "codec", "r2"),
            # the promotion's codec work waits for the demotion's (one codec engine)
            (20.0 + down_b + down_codec, 20.0 + down_b + down_codec + up_codec, "codec", "r2"),
        ]
    )
    assert latencies(m)[2] == pytest.approx(down_b + down_codec + up_codec)


def test_sync_demotion_waits_for_victims() -> None:
    """With demotion=sync, r1 (compute B, demote A) is served when both are done."""
    slow = link("t0", "t1", 1024.0, LAT)  # 4 s per block: longer than the recompute
    requests = [(0.0, [1]), (10.0, [2])]
    background = simulate(make_cfg([1, 4], [slow]), requests)
    sync = simulate(make_cfg([1, 4], [slow], demotion="sync"), requests)
    assert latencies(background) == pytest.approx([1.0, 1.0])
    assert latencies(sync) == pytest.approx([1.0, LAT + FP16_BYTES / 1024.0])
    assert background.makespan_s == pytest.approx(10.0 + LAT + 4.0)  # the background transfer counts


def test_closed_loop_agents_and_think_time() -> None:
    """One agent: issue, served after 1 s of recompute, think 1 s, issue the next. Two agents share
    the prefill engine, so the second request of the pair waits."""
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
        ({"codec_workers": 0}, "sim.codec_workers"),
    ],
)
def test_bad_sim_settings_are_refused_naming_the_key(sim: dict[str, object], key: str) -> None:
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
