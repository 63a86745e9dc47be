"""Issue 12, "Nothing lost": faults of the machine, each tried for real.

- the wall clock stepped back and forward (injected clocks in the catalog; the
  server's own clock stepped with libfaketime);
- the open-file limit reached (a real RLIMIT_NOFILE, lowered in a child
  process, and in the running server's worker with prlimit);
- the cache directory read-only, full (a real small tmpfs) or deleted while
  the server runs;
- projects/ moved to another folder (same or another file system) and linked
  back while the server runs.

Each is logged clearly and once, stops nothing, and loses no session.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from helm_monitor.sources.claude.catalog import RECENT_WRITE_S, VANISHED_GRACE_S, Catalog
from tests.support.server import wait_until
from tests.support.sse import SSEClient

REPO = Path(__file__).resolve().parents[1]
NOW = 1_900_000_000.0
HOUR = 3600.0


# ============================================================================ helpers

class Stream:
    """Every event of one stream, read in a thread: tests wait on it and look back at all of it."""

    def __init__(self, url: str):
        self.client = SSEClient(url)
        self.events = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.init = self.wait_for(lambda e: e.type == "init", 5, "init")

    def _read(self) -> None:
        while True:
            try:
                event = self.client.next_event(timeout=3600)
            except Exception:  # closed at teardown
                return
            with self._lock:
                self.events.append(event)

    def all(self, event_type: str | None = None) -> list:
        with self._lock:
            return [e for e in self.events if event_type is None or e.type == event_type]

    def wait_for(self, predicate, timeout: float, message: str):
        return wait_until(lambda: next((e for e in self.all() if predicate(e)), None), timeout, message=message)

    def wait_for_session(self, event_type: str, session_id: str, timeout: float, **fields):
        """The first ``event_type`` event carrying ``session_id`` with the given field values."""
        def match(e):
            s = e.session(session_id) if e.type == event_type else None
            return s is not None and all(s.get(k) == v for k, v in fields.items())
        return self.wait_for(match, timeout, f"{event_type} of {session_id} with {fields}")


def counts(server) -> dict[str, int]:
    return {s["id"]: s["messageCount"] for s in server.get_json("/api/claude-sessions/all")}


def whole_log(server) -> str:
    return server.log_path.read_text(errors="replace")  # server.log() is only its tail


def log_lines(server, needle: str, logger: str = "helm_monitor") -> list[str]:
    return [line for line in whole_log(server).splitlines() if logger in line and needle in line]


# ============================================================================ the clock

class Clocks:
    """A wall clock that can be stepped, and a monotonic one that only moves on."""

    def __init__(self, wall: float):
        self.wall = wall
        self.mono = 1000.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += seconds


def clocked_catalog(claude, clocks: Clocks) -> Catalog:
    cat = Catalog(claude.root, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    cat.full_scan()
    return cat


def old_session(claude, written_at: float):
    """A Claude Code 2.1.29 session (no registry: the 60-second recent-write rule) written at ``written_at``."""
    s = claude.session(version="2.1.29")
    s.turn("p", "r")
    os.utime(s.path, (written_at, written_at))
    return s


def status(cat: Catalog, s) -> str:
    return cat.session(s.id)["status"]


def test_clock_stepped_back_does_not_keep_a_session_busy(claude):
    s = old_session(claude, NOW)
    clocks = Clocks(NOW + 1)
    cat = clocked_catalog(claude, clocks)
    assert status(cat, s) == "busy"
    assert cat.status_deadline() == pytest.approx(clocks.mono - 1 + RECENT_WRITE_S)
    clocks.step(-HOUR)  # NTP steps the clock back an hour: the file's time is now in the future
    clocks.tick(10)
    assert status(cat, s) == "busy"
    clocks.tick(RECENT_WRITE_S - 10)  # a minute after the write, on the monotonic clock
    assert status(cat, s) == "ended"
    assert cat.status_deadline() is None
    # Written again on the stepped clock (its time earlier than the last one): busy again.
    s.turn("again", "r")
    os.utime(s.path, (clocks.wall, clocks.wall))
    assert cat.apply(str(s.path)) == {s.id}
    assert status(cat, s) == "busy"


def test_clock_stepped_forward_does_not_end_a_session_just_written(claude):
    s = old_session(claude, NOW)
    clocks = Clocks(NOW + 1)
    cat = clocked_catalog(claude, clocks)
    clocks.step(HOUR)
    clocks.tick(5)
    assert status(cat, s) == "busy"
    assert cat.status_deadline() == pytest.approx(clocks.mono - 6 + RECENT_WRITE_S)
    clocks.tick(RECENT_WRITE_S - 5)
    assert status(cat, s) == "ended"


def test_a_write_read_after_a_forward_step_still_counts_as_recent(claude):
    """Written just before the step, read just after it: by the clock an hour old, yet read a moment ago."""
    s = old_session(claude, NOW)
    clocks = Clocks(NOW + 1)
    cat = clocked_catalog(claude, clocks)
    clocks.tick(20)
    s.turn("more", "r")
    os.utime(s.path, (clocks.wall, clocks.wall))
    clocks.step(HOUR)
    assert cat.apply(str(s.path)) == {s.id}
    assert status(cat, s) == "busy"
    clocks.tick(RECENT_WRITE_S + 1)
    assert status(cat, s) == "ended"


def test_a_file_time_in_the_future_counts_as_written_now(claude):
    """Written while the clock was an hour ahead, read after it was stepped back."""
    s = old_session(claude, NOW + HOUR)
    clocks = Clocks(NOW)
    cat = clocked_catalog(claude, clocks)
    assert status(cat, s) == "busy"
    assert cat.status_deadline() == pytest.approx(clocks.mono + RECENT_WRITE_S)
    clocks.tick(RECENT_WRITE_S + 1)
    assert status(cat, s) == "ended"
    assert cat.status_deadline() is None


def _libfaketime() -> str | None:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1")
    return found[0] if found else None


# libfaketime 0.9.10 (Debian 12) fails clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) with
# EINVAL when the monotonic clock is left real, and that is how Python's time.sleep()
# sleeps: gunicorn's arbiter would die. The server's processes sleep with select() instead
# (the gevent worker's time.sleep is gevent's anyway).
SLEEP_FIX = "import select, time\ntime.sleep = lambda seconds: select.select([], [], [], seconds) and None\n"


class ServerClock:
    """The server's wall clock, stepped through libfaketime's timestamp file.

    Only time() and friends are faked: the monotonic clocks and file times
    (set by the kernel) stay real, as on a machine whose clock NTP steps.
    """

    def __init__(self, folder: Path):
        self.lib = _libfaketime()
        if self.lib is None:
            pytest.skip("libfaketime is not installed (Debian package libfaketime; scripts/test.sh installs it)")
        folder.mkdir()
        (folder / "sitecustomize.py").write_text(SLEEP_FIX)
        self.folder = folder
        self.path = folder / "offset"
        self.step_to(0)

    def step_to(self, offset_s: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+d}\n")
        os.replace(tmp, self.path)  # never seen half written

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.folder), os.environ.get("PYTHONPATH")) if p)
        # The file is read again each second (FAKETIME_NO_CACHE, read at every call, made a
        # threaded start-up crawl: 40-80 s before the server answered, on a loaded machine).
        return {"LD_PRELOAD": self.lib, "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_CACHE_DURATION": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1", "PYTHONPATH": path}

    def server_now(self, server) -> float:
        """The server's idea of the time, from an event's timestamp."""
        with SSEClient(server.url) as c:
            return c.next_event().data["timestamp"] / 1000

    def wait_moved(self, server, moved, message: str) -> float:
        """The server's time once ``moved(time)`` holds (a step shows within the cache's second)."""
        return wait_until(lambda: (now := self.server_now(server)) and moved(now) and now, 10, 0.2,
                          message + ": the test proves nothing")


def test_server_clock_stepped_forward_keeps_a_just_written_session_busy(claude, server_factory, tmp_path):
    clock = ServerClock(tmp_path / "faketime")
    srv = server_factory(claude.root, env=clock.env)
    stream = Stream(srv.url)
    s = claude.session(version="2.1.29")
    s.turn("p", "r")
    stream.wait_for_session("session-created", s.id, 5, status="busy")
    clock.step_to(int(HOUR))
    clock.wait_moved(srv, lambda now: now > time.time() + HOUR - 60, "the server's clock did not move")
    # The pump checks its status deadlines at least every second: give it a few.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert not stream.all("session-updated"), [e.sessions for e in stream.all("session-updated")]
        assert {x["id"]: x["status"] for x in srv.get_json("/api/claude-sessions/all")} == {s.id: "busy"}
        time.sleep(0.2)
    health = srv.get_json("/healthz")
    assert 0 <= health["secondsSinceLastEvent"] < 60 and 0 <= health["uptimeSeconds"] < 60


@pytest.mark.slow
def test_server_clock_stepped_back_ends_a_session_a_minute_after_its_write(claude, server_factory, tmp_path):
    clock = ServerClock(tmp_path / "faketime")
    srv = server_factory(claude.root, env=clock.env, keepalive_s=1)
    stream = Stream(srv.url)
    s = claude.session(version="2.1.29")
    s.turn("p", "r")
    written = time.monotonic()
    stream.wait_for_session("session-created", s.id, 5, status="busy")
    clock.step_to(-int(HOUR))
    clock.wait_moved(srv, lambda now: now < time.time() - HOUR + 60, "the server's clock did not move")
    ended = stream.wait_for_session("session-updated", s.id, RECENT_WRITE_S + 15, status="ended")
    assert ended.received_at - written >= RECENT_WRITE_S - 1
    # Keepalives went on through the step (timers are not on the wall clock).
    keepalives = [e.received_at for e in stream.all("keepalive")]
    assert keepalives and max(keepalives) > ended.received_at - 3
    health = srv.get_json("/healthz")
    assert 0 <= health["secondsSinceLastEvent"] < 120 and 0 <= health["uptimeSeconds"] < 120


# ============================================================================ the open-file limit

EMFILE_CHILD = textwrap.dedent("""
    import json, logging, resource, sys
    from helm_monitor.sources.claude.catalog import Catalog
    root, new_dir, new_path, old_path = sys.argv[1:5]
    # The log goes to stderr, open before the limit: "<level> <message>" per line.
    logging.basicConfig(level=logging.DEBUG, format="%(levelno)d %(message)s")
    mono = [1000.0]
    cat = Catalog(root, monotonic=lambda: mono[0])
    cat.full_scan()
    def sessions():
        return {sid: [s["messageCount"], s["status"]] for sid, s in cat.sessions().items()}
    print(json.dumps(sessions()), flush=True)
    sys.stdin.readline()  # the parent wrote a new session and appended to the old one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Below every descriptor already open: each new one fails with EMFILE, as at the limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
    try:
        under = {"events": sorted(cat.apply(new_dir, True) | cat.apply(new_path) | cat.apply(old_path)),
                 "liveness": sorted(cat.check_liveness()), "scan": sorted(cat.full_scan())}
        delays = []
        for _ in range(6):  # the retries while the limit holds: each waits longer
            r = getattr(cat, "_failed", {}).get(new_path)
            if r is None:
                break
            delays.append(round(r.due - mono[0], 6))
            mono[0] = r.due
            under["events"] += sorted(cat.retry())
        under["sessions"] = sessions()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    mono[0] += 2.0
    after = {"retry": sorted(cat.retry()), "sessions": sessions(), "needs_retry": cat.needs_retry}
    print(json.dumps({"under": under, "delays": delays, "after": after}), flush=True)
