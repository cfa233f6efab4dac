"""The user's config folder, where ``exo-calibrate`` writes profiles, on every console script's search path.

Hydra looks up an option such as ``hardware=calibrated/myhost`` in each folder of its search path in
turn: first the repository's ``conf/``, then this folder (``$EXO_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/exo``, else ``~/.config/exo``). A profile measured on a host therefore lives in the
user's home, never in the source tree, and loads by the same name as a shipped one.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PROVIDER = "exo-user-config"
"""The search path entry's provider name (``--info searchpath`` shows it)."""


def user_config_dir() -> Path:
    """``$EXO_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/exo``, else ``~/.config/exo`` (the folder need not exist)."""
    env = os.environ.get("EXO_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "exo"


class UserConfigSearchPath(SearchPathPlugin):
    """Appends :func:`user_config_dir` to an exo app's search path (after ``conf/``, which wins a clash)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Add the user folder when the app's primary config folder is exo's ``conf/``."""
        ours = {f"file://{CONF_DIR}", str(CONF_DIR)}
        if any(e.provider == "main" and e.path in ours for e in search_path.get_path()):
            search_path.append(PROVIDER, f"file://{user_config_dir()}")


def register_user_config_dir() -> None:
    """Put :class:`UserConfigSearchPath` in Hydra's plugins (idempotent)."""
    Plugins.instance().register(UserConfigSearchPath)
