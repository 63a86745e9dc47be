"""``helm-monitor web`` as it runs: real gunicorn processes (gevent workers) reading a real
redis-server that simulated hosts write (tests/support/team.py), read by stream clients over
HTTP. What only the wire shows: ids, status frames without ids, resumes across worker
processes, and the engine killed under a running web tier (design/TEAM_SCALE.md 7.3)."""

from __future__ import annotations

import os
import signal
import time
import urllib.parse

import orjson
import pytest

from helm_monitor.team import keys
from tests.support.server import wait_until
from tests.support.sse import SSEClient
from tests.support.team import simple

pytestmark = pytest.mark.slow

HB_S, OFFLINE_S = 0.2, 0.6
FAST = {"HELM_TEAM_HEARTBEAT_S": str(HB_S), "HELM_TEAM_OFFLINE_S": str(OFFLINE_S)}
ALL = "/api/sessions/stream"


@pytest.fixture
def web_tier(tmp_path, server_factory, redis_server):
    def start(name: str = "web", engine=None, **kw):
        engine = engine or redis_server
        return server_factory(tmp_path / name / ".claude", role="web",
                              args=["--redis-url", engine.url, "--host-name", name], env=FAST, **kw)
    return start


def stream(web, last_event_id: str | None = None) -> SSEClient:
    return SSEClient(web.url, path=ALL, headers={"Last-Event-ID": last_event_id} if last_event_id else None)


def fold(state: dict, event) -> None:
    """What the page does with a message (static/app.js keys its rows by ``key``)."""
    if event.type in ("init", "refresh"):
        state.clear()
    if event.type == "session-deleted":
        for s in event.sessions:
            state.pop(s["key"], None)
    elif event.type in ("init", "refresh", "session-created", "session-updated"):
        state.update({s["key"]: s for s in event.sessions})


def opening(client: SSEClient, timeout: float = 5.0) -> tuple[list, dict]:
    """Every message up to the statuses that follow an init or a replay: (messages, statuses)."""
    messages, statuses = [], {}
    while len(statuses) < 2:
        event = client.next_event(timeout, statuses=True)
        if event.type in ("host-status", "feed-status"):
            statuses[event.type] = event
        elif event.type != "keepalive":
            messages.append(event)
    return messages, statuses


def all_sessions(web) -> dict[str, dict]:
    return {s["key"]: s for s in web.get_json("/api/sessions/all")}


def engine_ms(engine) -> int:
    with engine.client() as r:
        sec, usec = r.time()
    return sec * 1000 + usec // 1000


def test_a_killed_workers_client_resumes_on_a_worker_started_after_it_with_nothing_lost(hosts, web_tier):
    laptop, runner = hosts("laptop"), hosts("runner")
    laptop.beat(HB_S)
    runner.beat(HB_S)
    edited, renamed, doomed = laptop.new(), runner.new(), runner.new()
    a = web_tier("web-a")
    state: dict = {}
    with stream(a) as client:
        messages, statuses = opening(client)
        assert [m.type for m in messages] == ["init"] and statuses["host-status"].id is None
        fold(state, messages[0])
        for n in (2, 3):
            laptop.update(edited["key"], messageCount=n)
            event = client.wait_for(lambda e: e.type == "session-updated")
            fold(state, event)
        last_id = event.id
    os.killpg(a.proc.pid, signal.SIGKILL)  # the whole gunicorn of web-a
    # While the client is away, and before the next worker even exists:
    laptop.update(edited["key"], messageCount=4, status="waiting")
    runner.update(renamed["key"], title="renamed while away")
    runner.delete(doomed["key"])
    created = laptop.new(title="created while away")
    b = web_tier("web-b")
    with stream(b, last_id) as resumed:
        messages, statuses = opening(resumed)
    assert messages and "init" not in [m.type for m in messages], [m.type for m in messages]
    assert all(m.id.startswith(last_id.split(".")[0] + ".") for m in messages)
    for m in messages:
        fold(state, m)
    truth = {**laptop.truth(), **runner.truth()}
    assert {k: simple(s) for k, s in state.items()} == truth
    assert created["key"] in state and doomed["key"] not in state
    assert [h["online"] for h in statuses["host-status"].data["hosts"]] == [True, True]


def test_an_id_the_rings_no_longer_cover_or_of_another_epoch_gets_init(redis_server, hosts, web_tier):
    laptop = hosts("laptop")
    laptop.new()
    web = web_tier()
    epoch = web.get_json("/healthz")["engine"]["epoch"]
    now = engine_ms(redis_server)
    for last_id in (keys.sse_id(epoch, (now - 11 * 60_000, 0)), keys.sse_id("0badc0de", (now, 0)),
                    f"{epoch}-17", "nonsense"):
        with stream(web, last_id) as client:
            first = client.next_event(5)
        assert first.type == "init" and first.id.startswith(epoch + "."), (last_id, first.type)


