"""The event stream against a real gunicorn gevent worker, read as a real client would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from helm_monitor.sources.claude.catalog import VANISHED_GRACE_S
from tests.support.claude import ClaudeDir
from tests.support.server import wait_until
from tests.support.sse import SSEClient

pytestmark = pytest.mark.timeout(90)


def connect(server, **kw) -> tuple[SSEClient, object]:
    client = SSEClient(server.url, **kw)
    assert client.status == 200
    init = client.next_event(5)
    assert init.type == "init"
    return client, init


def test_stream_headers_framing_and_init(claude, server_factory):
    s = claude.session("/home/alice/code/webapp")
    s.turn("first prompt", "hello")
    server = server_factory(claude.root)
    with SSEClient(server.url) as client:
        assert client.status == 200
        assert client.headers["content-type"].startswith("text/event-stream")
        assert client.headers["cache-control"] == "no-cache"
        assert client.headers["x-accel-buffering"] == "no"
        init = client.next_event(5)
        assert client.retry is not None and client.retry > 0
        assert init.type == "init" and init.data["type"] == "init"
        assert isinstance(init.data["timestamp"], int)
        epoch, seq = init.id.rsplit("-", 1)
        assert epoch and seq.isdigit()
        [session] = init.sessions
        assert session["id"] == s.id and session["messageCount"] == 2 and session["status"] == "ended"


def test_created_updated_deleted_each_within_a_second(claude, server_factory):
    server = server_factory(claude.root)
    client, init = connect(server)
    assert init.sessions == []

    s = claude.session("/home/alice/code/api")
    t0 = time.monotonic()
    s.prompt("build the parser")
    ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
    assert time.monotonic() - t0 < 1.0
    [created] = ev.sessions
    assert created["id"] == s.id and created["projectPath"] == "/home/alice/code/api"
    assert created["messageCount"] == 1 and created["title"] == "build the parser"

    t0 = time.monotonic()
    s.reply("parser built", usage={"input_tokens": 5, "output_tokens": 7,
                                    "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
    ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
    assert time.monotonic() - t0 < 1.0
    [updated] = ev.sessions
    assert updated["messageCount"] == 2 and updated["tokens"]["output"] == 7 and updated["model"]

    t0 = time.monotonic()
    os.unlink(s.path)
    ev = client.wait_for(lambda e: e.type == "session-deleted", 1.0)
    assert time.monotonic() - t0 < 1.0
    host = server.get_json("/healthz")["host"]
    assert ev.sessions == [{"key": f"{host}:claude-code:{s.id}", "id": s.id, "host": host, "source": "claude-code",
                            "projectPath": "/home/alice/code/api", "projectDir": s.project_dir.name}]
    client.close()


def test_an_update_carries_only_the_changed_session(claude, server_factory):
    a = claude.session("/w/a")
    b = claude.session("/w/b")
    a.prompt("a")
    b.prompt("b")
    server = server_factory(claude.root)
    client, init = connect(server)
    assert len(init.sessions) == 2
    a.reply("more")
    ev = client.wait_for(lambda e: e.type == "session-updated", 2)
    assert [x["id"] for x in ev.sessions] == [a.id]


def test_new_project_directory_and_projects_created_after_start(tmp_path, server_factory):
    claude = ClaudeDir(tmp_path / "claude", create_projects=False)
    assert not claude.projects.exists()
    server = server_factory(claude.root)
    assert server.get_json("/api/claude-sessions/all") == []
    client, _ = connect(server)

    s = claude.session("/home/bob/new-project")  # creates projects/ and the project folder
    t0 = time.monotonic()
    s.prompt("hello from a directory that did not exist")
    ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.sessions[0]["id"] == s.id

    other = claude.session("/home/bob/second-project")
    t0 = time.monotonic()
    other.prompt("a second project folder")
    ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
    assert time.monotonic() - t0 < 1.0 and ev.sessions[0]["id"] == other.id

    # projects/ removed and recreated: its sessions go (after the grace period that lets
    # a projects/ moved and linked back keep them), new ones are seen again.
    shutil.rmtree(claude.projects)
    gone = set()
    while gone != {s.id, other.id}:
        ev = client.wait_for(lambda e: e.type == "session-deleted", VANISHED_GRACE_S + 3)
        gone |= {x["id"] for x in ev.sessions}
    third = claude.session("/home/bob/again")
    third.prompt("after recreating projects/")
    ev = client.wait_for(lambda e: e.type == "session-created", 2.0)
    assert ev.sessions[0]["id"] == third.id
    client.close()


def test_subagent_files_update_the_parent_and_are_never_listed(claude, server_factory):
    s = claude.session("/w/agents")
    s.prompt("use a subagent")
    server = server_factory(claude.root)
    client, _ = connect(server)
    s.subagent()
    ev = client.wait_for(lambda e: e.type == "session-updated", 2.0)
    assert ev.sessions[0]["subagentCount"] == 1
    s.subagent(nested="deeper/level")
    ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["subagentCount"] == 2, 2.0)
    assert [x["id"] for x in server.get_json("/api/claude-sessions/all")] == [s.id]


def test_registry_sets_status_and_removal_ends_it(claude, server_factory):
    s = claude.session("/w/live")
    s.prompt("working")
    server = server_factory(claude.root)
    client, init = connect(server)
    assert init.sessions[0]["status"] == "ended"

    claude.register(os.getpid(), s.id, status="busy")
    ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
    assert ev.sessions[0]["status"] == "busy" and ev.sessions[0]["pid"] == os.getpid()

    claude.register(os.getpid(), s.id, status="idle")  # rewritten in place
    ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
    assert ev.sessions[0]["status"] == "idle"

    claude.register(os.getpid(), s.id, status="waiting", waitingFor="dialog open")
    ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
    assert ev.sessions[0]["status"] == "waiting"

    t0 = time.monotonic()
    claude.unregister(os.getpid())
    ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
    assert time.monotonic() - t0 < server.debounce_ms / 1000 + 0.5
    assert ev.sessions[0]["status"] == "ended" and ev.sessions[0]["pid"] is None


def test_killed_process_turns_ended_within_five_seconds(claude, server_factory):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        s = claude.session("/w/crash")
        s.prompt("this process will be killed")
        claude.register(child.pid, s.id, status="busy")  # its real procStart
        server = server_factory(claude.root)
        client, init = connect(server)
        assert init.sessions[0]["status"] == "busy" and init.sessions[0]["pid"] == child.pid
        t0 = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait()  # reaped: the pid is gone, its registry file stays behind
        ev = client.wait_for(lambda e: e.type == "session-updated", 5.0)
        assert time.monotonic() - t0 < 5.0
        assert ev.sessions[0]["status"] == "ended" and ev.sessions[0]["pid"] is None
        assert (claude.root / "sessions" / f"{child.pid}.json").exists()
    finally:
        child.kill()
        child.wait()


def test_continuous_writing_updates_about_once_per_window(claude, server_factory):
    """Written every 20 ms for 5 s: between one and two updates in every window (SPEC 4:
    coalesced, yet at least one per window), and the last writes arrive after they stop."""
    s = claude.session("/w/busy")
    s.prompt("start")
    window = 0.5
    server = server_factory(claude.root, debounce_ms=int(window * 1000))
    client, _ = connect(server)
    writes = 0
    arrivals = []
    last = None
    start = time.monotonic()
    next_write = start
    while time.monotonic() - start < 5.0:
        now = time.monotonic()
        if now >= next_write:
            s.reply(f"chunk {writes}")
            writes += 1
            next_write = now + 0.02
        try:
            ev = client.next_event(max(0.001, next_write - time.monotonic()))
            if ev.type == "session-updated":
                arrivals.append(ev.received_at - start)
                last = ev
        except TimeoutError:
            pass
    # The last writes still arrive after they stop (unless the update that carries them came already).
    if last is None or last.sessions[0]["messageCount"] != 1 + writes:
        last = client.wait_for(lambda e: e.type == "session-updated"
                               and e.sessions[0]["messageCount"] == 1 + writes, 1.5)
        arrivals.append(last.received_at - start)
    assert writes > 150
    # The first write's update goes out at once, then one per window: counted in the windows
    # between those updates' due times (jitter of an arrival does not cross an edge).
    per_window = [sum(1 for t in arrivals if (k + 0.5) * window <= t < (k + 1.5) * window) for k in range(9)]
    assert all(1 <= n <= 2 for n in per_window), (per_window, arrivals)
    assert 7 <= len(arrivals) <= 13, arrivals  # not one per write, not one at the end
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.4, gaps
    assert max(gaps[:-1]) <= 0.8, gaps


def test_isolated_change_is_fast(claude, server_factory):
    s = claude.session("/w/fast")
    s.prompt("start")
    server = server_factory(claude.root, debounce_ms=500)
    client, _ = connect(server)
    latencies = []
    for i in range(5):
        t0 = time.monotonic()
        s.reply(f"reply {i}")
        ev = client.wait_for(lambda e: e.type == "session-updated", 1.0)
        latencies.append(ev.received_at - t0)
        # let the window pass so the next change is isolated
        wait_until(lambda: time.monotonic() - t0 > 0.6, 2)
    assert sorted(latencies)[2] < 0.25, latencies


def test_refresh_endpoint_sends_refresh_to_every_client(claude, server_factory):
    claude.session("/w/r").prompt("one")
    server = server_factory(claude.root)
    c1, _ = connect(server)
    c2, _ = connect(server)
    assert server.post_json("/api/claude-sessions/refresh") == {"sessions": 1}
    for c in (c1, c2):
        ev = c.wait_for(lambda e: e.type == "refresh", 2)
        assert len(ev.sessions) == 1


def test_keepalive_on_an_idle_stream(claude, server_factory):
    server = server_factory(claude.root, keepalive_s=1)
    client, init = connect(server)
    ev = client.next_event(3)
    assert ev.type == "keepalive" and ev.data["sessions"] == [] and ev.id.startswith(init.id.rsplit("-", 1)[0])
    ev2 = client.next_event(3)
    assert ev2.type == "keepalive"


def test_last_event_id_replays_missed_events(claude, server_factory):
    s = claude.session("/w/replay")
    s.prompt("one")
    server = server_factory(claude.root)
    client, init = connect(server)
    s.reply("two")
    first = client.wait_for(lambda e: e.type == "session-updated", 2)
    client.close()
    s.reply("three")
    wait_until(lambda: server.get_json(f"/api/claude-sessions/{s.id}")["session"]["messageCount"] == 3, 3)
    with SSEClient(server.url, headers={"Last-Event-ID": first.id}) as again:
        ev = again.next_event(3)
        assert ev.type == "session-updated" and ev.sessions[0]["messageCount"] == 3
    with SSEClient(server.url, headers={"Last-Event-ID": "not-ours-7"}) as fresh:
        assert fresh.next_event(3).type == "init"


def test_slow_client_gets_refresh_then_is_disconnected_while_others_flow(claude, server_factory):
    sessions = [claude.session(f"/w/p{i}") for i in range(40)]
    for s in sessions:
        s.prompt("x" * 2000)
    server = server_factory(claude.root, env={"HELM_CLIENT_QUEUE": "4"})
    slow, _ = connect(server, rcvbuf=4096)
    healthy, _ = connect(server)

    def metric(name):
        text = server_text("/metrics", server)
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
        return 0.0

    # Each refresh carries every session (~100 KB): the slow client's socket
    # buffers fill, its mailbox overflows, and then overflows again.
    refreshes = 0
    deadline = time.monotonic() + 30
    while metric("helm_stream_slow_disconnects") < 1:
        assert time.monotonic() < deadline, "the slow client was never disconnected"
        server.post_json("/api/claude-sessions/refresh")
        refreshes += 1
        ev = healthy.wait_for(lambda e: e.type == "refresh", 3)  # the healthy one keeps up
        assert len(ev.sessions) == 40
    assert metric("helm_stream_overflows") >= 1
    # The healthy client still receives live updates.
    sessions[0].reply("still live")
    ev = healthy.wait_for(lambda e: e.type == "session-updated", 2)
    assert ev.sessions[0]["id"] == sessions[0].id
    # The slow client: what was buffered, then the end of the connection.
    types = []
    with pytest.raises(ConnectionError):
        while True:
            types.append(slow.next_event(5).type)
    assert server.get_json("/healthz")["clients"] == 1
    # Dropping it is routine: no error, no traceback in the log.
    assert "Traceback" not in server.log() and "[ERROR]" not in server.log(), server.log()


def test_events_written_while_a_client_does_not_read_arrive_whole_and_in_order(claude, server_factory):
    """Events go out from publish itself to a client that waits (its socket has room), as
    they would from its stream: the client that reads only at the end gets every event,
    whole, in the order the other got them. (A socket taking part of an event:
    tests/test_latency.py.)"""
    sessions = [claude.session(f"/w/q{i}") for i in range(80)]
    for s in sessions:
        s.prompt("first")
    server = server_factory(claude.root)
    slow, _ = connect(server, rcvbuf=4096)  # reads nothing until the end
    healthy, _ = connect(server)
    seen = []
    for i, s in enumerate(sessions):  # each session quiet: its change goes out at once, on its own
        s.prompt(f"change {i} " + "z" * 150)
        seen.append(healthy.wait_for(lambda e: e.type == "session-updated" and e.session(s.id), 5))
    # 80 events of over 1 KB: more than the slow client's socket holds
    got = [slow.wait_for(lambda e: e.type == "session-updated", 5) for _ in seen]
    assert [e.id for e in got] == [e.id for e in seen]
    assert [e.sessions for e in got] == [e.sessions for e in seen]


def server_text(path, server):
    import urllib.request
    with urllib.request.urlopen(server.url + path, timeout=5) as r:
        return r.read().decode()


def test_closed_clients_are_unsubscribed_no_leak(claude, server_factory):
    claude.session("/w/leak").prompt("x")
    server = server_factory(claude.root)
    for _ in range(200):
        c = SSEClient(server.url)
        c.next_event(5)
        c.close()
    wait_until(lambda: server.get_json("/healthz")["clients"] == 0, 5, message="all clients unsubscribed")
    metrics = server_text("/metrics", server)
    assert "helm_stream_clients 0.0" in metrics


def test_client_cap_answers_503_with_retry_after(claude, server_factory):
    server = server_factory(claude.root, args=["--max-clients", "2"])
    a, _ = connect(server)
    b, _ = connect(server)
    c = SSEClient(server.url)
    assert c.status == 503 and c.headers.get("retry-after")
    c.close()
    a.close()
    wait_until(lambda: server.get_json("/healthz")["clients"] == 1, 5)
    d, _ = connect(server)
    d.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_stop_and_reload_with_a_stream_open_finish_within_two_seconds(claude, server_factory, sig):
    claude.session("/w/stop").prompt("x")
    server = server_factory(claude.root)
    client, _ = connect(server)
    worker_pid = server.get_json("/healthz")["pid"]
    t0 = time.monotonic()
    server.signal(sig)
    # The stream is closed by the server promptly.
    with pytest.raises(ConnectionError):
        while True:
            client.next_event(3)
    if sig == signal.SIGTERM:
        server.proc.wait(2.5)
        assert time.monotonic() - t0 < 2.0
        assert server.proc.returncode == 0
    else:
        # The old worker is gone within 2 s; a new one serves.
        wait_until(lambda: not os.path.exists(f"/proc/{worker_pid}"), 2.0 - (time.monotonic() - t0),
                   message="the old worker to exit")
        assert server.get_json("/healthz")["pid"] != worker_pid
        # A client reconnecting as EventSource does gets a fresh stream from the new worker.
        again = wait_until(lambda: reconnect(server), 5, message="a stream from the new worker")
        again.close()
        assert "Worker graceful timeout" not in server.log()


def _get(sock, port: int) -> bytes:
    """One keep-alive request on ``sock``: the whole response (its body by Content-Length)."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_connection_is_kept_longer_than_a_browser_keeps_an_unused_one(claude, server):
    """Chromium keeps a preconnected socket unused for up to 10 s; a server that closes it sooner
    races the request the browser sends down it (``net::ERR_SOCKET_NOT_CONNECTED`` in the
    browser tests, with a 1 s keep-alive). A silent connection and a used one are both kept."""
    fresh = socket.create_connection(("127.0.0.1", server.port))
    used = socket.create_connection(("127.0.0.1", server.port))
    assert _get(used, server.port).startswith(b"HTTP/1.1 200")
    time.sleep(11)
    for sock in (fresh, used):
        assert _get(sock, server.port).startswith(b"HTTP/1.1 200")
        sock.close()


