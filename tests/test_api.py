"""REST, health and metrics of a real server; the command line; the installed package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support.server import HelmServer, free_port, wait_until

SESSION_FIELDS = {"id", "source", "projectPath", "projectDir", "title", "firstPrompt", "lastPrompt", "messageCount",
                  "createdAt", "updatedAt", "gitBranch", "model", "tokens", "status", "pid", "subagentCount",
                  "sizeBytes", "version", "key", "host", "cost", "stale"}


def request(server, path, method="GET", headers=None):
    req = urllib.request.Request(server.url + path, method=method, headers=headers or {},
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:  # it holds the connection: close it now, not whenever it is collected
            return err.code, dict(err.headers), err.read()


def test_all_lists_every_session_newest_first_with_every_field(claude, server_factory):
    older = claude.session("/home/a/one")
    older.write(older.prompt_record("older prompt", timestamp="2026-11-20T10:00:00.000Z"))
    newer = claude.session("/home/a/two", git_branch=None)
    newer.write_raw(b"")  # a 0-byte transcript, as 2.1.29 creates at session start
    newer.write(newer.prompt_record("newer prompt", timestamp="2026-11-21T10:00:00.000Z"))
    server = server_factory(claude.root)
    sessions = server.get_json("/api/claude-sessions/all")
    assert [s["id"] for s in sessions] == [newer.id, older.id]
    for s in sessions:
        assert set(s) == SESSION_FIELDS
    assert sessions[0]["gitBranch"] is None  # unknown values are null, never missing
    status, headers, _ = request(server, "/api/claude-sessions/all")
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"


def test_session_detail_pages_through_the_conversation(claude, server_factory):
    s = claude.session("/home/a/chat")
    for i in range(7):
        s.turn(f"prompt {i}", f"reply {i}")
    server = server_factory(claude.root)
    first = server.get_json(f"/api/claude-sessions/{s.id}?limit=5")
    assert first["session"]["id"] == s.id and first["session"]["messageCount"] == 14
    assert first["total"] == 14 and first["nextOffset"] == 5
    assert [m["kind"] for m in first["messages"][:2]] == ["prompt", "reply"]
    assert first["messages"][0]["blocks"] == [{"type": "text", "text": "prompt 0"}]
    collected = list(first["messages"])
    offset = first["nextOffset"]
    while offset is not None:
        page = server.get_json(f"/api/claude-sessions/{s.id}?offset={offset}&limit=5")
        collected += page["messages"]
        offset = page["nextOffset"]
    assert [m["index"] for m in collected] == list(range(14))
    # Following a live session: ask from what you have.
    s.turn("prompt 7", "reply 7")
    wait_until(lambda: server.get_json(f"/api/claude-sessions/{s.id}?offset=14")["total"] == 16, 3)
    tail = server.get_json(f"/api/claude-sessions/{s.id}?offset=14")
    assert [m["blocks"][0]["text"] for m in tail["messages"]] == ["prompt 7", "reply 7"]


def test_the_tail_of_a_conversation_in_one_request(claude, server_factory):
    s = claude.session("/home/a/long")
    for i in range(7):
        s.turn(f"prompt {i}", f"reply {i}")
    server = server_factory(claude.root)
    key = server.get_json(f"/api/claude-sessions/{s.id}?limit=1")["session"]["key"]
    tail = server.get_json(f"/api/sessions/{key}?tail=1&limit=5")
    assert [m["index"] for m in tail["messages"]] == [9, 10, 11, 12, 13]
    assert tail["total"] == 14 and tail["nextOffset"] is None
    assert tail["messages"][-1]["blocks"] == [{"type": "text", "text": "reply 6"}]
    # Shorter than the page: all of it; an offset given beside tail is overruled.
    whole = server.get_json(f"/api/claude-sessions/{s.id}?tail=1&limit=100&offset=3")
    assert [m["index"] for m in whole["messages"]] == list(range(14))
    empty = claude.session("/home/a/empty")
    empty.write(empty._base("summary"))  # listed, no message yet
    wait_until(lambda: any(x["id"] == empty.id for x in server.get_json("/api/claude-sessions/all")), 5)
    none = server.get_json(f"/api/claude-sessions/{empty.id}?tail=1")
    assert none["messages"] == [] and none["total"] == 0


@pytest.mark.parametrize("path, code", [
    ("/api/claude-sessions/00000000-0000-0000-0000-000000000000", 404),
    ("/api/claude-sessions/not%20an%20id", 400),
    ("/api/claude-sessions/..%2F..%2Fetc%2Fpasswd", 404),
    ("/api/claude-sessions/x?offset=-1", 400),
    ("/api/claude-sessions/x?limit=0", 400),
    ("/api/claude-sessions/x?limit=abc", 400),
    ("/nope", 404),
])
def test_errors_are_json_with_the_right_status(server, path, code):
    status, headers, body = request(server, path)
    assert status == code
    assert headers["Content-Type"] == "application/json"
    assert set(json.loads(body)) == {"error"}
    assert b"Traceback" not in body


def test_wrong_method_is_405_json(server):
    status, headers, body = request(server, "/api/claude-sessions/all", method="POST")
    assert status == 405 and json.loads(body)["error"]


def test_healthz_and_metrics(claude, server_factory):
    claude.session("/w/h").prompt("x")
    server = server_factory(claude.root)
    health = server.get_json("/healthz")
    assert health["status"] == "ok" and health["scan"] == "complete"
    assert health["sessions"] == 1 and health["clients"] == 0
    assert health["watcher"]["mode"] == "inotify"
    assert str(claude.projects) in health["watcher"]["watching"]
    assert health["secondsSinceLastEvent"] is None  # no file event since start
    assert "greenlets" not in health and health["threads"] >= 1
    # For leak hunting (bench/soak.py): the hub, the observer, the pump, the stop watcher...
    assert server.get_json("/healthz?greenlets=1")["greenlets"] >= 4
    claude.session("/w/h2").prompt("y")
    wait_until(lambda: isinstance(server.get_json("/healthz")["secondsSinceLastEvent"], float), 3)
    # The event is counted before the debounce window applies it: wait for the session itself, or
    # the count below depends on which comes first.
    # The file may be seen before its first record (no version yet: busy for a while), so the
    # second session counts as ended once its record is in.
    wait_until(lambda: [s["status"] for s in server.get_json("/api/claude-sessions/all")] == ["ended"] * 2, 3,
               message="the second session, ended")
    status, headers, body = request(server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    text = body.decode()
    for name in ("helm_stream_clients", "helm_events_sent_total", "helm_watcher_lag_seconds",
                 'helm_sessions{status="ended"} 2.0', "helm_watcher_mode"):
        assert name in text, name


def test_polling_watcher_mode_reports_itself_and_still_sees_changes(claude, server_factory):
    from tests.support.sse import SSEClient
    server = server_factory(claude.root, args=["--watcher", "polling"])
    assert server.get_json("/healthz")["watcher"]["mode"] == "polling"
    with SSEClient(server.url) as client:
        assert client.next_event(5).type == "init"
        s = claude.session("/w/poll")
        s.prompt("seen by polling")
        ev = client.wait_for(lambda e: e.type == "session-created", 4)
        assert ev.sessions[0]["id"] == s.id


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "helm_monitor", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for option in ("--claude-dir", "--host", "--port", "--debounce-ms", "--keepalive-s", "--token", "--token-file",
                   "--allowed-host", "--max-clients", "--behind-auth-proxy", "HELM_CLAUDE_DIR", "HELM_TOKEN"):
        assert option in out.stdout, option


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "port"),
    (["--debounce-ms", "1"], "debounce"),
    (["--host", "0.0.0.0"], "token"),
])
def test_bad_configuration_exits_with_a_clear_message(tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "helm_monitor", "--claude-dir", str(tmp_path)] + args,
                         capture_output=True, text=True, timeout=30, env={**os.environ, "HELM_TOKEN": ""})
    assert out.returncode == 2
    assert message in out.stderr.lower() and "Traceback" not in out.stderr


def test_missing_claude_dir_starts_empty_and_picks_it_up(tmp_path, server_factory):
    root = tmp_path / "later" / ".claude"
    server = server_factory(root)
    assert server.get_json("/api/claude-sessions/all") == []
    from tests.support.claude import ClaudeDir
    claude = ClaudeDir(root)
    s = claude.session("/w/late")
    s.prompt("the data directory appeared after start")
    wait_until(lambda: [x["id"] for x in server.get_json("/api/claude-sessions/all")] == [s.id], 6,
               message="the session in a directory created after start")


@pytest.mark.slow
def test_non_editable_install_serves_page_and_static_from_any_directory(tmp_path, claude):
    """`pip install .` (not editable): templates/ and static/ ship inside the package."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                          "--target", str(target), repo], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / "helm_monitor" / "templates" / "index.html").is_file()
    assert (target / "helm_monitor" / "static" / "app.js").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    server = HelmServer(claude.root, port=free_port(), env=env, log_path=tmp_path / "installed.log")
    server.start(wait=False)
    try:
        server.wait_ready()
        health = server.get_json("/healthz")
        code = subprocess.run([sys.executable, "-c", "import helm_monitor; print(helm_monitor.__file__)"],
                              env=env, cwd=elsewhere, capture_output=True, text=True).stdout
        assert code.startswith(str(target)), code
        status, _, page = request(server, "/")
        found = re.search(rb'<script type="module" src="(/assets/[0-9a-f]{12}/app\.js)"', page)
        assert status == 200 and found, page[:2000]
        status, headers, script = request(server, found.group(1).decode())
        assert status == 200 and len(script) > 1000
        # The modules it imports are served under the same versioned path, cached for good.
        cache = {k.lower(): v for k, v in headers.items()}.get("cache-control", "")
        assert "max-age=31536000" in cache, cache
        for name in re.findall(rb"from '\./([a-z]+\.js)'", script):
            status, _, module = request(server, found.group(1).decode().rsplit("/", 1)[0] + "/" + name.decode())
            assert status == 200 and module, name
        status, _, script = request(server, "/static/app.js")
        assert status == 200 and len(script) > 1000
        assert health["status"] == "ok"
    finally:
        server.stop()


