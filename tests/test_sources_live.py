"""Every agent on one server: the real samples listed side by side, and live changes of each
on the stream within a second (a real gunicorn gevent worker, files written as each agent writes them)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.codex import OWNER_CHILD, CodexHome
from tests.support.gemini import GeminiHome, tokens
from tests.support.opencode import WriterProcess
from tests.support.server import wait_until
from tests.support.sse import SSEClient

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).parent / "fixtures"
HOST = "testhost"


def copy_sample(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest)
    return dest


@pytest.fixture
def homes(tmp_path, claude, sample_dir):
    """The real samples of all four agents, each in the place its server option names."""
    claude_sample = sample_dir("claude-code-2.1.330")
    codex = copy_sample("codex-0.171.0", tmp_path / "codex-sample") / "home" / ".codex"
    opencode = copy_sample("opencode-1.18.33", tmp_path / "opencode-sample") / "home/.local/share/opencode"
    gemini = copy_sample("gemini-0.61.0", tmp_path / "gemini-sample") / "home" / ".gemini"
    return {"claude": claude_sample, "codex": codex, "opencode": opencode, "gemini": gemini}


def env_for(homes) -> dict:
    return {"HELM_CODEX_DIR": str(homes["codex"]), "HELM_OPENCODE_DB": str(homes["opencode"] / "opencode.db"),
            "HELM_GEMINI_DIR": str(homes["gemini"]), "HELM_HOST_NAME": HOST}


def by_source(sessions) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in sessions:
        out.setdefault(s["source"], []).append(s)
    return out


def status_of(server, path: str) -> int:
    try:
        with urllib.request.urlopen(server.url + path, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        with err:
            return err.code


def connect(server, path="/api/sessions/stream"):
    client = SSEClient(server.url, path=path)
    assert client.status == 200
    init = client.next_event(5)
    assert init.type == "init"
    return client, init


def test_every_agent_listed_with_keys_and_the_claude_routes_unchanged(homes, server_factory):
    server = server_factory(homes["claude"], env=env_for(homes))
    sessions = server.get_json("/api/sessions/all")
    groups = by_source(sessions)
    # The samples hold 4 Claude Code transcripts, 5 Codex rollouts, 5 rows in OpenCode's session table
    # and 5 Gemini CLI chat files of 5 ids (tests/test_source_*.py check each one field by field).
    assert {k: len(v) for k, v in groups.items()} == {"claude-code": 4, "codex": 5, "opencode": 5, "gemini": 5}
    for s in sessions:
        assert s["key"] == f"{HOST}:{s['source']}:{s['id']}" and s["host"] == HOST and s["stale"] is False
        assert set(s["tokens"]) == {"input", "output", "cacheRead", "cacheCreation"}
        assert s["cost"]["basis"] in ("ledger", "list-price", "unpriced")
    assert [s["updatedAt"] for s in sessions] == sorted((s["updatedAt"] for s in sessions), reverse=True)
    assert all(s["cost"]["basis"] == "ledger" for s in groups["opencode"])

    claude_only = server.get_json("/api/claude-sessions/all")
    assert sorted(s["id"] for s in claude_only) == sorted(s["id"] for s in groups["claude-code"])
    assert server.get_json(f"/api/claude-sessions/{claude_only[0]['id']}")["session"]["key"] == claude_only[0]["key"]
    codex_id = groups["codex"][0]["id"]
    assert status_of(server, f"/api/claude-sessions/{codex_id}") == 404  # not a Claude Code session

    # Each agent's conversation by key: prompts and replies, tool calls where the sample ran one.
    for source, group in groups.items():
        for s in group:
            page = server.get_json(f"/api/sessions/{s['key']}?limit=500")
            assert page["session"]["key"] == s["key"]
            kinds = {m["kind"] for m in page["messages"]}
            assert "reply" in kinds or s["messageCount"] == 0, (source, s["id"], kinds)
    assert status_of(server, f"/api/sessions/{HOST}:codex:nope") == 404
    assert status_of(server, "/api/sessions/not-a-key") == 400

    health = server.get_json("/healthz")
    assert health["host"] == HOST
    assert {s["source"]: s["present"] for s in health["sources"]} == {
        "claude-code": True, "codex": True, "opencode": True, "gemini": True}


def test_sources_option_limits_what_is_read(homes, server_factory):
    server = server_factory(homes["claude"], env={**env_for(homes), "HELM_SOURCES": "codex,gemini"})
    sessions = server.get_json("/api/sessions/all")
    assert set(by_source(sessions)) == {"codex", "gemini"}
    assert server.get_json("/api/claude-sessions/all") == []


def test_claude_stream_carries_claude_sessions_only(homes, claude, server_factory, tmp_path):
    codex = CodexHome(tmp_path / "codex")
    server = server_factory(claude.root, env={"HELM_CODEX_DIR": str(codex.root), "HELM_HOST_NAME": HOST})
    everything, _ = connect(server)
    claude_only, init = connect(server, "/api/claude-sessions/stream")
    assert init.sessions == []
    r = codex.rollout()
    r.meta().turn_started().user("hello codex").agent("hi").turn_complete()
    ev = everything.wait_for(lambda e: e.type == "session-created", 3)
    assert ev.sessions[0]["source"] == "codex"
    s = claude.session("/home/u/proj")
    s.turn("hello claude", "hi")
    seen = []

    def claude_change(e):
        seen.append(e)
        return e.type in ("session-created", "session-updated")
    ev = claude_only.wait_for(claude_change, 3)
    assert [x["source"] for x in ev.sessions] == ["claude-code"]
    # The Codex session created first never reached this stream.
    assert [x["source"] for e in seen for x in e.sessions] == ["claude-code"]


def stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()
    child.stdin.close()
    child.stdout.close()


def test_codex_rollout_append_and_lock_held_by_a_real_process(claude, server_factory, tmp_path):
    codex = CodexHome(tmp_path / "codex")
    server = server_factory(claude.root, env={"HELM_CODEX_DIR": str(codex.root), "HELM_HOST_NAME": HOST},
                            debounce_ms=300)
    client, init = connect(server)
    assert init.sessions == []

    r = codex.rollout()
    t0 = time.monotonic()
    r.meta().turn_started().user("first prompt")
    ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
    if ev.sessions[0]["firstPrompt"] is None:  # three writes: the first may go out on its own, at once
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["firstPrompt"], 1.0)
    assert time.monotonic() - t0 < 1.0
    [s] = ev.sessions
    assert s["key"] == f"{HOST}:codex:{r.id}" and s["firstPrompt"] == "first prompt" and s["status"] == "ended"

    # The owner takes the writer lock as Codex does (flock on thread-writer-locks/<id>.lock) mid-turn.
    owner = subprocess.Popen([sys.executable, "-c", OWNER_CHILD, str(codex.lock_path(r.id)), str(r.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["status"] == "busy", 1.5)
        assert ev.sessions[0]["pid"] == owner.pid
        t0 = time.monotonic()
        r.agent("the reply").tokens(1200, 1000, 30).turn_complete()
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["status"] == "waiting", 1.0)
        assert time.monotonic() - t0 < 1.0
        assert ev.sessions[0]["messageCount"] == 2
        assert ev.sessions[0]["tokens"] == {"input": 200, "output": 30, "cacheRead": 1000, "cacheCreation": 0}
        t0 = time.monotonic()
        owner.stdin.write("release\n")
        owner.stdin.flush()
        assert owner.stdout.readline().strip() == "ok"
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["status"] == "ended", 1.0)
        assert time.monotonic() - t0 < 1.0 and ev.sessions[0]["pid"] is None
    finally:
        stop(owner)


def test_codex_owner_killed_without_unlinking_turns_ended(claude, server_factory, tmp_path):
    codex = CodexHome(tmp_path / "codex")
    r = codex.rollout()
    r.meta().turn_started().user("a prompt")
    owner = subprocess.Popen([sys.executable, "-c", OWNER_CHILD, str(codex.lock_path(r.id)), str(r.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        server = server_factory(claude.root, env={"HELM_CODEX_DIR": str(codex.root), "HELM_HOST_NAME": HOST})
        client, init = connect(server)
        assert [s["status"] for s in init.sessions] == ["busy"]
        t0 = time.monotonic()
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert codex.lock_path(r.id).exists()  # a crash leaves the lock file behind
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["status"] == "ended", 3.0)
        assert time.monotonic() - t0 < 2.5
    finally:
        stop(owner)


def test_opencode_written_by_another_process_in_wal_mode(claude, server_factory, tmp_path):
    data = tmp_path / "opencode"
    data.mkdir()
    writer = WriterProcess(data / "opencode.db")
    try:
        server = server_factory(claude.root, env={"HELM_OPENCODE_DB": str(data / "opencode.db"),
                                                  "HELM_HOST_NAME": HOST})
        client, init = connect(server)
        assert init.sessions == []
        t0 = time.monotonic()
        sid = writer.session("/home/user/code/alpha")
        writer.user(sid, "hello opencode")
        ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
        assert time.monotonic() - t0 < 1.0
        assert ev.sessions[0]["key"] == f"{HOST}:opencode:{sid}"
        if ev.sessions[0]["firstPrompt"] is None:
            # The session's creation and its first prompt are two commits: the first went out at
            # once, the second within the window.
            ev = client.wait_for(lambda e: e.type == "session-updated"
                                 and e.sessions[0]["firstPrompt"] == "hello opencode", 1.0)
        assert ev.sessions[0]["firstPrompt"] == "hello opencode"
        assert time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        writer.set_title(sid, "A real title")
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["title"] == "A real title", 1.0)
        assert time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        writer.delete_session(sid)
        ev = client.wait_for(lambda e: e.type == "session-deleted", 1.0)
        assert time.monotonic() - t0 < 1.0
        assert ev.sessions == [{"key": f"{HOST}:opencode:{sid}", "id": sid, "host": HOST, "source": "opencode",
                                "projectPath": "/home/user/code/alpha", "projectDir": None}]
    finally:
        writer.stop()


def test_gemini_file_appended_then_removed(claude, server_factory, tmp_path):
    gemini = GeminiHome(tmp_path / "gemini")
    project = gemini.project("/home/user/code/alpha")
    server = server_factory(claude.root, env={"HELM_GEMINI_DIR": str(gemini.root), "HELM_HOST_NAME": HOST})
    client, init = connect(server)
    assert init.sessions == []
    chat = project.session("5f0c1e52-8f0a-4d5e-9a53-6d3f3c1a2b7e")
    chat.prompt("hello gemini")
    ev = client.wait_for(lambda e: e.type == "session-created", 1.0)
    assert ev.sessions[0]["key"] == f"{HOST}:gemini:{chat.id}"
    assert ev.sessions[0]["projectPath"] == "/home/user/code/alpha"
    t0 = time.monotonic()
    chat.reply("hi there", tokens(1000, 20, cached=800))
    ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["messageCount"] == 2, 1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.sessions[0]["tokens"] == {"input": 200, "output": 20, "cacheRead": 800, "cacheCreation": 0}
    t0 = time.monotonic()
    os.unlink(chat.path)  # Gemini CLI's own start-up cleanup deletes whole session files
    ev = client.wait_for(lambda e: e.type == "session-deleted", 1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.sessions[0]["key"] == f"{HOST}:gemini:{chat.id}"
    assert "Traceback" not in server.log()


def test_an_agent_installed_while_running_appears(claude, server_factory, tmp_path):
    """A source whose data directory does not exist costs nothing and shows up when it is created."""
    home = tmp_path / "later" / ".codex"
    server = server_factory(claude.root, env={"HELM_CODEX_DIR": str(home), "HELM_HOST_NAME": HOST})
    client, _ = connect(server)
    codex = CodexHome(home)
    r = codex.rollout()
    r.meta().turn_started().user("first codex prompt ever")
    ev = client.wait_for(lambda e: e.type == "session-created", 5.0)
    if ev.sessions[0]["firstPrompt"] is None:  # three writes: the first may go out on its own, at once
        ev = client.wait_for(lambda e: e.type == "session-updated" and e.sessions[0]["firstPrompt"], 2.0)
    assert ev.sessions[0]["id"] == r.id and ev.sessions[0]["firstPrompt"] == "first codex prompt ever"
