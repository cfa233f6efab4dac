"""Shared fixtures: composing configs from conf/, and locating the shared traces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, default_traces_dir, setup

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(default_traces_dir())

setup()


def trace_path(relative: str) -> Path:
    """A shared trace, or skip the test with the reason when it is absent."""
    path = TRACES / relative
    if not path.is_file():
        pytest.skip(f"shared trace {path} is absent (set EXO_TRACES or put ../shared beside the checkout)")
    return path


@pytest.fixture
def make_cfg() -> Iterator[Callable[..., DictConfig]]:
    """Compose ``conf/config.yaml`` with overrides, as the apps do."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):

        def _compose(*overrides: str) -> DictConfig:
            return compose("config", overrides=list(overrides))

        yield _compose
