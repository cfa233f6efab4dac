"""User-facing errors: one sentence naming the key (or file and line) that is wrong.

Entry points catch :class:`ExoError`, print its message on one line and exit non-zero; they never
show a traceback for a user's mistake. Anything else that escapes is a bug in exo.
"""

from __future__ import annotations


class ExoError(Exception):
    """A mistake in the user's input (config, trace, paths) or a request the machine cannot meet."""

    exit_code = 2


class ConfigError(ExoError):
    """A config value is invalid.

    Args:
        key: the dotted config key (``hardware.tiers[0].capacity_bytes``).
        problem: what is wrong, as the end of a sentence (``"must be > 0, got -1"``).
        where: optional origin of the value (``"conf/hardware/ci_small.yaml line 12"``).

    """

    def __init__(self, key: str, problem: str, where: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.where = where
        origin = f" ({where})" if where else ""
        super().__init__(f"config key `{key}`{origin} {problem}.")


class TraceError(ExoError):
    """A trace file is missing, unreadable or malformed at a given line (or record).

    Args:
        path: the trace file.
        problem: what is wrong.
        line: 1-based line number (text traces) or record number (binary traces), when known.
        unit: ``"line"`` or ``"record"``.

    """

    def __init__(self, path: str, problem: str, line: int | None = None, unit: str = "line") -> None:
        self.path = path
        self.line = line
        self.problem = problem
        at = f" {unit} {line}" if line is not None else ""
        super().__init__(f"trace {path}{at}: {problem}.")
