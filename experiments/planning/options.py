"""Config options read straight from ``conf/<group>/<name>.yaml`` into their typed schema.

The plan compares things the running config did not choose — every codec mix it sweeps, the seed
workstation the audit is about, the shipped payloads, the next phase — so it loads those options
itself, checked against the same dataclasses Hydra uses (``defaults: [base_<group>, _self_]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from exo_sim.cli.entry import CONF_DIR


def option_names(group: str) -> list[str]:
    """Every option of config group ``group`` (``calibrated/host`` for files in subfolders), sorted."""
    root = Path(CONF_DIR) / group
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def option_path(group: str, name: str) -> Path:
    """The YAML file of option ``name`` in ``group`` (it may not exist)."""
    return Path(CONF_DIR) / group / f"{name}.yaml"


def load_option(group: str, name: str, schema: type[Any]) -> DictConfig:
    """Option ``name`` of ``group`` merged over ``schema`` (its defaults list followed, one group deep).

    Raises:
        FileNotFoundError: if the option does not exist (callers check :func:`option_names` first).
        omegaconf.errors.OmegaConfBaseException: if a key or type does not fit ``schema``.
    """
    path = option_path(group, name)
    raw = OmegaConf.load(path)
    assert isinstance(raw, DictConfig)
    base: DictConfig = OmegaConf.structured(schema)
    defaults = raw.pop("defaults", None) or []
    for entry in defaults:
        entry = str(entry)
        if entry == "_self_" or entry.startswith("base_"):
            continue
        base = OmegaConf.merge(base, load_option(group, entry, schema))  # type: ignore[assignment]
    merged = OmegaConf.merge(base, raw)
    assert isinstance(merged, DictConfig)
    return merged