def test_entries_of_two_hosts_in_the_same_millisecond_survive_a_resume(redis_server, hosts, web_tier):
    one, two = hosts("one"), hosts("two")
    s1, s2 = one.new(), two.new()
    web = web_tier()
    ms = engine_ms(redis_server) + 100
    base = {"b": "sim", "v": keys.WIRE_VERSION}
    with stream(web) as client:
        opening(client)
        one.raw({**base, "t": "updated", "k": s1["key"], "d": orjson.dumps({**s1, "title": "one"})}, f"{ms}-5")
        first = client.wait_for(lambda e: e.type == "session-updated")
    assert first.id.endswith(f".{ms}-5")
    # The other host's entry of that millisecond, read in a later reply, with a lower id.
    two.raw({**base, "t": "updated", "k": s2["key"], "d": orjson.dumps({**s2, "title": "two"})}, f"{ms}-3")
    wait_until(lambda: all_sessions(web)[s2["key"]]["title"] == "two", 5, message="the second entry")
    with stream(web, first.id) as resumed:
        messages, _ = opening(resumed)
    titles = {s["key"]: s["title"] for m in messages for s in m.sessions}
    assert "init" not in [m.type for m in messages] and titles.get(s2["key"]) == "two", titles


def test_an_id_from_the_future_is_ignored_counted_and_no_client_id_jumps(redis_server, hosts, web_tier):
    good, evil = hosts("good"), hosts("evil")
    mine, jam = good.new(), evil.new()
    web = web_tier(keepalive_s=1.0)
    with stream(web) as client:
        messages, _ = opening(client)
        opened_at = keys.parse_sse_id(messages[0].id)[1]
        evil.raw({"t": "updated", "k": jam["key"], "d": orjson.dumps({**jam, "title": "future"}), "b": "sim",
                  "v": keys.WIRE_VERSION}, "99999999999999-0")
        wait_until(lambda: web.get_json("/healthz")["ignored"].get("future-id") == 1, 5, message="counted")
        keepalive = client.wait_for(lambda e: e.type == "keepalive", 3, skip_keepalive=False)
        good.update(mine["key"], title="after the jam")
        update = client.wait_for(lambda e: e.type == "session-updated", 5)
    now = engine_ms(redis_server)
    assert keys.parse_sse_id(keepalive.id)[1] == opened_at
    position = keys.parse_sse_id(update.id)[1]
    assert opened_at < position and position[0] <= now
    assert update.sessions[0]["key"] == mine["key"]
    assert all_sessions(web)[jam["key"]]["title"] == jam["title"]


def test_a_silent_host_turns_offline_with_a_status_frame_without_id_and_comes_back(hosts, web_tier):
    laptop, other = hosts("laptop"), hosts("other")
    other.hb()
    laptop.beat(HB_S)
    other.beat(HB_S)
    session = laptop.new()
    web = web_tier()
    wait_until(lambda: all(h["online"] for h in web.get_json("/api/hosts")) and len(web.get_json("/api/hosts")) == 2,
               5, message="both hosts online")
    with stream(web) as client:
        opening(client)
        laptop.quiet()
        silent_at = time.monotonic()
        status = client.wait_for(lambda e: e.type == "host-status" and not {
            h["host"]: h["online"] for h in e.data["hosts"]}["laptop"], 5, statuses=True)
        took = time.monotonic() - silent_at
        assert status.id is None and "id:" not in status.raw
        assert took < OFFLINE_S + 3 * HB_S + 0.5, took
        stale = {s["key"]: s for s in all_sessions(web).values()}[session["key"]]
        assert stale["stale"] is True
        assert {h["host"]: h["online"] for h in web.get_json("/api/hosts")} == {"laptop": False, "other": True}
        laptop.beat(HB_S)
        client.wait_for(lambda e: e.type == "host-status" and all(h["online"] for h in e.data["hosts"]), 5,
                        statuses=True)
    wait_until(lambda: all_sessions(web)[session["key"]]["stale"] is False, 3, message="fresh again")


