"""A transcript as a conversation: the messages of one session, paged.

The file is indexed incrementally (offsets of the lines that are messages),
so paging through a large transcript reads only the lines of the page, and
following a live session reads only what was appended.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
from array import array

import orjson

from helm_monitor.sources import blocks as B
from helm_monitor.sources.claude import records as R
from helm_monitor.sources.claude.transcript import TranscriptReader
from helm_monitor.sources.jsonl import OPEN_FLAGS
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

    def __init__(self, path: str, sidechain: bool = False):
        """``sidechain``: ``path`` is a subagent's transcript (``subagents/agent-<id>.jsonl``), whose
        records are all ``isSidechain``; a session's transcript shows none of those."""
        self.path = path
        self.sidechain = sidechain
        self.lock = threading.Lock()
        self._index = LineIndex()
        self._reset()

    def _reset(self) -> None:
        self._index.offset, self._index.tail = 0, b""
        self._starts = array("q")
        self._ends = array("q")

    def _open(self) -> int:
        """The transcript, opened as every reader opens an agent's file (helm_monitor.sources.jsonl):
        a symbolic link or anything but a regular file counts as gone."""
        try:
            fd = os.open(self.path, OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise FileNotFoundError(errno.ENOENT, "not a transcript", self.path) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, "not a regular file", self.path)
        return fd

    def _update(self) -> None:
        fd = self._open()
        try:
            self._index.update(fd, self._index_line, self._reset)
        finally:
            os.close(fd)

    def _index_line(self, buf: bytes, start: int, end: int, offset: int) -> None:
        if self._is_message(buf, start, end, self.sidechain):
            self._starts.append(offset)
            self._ends.append(offset + end - start)

    @staticmethod
    def _is_message(buf: bytes, start: int, end: int, sidechain: bool = False) -> bool:
        """Whether the line may be a message: told by its first and last bytes where Claude Code's key
        order allows (a user record: ``{"parentUuid":…,"isSidechain":…,["promptId":…,]"type":"user"``;
        an assistant record: ``…,"isSidechain":…,"message":{…}…,"type":"assistant",…}``), else decoded.

        The bytes alone do not prove the line whole: :meth:`_page` checks each line it reads
        (:func:`_message_record`) and drops from the index one that is not a message after all.
        Decoding every line only to read two keys took 80 % of indexing a 50 MB transcript."""
        if end <= start or TranscriptReader._skippable(buf, start, end):
            return False
        m = _HEAD.match(buf, start, min(end, start + 200))
        if m is not None:
            if m.group(1) == b"true" and not sidechain:
                return False
            p = m.end()
            t = _TYPED.match(buf, p, min(end, p + 160))
            if t is not None:
                return t.group(1) in _MESSAGE_TYPES
            if buf.startswith(b'"message":', p):
                i = buf.rfind(b',"type":"', max(p, end - 4096), end)
                if i >= 0:
                    q = buf.find(b'"', i + 9, i + 50)
                    if buf[i + 9:q] in _MESSAGE_TYPES:
                        return True
        elif buf.startswith(b'{"type":"', start):
            q = buf.find(b'"', start + 9, start + 64)
            if buf[start + 9:q] not in _MESSAGE_TYPES:
                return False
        try:
            rec = orjson.loads(buf[start:end])
        except orjson.JSONDecodeError:
            return False
        return _message_record(rec, sidechain)

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        self._update()
        for _ in range(3):
            try:
                return self._page(offset, limit)
            except _Stale:
                # The file changed under the index in a way _update could not see: start over.
                self._reset()
                self._update()
        return self._page(offset, limit)

    def _page(self, offset: int, limit: int) -> dict:
        while True:
            total = len(self._starts)
            start, end = window(offset, limit, total, MAX_LIMIT)
            records = self._read(start, end) if end > start else []
            wrong = [i for i, rec in zip(range(start, end), records) if not _message_record(rec, self.sidechain)]
            if not wrong:
                break
            # Whole lines the first bytes took for messages (torn or hand-edited records): unindexed.
            for i in reversed(wrong):
                del self._starts[i]
                del self._ends[i]
        messages = [to_message(i, rec, self.sidechain) for i, rec in zip(range(start, end), records)]
        return page_of(messages, end, total)

    def _read(self, start: int, end: int) -> list:
        """The records of indexed messages ``start`` to ``end`` (None for a line that does not decode).

        A line read without the newlines around it that the index saw means that the file changed
        in a way :meth:`_update` could not tell: :class:`_Stale`."""
        records = []
        fd = self._open()
        try:
            for i in range(start, end):
                at = self._starts[i]
                before = 1 if at > 0 else 0
                size = self._ends[i] - at
                raw = os.pread(fd, size + before + 1, at - before)
                if len(raw) != size + before + 1 or raw[-1:] != b"\n" or (before and raw[:1] != b"\n"):
                    raise _Stale()
                try:
                    records.append(orjson.loads(memoryview(raw)[before:before + size]))
                except orjson.JSONDecodeError:
                    records.append(None)
        finally:
            os.close(fd)
        return records


