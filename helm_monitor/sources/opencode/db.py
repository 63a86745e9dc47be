"""Opening OpenCode's SQLite database read-only, and what its schema offers.

The database is opened in URI mode with ``mode=ro``: SQLite then reads the
write-ahead log (``opencode.db-wal``) as every reader does, through the
wal-index (``-shm``), so rows OpenCode committed but has not checkpointed are
seen. Nothing is copied and nothing is written, with two traps handled:

- ``mode=ro`` on a WAL database whose ``-wal`` is absent (OpenCode closed it
  cleanly, or the file was checkpointed and copied) makes SQLite *create*
  ``-wal`` and ``-shm`` beside it (tested: SQLite 3.40). Then there is nothing
  in a log to honour, so the file is opened ``immutable=1`` instead: no
  locks, no side files; read once and closed, and the ``-wal`` OpenCode
  creates when it next writes is an event that brings the next read.
- A ``-wal`` without its ``-shm`` cannot be read without creating the
  ``-shm`` (and ``immutable`` would ignore the log and show stale rows):
  :class:`NeedsWalIndex` is raised, what was known is kept, and the read is
  tried again at the next change (OpenCode recreates the ``-shm`` when it
  opens the database).

A connection lives for one read: a transaction is begun, the queries run on
one snapshot, and it is closed before returning, so no read transaction is
ever held between calls and OpenCode's checkpoints are never held back.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

# SQLite's primary result codes (sqlite3.h).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_NOTADB = 26
# Codes of a read that may work if tried again: a writer holds a lock (a
# rollback-journal database being written, a WAL being recovered), this
# process ran short of memory or file descriptors, the wal-index cannot be
# set up read-only until OpenCode opens the database.
PASSING_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR,
                           SQLITE_CANTOPEN, SQLITE_PROTOCOL})

# Columns the reader cannot do without; every other one it uses is optional.
REQUIRED = {
    "session": ("id", "directory", "title", "time_created", "time_updated"),
    "message": ("id", "session_id", "time_created", "time_updated", "data"),
    "part": ("id", "message_id", "session_id", "time_updated", "data"),
}
SESSION_OPTIONAL = ("parent_id", "project_id", "version", "cost", "tokens_input", "tokens_output",
                    "tokens_reasoning", "tokens_cache_read", "tokens_cache_write", "model", "permission",
                    "time_archived")


class NeedsWalIndex(Exception):
    """The database has a ``-wal`` but no ``-shm``: reading it would create the ``-shm``."""


class UnknownSchema(Exception):
    """Tables or columns the reader needs are missing (another OpenCode version)."""


class EmptyDatabase(Exception):
    """No tables yet: OpenCode is creating the database."""


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_passing(exc: sqlite3.Error) -> bool:
    return primary_code(exc) in PASSING_CODES or isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "unable to open" in str(exc))


def _wal_mode(path: str) -> bool:
    """The file's header says WAL (its read/write format versions, bytes 18-19, are 2)."""
    with open(path, "rb") as f:
        head = f.read(20)
    return len(head) == 20 and head.startswith(b"SQLite format 3\0") and head[18] == 2


def open_readonly(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """A read-only connection (see the module's notes). Raises OSError, sqlite3.Error, NeedsWalIndex."""
    params = "mode=ro"
    if _wal_mode(path):
        if not os.path.exists(path + "-wal"):
            params = "mode=ro&immutable=1"
        elif not os.path.exists(path + "-shm"):
            raise NeedsWalIndex(path)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?" + params
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.text_factory = bytes
        conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


class Schema:
    """Which of the tables and columns the reader uses this database has."""

    def __init__(self, conn: sqlite3.Connection):
        self.columns: dict[str, frozenset[str]] = {}
        for table in ("session", "message", "part", "project", "event"):
            rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
            if rows:
                self.columns[table] = frozenset(r[1].decode() if isinstance(r[1], bytes) else r[1] for r in rows)
        if not self.columns and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            raise EmptyDatabase()
        missing = [f"{t}.{c}" if t in self.columns else t
                   for t, cols in REQUIRED.items() for c in cols
                   if c not in self.columns.get(t, frozenset())]
        if missing:
            # one entry per missing table, not per column
            seen: list[str] = []
            for m in missing:
                if m not in seen:
                    seen.append(m)
            raise UnknownSchema(", ".join(seen))
        self.has_events = "aggregate_id" in self.columns.get("event", frozenset())
        self.has_worktree = {"id", "worktree"} <= self.columns.get("project", frozenset())

    def session_column(self, name: str, alias: str = "s") -> str:
        return f"{alias}.{name}" if name in self.columns["session"] else "NULL"

    def session_select(self) -> str:
        """``SELECT`` of the columns :func:`session_row` takes, in its order, from ``session s``."""
        cols = ["s.rowid", "s.id", "s.directory", "s.title", "s.time_created", "s.time_updated"]
        cols += [self.session_column(c) for c in SESSION_OPTIONAL]
        if self.has_worktree and "project_id" in self.columns["session"]:
            cols.append("p.worktree")
            return "SELECT " + ", ".join(cols) + " FROM session s LEFT JOIN project p ON p.id = s.project_id"
        cols.append("NULL")
        return "SELECT " + ", ".join(cols) + " FROM session s"