def test_the_engine_killed_without_persistence_means_a_new_epoch_init_and_convergence(redis_server, hosts,
                                                                                      web_tier):
    laptop, gone = hosts("laptop"), hosts("gone")
    session = laptop.new()
    gone.new()
    web = web_tier()
    with stream(web) as client:
        messages, _ = opening(client)
        old_id = messages[0].id
        redis_server.kill9()
        down = client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is False, 10, statuses=True)
        assert down.id is None and isinstance(down.data["since"], int)
        assert web.get_json("/healthz")["status"] == "degraded"
        assert session["key"] in all_sessions(web)  # the last state is still served
        redis_server.start()  # empty
        refresh = client.wait_for(lambda e: e.type == "refresh", 15)
        client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is True, 5, statuses=True)
    assert refresh.id.split(".")[0] != old_id.split(".")[0]
    laptop.resync()  # the agent's reconnect; "gone" never comes back
    wait_until(lambda: {k: simple(s) for k, s in all_sessions(web).items()} == laptop.truth(), 10,
               message="the web tier to converge")
    with stream(web, old_id) as client:
        first = client.next_event(5)
    assert first.type == "init" and {s["key"] for s in first.sessions} == set(laptop.truth())
    wait_until(lambda: web.get_json("/healthz")["status"] == "ok", 5, message="healthy")


def test_the_engine_killed_with_persistence_degrades_then_recovers_and_everything_converges(
        redis_factory, hosts, web_tier):
    engine = redis_factory(persistent=True)
    laptop, runner = hosts("laptop", engine.url), hosts("runner", engine.url)
    laptop.beat(HB_S)
    runner.beat(HB_S)
    busy, quiet = laptop.new(), runner.new()
    web = web_tier(engine=engine)
    with stream(web) as client:
        messages, _ = opening(client)
        state = {}
        fold(state, messages[0])
        time.sleep(1.1)  # appendfsync everysec
        engine.kill9()
        client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is False, 10, statuses=True)
        assert web.get_json("/healthz")["status"] == "degraded"
        # What the hosts' agents learn meanwhile reaches the engine only with their resync.
        laptop.sessions[busy["key"]] = {**busy, "messageCount": 9, "title": "while the engine was down"}
        engine.start()
        client.wait_for(lambda e: e.type == "feed-status" and e.data["ok"] is True, 20, statuses=True)
        laptop.resync()
        runner.resync()
        deadline = time.monotonic() + 10
        truth = {**laptop.truth(), **runner.truth()}
        while {k: simple(s) for k, s in state.items()} != truth and time.monotonic() < deadline:
            event = client.next_event(max(0.1, deadline - time.monotonic()))
            fold(state, event)
            if event.type in ("session-created", "session-updated", "session-deleted"):
                last_id = event.id
    assert {k: simple(s) for k, s in state.items()} == truth  # the connected client converged
    wait_until(lambda: web.get_json("/healthz")["status"] == "ok", 10, message="healthy again")
    health = web.get_json("/healthz")
    assert health["engine"]["epoch"] == last_id.split(".")[0] == messages[0].id.split(".")[0]
    assert health["feed"].get("snapshots") == 1  # the same epoch, every position still there: read on
    with stream(web, last_id) as resumed:
        assert resumed.next_event(5).type != "init"  # ids from before the crash still resume


def test_a_host_writing_garbage_harms_no_other_and_the_api_shows_remote_sessions(hosts, web_tier):
    good, evil = hosts("good"), hosts("evil")
    good.beat(HB_S)
    mine = good.new(title="mine")
    twin = evil.new(mine["id"], title="the twin on evil")  # the same id on another host: another row
    good.transcript(mine["key"], [{"index": 0, "role": "user", "kind": "prompt", "blocks": []}], total=1)
    web = web_tier()
    with stream(web) as client:
        opening(client)
        for fields in ({"t": "updated", "k": twin["key"], "d": "{no"}, {"t": "updated", "k": mine["key"],
                       "d": orjson.dumps({**mine, "title": "forged"})}, {"t": "huge", "x": "y" * (1 << 21)}):
            evil.raw({**fields, "b": "sim", "v": keys.WIRE_VERSION})
        good.update(mine["key"], title="still mine")
        update = client.wait_for(lambda e: e.type == "session-updated" and mine["key"] in {s["key"] for s in e.sessions},
                                 5)
    # (the same message may also carry the twin, marked stale: evil sends no heartbeats)
    assert [s["title"] for s in update.sessions if s["key"] == mine["key"]] == ["still mine"]
    health = web.get_json("/healthz")
    assert health["ignored"] == {"bad-json": 1, "other-host": 1, "huge": 1} and health["status"] == "ok"
    rows = all_sessions(web)
    assert {k: rows[k]["title"] for k in (mine["key"], twin["key"])} == {mine["key"]: "still mine",
                                                                        twin["key"]: "the twin on evil"}
    detail = web.get_json("/api/sessions/" + urllib.parse.quote(mine["key"]))
    assert detail["remote"] is True and detail["messages"][0]["index"] == 0 and "host good" in detail["note"]
    assert detail["session"]["title"] == "still mine"
    hosts_ = {h["host"]: h for h in web.get_json("/api/hosts")}
    assert hosts_["good"]["online"] is True and hosts_["evil"]["sessions"] == 1
