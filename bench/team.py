#!/usr/bin/env python3
"""Team mode at scale (issue 10): simulated agents write into one Redis, web workers fan out to
thousands of SSE clients, and one worker is killed while its clients are connected.

    .venv/bin/python bench/team.py [--quick] [--agents 50] [--rate 10] [--seconds 20]
                                   [--clients 2000] [--victims 1000] [--workers 4] [--sessions 20]
                                   [--kill-at 8] [--kill-signal KILL] [--no-pin] [--profile]
                                   [--tag NAME] [--web-repo PATH] [--self-test-drop N]

About 1 minute (``--quick``: about 15 s). The full load is 2,000 clients x 500 session
versions/s x 1.5 KB, about 1.5 GB/s of SSE: on 2 cores the clients alone need a core, so the run
also says what else ran on the machine (``others``: its busy time minus this run's processes).

What runs (every part a real process on this machine):

- Debian's ``redis-server`` on a free loopback port, no persistence, in a temporary directory.
- ``python -m helm_monitor web --redis-url URL --workers 4 --max-clients 1000 --host-name web``:
  gunicorn with 4 gevent workers sharing one listening socket.
- The agents (one child process, a thread per host): each host writes the wire format of
  ``helm_monitor/team/keys.py`` as ``helm_monitor/team/publisher.py`` does: a resync at start
  (``MULTI; DEL hash; HSET hash ...; XADD resync; EXEC``), then one
  ``MULTI; HSET hm:h:H:s key json; XADD hm:h:H:ev MAXLEN ~ 1000 * t updated k key d json b boot v 1; EXEC``
  per change at ``--rate`` changes/s for ``--seconds``, a heartbeat after each quiet heartbeat
  period. A change updates the host's sessions in turn (each session every sessions/rate
  seconds); one in 40 replaces the session with a new one (``deleted`` + ``created``). A
  session is a full SPEC 5 object of about 1.5 KB; its ``messageCount`` counts its versions and
  its ``lastPrompt`` ends with the ``time.monotonic()`` of the write (``[w=...]``), taken just
  before the transaction is sent.
- The SSE clients, held by child processes (``bench/sseload.py``'s epoll loop, arrival stamped
  right after recv). Each keeps its sessions by ``key`` as the page does (init / refresh replace
  them, created / updated / deleted change them); an event's JSON is parsed once per process
  (every client of a worker gets the same frame), so a thousand clients cost a thousand dict
  updates, not a thousand parses (the cache is keyed by the message's bytes: an id does not name
  one message). A client the server closed reconnects at once with ``Last-Event-ID``, keeping its
  sessions, as an EventSource does (without its 3 s retry wait: the worst case, every client at
  once).

Which worker a client lands on is the kernel's choice (one shared listening socket); it is read
from /proc (``common.socket_owners``: which worker holds the server end of the client's port).
To put ``--victims`` clients on one worker W, the others are stopped (SIGSTOP) while those
connect, and W while the rest connect, 100 clients at a time (a worker stopped for long times
out its engine read at 15 s and is replaced by gunicorn at 30 s); then all run on
(``--no-pin``: no pinning; the worker holding most clients is the one killed).

Measured:

- every client's final state against the truth (every host's hash, HGETALL), after the agents
  stopped: mismatches (target 0);
- latency from an agent's write to each client's receipt, over every (client, session version)
  pair received live (target p99 <= 250 ms); versions a resumed client gets in its replay are
  counted apart (they were written while it was away);
- Redis CPU over the write phase (/proc/<pid>/stat utime + stime, % of one core), and the
  CPU of the workers, the agents and the clients (what the 2 cores were spent on);
- memory per SSE connection: the workers' RSS with every client connected minus before, over
  the clients (target <= 64 KB);
- the resume: W killed ``--kill-at`` s into the writes; time until every one of its clients
  has its first event on a new connection (and the phases: kill -> EOF -> reconnect -> response
  head -> first event), how many got a replay and how many ``init`` (per worker: the survivors
  and the one gunicorn started instead), and whether anything was lost, two ways:
  * versions: for each resumed client, the first version of each session it is sent after
    resuming must follow the one it had (``messageCount`` one more). A worker may coalesce
    (keep the newest version within one read of the engine), so a skipped version counts as
    lost only if it was written (each session is written every sessions/rate s) well before the
    newest version of an earlier batch the client got: its entry preceded that batch. A control
    sample of clients that were not cut gets the same check;
  * events: every event the client's new worker published after the client's cut, as the
    worker's other checked clients received it, must have reached the client (exact whatever
    the batching; blind to an event no client of that worker got, which the first check sees);
  and its final state must equal the truth (target: all replay, 0 lost).
  ``--self-test-drop N`` makes every resumed client ignore one event, to show both checks fail.

Writes ``bench/results/team.json`` (``team-quick.json`` for ``--quick``, ``team-TAG.json`` with
``--tag``) and prints a table. ``--web-repo`` runs the web tier from another checkout (a change
measured against the same load); ``--profile`` adds py-spy's view of a surviving worker.
"""

from __future__ import annotations

import argparse
import array
import collections
import datetime as dt
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from common import (REPO, WORK, child_pids, tree_cpu, free_port, ms, pct, proc_cpu, proc_rss, raise_nofile,
                    socket_owners, system_cpu, system_cpu_pct, table, write_results)
from sseload import STATE_EVENTS, Conn, LoadClient, canonical, loads, state_diff

try:
    sys.path.insert(0, str(REPO))
    from helm_monitor.team import keys
    from tests.support.redis import RedisServer  # the suite's: loopback, free port, no persistence
except ImportError as exc:  # pragma: no cover
    raise SystemExit(f"helm_monitor.team.keys is needed: {exc}")

TARGET_P99_MS = 250
TARGET_KB_PER_CONN = 64
STREAM_PATH = "/api/sessions/stream"
# One change in this many replaces the session (deleted + created) instead of updating it.
REPLACE_EVERY = 40


# ====================================================================== sessions

_PROMPTS = [
    "Refactor the authentication middleware so that expired tokens are rejected before the rate limiter runs, "
    "and add tests for the edge cases around clock skew between the gateway and the identity provider please",
    "The nightly build fails on the ARM runners with a linker error in the image decoder; find out which commit "
    "introduced it, bisect if needed, and propose the smallest fix that keeps the SIMD path enabled on x86 too",
    "Write a migration that splits the orders table into orders and order_lines without downtime: dual writes "
    "first, a backfill in batches of ten thousand rows, then switch the reads and drop the old columns after",
    "Profile the search endpoint under the recorded production traffic and tell me where the p99 goes; I suspect "
    "the synonym expansion but it could be the connection pool being too small for the burst at the hour mark",
]
_TITLES = [
    "Reject expired tokens before rate limiting (gateway middleware, clock skew tests)",
    "Bisect the ARM linker failure in the image decoder's SIMD path",
    "Zero-downtime split of orders into orders and order_lines with dual writes and backfill",
    "Find the p99 of the search endpoint: synonym expansion or the connection pool?",
]
_MODELS = ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_session(host: str, rng: random.Random) -> dict:
    """A Claude Code session of a busy host, as SPEC 5 (v2) describes it, about 1.5 KB of JSON."""
    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    project = rng.choice(["payments-gateway", "image-pipeline", "orders-service", "search-api", "infra-terraform"])
    path = f"/home/dev/src/{project}"
    i = rng.randrange(len(_PROMPTS))
    created = time.time() - rng.uniform(60, 7200)
    return {
        "id": sid, "key": keys.session_key(host, "claude-code", sid), "host": host, "source": "claude-code",
        "projectPath": path, "projectDir": path.replace("/", "-"), "title": _TITLES[i],
        "firstPrompt": _PROMPTS[i][:200], "lastPrompt": None, "messageCount": 0,
        "createdAt": _iso(created), "updatedAt": _iso(created), "gitBranch": f"feature/{project}-{rng.randrange(100, 999)}",
        "model": rng.choice(_MODELS),
        "tokens": {"input": rng.randrange(10_000, 900_000), "output": rng.randrange(1_000, 90_000),
                   "cacheRead": rng.randrange(100_000, 9_000_000), "cacheCreation": rng.randrange(10_000, 900_000)},
        "status": "busy", "pid": rng.randrange(2_000, 4_000_000), "subagentCount": rng.randrange(0, 4),
        "sizeBytes": rng.randrange(50_000, 20_000_000), "version": "2.1.330",
        "cost": {"usd": round(rng.uniform(0.1, 40.0), 4), "basis": "list-price"}, "stale": False,
    }


