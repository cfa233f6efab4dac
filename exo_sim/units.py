"""Byte sizes as people write them: ``80GB`` (10^9 bytes each), ``80GiB`` (2^30), ``1TiB``, ``4096``.

One parser for every byte count a config holds (:func:`parse_bytes`), and :func:`resolve_sizes`, which
rewrites the composed config's byte fields into plain integers once, before anything reads them.

Accepted: a bare integer (bytes), or a number followed by one of ``B``, ``kB``, ``MB``, ``GB``,
``TB``, ``PB`` (decimal, exact: ``GB`` = 10^9) or ``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB`` (binary:
``GiB`` = 2^30), with or without a space; a fraction must come to a whole number of bytes
(``1.5GiB``). Refused as ambiguous: a bare prefix (``80G``), a lower-case ``b`` that could be bits
(``80Gb``, ``80gb``), ``KB`` (1000 or 1024 depending on who wrote it), anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from exo_sim.errors import ConfigError

UNITS: dict[str, int] = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
}
"""Bytes per unit: decimal (SI) and binary (IEC) prefixes."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

Locator = Callable[[str], "str | None"]


def _ambiguous(key: str, value: str, where: str | None) -> ConfigError:
    return ConfigError(
        key,
        f"is {value!r}, an ambiguous size: write a whole number of bytes or a number with one of "
        f"{', '.join(UNITS)} (GB = 10^9 bytes, GiB = 2^30 bytes) such as 80GB or 80GiB",
        where,
    )


def parse_bytes(value: Any, key: str, where: str | None = None) -> int:
    """A byte count from a config value: an integer, or a string such as ``80GB``, ``1TiB``, ``4096``.

    Args:
        value: the value as composed (int, integral float, or string).
        key: the dotted config key, named in the error.
        where: optional origin of the value (file and line, or the override).

    Raises:
        ConfigError: the value is ambiguous, malformed, negative or not a whole number of bytes.
    """
    if isinstance(value, bool):
        raise ConfigError(key, f"is {value!r}, not a size in bytes", where)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ConfigError(key, f"is {value!r}, not a whole number of bytes", where)
    if not isinstance(value, str):
        raise ConfigError(key, f"is {value!r}, not a size in bytes", where)
    m = _SIZE.match(value)
    if m is None:
        if value.strip().startswith("-"):
            raise ConfigError(key, f"is {value!r}; a size must be >= 0", where)
        raise _ambiguous(key, value, where)
    number, unit = m.group(1), m.group(2) or "B"
    if unit not in UNITS:
        raise _ambiguous(key, value, where)
    n = Fraction(number) * UNITS[unit]
    if n.denominator != 1:
        raise ConfigError(key, f"is {value!r}, which is not a whole number of bytes ({float(n):.6g})", where)
    return int(n)


def parse_optional_bytes(value: Any, key: str, where: str | None = None) -> int | None:
    """:func:`parse_bytes`, with ``None`` passed through (a size left to its default)."""
    return None if value is None else parse_bytes(value, key, where)


def _set(node: Any, attr: str, value: Any) -> None:
    from omegaconf import DictConfig, read_write

    if isinstance(node, DictConfig):
        with read_write(node):
            setattr(node, attr, value)
    else:
        setattr(node, attr, value)


def _fix(node: Any, attr: str, key: str, locate: Locator | None) -> None:
    value = getattr(node, attr, None)
    if value is None:
        return
    where = locate(key) if locate else None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        _set(node, attr, [parse_bytes(v, f"{key}[{i}]", where) for i, v in enumerate(value)])
    elif not isinstance(value, int) or isinstance(value, bool):
        _set(node, attr, parse_bytes(value, key, where))


BYTE_FIELDS: tuple[tuple[str, ...], ...] = (
    ("hardware", "gpu", "workspace_bytes"),
    ("runtime", "staging_bytes"),
    ("runtime", "codec_scratch_bytes"),
)
"""Byte fields of the root config besides the tiers' ``capacity_bytes`` (paths of attributes)."""


def resolve_sizes(cfg: Any, locate: Locator | None = None) -> None:
    """Rewrite every byte field of a composed root config into an ``int`` in place (idempotent).

    Covers ``hardware.tiers[i].capacity_bytes`` and :data:`BYTE_FIELDS`; a field absent from ``cfg``
    (a partial config in a test) is skipped.

    Raises:
        ConfigError: naming the first byte field whose value is not a size (see :func:`parse_bytes`).
    """
    hw = getattr(cfg, "hardware", None)
    for i, tier in enumerate(getattr(hw, "tiers", None) or []):
        _fix(tier, "capacity_bytes", f"hardware.tiers[{i}].capacity_bytes", locate)
    for path in BYTE_FIELDS:
        node = cfg
        for part in path[:-1]:
            node = getattr(node, part, None)
            if node is None:
                break
        else:
            _fix(node, path[-1], ".".join(path), locate)
