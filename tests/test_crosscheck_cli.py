"""``exo-crosscheck`` end to end on the tiny suite, the four-tier suite refused without a GPU, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from experiments.crosscheck import passed_overrides
from tests.runtime_overrides import REPO, cli

LINE = re.compile(
    r"^decisions identical (\d+)/(\d+); makespan error median \d+\.\d%, worst \d+\.\d%; "
    r"p99 latency error median \d+\.\d%$"
)


def test_exo_crosscheck_on_the_tiny_suite(tmp_path: Path) -> None:
    out = tmp_path / "xc"
    proc = cli("experiments.crosscheck", "crosscheck=tiny", f"hydra.run.dir={out}", timeout=400)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    match = LINE.match(lines[-1])
    assert match, lines[-1]
    assert match.groups() == ("2", "2")  # decisions identical on both configs
    verdicts = [ln for ln in lines if ln.startswith(("tiny_zipf_seedmix: ", "tiny_agents_fp16: "))]
    assert len(verdicts) == 2 and all("decisions identical (" in v and "makespan model" in v for v in verdicts)
    assert all(v.endswith(("-> PASS", "-> FAIL")) for v in verdicts)

    frame = pd.read_parquet(out / "crosscheck.parquet")
    assert set(frame["config"]) == {"tiny_zipf_seedmix", "tiny_agents_fp16"}
    assert {"decisions", "time", "link", "component"} <= set(frame["kind"])
    decisions = frame[frame["kind"] == "decisions"]
    assert decisions["identical"].all() and (decisions["sim"] == decisions["runtime"]).all()
    makespan = frame[frame["metric"] == "makespan_s"]
    assert (makespan["sim"] > 0).all() and (makespan["runtime"] > 0).all()

    report = (out / "report.md").read_text()
    for heading in ("## What ran where", "## Configs", "## Decisions", "## Time", "## Figures",
                    "## Why the clocks differ"):
        assert heading in report
    assert lines[-1] in report
    for png in ("latency_predicted_vs_measured.png", "error_distribution.png", "occupancy_over_time.png"):
        assert (out / png).stat().st_size > 10_000
        assert f"({png})" in report
    assert "<img src=\"occupancy_over_time.png\"" in (out / "report.html").read_text()

    # calibration went into the run's folder, not the repository's conf/
    assert (out / "conf" / "hardware" / "calibrated" / "crosscheck.yaml").exists()
    assert (out / "conf" / "sim" / "calibrated" / "crosscheck.yaml").exists()
    assert not (REPO / "conf" / "sim" / "calibrated" / "crosscheck.yaml").exists()
    for name in ("tiny_zipf_seedmix", "tiny_agents_fp16"):
        sim = json.loads((out / "runs" / name / "sim" / "summary.json").read_text())
        run = json.loads((out / "runs" / name / "runtime" / "summary.json").read_text())
        assert sim["source"] == "sim" and sim["executor"] == "serial" and run["source"] == "runtime"
        assert sim["host"]["batches"] == run["runtime"]["batches"]
        assert not list((out / "runs" / name).glob("data-*"))  # the file tiers' slabs are removed


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the four-tier suite would run")
def test_the_four_tier_suite_is_refused_without_a_gpu_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    proc = cli("experiments.crosscheck", "crosscheck=gpu", f"hydra.run.dir={out}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: hardware ci_small has a cuda tier (vram) but this machine has no usable GPU "
        "(torch.cuda.is_available() is false); run with hardware=ci_cpu or another profile without cuda and "
        "pinned tiers"
    ]
    assert not (out / "crosscheck.parquet").exists() and not (out / "calibration").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["crosscheck.configs=[tiny_zipf_seedmix,nope]"], "config key `crosscheck.configs[1]`"),
        (["crosscheck.configs=[]"], "config key `crosscheck.configs`"),
        (["crosscheck.repeats=0"], "config key `crosscheck.repeats`"),
        (["sim.executor=bogus"], "config key `sim.executor`"),
        (["crosscheck.calibrate=false"], "config key `crosscheck.profile`"),
    ],
)
def test_bad_input_is_refused_in_one_sentence(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "bad"
    proc = cli("experiments.crosscheck", "crosscheck=tiny", *args, f"hydra.run.dir={out}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "crosscheck.parquet").exists()


def test_command_line_overrides_pass_to_every_config_except_the_crosschecks_own() -> None:
    task = ["crosscheck=tiny", "crosscheck.repeats=2", "runtime.integrity=off", "+hydra.job.x=1", "seed=3"]
    assert passed_overrides(task) == ["runtime.integrity=off", "seed=3"]


def _suite_names() -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / "experiment" / "crosscheck").glob("*.yaml"))


@pytest.mark.parametrize("name", _suite_names())
def test_every_suite_config_composes_and_validates(name: str) -> None:
    """Each config is a valid exo config (model checks); the runtime refuses a GPU one without a GPU."""
    from exo_runtime.errors import MachineError
    from exo_runtime.run import NO_GPU_HINT, check_media, check_runtime_keys
    from exo_sim.sim.run import prepare_sim
    from experiments.crosschecking.suite import compose_config

    cfg = compose_config([f"experiment=crosscheck/{name}"])
    spec, _, _, _ = prepare_sim(cfg)
    check_runtime_keys(cfg.runtime)
    gpu = any(t.medium in ("cuda", "pinned") for t in spec.tiers)
    assert gpu == name.startswith("gpu_")
    if gpu and not torch.cuda.is_available():
        with pytest.raises(MachineError) as err:
            check_media(spec)
        assert str(err.value).endswith(NO_GPU_HINT) and "has a cuda tier (vram)" in str(err.value)
    else:
        check_media(spec)
    assert len(spec.tiers) == (4 if gpu else 3)


def test_the_suites_name_existing_configs() -> None:
    import yaml

    names = set(_suite_names())
    for suite in (REPO / "conf" / "crosscheck").glob("*.yaml"):
        configs = yaml.safe_load(suite.read_text())["crosscheck"]["configs"]
        assert configs and set(configs) <= names, suite.name