""")


def test_open_file_limit_in_the_catalog_loses_nothing(claude):
    old = claude.session("/w/old")
    old.turn("first", "ok")
    claude.register(os.getpid(), old.id, status="busy")
    new = claude.session("/w/new")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD, str(claude.root), str(new.project_dir),
                              str(new.path), str(old.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert json.loads(child.stdout.readline()) == {old.id: [2, "busy"]}
        new.turn("born under the limit", "ok")
        old.turn("appended under the limit", "ok")
        out, err = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    result = json.loads(out)
    under, after = result["under"], result["after"]
    # Under the limit: nothing read, nothing forgotten, the live process still live.
    assert under["events"] == [] and under["liveness"] == [] and under["scan"] == []
    assert under["sessions"] == {old.id: [2, "busy"]}
    assert result["delays"] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    # The limit lifted: the next retry reads what was missed, with no further write.
    assert after["retry"] == sorted({old.id, new.id})
    assert after["sessions"] == {old.id: [4, "busy"], new.id: [2, "ended"]}
    assert after["needs_retry"] is False
    logged = [line.split(" ", 1) for line in err.splitlines()]
    warned = [m for level, m in logged if int(level) >= logging.WARNING]
    assert len(warned) == 1, err
    assert "open-file limit" in warned[0] and "LimitNOFILE" in warned[0]
    assert any("reads work again" in m for _, m in logged), err


def _soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc/<pid>/limits")


def _set_soft_nofile(pid: int, soft: int) -> None:
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:"], check=True, capture_output=True)


def test_open_file_limit_in_the_server_loses_nothing(claude, server_factory):
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is missing: cannot change the worker's open-file limit")
    old = claude.session("/w/old")
    old.turn("first", "ok")
    srv = server_factory(claude.root)
    pid = srv.get_json("/healthz")["pid"]
    stream = Stream(srv.url)
    soft = _soft_nofile(pid)
    answers: list = []
    _set_soft_nofile(pid, 3)  # below every descriptor the worker holds: each new one fails with EMFILE
    try:
        new = claude.session("/w/new")
        new.turn("born under the limit", "ok")
        old.turn("appended under the limit", "ok")
        wait_until(lambda: "too many open files" in whole_log(srv).lower(), 10, message="the worker to meet the limit")
        # A request now waits in the listen backlog: the worker cannot accept it yet.
        asking = threading.Thread(target=lambda: answers.append(srv.get_json("/healthz", timeout=30)), daemon=True)
        asking.start()
        wait_until(lambda: "Errno 24" in whole_log(srv), 10, message="the accept loop to meet the limit")
        assert srv.proc.poll() is None and _soft_nofile(pid) == 3
    finally:
        _set_soft_nofile(pid, soft)
    # Limit lifted, no further write: what was missed arrives.
    stream.wait_for_session("session-created", new.id, 10, messageCount=2)
    stream.wait_for_session("session-updated", old.id, 10, messageCount=4)
    assert counts(srv) == {old.id: 4, new.id: 2}
    asking.join(30)
    assert answers and answers[0]["status"] == "ok" and answers[0]["pid"] == pid
    # The stream goes on, and the project folder made under the limit is watched.
    new.turn("after the limit", "ok")
    stream.wait_for_session("session-updated", new.id, 5, messageCount=4)
    with SSEClient(srv.url) as late:
        assert {s["id"] for s in late.next_event().sessions} == {old.id, new.id}
    assert not stream.all("session-deleted")
    warned = log_lines(srv, "open-file limit", "helm_monitor.sources.claude")
    assert len(warned) == 1 and "LimitNOFILE" in warned[0], srv.log()
    assert log_lines(srv, "reads work again", "helm_monitor.sources.claude")


# ============================================================================ the cache directory

@pytest.fixture
def tmpfs(tmp_path):
    """Mount real small tmpfs file systems; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs ({r.stderr.strip()}): needs root with CAP_SYS_ADMIN")
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)  # a server still running in it


