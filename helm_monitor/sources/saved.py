"""Checking saved parse state (a source's ``export_state``) before any of it is believed.

The state comes back from a file on disk that may be cut, edited, or written
by another version: every value is checked for its type, and anything odd
raises ValueError, which drops that one entry (its file is read again).
"""

from __future__ import annotations


def entries(state, format: int, root: str, key: str) -> dict:
    """The entries under ``key`` of a state of this ``format`` over this ``root``; none otherwise."""
    if not isinstance(state, dict) or state.get("format") != format or state.get("root") != root:
        return {}
    found = state.get(key)
    return found if isinstance(found, dict) else {}


def count(value) -> int:
    """A non-negative int (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def text(value) -> str | None:
    """A str or None."""
    if value is not None and not isinstance(value, str):
        raise ValueError(value)
    return value


def counts(value, n: int) -> tuple[int, ...]:
    """A list of ``n`` counts."""
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(value)
    return tuple(count(x) for x in value)
