"""One OpenCode session's messages, paged from the database.

Each page opens its own read-only connection (so request threads never share
one with the pump), reads one snapshot, and closes it. Messages are the
session's ``message`` rows ordered as OpenCode orders them (``time_created``,
``id``); their blocks come from their ``part`` rows: ``text`` as text,
``reasoning`` as thinking, a ``tool`` part as a tool_use and (once it has run)
its tool_result, a ``file`` as an image or a note. Bookkeeping parts
(step-start/finish, snapshot, patch) are not shown; a part of any other type is
shown as raw JSON (an ``unknown`` block, helm_monitor.sources.blocks).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading

from helm_monitor.sources import blocks as B
from helm_monitor.sources.opencode import db as D
from helm_monitor.sources.opencode import records as R
from helm_monitor.sources.opencode.sessions import iso_from_ms
from helm_monitor.sources.redact import redact_clipped

MAX_LIMIT = 500
TEXT_MAX = 20_000
TOOL_INPUT_MAX = 2_000
TOOL_RESULT_MAX = 4_000
# Parts that say nothing to a reader of the conversation (steps, snapshots, changed-file lists).
_BOOKKEEPING = frozenset({"step-start", "step-finish", "snapshot", "patch"})


class OpenCodeConversation:
    def __init__(self, db_path: str, session_id: str, busy_timeout_s: float = 0.25):
        self.db_path = db_path
        self.session_id = session_id
        self.busy_timeout_s = busy_timeout_s
        self.lock = threading.Lock()

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        if not os.path.exists(self.db_path):
            raise FileNotFoundError(errno.ENOENT, "the OpenCode database is gone", self.db_path)
        try:
            conn = D.open_readonly(self.db_path, self.busy_timeout_s)
        except D.NeedsWalIndex:
            raise OSError(errno.EAGAIN, "the database's -shm is missing; not read", self.db_path) from None
        except sqlite3.Error as exc:
            raise OSError(errno.EIO, f"cannot read the OpenCode database: {exc}", self.db_path) from None
        try:
            conn.execute("BEGIN")
            return self._page(conn, offset, limit)
        except sqlite3.Error as exc:
            raise OSError(errno.EIO, f"cannot read the OpenCode database: {exc}", self.db_path) from None
        finally:
            conn.close()

    def _page(self, conn: sqlite3.Connection, offset: int, limit: int) -> dict:
        sid = self.session_id
        if conn.execute("SELECT 1 FROM session WHERE id = ?", (sid,)).fetchone() is None:
            raise FileNotFoundError(errno.ENOENT, f"session {sid} is gone", self.db_path)
        total = conn.execute("SELECT count(*) FROM message WHERE session_id = ?", (sid,)).fetchone()[0]
        offset = max(0, min(offset, total))
        limit = max(1, min(limit, MAX_LIMIT))
        rows = conn.execute("SELECT id, time_created, data FROM message WHERE session_id = ? "
                            "ORDER BY time_created, id LIMIT ? OFFSET ?", (sid, limit, offset)).fetchall()
        parts: dict[str, list[dict]] = {}
        ids = [R.text(r[0]) for r in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            for mid, data in conn.execute(f"SELECT message_id, data FROM part WHERE message_id IN ({marks}) "
                                          "ORDER BY message_id, id", ids):
                try:
                    parts.setdefault(R.text(mid), []).append(R.load(data))
                except R.BadRow:
                    continue
        messages = [to_message(offset + i, ids[i], row[1], row[2], parts.get(ids[i], ()))
                    for i, row in enumerate(rows)]
        end = offset + len(rows)
        return {"messages": messages, "nextOffset": end if end < total else None, "total": total}


def _text(s: str, limit: int = TEXT_MAX) -> str:
    return redact_clipped(s, limit)[0]


def _part_blocks(part: dict) -> list[dict]:
    kind = part.get("type")
    if kind in ("text", "reasoning") and isinstance(part.get("text"), str):
        if not part["text"]:
            return []
        return [{"type": "text" if kind == "text" else "thinking", "text": _text(part["text"])}]
    if kind == "tool":
        state = part.get("state") if isinstance(part.get("state"), dict) else {}
        raw = state.get("input")
        shown = raw if isinstance(raw, str) else json.dumps(raw if raw is not None else {}, ensure_ascii=False,
                                                            default=str)
        call = R.str_or_none(part.get("callID")) or R.str_or_none(part.get("id"))
        out = [{"type": "tool_use", "id": call, "name": R.str_or_none(part.get("tool")) or "tool",
                "input": _text(shown, TOOL_INPUT_MAX)}]
        status = state.get("status")
        if status in ("completed", "error"):
            result = state.get("output") if status == "completed" else state.get("error")
            if not isinstance(result, str):
                result = "" if result is None else json.dumps(result, ensure_ascii=False, default=str)
            text, truncated = redact_clipped(result, TOOL_RESULT_MAX)
            out.append({"type": "tool_result", "toolUseId": call, "text": text, "isError": status == "error",
                        "truncated": truncated})
        return out
    if kind == "file":
        mime = part.get("mime") if isinstance(part.get("mime"), str) else ""
        if mime.startswith("image/"):
            return [B.image_block(mime, part.get("url"))]
        name = R.str_or_none(part.get("filename")) or R.str_or_none(part.get("url")) or "file"
        if B.data_url(name) is not None:  # the file inline, as a data: URL
            name = "file"
        return [{"type": "text", "text": _text(f"[file: {name}]")}]
    if kind in _BOOKKEEPING:
        return []
    return [B.unknown_block(kind, part)]  # a part of a type not known yet (agent, subtask...)


def to_message(index: int, mid: str, created, data, parts) -> dict:
    try:
        info = R.load(data)
    except R.BadRow:
        info = {}
    role = "assistant" if info.get("role") == "assistant" else "user"
    blocks = [b for p in parts for b in _part_blocks(p)]
    if role == "assistant":
        kind = "reply"
    elif info.get("role") == "user" and any(
            p.get("type") == "text" and isinstance(p.get("text"), str) and p["text"].strip()
            and p.get("synthetic") is not True and p.get("ignored") is not True for p in parts):
        kind = "prompt"
    else:
        kind = "meta"
    return {
        "index": index,
        "uuid": mid,
        "role": role,
        "kind": kind,
        "timestamp": iso_from_ms(R.as_int(created)),
        "model": R.str_or_none(info.get("modelID")) if role == "assistant" else None,
        "messageId": mid if role == "assistant" else None,
        "blocks": blocks,
    }
