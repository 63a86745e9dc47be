"""A transcript as a conversation: the messages of one session, paged.

The file is indexed incrementally (offsets of the lines that are messages),
so paging through a large transcript reads only the lines of the page, and
following a live session reads only what was appended.
"""

from __future__ import annotations

import json
import os
import threading
from array import array
from collections import OrderedDict

import orjson

from helm_monitor.sources.claude import records as R
from helm_monitor.sources.redact import redact_clipped
from helm_monitor.sources.claude.transcript import READ_CHUNK_BYTES, TranscriptReader

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

    _TAIL = 32

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self._reset()
        self._inode: int | None = None

    def _reset(self) -> None:
        self._starts = array("q")
        self._ends = array("q")
        self._offset = 0  # start of the first line not indexed yet
        self._tail = b""  # the bytes just before _offset, to notice a rewritten file

    def _update(self) -> None:
        with open(self.path, "rb") as f:
            fd = f.fileno()
            st = os.fstat(fd)
            if self._inode is not None and (
                    st.st_ino != self._inode or st.st_size < self._offset
                    or (self._tail and os.pread(fd, len(self._tail), self._offset - len(self._tail)) != self._tail)):
                self._reset()  # replaced, shrunk, or its tail rewritten
            self._inode = st.st_ino
            base = self._offset  # file position of the chunk being read
            line_start = base
            pieces: list[bytes] = []  # an unfinished line spanning chunks
            f.seek(base)
            while True:
                chunk = f.read(READ_CHUNK_BYTES)
                if not chunk:
                    break
                start = 0
                while True:
                    nl = chunk.find(b"\n", start)
                    if nl < 0:
                        break
                    if pieces:
                        pieces.append(chunk[start:nl])
                        line = b"".join(pieces)
                        pieces = []
                        if self._is_message(line, 0, len(line)):
                            self._starts.append(line_start)
                            self._ends.append(line_start + len(line))
                    elif self._is_message(chunk, start, nl):
                        self._starts.append(base + start)
                        self._ends.append(base + nl)
                    start = nl + 1
                    line_start = base + start
                if start < len(chunk):
                    pieces.append(chunk[start:])
                base += len(chunk)
            # an unfinished last line is indexed once it is completed
            if line_start != self._offset:
                self._offset = line_start
                n = min(self._TAIL, line_start)
                self._tail = os.pread(fd, n, line_start - n)

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
        offset = max(0, min(offset, total))
        limit = max(1, min(limit, MAX_LIMIT))
        end = min(total, offset + limit)
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
        return {"messages": messages, "nextOffset": end if end < total else None, "total": total}


class Conversations:
    """The most recently paged conversations, by transcript path (their indexes are kept)."""

    def __init__(self, size: int = 16):
        self.size = size
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Conversation:
        with self._lock:
            conv = self._items.get(path)
            if conv is None:
                conv = self._items[path] = Conversation(path)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            else:
                self._items.move_to_end(path)
            return conv

    def forget(self, path: str) -> None:
        with self._lock:
            self._items.pop(path, None)


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
    elif R.prompt_of(rec) is not None:
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
