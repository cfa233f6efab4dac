"""The timed model's additions for the cross-check, on tiny cases computed by hand.

The serial executor (``sim.executor=serial``: one host thread, batches netted as the runtime nets them,
births, checksums, bookkeeping, manifest commits) and each direction of a link at its own speed.
Blocks are 2,048 elements: 4,096 bytes in fp16, 2,080 in int8 (tests/simcases.py). Links carry 4,096
bytes/s after 0.25 s; codecs run at 8,192 float32 bytes/s (one block encodes in 1 s); a block is
recomputed (born) in 1 s.
"""

from __future__ import annotations

from typing import Any

import pytest

from exo_sim.config import HostCostConfig
from exo_sim.errors import ConfigError
from exo_sim.sim.settings import sim_settings
from tests.simcases import FP16_BYTES, INT8_BYTES, latencies, link, make_cfg, simulate, timeline

BW = 4096.0
LAT = 0.25
ONE = LAT + FP16_BYTES / BW  # 1.25 s: one fp16 block over a link
CODECS = {"fp16": (8192.0, 8192.0), "int8": (8192.0, 8192.0)}
BIRTH = 1.0 + 1.0 + ONE  # generate, encode, store into the top tier: 3.25 s


def serial_cfg(capacity: list[int], codecs: list[str] | None = None, **host: Any) -> Any:
    return make_cfg(capacity, [link("t0", "t1", BW, LAT)], codecs=codecs, throughput=CODECS,
                    executor="serial", demotion="sync", multi_hop="pipeline", host=HostCostConfig(**host))


def approx(expected: list[tuple[float, float, str, str]]) -> list[object]:
    return [(pytest.approx(a, abs=1e-9), pytest.approx(b, abs=1e-9), s, r) for a, b, s, r in sorted(expected)]


def pairs(model: Any) -> dict[str, tuple[int, float]]:
    return {f"{u.src}->{u.dst}": (u.blocks, u.busy_s) for u in model.pair_usage()}


