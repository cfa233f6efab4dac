"""Errors a person can read, through the console scripts: an unknown option or a misspelled key is one
``error:`` line on stderr with the valid choices (never Hydra's dump with ``base_*`` schema names),
exit 2, no traceback; a schema chosen as an option and a resume with nowhere to resume from are
refused the same way; a trace without reuse given to exo-mrc is warned about."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from exo_sim.cli.entry import CONF_DIR
from tests.runtime_overrides import SMALL, one_error_line

SCRIPTS = [
    "exo-replay",
    "exo-sim",
    "exo-run",
    "exo-calibrate",
    "exo-plan",
    "exo-crosscheck",
    "exo-mrc",
    "exo-trace-stats",
]


def options(group: str) -> str:
    """The group's option files in conf/, listed as the error line should list them."""
    names = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
    assert names and not any(n.startswith("base_") for n in names)
    return ", ".join(names)


def refused(cmd: str, *args: str, cwd: Path) -> str:
    out = cwd / "run"
    proc = subprocess.run([cmd, *args, f"hydra.run.dir={out}"], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not (out / "summary.json").exists()
    line = one_error_line(proc)
    assert "base_" not in line.split("choices are:")[-1], line
    return line


@pytest.mark.parametrize("cmd", SCRIPTS)
def test_unknown_policy_is_one_line_with_the_choices(cmd: str, tmp_path: Path) -> None:
    line = refused(cmd, "policy=lruu", cwd=tmp_path)
    assert line == f"error: unknown policy 'lruu' (did you mean 'lru'?); the choices are: {options('policy')}."


def test_unknown_codec_names_the_nearest(tmp_path: Path) -> None:
    line = refused("exo-replay", "codec=int3", cwd=tmp_path)
    # int3 is one letter from int4 and int8; difflib takes the later of equal scores (int8)
    assert line.startswith("error: unknown codec 'int3' (did you mean 'int")
    assert line.endswith(f"the choices are: {options('codec')}.")


def test_unknown_phase_with_nothing_near_lists_the_choices(tmp_path: Path) -> None:
    line = refused("exo-plan", "phase=3m", cwd=tmp_path)
    assert line == f"error: unknown phase '3m'; the choices are: {options('phase')}."


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("polcy=lru", "error: unknown key 'polcy'; did you mean 'policy'?"),
        ("policy.nme=lru", "error: unknown key 'policy.nme'; did you mean 'policy.name'?"),
        ("hierarchy.reus=prefix", "error: unknown key 'hierarchy.reus'; did you mean 'hierarchy.reuse'?"),
    ],
)
def test_misspelled_key_names_the_nearest_key(override: str, expected: str, tmp_path: Path) -> None:
    assert refused("exo-replay", override, cwd=tmp_path) == expected


def test_key_with_nothing_near_lists_the_keys(tmp_path: Path) -> None:
    line = refused("exo-replay", "policy.zzzzzz=1", cwd=tmp_path)
    assert line.startswith("error: unknown key 'policy.zzzzzz'; policy's keys are: ")
    assert "name" in line.split("keys are: ", 1)[1].rstrip(".").split(", ")


def test_schema_is_not_a_choice(tmp_path: Path) -> None:
    line = refused("exo-replay", "codec=base_codec", cwd=tmp_path)
    assert "`codec`" in line and "schema" in line
    assert line.endswith(f"the choices are: {options('codec')}.")


def test_unparsable_override_is_one_line(tmp_path: Path) -> None:
    line = refused("exo-replay", "policy=[lru", cwd=tmp_path)
    assert line.startswith("error: cannot read the override `policy=[lru`")


def test_resume_without_data_dir_is_refused_before_work(tmp_path: Path) -> None:
    line = refused("exo-run", *SMALL, "runtime.resume=true", cwd=tmp_path)
    assert "`runtime.resume`" in line and "runtime.data_dir" in line
    assert not (tmp_path / "run" / "data").exists()


def test_mrc_warns_on_a_trace_without_reuse(tmp_path: Path) -> None:
    # an Azure-style trace: arrivals and sizes only, so every block is fresh
    trace = tmp_path / "azure.csv"
    rows = [f"2023-11-16 18:17:{i:02d}.0000000,{300 + 100 * i},5" for i in range(20)]
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        ["exo-mrc", "workload=azure", f"workload.path={trace}", "output.progress=false", f"hydra.run.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out / "mrc.parquet")
    assert int(frame["hits"].max()) == 0
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and "no reuse" in warnings[0], proc.stderr
