"""The user's config folder: ``exo-calibrate`` writes there by default, and the console scripts search it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from exo_sim.cli.user_config import user_config_dir

REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXO_CONFIG_DIR", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    return env


def test_user_config_dir_precedence(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EXO_CONFIG_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_config_dir() == tmp_path / ".config" / "exo"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_dir() == tmp_path / "xdg" / "exo"
    monkeypatch.setenv("EXO_CONFIG_DIR", str(tmp_path / "mine"))
    assert user_config_dir() == tmp_path / "mine"


def test_calibrate_writes_to_the_user_folder_and_replay_finds_it(tmp_path: Path) -> None:
    """No ``out_dir`` and no ``hydra.searchpath``: the profile lands under ``$HOME/.config/exo``, not in
    the checkout, and ``hardware=calibrated/<name>`` loads it from there."""
    home = tmp_path / "home"
    home.mkdir()
    before = set((REPO / "conf" / "hardware" / "calibrated").iterdir())
    cal = subprocess.run(
        [
            sys.executable, "-m", "exo_runtime.cli.calibrate",
            "hardware=ci_cpu", "payload=rag_chunk_minilm", "runtime.calibrate.name=hometest",
            "runtime.calibrate.block_sizes_bytes=[16384,65536]", "runtime.calibrate.bytes_per_size=1048576",
            "runtime.calibrate.repeats=1", "runtime.calibrate.codec_elements=65536",
            "runtime.calibrate.encode_batch_chunks=[1,2]", "runtime.calibrate.encode_chunk_tokens=[16,32]",
            "runtime.calibrate.engine=false", f"hydra.run.dir={tmp_path / 'cal'}",
        ],
        cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=300,
    )
    assert cal.returncode == 0, cal.stderr
    written = home / ".config" / "exo" / "hardware" / "calibrated" / "hometest.yaml"
    assert f"wrote {written};" in cal.stdout
    assert yaml.safe_load(written.read_text())["defaults"] == ["base_hardware", "_self_"]
    assert set((REPO / "conf" / "hardware" / "calibrated").iterdir()) == before  # nothing in the source tree

    replay = subprocess.run(
        [
            sys.executable, "-m", "exo_sim.cli.replay", "hardware=calibrated/hometest", "workload.accesses=500",
            "output.progress=false", f"hydra.run.dir={tmp_path / 'replay'}",
        ],
        cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    assert json.loads((tmp_path / "replay" / "summary.json").read_text())["config"]["hardware"]["name"] == "hometest"


def test_without_the_profile_the_option_is_not_found(tmp_path: Path) -> None:
    """The same replay in an empty home fails in one line: the option came from the user folder."""
    home = tmp_path / "home"
    home.mkdir()
    replay = subprocess.run(
        [sys.executable, "-m", "exo_sim.cli.replay", "hardware=calibrated/hometest", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=120,
    )
    assert replay.returncode != 0 and "hometest" in replay.stderr
