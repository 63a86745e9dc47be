"""A Codex thread as a conversation: its messages, paged, across its physical rollout files.

Shown: prompts (UserMessage items, or legacy ``user_message`` events), replies
(AgentMessage items, or legacy ``agent_message``), reasoning summaries and
tool calls / results (``response_item`` reasoning, function_call, custom_tool_call,
local_shell_call, web_search_call and their outputs). ``response_item``
messages are never shown: a user one is injected context (environment,
AGENTS.md), an assistant one repeats the AgentMessage. A thread with any
paginated item shows those; one with none shows the legacy events.

Plain files are indexed incrementally (offsets of message lines), so a page
reads only its lines; a compressed file (immutable) is decompressed once per
``(inode, size, mtime)`` and its message lines kept. Independent of the
source's state: it opens the files itself, under its own ``lock``.
"""

from __future__ import annotations

import json
import os
import threading
from array import array

from helm_monitor.sources import blocks as B
from helm_monitor.sources.codex import records as R
from helm_monitor.sources.codex.rollout import iter_zst_lines
from helm_monitor.sources.jsonl import OPEN_FLAGS as _FLAGS
from helm_monitor.sources.pages import LineIndex, page_of, window
from helm_monitor.sources.redact import redact_clipped

MAX_LIMIT = 500
TEXT_MAX = 20_000
TOOL_INPUT_MAX = 2_000
TOOL_RESULT_MAX = 4_000

PAGINATED, LEGACY, SHARED = 1, 2, 3
_TOOL_CALLS = frozenset({"function_call", "custom_tool_call", "local_shell_call", "web_search_call"})
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})


def tag_of(line: bytes) -> int:
    """Which messages a line holds (0: none)."""
    skimmed = R.skim(line)
    if skimmed is not None and skimmed[0] != "response_item":
        return 0
    try:
        rec = R.parse(line)
    except R.BadLine:
        return 0
    if not isinstance(rec, dict) or not isinstance(rec.get("payload"), dict):
        return 0
    p = rec["payload"]
    kind, sub = rec.get("type"), p.get("type")
    if kind == "event_msg":
        if sub == "item_completed":
            item = p.get("item")
            if isinstance(item, dict) and item.get("type") in ("UserMessage", "AgentMessage"):
                return PAGINATED
        elif sub in ("user_message", "agent_message"):
            return LEGACY
    elif kind == "response_item":
        if sub in _TOOL_CALLS or sub in _TOOL_OUTPUTS:
            return SHARED
        if sub == "reasoning" and _reasoning_texts(p):
            return SHARED
    return 0


class _PlainIndex:
    def __init__(self, path: str):
        self.path = path
        self.index = LineIndex()
        self.reset()

    def reset(self) -> None:
        self.starts, self.ends, self.tags = array("q"), array("q"), array("b")

    def update(self) -> None:
        fd = os.open(self.path, _FLAGS)
        try:
            self.index.update(fd, self._line, self.reset)
        finally:
            os.close(fd)

    def _line(self, buf: bytes, start: int, end: int, offset: int) -> None:
        tag = tag_of(buf[start:end])
        if tag:
            self.starts.append(offset)
            self.ends.append(offset + end - start)
            self.tags.append(tag)

    def line(self, i: int) -> bytes:
        fd = os.open(self.path, _FLAGS)
        try:
            return os.pread(fd, self.ends[i] - self.starts[i], self.starts[i])
        finally:
            os.close(fd)


class _ZstIndex:
    def __init__(self, path: str):
        self.path = path
        self.key = None
        self.lines: list[bytes] = []
        self.tags = array("b")

    def update(self) -> None:
        fd = os.open(self.path, _FLAGS)
        try:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self.key:
                return
            lines, tags = [], array("b")
            for line in iter_zst_lines(fd, lambda n: None, lambda kind, detail: None):
                tag = tag_of(line)
                if tag:
                    lines.append(line)
                    tags.append(tag)
            self.key, self.lines, self.tags = key, lines, tags
        finally:
            os.close(fd)

    def line(self, i: int) -> bytes:
        return self.lines[i]


class Conversation:
    """One thread's messages. Callers hold ``lock`` around :meth:`page`."""

    def __init__(self, paths: list[str]):
        self.lock = threading.Lock()
        self.paths: list[str] = []
        self._indexes: dict[str, object] = {}
        self.set_paths(paths)

    def set_paths(self, paths: list[str]) -> None:
        self.paths = list(paths)
        self._indexes = {p: self._indexes.get(p) or (_ZstIndex(p) if p.endswith(".zst") else _PlainIndex(p))
                         for p in self.paths}

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        present = []
        for p in self.paths:
            idx = self._indexes[p]
            try:
                idx.update()
            except FileNotFoundError:
                continue
            present.append(idx)
        if not present:
            raise FileNotFoundError(2, "the thread's rollouts are gone", self.paths[0] if self.paths else "")
        mode = PAGINATED if any(PAGINATED in idx.tags for idx in present) else LEGACY
        visible = [(idx, i) for idx in present for i, t in enumerate(idx.tags) if t == mode or t == SHARED]
        total = len(visible)
        offset, end = window(offset, limit, total, MAX_LIMIT)
        messages = []
        for n in range(offset, end):
            idx, i = visible[n]
            try:
                rec = R.parse(idx.line(i))
            except (R.BadLine, OSError):
                rec = None
            msg = to_message(n, rec) if isinstance(rec, dict) else None
            messages.append(msg or _placeholder(n))
        return page_of(messages, end, total)


