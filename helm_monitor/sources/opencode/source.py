"""OpenCode's sessions, from its SQLite database, kept up to date change by change.

Change detection: the directory holding ``opencode.db`` is watched; an event
on ``opencode.db`` or ``opencode.db-wal`` (or ``-journal``) means "look".
The WAL's size says nothing (after a checkpoint SQLite rewrites it from the
start at the same size), so every such event is a look, and a look costs
what changed:

- with an ``event`` table (OpenCode ≥ 1.3, event-sourced sessions): the rows
  after the last ``rowid`` seen name the sessions that changed
  (``aggregate_id``);
- without one: sessions, messages and parts whose ``time_updated`` is at or
  after the latest seen (less a few seconds' slack for writers' clocks).

A changed session's own row is read again, and of its ``message`` and
``part`` rows only those updated since its latest seen (again less the
slack); counts of its rows tell a deletion, which reads that session again.
Sessions deleted or created without an event are told by the ``session``
table's ``count(*)`` and ``total(rowid)`` differing from the known ones,
which lists the ids (not the rows) again.

``-shm`` is not claimed: readers (this one too) write to it, and claiming it
would make every read an event for the next one.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
import time
from typing import Callable, Iterator

from helm_monitor.sources.base import STEADY_CLOCK, Source, Watch, WarnOnce
from helm_monitor.sources.base import PASSING_ERRNOS
from helm_monitor.sources.opencode import db as D
from helm_monitor.sources.opencode import records as R
from helm_monitor.sources.opencode.conversation import OpenCodeConversation
from helm_monitor.sources.opencode.sessions import SessionRows, session_row
from helm_monitor.sources.proc import agent_processes, program_is
from helm_monitor.sources.retry import backoff
from helm_monitor.usage.facts import UsageFacts

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 0.25
PROC_SCAN_INTERVAL_S = 2.5
SLACK_MS = 5000


# Files written less than this before a look are not trusted to show a later change by their times.
RECENT_WRITE_NS = 50_000_000


class OpenCodeSource(Source):
    name = "opencode"

    def __init__(self, root: str, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = STEADY_CLOCK, proc_root: str = "/proc",
                 db_path: str | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S,
                 proc_scan_interval_s: float = PROC_SCAN_INTERVAL_S, slack_ms: int = SLACK_MS):
        super().__init__(os.path.abspath(root), clock=clock, monotonic=monotonic, proc_root=proc_root)
        self.db_path = os.path.abspath(db_path) if db_path else os.path.join(self.root, "opencode.db")
        self.db_dir = os.path.dirname(self.db_path)
        self._files = frozenset({self.db_path, self.db_path + "-wal", self.db_path + "-journal"})
        self.busy_timeout_s = busy_timeout_s
        self.proc_scan_interval_s = proc_scan_interval_s
        self.slack_ms = slack_ms
        self._warn = WarnOnce(log)
        self._sessions: dict[str, SessionRows] = {}  # every session row, sub-agents' too
        self._children: dict[str, set[str]] = {}  # parent id -> sub-agent session ids
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the database read
        self._loaded = False
        self._event_cursor = 0  # the last event rowid read
        self._ts_cursor = {"session": 0, "message": 0, "part": 0}  # without an event table
        self._retry_due: float | None = None
        self._retry_tries = 0
        self._proc_dirs: frozenset[str] = frozenset()
        self._proc_at: float | None = None
        self._status: dict[str, str] = {}
        self._usage: dict[str, tuple[tuple, UsageFacts]] = {}  # root id -> (what it was combined from, facts)
        self.rows_read = 0  # rows fetched from SQLite (tests check costs)
        self.looks = 0  # reads of the database that ran
        # (inode, size, mtime) of the database and its WAL at the last look that read them all.
        self._seen: tuple | None = None

    # ------------------------------------------------------------ watching
    def watches(self) -> list[Watch]:
        return [Watch(self.db_dir, recursive=False)]

    def claims(self, path: str) -> bool:
        return path in self._files or path == self.db_dir or path == self.root

    def iter_paths(self) -> Iterator[str]:
        if os.path.lexists(self.db_path):
            yield self.db_path

    def known_paths(self) -> set[str]:
        return {self.db_path} if self._loaded else set()

    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        if not self.claims(os.path.abspath(path)):
            return set()
        return self._look()

    def full_scan(self) -> set[str]:
        self._seen = None  # a rescan reads, whatever the files' times say
        return super().full_scan()

    # ------------------------------------------------------------ retrying
    @property
    def needs_retry(self) -> bool:
        return self._retry_due is not None

    def retry(self) -> set[str]:
        if self._retry_due is None or self.monotonic() < self._retry_due:
            return set()
        return self._look()

    def _later(self, what: str, message: str) -> set[str]:
        self._retry_due = self.monotonic() + backoff(self._retry_tries)
        self._retry_tries += 1
        self._warn.warn(("db", what), "%s; what was known is kept and the read is retried until it works", message)
        return set()

    # ------------------------------------------------------------ reading
    def _files_now(self) -> tuple:
        out = []
        for path in (self.db_path, self.db_path + "-wal"):
            try:
                st = os.stat(path)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _look(self) -> set[str]:
        # Opening the database makes events of its own: as root, SQLite fchown()s the WAL it
        # opens (an inotify ATTRIB, which watchdog reports as a modification), so every look
        # would schedule the next one, a read per window forever and a real change waiting
        # for that window. A look whose files have not changed since the last one reads nothing.
        files = self._files_now()
        if files == self._seen and self._retry_due is None:
            return set()
        try:
            st = os.stat(self.db_path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return self._forget_all()
            if exc.errno in PASSING_ERRNOS:
                return self._later("stat", f"cannot stat {self.db_path}: {PASSING_ERRNOS[exc.errno]}")
            self._warn.warn(("db", "stat"), "cannot read %s: %s; its sessions are not shown", self.db_path,
                            exc.strerror)
            return set()
        if not stat.S_ISREG(st.st_mode):
            self._warn.warn(("db", "kind"), "%s is not a regular file; skipped", self.db_path)
            return set()
        file_id = (st.st_dev, st.st_ino)
        replaced = self._file_id is not None and file_id != self._file_id
        try:
            conn = D.open_readonly(self.db_path, self.busy_timeout_s)
        except D.NeedsWalIndex:
            self._warn.warn(("db", "wal-index"), "%s has a -wal but no -shm: reading it would create the -shm in "
                            "OpenCode's directory, so it is not read until OpenCode opens it again; what was "
                            "known is kept", self.db_path, level=logging.INFO)
            return set()
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return self._forget_all()
            if exc.errno in PASSING_ERRNOS:
                return self._later("open", f"cannot open {self.db_path}: {PASSING_ERRNOS[exc.errno]}")
            self._warn.warn(("db", "open"), "cannot read %s: %s; its sessions are not shown", self.db_path,
                            exc.strerror)
            return set()
        except sqlite3.Error as exc:
            return self._failed(exc)
        self.looks += 1
        try:
            conn.execute("BEGIN")
            schema = D.Schema(conn)
            if replaced or not self._loaded:
                changed = self._load_all(conn, schema)
            else:
                changed = self._refresh(conn, schema)
        except D.EmptyDatabase:
            changed = self._forget_all() if replaced else set()
        except D.UnknownSchema as exc:
            self._warn.warn(("db", "schema"), "%s has an unknown schema (no %s): another OpenCode version? "
                            "Its sessions are not shown", self.db_path, exc)
            return self._forget_all()  # read from scratch once a migration adds what is missing
        except sqlite3.Error as exc:
            return self._failed(exc)
        finally:
            conn.close()  # ends the read transaction: nothing is held between calls
        if self._retry_due is not None:
            log.info("%s reads again", self.db_path)
        self._retry_due, self._retry_tries = None, 0
        self._warn.clear_prefix("db")
        self._file_id = file_id
        self._loaded = True
        # File times are coarse (a clock tick): a commit in the same tick as the stat above and
        # leaving the sizes alone (a WAL restarted after a checkpoint) would look unchanged. Files
        # written that recently are looked at again at their next event.
        newest = max((f[2] for f in files if f is not None), default=0)
        self._seen = files if self.clock() * 1e9 - newest > RECENT_WRITE_NS else None
        return changed

    def _failed(self, exc: sqlite3.Error) -> set[str]:
        if not os.path.exists(self.db_path):
            return self._forget_all()
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        if D.is_passing(exc):
            return self._later("passing", f"cannot read {self.db_path} now ({name}: {exc})")
        self._warn.warn(("db", "broken"), "cannot read %s (%s: %s): not a usable SQLite database? What was "
                        "known is kept; it is read again at its next change", self.db_path, name, exc)
        return set()

    def _fetch(self, conn: sqlite3.Connection, sql: str, args=()) -> Iterator[tuple]:
        for row in conn.execute(sql, args):
            self.rows_read += 1
            yield row

    def _load_all(self, conn: sqlite3.Connection, schema: D.Schema) -> set[str]:
        before = self.session_ids()
        old = self._sessions
        old_usage = {sid: self.usage(sid) for sid in before}
        self._sessions, self._children, self._usage = {}, {}, {}
        for r in self._fetch(conn, schema.session_select()):
            sess = SessionRows(session_row(r))
            self._sessions[sess.row.id] = sess
            self._ts_cursor["session"] = max(self._ts_cursor["session"], sess.row.updated)
        for sess in self._sessions.values():
            self._link(sess)
        self._read_rows(conn, None, None)
        self._event_cursor = self._top_event(conn, schema)
        changed = before ^ self.session_ids()
        for sid in self.session_ids() & before:
            if old[sid].row != self._sessions[sid].row or old[sid].summary() != self._sessions[sid].summary() \
                    or old_usage[sid] != self.usage(sid):
                changed.add(sid)
        return changed

    def _read_rows(self, conn, sess: SessionRows | None, since: int | None) -> bool:
        """Read message and part rows: of ``sess`` (updated at or after ``since``), or of all sessions."""
        where, args = "", ()
        if sess is not None:
            where, args = " WHERE session_id = ?", (sess.row.id,)
            if since is not None:
                where, args = where + " AND time_updated >= ?", args + (since,)
        changed = False
        for mid, sid, created, updated, data in self._fetch(
                conn, "SELECT id, session_id, time_created, time_updated, data FROM message" + where, args):
            owner = sess or self._sessions.get(R.text(sid))
            if owner is None:
                continue
            mid = R.text(mid)
            try:
                m = R.message_of(mid, created, updated, data)
            except R.BadRow as exc:
                self._warn.warn(("row", "message", mid), "skipping message %s of session %s: %s", mid,
                                owner.row.id, exc)
                changed |= owner.drop_message(mid)
                owner.bad.add(mid)
                continue
            owner.bad.discard(mid)
            if m.role not in ("user", "assistant"):
                self._warn.warn(("role", m.role), "message %s has an unknown role %r; not counted", mid, m.role)
            changed |= owner.put_message(m)
            self._ts_cursor["message"] = max(self._ts_cursor["message"], m.updated)
        for pid, mid, sid, updated, data in self._fetch(
                conn, "SELECT id, message_id, session_id, time_updated, data FROM part" + where, args):
            owner = sess or self._sessions.get(R.text(sid))
            if owner is None:
                continue
            pid = R.text(pid)
            try:
                p = R.part_of(pid, R.text(mid), updated, data)
            except R.BadRow as exc:
                self._warn.warn(("row", "part", pid), "skipping part %s of session %s: %s", pid, owner.row.id, exc)
                changed |= owner.parts.pop(pid, None) is not None
                owner.bad_parts.add(pid)
                continue
            owner.bad_parts.discard(pid)
            if p.kind not in R.PART_TYPES:
                self._warn.warn(("part-type", p.kind), "part %s has an unknown type %r (a newer OpenCode?); shown "
                                "as raw JSON", pid, p.kind, level=logging.INFO)
            changed |= owner.put_part(p)
            self._ts_cursor["part"] = max(self._ts_cursor["part"], p.updated)
        if changed and sess is not None:
            sess.changed()
        return changed

    def _top_event(self, conn, schema: D.Schema) -> int:
        if not schema.has_events:
            return 0
        return conn.execute("SELECT max(rowid) FROM event").fetchone()[0] or 0

    def _refresh(self, conn: sqlite3.Connection, schema: D.Schema) -> set[str]:
        ids: set[str] = set()
        if schema.has_events:
            top = self._top_event(conn, schema)
            if top < self._event_cursor:  # the log was rewound: the database was rebuilt
                return self._load_all(conn, schema)
            if top > self._event_cursor:
                ids = {R.text(r[0]) for r in self._fetch(
                    conn, "SELECT DISTINCT aggregate_id FROM event WHERE rowid > ? AND rowid <= ?",
                    (self._event_cursor, top))}
                self._event_cursor = top
        else:
            for table, col in (("session", "id"), ("message", "session_id"), ("part", "session_id")):
                since = self._ts_cursor[table] - self.slack_ms
                for sid, latest in self._fetch(conn, f"SELECT {col}, max(time_updated) FROM {table} "
                                               f"WHERE time_updated >= ? GROUP BY {col}", (since,)):
                    ids.add(R.text(sid))
                    self._ts_cursor[table] = max(self._ts_cursor[table], R.as_int(latest))
        changed: set[str] = set()
        for sid in ids:
            if sid:
                changed |= self._refresh_session(conn, schema, sid)
        count, total = conn.execute("SELECT count(*), total(rowid) FROM session").fetchone()
        if (count, total) != (len(self._sessions), float(sum(s.row.rowid for s in self._sessions.values()))):
            present = {R.text(r[0]) for r in self._fetch(conn, "SELECT id FROM session")}
            for sid in set(self._sessions) - present:
                changed |= self._forget(sid)
            for sid in present - set(self._sessions):
                changed |= self._refresh_session(conn, schema, sid)
        return changed

    def _refresh_session(self, conn, schema: D.Schema, sid: str) -> set[str]:
        r = next(self._fetch(conn, schema.session_select() + " WHERE s.id = ?", (sid,)), None)
        if r is None:
            return self._forget(sid) if sid in self._sessions else set()
        row = session_row(r)
        sess = self._sessions.get(sid)
        if sess is None:
            sess = self._sessions[sid] = SessionRows(row)
            self._link(sess)
            self._read_rows(conn, sess, None)
            return self._affected(sess, linked=True, usage=True)
        version = sess.u_version
        changed = linked = False
        if sess.row != row:
            if sess.row.parent_id != row.parent_id:
                self._unlink(sess)
                sess.row = row
                self._link(sess)
                linked = True
            sess.row = row
            sess.changed()
            changed = True
        changed |= self._read_rows(conn, sess, max(0, sess.cursor - self.slack_ms))
        n_messages, n_parts = conn.execute(
            "SELECT (SELECT count(*) FROM message WHERE session_id = ?), (SELECT count(*) FROM part WHERE session_id = ?)",
            (sid, sid)).fetchone()
        if (n_messages, n_parts) != (len(sess.messages) + len(sess.bad), len(sess.parts) + len(sess.bad_parts)):
            # rows were deleted (a revert, a compaction): read this session's rows again
            sess.reset_rows()
            self._read_rows(conn, sess, None)
            sess.changed()
            changed = True
        return self._affected(sess, linked, sess.u_version != version) if changed or linked else set()

    def _affected(self, sess: SessionRows, linked: bool, usage: bool = False) -> set[str]:
        """The listed ids a change to ``sess`` shows in: itself, or its parent's sub-agent count,
        or (its usage changed) the cost of the session it is part of."""
        parent = sess.row.parent_id
        if not parent:
            return {sess.row.id}
        out = {parent} if linked and parent in self._sessions and not self._sessions[parent].row.parent_id else set()
        if usage:
            out |= self._root_of(parent)
        return out

    def _root_of(self, sid: str) -> set[str]:
        """The listed session that ``sid`` is part of (itself, or the root of its parents)."""
        seen = set()
        while sid not in seen:
            seen.add(sid)
            sess = self._sessions.get(sid)
            if sess is None:
                return set()
            if not sess.row.parent_id:
                return {sid}
            sid = sess.row.parent_id
        return set()  # a cycle of parents: no listed root

    def _link(self, sess: SessionRows) -> None:
        if sess.row.parent_id:
            self._children.setdefault(sess.row.parent_id, set()).add(sess.row.id)

    def _unlink(self, sess: SessionRows) -> None:
        kids = self._children.get(sess.row.parent_id or "")
        if kids is not None:
            kids.discard(sess.row.id)
            if not kids:
                del self._children[sess.row.parent_id]

    def _forget(self, sid: str) -> set[str]:
        sess = self._sessions.pop(sid, None)
        if sess is None:
            return set()
        self._unlink(sess)
        self._status.pop(sid, None)
        self._usage.pop(sid, None)
        return self._affected(sess, linked=True, usage=bool(sess.usage))

    def _forget_all(self) -> set[str]:
        gone = self.session_ids()
        self._sessions, self._children, self._status, self._usage = {}, {}, {}, {}
        self._file_id, self._loaded, self._event_cursor = None, False, 0
        self._ts_cursor = {"session": 0, "message": 0, "part": 0}
        self._retry_due, self._retry_tries = None, 0
        return gone

    # ------------------------------------------------------------ status
    def _process_dirs(self) -> frozenset[str]:
        now = self.monotonic()
        if self._proc_at is None or now - self._proc_at >= self.proc_scan_interval_s:
            procs = agent_processes(lambda argv: program_is(argv, "opencode"), self.proc_root)
            self._proc_dirs = frozenset(p.cwd for p in procs)
            self._proc_at = now
        return self._proc_dirs

    def _status_of(self, sess: SessionRows) -> str:
        directory = sess.row.directory or sess.row.worktree
        if directory and directory in self._process_dirs():
            return "busy" if sess.in_turn() else "idle"
        return "ended"

    def check_liveness(self) -> set[str]:
        if not self._sessions:
            # Nothing to tell alive from ended (OpenCode not installed, or an empty database):
            # no /proc scan. The first session built scans afresh.
            self._proc_at, self._proc_dirs = None, frozenset()
            return set()
        before, scanned = self._proc_dirs, self._proc_at
        after = self._process_dirs()
        if after == before and scanned is not None:
            return set()
        changed = set()
        for sid in self.session_ids():
            status = self._status_of(self._sessions[sid])
            known = self._status.get(sid)
            self._status[sid] = status
            if known is not None and known != status:  # a session never built has nothing to update
                changed.add(sid)
        return changed

    # ------------------------------------------------------------ answering
    def session_ids(self) -> set[str]:
        return {sid for sid, s in self._sessions.items() if not s.row.parent_id}

    def session(self, session_id: str) -> dict | None:
        sess = self._sessions.get(session_id)
        if sess is None or sess.row.parent_id:
            return None
        status = self._status[session_id] = self._status_of(sess)
        return sess.build(status, len(self._children.get(session_id, ())), self.usage(session_id))

    def usage(self, session_id: str) -> UsageFacts | None:
        """The session's usage (SPEC 10): its messages' and its sub-agent sessions' (theirs too, and
        so on). Combined again only when one of them changed."""
        sess = self._sessions.get(session_id)
        if sess is None or sess.row.parent_id:
            self._usage.pop(session_id, None)
            return None
        tree = [sess]
        seen = {session_id}
        for s in tree:
            for child in sorted(self._children.get(s.row.id, ())):
                if child not in seen and child in self._sessions:
                    seen.add(child)
                    tree.append(self._sessions[child])
        if len(tree) == 1:
            return sess.usage
        mark = tuple((s.row.id, s.u_version) for s in tree)
        cached = self._usage.get(session_id)
        if cached is not None and cached[0] == mark:
            return cached[1]
        facts = UsageFacts.combined(s.usage for s in tree)
        self._usage[session_id] = (mark, facts)
        return facts

    def conversation(self, session_id: str) -> OpenCodeConversation | None:
        sess = self._sessions.get(session_id)
        if sess is None or sess.row.parent_id:
            return None
        return OpenCodeConversation(self.db_path, session_id, self.busy_timeout_s)
