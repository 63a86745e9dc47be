"""Keeping the index up to date, one session at a time (the indexer process's side of search.db).

A session is indexed from where it was left: what a conversation appended costs what was
appended. The last message indexed is read again each time, since some agents rewrite
their latest message in place (OpenCode's parts grow, Gemini CLI rewrites a record under
its id): when it reads differently it is indexed again. A conversation that got shorter
was rewritten: its documents are dropped and it is indexed from the start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from datetime import datetime

from helm_monitor.search import db
from helm_monitor.search.fields import fields_of

log = logging.getLogger(__name__)

PAGE = 500


def _sig(fields) -> bytes:
    return hashlib.blake2b(repr(fields).encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _ms(timestamp) -> int | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError):
        return None


def _project(session: dict) -> str | None:
    return session.get("projectPath") or session.get("projectDir")


class IndexWriter:
    def __init__(self, path: str):
        self.path = path
        self.conn = db.open_writer(path)
        self._file = self._identity()
        # key -> [row id, messages indexed, signature of the last one, the Session's when indexed]
        self._known: dict[str, list] = {
            key: [sid, indexed, sig, seen]
            for sid, key, indexed, sig, seen in self.conn.execute("SELECT id, key, indexed, last_sig, seen FROM sessions")}

    def close(self) -> None:
        self.conn.close()

    def _identity(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def vanished(self) -> bool:
        """The file was removed or replaced under us (the cache directory deleted, say): what is
        written now would go to an inode no reader can open."""
        return self._identity() != self._file

    def known_keys(self) -> set[str]:
        return set(self._known)

    def indexed(self, key: str) -> int:
        row = self._known.get(key)
        return row[1] if row else 0

    def current(self, key: str, seen: str) -> bool:
        """The session was indexed when it was as ``seen`` says (its message count, size, time)."""
        row = self._known.get(key)
        return row is not None and row[3] == seen

    # ------------------------------------------------------------ sessions
    def index(self, key: str, session: dict, conversation, seen: str | None = None) -> int:
        """Index what ``conversation`` (the session's, source-independent) holds past what was
        indexed; ``seen``, the session's signature, is kept with it. Returns the documents
        written. FileNotFoundError passes up (the data went)."""
        row = self._known.get(key)
        if row is None:
            cur = self.conn.execute("INSERT INTO sessions(key, source, host, project) VALUES (?, ?, ?, ?)",
                                    (key, session.get("source"), session.get("host"), _project(session)))
            row = self._known[key] = [cur.lastrowid, 0, None, None]
        else:
            self.conn.execute("UPDATE sessions SET project = ? WHERE id = ? AND project IS NOT ?",
                              (_project(session), row[0], _project(session)))
        written = 0
        start = max(0, row[1] - 1)
        while True:
            with conversation.lock:
                page = conversation.page(start, PAGE)
            messages = page.get("messages") or []
            total = int(page.get("total") or 0)
            if total < row[1]:
                log.info("%s was rewritten shorter: indexing it again", key)
                self._drop_docs(row)
                start = 0
                continue
            last = page.get("nextOffset") is None or not messages
            written += self._write(row, messages, seen if last else None)
            if last:
                return written
            start = page["nextOffset"]

    def _write(self, row: list, messages: list[dict], seen: str | None) -> int:
        sid = row[0]
        written = 0
        conn = self.conn
        conn.execute("BEGIN")
        try:
            for m in messages:
                i = m.get("index")
                if not isinstance(i, int) or i < row[1] - 1:
                    continue
                fields = fields_of(m)
                sig = _sig(fields)
                if i == row[1] - 1:  # the last one indexed: again only if it changed
                    if sig == row[2]:
                        continue
                    self._drop_range(sid, i, i + 1)
                elif i < row[1]:
                    continue
                if fields is not None:
                    cur = conn.execute("INSERT INTO docs(session, idx, role, ts, body) VALUES (?, ?, ?, ?, ?)",
                                       (sid, i, m.get("role"), _ms(m.get("timestamp")), db.pack(fields)))
                    conn.execute("INSERT INTO fts(rowid, text, thinking, tool_input, tool_result) VALUES (?, ?, ?, ?, ?)",
                                 (cur.lastrowid, *fields))
                    written += 1
                row[1], row[2] = i + 1, sig
            conn.execute("UPDATE sessions SET indexed = ?, last_sig = ?, seen = ? WHERE id = ?",
                         (row[1], row[2], seen, sid))
            conn.execute("COMMIT")
            row[3] = seen
        except BaseException:
            conn.execute("ROLLBACK")
            # What this process believes must match the file: read it back.
            row[1:4] = conn.execute("SELECT indexed, last_sig, seen FROM sessions WHERE id = ?", (sid,)).fetchone()
            raise
        return written

    def _drop_range(self, sid: int, start: int, end: int) -> int:
        n = self.conn.execute("DELETE FROM docs WHERE session = ? AND idx >= ? AND idx < ?", (sid, start, end)).rowcount
        if n:
            self.conn.execute("UPDATE meta SET value = value + ? WHERE name = 'orphans'", (n,))
        return n

    def _drop_docs(self, row: list) -> None:
        with self.conn:
            self._drop_range(row[0], 0, 1 << 62)
            self.conn.execute("UPDATE sessions SET indexed = 0, last_sig = NULL, seen = NULL WHERE id = ?", (row[0],))
        row[1:4] = [0, None, None]

    def drop(self, key: str) -> None:
        """The session is gone: nothing of it is found any more."""
        row = self._known.pop(key, None)
        if row is None:
            return
        self.conn.execute("BEGIN")
        try:
            self._drop_range(row[0], 0, 1 << 62)
            self.conn.execute("DELETE FROM sessions WHERE id = ?", (row[0],))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ upkeep
    def needs_rebuild(self) -> bool:
        return db.needs_rebuild(self.conn)

    def rebuild(self) -> "IndexWriter":
        """Start over with an empty index (orphans outweigh the rest): returns the new writer."""
        self.conn.close()
        db.remove(self.path)
        return IndexWriter(self.path)

    def set_state(self, state: str, **more) -> None:
        db.set_meta(self.conn, state=state, **more)

    def optimize(self) -> None:
        try:
            self.conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        except sqlite3.DatabaseError as exc:
            log.warning("optimizing the search index failed: %s", exc)

    def counts(self) -> dict:
        return {"sessions": len(self._known),
                "documents": self.conn.execute("SELECT max(rowid) FROM docs").fetchone()[0] or 0}
