"""``helm-monitor agent``: the app factory's wiring, the transcript tail, and the real process.

In-process tests build the app as ``helm-monitor agent`` does (``create_app`` with role
"agent") over a Claude data directory written the way Claude Code writes it; the last test
runs the real ``python -m helm_monitor agent`` (gunicorn, gevent worker) against a real
redis-server that is killed with SIGKILL and restarted under it.
"""

from __future__ import annotations

import time
import urllib.request

import orjson
import pytest

from helm_monitor.config import Config
from helm_monitor.sources.redact import MASK
from helm_monitor.team import keys
from helm_monitor.team.agent import attach, read_tail
from tests.support.server import HelmServer, wait_until

HOST = "laptop"
SECRET = "sk-ant-api03-A1b2C3d4E5f6G7h8I9j0K1l2M3n4"


def agent_config(claude_root, redis_url: str, **kw) -> Config:
    return Config(claude_dir=claude_root, role="agent", redis_url=redis_url, host_name=HOST, cache_dir=None,
                  sources=["claude-code"], scan_workers=1, team_heartbeat_s=0.2, team_offline_s=0.6, **kw)


@pytest.fixture
def agent_service(claude, redis_server):
    """The service ``create_app`` makes for role "agent" (started by the test, stopped here)."""
    from helm_monitor.web.app import create_app
    app = create_app(agent_config(claude.root, redis_server.url))
    svc = app.extensions["helm"]
    yield svc
    svc.stop()


def hash_of(r, host=HOST) -> dict:
    return {k.decode(): orjson.loads(v) for k, v in r.hgetall(keys.snapshot_key(host)).items()}


def tail_of(r, session_key: str) -> dict | None:
    raw = r.get(keys.transcript_key(HOST, session_key))
    return None if raw is None else orjson.loads(raw)


def texts(messages: list[dict]) -> str:
    return " ".join(b.get("text") or b.get("input") or "" for m in messages for b in m["blocks"])


def test_the_app_factory_attaches_a_publisher_that_follows_the_store(claude, agent_service, redis_server):
    from helm_monitor.team.publisher import Publisher
    svc = agent_service
    (publisher,) = svc.attached
    assert isinstance(publisher, Publisher) and publisher.heartbeat_s == 0.2
    w = claude.session()
    for n in range(59):
        w.turn(f"step {n}", f"reply {n}")
    w.turn(f"deploy with {SECRET}", "Deployed.")  # messages 118 and 119
    svc.start()
    assert svc.wait_ready(20)
    key = keys.session_key(HOST, "claude-code", w.id)
    r = redis_server.client()
    try:
        wait_until(lambda: key in hash_of(r), 10, message="the session in the host's hash")
        assert hash_of(r)[key] == svc.store.get(key)
        assert hash_of(r)[key]["host"] == HOST
        tail = wait_until(lambda: tail_of(r, key), 10, message="the session's latest messages")
        page = svc.conversation(key, 120 - keys.TRANSCRIPT_MESSAGES, keys.TRANSCRIPT_MESSAGES)
        assert tail == {"messages": page["messages"], "total": 120, "updatedAt": svc.store.get(key)["updatedAt"]}
        assert [m["index"] for m in tail["messages"]] == list(range(70, 120))
        assert MASK in texts(tail["messages"]) and SECRET not in orjson.dumps(tail).decode()
        assert svc.health()["team"]["engine"] == "ok"
    finally:
        r.close()


def test_read_tail_pages_the_end_of_a_conversation(claude, agent_service):
    svc = agent_service
    w = claude.session()
    w.turn("only", "one")
    svc.start()
    assert svc.wait_ready(20)
    key = keys.session_key(HOST, "claude-code", w.id)
    got = read_tail(svc, key, keys.TRANSCRIPT_MESSAGES)
    assert got == {"messages": svc.conversation(key, 0, 100)["messages"], "total": 2}
    assert read_tail(svc, keys.session_key(HOST, "claude-code", "no-such-session"), 5) is None
    w.path.unlink()
    with pytest.raises(FileNotFoundError):
        read_tail(svc, key, 5)


