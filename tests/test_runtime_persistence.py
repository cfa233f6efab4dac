"""The file tier persists: resume finds every block a run committed, even after kill -9; a damaged
block is reported lost, never served; another config's blocks are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exo_runtime.errors import DataDirError
from exo_runtime.manifest import load_manifest
from exo_runtime.run import run_runtime
from tests.runtime_overrides import REPO, cli, compose_cfg, one_error_line, small

RUN = "exo_runtime.cli.run"


def test_resume_finds_every_block_the_last_run_persisted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    _, entries = load_manifest(data / "nvme.manifest")
    nvme = {t["name"]: t for t in first.summary["tiers"]}["nvme"]
    assert len(entries) == nvme["final_occupancy_blocks"] > 0

    second = run_runtime(compose_cfg(f"runtime.data_dir={data}", "runtime.resume=true"), tmp_path / "r2")
    assert second.fault is None
    recovered = second.summary["runtime"]["persistence"]["recovered"]["nvme"]
    assert recovered == {
        "manifest_blocks": len(entries),
        "resumed_blocks": len(entries),
        "lost_blocks": 0,
        "over_watermark_blocks": 0,
    }
    by_name = {t["name"]: t for t in second.summary["tiers"]}
    assert by_name["nvme"]["resumed_blocks"] == len(entries)
    # the same workload now finds those blocks on the drive instead of recomputing them
    assert by_name["nvme"]["hits"] > nvme["hits"]
    assert second.summary["recomputed_blocks"] < first.summary["recomputed_blocks"]


def test_kill_9_mid_run_then_resume_finds_every_committed_block(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = small(
        "workload.accesses=50000000",
        "workload.objects=20000",
        f"runtime.data_dir={data}",
        "runtime.manifest_interval_s=0.02",
        f"hydra.run.dir={tmp_path / 'r1'}",
    )
    proc = subprocess.Popen([sys.executable, "-m", RUN, *args], cwd=REPO, stderr=subprocess.PIPE)
    manifest = data / "nvme.manifest"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"exo-run ended early: {proc.stderr.read().decode() if proc.stderr else ''}")
            if manifest.exists():
                header, entries = load_manifest(manifest)
                if header["commit"] >= 5 and len(entries) >= 150:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no manifest with 150 blocks after 90 s")
        time.sleep(0.3)  # well inside the run: more moves and commits
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "r1" / "summary.json").exists()  # no results that look complete
    _, entries = load_manifest(manifest)

    resumed = run_runtime(compose_cfg(f"runtime.data_dir={data}", "runtime.resume=true"), tmp_path / "r2")
    recovered = resumed.summary["runtime"]["persistence"]["recovered"]["nvme"]
    assert recovered["manifest_blocks"] == len(entries)
    assert recovered["resumed_blocks"] == len(entries)
    assert recovered["lost_blocks"] == 0
    assert resumed.fault is None


def test_a_damaged_block_is_reported_lost_and_never_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    header, entries = load_manifest(data / "nvme.manifest")
    block, slot = int(entries[3]["block"]), int(entries[3]["slot"])
    with open(data / "nvme.slab", "r+b") as f:  # flip bytes inside that block's slot
        f.seek(slot * header["row_bytes"] + 100)
        f.write(b"\xde\xad\xbe\xef")
        f.flush()
        os.fsync(f.fileno())

    proc = cli(RUN, *small(f"runtime.data_dir={data}", "runtime.resume=true", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "corrupted or lost" in line and f"block {block} in tier nvme" in line
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    persistence = summary["runtime"]["persistence"]
    assert [(b["block"], b["slot"]) for b in persistence["lost"]] == [(block, slot)]
    assert persistence["recovered"]["nvme"]["resumed_blocks"] == len(entries) - 1
    assert summary["complete"] is True


def test_a_manifest_from_another_config_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    proc = cli(RUN, *small(f"runtime.data_dir={data}", "runtime.resume=true", "seed=7", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert proc.returncode == 2
    assert "was written for another config" in one_error_line(proc)
    assert not (tmp_path / "r2" / "summary.json").exists()


def test_an_earlier_runs_blocks_are_not_overwritten_without_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    with pytest.raises(DataDirError, match="pass runtime.resume=true"):
        run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r2")


def test_a_damaged_manifest_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    path = data / "nvme.manifest"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    proc = cli(RUN, *small(f"runtime.data_dir={data}", "runtime.resume=true", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert proc.returncode == 2
    assert "fails its checksum" in one_error_line(proc)
