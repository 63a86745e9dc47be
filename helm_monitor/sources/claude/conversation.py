"""A transcript as a conversation: the messages of one session, paged.

The file is indexed incrementally (offsets of the lines that are messages),
so paging through a large transcript reads only the lines of the page, and
following a live session reads only what was appended.
"""

from __future__ import annotations

import json
import threading
from array import array

import orjson

from helm_monitor.sources.claude import records as R
from helm_monitor.sources.claude.transcript import TranscriptReader
from helm_monitor.sources.pages import LineIndex, page_of, window
from helm_monitor.sources.redact import redact_clipped

MAX_LIMIT = 500
TEXT_MAX = 20_000
TOOL_INPUT_MAX = 2_000
TOOL_RESULT_MAX = 4_000
_MESSAGE_TYPES = (b"user", b"assistant")


class _Stale(Exception):
    """An indexed line no longer holds a message."""


class Conversation:
    """One transcript's messages, indexed incrementally.

    Callers that page from several threads or greenlets hold ``lock``: the
    index is extended in place.
    """

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self._index = LineIndex()
        self._reset()

    def _reset(self) -> None:
        self._index.offset, self._index.tail = 0, b""
        self._starts = array("q")
        self._ends = array("q")

    def _update(self) -> None:
        with open(self.path, "rb") as f:
            self._index.update(f.fileno(), self._index_line, self._reset)

    def _index_line(self, buf: bytes, start: int, end: int, offset: int) -> None:
        if self._is_message(buf, start, end):
            self._starts.append(offset)
            self._ends.append(offset + end - start)

    @staticmethod
    def _is_message(buf: bytes, start: int, end: int) -> bool:
        if end <= start or TranscriptReader._skippable(buf, start, end):
            return False
        if buf.startswith(b'{"type":"', start):
            q = buf.find(b'"', start + 9, start + 64)
            if buf[start + 9:q] not in _MESSAGE_TYPES:
                return False
        try:
            rec = orjson.loads(buf[start:end])
        except orjson.JSONDecodeError:
            return False
        return isinstance(rec, dict) and rec.get("type") in ("user", "assistant") and rec.get("isSidechain") is not True

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        self._update()
        try:
            return self._page(offset, limit)
        except _Stale:
            # The file changed under the index in a way _update could not see: start over.
            self._reset()
            self._update()
            return self._page(offset, limit)

    def _page(self, offset: int, limit: int) -> dict:
        total = len(self._starts)
        offset, end = window(offset, limit, total, MAX_LIMIT)
        messages = []
        if end > offset:
            with open(self.path, "rb") as f:
                for i in range(offset, end):
                    f.seek(self._starts[i])
                    line = f.read(self._ends[i] - self._starts[i])
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise _Stale() from None
                    if not isinstance(rec, dict):
                        raise _Stale()
                    messages.append(to_message(i, rec))
        return page_of(messages, end, total)


def _result_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text" and isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif block.get("type") == "image":
                    parts.append("[image]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def _blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": redact_clipped(content, TEXT_MAX)[0]}]
    if not isinstance(content, list):
        return []
    out = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append({"type": "text", "text": redact_clipped(block["text"], TEXT_MAX)[0]})
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            out.append({"type": "thinking", "text": redact_clipped(block["thinking"], TEXT_MAX)[0]})
        elif kind == "tool_use":
            raw = block.get("input")
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
            out.append({"type": "tool_use", "id": R.str_or_none(block.get("id")), "name": R.str_or_none(block.get("name")) or "tool",
                        "input": redact_clipped(text, TOOL_INPUT_MAX)[0]})
        elif kind == "tool_result":
            text, truncated = redact_clipped(_result_text(block.get("content")), TOOL_RESULT_MAX)
            out.append({"type": "tool_result", "toolUseId": R.str_or_none(block.get("tool_use_id")), "text": text,
                        "isError": block.get("is_error") is True, "truncated": truncated})
        elif kind == "image":
            out.append({"type": "image"})
    return out


def to_message(index: int, rec: dict) -> dict:
    role = "assistant" if rec.get("type") == "assistant" else "user"
    message = rec.get("message") if isinstance(rec.get("message"), dict) else {}
    blocks = _blocks(message.get("content"))
    if role == "assistant":
        kind = "reply"
    elif R.prompt_of(R.from_dict(rec)) is not None:
        kind = "prompt"
    elif blocks and all(b["type"] == "tool_result" for b in blocks):
        kind = "tool-result"
    else:
        kind = "meta"
    return {
        "index": index,
        "uuid": R.str_or_none(rec.get("uuid")),
        "role": role,
        "kind": kind,
        "timestamp": R.str_or_none(rec.get("timestamp")),
        "model": R.str_or_none(message.get("model")) if role == "assistant" else None,
        "messageId": R.str_or_none(message.get("id")) if role == "assistant" else None,
        "blocks": blocks,
    }
