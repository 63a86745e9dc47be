#!/usr/bin/env python3
"""Soak: a realistic workload for 30 minutes; the server's resources over time, its state checked at the end.

    .venv/bin/python bench/soak.py [--quick] [--duration 1800] [--clients 200] [--sessions 20]

Over a modest history (bench/make_corpus.py), all at once:
  sessions  --sessions terminals running Claude Code again and again. Each process is a real pid (a
            ``sleep`` child) with its registry file sessions/<pid>.json (the real CLI's fields, procStart
            from /proc); it runs turns at a real CLI's pace: prompt, tool calls, reply, each flush one
            O_APPEND write of 2.1.330 records rendered from make_corpus's templates, the registry
            rewritten in place busy -> (waiting ->) idle. Then it exits: cleanly (registry file removed)
            or, every KILL_EVERY-th exit, SIGKILLed (the file stays: the server must see the pid die).
            The next process starts a new session or resumes an ended one (its registry file first
            names a fresh id, then the resumed one, as ``--resume`` does).
  cleanup   as Claude Code deletes transcripts older than its cleanup period (30 days by default) when
            it starts: at each process start, while there are more main transcripts than the cap (the
            count at the start plus --cap-margin), the oldest (by mtime) of the ended sessions goes,
            its <session-id>/ folder with it; never one whose process runs or that ended in the last
            DELETE_AFTER_S. So the session count reaches a plateau, and growth is not mixed with data.
  clients   --clients stream clients in a child process (bench/sseload.py --track-state) that rebuild
            the session list from their events; every CHURN_S a few leave and come back, half with
            Last-Event-ID (an EventSource reconnecting), half afresh (a page load).
  slow      one client that reads 512 bytes a second: the server must overflow it (refresh), then drop it.
  refresh   POST /api/claude-sessions/refresh every REFRESH_S; a viewer opens a conversation now and then.
  observer  one client in this process times kill -> ended and exit -> ended.
Every SAMPLE_S: RSS (arbiter + worker), the worker's open descriptors and threads, greenlets (/healthz
?greenlets=1), stream clients, sessions, the server's overflow counters, CPU. When the descriptors exceed
their running median by more than FD_SPIKE, what the new ones are (link targets; sockets with their TCP
peer and the process of ours holding the other end) goes into the results.

At the end the load stops and things settle; then every connected client's state must equal GET /all,
and /all must equal a fresh scan of the directory (helm_monitor.sources.claude.catalog.Catalog, in this process).
"""

from __future__ import annotations

import argparse
import heapq
import html
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from common import BENCH, REPO, WORK, Server, pct, raise_nofile, table, tree_cpu, tree_pids, tree_rss, write_results
from make_corpus import MODELS_NEW, Ctx, Generator, jstr, make_corpus, parse_size, project_key
from sseload import STREAM_PATH, ChildPool, LoadClient, canonical, loads, state_diff

sys.path.insert(0, str(REPO))
from tests.support.claude import append, proc_start  # noqa: E402  one O_APPEND write; /proc field 22

VERSION = "2.1.330"
DEBOUNCE_MS = 500      # the server's default coalescing window
KILL_EVERY = 4         # one process exit in KILL_EVERY is a SIGKILL
RESUME_P = 0.3         # a new process resumes an ended session rather than starting one
ENDED_LIMIT_S = 5.0    # SPEC 5: a process that dies without removing its file: ended within 5 s
RESUME_AFTER_S = 20.0  # only sessions ended this long ago are resumed: their kill/exit timing is done
DELETE_AFTER_S = 30.0  # only sessions ended this long ago are deleted by the cleanup (timing done too)
FD_SPIKE = 5           # descriptors above their running median that get looked at
FD_MEDIAN_OF = 30      # samples in that running median
FD_SPIKE_RECORDS = 40  # spike snapshots kept in the results
GREENLET_EVERY_S = 10.5  # /healthz?greenlets=1 counts at most every 10 s (helm_monitor/web/ops.py)


