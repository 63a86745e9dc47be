#!/usr/bin/env python3
"""A load client for Server-Sent Events that holds thousands of connections.

One process, one ``selectors`` (epoll) loop, raw non-blocking sockets: HTTP/1.1
response head, chunked transfer decoding, and SSE framing (``id:``, ``event:``,
``data:``, comments, blank-line dispatch) done by hand. Arrival times
(``time.monotonic()``, system-wide on Linux, so comparable with the writer's in
another process) are taken right after ``recv()``, in passes that read every ready
socket, again and again while more are ready, before any parsing: parsing a thousand
clients' copies of one event does not delay the timestamp of the last ones. A
watched token is looked for in the bytes as read, so its arrival is stamped in that
pass (the parser catches a token split across two reads).

Used two ways:

* in-process: ``LoadClient`` (optionally run in a background thread with
  ``start_thread()``), e.g. a few measuring clients in the benchmark process;
* as a child process holding many passive clients::

      python bench/sseload.py --port P -n 1000

  It connects, waits for every client's ``init``, prints one JSON line
  ``{"ready": ...}``, then obeys line commands on stdin, answering with one JSON
  line each: ``watch TOKEN`` (start recording per-client first arrival of an
  event whose data contains TOKEN), ``collect TOKEN TIMEOUT`` (wait until every
  open client saw it, answer the arrival times), ``stats``, ``quit``.

  With ``--track-state`` every client also keeps the sessions its events describe
  (init / refresh replace them, created / updated / deleted change them), as the
  page does, keyed by ``--state-key`` (``id``; ``key`` in team mode, where ids of two
  hosts may be equal), and two more commands work: ``churn K RESUME`` (K open clients leave
  and are replaced; a fraction RESUME of the replacements reconnect with
  ``Last-Event-ID`` and keep their state, as an EventSource does after a network
  drop, the others start afresh, as a page load does; clients the server closed
  are reconnected too) and ``check PATH`` (compare every client's state with the
  session list in the JSON file PATH, e.g. a saved GET /all).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import resource
import selectors
import socket
import sys
import threading
import time

STREAM_PATH = "/api/claude-sessions/stream"
# The events that say what the sessions are (keepalive says nothing).
STATE_EVENTS = ("init", "refresh", "session-created", "session-updated", "session-deleted")

try:
    import orjson

    loads = orjson.loads

    def canonical(session: dict) -> bytes:
        return orjson.dumps(session, option=orjson.OPT_SORT_KEYS)
except ImportError:  # the benchmarks run in the project's venv, which has orjson; plain json works too
    loads = json.loads

    def canonical(session: dict) -> bytes:
        return json.dumps(session, sort_keys=True, separators=(",", ":")).encode()


def state_diff(client, have: dict[str, bytes], want: dict[str, bytes]) -> dict:
    """How one client's sessions differ from the expected ones: ids missing or extra, fields changed."""
    changed = {}
    for sid in sorted(have.keys() & want.keys()):
        if have[sid] != want[sid]:
            a, b = loads(have[sid]), loads(want[sid])
            changed[sid] = {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
    return {"client": client, "missing": sorted(want.keys() - have.keys()),
            "extra": sorted(have.keys() - want.keys()), "changed": changed}


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's soft RLIMIT_NOFILE as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    __slots__ = ("idx", "sock", "state", "raw", "body", "chunked", "chunk_left", "status", "headers",
                 "events", "counts", "last_id", "t_connect", "t_head", "t_init", "init_len", "keep",
                 "kept", "closed_at", "error", "t_recv", "pending", "sessions", "request",
                 "first_event", "t_first", "resumed_from")

    def __init__(self, idx: int, keep: bool):
        self.idx = idx
        self.sock: socket.socket | None = None
        self.state = "new"          # new -> connecting -> head -> body -> closed
        self.raw = b""
        self.body = b""
        self.chunked = False
        self.chunk_left = -1        # -1: expecting a size line; >= 0: payload bytes left (+2 for CRLF)
        self.status = None
        self.headers: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.last_id = None
        self.t_connect = self.t_head = self.t_init = None
        self.init_len = 0
        self.keep = keep            # keep parsed events (type, id, data, time) in self.kept
        self.kept: list[tuple] = []
        self.closed_at = None
        self.error = None
        self.t_recv = 0.0
        self.pending = b""
        self.sessions: dict[str, bytes] | None = None  # with track_state: id -> canonical JSON
        self.request: bytes | None = None  # when not the client's common request (Last-Event-ID)
        self.first_event: str | None = None  # the type of its first state event (init, or a replay's)
        self.t_first = None  # when that arrived
        self.resumed_from: int | None = None  # the client this one took over from (reconnect)


class LoadClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 5003, path: str = STREAM_PATH,
                 headers: dict | None = None, keep_events: bool = False, rcvbuf: int | None = None,
                 track_state: bool = False, state_key: str = "id"):
        self.host, self.port, self.path = host, port, path
        self.extra_headers = headers or {}
        self.keep_events = keep_events
        self.rcvbuf = rcvbuf
        self.track_state = track_state
        # What a client's sessions are keyed by: "id" (one host), "key" (SPEC 5 v2: unique across hosts).
        self.state_key = state_key
        self.conn_class = Conn  # a subclass may keep more per connection
        self.connections = 0  # connections opened so far, reconnections included
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.watch: dict[bytes, dict[int, float]] = {}   # token -> {conn idx: first arrival}
        self.tallies: dict[bytes, dict[int, list[float]]] = {}  # token -> {conn idx: every arrival}
        self.cond = threading.Condition()
        self.total_bytes = 0
        self.total_events = 0
        self._thread = None
        self._stop = False
        self._connect_queue: list[Conn] = []
        self._inflight = 0
        self.max_inflight = 128
        # Reads of one socket per pass (None: until it is drained). With a bound, a client far
        # behind (megabytes queued on each socket) cannot make one poll last for seconds.
        self.max_reads_per_pass: int | None = None
        self._request = self._request_bytes({})
        self._buf = bytearray(262144)
        self._view = memoryview(self._buf)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        # The loop's own thread wakes it too (reconnect, add): a full socketpair must not block it
        # for ever; full means a wake-up is pending anyway.
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)

    def _request_bytes(self, more: dict) -> bytes:
        headers = {**self.extra_headers, **more}
        return (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()

    # -- connections ---------------------------------------------------------
    def add(self, n: int, keep: bool | None = None) -> list[Conn]:
        """Queue n new connections; the loop opens them (at most max_inflight connecting at once)."""
        new = [self.conn_class(len(self.conns) + i, self.keep_events if keep is None else keep) for i in range(n)]
        with self.cond:
            self.conns.extend(new)
            self._connect_queue.extend(new)
        self._wake()
        return new

    def reconnect(self, c: Conn, resume: bool) -> Conn:
        """Close c and queue its replacement; with resume it sends Last-Event-ID and keeps c's state.

        Call it from the loop's thread (child mode), not while a background thread runs the loop.
        """
        self._close(c)
        new = self.add(1, c.keep)[0]
        new.resumed_from = c.idx
        if resume and c.last_id is not None:
            new.request = self._request_bytes({"Last-Event-ID": c.last_id})
            new.sessions = c.sessions
        c.sessions = None  # the old connection's state is not needed any more
        return new

    def _start_connects(self):
        while self._connect_queue and self._inflight < self.max_inflight:
            c = self._connect_queue.pop(0)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            c.sock = s
            c.t_connect = time.monotonic()
            err = s.connect_ex((self.host, self.port))
            if err not in (0, errno.EINPROGRESS):
                self._fail(c, f"connect: {os.strerror(err)}")
                continue
            c.state = "connecting"
            self.connections += 1
            self._inflight += 1
            self.sel.register(s, selectors.EVENT_WRITE, c)

    def _fail(self, c: Conn, why: str):
        c.error = why
        self._close(c)

    def _close(self, c: Conn):
        if c.state == "closed":
            return
        if c.state in ("connecting", "head"):
            self._inflight -= 1
        c.state = "closed"
        c.closed_at = time.monotonic()
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
        with self.cond:
            self.cond.notify_all()

    def close_all(self):
        for c in self.conns:
            self._close(c)

    # -- loop ------------------------------------------------------------------
    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # How long one poll keeps reading ready sockets before it parses what it read.
    READ_PASSES_S = 0.05

    def poll(self, timeout: float | None) -> None:
        self._start_connects()
        reads = []
        ready = self.sel.select(timeout)
        until = time.monotonic() + self.READ_PASSES_S
        while ready:
            self._read_ready(ready, reads)
            if time.monotonic() >= until:
                break
            ready = self.sel.select(0)
        for c, chunks, t in reads:
            eof = chunks and chunks[-1] is None
            data = b"".join(x for x in chunks if x)
            if data:
                self.total_bytes += len(data)
                self._feed(c, data, t)
            if eof and c.state != "closed":
                self._close(c)
        self._start_connects()

    def _read_ready(self, ready, reads: list) -> None:
        """Drain every ready socket and stamp the time; parsing comes after."""
        for key, mask in ready:
            c = key.data
            if c is None:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
                continue
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._fail(c, f"connect: {os.strerror(err)}")
                    continue
                try:
                    c.sock.send(c.request or self._request)
                except OSError as exc:
                    self._fail(c, f"send: {exc}")
                    continue
                c.state = "head"
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            if c.state == "closed":
                continue
            chunks = []
            left = self.max_reads_per_pass
            try:
                while True:
                    # Into one buffer: recv(256 KB) would allocate (mmap) 256 KB per read.
                    n = c.sock.recv_into(self._buf)
                    if not n:
                        chunks.append(None)
                        break
                    chunks.append(self._view[:n].tobytes())
                    if n < len(self._buf):
                        break
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            break
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                c.error = f"recv: {exc}"
                chunks.append(None)
            t = time.monotonic()
            if self.watch and c.state == "body":
                self._spot(c, chunks, t)
            reads.append((c, chunks, t))
            if chunks and chunks[-1] is None:
                try:
                    self.sel.unregister(c.sock)  # EOF: not ready again before it is closed below
                except (KeyError, ValueError):
                    pass

    def _spot(self, c: Conn, chunks: list, t: float) -> None:
        """A watched token in the bytes just read: its arrival is now."""
        hit = False
        for token, arr in list(self.watch.items()):
            if c.idx in arr:
                continue
            for chunk in chunks:
                if chunk and token in chunk:
                    arr[c.idx] = t
                    hit = True
                    break
        if hit:
            with self.cond:
                self.cond.notify_all()

    def _feed(self, c: Conn, data: bytes, t: float):
        if c.state == "head":
            c.raw += data
            i = c.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            head, rest = c.raw[:i].decode("latin-1"), c.raw[i + 4:]
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
            data = rest
            if not data:
                return
        if c.state != "body":
            return
        if c.chunked:
            data = self._dechunk(c, data)
            if not data:
                return
        body = c.body + data if c.body else data
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        start = 0
        while True:
            j = body.find(b"\n\n", start)
            if j < 0:
                break
            self._dispatch(c, body[start:j], t)
            start = j + 2
        c.body = body[start:] if start else body

    def _dechunk(self, c: Conn, data: bytes) -> bytes:
        buf = c.pending + data if c.pending else data
        out = []
        pos, n = 0, len(buf)
        while pos < n:
            if c.chunk_left < 0:
                j = buf.find(b"\r\n", pos)
                if j < 0:
                    break
                size = int(buf[pos:j].split(b";", 1)[0] or b"0", 16)
                pos = j + 2
                if size == 0:
                    c.chunk_left = -1
                    self._close(c)
                    break
                c.chunk_left = size + 2
            before = c.chunk_left
            take = min(before, n - pos)
            payload = max(0, min(take, before - 2))  # the chunk's trailing CRLF is not data
            if payload:
                out.append(buf[pos:pos + payload])
            c.chunk_left -= take
            pos += take
            if c.chunk_left == 0:
                c.chunk_left = -1
        c.pending = buf[pos:] if pos < n else b""
        return b"".join(out)

    def _dispatch(self, c: Conn, block: bytes, t: float):
        etype, eid, data = "message", None, []
        for line in block.split(b"\n"):
            if not line or line[:1] == b":":
                continue
            field, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                etype = value.decode()
            elif field == b"id":
                eid = value.decode()
        if not data and etype == "message":
            return
        payload = b"\n".join(data)
        self.total_events += 1
        c.counts[etype] = c.counts.get(etype, 0) + 1
        if eid is not None:
            c.last_id = eid
        if c.first_event is None and etype in STATE_EVENTS:
            c.first_event, c.t_first = etype, t
        if etype == "init" and c.t_init is None:
            c.t_init = t
            c.init_len = len(payload)
            with self.cond:
                self.cond.notify_all()
        if c.keep:
            c.kept.append((etype, eid, payload, t))
        if self.track_state:
            self._apply(c, etype, payload)
        if self.tallies and etype not in ("init", "keepalive"):
            for token, per in self.tallies.items():
                if token in payload:
                    per.setdefault(c.idx, []).append(t)
        if self.watch and etype not in ("init", "keepalive"):
            hit = False
            for token, arr in list(self.watch.items()):
                if c.idx not in arr and token in payload:
                    arr[c.idx] = t
                    hit = True
            if hit:
                with self.cond:
                    self.cond.notify_all()

    def _apply(self, c: Conn, etype: str, payload: bytes) -> None:
        """Change c's sessions as the event says (what the page does with it)."""
        if etype not in STATE_EVENTS:
            return
        sessions = loads(payload)["sessions"]
        key = self.state_key
        if etype in ("init", "refresh") or c.sessions is None:
            c.sessions = {}
        if etype == "session-deleted":
            for s in sessions:
                c.sessions.pop(s[key], None)
        else:
            for s in sessions:
                c.sessions[s[key]] = canonical(s)

    def compare(self, sessions: list[dict], examples: int = 3) -> dict:
        """Every open client's state against ``sessions`` (e.g. GET /all): how many differ, and how."""
        want = {s[self.state_key]: canonical(s) for s in sessions}
        checked, differ = 0, []
        for c in self.conns:
            if c.state != "body" or c.sessions is None:  # not yet told the state
                continue
            checked += 1
            if c.sessions != want:
                differ.append(c)
        return {"checked": checked, "divergent": len(differ),
                "examples": [state_diff(c.idx, c.sessions, want) for c in differ[:examples]]}

    # -- helpers ----------------------------------------------------------------
    def open_conns(self) -> list[Conn]:
        return [c for c in self.conns if c.state != "closed"]

    def summary(self) -> dict:
        states: dict[str, int] = {}
        for c in self.conns:
            states[c.state] = states.get(c.state, 0) + 1
        errors: dict[str, int] = {}
        for c in self.conns:
            if c.error:
                errors[c.error] = errors.get(c.error, 0) + 1
        by_type: dict[str, int] = {}
        for c in self.conns:
            for k, n in c.counts.items():
                by_type[k] = by_type.get(k, 0) + n
        return {"clients": len(self.conns), "open": sum(1 for c in self.conns if c.state == "body"),
                "init": sum(1 for c in self.conns if c.t_init is not None), "states": states,
                "errors": errors, "events": self.total_events, "bytes": self.total_bytes,
                "connections": self.connections, "by_type": by_type}

    def run_until(self, pred, timeout: float) -> bool:
        """Drive the loop in this thread until pred() or timeout."""
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.05))
        return True

    def wait_all_init(self, timeout: float) -> bool:
        def done():
            return all(c.t_init is not None or c.state == "closed" for c in self.conns) and not self._connect_queue
        if self._thread:
            with self.cond:
                return self.cond.wait_for(done, timeout)
        return self.run_until(done, timeout)

    # -- background thread -----------------------------------------------------
    def start_thread(self) -> "LoadClient":
        self._thread = threading.Thread(target=self._run, name="sseload", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            self.poll(0.2)

    def stop(self):
        self._stop = True
        self._wake()
        if self._thread:
            self._thread.join(5)
        self.close_all()

    def add_watch(self, token: str) -> None:
        with self.cond:
            self.watch[token.encode()] = {}

    def add_tally(self, token: str) -> None:
        """From now on record every arrival of an event whose data holds token (per client)."""
        with self.cond:
            self.tallies[token.encode()] = {}

    def take_tally(self, token: str) -> dict[int, list[float]]:
        with self.cond:
            return self.tallies.pop(token.encode(), {})

    def wait_watch(self, token: str, timeout: float, min_clients: int | None = None) -> dict[int, float]:
        """Wait (background-thread mode, or driving the loop here) until every open client saw token."""
        key = token.encode()

        def done():
            arr = self.watch.get(key, {})
            want = min_clients if min_clients is not None else sum(1 for c in self.conns if c.state == "body")
            return len(arr) >= want

        if self._thread:
            with self.cond:
                self.cond.wait_for(done, timeout)
        else:
            self.run_until(done, timeout)
        with self.cond:
            return dict(self.watch.pop(key, {}))


# ------------------------------------------------------------------ child-process mode

def _child(args) -> int:
    raise_nofile(args.n + 256)
    lc = LoadClient(args.host, args.port, args.path, track_state=args.track_state, state_key=args.state_key)
    rng = random.Random(args.seed)
    lc.add(args.n)
    ok = lc.wait_all_init(args.connect_timeout)
    out = sys.stdout

    def say(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    first = [c.t_init for c in lc.conns if c.t_init]
    say({"ready": ok, **lc.summary(), "init_bytes": max((c.init_len for c in lc.conns), default=0),
         "t_first_init": min(first) if first else None, "t_last_init": max(first) if first else None})
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    os.set_blocking(stdin.fileno(), False)
    lc.sel.register(stdin, selectors.EVENT_READ, "stdin")
    # selectors give us key.data == "stdin" for commands: wrap poll
    buf = b""
    orig_feed_keys = lc.sel.select

    def select(timeout=None):
        nonlocal buf
        res = orig_feed_keys(timeout)
        rest = []
        for key, mask in res:
            if key.data == "stdin":
                try:
                    chunk = os.read(stdin.fileno(), 65536)
                except BlockingIOError:
                    chunk = b""
                if chunk == b"":
                    pending.append("quit")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    pending.append(line.decode().strip())
            else:
                rest.append((key, mask))
        return rest

    pending: list[str] = []
    lc.sel.select = select
    collecting: list[tuple] = []   # (token, deadline)
    while True:
        lc.poll(0.05)
        while pending:
            cmd = pending.pop(0)
            if not cmd:
                continue
            parts = cmd.split()
            if parts[0] == "quit":
                lc.close_all()
                say({"bye": True})
                return 0
            if parts[0] == "watch":
                lc.add_watch(parts[1])
                say({"watching": parts[1]})
            elif parts[0] == "collect":
                collecting.append((parts[1], time.monotonic() + float(parts[2])))
            elif parts[0] == "stats":
                say({"stats": lc.summary()})
            elif parts[0] == "churn":
                say(_churn(lc, rng, int(parts[1]), float(parts[2])))
            elif parts[0] == "check":
                with open(parts[1], "rb") as f:
                    say({"check": lc.compare(loads(f.read()))})
        for item in list(collecting):
            token, deadline = item
            key = token.encode()
            arr = lc.watch.get(key, {})
            open_n = sum(1 for c in lc.conns if c.state == "body")
            if len(arr) >= open_n or time.monotonic() >= deadline:
                collecting.remove(item)
                lc.watch.pop(key, None)
                say({"token": token, "arrivals": sorted(arr.values()), "open": open_n})


def _churn(lc: LoadClient, rng: random.Random, k: int, resume: float) -> dict:
    """k open clients leave and come back; clients the server closed come back too (with Last-Event-ID,
    as an EventSource reconnects)."""
    live = [c for c in lc.conns if c.state == "body"]
    dropped = [c for c in lc.conns if c.state == "closed" and c.sessions is not None]
    resumed = 0
    for c in rng.sample(live, min(k, len(live))):
        r = rng.random() < resume
        resumed += r
        lc.reconnect(c, r)
    for c in dropped:
        lc.reconnect(c, True)
    return {"churned": min(k, len(live)), "resumed": resumed, "server_closed": len(dropped)}


class ChildPool:
    """Several child load processes holding n clients between them."""

    def __init__(self, port: int, n: int, procs: int = 1, host: str = "127.0.0.1",
                 connect_timeout: float = 120.0, track_state: bool = False, state_key: str = "id"):
        import subprocess
        self.procs = []
        per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        for k in per:
            if k <= 0:
                continue
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--host", host, "--port", str(port),
                                  "-n", str(k), "--connect-timeout", str(connect_timeout),
                                  "--seed", str(len(self.procs)), "--state-key", state_key]
                                 + (["--track-state"] if track_state else []),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            self.procs.append(p)
        self.ready = [json.loads(p.stdout.readline() or "{}") for p in self.procs]

    @property
    def connected(self) -> int:
        return sum(r.get("init", 0) for r in self.ready)

    def ask(self, cmd: str) -> list[dict]:
        for p in self.procs:
            p.stdin.write(cmd + "\n")
            p.stdin.flush()
        return [json.loads(p.stdout.readline() or "{}") for p in self.procs]

    def send(self, cmd: str):
        for p in self.procs:
            p.stdin.write(cmd + "\n")
            p.stdin.flush()

    def replies(self) -> list[dict]:
        return [json.loads(p.stdout.readline() or "{}") for p in self.procs]

    def close(self):
        for p in self.procs:
            try:
                p.stdin.write("quit\n")
                p.stdin.flush()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except Exception:
                p.kill()
                p.wait(5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default=STREAM_PATH)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--connect-timeout", type=float, default=120.0)
    ap.add_argument("--track-state", action="store_true", help="keep each client's sessions (churn, check)")
    ap.add_argument("--seed", type=int, default=0, help="for churn's choices")
    ap.add_argument("--state-key", default="id", choices=["id", "key"],
                    help="what --track-state keys sessions by: id, or key (team mode: unique across hosts)")
    return _child(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