def remount(d: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(d)], check=True)


def fresh_counts(claude) -> dict[str, int]:
    cat = Catalog(claude.root)
    cat.full_scan()
    return {sid: s["messageCount"] for sid, s in cat.sessions().items()}


def history(claude, n: int = 3) -> list:
    sessions = []
    for i in range(n):
        s = claude.session(f"/home/u/p{i % 2}")
        for j in range(5):
            s.turn(f"prompt {i}.{j}", f"reply {i}.{j}")
        sessions.append(s)
    return sessions


PRICES = "usage-prices.json"  # the unit prices worked out (helm_monitor.live.usage), beside the state


def cache_warnings(server) -> list[str]:
    return log_lines(server, "cannot write cache", "helm_monitor.live.cache")


def serve_and_write(server_factory, claude, env, session) -> object:
    """A server over the history; one more turn seen live (so its stop saves again); stopped."""
    srv = server_factory(claude.root, env=env)
    assert counts(srv) == fresh_counts(claude)
    session.turn("one more", "ok")
    wait_until(lambda: counts(srv) == fresh_counts(claude), 10, message="the new turn")
    srv.stop()
    return srv


def test_read_only_cache_directory(claude, server_factory, tmpfs):
    cache = tmpfs("cache", "1m")
    # The parse-state cache alone: the search index (which lives there too) is left out.
    env = {"HELM_CACHE_DIR": str(cache), "HELM_SEARCH": "0"}
    sessions = history(claude)
    serve_and_write(server_factory, claude, env, sessions[0])
    saved = {p.name: p.read_bytes() for p in cache.iterdir()}
    assert sorted(saved) == sorted([PRICES, *[p.name for p in cache.glob("state-*.json")]]), sorted(saved)
    remount(cache, "ro")
    sessions[1].turn("while the cache is read-only", "ok")
    # Saves after the first scan and at the stop: both fail, one warning.
    srv = serve_and_write(server_factory, claude, env, sessions[2])
    assert "restored parse state of 3 transcripts" in whole_log(srv)
    warned = cache_warnings(srv)
    assert len(warned) == 1, srv.log()
    assert "Read-only file system" in warned[0]
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == saved
    # Writable again while serving: the next save works and says so; the next start uses it.
    srv = server_factory(claude.root, env=env)
    wait_until(lambda: cache_warnings(srv), 10, message="the first save to fail")
    remount(cache, "rw")
    sessions[0].turn("the cache is writable again", "ok")
    wait_until(lambda: counts(srv) == fresh_counts(claude), 10, message="the new turn")
    srv.stop()
    assert log_lines(srv, "written again", "helm_monitor.live.cache"), srv.log()
    assert {p.name: p.read_bytes() for p in cache.iterdir()} != saved
    srv = server_factory(claude.root, env=env)
    assert counts(srv) == fresh_counts(claude)
    assert "restored parse state of 3 transcripts" in whole_log(srv)
    assert not cache_warnings(srv)


