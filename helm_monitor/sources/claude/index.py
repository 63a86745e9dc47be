"""``sessions-index.json`` (Claude Code 2.1.10 to 2.1.29): a hint, never the truth.

It lags (the current session is never in it) and lists files that may be gone.
Only what a transcript cannot say is taken from it: the summary, and the
project path when no record has a ``cwd``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from helm_monitor.sources.redact import redact

MAX_INDEX_BYTES = 64 * 1024 * 1024


@dataclass
class IndexHints:
    original_path: str | None = None
    # session id -> {"summary": ..., "projectPath": ..., "customTitle": ...}
    entries: dict[str, dict] = field(default_factory=dict)


def read_index(path: str) -> IndexHints:
    """Parse an index file. Raises ValueError (or OSError) when it cannot be used."""
    with open(path, "rb") as f:
        data = f.read(MAX_INDEX_BYTES + 1)
    if len(data) > MAX_INDEX_BYTES:
        raise ValueError("index file too large")
    obj = orjson.loads(data)  # JSONDecodeError is a ValueError
    if not isinstance(obj, dict):
        raise ValueError("index is not a JSON object")
    hints = IndexHints()
    if isinstance(obj.get("originalPath"), str):
        hints.original_path = obj["originalPath"]
    entries = obj.get("entries")
    if isinstance(entries, list):
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("sessionId"), str):
                continue
            keep = {k: redact(entry[k]) if k != "projectPath" else entry[k]
                    for k in ("summary", "projectPath", "customTitle") if isinstance(entry.get(k), str) and entry[k]}
            hints.entries[entry["sessionId"]] = keep
    return hints