def test_one_thread_does_each_request_step_after_step() -> None:
    """r0 computes A; r1 computes B and demotes A; r2 promotes A and demotes B — one job each."""
    m = simulate(serial_cfg([1, 4]), [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    assert timeline(m) == approx([
        (0.0, BIRTH, "host", "r0"),
        (10.0, 10.0 + BIRTH + ONE, "host", "r1"),
        (20.0, 20.0 + 2 * ONE, "host", "r2"),
    ])
    assert latencies(m) == pytest.approx([BIRTH, BIRTH + ONE, 2 * ONE])
    assert m.makespan_s == pytest.approx(20.0 + 2 * ONE)
    assert pairs(m) == {"birth->t0": (2, pytest.approx(2 * ONE)), "t0->t1": (2, pytest.approx(2 * ONE)),
                        "t1->t0": (1, pytest.approx(ONE))}
    assert m.host is not None and m.host.batches == 3
    assert m.engine_busy_s == pytest.approx(2.0) and m.codec_busy_s == pytest.approx(2.0)


def test_requests_queue_for_the_one_thread() -> None:
    m = simulate(serial_cfg([1, 4]), [(0.0, [1]), (0.0, [2])])
    assert timeline(m) == approx([(0.0, BIRTH, "host", "r0"), (BIRTH, 2 * BIRTH + ONE, "host", "r1")])
    assert latencies(m) == pytest.approx([BIRTH, 2 * BIRTH + ONE])


def test_a_batch_is_netted_as_the_runtime_nets_it() -> None:
    """r1 computes B (A demoted), then reads A (promoted back, B demoted): in one batch A never moves
    and B is born straight into t1 (stored over the link from t0); batch by batch, all four moves."""
    one_batch = simulate(serial_cfg([1, 4]), [(0.0, [1]), (10.0, [2, 1])])
    assert latencies(one_batch) == pytest.approx([BIRTH, BIRTH])
    assert pairs(one_batch) == {"birth->t0": (1, pytest.approx(ONE)), "birth->t1": (1, pytest.approx(ONE))}
    per_access = simulate(serial_cfg([1, 4], batch_moves=0), [(0.0, [1]), (10.0, [2, 1])])
    assert latencies(per_access) == pytest.approx([BIRTH, BIRTH + ONE + 2 * ONE])
    assert per_access.host is not None and per_access.host.batches == 3


def test_bookkeeping_is_charged_per_request_reference_batch_and_move() -> None:
    m = simulate(serial_cfg([1, 4], request_us=100_000, reference_us=10_000, batch_us=20_000, move_us=5_000),
                 [(0.0, [1]), (10.0, [1, 1])])
    assert latencies(m) == pytest.approx([0.1 + 0.01 + 0.02 + 0.005 + BIRTH, 0.1 + 0.02])


def test_checksums_and_codecs_of_a_block_changing_codec() -> None:
    """t0 stores int8 (2,080 B), t1 fp16: CRC-32 at 4,096 B/s on bytes just written, 2,048 B/s in place.

    A birth into t0: generate 1 s, checksum its float32 data (8,192 B: 2 s) and its lossy int8 bytes,
    encode 1 s, store the int8 bytes. Demoting it to t1 re-encodes: over a link calibrated as one
    straight copy (RAM to RAM) it is read into a bounce row and written from it — two copies — its
    int8 bytes are checked on read and its fp16 bytes after encoding, decode and encode 1 s each.
    """
    crc = 4096.0
    cfg = serial_cfg([1, 4], codecs=["int8", "fp16"], checksum_gbps=crc / 1e9, checksum_cold_gbps=crc / 2e9)
    m = simulate(cfg, [(0.0, [1]), (10.0, [2])])
    birth = 1.0 + 8192 / crc + INT8_BYTES / crc + 1.0 + (LAT + INT8_BYTES / BW)
    demote = (2 * LAT + (INT8_BYTES + FP16_BYTES) / BW) + (INT8_BYTES + FP16_BYTES) / crc + 2.0
    assert latencies(m) == pytest.approx([birth, birth + demote])


def test_into_a_file_tier_the_bytes_written_to_the_drive_set_the_pace() -> None:
    """t0 int8 (2,080 B) demoting to a file tier in fp16 (4,096 B): the link charges the fp16 bytes."""
    cfg = serial_cfg([1, 4], codecs=["int8", "fp16"])
    cfg.hardware.tiers[1].medium = "file"
    m = simulate(cfg, [(0.0, [1]), (10.0, [2])])
    birth = 1.0 + 1.0 + (LAT + INT8_BYTES / BW)
    assert latencies(m) == pytest.approx([birth, birth + (LAT + FP16_BYTES / BW) + 2.0])


def test_a_straight_copy_checks_its_source_in_place() -> None:
    crc = 4096.0
    m = simulate(serial_cfg([1, 4], checksum_gbps=crc / 1e9, checksum_cold_gbps=crc / 2e9),
                 [(0.0, [1]), (10.0, [2])])
    birth = 1.0 + 8192 / crc + FP16_BYTES / crc + 1.0 + ONE
    assert latencies(m) == pytest.approx([birth, birth + ONE + FP16_BYTES / (crc / 2)])


def test_without_read_checks_only_the_unconditional_checksums_remain() -> None:
    crc = 4096.0
    m = simulate(serial_cfg([1, 4], checksum_gbps=crc / 1e9, verify_reads=False), [(0.0, [1]), (10.0, [2])])
    birth = 1.0 + 8192 / crc + FP16_BYTES / crc + 1.0 + ONE
    assert latencies(m) == pytest.approx([birth, birth + ONE])


def file_cfg(capacity: list[int], **host: Any) -> Any:
    cfg = serial_cfg(capacity, **host)
    cfg.hardware.tiers[1].medium = "file"
    return cfg


def test_a_file_tier_commits_its_manifest_on_time() -> None:
    """Every 5 s of the thread's clock, at the end of a batch, a file tier changed since its last
    commit commits (0.5 s). Copies to and from a file go through a bounce row (as calibrated)."""
    m = simulate(file_cfg([1, 4], commit_us=500_000, commit_interval_s=5.0),
                 [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    assert latencies(m) == pytest.approx([BIRTH, BIRTH + ONE + 0.5, 2 * ONE + 0.5])
    assert m.host is not None and m.host.commits == 2


def test_a_file_tier_commits_when_its_free_slots_run_out() -> None:
    """A one-block file tier has 1 + 8 spare slots; each request from r2 on writes one block into it
    and frees one, reusable only after a commit: r10 finds none free and commits first."""
    requests = [(10.0 * i, [i]) for i in range(11)]
    m = simulate(file_cfg([1, 1], commit_us=500_000), requests)
    lat = latencies(m)
    assert lat[1:10] == pytest.approx([BIRTH + ONE] * 9)
    assert lat[10] == pytest.approx(BIRTH + ONE + 0.5)
    assert m.host is not None and m.host.commits == 1


def test_a_promotion_takes_the_reverse_figures_of_a_duplex_link() -> None:
    """The default executor: t1 -> t0 carries 8,192 B/s after 0.5 s, t0 -> t1 the forward figures."""
    fast = link("t0", "t1", BW, LAT)
    fast.reverse_bandwidth_gbps = 2 * BW / 1e9
    fast.reverse_latency_us = 2 * LAT * 1e6
    m = simulate(make_cfg([1, 4], [fast]), [(0.0, [1]), (10.0, [2]), (20.0, [1])])
    usage = {u.name: u for u in m.link_usage()}
    assert usage["t1->t0"].busy_s == pytest.approx(2 * LAT + FP16_BYTES / (2 * BW))
    assert usage["t0->t1"].busy_s == pytest.approx(2 * ONE)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: setattr(c.sim, "executor", "threads"), "sim.executor"),
        (lambda c: setattr(c.sim.host, "checksum_gbps", 1.0), "sim.host.checksum_gbps"),
        (lambda c: setattr(c.sim.host, "batch_moves", 0), "sim.host.batch_moves"),
        (lambda c: (setattr(c.sim, "executor", "serial"), setattr(c.sim.host, "move_us", -1.0)), "sim.host.move_us"),
        (lambda c: (setattr(c.sim, "executor", "serial"), setattr(c.sim.host, "checksum_gbps", 0.0)),
         "sim.host.checksum_gbps"),
        (lambda c: (setattr(c.sim, "executor", "serial"), setattr(c.sim.host, "commit_interval_s", 0.0)),
         "sim.host.commit_interval_s"),
    ],
)
def test_bad_executor_settings_are_refused_naming_the_key(change: Any, key: str) -> None:
    cfg = make_cfg([1, 4], [link("t0", "t1", BW, LAT)])
    change(cfg)
    with pytest.raises(ConfigError) as err:
        sim_settings(cfg.sim)
    assert err.value.key == key


def test_reverse_figures_on_a_simplex_link_are_refused() -> None:
    from exo_sim.spec import build_spec

    simplex = link("t0", "t1", BW, LAT, duplex=False)
    simplex.reverse_bandwidth_gbps = 1.0
    with pytest.raises(ConfigError) as err:
        build_spec(make_cfg([1, 4], [simplex]))
    assert err.value.key == "hardware.links[0].reverse_bandwidth_gbps"


def test_the_serial_executor_needs_the_codec_speed_of_every_tier_it_births_into() -> None:
    cfg = make_cfg([1, 4], [link("t0", "t1", BW, LAT)], executor="serial", throughput={})
    with pytest.raises(ConfigError) as err:
        simulate(cfg, [(0.0, [1])])
    assert err.value.key == "hardware.codec_throughput.fp16"


def test_the_models_view_of_the_runtimes_stores_matches_them() -> None:
    """The serial executor mirrors the runtime's file-tier spares and which media copy straight."""
    from exo_runtime.stores import store_class
    from exo_runtime.stores.file import SPARE_SLOTS_MIN
    from exo_runtime.stores.slab import HostSlabStore
    from exo_sim.sim import host

    assert host.SPARE_SLOTS_MIN == SPARE_SLOTS_MIN
    for medium in ("cuda", "pinned", "shm", "ram", "file"):
        assert (medium in host.HOST_MEDIA) == issubclass(store_class(medium), HostSlabStore), medium
