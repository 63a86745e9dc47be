"""What one rollout line means. Codex's records are not a documented interface:
every accessor checks types and treats anything unexpected as absent."""

from __future__ import annotations

import datetime as _dt
import re

import orjson

from helm_monitor.sources.redact import redact
# Used as R.<name> by the package.
from helm_monitor.sources.text import as_int, collapse, iso_from_epoch, masked_clip, str_or_none  # noqa: F401

PROMPT_MAX = 200
TITLE_MAX = 120

# RolloutItem tags (codex-rs/history/src/lib.rs); anything else is logged once and skipped.
KNOWN_TYPES = frozenset({
    "session_meta", "response_item", "compacted", "turn_context", "event_msg", "token_usage_record",
    "world_state", "security_risk_score", "retained_context", "inter_agent_communication",
    "inter_agent_communication_metadata", "realtime_item",
})
# Lines that never matter for the session list: only their timestamp is taken (no full parse).
_SKIM_TYPES = (b"response_item", b"world_state", b"token_usage_record", b"retained_context",
               b"security_risk_score", b"realtime_item", b"compacted")
TURN_STARTS = frozenset({"task_started", "turn_started"})
TURN_ENDS = frozenset({"task_complete", "turn_complete", "turn_aborted"})

_ISO_MS = re.compile(rb"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class BadLine(ValueError):
    """Not JSON (garbage, a torn write). ``utf8`` says whether the bytes were valid UTF-8."""
    def __init__(self, utf8: bool):
        super().__init__("not UTF-8" if not utf8 else "not JSON")
        self.utf8 = utf8


def parse(line: bytes):
    """The record a line holds, or BadLine. Bytes that are not UTF-8 are replaced, not fatal."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            raise BadLine(False) from None
    raise BadLine(True)


def skim(line: bytes) -> tuple[str, str | None] | None:
    """``(type, timestamp)`` of a line the list does not need, read from its head without parsing it.

    Codex writes ``{"timestamp":"…","ordinal":N,"type":"…",`` first; a line not written so is parsed.
    """
    if not line.startswith(b'{"timestamp":"'):
        return None
    end = line.find(b'"', 14, 64)
    if end < 0:
        return None
    t = line.find(b'"type":"', end, end + 48)
    if t < 0:
        return None
    t += 8
    for name in _SKIM_TYPES:
        if line.startswith(name, t) and line.startswith(b'"', t + len(name)):
            ts = line[14:end]
            return name.decode(), (ts.decode() if _ISO_MS.match(ts) else norm_ts(ts.decode("utf-8", "replace")))
    return None


def norm_ts(value) -> str | None:
    """An ISO 8601 time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 24 and value.endswith("Z") and _ISO_MS.match(value.encode()):
        return value
    try:
        s = value[:-1] + "+00:00" if value.endswith("Z") else value
        m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", s)
        if m and m.group(2):  # fromisoformat wants at most 6 digits (Codex writes up to 9)
            s = m.group(1) + m.group(2)[:7].ljust(4, "0") + m.group(3)
        dt = _dt.datetime.fromisoformat(s)
    except (ValueError, TypeError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def content_text(content) -> str | None:
    """The text of an item's ``content``: a string, or its text parts (``text``/``input_text``/``Text``…)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts) if parts else None


def user_prompt(payload: dict) -> str | None:
    """The prompt of an ``event_msg`` payload: a UserMessage item (paginated) or ``user_message`` (legacy)."""
    kind = payload.get("type")
    if kind == "item_completed":
        item = payload.get("item")
        if isinstance(item, dict) and item.get("type") == "UserMessage":
            text = content_text(item.get("content"))
            return text.strip() if text and text.strip() else None
    elif kind == "user_message":
        text = payload.get("message")
        return text.strip() if isinstance(text, str) and text.strip() else None
    return None


def prompt_text(prompt: str) -> str:
    """A prompt as shown: masked, then cut to PROMPT_MAX (a secret straddling the cut is masked whole)."""
    return masked_clip(prompt, PROMPT_MAX)


def masked(value) -> str | None:
    text = str_or_none(value)
    return redact(text) if text else None


def tokens_of(info) -> tuple[int, int, int, int] | None:
    """(input, output, cacheRead, cacheCreation) from ``token_count.info.total_token_usage``.

    OpenAI's ``input_tokens`` is the whole prompt: cache reads (``cached_input_tokens``) and cache
    writes (``cache_write_input_tokens``, GPT-5.6 on) are parts of it, so input is what is left;
    ``output_tokens`` already includes reasoning (``total_tokens`` = input + output)."""
    if not isinstance(info, dict):
        return None
    u = usage_fields(info.get("total_token_usage"))
    if u is None:
        return None
    return (max(u[0] - u[1] - u[2], 0), u[3], u[1], u[2])


# The fields of a Codex TokenUsage object, in this order.
USAGE_KEYS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens",
              "reasoning_output_tokens", "total_tokens")


def usage_fields(usage) -> tuple[int, ...] | None:
    """A TokenUsage object as a tuple of :data:`USAGE_KEYS` counts, or None."""
    if not isinstance(usage, dict):
        return None
    return tuple(as_int(usage.get(k)) for k in USAGE_KEYS)


def request_tokens(u: tuple[int, ...]) -> tuple[tuple[int, int, int, int, int], int]:
    """One request's usage (:func:`usage_fields`) as facts tokens (uncached input, output, cache read,
    5-minute cache write, 1-hour cache write) and its whole prompt. OpenAI has one kind of cache
    write; it is billed as the 5-minute kind is (1.25x input)."""
    inp, cached, written, out = u[0], u[1], u[2], u[3]
    uncached = max(inp - cached - written, 0)
    return (uncached, out, cached, written, 0), uncached + cached + written


_UUID7 = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$")


def uuid7_ms(value) -> int | None:
    """The creation time (ms since the epoch) of a UUIDv7 (Codex's thread and turn ids), else None."""
    if not isinstance(value, str) or not _UUID7.match(value):
        return None
    return int(value[:8] + value[9:13], 16)


def parent_of(meta: dict) -> str | None:
    """The thread that spawned this one: ``parent_thread_id``, or ``source.subagent.thread_spawn``."""
    parent = str_or_none(meta.get("parent_thread_id"))
    if parent:
        return parent.lower()
    source = meta.get("source")
    if isinstance(source, dict):
        sub = source.get("subagent")
        if isinstance(sub, dict):
            spawn = sub.get("thread_spawn")
            if isinstance(spawn, dict) and str_or_none(spawn.get("parent_thread_id")):
                return spawn["parent_thread_id"].lower()
    return None
