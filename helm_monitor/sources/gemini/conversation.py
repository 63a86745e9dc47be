"""A Gemini chat file as a conversation: its messages after replay, paged.

The file is indexed incrementally: for every message id still in the replayed
list (last copy wins, ``$set.messages`` replaces, ``$rewindTo`` cuts) the index
keeps where its latest copy lies (a line, or an element of a checkpoint line),
so following a live session reads only what was appended and a page reads only
its own messages. Independent of the source's state: paged from request
threads, each holding ``lock``.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections import OrderedDict

import orjson

from helm_monitor.sources import blocks as B
from helm_monitor.sources.jsonl import OPEN_FLAGS as _FLAGS, READ_CHUNK_BYTES
from helm_monitor.sources.pages import LineIndex, page_of, window
from helm_monitor.sources.gemini.records import IGNORED_PREFIXES, part_text
from helm_monitor.sources.text import str_or_none
from helm_monitor.sources.redact import redact_clipped

MAX_LIMIT = 500
TEXT_MAX = 20_000
TOOL_INPUT_MAX = 2_000
TOOL_RESULT_MAX = 4_000
# Keys of a part that go with its content, not content of their own.
_PART_META = frozenset({"thought", "thoughtSignature", "partMetadata"})


class _Stale(Exception):
    """An indexed place no longer holds its message."""


class ChatConversation:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self._lines = LineIndex()
        self._legacy = path.endswith(".json")
        self._reset()

    def _reset(self) -> None:
        # id -> (start, end, element of a checkpoint's list or -1 for a message line)
        self._index: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._lines.offset, self._lines.tail = 0, b""
        self._legacy_doc: list | None = None
        self._legacy_key = None

    # ---------------------------------------------------------------- indexing
    def _update(self, fd: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(2, "not a regular file", self.path)
        if self._legacy:
            self._update_legacy(fd, st)
            return
        self._lines.update(fd, self._index_line, self._reset)

    def _index_line(self, buf: bytes, start: int, stop: int, offset: int) -> None:
        try:
            rec = orjson.loads(buf[start:stop])
        except orjson.JSONDecodeError:
            return
        if not isinstance(rec, dict):
            return
        start, end = offset, offset + stop - start
        index = self._index
        if isinstance(rec.get("$rewindTo"), str):
            mid = rec["$rewindTo"]
            if mid not in index:
                index.clear()
            else:
                while index and index.popitem()[0] != mid:
                    pass
        elif isinstance(rec.get("id"), str):
            index[rec["id"]] = (start, end, -1)
        elif isinstance(rec.get("$set"), dict) and isinstance(rec["$set"].get("messages"), list):
            index.clear()
            msgs = rec["$set"]["messages"]
            echoes = _echoed_responses(msgs)
            for i, msg in enumerate(msgs):
                if isinstance(msg, dict) and isinstance(msg.get("id"), str) and i not in echoes:
                    index[msg["id"]] = (start, end, i)
        elif isinstance(rec.get("messages"), list) and isinstance(rec.get("sessionId"), str):
            for i, msg in enumerate(rec["messages"]):
                if isinstance(msg, dict) and isinstance(msg.get("id"), str):
                    index[msg["id"]] = (start, end, i)

    def _update_legacy(self, fd: int, st: os.stat_result) -> None:
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._legacy_key:
            return
        data = b""
        while len(data) < st.st_size:
            chunk = os.pread(fd, READ_CHUNK_BYTES, len(data))
            if not chunk:
                break
            data += chunk
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return  # half rewritten: the last good copy stays
        messages = doc.get("messages") if isinstance(doc, dict) else None
        self._legacy_doc = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        self._legacy_key = key

    # ---------------------------------------------------------------- paging
    def page(self, offset: int = 0, limit: int = 100) -> dict:
        fd = os.open(self.path, _FLAGS)  # FileNotFoundError when the session's file is gone
        try:
            self._update(fd)
            try:
                return self._page(fd, offset, limit)
            except _Stale:
                self._reset()
                self._update(fd)
                return self._page(fd, offset, limit)
        finally:
            os.close(fd)

    def _page(self, fd: int, offset: int, limit: int) -> dict:
        if self._legacy:
            msgs = self._legacy_doc or []
            total = len(msgs)
            offset, end = window(offset, limit, total, MAX_LIMIT)
            return page_of([to_message(i, msgs[i]) for i in range(offset, end)], end, total)
        total = len(self._index)
        offset, end = window(offset, limit, total, MAX_LIMIT)
        out = []
        cached: tuple[int, list] | None = None  # the last checkpoint line read
        items = list(self._index.items())[offset:end]
        for i, (mid, (start, stop, sub)) in enumerate(items, offset):
            if sub >= 0 and cached is not None and cached[0] == start:
                msgs = cached[1]
            else:
                try:
                    rec = orjson.loads(os.pread(fd, stop - start, start))
                except orjson.JSONDecodeError:
                    raise _Stale() from None
                if not isinstance(rec, dict):
                    raise _Stale()
                msgs = None
                if sub >= 0:
                    container = rec.get("$set") if isinstance(rec.get("$set"), dict) else rec
                    msgs = container.get("messages")
                    if not isinstance(msgs, list):
                        raise _Stale()
                    cached = (start, msgs)
            msg = rec if sub < 0 else (msgs[sub] if sub < len(msgs) else None)
            if not isinstance(msg, dict) or msg.get("id") != mid:
                raise _Stale()
            out.append(to_message(i, msg))
        return page_of(out, end, total)


def _response_ids(msg) -> list:
    return [p["functionResponse"].get("id") for p in _parts(msg.get("content"))
            if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)]


def _echoed_responses(msgs: list) -> set[int]:
    """Places of ``<reply id>_response`` messages whose tool results another message of the list carries.

    A checkpoint rebuilt from the API history (``--resume``) holds each tool result twice: as
    the message the CLI recorded when the tool ran, and as a ``<reply id>_response`` echo.
    """
    answered: dict[str, int] = {}
    for i, msg in enumerate(msgs):
        if isinstance(msg, dict) and not str(msg.get("id", "")).endswith("_response"):
            for rid in _response_ids(msg):
                answered.setdefault(rid, i)
    out = set()
    for i, msg in enumerate(msgs):
        if isinstance(msg, dict) and str(msg.get("id", "")).endswith("_response"):
            ids = _response_ids(msg)
            if ids and all(rid in answered for rid in ids):
                out.add(i)
    return out


# -------------------------------------------------------------------- rendering
def _text(value: str, limit: int = TEXT_MAX) -> str:
    return redact_clipped(value, limit)[0]


def _json(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _parts(content) -> list:
    if isinstance(content, list):
        return content
    if content is None or content == "":
        return []
    return [content]


def _response_text(response) -> tuple[str, bool]:
    if isinstance(response, dict):
        if "error" in response:
            return _json(response["error"]), True
        if isinstance(response.get("output"), str):
            return response["output"], False
    return _json(response), False


def _content_blocks(content, skip_calls: set) -> list[dict]:
    out = []
    for part in _parts(content):
        if isinstance(part, str):
            out.append({"type": "text", "text": _text(part)})
            continue
        if not isinstance(part, dict):
            out.append(B.unknown_block(None, part))
            continue
        if isinstance(part.get("text"), str):
            kind = "thinking" if part.get("thought") is True else "text"
            if part["text"]:
                out.append({"type": kind, "text": _text(part["text"])})
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            if call.get("id") not in skip_calls:
                out.append({"type": "tool_use", "id": str_or_none(call.get("id")),
                            "name": str_or_none(call.get("name")) or "tool",
                            "input": _text(_json(call.get("args")), TOOL_INPUT_MAX)})
        elif isinstance(part.get("functionResponse"), dict):
            resp = part["functionResponse"]
            text, is_error = _response_text(resp.get("response"))
            clipped, cut = redact_clipped(text, TOOL_RESULT_MAX)
            out.append({"type": "tool_result", "toolUseId": str_or_none(resp.get("id")), "text": clipped,
                        "isError": is_error, "truncated": cut})
        elif isinstance(part.get("inlineData"), dict) or isinstance(part.get("fileData"), dict):
            data = part.get("inlineData") or part.get("fileData")
            mime = data.get("mimeType") if isinstance(data.get("mimeType"), str) else ""
            out.append(B.image_block(mime, data.get("data")) if mime.startswith("image/")
                       else {"type": "text", "text": f"[attachment {mime or 'file'}]"})
        else:
            kinds = [k for k in part if k not in _PART_META]
            if kinds:  # executableCode, codeExecutionResult, a part not known yet
                out.append(B.unknown_block(str(kinds[0]), part))
    return out


def to_message(index: int, msg: dict) -> dict:
    kind_of = msg.get("type")
    model = message_id = None
    if kind_of == "gemini":
        role, kind = "assistant", "reply"
        model = str_or_none(msg.get("model"))
        message_id = str_or_none(msg.get("id"))
        blocks = []
        for t in msg.get("thoughts") or ():
            if isinstance(t, dict):
                text = ": ".join(x for x in (t.get("subject"), t.get("description")) if isinstance(x, str) and x)
                if text:
                    blocks.append({"type": "thinking", "text": _text(text)})
        calls = [c for c in msg.get("toolCalls") or () if isinstance(c, dict)] \
            if isinstance(msg.get("toolCalls"), list) else []
        blocks += _content_blocks(msg.get("content"), {c.get("id") for c in calls})
        for c in calls:
            blocks.append({"type": "tool_use", "id": str_or_none(c.get("id")),
                           "name": str_or_none(c.get("displayName")) or str_or_none(c.get("name")) or "tool",
                           "input": _text(_json(c.get("args")), TOOL_INPUT_MAX)})
    elif kind_of == "user":
        role = "user"
        content = msg.get("content")
        shown = msg.get("displayContent") if msg.get("displayContent") not in (None, "", []) else content
        blocks = _content_blocks(shown, set())
        text = part_text(content).strip()
        if text and not text.startswith(IGNORED_PREFIXES):
            kind = "prompt"
        elif blocks and all(b["type"] == "tool_result" for b in blocks):
            kind = "tool-result"
        else:
            kind = "meta"
    else:  # info / error / warning notices of the CLI, or a type not known yet
        role, kind = "assistant", "meta"
        label = kind_of if isinstance(kind_of, str) else "record"
        blocks = [{"type": "text", "text": f"[{label}] " + _text(part_text(msg.get("content")))}]
    return {
        "index": index,
        "uuid": str_or_none(msg.get("id")),
        "role": role,
        "kind": kind,
        "timestamp": str_or_none(msg.get("timestamp")),
        "model": model,
        "messageId": message_id,
        "blocks": blocks,
    }
