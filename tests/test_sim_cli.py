"""exo-sim end to end through its console script: one run, bad input, an interrupted run, a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR
from exo_sim.cli.sim import sim_to_dir

SMALL = ["hardware=ci_small", "workload.objects=500", "workload.accesses=4000", "workload.blocks_per_request=2"]


def exo(cmd: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_one_run_writes_the_common_schema(tmp_path: Path) -> None:
    r = exo("exo-sim", *SMALL, f"hydra.run.dir={tmp_path / 'sim'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim ci_small/seed/seed_mix: 2000 requests, 4000 accesses")
    rep = exo("exo-replay", *SMALL, f"hydra.run.dir={tmp_path / 'replay'}", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    s = json.loads((tmp_path / "sim" / "summary.json").read_text())
    p = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert set(p) <= set(s) and s["source"] == "sim" and s["complete"] is True
    assert s["tiers"] == p["tiers"] and s["links"] == p["links"]
    assert s["makespan_s"] > 0 and s["latency_s"]["p99"] >= s["latency_s"]["p95"] >= s["latency_s"]["p50"]
    assert {u["link"] for u in s["link_usage"]} == {
        "vram->shared", "shared->vram", "shared->ram", "ram->shared", "ram->nvme", "nvme->ram"}
    req = pd.read_parquet(tmp_path / "sim" / "requests.parquet")
    assert len(req) == 2000 and list(req.columns[:3]) == ["request", "agent", "arrival_s"]
    assert {"hits_vram", "hits_nvme", "ttft_s", "queue_s", "load_s", "compute_s", "recomputed_blocks"} <= set(req.columns)
    assert "latency_s" not in req.columns and s["latency_s"] == s["ttft_s"]
    ts = pd.read_parquet(tmp_path / "sim" / "timeseries.parquet")
    assert ts["time_s"].notna().all() and ts["time_s"].max() <= s["makespan_s"]
    assert set(ts["tier"]) == {"vram", "shared", "ram", "nvme"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["hardware.links.0.dst=gpu2"], "`hardware.links[0].dst` (command-line override `hardware.links.0.dst=gpu2`) "
         "names tier 'gpu2', which hardware ci_small does not have"),
        (["hardware.links.1.bandwidth_gbps=0"], "`hardware.links[1].bandwidth_gbps` (command-line override "
         "`hardware.links.1.bandwidth_gbps=0`) must be > 0, got 0"),
        (["hardware.links.2.latency_us=-5"], "`hardware.links[2].latency_us` (command-line override "
         "`hardware.links.2.latency_us=-5`) must be > 0, got -5"),
        (["hardware.links=[{src:vram,dst:shared,bandwidth_gbps:25,latency_us:10}]"],
         "`hardware.links` (command-line override `hardware.links=[{src:vram,dst:shared,bandwidth_gbps:25,"
         "latency_us:10}]`) has no path from tier ram to tier vram"),
        (["hardware.links.2.src=shared", "hardware.links.2.dst=vram"], "`hardware.links[2]` "),
        (["hardware.tiers.0.capacity_bytes=1000"], "`hardware.tiers[0].capacity_bytes` (command-line override "
         "`hardware.tiers.0.capacity_bytes=1000`) is 1000 bytes, smaller than one block"),
        (["sim=poisson", "sim.arrival_rate_per_s=0"], "`sim.arrival_rate_per_s` (command-line override "
         "`sim.arrival_rate_per_s=0`) must be > 0 for sim.arrival=poisson, got 0.0"),
        (["sim.arrival=poisson"], "`sim.arrival_rate_per_s` (conf/sim/default.yaml line 11) must be set (> 0) "
         "for sim.arrival=poisson"),
        (["sim=closed_loop", "sim.agents=0"], "`sim.agents` (command-line override `sim.agents=0`) must be >= 1 "
         "for sim.arrival=closed_loop"),
        (["sim.demotion=later"], "`sim.demotion` (command-line override `sim.demotion=later`) is 'later', "
         "not one of background, sync"),
        (["sim.arrival=bursty"], "`sim.arrival` (command-line override `sim.arrival=bursty`) is 'bursty'"),
        (["sim.prefill_tokens_per_s=-1"], "`sim.prefill_tokens_per_s`"),
    ],
)
def test_bad_input_one_sentence(args: list[str], fragment: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = exo("exo-sim", *SMALL, *args, f"hydra.run.dir={run}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (run / "summary.json").exists()


def test_interrupted_run_leaves_no_summary(tmp_path: Path) -> None:
    """A summary left in the folder by an earlier run is removed once the new run is validated, and an
    interrupted run writes none: nothing there looks complete. (The stale file's removal is also how
    the test knows the run has started; if it never disappears, the test fails rather than pass.)"""
    run = tmp_path / "run"
    run.mkdir()
    stale = run / "summary.json"
    stale.write_text('{"complete": true}\n')
    proc = subprocess.Popen(
        ["exo-sim", "hardware=ci_small", "workload.accesses=20000000", f"hydra.run.dir={run}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while stale.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert not stale.exists(), "the run never started"
        time.sleep(0.5)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert err.strip() == f"interrupted: no summary.json was written in {run}" and "Traceback" not in err
    assert not (run / "summary.json").exists()


def test_progress_bar_shows_accesses_per_second(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=SMALL)
    sim_to_dir(cfg, tmp_path, show_progress=True)
    err = capsys.readouterr().err
    assert "sim: 100%" in err and "acc/s" in err
    assert (tmp_path / "summary.json").is_file()


def test_sweep_end_to_end(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    r = exo("exo-sim", "-m", "policy=lru,fifo", "codec=fp16,int8", *SMALL, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Joblib.Parallel(n_jobs=-1" in r.stdout  # the jobs ran through the joblib launcher
    df = pd.read_parquet(sweep / "sweep.parquet")
    assert len(df) == 4
    assert set(zip(df["policy"], df["codec"], strict=True)) == {
        ("lru", "fp16"), ("lru", "int8"), ("fifo", "fp16"), ("fifo", "int8")}
    assert (df["source"] == "sim").all() and df["latency_p99_s"].notna().all() and (df["makespan_s"] > 0).all()
    for _, row in df.iterrows():
        s = json.loads((sweep / row["job"] / "summary.json").read_text())
        assert row["top_hit_ratio"] == s["tiers"][0]["hit_ratio"]
        assert row["latency_p99_s"] == s["latency_s"]["p99"]
        assert row["codec"] == s["tiers"][0]["codec"] and row["policy"] == s["config"]["policy"]["name"]
    # int8 holds more blocks per tier than fp16, so it hits more in the top tier, for either policy
    ratio = df.set_index(["policy", "codec"])["top_hit_ratio"]
    assert ratio["lru", "int8"] > ratio["lru", "fp16"] and ratio["fifo", "int8"] > ratio["fifo", "fp16"]
    import matplotlib.image as mpimg

    for name in ("hit_ratio.png", "p99_latency.png", "occupancy.png"):
        path = sweep / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = mpimg.imread(path).shape[:2]
        assert height > 200 and width > 300


def launcher(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra.launcher


def test_launchers_compose() -> None:
    default = launcher()
    assert default._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert default.n_jobs == -1 and default.prefer == "processes"
    assert launcher("hydra/launcher=cores", "hydra.launcher.n_jobs=2").n_jobs == 2


def test_slurm_launcher_composes_when_its_plugin_is_installed() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed")
    slurm = launcher("hydra/launcher=slurm")
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert slurm.cpus_per_task == 1 and slurm.mem_gb == 8 and slurm.timeout_min == 60


def test_ray_launcher_composes_when_its_plugin_is_installed() -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed")
    ray = launcher("hydra/launcher=ray_cluster")
    assert ray._target_.endswith("ray_launcher.RayLauncher")
    assert ray.ray.init.address == "auto" and ray.ray.remote.num_cpus == 1


def test_gather_reads_what_exists(tmp_path: Path, make_cfg: Callable[..., DictConfig]) -> None:
    """Jobs that left no summary are not rows; an empty folder gives an empty table and no file."""
    from exo_sim.sweep import SWEEP_FILE, gather

    assert gather(tmp_path).empty and not (tmp_path / SWEEP_FILE).exists()
    sim_to_dir(make_cfg(*SMALL, "policy=lru"), tmp_path / "0", show_progress=False)
    (tmp_path / "1").mkdir()  # a job that failed before writing anything
    df = gather(tmp_path, figures=False)
    assert list(df["job"]) == ["0"] and (tmp_path / SWEEP_FILE).is_file()