def test_attach_refuses_a_service_of_another_host(claude, redis_server):
    from helm_monitor.live.service import LiveService
    svc = LiveService(claude_dir=claude.root, host="vm1", cache_dir=None)
    with pytest.raises(ValueError, match="laptop"):
        attach(svc, agent_config(claude.root, redis_server.url))
    assert svc.attached == []


class AgentServer(HelmServer):
    """``python -m helm_monitor agent ...``: the role comes before every other argument."""

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("helm_monitor") + 1
        return cmd[:at] + ["agent"] + cmd[at:]


@pytest.mark.slow
def test_the_agent_process_publishes_and_survives_the_engine(claude, redis_server, tmp_path):
    before = claude.session(cwd="/home/alice/code/api")
    before.turn("what changed?", "Nothing yet.")
    srv = AgentServer(claude.root, args=["--redis-url", redis_server.url, "--host-name", HOST],
                      env={"HELM_TEAM_HEARTBEAT_S": "0.2", "HELM_TEAM_OFFLINE_S": "0.6"},
                      log_path=tmp_path / "agent.log")
    r = redis_server.client()
    try:
        srv.start()
        w = claude.session()
        w.turn(f"deploy with {SECRET}", "Deployed.")
        key, key_before = (keys.session_key(HOST, "claude-code", s.id) for s in (w, before))
        wait_until(lambda: {key, key_before} <= set(hash_of(r)), 10, message="both sessions in the hash")
        assert all(s["host"] == HOST for s in hash_of(r).values())
        got = [{k.decode(): v for k, v in f.items()} for _id, f in r.xrange(keys.stream_key(HOST))]
        assert got[0]["t"] == b"resync"
        created = [e for e in got if e["t"] == b"created" and e["k"].decode() == key]
        assert created and orjson.loads(created[0]["d"])["host"] == HOST

        wait_until(lambda: any(f[b"t"] == b"hb" for _id, f in r.xrange(keys.stream_key(HOST))), 5, message="a heartbeat")
        team = srv.get_json("/healthz")["team"]
        assert (team["role"], team["engine"], team["url"]) == ("agent", "ok", redis_server.url)
        assert team["resyncs"] == 1 and team["errors"] == 0

        tail = wait_until(lambda: tail_of(r, key), 10, message="the tail key")
        detail = srv.get_json(f"/api/sessions/{key}")
        assert tail["messages"] == detail["messages"] and tail["total"] == detail["total"] == 2
        assert MASK in texts(tail["messages"]) and SECRET not in orjson.dumps(tail).decode()

        # The engine dies: the local dashboard goes on, with what changes meanwhile.
        redis_server.kill9()
        w.turn("and now?", "Still here.")
        wait_until(lambda: next(s for s in srv.get_json("/api/sessions/all") if s["key"] == key)["messageCount"] == 4,
                   10, message="the local dashboard to follow the transcript")
        down = wait_until(lambda: (lambda t: t if t["engine"] == "down" else None)(srv.get_json("/healthz")["team"]),
                          10, message="the agent to see the engine down")
        assert down["since"] is not None and down["errors"] >= 1

        redis_server.start()
        restarted = time.monotonic()
        wait_until(lambda: hash_of(r).get(key, {}).get("messageCount") == 4, 15, message="the resync")
        resynced_in = time.monotonic() - restarted
        assert resynced_in < 12, resynced_in  # the backoff is capped at 10 s
        assert set(hash_of(r)) == {key, key_before}
        team = srv.get_json("/healthz")["team"]
        assert team["engine"] == "ok" and team["resyncs"] == 2 and team["since"] is None
        print(f"resynced {resynced_in:.2f} s after the engine restarted")
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()
    finally:
        r.close()
        srv.kill()


def test_healthz_of_a_local_server_has_no_team_block(server):
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        assert "team" not in orjson.loads(resp.read())