def test_full_cache_directory(claude, server_factory, tmpfs):
    cache = tmpfs("cache", "64k")
    # The parse-state cache alone: the search index (which lives there too) is left out.
    env = {"HELM_CACHE_DIR": str(cache), "HELM_SEARCH": "0"}
    sessions = history(claude)
    serve_and_write(server_factory, claude, env, sessions[0])
    [state_file] = cache.glob("state-*.json")
    saved = state_file.read_bytes()
    fd = os.open(cache / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # fill it up
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    extra = claude.session("/home/u/p9")
    extra.turn("written while the cache is full", "ok")
    srv = serve_and_write(server_factory, claude, env, sessions[1])
    warned = cache_warnings(srv)
    assert len(warned) == 1, srv.log()
    assert "No space left on device" in warned[0]
    # The last good file is untouched; no half-written file is left to fill it further.
    assert sorted(p.name for p in cache.iterdir()) == sorted([state_file.name, PRICES, "filler"])
    assert state_file.read_bytes() == saved
    # A restart trusts the old file only where it still matches: the sessions are today's.
    srv = server_factory(claude.root, env=env)
    assert counts(srv) == fresh_counts(claude)
    assert len(counts(srv)) == 4
    assert "restored parse state of 3 transcripts" in whole_log(srv)


def test_a_cut_cache_file_is_never_trusted(claude, server_factory, tmp_path):
    """What a crash in the middle of a save on a file system without rename-atomicity would leave."""
    env = {"HELM_CACHE_DIR": str(tmp_path / "cache")}
    sessions = history(claude)
    serve_and_write(server_factory, claude, env, sessions[0])
    [state_file] = (tmp_path / "cache").glob("state-*.json")
    whole = state_file.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 1):
        state_file.write_bytes(whole[:cut])
        srv = server_factory(claude.root, env=env)
        assert counts(srv) == fresh_counts(claude)
        assert log_lines(srv, "is unusable", "helm_monitor.live.cache"), srv.log()
        srv.stop()