def touch(session: dict, rng: random.Random, t_write: float) -> dict:
    """The session's next version: one more message, its counter and the write time in it."""
    s = dict(session)
    n = s["messageCount"] = session["messageCount"] + 1
    s["updatedAt"] = _iso(time.time())
    prompt = rng.choice(_PROMPTS)
    s["lastPrompt"] = f"{prompt[:150]} (turn {n}) [w={t_write:.6f}]"
    tok = session["tokens"]
    s["tokens"] = {"input": tok["input"] + rng.randrange(100, 5000), "output": tok["output"] + rng.randrange(10, 900),
                   "cacheRead": tok["cacheRead"] + rng.randrange(1000, 50_000), "cacheCreation": tok["cacheCreation"]}
    s["sizeBytes"] = session["sizeBytes"] + rng.randrange(500, 9000)
    s["status"] = "busy" if n % 3 else "waiting"
    s["cost"] = {"usd": round(session["cost"]["usd"] + rng.uniform(0.001, 0.05), 4), "basis": "list-price"}
    return s


def write_time(session: dict) -> float | None:
    text = session.get("lastPrompt") or ""
    i = text.rfind("[w=")
    if i < 0:
        return None
    try:
        return float(text[i + 3:-1])
    except ValueError:
        return None


# ====================================================================== agents (child process)

def _dumps(obj) -> bytes:
    import orjson
    return orjson.dumps(obj)


class SimHost(threading.Thread):
    """One host's agent: its own connection, the publisher's transactions (team/publisher.py)."""

    def __init__(self, url: str, host: str, sessions: int, seed: int, heartbeat_s: float):
        super().__init__(daemon=True, name=f"agent-{host}")
        import redis
        self.r = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                      single_connection_client=True, client_name=f"helm-agent-{host}")
        self.host, self.rng = host, random.Random(seed)
        self.boot = uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]
        self.s_key, self.e_key = keys.snapshot_key(host), keys.stream_key(host)
        self.slots = [touch(new_session(host, self.rng), self.rng, time.monotonic()) for _ in range(sessions)]
        self.heartbeat_s = heartbeat_s
        self.last_write = 0.0
        self.go_at = None
        self.plan: tuple[float, float, int] | None = None  # (t0, rate, changes)
        self.wake = threading.Event()
        self.stopping = False
        self.lags: list[float] = []
        self.tx_s: list[float] = []
        self.changes = self.heartbeats = self.errors = 0
        self.done = threading.Event()

    def _entry(self, pipe, wire_type: str, key: str | None = None, data: bytes | None = None) -> None:
        fields = {"t": wire_type}
        if key is not None:
            fields["k"] = key
            fields["d"] = data
        fields["b"] = self.boot
        fields["v"] = keys.WIRE_VERSION
        pipe.xadd(self.e_key, fields, maxlen=keys.STREAM_MAXLEN, approximate=True)

    def resync(self) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.s_key)
        pipe.hset(self.s_key, mapping={s["key"]: _dumps(s) for s in self.slots})
        self._entry(pipe, "resync")
        pipe.execute()
        self.last_write = time.monotonic()

    def change(self, i: int) -> None:
        slot = i % len(self.slots)
        old = self.slots[slot]
        pipe = self.r.pipeline(transaction=True)
        t_write = time.monotonic()
        if i % REPLACE_EVERY == REPLACE_EVERY - 1:
            new = touch(new_session(self.host, self.rng), self.rng, t_write)
            gone = {k: old.get(k) for k in ("key", "id", "host", "source", "projectPath", "projectDir")}
            data = _dumps(new)
            pipe.hdel(self.s_key, old["key"])
            pipe.delete(keys.transcript_key(self.host, old["key"]))
            pipe.hset(self.s_key, mapping={new["key"]: data})
            self._entry(pipe, "deleted", old["key"], _dumps(gone))
            self._entry(pipe, "created", new["key"], data)
        else:
            new = touch(old, self.rng, t_write)
            data = _dumps(new)
            pipe.hset(self.s_key, mapping={new["key"]: data})
            self._entry(pipe, "updated", new["key"], data)
        pipe.execute()
        self.tx_s.append(time.monotonic() - t_write)
        self.slots[slot] = new
        self.changes += 1
        self.last_write = time.monotonic()

    def heartbeat(self) -> None:
        self._entry(self.r, "hb")
        self.heartbeats += 1
        self.last_write = time.monotonic()

    def run(self) -> None:
        i = 0
        while not self.stopping:
            now = time.monotonic()
            due = self.last_write + self.heartbeat_s
            if self.plan is not None:
                t0, rate, n = self.plan
                if i >= n:
                    self.plan = None
                    self.done.set()
                    continue
                at = t0 + i / rate
                if at <= now:
                    self.lags.append(now - at)
                    try:
                        self.change(i)
                    except Exception:
                        self.errors += 1
                    i += 1
                    continue
                due = min(due, at)
            if due <= now:
                try:
                    self.heartbeat()
                except Exception:
                    self.errors += 1
                continue
            self.wake.wait(min(due - now, 0.5))
            self.wake.clear()