def full_settings(a) -> dict:
    """The run's shape; --quick keeps it but scales it down to about a minute."""
    if a.quick:
        s = dict(duration=45.0, clients=20, sessions=5, pace=0.15, turns=(1, 3), sample_s=2.0, churn_s=3.0,
                 refresh_s=15.0, viewer_s=5.0, warmup_s=5.0, settle_s=4.0, corpus="2MB", keepalive_s=5.0,
                 cap_margin=2)
    else:
        s = dict(duration=1800.0, clients=200, sessions=20, pace=1.0, turns=(3, 20), sample_s=10.0,
                 churn_s=10.0, refresh_s=180.0, viewer_s=30.0, warmup_s=180.0, settle_s=8.0, corpus="10MB",
                 keepalive_s=None, cap_margin=10)
    for k in ("duration", "clients", "sessions", "cap_margin"):
        if getattr(a, k) is not None:
            s[k] = getattr(a, k)
    s["churn_k"] = max(1, s["clients"] // 20)
    s["quick"] = a.quick
    s["warmup_s"] = min(s["warmup_s"], s["duration"] / 4)
    return s


# ------------------------------------------------------------------ the Claude Code side

class Transcript:
    """One interactive 2.1.330 transcript, written turn by turn; each flush is one O_APPEND write."""

    def __init__(self, gen: Generator, root: Path, cwd: str):
        self.g, self.T = gen, gen.tpl.t330
        self.id = str(uuid.uuid4())
        self.cwd = cwd
        self.path = root / "projects" / project_key(cwd) / f"{self.id}.jsonl"
        self.c = Ctx(gen, self.id, cwd, "main", VERSION, time.time())
        self.model = gen.rng.choice(MODELS_NEW)
        self.title = gen.pool.sentence(3, 7)
        self.turns = 0
        self.scale = 1.0
        self.tool_id = None
        self.flushes = 0
        self.bytes = 0

    def _emit(self, kind: str, scale: float = 1.0, **vals) -> None:
        self.c.t = time.time()  # a record carries the time it is written
        self.c.emit(self.T[kind], scale=scale, dt=0.0, **vals)

    def write(self, data: bytes) -> None:  # Ctx.flush writes here
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        append(self.path, data)
        self.flushes += 1
        self.bytes += len(data)

    def _meta(self) -> None:
        for kind in ("mode", "permission-mode", "atis-latch"):
            self._emit(kind)
        if self.turns:
            self._emit("ai-title", TITLE=jstr(self.title))

    def _api(self) -> dict:
        g = self.g
        req = '"' + g.uuid() + '"'
        self._emit("api-request", REQ=req)
        return dict(MID=jstr("msg_01" + g.b62(22)), RID=jstr("req_011C" + g.b62(20)), MODEL=jstr(self.model),
                    REQ=req, **g.usage_vals())

    def prompt(self) -> None:
        """The user sends a prompt: it and the request the CLI copies into the transcript."""
        g, first = self.g, self.turns == 0
        self.scale = 1.0 if first else min(4.0, 0.3 + self.turns / 40) * math.exp(g.rng.gauss(0, 0.5))
        if first:
            self._meta()
        self.c.next_u = g.uuid()
        self._emit("file-history-snapshot", NEXTU='"' + self.c.next_u + '"')
        self.last_prompt = g.prompt()
        self._emit("user:prompt", PROMPT=jstr(self.last_prompt))
        if first:  # the first turn carries the CLI's whole context: most of a one-prompt session's bytes
            for kind in g.tpl.t330_first_attachments:
                self._emit(kind, self.scale)
            self._emit("api-request-shape", self.scale)
        elif g.rng.random() < 0.5:
            self._emit("attachment:date")
        self._emit("api-request-blob", self.scale)
        self.c.flush(self)

    def tool_use(self) -> None:
        g = self.g
        vals = self._api()
        if g.rng.random() < 0.4:
            self._emit("assistant:text", TEXT=jstr(g.pool.sentence(8, 60)), **vals)
        self.tool_id = jstr("toolu_01" + g.b62(22))
        self._emit("assistant:tool_use", TOOLID=self.tool_id, **vals,
                   TOOLINPUT=json.dumps({"command": g.pool.sentence(2, 8), "description": g.pool.sentence(3, 9)}))
        self.c.flush(self)

    def tool_result(self) -> None:
        n = int(self.g.lognormal(1500, 1.3) * self.scale)
        self._emit("user:tool_result", TOOLID=self.tool_id, TOOLOUT='"' + self.g.pool.take(n) + '"')
        self.c.flush(self)

    def reply(self) -> None:
        vals = self._api()
        self._emit("assistant:text", TEXT=jstr(self.g.pool.sentence(8, 90)), **vals)
        self.c.flush(self)

    def end_turn(self, duration_s: float) -> None:
        """What the CLI writes within ~100 ms of the reply: the prompt snapshot, the turn's duration."""
        self._emit("attachment:prompt_snapshot", self.scale * 6)
        self.turns += 1
        self._emit("system", DUR=str(int(duration_s * 1000)), MC=str(self.turns * 4))
        if self.turns == 1 or self.turns % 5 == 0:
            self._emit("last-prompt", PROMPT=jstr(self.last_prompt[:1000]))
            self._meta()
        self.c.flush(self)


class Process:
    """A stand-in Claude Code process: a real pid (``sleep``) and its registry file, rewritten in place."""

    def __init__(self, root: Path, template: dict, session_id: str, cwd: str):
        self.child = subprocess.Popen(["sleep", "infinity"], stdin=subprocess.DEVNULL)
        pid = self.pid = self.child.pid
        self.path = root / "sessions" / f"{pid}.json"
        self.key = root / "sessions" / f"{pid}.{uuid.uuid4().hex[:16]}.key"  # comes and goes with it
        now = int(time.time() * 1000)
        self.data = dict(template, pid=pid, sessionId=session_id, cwd=cwd, procStart=proc_start(pid),
                         startedAt=now, name=f"{os.path.basename(cwd)}-{pid % 100}", nameSince=now,
                         messagingSocketPath=f"/tmp/cc-socks/{pid}.sock", status="idle",
                         updatedAt=now, statusUpdatedAt=now)
        self.key.write_text("soak-not-a-real-secret\n")
        self._write()

    def set(self, **changes) -> None:
        now = int(time.time() * 1000)
        if "status" in changes:
            changes["statusUpdatedAt"] = now
            if changes["status"] != "waiting":
                self.data.pop("waitingFor", None)
        self.data.update(changes, updatedAt=now)
        self._write()

    def _write(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(self.data).encode())
        finally:
            os.close(fd)

    def exit(self) -> None:
        """A clean exit: the CLI removes its files, then the process ends."""
        self.path.unlink()
        self.key.unlink()
        self.child.terminate()
        self.child.wait()

    def kill(self) -> None:
        """A crash: the files stay. Reaped at once, so the pid is really gone (not a zombie)."""
        self.child.kill()
        self.child.wait()


# ------------------------------------------------------------------ the load

class Scheduler:
    """Runs generator tasks in one thread; a task yields the seconds to wait before its next step.

    Load tasks stop at the end of the load; the others (timing a kill) run until done.
    """

    def __init__(self):
        self._heap: list = []
        self._n = 0

    def spawn(self, task, delay: float = 0.0, load: bool = True) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, self._n, task, load))
        self._n += 1

    def run(self, until: float, load: bool = True) -> None:
        """Run tasks until ``until`` (with load=False: only the non-load ones)."""
        while time.monotonic() < until:
            if not self._heap:
                time.sleep(min(0.2, until - time.monotonic()))
                continue
            t, _, task, is_load = self._heap[0]
            if is_load and not load:
                heapq.heappop(self._heap)
                continue
            wait = min(t, until) - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.2))
                continue
            heapq.heappop(self._heap)
            try:
                delay = next(task)
            except StopIteration:
                continue
            self.spawn(task, delay, is_load)


