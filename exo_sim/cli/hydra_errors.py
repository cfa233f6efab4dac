"""Hydra's own errors (an unknown option, a misspelled key, an override it cannot parse) as one sentence.

Hydra reports a failed composition itself, before an exo app's code runs, as a multi-line dump that
lists the ``base_*`` schema names among the choices. :func:`install` puts a thin wrapper around
Hydra's reporter (``hydra._internal.utils.run_and_report``, Hydra 1.3) that turns those errors into
one line, ``error: ...``, on stderr and exit status 2 like any other user mistake; every other error
is left to Hydra. :func:`refuse_schema_choice` refuses a ``base_*`` schema chosen as an option
(``codec=base_codec``): Hydra composes it, but it is a schema with every value missing, not a choice.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig

from exo_sim.errors import ConfigError

SCHEMA_PREFIX = "base_"
"""Names in the ConfigStore that are schemas (``base_codec``), never options to choose."""

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The repository's ``conf/`` folder, whose group folders hold the options."""

USER_ERROR_EXIT = 2
"""The exit status of a user's mistake, as :func:`exo_sim.cli.entry.user_errors` gives it."""


def _nearest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else text


def choices_sentence(group: str, name: str, options: Iterable[str]) -> str:
    """``unknown <group> '<name>'; did you mean ...? The choices are: ...`` without schema names."""
    valid = sorted(o for o in options if not o.rsplit("/", 1)[-1].startswith(SCHEMA_PREFIX))
    near = _nearest(name, valid)
    hint = f" (did you mean '{near}'?)" if near else ""
    return f"unknown {group} '{name}'{hint}; the choices are: {', '.join(valid)}."


def _unknown_option(ex: MissingConfigException) -> str | None:
    missing = ex.missing_cfg_file
    if not missing or "/" not in missing or ex.options is None:
        return None
    group, name = missing.split("/", 1)
    return choices_sentence(group, name, ex.options)


def _unknown_key(ex: ConfigCompositionException) -> str | None:
    cause = ex.__cause__
    full_key = getattr(cause, "full_key", None)
    key = getattr(cause, "key", None)
    parent = getattr(cause, "parent_node", None)
    if not full_key or key is None or not isinstance(parent, DictConfig):
        return None
    if not str(cause).startswith(f"Key '{key}' not in"):
        return None
    keys = sorted(str(k) for k in parent.keys() if k != "hydra")
    near = _nearest(str(key), keys)
    where = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    if near:
        better = f"{where}.{near}" if where else near
        return f"unknown key '{full_key}'; did you mean '{better}'?"
    scope = f"{where}'s" if where else "the top-level"
    return f"unknown key '{full_key}'; {scope} keys are: {', '.join(keys)}."


def readable(ex: BaseException) -> str | None:
    """One sentence for a Hydra composition or override error, or ``None`` for any other exception."""
    if isinstance(ex, MissingConfigException):
        return _unknown_option(ex) or _first_line(str(ex))
    if isinstance(ex, OverrideParseException):
        return f"cannot read the override `{ex.override}`: {_first_line(ex.message)}."
    if isinstance(ex, ConfigCompositionException):
        sentence = _unknown_key(ex)
        if sentence:
            return sentence
        text = _first_line(str(ex)).rstrip(".")
        if ex.__cause__ is not None:
            text += f": {_first_line(str(ex.__cause__))}"
        return text
    return None


def _reporting(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run_and_report(func: Any) -> Any:
        def readable_func() -> Any:
            try:
                return func()
            except Exception as ex:  # noqa: BLE001 - anything not ours goes back to Hydra unchanged
                sentence = readable(ex)
                if sentence is None:
                    raise
                print(f"error: {sentence}", file=sys.stderr)
                sys.exit(USER_ERROR_EXIT)

        return original(readable_func)

    run_and_report.exo_readable = True  # type: ignore[attr-defined]
    return run_and_report


def install() -> None:
    """Wrap Hydra's error reporter so its composition errors read as one line (idempotent)."""
    import hydra._internal.hydra as hydra_app
    import hydra._internal.utils as hydra_utils

    for module in (hydra_utils, hydra_app):
        original = getattr(module, "run_and_report", None)
        if original is None or getattr(original, "exo_readable", False):
            continue
        module.run_and_report = _reporting(original)  # type: ignore[attr-defined]


def refuse_schema_choice(choices: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` when a group's chosen option is a ``base_*`` schema (``codec=base_codec``).

    ``choices`` is Hydra's ``hydra.runtime.choices`` (group -> chosen option).
    """
    for group, option in choices.items():
        if group.startswith("hydra/") or not isinstance(option, str):
            continue
        if option.rsplit("/", 1)[-1].startswith(SCHEMA_PREFIX):
            folder = CONF_DIR / group
            options = [str(f.relative_to(folder).with_suffix("")) for f in sorted(folder.rglob("*.yaml"))]
            raise ConfigError(
                group,
                f"names the schema `{option}`, not an option; "
                + choices_sentence(group, option, options).split("; ", 1)[1].rstrip("."),
            )