def test_a_stop_closes_idle_keep_alive_connections_at_once(claude, server):
    """The long keep-alive never holds a stop: idle connections are closed as streams are."""
    silent = socket.create_connection(("127.0.0.1", server.port))
    used = socket.create_connection(("127.0.0.1", server.port))
    assert _get(used, server.port).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)
    for sock in (silent, used):
        sock.settimeout(5)
        while sock.recv(65536):  # until the server closes it
            pass
        assert time.monotonic() - t0 < 1.0
        sock.close()
    server.proc.wait(5)
    assert server.proc.returncode == 0
    assert "Worker graceful timeout" not in server.log()


def reconnect(server):
    client = SSEClient(server.url)
    try:
        if client.status == 200 and client.next_event(2).type == "init":
            return client
    except ConnectionError:
        pass
    client.close()
    return None


def test_watchdog_observer_delivers_events_under_gevent_patch_all(tmp_path):
    """The real observer, monkey-patched as in the gevent worker (in a subprocess)."""
    code = r"""
import gevent.monkey
gevent.monkey.patch_all()
import os, sys, time, threading
from helm_monitor.live.watcher import Watcher
from helm_monitor.sources.claude import Catalog
root = sys.argv[1]
os.makedirs(os.path.join(root, "projects", "-p"), exist_ok=True)
seen = []
got = threading.Event()
def notify(path, is_dir):
    seen.append(path)
    if path.endswith("s.jsonl"):
        got.set()
w = Watcher(Catalog(root).watches(), notify)
w.start()
assert w.mode == "inotify", w.mode
with open(os.path.join(root, "projects", "-p", "s.jsonl"), "a") as f:
    f.write("{}\n")
ok = got.wait(5)
w.stop()
print("OK" if ok else "NO EVENT", seen)
sys.exit(0 if ok else 1)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_session_without_registry_turns_ended_when_its_recent_write_window_passes(claude, server_factory):
    """Claude Code before 2.1.75 keeps no registry: busy while written in the last 60 s."""
    server = server_factory(claude.root)
    client, _ = connect(server)
    s = claude.session("/home/bob/legacy", version="2.1.29")
    s.prompt("an old CLI at work")
    ev = client.wait_for(lambda e: e.type == "session-created", 2)
    assert ev.sessions[0]["status"] == "busy" and ev.sessions[0]["pid"] is None
    # Last written 57.5 s ago (the attribute change is an event too): still busy, for 2.5 s more.
    almost = time.time() - 57.5
    os.utime(s.path, (almost, almost))
    ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["status"] == "ended", 5)
    assert time.time() - almost >= 60  # not before its window passed
    # Written again: busy again, at once.
    s.reply("still going")
    ev = client.wait_for(lambda e: e.type == "session-updated", 2)
    assert ev.sessions[0]["status"] == "busy"


def _updates_of(client, session_id: str, seconds: float) -> list:
    """Every session-updated event for ``session_id`` arriving within ``seconds``."""
    got, deadline = [], time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            ev = client.next_event(remaining)
        except TimeoutError:
            break
        if ev.type == "session-updated" and ev.session(session_id):
            got.append(ev)
    return got


@pytest.mark.parametrize("case", ["end-of-turn", "resume"])
def test_one_update_per_window_whatever_file_changed(claude, server_factory, case):
    """The end of a turn writes the transcript and rewrites the registry file; a resume
    creates a registry file and appends a prompt. Several files, one session: its
    updates stay a window apart, and the last one carries everything."""
    s = claude.session("/w/turn")
    s.prompt("build it")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        if case == "end-of-turn":
            claude.register(proc.pid, s.id, status="busy")
        server = server_factory(claude.root, debounce_ms=500)
        client, init = connect(server)
        assert init.session(s.id)["status"] == ("busy" if case == "end-of-turn" else "ended")
        time.sleep(0.6)  # a quiet window: the first change that follows is isolated
        t0 = time.monotonic()
        if case == "end-of-turn":
            s.reply("Built.")
            time.sleep(0.1)  # longer than the settle delay, well within the window
            claude.register(proc.pid, s.id, status="idle")
            final = {"status": "idle", "messageCount": 2}
        else:
            claude.register(proc.pid, s.id, status="busy")
            time.sleep(0.1)
            s.prompt("resumed: now test it")
            final = {"status": "busy", "messageCount": 2}
        updates = _updates_of(client, s.id, 1.6)
        assert updates, "no update"
        gaps = [b.received_at - a.received_at for a, b in zip(updates, updates[1:])]
        # Runs are due a window apart (live/monitor.py keeps the schedule): a first update that
        # went out late on a busy machine (seen: 0.1 s, with the suite on 4 workers) shortens the
        # gap after it by as much, and 0.3 s still tells coalescing from none (gaps of ~0.1 s).
        assert all(g > 0.3 for g in gaps), f"{len(updates)} updates, {gaps} s apart"
        last = updates[-1].session(s.id)
        assert {k: last[k] for k in final} == final
        assert updates[0].received_at - t0 < 0.3  # the first change is not held back
    finally:
        proc.kill()
        proc.wait()


def test_prompt_appended_after_a_record_cut_mid_write_is_shown(claude, server_factory):
    """As a user meets it: Claude Code crashed mid-write, then ``--resume`` appended."""
    s = claude.session("/w/crash")
    s.turn("before the crash", "OK.")
    server = server_factory(claude.root)
    client, _ = connect(server)
    cut = json.dumps(s.prompt_record("the prompt being written when it crashed")).encode()
    s.write_raw(cut[: len(cut) // 2])
    client.wait_for(lambda e: e.type == "session-updated", 2)  # the cut part was read, as an unfinished line
    s.prompt("resumed: where were we")
    ev = client.wait_for(lambda e: e.type == "session-updated"
                         and e.session(s.id)["lastPrompt"] == "resumed: where were we", 2)
    assert ev.session(s.id)["messageCount"] == 3
    assert "cut off mid-write" in server.log()


@pytest.mark.parametrize("path", ["/api/claude-sessions/stream", "/api/sessions/stream"])
def test_last_event_id_query_parameter_resumes_and_the_header_wins(claude, server_factory, path):
    """A new EventSource cannot send Last-Event-ID (a tab taking the stream over from
    another): ?lastEventId= names where it left off. A Last-Event-ID header wins over it."""
    s = claude.session("/w/replay-query")
    s.prompt("one")
    server = server_factory(claude.root)
    client, init = connect(server, path=path)
    s.reply("two")
    first = client.wait_for(lambda e: e.type == "session-updated", 2)
    client.close()
    s.reply("three")
    wait_until(lambda: server.get_json(f"/api/claude-sessions/{s.id}")["session"]["messageCount"] == 3, 3)

    with SSEClient(server.url, path=f"{path}?lastEventId={first.id}") as resumed:
        ev = resumed.next_event(3)
        assert ev.type == "session-updated" and ev.session(s.id)["messageCount"] == 3
    with SSEClient(server.url, path=f"{path}?lastEventId=not-ours-7") as fresh:
        assert fresh.next_event(3).type == "init"
    # The header wins: an unknown one means init, whatever the query says ...
    with SSEClient(server.url, path=f"{path}?lastEventId={first.id}", headers={"Last-Event-ID": "not-ours-7"}) as c:
        assert c.next_event(3).type == "init"
    # ... and a known one is replayed from, whatever the query says.
    with SSEClient(server.url, path=f"{path}?lastEventId=not-ours-7", headers={"Last-Event-ID": first.id}) as c:
        ev = c.next_event(3)
        assert ev.type == "session-updated" and ev.session(s.id)["messageCount"] == 3