def test_cache_directory_deleted_while_running(claude, server_factory, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    # The search indexer would create the directory again first (its own test is in test_search).
    env = {"HELM_CACHE_DIR": str(cache), "HELM_SEARCH": "0"}
    sessions = history(claude)
    srv = server_factory(claude.root, env=env)
    wait_until(lambda: list(cache.glob("state-*.json")), 10, message="the first save")
    shutil.rmtree(cache)
    added = claude.session("/home/u/p9")
    added.turn("written after the cache went", "ok")
    sessions[0].turn("one more", "ok")
    wait_until(lambda: counts(srv) == fresh_counts(claude), 10, message="the new writes")
    srv.stop()  # saves
    assert list(cache.glob("state-*.json"))
    assert len(log_lines(srv, "is missing; creating it", "helm_monitor.live.cache")) == 1, srv.log()
    assert not cache_warnings(srv)
    srv = server_factory(claude.root, env=env)
    assert counts(srv) == fresh_counts(claude)
    assert "restored parse state of 4 transcripts" in whole_log(srv)


# ============================================================================ projects/ moved and linked back

def rich_history(claude) -> dict:
    """Sessions of every kind the catalog reads: transcripts, a subagent, a legacy sidechain, an index."""
    a = claude.session("/srv/one")
    a.turn("a", "ok")
    a.subagent("1")
    b = claude.session("/srv/one", version="2.1.29")
    b.turn("b", "ok")
    legacy = b.project_dir / "agent-0000abcd.jsonl"
    legacy.write_text(json.dumps({"isSidechain": True, "sessionId": b.id, "type": "user"},
                                 separators=(",", ":")) + "\n")
    (b.project_dir / "sessions-index.json").write_text(json.dumps(
        {"version": 1, "entries": [{"sessionId": b.id, "summary": "Indexed summary"}]}))
    c = claude.session("/srv/two")
    c.turn("c", "ok")
    claude.register(os.getpid(), a.id, status="busy")
    return {"a": a, "b": b, "c": c}


def described(cat: Catalog) -> dict:
    return {sid: (s["messageCount"], s["subagentCount"], s["title"], s["status"]) for sid, s in cat.sessions().items()}


def every_path(claude) -> list[str]:
    return [str(p) for p in sorted(claude.root.rglob("*"))]


def test_catalog_keeps_every_session_while_projects_is_moved_and_linked_back(claude, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="helm_monitor")
    s = rich_history(claude)
    clocks = Clocks(time.time())
    cat = clocked_catalog(claude, clocks)
    before = described(cat)
    assert before[s["a"].id][1] == 1 and before[s["b"].id][1] == 1 and before[s["b"].id][2] == "Indexed summary"
    paths = every_path(claude)
    elsewhere = tmp_path / "disk"
    elsewhere.mkdir()
    shutil.move(str(claude.projects), str(elsewhere / "projects"))
    # What the events of the move name, and a refresh in between: nothing changes.
    for p in paths:
        assert cat.apply(p) == set(), p
    assert cat.full_scan() == set()
    clocks.tick(1)
    assert cat.retry() == set()
    assert described(cat) == before
    os.symlink(elsewhere / "projects", claude.projects)
    assert cat.apply(str(claude.projects)) == set()
    clocks.tick(0.2)
    assert cat.retry() == set() and not cat.needs_retry
    assert described(cat) == before
    # Through the link, as before.
    s["c"].turn("through the link", "ok")
    assert cat.apply(str(s["c"].path)) == {s["c"].id}
    assert cat.session(s["c"].id)["messageCount"] == 4
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_catalog_drops_a_projects_directory_gone_for_good_after_the_grace_period(claude, caplog):
    caplog.set_level(logging.INFO, logger="helm_monitor")
    s = rich_history(claude)
    clocks = Clocks(time.time())
    cat = clocked_catalog(claude, clocks)
    shutil.rmtree(claude.projects)
    assert cat.apply(str(claude.projects), is_dir=True) == set()
    clocks.tick(VANISHED_GRACE_S - 0.5)
    assert cat.retry() == set()
    assert len(cat.sessions()) == 3
    clocks.tick(1)
    assert cat.retry() == {x.id for x in s.values()}
    assert cat.sessions() == {} and not cat.needs_retry
    assert any("still gone" in r.getMessage() for r in caplog.records)
    # Created again, then gone again: held again.
    d = claude.session("/srv/three")
    d.turn("d", "ok")
    assert cat.apply(str(claude.projects), is_dir=True) == {d.id}
    shutil.rmtree(claude.projects)
    assert cat.apply(str(d.path)) == set()
    assert set(cat.sessions()) == {d.id}


def test_catalog_keeps_statuses_while_the_data_directory_is_moved_and_linked_back(claude, tmp_path):
    s = rich_history(claude)
    clocks = Clocks(time.time())
    cat = clocked_catalog(claude, clocks)
    before = described(cat)
    assert before[s["a"].id][3] == "busy"
    moved = tmp_path / "disk" / "claude"
    moved.parent.mkdir()
    shutil.move(str(claude.root), str(moved))
    assert cat.apply(str(claude.root), is_dir=True) == set()  # the root: a full rescan, held
    assert cat.check_liveness() == set()
    assert described(cat) == before
    os.symlink(moved, claude.root)
    clocks.tick(0.2)
    assert cat.retry() == set() and not cat.needs_retry
    assert described(cat) == before


def watched(server, path) -> bool:
    return str(path) in server.get_json("/healthz")["watcher"]["watching"]


@pytest.mark.parametrize("where", ["same-file-system", "other-file-system"])
def test_projects_moved_and_linked_back_while_serving(claude, server_factory, tmp_path, tmpfs, where):
    s = rich_history(claude)
    elsewhere = tmpfs("disk", "16m") if where == "other-file-system" else tmp_path / "disk"
    elsewhere.mkdir(exist_ok=True)
    srv = server_factory(claude.root)
    stream = Stream(srv.url)
    before = {x["id"]: x for x in stream.init.sessions}
    subprocess.run(["mv", str(claude.projects), str(elsewhere / "projects")], check=True)
    # The user types the second command a moment later: by then the server has seen projects/ go.
    wait_until(lambda: log_lines(srv, "vanished") or stream.all("session-deleted"), 10,
               message="the server to see projects/ go")
    os.symlink(elsewhere / "projects", claude.projects)
    # Written at once, before the link's target can be watched: found all the same.
    s["a"].turn("through the link", "ok")
    d = claude.session("/srv/one")
    d.turn("new beside", "ok")
    wait_until(lambda: counts(srv).get(s["a"].id) == 4 and d.id in counts(srv), 10, message="the first writes")
    assert stream.all("session-deleted") == [], [x.sessions for x in stream.all("session-deleted")]
    # The target is watched: later writes are seen live.
    wait_until(lambda: watched(srv, claude.projects), 10, message="a watch on the link's target")
    e = claude.session("/srv/three")
    e.turn("new project", "ok")
    s["c"].turn("later", "ok")
    stream.wait_for_session("session-created", e.id, 5)
    stream.wait_for_session("session-updated", s["c"].id, 5, messageCount=4)
    assert stream.all("session-deleted") == [], [x.sessions for x in stream.all("session-deleted")]
    assert [x.sessions for x in stream.all("session-created") if {y["id"] for y in x.sessions} & set(before)] == []
    now = {x["id"]: x for x in srv.get_json("/api/claude-sessions/all")}
    assert set(now) == set(before) | {d.id, e.id}
    fields = ("subagentCount", "title", "projectPath")
    for sid, old in before.items():
        assert {k: now[sid][k] for k in fields} == {k: old[k] for k in fields}
    assert now[s["a"].id]["status"] == "busy"


@pytest.mark.slow
def test_projects_removed_for_good_is_deleted_after_the_grace_period(claude, server_factory):
    sessions = history(claude, 2)
    srv = server_factory(claude.root)
    stream = Stream(srv.url)
    removed = time.monotonic()
    shutil.rmtree(claude.projects)
    deleted = stream.wait_for(lambda e: e.type == "session-deleted", VANISHED_GRACE_S + 5, "session-deleted")
    assert deleted.received_at - removed >= VANISHED_GRACE_S - 1
    wait_until(lambda: counts(srv) == {}, 5, message="an empty list")
    assert {x["id"] for e in stream.all("session-deleted") for x in e.sessions} == {x.id for x in sessions}
    assert log_lines(srv, "still gone", "helm_monitor.sources.claude")