def agents_child(a) -> int:
    """``team.py --agents-child``: the simulated hosts; line commands on stdin, JSON lines on stdout."""
    hosts = [SimHost(a.url, f"sim{i:03d}", a.sessions, a.seed * 1000 + i, a.heartbeat_s) for i in range(a.agents)]
    t = time.monotonic()
    for h in hosts:
        h.resync()
    resync_s = time.monotonic() - t
    for h in hosts:
        h.start()
    out = sys.stdout

    def say(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say({"ready": True, "hosts": len(hosts), "sessions": sum(len(h.slots) for h in hosts), "resync_s": resync_s})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "go":
            t0, rate, seconds = float(cmd[1]), float(cmd[2]), float(cmd[3])
            n = int(rate * seconds)
            rng = random.Random(a.seed)
            for h in hosts:
                h.plan = (t0 + rng.random() / rate, rate, n)  # each host its own phase
                h.wake.set()
            for h in hosts:
                h.done.wait(seconds + 60)
            lags = [x for h in hosts for x in h.lags]
            txs = [x for h in hosts for x in h.tx_s]
            say({"done": True, "changes": sum(h.changes for h in hosts), "errors": sum(h.errors for h in hosts),
                 "heartbeats": sum(h.heartbeats for h in hosts),
                 "last_write": max(h.last_write for h in hosts),
                 "lag_ms": {"p50": ms(pct(lags, 50)), "p99": ms(pct(lags, 99)), "max": ms(max(lags, default=0))},
                 "tx_ms": {"p50": ms(pct(txs, 50)), "p99": ms(pct(txs, 99)), "max": ms(max(txs, default=0))}})
        elif cmd[0] == "quit":
            break
    for h in hosts:
        h.stopping = True
        h.wake.set()
    for h in hosts:
        h.join(2)
        h.r.close()
    say({"bye": True})
    return 0


# ====================================================================== SSE clients (child process)

_KINDS = {k.encode(): k for k in STATE_EVENTS + ("keepalive", "host-status", "feed-status")}


class Frame:
    """One distinct event as this process received it; every client of a worker gets the same bytes."""
    __slots__ = ("kind", "state", "gone", "counters", "writes", "w_min", "w_max", "arrivals", "late", "pos", "block")
    # arrivals: {client group: receipt times}, by clients that were connected when it was written

    def __init__(self, kind: str):
        self.kind = kind
        self.state: dict[str, bytes] = {}  # key -> canonical JSON (created / updated / init / refresh)
        self.gone: list[str] = []  # keys (deleted)
        self.counters: dict[str, tuple] = {}  # key -> (messageCount, write time)
        self.writes = None  # array of the versions' write times (created / updated)
        self.w_min = self.w_max = 0.0
        self.pos = None  # its SSE id's position (ms, seq)
        self.arrivals: dict[str, array.array] = {}
        self.late = array.array("d")  # receipts by clients that connected after (a resume's replay)
        self.block = b""  # the message as received


class TeamConn(Conn):
    __slots__ = ("group", "t_gone", "at_gone", "window", "window_until", "attempt", "replaced", "control", "parts",
                 "batch_id", "batch_w", "before_w", "cut_pos", "win_from", "last_cut", "updates")

    def __init__(self, idx: int, keep: bool):
        super().__init__(idx, keep)
        self.group = ""
        self.t_gone = None  # when the connection this one resumes was cut (the first of a chain)
        self.at_gone = None  # the sessions it had then (key -> canonical JSON)
        self.window = None  # frames received until window_until (the version check)
        self.window_until = 0.0
        self.attempt = 0
        self.replaced = False
        self.control = False
        self.parts: list[bytes] = []  # the body read since the last complete message
        # Updates received and not yet applied to ``sessions`` (see held()): applying every frame's
        # sessions to every client as it arrives cost a sixth of a client process's CPU, on the
        # cores the server under test needs; the checks read the state through held().
        self.updates: list[dict] = []
        # The version check's clock: the newest write of the batch being received (one SSE id: a
        # worker's read of the engine, published as up to three frames) and of every earlier one.
        self.batch_id = None
        self.batch_w = self.before_w = 0.0
        self.cut_pos = None  # the position of the last event it had when it was cut (or marked)
        # A client cut again keeps one window (the version check runs from its first cut); the frame
        # check compares this connection's part, window[win_from:], from this connection's cut.
        self.win_from = 0
        self.last_cut = None

    def held(self) -> dict | None:
        """The sessions this client holds: what it was sent, in order."""
        if self.updates:
            if self.sessions is None:
                self.sessions = {}
            update = self.sessions.update
            for u in self.updates:
                update(u)
            self.updates.clear()
        return self.sessions


# Write times against entry order: an agent's transaction takes milliseconds (tens at worst), so a
# version written this much before another reached the engine before it.
LOSS_SLACK_S = 0.5


class TeamLoad(LoadClient):
    """sseload's client, tracking every client's sessions by ``key`` at a thousand clients per
    process: a frame is parsed once (``frames``), a client's share is a dict update. A client the
    server closed comes back at once with ``Last-Event-ID`` (a refused one after 0.5 s)."""

    def __init__(self, port: int, window_s: float, period_s: float = 2.0):
        super().__init__(port=port, path=STREAM_PATH, track_state=True, state_key="key")
        self.conn_class = TeamConn
        self.window_s = window_s
        self.period_s = period_s  # how often the agents write each session
        self.frames: dict[bytes, Frame] = {}
        self.by_sig: dict[tuple, Frame] = {}  # (id, length, last bytes) -> the frame last received so
        self.versions: dict[bytes, tuple[bytes, int | None]] = {}  # canonical JSON -> (itself, messageCount)
        self.closed_recent: list[TeamConn] = []
        self.delayed: list[tuple[float, TeamConn]] = []
        self.refused = collections.Counter()
        self.stopping = False
        self.parse_errors = 0
        self.drop_nth = 0  # --self-test-drop N: a resumed client ignores its N-th session-updated

    # -- framing ---------------------------------------------------------------------------
    def _dispatch(self, c: TeamConn, block: bytes, t: float):
        pos, eid = 0, None
        if block.startswith(b"id: "):
            j = block.find(b"\n")
            if j < 0:
                return self._odd(c, block, t)
            eid, pos = block[4:j], j + 1
        etype = b"message"
        if block.startswith(b"event: ", pos):
            j = block.find(b"\n", pos)
            if j < 0:
                return self._odd(c, block, t)
            etype, pos = block[pos + 7:j], j + 1
        if not block.startswith(b"data: ", pos):
            return self._odd(c, block, t)  # retry:, comments
        kind = _KINDS.get(etype) or etype.decode("utf-8", "replace")
        self.total_events += 1
        c.counts[kind] = c.counts.get(kind, 0) + 1
        if eid is not None:
            c.last_id = eid.decode()
        if kind not in STATE_EVENTS:
            return
        if c.first_event is None:
            c.first_event, c.t_first = kind, t
            if c.window is not None and not c.window_until:  # a resumed client's check runs from here
                c.window_until = t + self.window_s
        start = pos + 6
        n = len(block) - start
        # Keyed by the message itself: exact. (An id does not name one message: two hosts' entries
        # can share an id, so replayed one-entry events of equal length share id, type and size;
        # and two workers batch differently under one id.) Found by its id, length and last bytes,
        # then compared whole (memcmp: 1 us for 37 KB, where hashing it costs 9 us a receipt); by
        # the whole message where that finds another.
        sig = (eid, n, block[-48:])
        rec = self.by_sig.get(sig)
        if rec is None or rec.block != block:
            rec = self.frames.get(block)
            if rec is None:
                rec = self.frames[block] = self._parse(kind, block[start:])
                rec.block = block
                parsed = keys.parse_sse_id(eid.decode()) if eid else None
                rec.pos = parsed[1] if parsed else None
            self.by_sig[sig] = rec
        if self.drop_nth and c.resumed_from is not None and kind == "session-updated" and rec.w_min > c.t_connect:
            c.counts["_updates"] = c.counts.get("_updates", 0) + 1
            if c.counts["_updates"] == self.drop_nth:  # --self-test-drop: the version check must see this
                return
        if kind == "init" or kind == "refresh":
            c.updates.clear()
            c.sessions = dict(rec.state)
            if kind == "init" and c.t_init is None:
                c.t_init, c.init_len = t, n
                with self.cond:
                    self.cond.notify_all()
        elif kind == "session-deleted":
            if c.held() is None:
                c.sessions = {}
            for k in rec.gone:
                c.sessions.pop(k, None)
        else:
            if c.sessions is None:
                c.sessions = {}
            c.updates.append(rec.state)
            if rec.writes is not None:
                if eid != c.batch_id:
                    c.before_w = max(c.before_w, c.batch_w)
                    c.batch_id, c.batch_w = eid, rec.w_max
                elif rec.w_max > c.batch_w:
                    c.batch_w = rec.w_max
                if rec.w_min >= c.t_connect:
                    got = rec.arrivals.get(c.group)
                    if got is None:
                        got = rec.arrivals[c.group] = array.array("d")
                    got.append(t)
                else:
                    rec.late.append(t)
        if c.window is not None and t < c.window_until:
            c.window.append((rec, c.before_w))

    def _odd(self, c: TeamConn, block: bytes, t: float):
        """A message of another shape: sseload's general parser, on the state as it is."""
        c.held()
        return super()._dispatch(c, block, t)

    def _parse(self, kind: str, data: bytes) -> Frame:
        rec = Frame(kind)
        try:
            sessions = loads(data)["sessions"]
        except (ValueError, KeyError, TypeError):
            self.parse_errors += 1
            return rec
        if kind == "session-deleted":
            rec.gone = [s.get("key") for s in sessions]
            return rec
        versions = self.versions
        for s in sessions:
            cb = canonical(s)
            got = versions.get(cb)
            if got is None:
                got = versions[cb] = (cb, s.get("messageCount"))
            rec.state[s.get("key")] = got[0]
            rec.counters[s.get("key")] = (got[1], write_time(s))
        if kind != "init" and kind != "refresh":
            writes = [w for w in map(write_time, sessions) if w is not None]
            if writes:
                rec.writes = array.array("d", writes)
                rec.w_min, rec.w_max = min(writes), max(writes)
        return rec

    def _feed(self, c: TeamConn, data: bytes, t: float):
        """sseload's framing in linear time: a message's pieces are joined once, and only new
        bytes are searched (a 1.5 MB init comes in a hundred reads; joining and searching the
        whole body at each, as the general parser does, costs tens of MB per init)."""
        if c.state == "head":
            c.raw += data
            i = c.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            head, data = c.raw[:i].decode("latin-1"), c.raw[i + 4:]
            c.raw = b""
            lines = head.split("\r\n")
            try:
                c.status = int(lines[0].split()[1])
            except (IndexError, ValueError):
                c.status = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                c.headers[k.strip().lower()] = v.strip()
            c.chunked = c.headers.get("transfer-encoding", "").lower() == "chunked"
            c.t_head = t
            c.state = "body"
            self._inflight -= 1
            if c.status != 200:
                c.error = f"HTTP {c.status}"
                self.refused[c.status] += 1
                self._close(c)  # e.g. 503: the worker's client cap; tried again by after_poll
                return
            if not data:
                return
        if c.state != "body":
            return
        if c.chunked:
            data = self._dechunk(c, data)
            if not data or c.state == "closed":
                return
        parts, start = c.parts, 0
        if parts and parts[-1][-1:] == b"\n" and data[:1] == b"\n":  # a blank line split across reads
            block = b"".join(parts)[:-1]
            parts.clear()
            self._dispatch(c, block, t)
            start = 1
        find, at = data.find, start
        while True:
            # A one-byte find is memchr; CPython searches a two-byte needle (b"\n\n") 14x slower,
            # and a message has only 4 newlines.
            j = find(b"\n", at)
            while j >= 0 and data[j + 1:j + 2] != b"\n":
                j = find(b"\n", j + 1)
            if j < 0 or j + 1 >= len(data):
                if start < len(data):
                    parts.append(data[start:] if start else data)
                return
            if parts:
                parts.append(data[start:j])
                block = b"".join(parts)
                parts.clear()
            else:
                block = data[start:j]
            self._dispatch(c, block, t)
            start = at = j + 2

    # -- coming back -----------------------------------------------------------------------
    def _close(self, c: TeamConn):
        was = c.state
        super()._close(c)
        if was != "closed" and not self.stopping:
            self.closed_recent.append(c)

    def after_poll(self) -> None:
        now = time.monotonic()
        if self.closed_recent:
            todo, self.closed_recent = self.closed_recent, []
            for c in todo:
                if not c.replaced:
                    self.delayed.append((now + (0.0 if c.status == 200 else 0.5), c))
        if self.delayed and min(d for d, _ in self.delayed) <= now:
            due = [c for d, c in self.delayed if d <= now]
            self.delayed = [(d, c) for d, c in self.delayed if d > now]
            for c in due:
                self._resume(c, now)

    def _resume(self, c: TeamConn, now: float) -> None:
        cut = dict(c.held()) if c.held() is not None else None
        new = self.reconnect(c, resume=True)
        new.last_id = c.last_id  # an EventSource keeps its lastEventId through connections that sent none
        c.replaced = True
        new.group = c.group
        new.attempt = c.attempt + 1
        new.t_gone = c.t_gone if c.t_gone is not None else c.closed_at
        new.at_gone = c.at_gone if c.at_gone is not None else cut
        new.before_w = max(c.before_w, c.batch_w)  # what it had seen counts as earlier batches
        cut = keys.parse_sse_id(c.last_id) if c.last_id else None
        new.last_cut = cut[1] if cut else None
        new.cut_pos = c.cut_pos if c.cut_pos is not None else new.last_cut
        if c.window is not None:  # cut again: the same window goes on
            new.window, new.window_until = c.window, c.window_until
        new.win_from = len(new.window) if new.window is not None else 0
        if new.window is None and new.at_gone is not None and self.window_s:
            new.window, new.window_until = [], 0.0  # from its first event on

    # -- reports ---------------------------------------------------------------------------
    def live(self, group: str | None = None) -> list[TeamConn]:
        return [c for c in self.conns if c.state == "body" and (group is None or c.group == group)]

    def mark(self, sample: int, skip_group: str | None, rng: random.Random) -> int:
        """A control sample: clients not about to be cut get the resumed clients' version check."""
        pool = [c for c in self.live() if c.group != skip_group and c.sessions is not None]
        now = time.monotonic()
        for c in rng.sample(pool, min(sample, len(pool))):
            # a control client records every event from now on: with the resumed ones of its worker,
            # it shows what that worker published (the frame check)
            c.control, c.at_gone, c.window, c.window_until = True, dict(c.held()), [], float("inf")
            c.before_w, c.batch_id = max(c.before_w, c.batch_w), None
            cut = keys.parse_sse_id(c.last_id) if c.last_id else None
            c.cut_pos = c.last_cut = cut[1] if cut else None
        return min(sample, len(pool))

    def truth_map(self, truth: list[dict]) -> dict[str, bytes]:
        want = {}
        for s in truth:
            cb = canonical(s)
            want[s["key"]] = self.versions.get(cb, (cb,))[0]  # the same object where known: cheap compares
        return want

    def check(self, want: dict[str, bytes]) -> dict:
        live = [c for c in self.live() if c.held() is not None]
        differ = [c for c in live if c.sessions != want]
        never = sum(1 for c in self.conns if c.state == "body" and c.sessions is None)
        # a client is its latest connection: one still (re)connecting has no state to check yet
        pending = sum(1 for c in self.conns if not c.replaced and c.state != "body")
        return {"checked": len(live), "divergent": len(differ), "without_state": never, "not_connected": pending,
                "examples": [state_diff(c.idx, c.sessions, want) for c in differ[:2]]}

    def version_check(self, c: TeamConn) -> dict:
        """Of the sessions c had when cut (or marked), the first newer version it was sent must be the next."""
        base = {}
        for k, cb in (c.at_gone or {}).items():
            got = self.versions.get(cb)
            if got is not None and got[1] is not None:
                base[k] = got[1]
        seen, lost, dup, sessions_lost, coalesced, examples = {}, 0, 0, 0, 0, []
        result = lambda reset: {"checked": len(seen), "of": len(base), "lost": lost, "sessions_lost": sessions_lost,
                                "dup": dup, "coalesced": coalesced, "reset": reset, "examples": examples[:4]}
        for rec, before_w in c.window or ():
            if rec.kind in ("init", "refresh"):
                # A whole state (the server could not replay, or the client fell behind): what it
                # skips is not lost, it is superseded. The check ends here.
                return result(rec.kind)
            for k, (n, w) in rec.counters.items():
                if k in seen or k not in base or n is None:
                    continue
                if n <= base[k]:
                    dup += 1
                    continue
                seen[k] = n
                skipped = n - base[k] - 1
                if skipped <= 0 or w is None:
                    continue
                # The server keeps the newest version of a session within one read of the engine
                # (SPEC 4 allows coalescing). The i-th skipped version was written about i periods
                # before this one (each session is written every period). Written well after the
                # newest version of every earlier batch this client got, it was in this batch:
                # coalesced; written well before, its entry preceded an earlier batch, which then
                # held it or a newer version that this client would have had: lost.
                missing = sum(1 for back in range(1, skipped + 1)
                              if w - back * self.period_s < before_w - LOSS_SLACK_S)
                lost += missing
                coalesced += skipped - missing
                sessions_lost += missing > 0
                if missing:
                    examples.append({"key": k, "had": base[k], "next_sent": n, "its_write": w,
                                     "frame_pos": keys.format_id(rec.pos) if rec.pos else None,
                                     "cut_pos": keys.format_id(c.cut_pos) if c.cut_pos else None,
                                     "first_event_at": c.t_first})
        return result(None)

    def frame_check(self, workers: list[int]) -> dict:
        """Every event a worker published after a resumed client's cut, up to the last it was sent,
        must have reached it: what the worker published is what its other checked clients got
        (every client of a worker gets the same frames, whatever the worker batched)."""
        owners = socket_owners(workers, self.port)
        by_worker: dict[int, list[TeamConn]] = collections.defaultdict(list)
        for c in self.conns:
            if c.window is not None and not c.replaced and c.state == "body" and c.sock is not None:
                try:
                    pid = owners.get(c.sock.getsockname()[1])
                except OSError:
                    continue
                if pid is not None:
                    by_worker[pid].append(c)
        checked = missing = versions = unplaced = reset = 0
        for pid, conns in by_worker.items():
            published = {}
            for c in conns:
                for rec, _ in c.window[c.win_from:]:
                    if rec.pos is not None and rec.kind in ("session-created", "session-updated", "session-deleted"):
                        published[id(rec)] = rec
            for c in conns:
                mine = c.window[c.win_from:]
                if c.resumed_from is None or c.last_cut is None or not mine:
                    continue
                if any(rec.kind in ("init", "refresh") for rec, _ in mine):
                    reset += 1  # superseded by a whole state: nothing to compare
                    continue
                got = {id(rec) for rec, _ in mine}
                last = max((rec.pos for rec, _ in mine if rec.pos is not None), default=None)
                if last is None:
                    continue
                checked += 1
                for key, rec in published.items():
                    # one read's frames (created, updated, deleted) share a position: a window may end among them
                    if c.last_cut < rec.pos < last and key not in got:
                        missing += 1
                        versions += len(rec.counters) + len(rec.gone)
        unplaced = sum(1 for c in self.conns if c.resumed_from is not None and not c.replaced and c.window is not None) \
            - sum(1 for cs in by_worker.values() for c in cs if c.resumed_from is not None)
        return {"clients": checked, "frames_missing": missing, "versions_in_them": versions, "reset": reset,
                "not_placed": unplaced}

    def report(self, t0: float, workers: list[int] | None = None) -> dict:
        # latency in whole ms -> (client, version) pairs, per client group; and per second of the
        # writes, each frame's worst (its oldest version at its slowest client)
        by_group: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        by_second: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        for rec in self.frames.values():
            if rec.writes is None or not rec.arrivals:
                continue
            # t - w = (t - w_min) + (w_min - w): two small histograms convolved (1 ms bins, +- 1 ms)
            ref = rec.w_min
            b = collections.Counter(int((ref - w) * 1000) for w in rec.writes)
            for group, arrivals in rec.arrivals.items():
                a = collections.Counter(int((t - ref) * 1000) for t in arrivals)
                mine = by_group[group]
                for ai, na in a.items():
                    for bi, nb in b.items():
                        mine[ai + bi] += na * nb
            worst = max(max(arr) for arr in rec.arrivals.values()) - ref
            by_second[int(ref - t0)][int(worst * 1000)] += 1
        hist = collections.Counter()
        for h in by_group.values():
            hist.update(h)
        late = collections.Counter(int((t - rec.w_min) * 1000) for rec in self.frames.values()
                                   if rec.writes is not None for t in rec.late)
        resumed, checks, controls = [], [], []
        owners = socket_owners(workers or [], self.port)

        def worker_of(c):
            try:
                return owners.get(c.sock.getsockname()[1]) if c.sock is not None and c.state == "body" else None
            except OSError:
                return None
        for c in self.conns:
            if c.resumed_from is not None and not c.replaced:
                pid = worker_of(c)
                resumed.append({"group": c.group, "attempts": c.attempt, "t_gone": c.t_gone, "t_connect": c.t_connect,
                                "t_head": c.t_head, "t_first": c.t_first, "first": c.first_event,
                                "status": c.status, "open": c.state == "body", "worker": pid})
                if c.window is not None:
                    checks.append({**self.version_check(c), "worker": pid})
            elif c.control and c.state == "body":
                controls.append(self.version_check(c))
        refreshes = sum(c.counts.get("refresh", 0) for c in self.conns)
        return {"hist": {str(k): v for k, v in hist.items()}, "late_ms": {str(k): v for k, v in late.items()},
                "resumed": resumed,
                "hist_by_group": {g: {str(k): v for k, v in h.items()} for g, h in by_group.items()},
                "frame_worst_by_second": {str(sec): {str(k): v for k, v in h.items()} for sec, h in by_second.items()},
                "version_checks": checks, "control_checks": controls, "refreshes": refreshes,
                "refused": dict(self.refused), "frames": len(self.frames), "parse_errors": self.parse_errors,
                "frame_check": self.frame_check(workers or []),
                "summary": self.summary()}


def clients_child(a) -> int:
    """``team.py --clients-child``: SSE clients; JSON commands on stdin, one JSON answer line each."""
    raise_nofile(a.max_fds)
    lc = TeamLoad(a.port, a.window, a.period)
    lc.max_inflight = a.connect_inflight
    lc.drop_nth = a.self_test_drop
    lc.max_reads_per_pass = 4  # 1 MB per socket per pass: an overloaded run still answers its commands
    rng = random.Random(a.seed)
    cmds: queue.Queue = queue.Queue()

    def reader():
        for line in sys.stdin:
            if line.strip():
                cmds.put(json.loads(line))
                lc._wake()
        cmds.put({"cmd": "quit"})
        lc._wake()

    threading.Thread(target=reader, daemon=True).start()

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    waits = []  # (predicate, deadline, answer)
    expected: dict[str, int] = {}  # clients added per group so far
    say({"ready": True})
    while True:
        t_loop = time.monotonic()
        read0 = lc.total_bytes
        lc.poll(0.05)
        t_poll = time.monotonic()
        lc.after_poll()
        if time.monotonic() - t_loop > 2.0:  # a sign of overload, in clients-N.log
            print(f"slow loop: poll {t_poll - t_loop:.1f} s ({(lc.total_bytes - read0) / 1e6:.0f} MB), "
                  f"after_poll {time.monotonic() - t_poll:.1f} s, waits {len(waits)}", file=sys.stderr, flush=True)
        while not cmds.empty():
            cmd = cmds.get()
            op = cmd["cmd"]
            if op == "quit":
                lc.stopping = True
                lc.close_all()
                say({"bye": True})
                return 0
            if op == "add":
                group, n = cmd["group"], cmd["n"]
                for c in lc.add(n):
                    c.group = group
                expected[group] = want = expected.get(group, 0) + n
                t_add = time.monotonic()

                def inited(group=group, want=want):
                    return sum(1 for c in lc.live(group) if c.t_init is not None) >= want

                def answer(group=group, t_add=t_add):
                    cs = lc.live(group)
                    inits = [c.t_init for c in cs if c.t_init is not None]
                    return {"group": group, "init": len(inits), "s": round(time.monotonic() - t_add, 2),
                            "init_bytes": max((c.init_len for c in cs), default=0), "refused": dict(lc.refused)}
                waits.append((inited, t_add + cmd.get("timeout", 120), answer))
            elif op == "ports":
                out = []
                for c in lc.live():
                    try:
                        out.append([c.idx, c.sock.getsockname()[1], c.group])
                    except OSError:
                        pass
                say({"ports": out})
            elif op == "mark":
                say({"marked": lc.mark(cmd["sample"], cmd.get("skip"), rng)})
            elif op == "check":
                want = lc.truth_map(loads(Path(cmd["path"]).read_bytes()))
                t_check = time.monotonic()

                last = [0.0]

                def converged(want=want, last=last):
                    if time.monotonic() - last[0] < 0.5:  # a check of a thousand clients takes a while
                        return False
                    got = lc.check(want)
                    last[0] = time.monotonic()
                    return got["divergent"] == 0 and got["not_connected"] == 0 and got["without_state"] == 0

                def answer(want=want, t_check=t_check):
                    return {"check": lc.check(want), "s": round(time.monotonic() - t_check, 3)}
                waits.append((converged, t_check + cmd.get("timeout", 10), answer))
            elif op == "report":
                say({"report": lc.report(cmd["t0"], cmd.get("workers"))})
            elif op == "stats":
                say({"stats": lc.summary()})
        for w in list(waits):
            pred, deadline, answer = w
            t_pred = time.monotonic()
            if time.monotonic() >= deadline or pred():
                waits.remove(w)
                say(answer())
            if time.monotonic() - t_pred > 2.0:
                print(f"slow wait predicate: {time.monotonic() - t_pred:.1f} s", file=sys.stderr, flush=True)


# ====================================================================== the parent: processes

# glibc's allocator for the load processes (not the web tier under test): reads of 256 KB are
# above its mmap threshold, and a fresh mapping per read costs page faults that, in this VM, make
# copying the bytes 6x slower; these keep such buffers in the heap, reused.
CHILD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
                "MALLOC_TOP_PAD_": str(16 << 20)}


