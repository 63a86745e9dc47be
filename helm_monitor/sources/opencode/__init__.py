"""OpenCode (npm ``opencode-ai``, ≥ 1.2): sessions from its SQLite database, read-only.

- :func:`default_root`: OpenCode's data directory, ``$XDG_DATA_HOME/opencode``
  (an unset, empty or relative ``XDG_DATA_HOME`` counts as unset, as the XDG
  spec says), else ``~/.local/share/opencode``.
- :func:`default_db`: the database, ``HELM_OPENCODE_DB`` (helm-monitor's own
  override), else ``OPENCODE_DB`` (an absolute path, or a name under the data
  directory, as OpenCode reads it), else ``<data dir>/opencode.db``. Builds of
  another install channel name theirs ``opencode-<channel>.db``; point
  ``OPENCODE_DB``/``HELM_OPENCODE_DB`` at it.
"""

from __future__ import annotations

import os

from helm_monitor.sources.opencode.source import OpenCodeSource

__all__ = ["OpenCodeSource", "default_root", "default_db"]

DB_NAME = "opencode.db"


def _home(environ: dict) -> str:
    home = environ.get("HOME")
    return home if home else os.path.expanduser("~")


def default_root(environ: dict) -> str:
    xdg = environ.get("XDG_DATA_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(_home(environ), ".local", "share")
    return os.path.join(base, "opencode")


def default_db(environ: dict) -> str:
    for name in ("HELM_OPENCODE_DB", "OPENCODE_DB"):
        value = environ.get(name)
        if value:
            value = os.path.expanduser(value) if name == "HELM_OPENCODE_DB" else value
            return value if os.path.isabs(value) else os.path.join(default_root(environ), value)
    return os.path.join(default_root(environ), DB_NAME)
