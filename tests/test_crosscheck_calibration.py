"""Calibration for the cross-check: the fits, the host costs, and ``exo-calibrate`` writing the serial
executor (``sim=calibrated/<name>``) beside the hardware profile, which ``exo-sim`` then loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from exo_runtime.hostcosts import fit_rate, measure_commit, nonnegative_fit
from tests.runtime_overrides import cli


def test_fit_rate_recovers_latency_and_rate_of_a_line() -> None:
    sizes = [1000, 2000, 4000]
    rate, latency = fit_rate(sizes, [5e-6 + s / 2e9 for s in sizes])
    assert rate == pytest.approx(2e9) and latency == pytest.approx(5e-6)


def test_fit_rate_falls_back_to_the_largest_size_when_the_fit_is_not_physical() -> None:
    assert fit_rate([1000, 2000], [2e-6, 1e-6]) == (pytest.approx(2000 / 1e-6), 0.0)
    assert fit_rate([1000], [1e-6]) == (pytest.approx(1e9), 0.0)


def test_nonnegative_fit_drops_a_column_that_would_go_negative() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 10, size=(8, 3))
    y = x @ np.array([2.0, 0.0, 3.0])
    assert nonnegative_fit(x, y) == pytest.approx([2.0, 0.0, 3.0])
    y_neg = x @ np.array([2.0, -1.0, 3.0])
    beta = nonnegative_fit(x, y_neg)
    assert (beta >= 0).all() and beta[1] == 0.0


def test_measure_commit_times_a_real_manifest_commit(tmp_path: Path) -> None:
    fixed_s, per_entry_s = measure_commit(tmp_path, block_bytes=4096, entries=(4, 64), trials=3)
    assert 0 < fixed_s < 1.0 and per_entry_s >= 0
    assert list(tmp_path.iterdir()) == []  # its slabs and manifests are removed


def test_exo_calibrate_writes_the_serial_executor_exo_sim_loads(tmp_path: Path) -> None:
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
    text = (conf / "sim" / "calibrated" / "twin.yaml").read_text()
    twin = yaml.safe_load(text)
    assert twin["executor"] == "serial" and twin["demotion"] == "sync" and twin["agents"] == 1
    host = twin["host"]
    assert host["checksum_gbps"] > 0 and host["checksum_cold_gbps"] > 0 and host["commit_us"] > 0
    assert all(host[k] >= 0 for k in ("request_us", "reference_us", "batch_us", "move_us"))
    assert host["file_spare_fraction"] == "${runtime.file_spare_fraction}"
    assert "seeded" in text and "bookkeeping fitted on fixed calibration workloads" in text
    assert twin["prefill_tokens_per_s"] > 0

    sim = cli(
        "exo_sim.cli.sim",
        "hardware=calibrated/twin",
        "sim=calibrated/twin",
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
    assert summary["executor"] == "serial" and summary["host"]["batches"] > 0
    assert summary["host"]["commits"] > 0  # a 100-block file tier fills and frees slots
    loaded = summary["config"]["sim"]["host"]
    assert loaded["file_spare_fraction"] == 0.05 and loaded["commit_interval_s"] == 1.0


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