class Child:
    """A child process of this script that answers JSON lines (read by a thread: waits have deadlines)."""

    def __init__(self, args: list[str], log: Path):
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())] + [str(x) for x in args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=str(REPO), text=True, bufsize=1, env=dict(os.environ, **CHILD_MALLOC))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, obj) -> None:
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"child {self.pid} did not answer within {timeout} s") from None
        if line is None:
            raise RuntimeError(f"child {self.pid} exited ({self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "quit"} if "--clients-child" in self.proc.args else "quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class TeamWeb:
    """``python -m helm_monitor web`` (the gunicorn arbiter and its gevent workers) as a child process."""

    def __init__(self, url: str, workers: int, max_clients: int, log: Path, port: int | None = None,
                 repo: Path = REPO):
        self.url, self.n, self.max_clients = url, workers, max_clients
        self.repo = Path(repo)  # the checkout whose helm_monitor serves (``python -m`` runs it from its cwd)
        self.port = port or free_port()
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "helm_monitor", "web", "--redis-url", self.url, "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.n), "--max-clients", str(self.max_clients),
                "--host-name", "web"]

    def start(self) -> "TeamWeb":
        env = dict(os.environ, PYTHONUNBUFFERED="1", HELM_CACHE_DIR="")
        env.pop("HELM_TOKEN", None)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self.repo), start_new_session=True)
        return self

    def workers(self) -> list[int]:
        return child_pids(self.proc.pid)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes, int | None]:
        """(status, body, pid of the worker that answered)."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}"})
            resp = conn.getresponse()
            body = resp.read()
            owner = None
            if conn.sock is not None:  # kept alive: the worker still holds its end
                owner = socket_owners(self.workers(), self.port).get(conn.sock.getsockname()[1])
            return resp.status, body, owner
        finally:
            conn.close()

    def health_by_worker(self, tries: int = 40) -> dict[int, dict]:
        """/healthz of every worker (connections are opened until each worker has answered one)."""
        out: dict[int, dict] = {}
        workers = set(self.workers())
        for _ in range(tries):
            try:
                status, body, pid = self.get("/healthz", 3.0)
            except OSError:
                time.sleep(0.05)
                continue
            if pid is not None and status == 200:
                out[pid] = json.loads(body)
            if workers <= set(out):
                break
        return out

    def wait_ready(self, sessions: int, timeout: float) -> dict[int, dict]:
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"helm-monitor web exited {self.proc.returncode}:\n{self.log_tail()}")
            if len(self.workers()) >= self.n:
                last = self.health_by_worker(8)
                if len(last) >= self.n and all(_has_sessions(h, sessions) for h in last.values()):
                    return last
            time.sleep(0.2)
        raise TimeoutError(f"web tier not ready after {timeout} s: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        for pid in self.workers():  # a worker left stopped by an interrupted pinning
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
                self.proc.wait(5)
        self._log.close()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _has_sessions(health: dict, sessions: int) -> bool:
    """A worker's /healthz says it holds every session (and, where it says so, that its feed is up)."""
    if health.get("status") not in (None, "ok"):
        return False
    n = health.get("sessions")
    return n is None or n >= sessions