def test_hosts_lists_this_host_alone_behind_the_same_checks(claude, server_factory):
    """Without a shared engine, /api/hosts is this host (SPEC 3), guarded like every API route."""
    claude.session("/w/h1").prompt("x")
    claude.session("/w/h2").prompt("y")
    server = server_factory(claude.root, args=["--host-name", "build-box-7"])
    status, headers, body = request(server, "/api/hosts")
    assert status == 200 and headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    [host] = json.loads(body)
    assert set(host) == {"host", "online", "lastSeen", "sessions", "sources"}
    assert host["host"] == "build-box-7" == server.get_json("/healthz")["host"]
    assert host["online"] is True and host["sessions"] == 2 and host["sources"] == ["claude-code"]
    assert isinstance(host["lastSeen"], int) and abs(host["lastSeen"] / 1000 - time.time()) < 60
    assert request(server, "/api/hosts", headers={"Host": "evil.example"})[0] == 403
    assert request(server, "/api/hosts", headers={"Origin": "http://evil.example"})[0] == 403
    assert request(server, "/api/hosts", method="POST")[0] == 405


def test_hosts_needs_the_token_when_one_is_set(claude, server_factory):
    server = server_factory(claude.root, args=["--token", "hosts-token-9c2e"])
    status, _, body = request(server, "/api/hosts")
    assert status == 401 and set(json.loads(body)) == {"error"}
    status, _, body = request(server, "/api/hosts", headers={"Authorization": "Bearer hosts-token-9c2e"})
    assert status == 200 and len(json.loads(body)) == 1
