"""Ctrl-C at a terminal: the whole process group gets SIGINT; exo-replay and exo-plan end in one line on
stderr saying what was kept, exit 130, and leave no process behind (exo-plan's sweep runs in its own
session, so the plan must stop it itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.test_plan_cli import SMALL as PLAN_SMALL


def _started(run: Path, proc: subprocess.Popen[str], timeout_s: float = 120) -> None:
    """Wait until Hydra has written the run's config (the app's function is about to run)."""
    deadline = time.monotonic() + timeout_s
    while not (run / ".hydra" / "config.yaml").exists():
        assert proc.poll() is None, "the command ended before it started"
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _interrupt(proc: subprocess.Popen[str]) -> str:
    """Send SIGINT to the command's process group, as a terminal's Ctrl-C does; return its stderr."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return err


def test_ctrl_c_stops_exo_replay_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        ["exo-replay", "hardware=ci_small", "workload.accesses=50000000", "output.progress=false",
         f"hydra.run.dir={run}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    _started(run, proc)
    time.sleep(1.0)
    assert proc.poll() is None, "the replay finished before it could be interrupted"
    err = _interrupt(proc)
    assert proc.returncode == 130
    assert err.strip() == f"interrupted: no summary.json was written in {run}", err
    assert not (run / "summary.json").exists()


def test_ctrl_c_stops_exo_plan_and_its_sweep(tmp_path: Path) -> None:
    run = tmp_path / "plan"
    proc = subprocess.Popen(
        ["exo-plan", *PLAN_SMALL, "plan.min_sessions=400", "output.progress=false", f"hydra.run.dir={run}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    _started(run, proc)
    deadline = time.monotonic() + 300
    plan = psutil.Process(proc.pid)
    sweep: list[psutil.Process] = []
    while not sweep:  # the sweep launcher and at least one worker running
        assert proc.poll() is None, "the plan ended before its sweep ran"
        assert time.monotonic() < deadline, "the sweep never started"
        kids = plan.children(recursive=True)
        if any("exo_sim.cli.sim" in " ".join(k.cmdline()) for k in kids) and len(kids) >= 2:
            sweep = kids
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "the plan finished before it could be interrupted"
    family = plan.children(recursive=True)
    err = _interrupt(proc)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"interrupted: no report was written and no sweep job is left running; kept in {run}: "
    ), err
    assert "sweep.log" in lines[0] and "Traceback" not in err
    assert not (run / "report.md").exists()
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p.pid for p in family if not _gone(p)]
    assert not left, f"processes left running: {left}"


@pytest.mark.parametrize("script", ["exo-replay", "exo-plan"])
def test_bad_input_is_still_one_error_line(tmp_path: Path, script: str) -> None:
    """The interrupt hook sits beside the error hook: a user mistake still reads as before (exit 2)."""
    r = subprocess.run([script, "workload.accesses=-5", f"hydra.run.dir={tmp_path}"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
