"""Every agent's reader, each behind the one interface of :mod:`helm_monitor.sources.base`.

One package per agent (``claude``, ``codex``, ``opencode``, ``gemini``); what
they share sits beside them (``base``, ``jsonl``, ``proc``, ``redact``).
Nothing here knows of Flask, gevent or the live layer.
"""

from __future__ import annotations

import importlib
import os

from helm_monitor.sources.base import Source

# Session ``source`` value -> the package that reads it, and its class.
_READERS = {
    "claude-code": ("helm_monitor.sources.claude", "Catalog"),
    "codex": ("helm_monitor.sources.codex", "CodexSource"),
    "opencode": ("helm_monitor.sources.opencode", "OpenCodeSource"),
    "gemini": ("helm_monitor.sources.gemini", "GeminiSource"),
}
NAMES = tuple(_READERS)


def _package(name: str):
    return importlib.import_module(_READERS[name][0])


def default_root(name: str, environ: dict[str, str] | None = None) -> str:
    """Where the agent keeps its data by its own rules (its environment variables, else its default)."""
    return _package(name).default_root(os.environ if environ is None else environ)


def build(name: str, root: str, **options) -> Source:
    """The reader of agent ``name`` over ``root`` (see each package for its options)."""
    package = _package(name)
    return getattr(package, _READERS[name][1])(root, **options)
