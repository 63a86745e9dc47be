"""What OpenCode's ``message`` and ``part`` rows mean for the session list.

The ``data`` column holds the object as JSON (message-v2 without its ids).
None of it is a documented interface: every accessor checks types and treats
anything unexpected as absent. Text is bytes from SQLite (the connection's
``text_factory`` is ``bytes``), decoded here with replacement, so a row with
invalid UTF-8 costs its bad characters, not the row.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import orjson

from helm_monitor.sources.redact import redact_head
from helm_monitor.sources.text import as_int, collapse, str_or_none  # noqa: F401  (R.<name>)

TITLE_PROMPT_MAX = 120
PROMPT_MAX = 200
# Titles OpenCode gives a session until the small model has named it
# (``New session - 2026-12-01T06:17:26.373Z``; sub-agents: ``Child session - …``).
_PLACEHOLDER_TITLE = re.compile(r"^(?:New|Child) session - \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")


# Part types of message-v2 (1.18.33); another is logged once and not shown.
PART_TYPES = frozenset({"text", "reasoning", "file", "tool", "step-start", "step-finish", "snapshot", "patch",
                        "agent", "retry", "compaction", "subtask"})


class BadRow(ValueError):
    """A row whose ``data`` is not a JSON object."""


def text(value) -> str | None:
    """A TEXT column read as bytes (or str), decoded leniently."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def load(data) -> dict:
    """The JSON object of a ``data`` column; BadRow for anything else."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if not isinstance(data, bytes):
        raise BadRow("data is not text")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            obj = orjson.loads(data.decode("utf-8", "replace"))  # invalid UTF-8 inside strings
        except orjson.JSONDecodeError as exc:
            raise BadRow(f"data is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BadRow("data is not a JSON object")
    return obj


def as_float(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def tokens_of(obj) -> tuple[int, int, int, int]:
    """(input, output + reasoning, cacheRead, cacheCreation) of a ``tokens`` object."""
    if not isinstance(obj, dict):
        return (0, 0, 0, 0)
    cache = obj.get("cache") if isinstance(obj.get("cache"), dict) else {}
    return (as_int(obj.get("input")), as_int(obj.get("output")) + as_int(obj.get("reasoning")),
            as_int(cache.get("read")), as_int(cache.get("write")))


class Message(NamedTuple):
    """One ``message`` row, as much of it as the session list needs."""
    id: str
    created: int  # ms epoch (the row's time_created)
    updated: int
    role: str | None  # "user", "assistant", or something unknown
    completed: bool  # assistant: time.completed is set
    error: bool  # assistant: ended in an error
    tokens: tuple[int, int, int, int]
    cost: float | None
    model: str | None
    size: int  # bytes of data
    provider: str | None = None  # assistant: providerID
    at: int = 0  # assistant: when its reply ended (time.completed), else began (ms epoch)

    @property
    def usage_model(self) -> str:
        """The model as usage names it: ``providerID/modelID`` (pricing reads the provider from it)."""
        if self.provider and self.model:
            return f"{self.provider}/{self.model}"
        return self.model or ""


class Part(NamedTuple):
    id: str
    message_id: str
    updated: int
    kind: str | None  # "text", "tool", "reasoning", …
    text: str | None  # a text part that is not synthetic nor ignored: its text
    size: int


def message_of(mid: str, created, updated, data) -> Message:
    """Raises BadRow for unusable data."""
    size = len(data) if isinstance(data, bytes) else 0
    obj = load(data)
    role = obj.get("role") if isinstance(obj.get("role"), str) else None
    t = obj.get("time") if isinstance(obj.get("time"), dict) else {}
    if role == "assistant":
        at = as_int(t.get("completed")) or as_int(t.get("created")) or as_int(created)
        return Message(mid, as_int(created), as_int(updated), role, t.get("completed") is not None,
                       obj.get("error") is not None, tokens_of(obj.get("tokens")), as_float(obj.get("cost")),
                       str_or_none(obj.get("modelID")), size, str_or_none(obj.get("providerID")), at)
    return Message(mid, as_int(created), as_int(updated), role, False, False, (0, 0, 0, 0), None, None, size)


def part_of(pid: str, message_id: str, updated, data) -> Part:
    size = len(data) if isinstance(data, bytes) else 0
    obj = load(data)
    kind = obj.get("type") if isinstance(obj.get("type"), str) else None
    body = None
    if kind == "text" and isinstance(obj.get("text"), str) and obj.get("synthetic") is not True \
            and obj.get("ignored") is not True:
        body = obj["text"]
    return Part(pid, message_id, as_int(updated), kind, body, size)


def unquote_run_prompt(s: str) -> str:
    """The prompt as typed, from the text ``opencode run`` stored.

    ``run`` wraps each argument holding a space in double quotes (escaping the
    quotes inside as ``\\"``) before joining them, so a prompt given as one
    argument is stored as ``"…"``. Only that shape is undone: one quoted
    argument, with a space, and no unescaped quote inside.
    """
    if len(s) < 3 or s[0] != '"' or s[-1] != '"':
        return s
    inner = s[1:-1]
    if " " not in inner or re.search(r'(?<!\\)"', inner):
        return s
    return inner.replace('\\"', '"')


def is_placeholder_title(title: str | None) -> bool:
    return not title or not title.strip() or _PLACEHOLDER_TITLE.match(title.strip()) is not None


def masked_prompt(raw: str, limit: int = PROMPT_MAX) -> str:
    """A prompt for the session list: masked (before it is cut), whitespace collapsed, at most ``limit``
    characters. Only the head of a long prompt is masked (a pasted file is not scanned whole)."""
    masked, _ = redact_head(raw, 4 * limit)
    return collapse(masked, limit)
