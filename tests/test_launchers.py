"""Sweeps through Hydra's Submitit (local executor) and Ray (local instance) launchers, end to end.

Opt-in: each case is skipped, with the reason, where its plugin is not installed (``pip install -e
'.[launchers]'``). The sweep's jobs must give the same summaries as the same configs replayed in this
process, and the sweep callback must gather them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from exo_sim.replay import run_replay

COMMON = ["hardware=ci_small", "workload.accesses=20000", "workload.objects=2000", "output.progress=false"]
POLICIES = ["lru", "fifo"]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


LAUNCHERS = [
    pytest.param(
        "submitit_local", id="submitit_local",
        marks=pytest.mark.skipif(not _installed("hydra_plugins.hydra_submitit_launcher"),
                                 reason="hydra-submitit-launcher is not installed (pip install -e '.[launchers]')"),
    ),
    pytest.param(
        "ray_local", id="ray_local",
        marks=pytest.mark.skipif(not _installed("hydra_plugins.hydra_ray_launcher"),
                                 reason="hydra-ray-launcher is not installed (pip install -e '.[launchers]')"),
    ),
]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_sweep_runs_through_the_launcher(make_cfg: Callable[..., Any], tmp_path: Path, launcher: str) -> None:
    sweep = tmp_path / "sweep"
    r = subprocess.run(
        [sys.executable, "-m", "exo_sim.cli.replay", "-m", f"hydra/launcher={launcher}", *COMMON,
         f"policy={','.join(POLICIES)}", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=540, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"sweep: {len(POLICIES)} jobs -> {sweep}/sweep.parquet" in r.stdout + r.stderr  # Ray redirects stdout
    for job, policy in enumerate(POLICIES):
        got = json.loads((sweep / str(job) / "summary.json").read_text())
        want = run_replay(make_cfg(*COMMON, f"policy={policy}")).summary
        assert [t["hits"] for t in got["tiers"]] == [t["hits"] for t in want["tiers"]], policy
        assert got["accesses"] == want["accesses"] == 20000
    assert len(pd.read_parquet(sweep / "sweep.parquet")) >= len(POLICIES)
