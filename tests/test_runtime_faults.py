"""Bad input and faults: one sentence, a non-zero exit, no block silently lost."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

import pytest
import torch

from exo_runtime.errors import DataDirError, MachineError
from exo_runtime.manifest import load_manifest
from exo_runtime.run import run_runtime
from exo_sim.errors import ConfigError
from tests.runtime_overrides import cli, compose_cfg, one_error_line, small, tiers

RUN = "exo_runtime.cli.run"


def test_a_data_dir_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = cli(RUN, *small(f"runtime.data_dir={blocker / 'data'}", f"hydra.run.dir={tmp_path / 'out'}"))
    assert proc.returncode == 2
    assert "runtime.data_dir" in one_error_line(proc) and "is not a writable directory" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_a_read_only_data_dir_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DataDirError, match="is not a writable directory"):
            run_runtime(compose_cfg(f"runtime.data_dir={ro}"), tmp_path / "out")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    ("tier", "blocks", "resource_name"),
    [(1, 10**12, "host memory"), (0, 10**12, "shared memory"), (2, 10**14, "of disk")],
)
def test_a_config_that_does_not_fit_is_refused_before_allocating(
    tier: int, blocks: int, resource_name: str, tmp_path: Path
) -> None:
    sizes = [40, 80, 200]
    sizes[tier] = blocks
    with pytest.raises(MachineError, match=resource_name) as err:
        run_runtime(compose_cfg(*tiers(*sizes)), tmp_path / "out")
    assert str(err.value).count(". ") == 0  # one sentence
    assert not (tmp_path / "out" / "data" / "nvme.slab").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: a cuda tier is allowed")
def test_a_gpu_tier_without_a_gpu_names_ci_cpu(tmp_path: Path) -> None:
    proc = cli(RUN, *small("hardware=ci_small", *tiers(8, 40, 80, 200), f"hydra.run.dir={tmp_path / 'out'}"))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "cuda tier (vram)" in line and "hardware=ci_cpu" in line


def test_bad_runtime_keys_are_refused(tmp_path: Path) -> None:
    for key, value in [("integrity", "bogus"), ("staging_bytes", "0"), ("file_io_threads", "0")]:
        with pytest.raises(ConfigError, match=f"runtime.{key}"):
            run_runtime(compose_cfg(f"runtime.{key}={value}"), tmp_path / "out")
    with pytest.raises(ConfigError, match="runtime.staging_bytes"):  # too small for one batch
        run_runtime(compose_cfg("runtime.staging_bytes=4096"), tmp_path / "out")


# A payload whose file rows are 64 KiB: a file-size limit of 1 MiB lets the first 16 slots be written.
KV64 = ["payload=llama3_8b_kv", "payload.layers=1", "payload.kv_heads=1", "block_tokens=64", *tiers(4, 8, 64)]


def test_a_full_disk_mid_run_undoes_the_batch_and_loses_no_block(tmp_path: Path) -> None:
    """ENOSPC, as a file-size limit (RLIMIT_FSIZE) makes it: writes past 1 MiB of any file fail."""
    data = tmp_path / "data"
    first = run_runtime(
        compose_cfg(*KV64, "workload.objects=40", "workload.accesses=400", f"runtime.data_dir={data}"),
        tmp_path / "r1",
    )
    _, before = load_manifest(data / "nvme.manifest")
    assert len(before) >= 16 and first.summary["runtime"]["stores"][2]["row_bytes"] == 65536
    assert int(before["slot"].max()) >= 16  # the slots past the limit hold blocks too

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    args = small(
        *KV64,
        "workload.objects=400",
        "workload.accesses=2000",
        f"runtime.data_dir={data}",
        "runtime.resume=true",
        f"hydra.run.dir={tmp_path / 'r2'}",
    )
    proc = cli(RUN, *args, preexec_fn=limit)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "to tier nvme" in line and "File too large" in line and "the batch was undone" in line
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped_at_request"] is not None
    assert summary["runtime"]["persistence"]["recovered"]["nvme"]["lost_blocks"] == 0

    # every block the manifest names after the fault is intact: a third run finds them all
    _, after = load_manifest(data / "nvme.manifest")
    third = run_runtime(compose_cfg(*KV64, f"runtime.data_dir={data}", "runtime.resume=true"), tmp_path / "r3")
    recovered = third.summary["runtime"]["persistence"]["recovered"]["nvme"]
    assert recovered["manifest_blocks"] == len(after) >= len(before)
    assert recovered["lost_blocks"] == 0 and recovered["resumed_blocks"] == len(after)