# Claude Code's records begin with these keys (CLAUDE_CODE_FORMAT.md), in this order.
_HEAD = re.compile(rb'\{"parentUuid":(?:null|"[^"\\]{0,80}"),"isSidechain":(true|false),')
_TYPED = re.compile(rb'(?:"promptId":"[^"\\]{0,80}",)?"type":"([a-z_-]{1,40})"')


def _message_record(rec, sidechain: bool) -> bool:
    return isinstance(rec, dict) and rec.get("type") in ("user", "assistant") and (
        sidechain or rec.get("isSidechain") is not True)


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


# Claude Code's subagent ids (``toolUseResult.agentId``, ``subagents/agent-<id>.jsonl``).
AGENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_valid_agent_id(value) -> bool:
    return isinstance(value, str) and AGENT_ID_RE.fullmatch(value) is not None


def _blocks(content, result=None) -> list[dict]:
    """The blocks of a message's ``content``; ``result``: the record's ``toolUseResult``."""
    if isinstance(content, str):
        return [{"type": "text", "text": redact_clipped(content, TEXT_MAX)[0]}]
    if content is None:
        return []
    if not isinstance(content, list):
        return [B.unknown_block(None, content)]
    # One toolUseResult per record: it belongs to the tool result when there is one only.
    results = sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    out = []
    for block in content:
        if not isinstance(block, dict):
            out.append(B.unknown_block(None, block))
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append({"type": "text", "text": redact_clipped(block["text"], TEXT_MAX)[0]})
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            out.append({"type": "thinking", "text": redact_clipped(block["thinking"], TEXT_MAX)[0]})
        elif kind == "tool_use":
            raw = block.get("input")
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
            shown = {"type": "tool_use", "id": R.str_or_none(block.get("id")),
                     "name": R.str_or_none(block.get("name")) or "tool", "input": redact_clipped(text, TOOL_INPUT_MAX)[0]}
            pairs = B.edit_pairs(raw)
            if pairs:  # Edit / MultiEdit: the diff before its result (and its structuredPatch) arrives
                patch = B.diff_patch(pairs)
                if patch is not None:
                    shown.update(patch)
            out.append(shown)
        elif kind == "tool_result":
            text, truncated = redact_clipped(_result_text(block.get("content")), TOOL_RESULT_MAX)
            shown = {"type": "tool_result", "toolUseId": R.str_or_none(block.get("tool_use_id")), "text": text,
                     "isError": block.get("is_error") is True, "truncated": truncated}
            if results == 1 and isinstance(result, dict):
                _add_result(shown, result)
            out.append(shown)
        elif kind == "image":
            source = block.get("source") if isinstance(block.get("source"), dict) else {}
            data = source.get("data") if source.get("type") == "base64" else None
            out.append(B.image_block(source.get("media_type"), data))
        else:  # redacted_thinking, server_tool_use, document, a type not known yet, a known one misshapen
            out.append(B.unknown_block(kind, block))
    return out


def _add_result(shown: dict, result: dict) -> None:
    """What of a ``toolUseResult`` the page shows beside the result's text: an edit's hunks and
    file, a subagent's id. Never the rest (``originalFile`` is the whole file)."""
    patch = B.clean_patch(result.get("structuredPatch"))
    if patch is not None:
        shown.update(patch)
    path = B.masked_path(result.get("filePath"))
    if path is not None:
        shown["filePath"] = path
    if is_valid_agent_id(result.get("agentId")):
        shown["agentId"] = result["agentId"]


def to_message(index: int, rec: dict, sidechain: bool = False) -> dict:
    """``sidechain``: a subagent's record, whose task (its first user message) is its prompt."""
    role = "assistant" if rec.get("type") == "assistant" else "user"
    message = rec.get("message") if isinstance(rec.get("message"), dict) else {}
    blocks = _blocks(message.get("content"), rec.get("toolUseResult"))
    if role == "assistant":
        kind = "reply"
    elif R.prompt_of(R.from_dict(dict(rec, isSidechain=False) if sidechain else rec)) is not None:
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
