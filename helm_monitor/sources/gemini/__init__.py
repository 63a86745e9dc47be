"""Gemini CLI (google-gemini/gemini-cli, npm ``@google/gemini-cli``) as a source of sessions.

Where its data lives (the CLI's own rule, ``homedir()`` in
``packages/core/src/utils/paths.ts`` and ``Storage.getGlobalGeminiDir``):
``$GEMINI_CLI_HOME/.gemini`` when ``GEMINI_CLI_HOME`` is set, else
``~/.gemini``. ``HELM_GEMINI_DIR`` (helm-monitor's override) names the data
directory itself.
"""

from __future__ import annotations

import os

from helm_monitor.sources.gemini.source import GeminiSource


def default_root(environ: dict) -> str:
    """The Gemini data directory: ``$HELM_GEMINI_DIR``, else ``$GEMINI_CLI_HOME/.gemini``, else ``~/.gemini``."""
    if environ.get("HELM_GEMINI_DIR"):
        return os.path.abspath(os.path.expanduser(environ["HELM_GEMINI_DIR"]))
    if environ.get("GEMINI_CLI_HOME"):
        return os.path.abspath(os.path.join(os.path.expanduser(environ["GEMINI_CLI_HOME"]), ".gemini"))
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".gemini")


__all__ = ["GeminiSource", "default_root"]