class Soak:
    def __init__(self, s: dict, root: Path, srv: Server, manifest: dict, seed: int = 5):
        self.s, self.root, self.srv = s, root, srv
        self.rng = random.Random(seed)
        self.gen = Generator(seed)
        self.template = self.gen.tpl.registry
        self.cwds = sorted({x["cwd"] for x in manifest["sessions"] if x["kind"] != "v29"})[:12]
        self.sched = Scheduler()
        self.procs: set[Process] = set()
        self.ended: list[tuple[float, Transcript]] = []  # (when, transcript): may be resumed
        self.counts = dict(processes=0, new_sessions=0, resumed=0, clean_exits=0, kills=0, turns=0, waiting=0,
                           refreshes=0, viewer_requests=0, http_errors=0, churned=0, churn_resumed=0,
                           server_closed_clients=0, deleted=0, deleted_dirs=0, cleanup_skipped_live=0)
        self.ended_at: dict[str, float] = {}  # session id -> when its last process ended
        self.in_use: set[str] = set()         # sessions whose process runs
        self.cap: int | None = None           # main transcripts kept by the cleanup
        self.sessions_start: int | None = None
        self.deleted: list[tuple[float, str]] = []  # (when, session id)
        self.t0 = time.monotonic()            # the sampler's time origin (run_soak sets it)
        self.timeline: list[dict] = []        # refreshes, conversation reads, deletions, kills: when
        self.ended_after = {"kill": [], "exit": []}
        self.ended_late = {"kill": [], "exit": []}
        self.transcripts: list[Transcript] = []
        self.pool: ChildPool | None = None
        self.observer: LoadClient | None = None

    def wait(self, seconds: float) -> float:
        """A delay of the workload, scaled by --quick's pace."""
        return seconds * self.s["pace"]

    def log(self, what: str, **more) -> None:
        """What happened when (seconds on the samples' clock), to set beside RSS steps."""
        self.timeline.append({"t": round(time.monotonic() - self.t0, 1), "what": what, **more})

    # -- the cleanup period ----------------------------------------------------------
    def main_transcripts(self) -> list[tuple[float, str, Path]]:
        """(mtime, session id, path) of every main transcript on disk."""
        out = []
        for pdir in (self.root / "projects").iterdir():
            if not pdir.is_dir():
                continue
            for e in os.scandir(pdir):
                if e.name.endswith(".jsonl") and not e.name.startswith("agent-"):
                    try:
                        out.append((e.stat().st_mtime, e.name[:-len(".jsonl")], Path(e.path)))
                    except FileNotFoundError:
                        pass
        return out

    def start_cleanup(self, margin: int) -> None:
        self.sessions_start = len(self.main_transcripts())
        self.cap = self.sessions_start + margin

    def cleanup(self) -> None:
        """What a starting CLI does with transcripts past the cleanup period: here, the oldest ended ones
        beyond the cap. Never a session whose process runs (nor one just ended, still being timed)."""
        files = self.main_transcripts()
        over = len(files) - self.cap
        if over <= 0:
            return
        now = time.monotonic()
        for _, sid, path in sorted(files):
            if over <= 0:
                break
            if sid in self.in_use or now - self.ended_at.get(sid, -1e9) < DELETE_AFTER_S:
                self.counts["cleanup_skipped_live"] += sid in self.in_use
                continue
            folder = path.with_suffix("")  # <session-id>/: subagents, tool-results, custom-title.json
            if folder.is_dir():
                shutil.rmtree(folder)
                self.counts["deleted_dirs"] += 1
            self.log("deleted", sid=sid, bytes=path.stat().st_size)
            path.unlink()
            self.ended = [(w, t) for w, t in self.ended if t.id != sid]  # gone: never resumed
            self.deleted.append((now, sid))
            self.counts["deleted"] += 1
            over -= 1

    # -- one terminal -----------------------------------------------------------
    def terminal(self):
        rng = self.rng
        yield self.wait(rng.uniform(0, 15))  # terminals do not all start at once
        while True:
            old = [t for when, t in self.ended if time.monotonic() - when > RESUME_AFTER_S]
            resumed = rng.random() < RESUME_P and old
            if resumed:
                tr = rng.choice(old)
                self.ended = [(w, t) for w, t in self.ended if t is not tr]
                self.counts["resumed"] += 1
            else:
                tr = Transcript(self.gen, self.root, rng.choice(self.cwds))
                self.transcripts.append(tr)
                self.counts["new_sessions"] += 1
            self.in_use.add(tr.id)
            self.cleanup()  # the CLI starting
            # --resume: the registry file names a fresh id first, then the resumed session's
            proc = Process(self.root, self.template, str(uuid.uuid4()) if resumed else tr.id, tr.cwd)
            self.procs.add(proc)
            self.counts["processes"] += 1
            yield self.wait(rng.uniform(0.5, 2))
            if resumed:
                proc.set(sessionId=tr.id)
            yield self.wait(rng.uniform(2, 10))  # the user types the first prompt
            for _ in range(rng.randint(*self.s["turns"])):
                yield from self.turn(proc, tr)
                yield self.wait(min(180.0, self.gen.lognormal(20, 0.8)))  # reading, thinking, typing
            self.procs.discard(proc)
            self.in_use.discard(tr.id)
            self.ended_at[tr.id] = time.monotonic()
            ends = self.counts["kills"] + self.counts["clean_exits"] + 1
            kind = "kill" if ends % KILL_EVERY == 0 else "exit"
            self.log(kind, sid=tr.id)
            if kind == "kill":
                proc.kill()
                self.counts["kills"] += 1
            else:
                proc.exit()
                self.counts["clean_exits"] += 1
            self.sched.spawn(self.await_ended(tr.id, time.monotonic(), kind), load=False)
            self.ended.append((time.monotonic(), tr))
            yield self.wait(rng.uniform(2, 15))

    def turn(self, proc: Process, tr: Transcript):
        rng, t0 = self.rng, time.monotonic()
        proc.set(status="busy")
        tr.prompt()
        for _ in range(min(int(rng.expovariate(0.5)), 8)):
            yield self.wait(self.gen.lognormal(3, 0.6))   # the model streams its answer
            tr.tool_use()
            if rng.random() < 0.1:  # a permission prompt
                self.counts["waiting"] += 1
                proc.set(status="waiting", waitingFor="dialog open")
                yield self.wait(rng.uniform(2, 8))
                proc.set(status="busy")
            yield self.wait(min(30.0, self.gen.lognormal(1.5, 1.0)))  # the tool runs
            tr.tool_result()
        yield self.wait(self.gen.lognormal(3, 0.6))
        tr.reply()
        yield rng.uniform(0.02, 0.12)
        tr.end_turn(time.monotonic() - t0)
        proc.set(status="idle")
        self.counts["turns"] += 1

    # -- clients, refresh, viewer ----------------------------------------------------
    def churn(self):
        while True:
            yield self.s["churn_s"]
            r = self.pool.ask(f"churn {self.s['churn_k']} 0.5")[0]
            self.counts["churned"] += r["churned"]
            self.counts["churn_resumed"] += r["resumed"]
            self.counts["server_closed_clients"] += r["server_closed"]

    def refresher(self):
        while True:
            yield self.s["refresh_s"] * self.rng.uniform(0.7, 1.3)
            self.log("refresh", status=self._http("POST", "/api/claude-sessions/refresh", "refreshes"))

    def viewer(self):
        """Someone opens a session's conversation (the page's detail view)."""
        while True:
            yield self.s["viewer_s"]
            gone = {sid for _, sid in self.deleted}
            live = [t for t in self.transcripts if t.id not in gone]
            if live:
                tr = self.rng.choice(live)
                t = time.monotonic()
                status = self._http("GET", f"/api/claude-sessions/{tr.id}?limit=50", "viewer_requests", ok=(200, 404))
                self.log("conversation", sid=tr.id, bytes=tr.bytes, status=status,
                         ms=round(1000 * (time.monotonic() - t)))

    def _http(self, method: str, path: str, counter: str, ok=(200,)) -> int | None:
        try:
            status, _ = self.srv.request(method, path, timeout=30)
        except OSError:
            status = None
        self.counts[counter if status in ok else "http_errors"] += 1
        return status

    def status_seen(self, sid: str) -> str | None:
        conn = self.observer.conns[0]
        raw = (conn.sessions or {}).get(sid)
        return loads(raw)["status"] if raw else None

    def await_ended(self, sid: str, t0: float, kind: str):
        """Time from the process's end until the observer's stream says the session ended."""
        while time.monotonic() - t0 < 4 * ENDED_LIMIT_S:
            if self.status_seen(sid) == "ended":
                self.ended_after[kind].append(time.monotonic() - t0)
                return
            yield 0.02
        self.ended_late[kind].append(sid)

    def run(self, until: float) -> None:
        for _ in range(self.s["sessions"]):
            self.sched.spawn(self.terminal())
        for task in (self.churn(), self.refresher(), self.viewer()):
            self.sched.spawn(task)
        self.sched.run(until)

    def settle(self, seconds: float) -> None:
        """Load stopped: only the kill/exit timings still run."""
        self.sched.run(time.monotonic() + seconds, load=False)

    def stop_processes(self) -> None:
        for proc in self.procs:
            proc.child.kill()
            proc.child.wait()
        self.procs.clear()


