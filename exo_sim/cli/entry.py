"""What every exo console script shares: the config folder, error reporting, the key locator.

A user's mistake (:class:`~exo_sim.errors.ExoError`) is printed as one line on stderr and the process
exits with status 2 — never a traceback. The locator tells where a config key's value came from: a
command-line override, or the line of the YAML option that set it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from tqdm import tqdm

from exo_sim.cli.hydra_errors import install as readable_hydra_errors
from exo_sim.cli.hydra_errors import refuse_schema_choice
from exo_sim.cli.user_config import register_user_config_dir
from exo_sim.config import register_configs
from exo_sim.errors import ExoError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
"""The repository's ``conf/`` folder (exo is installed editable, as the README says)."""


def default_traces_dir() -> str:
    """``$EXO_TRACES`` if set, else ``../shared/traces`` beside the checkout."""
    env = os.environ.get("EXO_TRACES")
    if env:
        return env
    return str(Path(CONF_DIR).parent.parent / "shared" / "traces")


def setup() -> None:
    """Register the config schemas and resolvers (idempotent); call before composing a config."""
    register_configs()
    readable_hydra_errors()
    register_user_config_dir()
    if not OmegaConf.has_resolver("exo_traces"):
        OmegaConf.register_new_resolver("exo_traces", default_traces_dir)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`ExoError` into one line on stderr and a non-zero exit.

    Inside a Hydra run it first refuses a ``base_*`` schema chosen as a group's option.
    """
    try:
        refuse_schema_choice(_hydra_choices())
        yield
    except ExoError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


@contextmanager
def interrupts(kept: Callable[[], str]) -> Iterator[None]:
    """Turn Ctrl-C into one line on stderr (``interrupted: <kept()>``, what the run kept) and exit 130.

    A second Ctrl-C while the line is composed is ignored, so that the cleanup it reports finishes.
    """
    try:
        yield
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"interrupted: {kept()}", file=sys.stderr)
        sys.exit(130)


def _hydra_choices() -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return dict(HydraConfig.get().runtime.choices)
    except ValueError:  # not inside a Hydra app
        return {}


def progress_bar(cfg: Any, total: int | None, desc: str, show: bool | None = None) -> tqdm:
    """A bar in accesses/s on stderr: by default only on a terminal and when ``output.progress`` is on."""
    if show is None:
        show = bool(cfg.output.progress) and sys.stderr.isatty()
    return tqdm(total=total, unit="acc", unit_scale=True, disable=not show, desc=desc)


_INDEX = re.compile(r"\[(\d+)\]")


def _normalise(key: str) -> str:
    return _INDEX.sub(r".\1", key.lstrip("+~"))


def make_locator() -> Callable[[str], str | None]:
    """A function naming where a dotted key's value came from in the current Hydra run."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        choices = dict(hc.runtime.choices)
    except ValueError:  # not inside a Hydra app
        overrides, choices = [], {}

    def locate(key: str) -> str | None:
        norm = _normalise(key)
        for ov in overrides:
            lhs = ov.split("=", 1)[0]
            if _normalise(lhs) == norm:
                return f"command-line override `{ov}`"
        group = norm.split(".", 1)[0]
        candidates = []
        if group in choices and choices[group]:
            candidates.append(Path(CONF_DIR) / group / f"{choices[group]}.yaml")
        if choices.get("experiment"):
            candidates.append(Path(CONF_DIR) / "experiment" / f"{choices['experiment']}.yaml")
        candidates.append(Path(CONF_DIR) / "config.yaml")
        leaf = norm.rsplit(".", 1)[-1]
        nth = 0
        m = _INDEX.findall(key)
        if m:
            nth = int(m[-1])
        pattern = re.compile(rf"(^|[\s{{,-]){re.escape(leaf)}\s*:")
        for path in candidates:
            if not path.is_file():
                continue
            hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
            if hits:
                line = hits[nth] if nth < len(hits) else hits[0]
                return f"{os.path.relpath(path, Path(CONF_DIR).parent)} line {line}"
        return None

    return locate
