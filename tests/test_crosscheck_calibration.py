"""Calibration for the cross-check: ``exo-calibrate`` writing a profile (links with their per-block
cost, codecs, the engine's costs) that ``exo-sim`` then loads, and the copies it times."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.runtime_overrides import cli


def test_exo_calibrate_writes_a_profile_exo_sim_loads(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    proc = cli(
        "exo_runtime.cli.calibrate",
        "hardware=ci_cpu",
        "payload=rag_chunk_minilm",
        "runtime.calibrate.name=twin",
        f"runtime.calibrate.out_dir={conf / 'hardware' / 'calibrated'}",
        "runtime.calibrate.block_sizes_bytes=[16384,65536]",
        "runtime.calibrate.bytes_per_size=1048576",
        "runtime.calibrate.repeats=1",
        "runtime.calibrate.codec_elements=65536",
        "runtime.calibrate.encode_batch_chunks=[1,2]",  # the rag payload's encoder: a small grid
        "runtime.calibrate.encode_chunk_tokens=[16,64]",
        f"hydra.run.dir={tmp_path / 'cal'}",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = (conf / "hardware" / "calibrated" / "twin.yaml").read_text()
    profile = yaml.safe_load(text)
    engine = profile["engine"]
    assert engine["copies"] == "host" and engine["calibrated"] is True
    assert engine["schedule_us_per_block"] > 0 and engine["kv_load_block_us"] > 0 and engine["kv_store_block_us"] > 0
    for link in profile["links"]:
        assert link["block_us"] > 0 and link["reverse_block_us"] > 0 and link["bandwidth_gbps"] > 0
    assert profile["compute"]["encode"]["a_s"] is not None  # the rag payload's encoder, fitted

    sim = cli(
        "exo_sim.cli.sim",
        "hardware=calibrated/twin",
        f"hydra.searchpath=[file://{conf}]",
        "payload=rag_chunk_minilm",
        "workload.accesses=2000",
        "workload.objects=500",
        "hardware.tiers.0.capacity_bytes=null", "hardware.tiers.0.capacity_blocks=20",
        "hardware.tiers.1.capacity_bytes=null", "hardware.tiers.1.capacity_blocks=40",
        "hardware.tiers.2.capacity_bytes=null", "hardware.tiers.2.capacity_blocks=100",
        "output.progress=false",
        f"hydra.run.dir={tmp_path / 'sim'}",
    )
    assert sim.returncode == 0, sim.stderr
    summary = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert summary["engine"]["copies"] == "host" and summary["engine"]["source"] == "calibrated"
    assert summary["pair_usage"]  # the engine's own copies, per pair of tiers
    assert summary["compute"]["encode_cost"] is not None


def test_raw_copy_as_the_executor_copies_moves_every_block(tmp_path: Path) -> None:
    """With the source checked and the destination warmed first (untimed), every block still arrives."""
    import random

    import torch

    from exo_runtime.buffers import StagingPool
    from exo_runtime.calibrate import make_store, raw_copy

    a = make_store("ram", "ram", 4096, 16, tmp_path)
    b = make_store("shared", "shm", 4096, 16, tmp_path)
    for st in (a, b):
        for _ in range(16):
            st.allocate()
    a.host_view().copy_(torch.randint(0, 256, (16, 4096), dtype=torch.uint8))
    seconds = raw_copy(a, b, StagingPool(8192, False), 16, 1, seed=3, check_source=True, warm_destination=True)
    assert seconds > 0
    rng = random.Random(3)
    src, dst = list(range(16)), list(range(16))
    rng.shuffle(src)
    rng.shuffle(dst)  # the order raw_copy took: block src[i] went to slot dst[i]
    for s, d in zip(src, dst, strict=True):
        assert torch.equal(b.host_view()[d], a.host_view()[s])
    a.close()
    b.close()


def test_measure_codecs_times_every_codec() -> None:
    from exo_runtime.calibrate import measure_codecs
    from exo_runtime.codecs import codec_names
    from exo_sim.config import CodecMixConfig

    rates = measure_codecs(1 << 14, 1 << 12, CodecMixConfig(name="mix"), 1)
    assert sorted(rates) == codec_names()
    assert all(enc > 0 and dec > 0 for enc, dec in rates.values())