class SlowClient(threading.Thread):
    """A stream client that reads 512 bytes a second: it falls behind, the server overflows it (a refresh
    replaces its backlog), then drops it. Once /metrics counts the drop it reads what is left at full
    speed (else the bytes already in flight would take minutes): the socket must then end. It reconnects
    after the stream's retry delay."""

    def __init__(self, srv: Server):
        super().__init__(daemon=True, name="slow-client")
        self.srv = srv
        self.stop_ev = threading.Event()
        self.connections = self.drops = self.not_closed = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stop_ev.is_set():
            try:
                self._one()
            except OSError:
                pass
            self.stop_ev.wait(3.0)  # the stream's retry: 3000

    def _one(self) -> None:
        with socket.socket() as s:
            # Before connect: a small window, and a small MSS (a VPN or mobile link). On loopback the
            # server's send buffer would grow to ~4 MB and take half an hour to fill; with MSS 536 it
            # stays ~170 KB, so falling behind shows within minutes.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
            s.settimeout(10)
            s.connect(("127.0.0.1", self.srv.port))
            s.sendall(f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.srv.port}\r\n"
                      "Accept: text/event-stream\r\n\r\n".encode())
            self.connections += 1
            drops0 = server_counters(self.srv).get("slow_disconnects", 0)
            next_check = time.monotonic() + 5
            while not self.stop_ev.wait(1.0):
                if not self._read(s, 512):
                    return
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 5
                    if server_counters(self.srv).get("slow_disconnects", 0) > drops0:
                        self._drain(s)
                        return

    def _read(self, s: socket.socket, n: int) -> bool:
        """One recv(); False once the server has closed the connection."""
        try:
            data = s.recv(n)
        except socket.timeout:
            return True
        if not data:
            self.drops += 1
            return False
        self.bytes += len(data)
        return True

    def _drain(self, s: socket.socket) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self._read(s, 65536):
                return
        self.not_closed += 1  # the server counted a drop but the connection stays open

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(15)


# ------------------------------------------------------------------ measuring

