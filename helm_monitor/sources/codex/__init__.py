"""OpenAI Codex CLI sessions (``$CODEX_HOME``, default ``~/.codex``): see :mod:`.source`."""

from __future__ import annotations

import os

from helm_monitor.sources.codex.source import CodexSource

__all__ = ["CodexSource", "default_root"]


def default_root(environ: dict) -> str:
    """``HELM_CODEX_DIR``, else ``CODEX_HOME`` (as Codex itself reads it), else ``~/.codex``."""
    for name in ("HELM_CODEX_DIR", "CODEX_HOME"):
        value = environ.get(name)
        if value and value.strip():
            return os.path.abspath(os.path.expanduser(value))
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".codex")
