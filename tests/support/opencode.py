"""Writing an OpenCode database the way OpenCode 1.18.33 does, for tests.

The schema is the real one, taken from the sample database the real CLI wrote
(tests/fixtures/opencode-1.18.33). Rows are written as OpenCode writes them:
the database in WAL mode with OpenCode's pragmas, each change one
transaction that appends its ``event`` row (with ``event_sequence``) and
writes the projected ``session`` / ``message`` / ``part`` row, JSON as in
the sample (message-v2 without ids in ``data``, the whole object in the event).

Used in-process (:class:`OpenCodeDB`) or as a separate writer process
(``python -m tests.support.opencode DB``; :class:`WriterProcess`), which reads
one JSON command a line and answers one JSON line.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import sqlite3
import string
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DB = REPO / "tests/fixtures/opencode-1.18.33/home/.local/share/opencode/opencode.db"
VERSION = "1.18.33"
RUN_PERMISSION = ('[{"permission":"question","pattern":"*","action":"deny"},'
                  '{"permission":"plan_enter","pattern":"*","action":"deny"},'
                  '{"permission":"plan_exit","pattern":"*","action":"deny"}]')
_counter = itertools.count(1)


def schema_sql(source: Path = FIXTURE_DB) -> list[str]:
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                            "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def new_id(prefix: str) -> str:
    n = next(_counter)
    return f"{prefix}_{n:012x}" + "".join(random.choices(string.ascii_letters + string.digits, k=14))


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class OpenCodeDB:
    def __init__(self, path, journal: str = "wal", clock_ms=None):
        self.path = str(path)
        self.now = clock_ms or (lambda: 1796105819592 + next(_counter) * 7)
        fresh = not os.path.exists(self.path)
        self._depth = 0
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        self.conn.execute(f"PRAGMA journal_mode = {journal}")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if fresh:
            with self.tx():
                for sql in schema_sql():
                    self.conn.execute(sql)
        self.sessions: dict[str, dict] = {}

    def close(self) -> None:
        self.conn.close()

    def tx(self):
        """One transaction (re-entrant: writes inside a ``with db.tx()`` join it)."""
        db = self

        class _Tx:
            def __enter__(self):
                db._depth += 1
                if db._depth == 1:
                    db.conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, *_):
                db._depth -= 1
                if db._depth == 0:
                    db.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        return _Tx()

    # ------------------------------------------------------------ events
    def _event(self, sid: str, kind: str, data: dict) -> None:
        row = self.conn.execute("SELECT seq FROM event_sequence WHERE aggregate_id = ?", (sid,)).fetchone()
        seq = 0 if row is None else row[0] + 1
        self.conn.execute("INSERT INTO event_sequence (aggregate_id, seq, owner_id) VALUES (?, ?, NULL) "
                          "ON CONFLICT(aggregate_id) DO UPDATE SET seq = excluded.seq", (sid, seq))
        self.conn.execute("INSERT INTO event (id, aggregate_id, seq, type, data) VALUES (?, ?, ?, ?, ?)",
                          (new_id("evt"), sid, seq, kind, _dumps(data)))

    def _session_info(self, sid: str) -> dict:
        r = self.conn.execute("SELECT id, slug, project_id, directory, path, title, version, cost, tokens_input, "
                              "tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write, agent, model, "
                              "time_created, time_updated, parent_id FROM session WHERE id = ?", (sid,)).fetchone()
        info = {"id": r[0], "slug": r[1], "projectID": r[2], "directory": r[3], "path": r[4], "cost": r[7],
                "tokens": {"input": r[8], "output": r[9], "reasoning": r[10], "cache": {"read": r[11], "write": r[12]}},
                "title": r[5], "agent": r[13], "model": json.loads(r[14]) if r[14] else None, "version": r[6],
                "time": {"created": r[15], "updated": r[16]}}
        if r[17]:
            info["parentID"] = r[17]
        return info

    # ------------------------------------------------------------ writes
    def project(self, worktree: str) -> str:
        pid = hashlib.sha1(worktree.encode()).hexdigest()
        t = self.now()
        self.conn.execute("INSERT OR IGNORE INTO project (id, worktree, vcs, time_created, time_updated, sandboxes) "
                          "VALUES (?, ?, 'git', ?, ?, '[]')", (pid, worktree, t, t))
        return pid

    def session(self, directory: str, title: str | None = None, parent_id: str | None = None, run: bool = True,
                sid: str | None = None) -> str:
        sid = sid or new_id("ses")
        t = self.now()
        title = title or "New session - 2026-12-01T06:16:59.591Z"
        with self.tx():
            pid = self.project(directory)
            self.conn.execute(
                "INSERT INTO session (id, project_id, parent_id, slug, directory, path, title, version, "
                "summary_additions, summary_deletions, summary_files, permission, agent, model, time_created, "
                "time_updated) VALUES (?, ?, ?, ?, ?, '', ?, ?, 0, 0, 0, ?, 'build', ?, ?, ?)",
                (sid, pid, parent_id, "eager-cactus", directory, title, VERSION, RUN_PERMISSION if run else None,
                 '{"id":"mock-model","providerID":"mock","variant":"default"}', t, t))
            self._event(sid, "session.created.1", {"sessionID": sid, "info": self._session_info(sid)})
        return sid

    def _touch_session(self, sid: str, **cols) -> None:
        cols["time_updated"] = self.now()
        sets = ", ".join(f"{k} = ?" for k in cols)
        self.conn.execute(f"UPDATE session SET {sets} WHERE id = ?", (*cols.values(), sid))
        self._event(sid, "session.updated.1", {"sessionID": sid, "info": self._session_info(sid)})

    def set_title(self, sid: str, title: str) -> None:
        with self.tx():
            self._touch_session(sid, title=title)

    def archive(self, sid: str) -> None:
        with self.tx():
            self._touch_session(sid, time_archived=self.now())

    def _message(self, sid: str, mid: str, data: dict, created: int | None = None) -> None:
        t = self.now()
        exists = self.conn.execute("SELECT time_created FROM message WHERE id = ?", (mid,)).fetchone()
        created = exists[0] if exists else (created or t)
        self.conn.execute("INSERT INTO message (id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?) "
                          "ON CONFLICT(id) DO UPDATE SET time_updated = excluded.time_updated, data = excluded.data",
                          (mid, sid, created, t, _dumps(data)))
        self._event(sid, "message.updated.1", {"sessionID": sid, "info": {"id": mid, "sessionID": sid, **data}})

    def _part(self, sid: str, mid: str, pid: str, data: dict) -> None:
        t = self.now()
        self.conn.execute("INSERT INTO part (id, message_id, session_id, time_created, time_updated, data) "
                          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET time_updated = excluded.time_updated, "
                          "data = excluded.data", (pid, mid, sid, t, t, _dumps(data)))
        self._event(sid, "message.part.updated.1",
                    {"sessionID": sid, "part": {"id": pid, "sessionID": sid, "messageID": mid, **data}, "time": t})

    def user(self, sid: str, text: str, synthetic: bool = False) -> str:
        mid = new_id("msg")
        with self.tx():
            t = self.now()
            self._message(sid, mid, {"role": "user", "time": {"created": t}, "agent": "build",
                                     "model": {"providerID": "mock", "modelID": "mock-model"}}, t)
            part = {"type": "text", "text": text}
            if synthetic:
                part["synthetic"] = True
            self._part(sid, mid, new_id("prt"), part)
            self._touch_session(sid)
        return mid

    def assistant_start(self, sid: str, parent: str) -> str:
        """An assistant message as OpenCode writes it when a step starts: no time.completed, tokens 0."""
        mid = new_id("msg")
        with self.tx():
            t = self.now()
            self._message(sid, mid, self._assistant_data(parent, t, None, (0, 0, 0, 0), 0), t)
            self._part(sid, mid, new_id("prt"), {"snapshot": "1e88adb4", "type": "step-start"})
        return mid

    @staticmethod
    def _assistant_data(parent, created, completed, tokens, cost, model: str = "mock-model",
                        provider: str = "mock", reasoning: int = 0) -> dict:
        """``tokens``: (input, output, cache read, cache write), as OpenCode keeps them apart: input
        without the cache, output without ``reasoning``."""
        d = {"parentID": parent, "role": "assistant", "mode": "build", "agent": "build",
             "path": {"cwd": "/x", "root": "/x"}, "cost": cost,
             "tokens": {"total": sum(tokens) + reasoning, "input": tokens[0], "output": tokens[1],
                        "reasoning": reasoning, "cache": {"write": tokens[3], "read": tokens[2]}},
             "modelID": model, "providerID": provider, "time": {"created": created}}
        if completed is not None:
            d["time"]["completed"] = completed
            d["finish"] = "stop"
        return d

    def assistant_finish(self, sid: str, mid: str, text: str, tokens=(100, 10, 50, 0), cost: float = 0.001,
                         tool: tuple[str, dict, str] | None = None, model: str = "mock-model",
                         provider: str = "mock", reasoning: int = 0) -> None:
        with self.tx():
            parent, created = self._parent_of(mid)
            self._part(sid, mid, new_id("prt"), {"type": "text", "text": text, "time": {"start": created}})
            if tool is not None:
                name, inp, out = tool
                self._part(sid, mid, new_id("prt"), {"type": "tool", "tool": name, "callID": new_id("call"),
                                                     "state": {"status": "completed", "input": inp, "output": out,
                                                               "title": name, "time": {"start": created}}})
            self._message(sid, mid, self._assistant_data(parent, created, self.now(), tokens, cost, model,
                                                         provider, reasoning))
            row = self.conn.execute("SELECT cost, tokens_input, tokens_output, tokens_cache_read FROM session "
                                    "WHERE id = ?", (sid,)).fetchone()
            self._touch_session(sid, cost=row[0] + cost, tokens_input=row[1] + tokens[0],
                                tokens_output=row[2] + tokens[1], tokens_cache_read=row[3] + tokens[2])

    def _parent_of(self, mid: str) -> tuple[str, int]:
        data, created = self.conn.execute("SELECT data, time_created FROM message WHERE id = ?", (mid,)).fetchone()
        return json.loads(data).get("parentID"), created

    def exchange(self, sid: str, prompt: str, reply: str, **kw) -> tuple[str, str]:
        u = self.user(sid, prompt)
        a = self.assistant_start(sid, u)
        self.assistant_finish(sid, a, reply, **kw)
        return u, a

    def delete_session(self, sid: str) -> None:
        with self.tx():
            self.conn.execute("DELETE FROM session WHERE id = ?", (sid,))
            self.conn.execute("DELETE FROM event_sequence WHERE aggregate_id = ?", (sid,))

    def execute(self, sql: str, args=()) -> list:
        return [list(r) for r in self.conn.execute(sql, args).fetchall()]


class WriterProcess:
    """An :class:`OpenCodeDB` in a separate process, driven over a pipe."""

    def __init__(self, path, journal: str = "wal"):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.opencode", str(path), journal],
                                     cwd=str(REPO), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.call("ping") == "pong"

    def call(self, op: str, *args, **kw):
        self.proc.stdin.write(json.dumps({"op": op, "args": args, "kw": kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("writer process died")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def __getattr__(self, op):
        return lambda *args, **kw: self.call(op, *args, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _serve(path: str, journal: str) -> None:
    db = OpenCodeDB(path, journal)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "ping":
                result = "pong"
            elif op == "begin_exclusive":  # hold the write lock until "commit"
                db.conn.execute("BEGIN EXCLUSIVE")
                db._depth = 1  # later writes join this transaction
                if cmd["args"]:
                    db.conn.execute(*cmd["args"])
                result = None
            elif op == "commit":
                db._depth = 0
                db.conn.execute("COMMIT")
                result = None
            else:
                result = getattr(db, op)(*cmd["args"], **cmd["kw"])
            out = {"result": result}
        except Exception as exc:  # reported to the test
            out = {"error": repr(exc)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "wal")