def _placeholder(index: int) -> dict:
    return {"index": index, "uuid": None, "role": "assistant", "kind": "meta", "timestamp": None, "model": None,
            "messageId": None, "blocks": [{"type": "text", "text": "(this record changed while it was read)"}]}


def _text(text: str, limit: int = TEXT_MAX) -> str:
    return redact_clipped(text, limit)[0]


def _reasoning_texts(p: dict) -> list[str]:
    out = []
    for key in ("summary", "content"):
        parts = p.get(key)
        if isinstance(parts, list):
            out += [b["text"] for b in parts if isinstance(b, dict) and isinstance(b.get("text"), str) and b["text"]]
    return out


def _content_blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": _text(content)}] if content else []
    out = []
    if isinstance(content, list):
        for b in content:
            if not isinstance(b, dict):
                out.append(B.unknown_block(None, b))
            elif isinstance(b.get("text"), str):
                out.append({"type": "text", "text": _text(b["text"])})
            elif str(b.get("type", "")).lower() in ("image", "input_image", "local_image", "localimage"):
                out.append(B.image_block(None, b.get("image_url") or b.get("url")))
            else:  # a part of a type not known yet (mentions, skills, refusals...)
                out.append(B.unknown_block(b.get("type"), b))
    elif content is not None:
        out.append(B.unknown_block(None, content))
    return out


def _output_text(output) -> tuple[str, bool]:
    """A tool output's text and whether it failed (``{"content", "success": false}``)."""
    if isinstance(output, str):
        return output, False
    if isinstance(output, dict):
        text, _ = _output_text(output.get("content"))
        return text, output.get("success") is False
    if isinstance(output, list):
        parts = []
        for b in output:
            if isinstance(b, dict) and isinstance(b.get("text"), str):
                parts.append(b["text"])
            elif isinstance(b, dict) and "image" in str(b.get("type", "")):
                parts.append("[image]")
        return "\n".join(parts), False
    return ("" if output is None else json.dumps(output, ensure_ascii=False, default=str)), False


def to_message(index: int, rec: dict) -> dict | None:
    p = rec.get("payload")
    if not isinstance(p, dict):
        return None
    kind, sub = rec.get("type"), p.get("type")
    role, mkind, msg_id, blocks = "assistant", "reply", None, []
    if kind == "event_msg" and sub == "item_completed":
        item = p.get("item") if isinstance(p.get("item"), dict) else {}
        msg_id = R.str_or_none(item.get("id"))
        blocks = _content_blocks(item.get("content"))
        if item.get("type") == "UserMessage":
            role, mkind = "user", "prompt"
    elif kind == "event_msg" and sub in ("user_message", "agent_message"):
        blocks = _content_blocks(p.get("message"))
        images = p.get("images")
        if isinstance(images, list):
            blocks += [B.image_block(None, image) for image in images]
        if sub == "user_message":
            role, mkind = "user", "prompt"
    elif sub == "reasoning":
        msg_id = R.str_or_none(p.get("id"))
        blocks = [{"type": "thinking", "text": _text(t)} for t in _reasoning_texts(p)]
    elif sub in _TOOL_CALLS:
        msg_id = R.str_or_none(p.get("id"))
        raw = p.get("arguments") if sub == "function_call" else p.get("input") if sub == "custom_tool_call" \
            else p.get("action")
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        name = R.str_or_none(p.get("name")) or ("shell" if sub == "local_shell_call" else
                                                 "web_search" if sub == "web_search_call" else "tool")
        blocks = [{"type": "tool_use", "id": R.str_or_none(p.get("call_id")) or msg_id, "name": name,
                   "input": _text(text, TOOL_INPUT_MAX)}]
    elif sub in _TOOL_OUTPUTS:
        role, mkind = "user", "tool-result"
        text, failed = _output_text(p.get("output"))
        shown, truncated = redact_clipped(text, TOOL_RESULT_MAX)
        blocks = [{"type": "tool_result", "toolUseId": R.str_or_none(p.get("call_id")), "text": shown,
                   "isError": failed, "truncated": truncated}]
    else:
        return None
    return {"index": index, "uuid": msg_id, "role": role, "kind": mkind, "timestamp": R.norm_ts(rec.get("timestamp")),
            "model": None, "messageId": msg_id if role == "assistant" else None, "blocks": blocks}