def share(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def hist_pct(hist: dict[int, int], p: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    want, seen = total * p / 100, 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= want:
            return float(k)
    return float(max(hist))


def cpu_of(pids) -> dict[int, float]:
    return {pid: proc_cpu(pid) or 0.0 for pid in pids}


class Profiler:
    """py-spy on one worker for the write phase (``--profile``): its hottest functions."""

    def __init__(self, pid: int, seconds: float, out: Path):
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.proc = subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "97",
                                      "-f", "raw", "-o", str(out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def top(self, n: int = 12) -> dict:
        try:
            self.proc.wait(60)
            lines = self.out.read_text().splitlines()
        except (OSError, subprocess.TimeoutExpired):
            return {}
        own, incl, total = collections.Counter(), collections.Counter(), 0
        for line in lines:
            stack, _, count = line.rpartition(" ")
            try:
                k = int(count)
            except ValueError:
                continue
            frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")]
            total += k
            own[frames[-1]] += k
            for f in set(frames):
                incl[f] += k
        pc = lambda c: [[f, round(100 * v / max(1, total), 1)] for f, v in c.most_common(n)]
        return {"samples": total, "self_pct": pc(own), "inclusive_pct": pc(incl)}


# ====================================================================== the parent: the run

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke test (about 20 s)")
    ap.add_argument("--agents", type=int, help="simulated hosts (default 50; quick 10)")
    ap.add_argument("--sessions", type=int, help="sessions per host (default 20; quick 10)")
    ap.add_argument("--rate", type=float, default=10.0, help="changes per second per host")
    ap.add_argument("--seconds", type=float, help="write phase (default 20; quick 6)")
    ap.add_argument("--clients", type=int, help="SSE clients (default 2000; quick 200)")
    ap.add_argument("--victims", type=int, help="clients on the worker that is killed (default half the clients)")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers of the web tier")
    ap.add_argument("--max-clients", type=int, default=1000, help="per worker (--max-clients of helm-monitor web)")
    ap.add_argument("--kill-at", type=float, help="seconds into the writes the worker is killed (default 8; quick 2.5; "
                                                  "negative: no kill)")
    ap.add_argument("--kill-signal", default="KILL", choices=["KILL", "TERM"])
    ap.add_argument("--no-pin", action="store_true", help="leave the clients where the kernel put them; kill the worker "
                                                         "holding the most")
    ap.add_argument("--client-procs", type=int, default=2, help="processes holding the clients")
    ap.add_argument("--connect-inflight", type=int, default=128,
                    help="connections each client process opens at once (sseload's default 128)")
    ap.add_argument("--control", type=int, default=50, help="clients not cut that get the version check too")
    ap.add_argument("--profile", action="store_true", help="py-spy a surviving worker during the writes")
    ap.add_argument("--web-repo", type=Path, default=REPO, help="run the web tier from this checkout (to measure a "
                                                                 "change against the same load)")
    ap.add_argument("--tag", help="write bench/results/team-TAG.json instead of team.json (e.g. a client-count sweep)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--heartbeat-s", type=float, default=keys.HEARTBEAT_S)
    # children
    ap.add_argument("--agents-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--clients-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--window", type=float, default=3.0, help=argparse.SUPPRESS)
    ap.add_argument("--period", type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument("--self-test-drop", type=int, default=0,
                    help="check the checks: each resumed client ignores its N-th session-updated event "
                         "(the version check must report lost versions)")
    ap.add_argument("--max-fds", type=int, default=8192, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    a.agents = a.agents or (10 if q else 50)
    a.sessions = a.sessions or (10 if q else 20)
    a.seconds = a.seconds or (6.0 if q else 20.0)
    a.clients = a.clients or (200 if q else 2000)
    a.victims = a.clients // 2 if a.victims is None else a.victims
    a.kill_at = a.kill_at if a.kill_at is not None else (2.5 if q else 8.0)
    if a.kill_at < 0:
        a.victims = 0
    return a


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# Clients connected per step of the pinning: a worker is stopped for one step at a time (its engine
# read times out after 15 s, and gunicorn replaces a worker silent for 30 s).
PIN_STEP = 100


def connect_clients(a, web: TeamWeb, clients: list[Child]) -> tuple[int | None, list[dict]]:
    """Connect every client; with pinning, the victims all on one worker: in steps, the other
    workers are stopped (SIGSTOP) while victims connect, that one while the rest connect."""
    answers = []

    def add(group: str, n: int):
        for ch, k in zip(clients, share(n, len(clients))):
            ch.send({"cmd": "add", "group": group, "n": k, "timeout": 150})
        for ch in clients:
            answers.append(ch.recv(180))

    def signal_all(pids, sig):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                raise RuntimeError(f"worker {pid} is gone (stopped too long?):\n{web.log_tail(1500)}") from None

    workers = web.workers()
    if a.no_pin or not a.victims:
        add("all", a.clients)
        say(f"  {sum(x['init'] for x in answers)}/{a.clients} clients have their init")
        return None, answers
    target = workers[0]
    others = [w for w in workers if w != target]
    longest = 0.0
    stay, victims = a.clients - a.victims, a.victims
    for step in range(-(-max(stay, victims) // PIN_STEP)):
        for group, total, stop in (("stay", stay, [target]), ("victim", victims, others)):
            n = min(PIN_STEP, total - step * PIN_STEP)
            if n <= 0:
                continue
            t = time.monotonic()
            signal_all(stop, signal.SIGSTOP)
            try:
                add(group, n)
            finally:
                signal_all(stop, signal.SIGCONT)
                longest = max(longest, time.monotonic() - t)
    for group in ("stay", "victim"):
        final = [x for x in answers if x["group"] == group][-len(clients):]
        say(f"  {group}: {sum(x['init'] for x in final)} clients have their init")
    if longest > 10:
        say(f"  warning: a worker was stopped for {longest:.1f} s while clients connected")
    answers.append({"group": "_stopped_s", "init": 0, "init_bytes": 0, "longest": round(longest, 2)})
    return target, answers


def placement(web: TeamWeb, clients: list[Child]) -> dict:
    """{worker pid: {group: clients}} from the clients' local ports and the workers' sockets."""
    ports = []
    for ch in clients:
        ch.send({"cmd": "ports"})
    for ch in clients:
        ports.extend(ch.recv(30)["ports"])
    owners = socket_owners(web.workers(), web.port)
    out: dict = collections.defaultdict(collections.Counter)
    for _idx, lport, group in ports:
        out[owners.get(lport, "unknown")][group] += 1
    return {str(k): dict(v) for k, v in out.items()}


def run(a) -> dict:
    raise_nofile()
    work = WORK / "team"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res = {"quick": a.quick, "settings": {k: getattr(a, k) for k in (
        "agents", "sessions", "rate", "seconds", "clients", "victims", "workers", "max_clients", "kill_at",
        "kill_signal", "no_pin", "client_procs", "connect_inflight", "heartbeat_s")}, "web_repo": str(a.web_repo)}
    res["command"] = " ".join(["python bench/team.py"] + (sys.argv[1:] if sys.argv[1:] else []))
    srv = RedisServer(work / "redis", args=["--maxclients", "10000"]).start()
    import redis as redis_py
    r = redis_py.Redis.from_url(srv.url, socket_timeout=10)
    agents = web = None
    clients: list[Child] = []
    t_start = time.monotonic()
    try:
        say(f"redis-server {srv.url} (pid {srv.pid}); {a.agents} agents resync")
        agents = Child(["--agents-child", "--url", srv.url, "--agents", a.agents, "--sessions", a.sessions,
                        "--seed", a.seed, "--heartbeat-s", a.heartbeat_s], work / "agents.log")
        ready = agents.recv(120)
        total = ready["sessions"]
        res["resync_s"] = round(ready["resync_s"], 3)
        web = TeamWeb(srv.url, a.workers, a.max_clients, work / "web.log", repo=a.web_repo).start()
        res["web_command"] = " ".join(["python"] + web.command()[1:])
        say(f"web tier: {res['web_command']}")
        t_web = time.monotonic()
        health0 = web.wait_ready(total, 120)
        res["web_ready_s"] = round(time.monotonic() - t_web, 2)
        workers = web.workers()
        say(f"  {len(workers)} workers ready in {res['web_ready_s']} s, each with {total} sessions")
        rss0 = {pid: proc_rss(pid) for pid in workers}
        period = a.sessions / a.rate
        clients = [Child(["--clients-child", "--port", web.port, "--window", max(3.0, 1.5 * period), "--period", period,
                          "--seed", a.seed + i, "--connect-inflight", a.connect_inflight,
                          "--self-test-drop", a.self_test_drop,
                          "--max-fds", a.clients + 512], work / f"clients-{i}.log") for i in range(a.client_procs)]
        for ch in clients:
            ch.recv(30)
        t_c = time.monotonic()
        target, answers = connect_clients(a, web, clients)
        res["connect_s"] = round(time.monotonic() - t_c, 2)
        res["init_bytes"] = max(x["init_bytes"] for x in answers)
        res["pin_longest_stop_s"] = next((x["longest"] for x in answers if x["group"] == "_stopped_s"), None)
        # each child's last answer per group counts its clients of that group so far
        connected = sum(x["init"] for g in ("all", "stay", "victim")
                        for x in [y for y in answers if y["group"] == g][-len(clients):])
        time.sleep(1.0)
        where = placement(web, clients)
        res["placement"] = where
        rss1 = {pid: proc_rss(pid) for pid in workers}
        delta = sum(rss1[p] - rss0[p] for p in workers)
        res["memory"] = {"rss_before_mb": round(sum(rss0.values()) / 1e6, 1), "rss_after_mb": round(sum(rss1.values()) / 1e6, 1),
                         "per_conn_kb": round(delta / max(1, connected) / 1024, 1), "clients": connected,
                         "per_worker": {str(p): {"before_mb": round(rss0[p] / 1e6, 1), "after_mb": round(rss1[p] / 1e6, 1),
                                                 "clients": sum(where.get(str(p), {}).values())} for p in workers}}
        say(f"  {connected} clients in {res['connect_s']} s; placement {where}; "
            f"{res['memory']['per_conn_kb']} KB per connection")
        if target is None and a.victims:
            target = max(workers, key=lambda p: sum(where.get(str(p), {}).values()))
        res["killed_worker"] = target
        res["workers_at_kill"] = [w for w in workers if w != target]
        res["victims_on_it"] = sum(where.get(str(target), {}).values()) if target else 0

        # ---- the write phase
        procs = {"redis": [srv.pid], "agents": [agents.pid], "clients": [c.pid for c in clients]}
        cpu0 = {k: cpu_of(v) for k, v in procs.items()}
        wcpu0 = cpu_of(workers)
        sys0, mine0 = system_cpu(), tree_cpu(os.getpid())
        t0 = time.monotonic() + 0.5
        agents.send(f"go {t0} {a.rate} {a.seconds}")
        prof = None
        if a.profile:
            pick = next((w for w in workers if w != target), workers[0])
            prof = Profiler(pick, a.seconds, work / "profile.txt")
        say(f"writing: {a.agents} hosts x {a.rate}/s for {a.seconds} s"
            + (f"; worker {target} ({res['victims_on_it']} clients) is killed at {a.kill_at} s" if target else ""))
        t_kill = None
        wcpu_killed = 0.0
        if target:
            time.sleep(max(0.0, t0 + a.kill_at - time.monotonic()))
            wcpu_killed = (proc_cpu(target) or 0.0) - wcpu0.get(target, 0.0)
            t_kill = time.monotonic()
            os.kill(target, getattr(signal, f"SIG{a.kill_signal}"))
            for ch in clients:
                ch.send({"cmd": "mark", "sample": share(a.control, len(clients))[0], "skip": "victim"})
            for ch in clients:
                ch.recv(30)
        done = agents.recv(a.seconds + 90)
        t1 = time.monotonic()
        cpu1 = {k: cpu_of(v) for k, v in procs.items()}
        now_workers = web.workers()
        wcpu1 = cpu_of(now_workers)
        span = t1 - t0
        machine = res["machine_cpu_pct_of_core"] = system_cpu_pct(sys0, system_cpu())
        gone = wcpu_killed + wcpu0.get(target, 0.0) if target else 0.0  # the killed worker left the tree
        mine = 100 * (tree_cpu(os.getpid()) - mine0 + gone) / span
        # What else ran on the machine meanwhile (the 2 cores may be shared): busy minus this run's processes.
        machine["this_run"] = round(mine, 1)
        machine["others"] = round(max(0.0, machine.get("busy", 0.0) - mine), 1)
        cpu = {k: round(100 * sum(cpu1[k][p] - cpu0[k][p] for p in cpu0[k]) / span, 1) for k in procs}
        worker_cpu = sum(wcpu1[p] - wcpu0.get(p, 0.0) for p in now_workers) + wcpu_killed
        cpu["web_workers"] = round(100 * worker_cpu / span, 1)
        res["cpu_pct_of_core"] = cpu
        res["write_phase_s"] = round(span, 2)
        res["agents"] = done
        say(f"  {done['changes']} changes written ({done['changes'] / a.seconds:.0f}/s), lag p99 "
            f"{done['lag_ms']['p99']} ms; CPU % of a core: {cpu}; machine: {res['machine_cpu_pct_of_core']}")
        if prof:
            res["profile"] = {"worker": pick, **prof.top()}

        # ---- the truth and every client's state
        truth = []
        for key in sorted(r.scan_iter(match="hm:h:*:s", count=1000)):
            truth.extend(loads(v) for v in r.hgetall(key).values())
        (work / "truth.json").write_bytes(json.dumps(truth).encode())
        for ch in clients:
            ch.send({"cmd": "check", "path": str(work / "truth.json"), "timeout": 20})
        checks = [ch.recv(120) for ch in clients]
        res["truth_sessions"] = len(truth)
        res["state"] = {"checked": sum(c["check"]["checked"] for c in checks),
                        "divergent": sum(c["check"]["divergent"] for c in checks),
                        "without_state": sum(c["check"]["without_state"] for c in checks),
                        "not_connected": sum(c["check"]["not_connected"] for c in checks),
                        "converged_after_s": max(c["s"] for c in checks),
                        "examples": [e for c in checks for e in c["check"]["examples"]][:3]}
        say(f"  state: {res['state']['divergent']} of {res['state']['checked']} clients differ from the truth "
            f"({len(truth)} sessions), {res['state']['not_connected']} not connected; "
            f"{res['state']['converged_after_s']} s after the last write")
        res["placement_after"] = where_end = placement(web, clients)
        end = {p: proc_rss(p) for p in web.workers()}
        base = sum(rss0.values()) / max(1, len(rss0))
        held = sum(sum(where_end.get(str(p), {}).values()) for p in end)
        res["memory"]["rss_end_mb"] = round(sum(end.values()) / 1e6, 1)
        res["memory"]["per_conn_end_kb"] = round(sum(end[p] - rss0.get(p, base) for p in end) / max(1, held) / 1024, 1)
        for ch in clients:
            ch.send({"cmd": "report", "t0": t0, "workers": web.workers()})
        reports = [ch.recv(120)["report"] for ch in clients]
        res["health_after"] = {str(k): v for k, v in web.health_by_worker(12).items()}
        res["worker_log_tail"] = web.log_tail(1500)
    finally:
        for ch in clients:
            ch.close()
        if web:
            web.stop()
        if agents:
            agents.close()
        r.close()
        srv.stop()
    res["total_s"] = round(time.monotonic() - t_start, 1)
    summarize_reports(res, reports, t_kill)
    return res


def summarize_reports(res: dict, reports: list[dict], t_kill: float | None) -> None:
    hist = collections.Counter()
    for rep in reports:
        hist.update({int(k): v for k, v in rep["hist"].items()})
    n = sum(hist.values())
    res["latency"] = {"pairs": n, "p50_ms": hist_pct(hist, 50), "p90_ms": hist_pct(hist, 90),
                      "p99_ms": hist_pct(hist, 99), "p999_ms": hist_pct(hist, 99.9),
                      "max_ms": float(max(hist)) if hist else None, "resolution_ms": 1}
    res["latency_by_group"] = {}
    for group in sorted({g for rep in reports for g in rep["hist_by_group"]}):
        h = collections.Counter()
        for rep in reports:
            h.update({int(k): v for k, v in rep["hist_by_group"].get(group, {}).items()})
        res["latency_by_group"][group] = {"pairs": sum(h.values()), "p50_ms": hist_pct(h, 50),
                                          "p99_ms": hist_pct(h, 99), "max_ms": float(max(h)) if h else None}
    # per second of the writes: of the frames whose oldest version was written then, the worst receipt
    res["frame_worst_by_second"] = {}
    for sec in sorted({int(k) for rep in reports for k in rep["frame_worst_by_second"]}):
        h = collections.Counter()
        for rep in reports:
            h.update({int(k): v for k, v in rep["frame_worst_by_second"].get(str(sec), {}).items()})
        res["frame_worst_by_second"][str(sec)] = {"frames": sum(h.values()), "p50_ms": hist_pct(h, 50),
                                                  "p99_ms": hist_pct(h, 99), "max_ms": float(max(h))}
    late = collections.Counter()
    for rep in reports:
        late.update({int(k): v for k, v in rep["late_ms"].items()})
    # versions a resumed client was sent that were written before it reconnected (its replay, with
    # the 2 s overlap's duplicates): write -> receipt
    res["catch_up"] = {"receipts": sum(late.values()), "p50_ms": hist_pct(late, 50), "max_ms": float(max(late)) if late else None}
    resumed = [x for rep in reports for x in rep["resumed"]]
    cut = [x for x in resumed if t_kill is not None and x["t_gone"] is not None and x["t_gone"] >= t_kill - 0.05]
    other = len(resumed) - len(cut)
    first = collections.Counter(("replay" if x["first"] in ("session-created", "session-updated", "session-deleted")
                                 else x["first"] or "nothing") for x in cut)
    waits = [x["t_first"] - t_kill for x in cut if x["t_first"] is not None]
    heads = [x["t_head"] - t_kill for x in cut if x["t_head"] is not None]
    phase = lambda vals: {"p50_ms": ms(pct(vals, 50)), "max_ms": ms(max(vals)) if vals else None}
    phases = {"kill_to_eof": phase([x["t_gone"] - t_kill for x in cut]),
              "eof_to_connect": phase([x["t_connect"] - x["t_gone"] for x in cut if x["t_connect"]]),
              "connect_to_head": phase([x["t_head"] - x["t_connect"] for x in cut if x["t_head"] and x["t_connect"]]),
              "head_to_first_event": phase([x["t_first"] - x["t_head"] for x in cut if x["t_first"] and x["t_head"]])}
    vc = [v for rep in reports for v in rep["version_checks"]]
    cc = [v for rep in reports for v in rep["control_checks"]]
    born = set(res.get("workers_at_kill") or [])
    by_worker = collections.defaultdict(lambda: collections.Counter())
    for x in cut:
        w = by_worker["new" if x["worker"] not in born and x["worker"] is not None else str(x["worker"])]
        w["clients"] += 1
        w[x["first"] or "nothing"] += 1
    vc_all = [v for rep in reports for v in rep["version_checks"]]
    for v in vc_all:
        w = by_worker["new" if v["worker"] not in born and v["worker"] is not None else str(v["worker"])]
        w["versions_lost"] += v["lost"]
        w["clients_with_loss"] += v["lost"] > 0
    res["resume_by_worker"] = {k: dict(v) for k, v in by_worker.items()}
    res["resume_loss_examples"] = [dict(e, worker=v["worker"]) for v in vc_all for e in v.get("examples", [])][:8]
    res["resume"] = {
        "cut": len(cut), "other_reconnects": other, "first_event": dict(first),
        "all_resumed_s": round(max(waits), 3) if waits and len(waits) == len(cut) else None,
        "resumed": len(waits), "p50_s": round(pct(waits, 50), 3) if waits else None,
        "head_p50_s": round(pct(heads, 50), 3) if heads else None, "head_max_s": round(max(heads), 3) if heads else None,
        "phases": phases, "attempts_max": max((x["attempts"] for x in cut), default=0),
        "still_closed": sum(1 for x in cut if not x["open"]),
        "version_check": {"clients": len(vc), "sessions_checked": sum(v["checked"] for v in vc),
                          "of": sum(v["of"] for v in vc), "versions_lost": sum(v["lost"] for v in vc),
                          "clients_with_loss": sum(1 for v in vc if v["lost"]), "duplicates": sum(v["dup"] for v in vc),
                          "coalesced": sum(v["coalesced"] for v in vc),
                          "ended_by": dict(collections.Counter(v["reset"] for v in vc if v["reset"]))},
        "control_check": {"clients": len(cc), "sessions_checked": sum(v["checked"] for v in cc),
                          "versions_lost": sum(v["lost"] for v in cc), "duplicates": sum(v["dup"] for v in cc),
                          "coalesced": sum(v["coalesced"] for v in cc),
                          "ended_by": dict(collections.Counter(v["reset"] for v in cc if v["reset"]))},
    }
    fc = [rep["frame_check"] for rep in reports]
    res["resume"]["frame_check"] = {k: sum(x[k] for x in fc) for k in fc[0]} if fc else {}
    res["clients"] = {"refreshes": sum(rep["refreshes"] for rep in reports),
                      "refused": dict(sum((collections.Counter(rep["refused"]) for rep in reports), collections.Counter())),
                      "distinct_frames": sum(rep["frames"] for rep in reports),
                      "parse_errors": sum(rep["parse_errors"] for rep in reports),
                      "by_type": dict(sum((collections.Counter(rep["summary"]["by_type"]) for rep in reports),
                                          collections.Counter())),
                      "bytes": sum(rep["summary"]["bytes"] for rep in reports),
                      "errors": dict(sum((collections.Counter(rep["summary"]["errors"]) for rep in reports),
                                         collections.Counter()))}


def verdicts(res: dict) -> dict:
    lat, st, mem, rs = res["latency"], res["state"], res["memory"], res["resume"]
    out = {"state_equals_truth": (st["divergent"] == 0 and st["without_state"] == 0 and st["not_connected"] == 0
                                  and st["checked"] == res["settings"]["clients"]),
           "p99_latency": lat["p99_ms"] is not None and lat["p99_ms"] <= TARGET_P99_MS,
           "memory_per_conn": mem["per_conn_kb"] <= TARGET_KB_PER_CONN}
    if rs["cut"]:
        out["resume_all_replay_nothing_lost"] = (rs["first_event"].get("replay", 0) == rs["cut"]
                                                 and rs["version_check"]["versions_lost"] == 0
                                                 and rs.get("frame_check", {}).get("frames_missing", 1) == 0
                                                 and rs["still_closed"] == 0 and out["state_equals_truth"])
    return out


def print_table(res: dict) -> None:
    lat, st, mem, rs, cpu = res["latency"], res["state"], res["memory"], res["resume"], res["cpu_pct_of_core"]
    mc = res.get("machine_cpu_pct_of_core", {})
    v = res["verdicts"]
    ok = lambda b: "met" if b else "**missed**"
    s = res["settings"]
    rows = [
        ["load", f"{s['agents']} agents x {s['rate']:g}/s x {s['seconds']:g} s = {res['agents']['changes']} changes "
                 f"({s['sessions']} sessions each); {st['checked']} clients over {s['workers']} workers", "", ""],
        ["final state == truth", f"{st['checked'] - st['divergent']}/{s['clients']} clients equal "
                                 f"({res['truth_sessions']} sessions; {st['divergent']} differ, "
                                 f"{st['not_connected'] + st['without_state']} not connected or without state, "
                                 f"{st['converged_after_s']} s after the last write)", "0 differ",
         ok(v["state_equals_truth"])],
        ["agent write -> browser", f"p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms, p99 {lat['p99_ms']} ms, "
                                   f"max {lat['max_ms']} ms ({lat['pairs']:,} client x version pairs)",
         f"p99 <= {TARGET_P99_MS} ms", ok(v["p99_latency"])],
        ["Redis CPU", f"{cpu['redis']} % of one core (write phase)", "", ""],
        ["CPU, % of one core", f"web workers {cpu['web_workers']}, clients {cpu['clients']}, agents {cpu['agents']}", "", ""],
        ["machine (2 cores = 200 %)", f"busy {mc.get('busy')} %: this run {mc.get('this_run')} %, other processes "
                                      f"{mc.get('others')} %" + (" (shared machine: not comparable)"
                                                                 if (mc.get('others') or 0) > 25 else ""), "", ""],
        ["memory per SSE connection", f"{mem['per_conn_kb']} KB ({mem['rss_before_mb']} -> {mem['rss_after_mb']} MB "
                                      f"over {mem['clients']} clients)", f"<= {TARGET_KB_PER_CONN} KB",
         ok(v["memory_per_conn"])],
    ]
    if rs["cut"]:
        vc = rs["version_check"]
        rows.append(["worker killed: resume", f"{rs['cut']} clients cut; {rs['resumed']} resumed, all within "
                     f"{rs['all_resumed_s']} s (p50 {rs['p50_s']} s); first event {rs['first_event']}; "
                     f"{vc['versions_lost']} versions lost over {vc['sessions_checked']} sessions checked; "
                     f"{rs['frame_check'].get('frames_missing')} events missing over "
                     f"{rs['frame_check'].get('clients')} clients checked against their worker's",
                     "all replay, 0 lost", ok(v["resume_all_replay_nothing_lost"])])
    print(table(["measure", "result", "target", ""], rows))


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.agents_child:
        return agents_child(a)
    if a.clients_child:
        return clients_child(a)
    # A TERM (a timeout, a CI step ending) stops the run through its cleanup: no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"team.py: terminated"))
    res = run(a)
    res["verdicts"] = verdicts(res)
    print_table(res)
    p = write_results(f"team-{a.tag}" if a.tag else "team", res)
    print(f"\nwrote {p} ({res['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
