"""The serving engine's costs around the prefill (``hardware.engine``), timed by hand on tiny cases.

Blocks are 4,096 bytes (fp16, tests/simcases.py). The prefill cost is ``COST`` below: a request of
16 new tokens after 32 cached ones takes 0.5 + 16/16 + 16 x (32 + 8)/640 + 32/32 = 3.5 s, and 16
new tokens with nothing cached 0.5 + 1 + 16 x 8/640 = 1.7 s. The engine's figures are chosen so that
every step is a round number of seconds:

* scheduling: 0.1 s per block the request names;
* the link t0-t1: latency 0.5 s, 0.25 s per block, 4,096 B/s (one block a second);
* loading the cached prefix out of t0: 0.1 s per block plus 4,096 B/s;
* storing a new block into t0: 0.05 s plus 8,192 B/s (0.55 s a block).
"""

from __future__ import annotations

import pytest

from exo_sim.config import EngineConfig, LinkConfig
from exo_sim.errors import ConfigError
from exo_sim.sim.model import TimedModel
from tests.simcases import column, make_cfg, settings_of, simulate

COST = (0.5, 1 / 16, 1 / 640, 1 / 32)
LINK = LinkConfig(src="t0", dst="t1", bandwidth_gbps=4096 / 1e9, latency_us=0.5e6, block_us=0.25e6)


def engine(copies: str) -> EngineConfig:
    return EngineConfig(
        copies=copies,
        schedule_us_per_block=0.1e6,
        kv_load_gbps=4096 / 1e9,
        kv_load_block_us=0.1e6,
        kv_store_gbps=8192 / 1e9,
        kv_store_block_us=0.05e6,
    )


def run(copies: str, top: int, preload_top: list[int], overlap: str = "none") -> TimedModel:
    """r0 at 0 s reads the chain 1, 2, 3 with 1 and 2 cached in t1; r1 at 1 s reads the new block 4."""
    cfg = make_cfg([top, 8], [LINK], prefill=COST, engine=engine(copies), overlap=overlap)
    return simulate(cfg, [(0.0, [1, 2, 3]), (1.0, [4])], reuse="prefix", preload={0: preload_top, 1: [1, 2]})


def test_host_copies_run_every_step_on_the_engine_then_store_after_the_first_token() -> None:
    # r0: schedule 3 x 0.1 = 0.3; promote 1, 2: 0.5 + 2 x 0.25 + 8,192 / 4,096 = 3.0; load them:
    # 2 x 0.1 + 8,192 / 4,096 = 2.2; prefill 3.5 -> first token at 9.0; store block 3: 0.55 -> 9.55.
    # r1 waits for the engine until 9.55: schedule 0.1, prefill 1.7 -> 11.35; store 0.55 -> 11.9.
    m = run("host", 4, [])
    assert column(m, "ttft_s") == pytest.approx([9.0, 11.35 - 1.0])
    assert column(m, "queue_s") == pytest.approx([0.0, 8.55])
    assert column(m, "load_s") == pytest.approx([0.3 + 3.0 + 2.2, 0.1])
    assert column(m, "compute_s") == pytest.approx([3.5, 1.7])
    assert m.makespan_s == pytest.approx(11.9)
    pairs = {(u.src, u.dst): u for u in m.pair_usage()}
    assert pairs[("t1", "t0")].blocks == 2 and pairs[("t1", "t0")].busy_s == pytest.approx(3.0)


def test_host_copies_include_the_victims_demotion_before_the_prefill() -> None:
    # t0 holds 3 blocks and already block 5: making room for 1, 2, 3 demotes 5 to t1 first:
    # 0.5 + 0.25 + 4,096 / 4,096 = 1.75 s more before r0's first token (9.0 + 1.75).
    m = run("host", 3, [5])
    assert column(m, "ttft_s")[0] == pytest.approx(10.75)


def test_dma_copies_leave_background_demotions_off_the_engine() -> None:
    # Copy engines: the promotion (3.0 s) runs on the link after scheduling (0.3 s); the victim's
    # demotion runs on the other direction of the link in the background; TTFT 0.3 + 3.0 + 2.2 + 3.5.
    # r1's block 4 demotes one more (block 1, least recent): two demotions of 1.75 s each.
    m = run("dma", 3, [5])
    assert column(m, "ttft_s")[0] == pytest.approx(9.0)
    usage = {u.name: u for u in m.link_usage()}
    assert usage["t0->t1"].busy_s == pytest.approx(2 * 1.75) and usage["t1->t0"].busy_s == pytest.approx(3.0)


def test_layerwise_overlap_hides_the_shorter_of_load_and_compute() -> None:
    # dma, overlap=layerwise, one layer: load (0.3 + 3.0 + 2.2 = 5.5 s from the claim) and the 3.5 s
    # prefill start together; the pair takes max + min / layers = 5.5 + 3.5 = 9.0 with one layer.
    m = run("dma", 4, [], overlap="layerwise")
    assert column(m, "ttft_s")[0] == pytest.approx(5.5 + 3.5 / 1)


def test_without_engine_costs_only_the_prefill_and_links_count() -> None:
    cfg = make_cfg([4, 8], [LINK], prefill=COST)
    m = simulate(cfg, [(0.0, [1, 2, 3])], reuse="prefix", preload={1: [1, 2]})
    assert column(m, "ttft_s") == pytest.approx([3.0 + 3.5])


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("copies", "both", "hardware.engine.copies"),
        ("schedule_us_per_block", -1.0, "hardware.engine.schedule_us_per_block"),
        ("kv_load_gbps", 0.0, "hardware.engine.kv_load_gbps"),
        ("kv_store_block_us", float("nan"), "hardware.engine.kv_store_block_us"),
    ],
)
def test_bad_engine_figures_are_refused_naming_the_key(field: str, value: object, key: str) -> None:
    eng = EngineConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as err:
        settings_of(make_cfg([4], [], prefill=COST, engine=eng))
    assert err.value.key == key


def test_written_blocks_are_computed_after_the_first_token() -> None:
    # r0 reads 1, 2 (32 tokens, nothing cached) and writes block 3 (16 output tokens), engine copies=host.
    # First token: schedule 3 x 0.1 + prefill 0.5 + 32/16 + 32 x 16/640 = 0.3 + 3.3 = 3.6 s. Then the
    # output's KV: 16 tokens after 32: 0.5 + 1 + 16 x 40/640 + 32/32 = 3.5 s, and 3 new blocks stored at
    # 0.55 s each: the engine is free at 3.6 + 3.5 + 1.65 = 8.75 s.
    import numpy as np

    from exo_sim.sim.arrivals import arrival_process
    from exo_sim.spec import build_spec
    from exo_sim.workloads.base import RequestChunk

    cfg = make_cfg([4, 8], [LINK], prefill=COST, engine=engine("host"))
    spec = build_spec(cfg)
    from dataclasses import replace

    settings = settings_of(cfg)
    model = TimedModel(replace(spec, reuse="prefix"), settings, keep_log=True)
    chunk = RequestChunk(
        arrival_s=np.array([0.0]), offsets=np.array([0, 3]), blocks=np.array([1, 2, 3]),
        writes=np.array([False, False, True]), tokens=np.array([16, 16, 16]),
    )
    model.run(iter([chunk]), arrival_process(settings, 0).start)
    assert column(model, "ttft_s") == pytest.approx([3.6])
    assert model.makespan_s == pytest.approx(8.75)
