"""Claude Code: ``projects/`` transcripts and the ``sessions/`` live-process registry."""

from __future__ import annotations

import os

from helm_monitor.sources.claude.catalog import Catalog

__all__ = ["Catalog", "default_root"]


def default_root(environ: dict[str, str]) -> str:
    """``$CLAUDE_CONFIG_DIR`` if set, else ``~/.claude`` (Claude Code's own rule)."""
    if environ.get("CLAUDE_CONFIG_DIR"):
        return os.path.expanduser(environ["CLAUDE_CONFIG_DIR"])
    return os.path.expanduser("~/.claude")
