"""The search index on disk: ``search.db`` in the cache directory (SQLite FTS5, stdlib sqlite3).

- ``fts``: contentless FTS5 (``content=''``, unicode61, diacritics folded) over the four
  fields of helm_monitor.search.fields. It stores no text, only the tokens' postings.
- ``docs``: one row per indexed message (rowid = the FTS rowid, never reused): its session,
  index, role, time, and its masked fields compressed, which snippets are cut from.
- ``sessions``: what each indexed session is (key, source, host, project) and how far it
  was indexed, with the signature of the last message indexed (agents that rewrite their
  last message in place: it is indexed again when it reads differently) and of the Session
  as it was then (``seen``: a restart skips what did not change).
- ``meta``: the format, and how many FTS rows no longer have a document.

SQLite 3.40 (Debian 12) has no ``contentless_delete``: a document dropped (its session
rewritten or deleted) leaves its postings behind as an orphan that every query drops by
joining ``docs``; once orphans pass a fifth of the rows the index is rebuilt.

One writer (the indexer process); readers open it read-only. A file that is corrupt or of
another format is removed and built again by the writer; readers see it as not ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import zlib

import orjson

from helm_monitor.search.fields import COLUMNS

log = logging.getLogger(__name__)

FILENAME = "search.db"
# Bumped whenever what is indexed or how changes: an index of another format is rebuilt.
FORMAT = 1
# Orphaned rows (documents dropped) beyond which the index is rebuilt: this share of all rows,
# once there are at least REBUILD_MIN of them.
REBUILD_SHARE = 0.2
REBUILD_MIN = 5_000

_SCHEMA = f"""
CREATE TABLE meta(name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE sessions(
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  source TEXT, host TEXT, project TEXT,
  indexed INTEGER NOT NULL DEFAULT 0,
  last_sig BLOB,
  seen TEXT
);
CREATE TABLE docs(
  rowid INTEGER PRIMARY KEY AUTOINCREMENT,
  session INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  role TEXT,
  ts INTEGER,
  body BLOB
);
CREATE INDEX docs_by_session ON docs(session, idx);
CREATE VIRTUAL TABLE fts USING fts5({", ".join(COLUMNS)}, content='', tokenize='unicode61 remove_diacritics 2');
"""


class IndexUnavailable(Exception):
    """The index is not there (yet), of another format, or unreadable: it is being built."""


def path_in(cache_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(cache_dir), FILENAME)


def pack(fields: tuple[str, ...]) -> bytes:
    return zlib.compress(orjson.dumps(fields), 6)


def unpack(body: bytes | None) -> tuple[str, ...]:
    if not body:
        return ("",) * len(COLUMNS)
    try:
        fields = orjson.loads(zlib.decompress(body))
    except (zlib.error, orjson.JSONDecodeError):
        return ("",) * len(COLUMNS)
    return tuple(f if isinstance(f, str) else "" for f in fields)


def remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


def open_writer(path: str) -> sqlite3.Connection:
    """The index at ``path`` for writing, created (or built anew) when missing, corrupt or of another format."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    if os.path.exists(path):
        try:
            conn = _connect(path)
            if _format_of(conn) == FORMAT and conn.execute("PRAGMA quick_check").fetchone()[0] == "ok":
                return conn
            conn.close()
            log.info("the search index %s is of another format; building it again", path)
        except sqlite3.DatabaseError as exc:
            log.warning("the search index %s is unreadable (%s); building it again", path, exc)
        remove(path)
    # Text of transcripts, masked or not, is for this user alone.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    conn = _connect(path)
    conn.executescript(_SCHEMA)
    with conn:
        conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?)",
                         [("format", FORMAT), ("orphans", 0), ("state", "building")])
    return conn


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _format_of(conn: sqlite3.Connection):
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def open_reader(path: str) -> sqlite3.Connection:
    """The index read-only; IndexUnavailable when there is none of this format."""
    if not os.path.exists(path):
        raise IndexUnavailable("the search index is being built")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        if _format_of(conn) != FORMAT:
            conn.close()
            raise IndexUnavailable("the search index is being built")
    except sqlite3.DatabaseError as exc:
        raise IndexUnavailable("the search index is being built") from exc
    return conn


def meta(conn: sqlite3.Connection) -> dict:
    return dict(conn.execute("SELECT name, value FROM meta").fetchall())


def set_meta(conn: sqlite3.Connection, **values) -> None:
    conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                     list(values.items()))


def needs_rebuild(conn: sqlite3.Connection) -> bool:
    """So many documents were dropped that their orphaned postings outweigh what they cost to build again."""
    orphans = int(meta(conn).get("orphans") or 0)
    if orphans < REBUILD_MIN:
        return False
    live = conn.execute("SELECT count(*) FROM docs").fetchone()[0]
    return orphans > REBUILD_SHARE * (orphans + live)