def server_counters(srv: Server) -> dict:
    """The stream counters from /metrics (Prometheus text), summed over labels."""
    try:
        status, body = srv.request("GET", "/metrics", timeout=10)
    except (OSError, http.client.HTTPException):
        return {}
    names = {"helm_stream_overflows_total": "overflows", "helm_stream_slow_disconnects_total": "slow_disconnects",
             "helm_events_published_total": "published"}
    out: dict[str, float] = {}
    for line in body.decode().splitlines() if status == 200 else ():
        m = re.match(r"^(\w+)(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m and m.group(1) in names:
            key = names[m.group(1)]
            out[key] = out.get(key, 0) + float(m.group(2))
    return out


def count_dir(path: str) -> int | None:
    try:
        return len(os.listdir(path))
    except OSError:
        return None


TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def fd_targets(pid: int) -> dict[int, str]:
    """fd -> link target (socket:[inode], pipe:[inode], anon_inode:..., a path) of a process."""
    out = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return out


def tcp_sockets(pid: int) -> dict[int, dict]:
    """inode -> local port, remote port, state: /proc/<pid>/net/tcp and tcp6 (the process's namespace)."""
    out = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            x = row.split()
            if len(x) < 10:
                continue
            out[int(x[9])] = {"local": int(x[1].rsplit(":", 1)[1], 16), "remote": int(x[2].rsplit(":", 1)[1], 16),
                              "state": TCP_STATES.get(int(x[3], 16), x[3])}
    return out


def socket_owners(inodes: set[int]) -> dict[int, str]:
    """Which process of this benchmark's tree holds each socket inode: 'pid name'."""
    out, want = {}, {f"socket:[{i}]": i for i in inodes}
    for pid in tree_pids(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = [os.path.basename(a.decode(errors="replace")) for a in f.read().split(b"\0")[:2] if a]
        except OSError:
            continue
        label = f"{pid} {' '.join(cmd)}" + (" (soak)" if pid == os.getpid() else "")
        for target in fd_targets(pid).values():
            if target in want:
                out[want[target]] = label
    return out


def describe_fds(pid: int, fds: dict[int, str]) -> list[dict]:
    """The given descriptors of pid; a TCP socket with its ports, state and the holder of its other end."""
    tcp = tcp_sockets(pid)
    by_port = {(v["local"], v["remote"]): k for k, v in tcp.items()}
    out, peers = [], {}
    for fd, target in sorted(fds.items()):
        x = {"fd": fd, "target": target}
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m and int(m.group(1)) in tcp:
            t = tcp[int(m.group(1))]
            x.update(local_port=t["local"], peer_port=t["remote"], state=t["state"])
            peer = by_port.get((t["remote"], t["local"]))  # the other end, if it is on this machine
            if peer is not None and t["remote"]:
                peers[fd] = peer
        elif m:
            x["state"] = "not TCP (unix, or closed)"
        out.append(x)
    owners = socket_owners(set(peers.values()))
    for x in out:
        if x["fd"] in peers:
            x["peer_held_by"] = owners.get(peers[x["fd"]], "no process of the benchmark (closed)")
    return out


def fd_kind(target: str) -> str:
    return target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"


class Sampler(threading.Thread):
    """Every interval: resources of the arbiter + worker, and what the server says of itself."""

    def __init__(self, srv: Server, interval: float, t0: float):
        super().__init__(daemon=True, name="sampler")
        self.srv, self.interval, self.t0 = srv, interval, t0
        self.samples: list[dict] = []
        self.stop_ev = threading.Event()
        self.greenlets_asked = -1e9      # when ?greenlets=1 was last asked (the server counts every 10 s)
        self.fd_spikes: list[dict] = []  # descriptors above their running median: what the new ones were
        self.fd_spike_samples = 0
        self._normal_fds: dict[int, str] = {}

    def look_at_fds(self, x: dict) -> None:
        """Compare the worker's descriptors with their running median; on a spike keep the new ones."""
        w, n = x["worker"], x["fds"]
        if not w or n is None:
            return
        targets = fd_targets(w)
        recent = [y["fds"] for y in self.samples[-FD_MEDIAN_OF:] if y.get("fds") is not None]
        median = statistics.median(recent) if len(recent) >= 6 else None
        if median is None or n <= median + FD_SPIKE:
            self._normal_fds = targets
            return
        self.fd_spike_samples += 1
        x["fd_spike"] = True
        if len(self.fd_spikes) >= FD_SPIKE_RECORDS:
            return
        new = {fd: t for fd, t in targets.items() if self._normal_fds.get(fd) != t}
        kinds: dict[str, int] = {}
        for t in targets.values():
            kinds[fd_kind(t)] = kinds.get(fd_kind(t), 0) + 1
        self.fd_spikes.append({"t": x["t"], "fds": n, "median": median, "by_kind": kinds,
                               "gone": len([fd for fd in self._normal_fds if fd not in targets]),
                               "new": describe_fds(w, new)[:60]})

    def sample(self) -> dict:
        workers = self.srv.worker_pids()
        w = workers[0] if workers else None
        # /proc first: our own requests below would count among the worker's descriptors
        x = {"t": round(time.monotonic() - self.t0, 1), "worker": w,
             "rss_mb": round(tree_rss(self.srv.pid) / 1e6, 2),
             "rss_worker_mb": round(tree_rss(w) / 1e6, 2) if w else None,
             "fds": count_dir(f"/proc/{w}/fd"), "threads": count_dir(f"/proc/{w}/task"),
             "cpu_s": round(tree_cpu(self.srv.pid), 2)}
        self.look_at_fds(x)
        self.greenlets_asked = time.monotonic()
        try:  # ?greenlets=1: the server counts them only when asked (a walk over every object)
            h = self.srv.get_json("/healthz?greenlets=1", timeout=10)
        except (OSError, RuntimeError, ValueError, http.client.HTTPException):
            h = {}
        x.update(greenlets=h.get("greenlets"),
                 clients=h.get("clients"), sessions=h.get("sessions"), **server_counters(self.srv))
        return x

    def run(self) -> None:
        while not self.stop_ev.is_set():
            x = self.sample()
            if self.samples:  # CPU of the tree over the interval, in % of one core
                prev = self.samples[-1]
                x["cpu_pct"] = round(100 * (x["cpu_s"] - prev["cpu_s"]) / max(0.1, x["t"] - prev["t"]), 2)
            self.samples.append(x)
            self.stop_ev.wait(self.interval)

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(15)


def growth(samples: list[dict], key: str, start: float, end: float) -> dict:
    """Median of the first 10 % of [start, end] against the last 10 %."""
    span = (end - start) * 0.1
    first = [x[key] for x in samples if start <= x["t"] < start + span and x.get(key) is not None]
    last = [x[key] for x in samples if end - span <= x["t"] <= end and x.get(key) is not None]
    if not first or not last:
        return {"first": None, "last": None, "growth_pct": None, "max": None}
    a, b = statistics.median(first), statistics.median(last)
    return {"first": a, "last": b, "growth_pct": round(100 * (b - a) / a, 2) if a else None,
            "max": max(x[key] for x in samples if x.get(key) is not None)}


def rss_steps(samples: list[dict], timeline: list[dict], start: float, end: float,
              key: str = "rss_worker_mb", min_mb: float = 0.3) -> dict:
    """The worker's RSS rises between two samples by min_mb or more: what happened in between. A
    conversation read is marked when its transcript was the largest read so far (a new high-water mark)."""
    largest, biggest_before = 0, []
    for e in timeline:  # the largest transcript read before each event
        biggest_before.append(largest)
        if e["what"] == "conversation" and e.get("status") == 200:
            largest = max(largest, e["bytes"])
    steps = []
    sm = [x for x in samples if start <= x["t"] <= end and x.get(key) is not None]
    for prev, x in zip(sm, sm[1:]):
        d = x[key] - prev[key]
        if d < min_mb:
            continue
        events = []
        for e, before in zip(timeline, biggest_before):
            if prev["t"] < e["t"] <= x["t"] and e["what"] not in ("exit",):
                events.append({**e, **({"largest_so_far": e["bytes"] > before} if e["what"] == "conversation" else {})})
        for c in ("overflows", "slow_disconnects"):
            if (x.get(c) or 0) > (prev.get(c) or 0):
                events.append({"t": x["t"], "what": c})
        steps.append({"t": x["t"], "mb": round(d, 2), "events": events})
    total = sm[-1][key] - sm[0][key] if len(sm) > 1 else None
    return {"min_mb": min_mb, "steps": steps, "mb_in_steps": round(sum(x["mb"] for x in steps), 2),
            "mb_total": None if total is None else round(total, 2),
            "with_largest_read": sum(any(e.get("largest_so_far") for e in x["events"]) for x in steps)}


def compare_scan(root: Path, all_sessions: list[dict]) -> dict:
    """GET /all against a fresh full scan of the directory in this process. Every field is compared:
    the live sessions are all 2.1.330 (status from the registry); the old versions' recent-write rule
    is on the files' times, long past at the end."""
    from helm_monitor.sources.claude.catalog import Catalog
    cat = Catalog(root)
    cat.full_scan()
    fresh = {sid: canonical(s) for sid, s in cat.sessions().items()}
    served = {s["id"]: canonical(s) for s in all_sessions}
    diff = state_diff("fresh-scan", served, fresh)
    n = len(diff["missing"]) + len(diff["extra"]) + len(diff["changed"])
    return {"sessions": len(fresh), "divergent": n, "diff": diff if n else None}


def server_module(env: dict) -> str:
    """Where the server imports helm_monitor from: run with its environment and working directory."""
    out = subprocess.run([sys.executable, "-c", "import helm_monitor; print(helm_monitor.__file__)"],
                         env=env, cwd=str(REPO), capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or out.stderr.strip()[-300:]


def commit() -> str | None:
    """The tree's commit, and whether helm_monitor/ has changes not committed."""
    git = lambda *args: subprocess.run(["git", *args], cwd=str(REPO), capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    return head + (" with uncommitted changes to helm_monitor/" if git("status", "--porcelain", "helm_monitor") else "")


def log_problems(text: str) -> dict:
    """Tracebacks in the server log, by the exception that ended each; errors and warnings logged."""
    lines = text.splitlines()
    exceptions: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            last = next((x for x in lines[i + 1:] if x and not x[0].isspace()), "?")[:200]
            exceptions[last] = exceptions.get(last, 0) + 1
    return {"tracebacks": sum(exceptions.values()), "exceptions": exceptions,
            "errors": len(re.findall(r"\[ERROR\]|\bERROR\b", text)),
            "warnings": len(re.findall(r"\[WARNING\]|\bWARNING\b", text))}


# ------------------------------------------------------------------ plots and report

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def ticks(step: float, top: float) -> list[float]:
    return [round(k * step, 10) for k in range(int(top / step + 1e-9) + 1)]


def svg_chart(path: Path, title: str, ylabel: str, t: list[float], series: list[tuple[str, list]]) -> None:
    """A small line chart, hand-written SVG: x in minutes, y from 0; series are (label, values)."""
    W, H, L, R, T, B = 720, 310, 64, 20, 50, 46
    minutes = [x / 60 for x in t]
    xmax = max(minutes[-1] if minutes else 1.0, 1e-3)
    ys = [v for _, vals in series for v in vals if v is not None]
    top = max(ys) * 1.15 if ys else 1.0
    ystep = nice_step(top)
    ymax = ystep * math.ceil(top / ystep)
    xstep = nice_step(xmax, 6)
    px = lambda m: L + m / xmax * (W - L - R)
    py = lambda v: T + (1 - v / ymax) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>']
    for v in ticks(ystep, ymax):  # grid lines
        out.append(f'<line x1="{L}" y1="{py(v):.1f}" x2="{W - R}" y2="{py(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for m in ticks(xstep, xmax):
        out.append(f'<line x1="{px(m):.1f}" y1="{H - B}" x2="{px(m):.1f}" y2="{H - B + 4}" stroke="#333"/>'
                   f'<text x="{px(m):.1f}" y="{H - B + 17}" text-anchor="middle">{m:g}</text>')
    out.append(f'<path d="M{L} {T} V{H - B} H{W - R}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">minutes</text>')
    out.append(f'<text transform="translate(16 {(T + H - B) / 2}) rotate(-90)" text-anchor="middle">'
               f'{html.escape(ylabel)}</text>')
    for i, (label, vals) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{px(m):.1f},{py(v):.1f}" for m, v in zip(minutes, vals) if v is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        lx = L + 190 * i  # the legend: one row between the title and the plot
        out.append(f'<line x1="{lx}" y1="34" x2="{lx + 20}" y2="34" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{lx + 25}" y="38">{html.escape(label)}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def plots(res: dict, out_dir: Path) -> list[str]:
    sm = [x for x in res["samples"] if x["t"] <= res["load_end_s"]]
    t = [x["t"] for x in sm]
    col = lambda k: [x.get(k) for x in sm]
    charts = [("soak-rss.svg", "Server RSS during the soak", "MB",
               [("arbiter + worker", col("rss_mb")), ("worker", col("rss_worker_mb"))]),
              ("soak-fds.svg", "Open descriptors of the worker", "count",
               [("open descriptors", col("fds")), ("stream clients", col("clients")),
                ("sessions listed", col("sessions"))]),
              ("soak-tasks.svg", "Threads and greenlets of the worker", "count",
               [("threads", col("threads"))] + ([("greenlets", col("greenlets"))]
                                                if any(v is not None for v in col("greenlets")) else []))]
    for name, title, ylabel, series in charts:
        svg_chart(out_dir / name, title, ylabel, t, series)
    return [c[0] for c in charts]


def window(res: dict) -> tuple[str, dict]:
    """The window growth is judged on: the session-count plateau if the run reached one, else after warm-up."""
    gp = res.get("growth_plateau") or {}
    if (gp.get("rss_mb") or {}).get("growth_pct") is not None:
        return "plateau", gp
    return "warm-up", res["growth"]


def verdicts(res: dict) -> dict:
    _, g = window(res)
    before, after = res["at_rest"]["before"], res["at_rest"]["after"]
    no_growth = lambda k: None if after.get(k) is None or before.get(k) is None else after[k] <= before[k]
    rss = [g[k]["growth_pct"] for k in ("rss_mb", "rss_worker_mb")]
    return {
        "rss_flat": all(x is not None and x < 5 for x in rss),
        "no_fd_growth": bool(no_growth("fds")),
        "no_thread_growth": bool(no_growth("threads")),
        "no_greenlet_growth": no_growth("greenlets"),
        "zero_divergence": res["divergences"] == 0,
        "ended_in_time": not res["ended"]["late"]["kill"] and not res["ended"]["late"]["exit"]
        and all(x <= ENDED_LIMIT_S for x in res["ended"]["after_s"]["kill"]),
        "one_worker": len(res["worker_pids"]) == 1,
    }


def fd_spike_summary(res: dict) -> str:
    """One sentence on the descriptor spikes seen (what the new descriptors were)."""
    fs = res.get("fd_spikes")
    if fs is None:
        return ""
    if not fs["samples"]:
        return (f"no sample had more than {fs['threshold']} descriptors above the running median of "
                f"{fs['median_of']} samples.")
    recs = fs["records"]
    when = sorted({round(r["t"] / 60, 1) for r in recs})
    peak = max(recs, key=lambda r: r["fds"] - r["median"]) if recs else None
    kinds: dict[str, int] = {}
    for x in peak["new"] if peak else ():  # a socket by its state and holder; anything else by its target
        k = (f"socket {x.get('state')}, other end held by {x['peer_held_by']}" if "peer_held_by" in x
             else f"`{x['target']}`" if fd_kind(x["target"]) == "file" else fd_kind(x["target"]))
        kinds[k] = kinds.get(k, 0) + 1
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:4]
    return (f"{fs['samples']} samples had more than {fs['threshold']} above the running median"
            + (f" (at minutes {', '.join(f'{m:g}' for m in when[:12])}{' ...' if len(when) > 12 else ''}; "
               f"peak {peak['fds']} against a median of {peak['median']:g}); the descriptors not there at the "
               "last sample before, at the peak: " + ", ".join(f"{n} x {k}" for k, n in top) if peak else "")
            + ".")


def rss_steps_summary(st: dict) -> str:
    """One sentence on where the worker's RSS rose."""
    if not st["steps"]:
        return f"no rise of {st['min_mb']:g} MB or more between two samples."
    reads = sum(any(e["what"] == "conversation" for e in x["events"]) for x in st["steps"])
    return (f"of the worker's {st['mb_total']:+.1f} MB over the window, {st['mb_in_steps']:.1f} MB came in "
            f"{len(st['steps'])} rise(s) of {st['min_mb']:g} MB or more between two samples (at minutes "
            + ", ".join(f"{x['t'] / 60:.1f} (+{x['mb']:.1f})" for x in st["steps"][:10])
            + f"); {reads} with a conversation read in the interval, {st['with_largest_read']} with "
            "a read of the largest transcript read so far.")


def markdown(res: dict) -> str:
    """The Soak section of bench/RESULTS.md (run_all.py uses it too)."""
    rest, c, v, st = res["at_rest"], res["counts"], res["verdicts"], res["settings"]
    which, g = window(res)
    gw = res["growth"]
    ses = res.get("sessions") or {}
    ok = lambda x: "-" if x is None else ("met" if x else "**missed**")
    num = lambda x, unit="": "-" if x is None else (f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}") + unit
    pctf = lambda x: "-" if x is None else f"{x:+.1f} %"
    secs = lambda x: "-" if x is None else f"{x:.2f} s"
    kills, exits = res["ended"]["after_s"]["kill"], res["ended"]["after_s"]["exit"]
    late = res["ended"]["late"]
    ev = res["client_events"]

    def over_time(label, key, target="", verdict="", gg=None):
        gg = gg or g
        return [label, num(gg[key]["first"]), num(gg[key]["last"]), pctf(gg[key]["growth_pct"]), target, verdict]

    def before_after(label, key, verdict):
        return [label, num(rest["before"].get(key)), num(rest["after"].get(key)), "", "no growth", verdict]

    greenlets = g["greenlets"]["first"] is not None or rest["after"].get("greenlets") is not None
    rows = [over_time("RSS, arbiter + worker (MB)", "rss_mb", "growth < 5 %", ok(v["rss_flat"])),
            over_time("RSS, worker (MB)", "rss_worker_mb", "growth < 5 %", ok(v["rss_flat"])),
            over_time("open descriptors, worker", "fds"),
            before_after("open descriptors, no client connected: before / after", "fds", ok(v["no_fd_growth"])),
            over_time("threads, worker", "threads"),
            before_after("threads, no client connected: before / after", "threads", ok(v["no_thread_growth"])),
            over_time("greenlets, worker, clients connected", "greenlets"),
            before_after("greenlets, no client connected: before / after", "greenlets",
                         ok(v["no_greenlet_growth"]) if greenlets else "not reported by the server"),
            over_time("sessions listed", "sessions"),
            over_time("CPU, arbiter + worker (% of one core)", "cpu_pct"),
            ["process killed -> `ended` on the stream", f"p50 {secs(res['ended']['p50_s']['kill'])}",
             f"max {secs(max(kills) if kills else None)}", "", "<= 5 s", ok(v["ended_in_time"])],
            ["divergent states at the end", "", str(res["divergences"]), "", "0", ok(v["zero_divergence"])]]
    if which == "plateau" and res["plateau_start_s"] - res["load_start_s"] - st["warmup_s"] > 2 * st["sample_s"]:
        # the same measures from the end of the warm-up, the session count still rising
        rows[2:2] = [over_time("RSS, arbiter + worker (MB), from the end of the warm-up", "rss_mb", gg=gw),
                     over_time("RSS, worker (MB), from the end of the warm-up", "rss_worker_mb", gg=gw)]
    head = ["measure", "first 10 % / before", "last 10 % / after", "growth", "target", ""]
    source = f" Server: commit {res['commit']}." if res.get("commit") else ""
    span = (f"the plateau of the session count (from {res['plateau_start_s'] / 60:.1f} min, the cleanup's "
            f"first deletion, to the end of the load at {res['load_end_s'] / 60:.1f} min)" if which == "plateau"
            else f"the load after {st['warmup_s']:g} s of warm-up")
    deleted = res.get("check", {}).get("deleted_still_listed", [])
    lines = [
        "## Soak", "",
        f"`bench/soak.py`, {st['duration'] / 60:.0f} minutes on {res['when']}.{source} First / last 10 %: "
        f"medians of the samples (every {st['sample_s']:g} s) in the first 10 % and the last 10 % of {span}. "
        "Before / after: with no stream client connected, before the load and after it (the greenlet count "
        "taken fresh, /healthz?greenlets=1 counts at most every 10 s).", "",
        table(head, rows), "",
        f"- Workload: {st['sessions']} terminals running Claude Code 2.1.330 at a real pace; "
        f"{c['processes']} processes ({c['kills']} SIGKILLed, their registry files left behind; "
        f"{c['clean_exits']} clean exits), {c['new_sessions']} new and {c['resumed']} resumed sessions, "
        f"{c['turns']} turns, {res['writes']['flushes']} O_APPEND writes ({res['writes']['bytes'] / 1e6:.0f} MB), "
        f"{c['waiting']} permission prompts.",
        f"- Cleanup period: {ses.get('transcripts_start')} main transcripts at the start, cap "
        f"{ses.get('cap')} (+{st.get('cap_margin')}); at each process start the oldest ended sessions beyond it "
        f"were deleted, {ses.get('deleted', 0)} in all ({ses.get('deleted_dirs', 0)} with a <session-id>/ "
        f"folder), the first at {num((ses.get('first_deletion_s') or 0) / 60)} min. Sessions listed: "
        f"{num(ses.get('listed_start'))} at the start, {num(ses.get('plateau_min'))}-{num(ses.get('plateau_max'))} "
        f"over the plateau, {res['sessions_end']} at the end; {len(deleted)} deleted sessions still listed.",
        f"- Process gone -> `ended`: {len(kills)} kills (p50 {secs(res['ended']['p50_s']['kill'])}, "
        f"max {secs(max(kills) if kills else None)}, {len(late['kill'])} later than 20 s), "
        f"{len(exits)} clean exits (p50 {secs(res['ended']['p50_s']['exit'])}, "
        f"max {secs(max(exits) if exits else None)}, {len(late['exit'])} late).",
        f"- Stream clients: {st['clients']} at once in one epoll process, {res['connections']['total']} "
        f"connections in all ({st['churn_k']} leave and come back every {st['churn_s']:g} s, half with "
        f"Last-Event-ID; {c['server_closed_clients']} closed by the server); {sum(ev.values())} events "
        "received (" + ", ".join(f"{k} {n}" for k, n in sorted(ev.items())) + ").",
        f"- Slow client (512 bytes/s): {res['slow']['connections']} connections, closed by the server "
        f"{res['slow']['drops']} times ({res['slow']['not_closed']} left open after a drop); the server "
        f"counted {num(res['server_end'].get('overflows'))} overflows (backlog replaced by a refresh) and "
        f"{num(res['server_end'].get('slow_disconnects'))} slow disconnects.",
        f"- {c['refreshes']} refreshes posted, {c['viewer_requests']} conversation pages read, "
        f"{c['http_errors']} HTTP errors. Server log: {res['log']['tracebacks']} tracebacks, "
        f"{res['log']['errors']} errors"
        + "".join(f"; {n} x `{e}`" for e, n in res["log"].get("exceptions", {}).items()) + ".",
        f"- At the end: {res['check']['clients']['checked']} clients + the observer compared with GET /all "
        f"({res['check']['clients']['divergent'] + res['check']['observer']['divergent']} differ); /all "
        f"against a fresh scan of the directory, {res['check']['scan']['sessions']} sessions, every field "
        f"({res['check']['scan']['divergent']} differ).",
        *([f"- Descriptor spikes: {fd_spike_summary(res)}"] if res.get("fd_spikes") else []),
        *([f"- RSS steps: {rss_steps_summary(res['rss_steps'])}"] if res.get("rss_steps") else []),
        *([f"- {res['note']}"] if res.get("note") else []),
        "", "![Server RSS over the soak](soak-rss.svg)", "",
        "![Open descriptors of the worker over the soak](soak-fds.svg)", "",
        "![Threads and greenlets of the worker over the soak](soak-tasks.svg)", ""]
    return "\n".join(lines)


def split_soak_section(text: str) -> tuple[str, str]:
    """RESULTS.md's text before its Soak section, and the section (the file's last)."""
    i = text.find("\n## Soak")
    return (text, "") if i < 0 else (text[:i + 1], text[i + 1:])


def update_results_md(section: str, path: Path = BENCH / "RESULTS.md") -> None:
    """Replace (or add) the Soak section."""
    before, _ = split_soak_section(path.read_text() if path.exists() else "# helm-monitor benchmark results\n")
    path.write_text(before.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n")


# ------------------------------------------------------------------ main

def at_rest(sampler: Sampler, srv: Server, quiet_s: float = 3.0) -> dict:
    """One sample with no stream client connected: once /healthz counts none (at most 30 s), quiet_s more
    (our requests are closed), and at least GREENLET_EVERY_S after the last ?greenlets=1 (the server's
    count is that old at most): a fresh count."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (srv.health() or {}).get("clients", 0) > 0:
        time.sleep(0.5)
    time.sleep(max(quiet_s, sampler.greenlets_asked + GREENLET_EVERY_S - time.monotonic()))
    x = sampler.sample()
    return {k: x[k] for k in ("fds", "threads", "greenlets", "rss_mb", "rss_worker_mb", "clients", "sessions")}


def final_checks(soak: Soak, srv: Server, root: Path) -> dict:
    """Nothing is written any more: every client's state against GET /all, and /all against a fresh scan.
    /all is read before and after the scan: the two are equal if the server was quiet."""
    all1 = srv.get_json("/api/claude-sessions/all")
    scan = compare_scan(root, all1)
    all2 = srv.get_json("/api/claude-sessions/all")
    snap = WORK / "soak-all.json"
    snap.write_text(json.dumps(all1))
    listed = {x["id"] for x in all1}
    return {"clients": soak.pool.ask(f"check {snap}")[0]["check"], "observer": soak.observer.compare(all1),
            "scan": scan, "all_stable": all1 == all2, "sessions": len(all1),
            "deleted_still_listed": sorted(sid for _, sid in soak.deleted if sid in listed),
            "transcripts_on_disk": len(soak.main_transcripts())}


def run_soak(s: dict, root: Path, manifest: dict, srv: Server) -> tuple[Soak, Sampler, SlowClient, dict]:
    """Connect the clients, run the load, let it settle, check; the server is left running."""
    soak = sampler = slow = None
    out: dict = {}
    try:
        srv.wait_ready(120)
        t0 = time.monotonic()
        sampler = Sampler(srv, s["sample_s"], t0)
        out["rest_before"] = at_rest(sampler, srv)
        soak = Soak(s, root, srv, manifest)
        soak.t0 = t0
        soak.start_cleanup(s["cap_margin"])
        soak.pool = ChildPool(srv.port, s["clients"], track_state=True)
        soak.observer = LoadClient(port=srv.port, track_state=True).start_thread()
        soak.observer.add(1)
        if not soak.observer.wait_all_init(30) or soak.pool.connected < s["clients"]:
            raise RuntimeError(f"clients not ready: {soak.pool.ready} {soak.observer.summary()}")
        slow = SlowClient(srv)
        slow.start()
        sampler.start()
        out["load_start"] = time.monotonic() - t0
        soak.run(time.monotonic() + s["duration"])
        out["load_end"] = time.monotonic() - t0
        sampler.stop()  # samples after the load are not used; the at-rest one below waits out its greenlet count
        print(f"soak: load stopped after {out['load_end']:.0f} s; settling", file=sys.stderr)
        slow.stop()
        soak.settle(s["settle_s"])
        out["check"] = final_checks(soak, srv, root)
        out["stats"] = soak.pool.ask("stats")[0]["stats"]
        out["server_end"] = server_counters(srv)
        soak.pool.close()
        soak.pool = None
        soak.observer.stop()
        out["rest_after"] = at_rest(sampler, srv)
        return soak, sampler, slow, out
    finally:
        for x in (slow, sampler):
            if x is not None:
                x.stop()
        if soak is not None:
            if soak.pool is not None:
                soak.pool.close()
            soak.stop_processes()


def build_results(s: dict, soak: Soak, sampler: Sampler, slow: SlowClient, run: dict, srv: Server) -> dict:
    samples, stats, check = sampler.samples, run["stats"], run["check"]
    ev = dict(stats["by_type"])
    for k, n in soak.observer.conns[0].counts.items():
        ev[k] = ev.get(k, 0) + n
    start = run["load_start"] + s["warmup_s"]
    keys = ("rss_mb", "rss_worker_mb", "fds", "threads", "greenlets", "cpu_pct", "sessions")
    # The plateau: from the first deletion by the cleanup (the cap reached), not before the warm-up's end.
    first_delete = soak.deleted[0][0] - sampler.t0 if soak.deleted else None
    plateau = None if first_delete is None else max(start, first_delete)
    in_plateau = [x["sessions"] for x in samples if plateau is not None and plateau <= x["t"] <= run["load_end"]
                  and x.get("sessions") is not None]
    res = {
        "quick": s["quick"], "settings": s, "commit": s.get("commit") or commit(), "samples": samples,
        "when": time.strftime("%Y-%m-%d", time.gmtime()),
        "load_start_s": round(run["load_start"], 1), "load_end_s": round(run["load_end"], 1),
        "growth": {k: growth(samples, k, start, run["load_end"]) for k in keys},
        "plateau_start_s": None if plateau is None else round(plateau, 1),
        "growth_plateau": {k: growth(samples, k, plateau, run["load_end"]) if plateau is not None
                           and run["load_end"] - plateau >= 0.3 * (run["load_end"] - start) else growth([], k, 0, 0)
                           for k in keys},
        "sessions": {"transcripts_start": soak.sessions_start, "cap": soak.cap,
                     "listed_start": samples[0].get("sessions") if samples else None,
                     "plateau_min": min(in_plateau, default=None), "plateau_max": max(in_plateau, default=None),
                     "plateau_median": statistics.median(in_plateau) if in_plateau else None,
                     "end": check["sessions"], "deleted": len(soak.deleted),
                     "deleted_dirs": soak.counts["deleted_dirs"],
                     "first_deletion_s": None if first_delete is None else round(first_delete, 1)},
        "timeline": soak.timeline,
        "rss_steps": rss_steps(samples, soak.timeline, plateau if plateau is not None else start, run["load_end"]),
        "fd_spikes": {"samples": sampler.fd_spike_samples, "threshold": FD_SPIKE, "median_of": FD_MEDIAN_OF,
                      "records": sampler.fd_spikes},
        "at_rest": {"before": run["rest_before"], "after": run["rest_after"]},
        "counts": soak.counts,
        "writes": {"flushes": sum(t.flushes for t in soak.transcripts),
                   "bytes": sum(t.bytes for t in soak.transcripts)},
        "sessions_end": check["sessions"],
        "ended": {"after_s": {k: [round(x, 3) for x in v] for k, v in soak.ended_after.items()},
                  "p50_s": {k: round(pct(v, 50), 3) if v else None for k, v in soak.ended_after.items()},
                  "late": soak.ended_late},
        "connections": {"clients": stats["connections"], "observer": 1, "slow": slow.connections,
                        "total": stats["connections"] + 1 + slow.connections},
        "client_errors": stats["errors"], "client_events": ev,
        "slow": {"connections": slow.connections, "drops": slow.drops, "not_closed": slow.not_closed,
                 "bytes": slow.bytes},
        "server_end": run["server_end"],
        "check": check,
        "divergences": (check["clients"]["divergent"] + check["observer"]["divergent"]
                        + check["scan"]["divergent"] + (not check["all_stable"])
                        + len(check["deleted_still_listed"])),
        "worker_pids": sorted({x["worker"] for x in samples if x["worker"]}),
        "log": {**log_problems(srv.log_tail(10_000_000)), "path": str(srv.log_path)},
    }
    res["verdicts"] = verdicts(res)
    return res


def print_summary(res: dict) -> None:
    check = res["check"]
    for name, g in (("after warm-up", res["growth"]), ("plateau", res["growth_plateau"])):
        print(name)
        print(table(["measure", "first 10 %", "last 10 %", "growth %", "max"],
                    [[k, g[k]["first"], g[k]["last"], g[k]["growth_pct"], g[k]["max"]] for k in g]))
    print(f"sessions {res['sessions']} plateau from {res['plateau_start_s']} s")
    fs = res["fd_spikes"]
    print(f"fd spikes: {fs['samples']} samples" + (f"; {fd_spike_summary(res)}" if fs["samples"] else ""))
    print(f"at rest before {res['at_rest']['before']}\nat rest after  {res['at_rest']['after']}")
    print(f"divergences {res['divergences']} (clients {check['clients']['divergent']}/{check['clients']['checked']}, "
          f"observer {check['observer']['divergent']}, scan {check['scan']['divergent']}/{check['scan']['sessions']}, "
          f"/all stable {check['all_stable']})")
    print(f"counts {res['counts']}\nended {res['ended']['p50_s']} late {res['ended']['late']}\n"
          f"slow {res['slow']} server {res['server_end']}\nconnections {res['connections']} "
          f"events {res['client_events']}\nverdicts {res['verdicts']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about a minute, a smaller load (the test suite)")
    ap.add_argument("--duration", type=float, help="seconds of load (default 1800; quick 45)")
    ap.add_argument("--clients", type=int, help="stream clients (default 200; quick 20)")
    ap.add_argument("--sessions", type=int, help="terminals running Claude Code (default 20; quick 5)")
    ap.add_argument("--cap-margin", type=int, help="main transcripts kept beyond the count at the start; the "
                    "oldest ended sessions beyond it are deleted (default 10; quick 2)")
    ap.add_argument("--commit", help="the commit measured, recorded in the results (for a tree without git, "
                    "e.g. a `git archive` copy; else taken from git)")
    a = ap.parse_args(argv)
    s = full_settings(a)
    s["commit"] = a.commit
    raise_nofile()
    root = WORK / "soak-claude"
    shutil.rmtree(root, ignore_errors=True)
    manifest = make_corpus(root, parse_size(s["corpus"]), seed=23, log=None)
    srv = Server(root, debounce_ms=DEBOUNCE_MS, keepalive_s=s["keepalive_s"], max_clients=s["clients"] + 100)
    module = server_module(srv.env)
    print(f"soak: {s['duration']:g} s, {s['clients']} clients, {s['sessions']} sessions; server imports {module}",
          file=sys.stderr)
    srv.start()
    try:
        soak, sampler, slow, run = run_soak(s, root, manifest, srv)
    finally:
        srv.stop()
    res = build_results(s, soak, sampler, slow, run, srv)
    res["server_module"] = module
    out_dir = WORK if a.quick else BENCH  # quick runs never overwrite the real plots
    res["plots"] = [str(out_dir / p) for p in plots(res, out_dir)]
    p = write_results("soak", res)
    if not a.quick:
        update_results_md(markdown(res))
    print_summary(res)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
