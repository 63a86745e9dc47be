"""The team mode end to end, every part real: ``helm-monitor agent`` processes watching their
own Claude Code directories, one redis-server, ``helm-monitor web`` processes reading it, and
stream clients on the web tier (SPEC 9; design/TEAM_SCALE.md 7.3 tests 1, 5, 7, 12)."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.claude import ClaudeDir
from tests.support.server import wait_until
from tests.support.sse import SSEClient

pytestmark = pytest.mark.slow

FAST = {"HELM_TEAM_HEARTBEAT_S": "0.2", "HELM_TEAM_OFFLINE_S": "0.6"}


def _agent(server_factory, tmp_path, redis, host: str) -> tuple[ClaudeDir, object]:
    claude = ClaudeDir(tmp_path / host / ".claude")
    srv = server_factory(claude.root, role="agent", args=["--redis-url", redis.url, "--host-name", host], env=FAST)
    return claude, srv


def _web(server_factory, tmp_path, redis, name: str = "web", **kw):
    claude_dir = tmp_path / name / ".claude"  # read by nobody: the web tier reads no files
    return server_factory(claude_dir, role="web", args=["--redis-url", redis.url, "--host-name", name], env=FAST,
                          **kw)


def _sessions(web) -> dict[str, dict]:
    return {s["key"]: s for s in web.get_json("/api/sessions/all")}


def test_a_change_on_one_host_reaches_the_web_tier_with_its_host_and_key(tmp_path, redis_server, server_factory):
    laptop, _agent_srv = _agent(server_factory, tmp_path, redis_server, "laptop")
    web = _web(server_factory, tmp_path, redis_server)
    with SSEClient(web.url, path="/api/sessions/stream") as client:
        init = client.next_event(5)
        assert init.type == "init" and init.id.count(".") == 1  # <epoch>.<ms>-<seq>
        writer = laptop.session("/home/alice/code/webapp")
        writer.prompt("fix the login form")
        # The file may be seen created before its first record is: the title follows then.
        created = client.wait_for(lambda e: e.type in ("session-created", "session-updated")
                                  and any(s["id"] == writer.id and s["title"] == "fix the login form"
                                          for s in e.sessions), timeout=10)
    session = next(s for s in created.sessions if s["id"] == writer.id)
    assert session["host"] == "laptop" and session["key"] == f"laptop:claude-code:{writer.id}"
    assert session["title"] == "fix the login form" and session["stale"] is False
    hosts = {h["host"]: h for h in web.get_json("/api/hosts")}
    assert hosts["laptop"]["online"] is True and hosts["laptop"]["sessions"] == 1


def test_the_same_session_id_on_two_hosts_is_two_rows(tmp_path, redis_server, server_factory):
    laptop, _ = _agent(server_factory, tmp_path, redis_server, "laptop")
    ci, _ = _agent(server_factory, tmp_path, redis_server, "ci-runner-1")
    sid = "0a1b2c3d-0000-4000-8000-00000000beef"
    laptop.session("/home/alice/app", session_id=sid).prompt("on the laptop")
    ci.session("/builds/app", session_id=sid).prompt("on the runner")
    web = _web(server_factory, tmp_path, redis_server)
    rows = wait_until(lambda: (lambda s: s if len(s) == 2 else None)(_sessions(web)), 10, message="two rows")
    assert set(rows) == {f"laptop:claude-code:{sid}", f"ci-runner-1:claude-code:{sid}"}
    assert {s["title"] for s in rows.values()} == {"on the laptop", "on the runner"}


def test_a_killed_web_process_s_clients_resume_on_another_with_nothing_lost(tmp_path, redis_server, server_factory):
    laptop, _ = _agent(server_factory, tmp_path, redis_server, "laptop")
    writer = laptop.session("/home/alice/app")
    writer.prompt("turn 0")
    a = _web(server_factory, tmp_path, redis_server, "web-a")
    b = _web(server_factory, tmp_path, redis_server, "web-b")
    truth = lambda: _sessions(b).get(f"laptop:claude-code:{writer.id}")
    wait_until(truth, 10, message="the session on web-b")
    with SSEClient(a.url, path="/api/sessions/stream") as client:
        assert client.next_event(5).type == "init"
        writer.reply("reply 0")
        seen = client.wait_for(lambda e: e.type == "session-updated", timeout=10)
        last_id = seen.id
    os.killpg(a.proc.pid, signal.SIGKILL)  # the whole gunicorn of web-a: arbiter and worker
    writer.turn("turn 1", "reply 1")  # while the client is away
    wait_until(lambda: truth()["messageCount"] == 4, 10, message="the new turn on web-b")
    with SSEClient(b.url, path="/api/sessions/stream", headers={"Last-Event-ID": last_id}) as resumed:
        first = resumed.next_event(5)
        assert first.type != "init", "a resume on another worker must replay, not start over"
        state = {}
        event = first
        while True:
            for s in event.sessions:
                state[s["key"]] = s
            if state.get(truth()["key"], {}).get("messageCount") == 4:
                break
            event = resumed.next_event(5)
    assert state[truth()["key"]] == truth()


def test_the_engine_killed_and_restarted_with_persistence_every_part_converges(tmp_path, redis_factory,
                                                                                server_factory):
    redis = redis_factory(persistent=True)
    laptop, agent = _agent(server_factory, tmp_path, redis, "laptop")
    writer = laptop.session("/home/alice/app")
    writer.prompt("before the crash")
    web = _web(server_factory, tmp_path, redis)
    key = f"laptop:claude-code:{writer.id}"
    wait_until(lambda: key in _sessions(web), 10, message="the session on the web tier")
    with SSEClient(web.url, path="/api/sessions/stream") as client:
        assert client.next_event(5).type == "init"
        redis.kill9()
        down = client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is False, timeout=15,
                                  statuses=True)
        assert down.id is None  # never moves the browser's Last-Event-ID
        assert web.get_json("/healthz")["status"] == "degraded"
        assert agent.get_json("/api/sessions/all")  # the host's own dashboard keeps working
        writer.turn("while the engine is down", "noted")
        redis.start()
        client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is True, timeout=20, statuses=True)
    wait_until(lambda: _sessions(web)[key]["messageCount"] == 3, 20, message="the web tier to converge")
    wait_until(lambda: web.get_json("/healthz")["status"] == "ok", 10, message="the web tier healthy again")
