"""Status messages (SPEC 4 v2): ``host-status`` and ``feed-status`` without an ``id:`` line,
after every init, replay and refresh, on the SSE stream and the WebSocket of a real server,
and in the feed itself where the refresh comes from a client's overflowed mailbox."""

from __future__ import annotations

import pytest

from helm_monitor.config import Config
from helm_monitor.live.broadcaster import REFRESH
from tests.support.server import wait_until
from tests.support.sse import SSEClient
from tests.support.ws import WSClient

pytestmark = pytest.mark.timeout(60)


def statuses_after(client, first) -> list:
    """``first``, then the next two messages, statuses included."""
    return [first, client.next_event(3, statuses=True), client.next_event(3, statuses=True)]


def assert_statuses(host_status, feed_status, server, sessions: int) -> None:
    for status in (host_status, feed_status):
        assert status.id is None and "\nid:" not in "\n" + status.raw, status.raw
        assert isinstance(status.data["timestamp"], int)
    assert host_status.type == "host-status" and feed_status.type == "feed-status"
    [host] = host_status.data["hosts"]
    [listed] = server.get_json("/api/hosts")
    assert {k: host[k] for k in ("host", "online", "sessions", "sources")} == \
        {k: listed[k] for k in ("host", "online", "sessions", "sources")}
    assert host["host"] == server.get_json("/healthz")["host"] and host["online"] is True
    assert host["sessions"] == sessions and isinstance(host["lastSeen"], int)
    assert feed_status.data == {"type": "feed-status", "ok": True, "since": None,
                                "timestamp": feed_status.data["timestamp"]}


@pytest.mark.parametrize("path", ["/api/sessions/stream", "/api/claude-sessions/stream"])
def test_init_is_followed_by_host_and_feed_status_without_ids(claude, server_factory, path):
    claude.session("/w/status").prompt("x")
    server = server_factory(claude.root)
    with SSEClient(server.url, path=path) as client:
        init = client.next_event(5, statuses=True)
        assert init.type == "init" and init.id
        init, host_status, feed_status = statuses_after(client, init)
        assert_statuses(host_status, feed_status, server, sessions=1)


def test_a_replay_is_followed_by_statuses_and_they_leave_last_event_id_alone(claude, server_factory):
    """As an EventSource keeps it: the last ``id:`` seen, whatever came after it. Resuming with
    it replays what was missed: the statuses after the init moved nothing."""
    s = claude.session("/w/resume")
    s.prompt("one")
    server = server_factory(claude.root)
    last_id, seen = None, []
    with SSEClient(server.url) as client:
        while len(seen) < 3:  # init and its statuses
            event = client.next_event(5, statuses=True)
            seen.append(event.type)
            last_id = event.id if event.id is not None else last_id
    assert seen == ["init", "host-status", "feed-status"]
    s.reply("two")
    wait_until(lambda: server.get_json(f"/api/claude-sessions/{s.id}")["session"]["messageCount"] == 2, 3,
               message="the second write to be seen")
    with SSEClient(server.url, headers={"Last-Event-ID": last_id}) as again:
        replayed = again.next_event(3, statuses=True)
        assert replayed.type == "session-updated" and replayed.session(s.id)["messageCount"] == 2
        _, host_status, feed_status = statuses_after(again, replayed)
        assert_statuses(host_status, feed_status, server, sessions=1)
    # Nothing missed: no replayed event, the statuses all the same.
    with SSEClient(server.url, headers={"Last-Event-ID": replayed.id}) as up_to_date:
        assert [up_to_date.next_event(3, statuses=True).type for _ in range(2)] == ["host-status", "feed-status"]


def test_a_refresh_is_followed_by_statuses(claude, server_factory):
    claude.session("/w/refresh").prompt("x")
    server = server_factory(claude.root)
    with SSEClient(server.url, path="/api/sessions/stream") as client:
        client.wait_for(lambda e: e.type == "feed-status", 5, statuses=True)
        assert server.post_json("/api/sessions/refresh") == {"sessions": 1}
        refresh = client.next_event(3, statuses=True)
        assert refresh.type == "refresh" and refresh.id
        _, host_status, feed_status = statuses_after(client, refresh)
        assert_statuses(host_status, feed_status, server, sessions=1)
        # The readers of tests/support skip them unless asked.
        server.post_json("/api/sessions/refresh")
        assert client.next_event(3).type == "refresh"
        claude.session("/w/refresh-2").prompt("y")
        assert client.next_event(3).type == "session-created"


def test_the_websocket_sends_them_as_messages_without_an_id(claude, server_factory):
    claude.session("/w/ws").prompt("x")
    server = server_factory(claude.root)
    with WSClient(server.url) as client:
        init = client.next_message(5, statuses=True)
        host_status = client.next_message(3, statuses=True)
        feed_status = client.next_message(3, statuses=True)
        assert init.type == "init" and init.id
        assert host_status.type == "host-status" and "id" not in host_status.data
        assert [h["host"] for h in host_status.data["hosts"]] == [h["host"] for h in server.get_json("/api/hosts")]
        assert feed_status.type == "feed-status" and "id" not in feed_status.data and feed_status.data["ok"] is True
        server.post_json("/api/sessions/refresh")
        assert [client.next_message(3, statuses=True).type for _ in range(3)] == [
            "refresh", "host-status", "feed-status"]


def test_the_refresh_after_an_overflow_is_followed_by_statuses_and_published_ones_pass(tmp_path):
    """In the feed itself (the service not started: its store and broadcaster are enough)."""
    from helm_monitor.web.app import create_app
    from helm_monitor.web.stream import Feed

    (tmp_path / "claude" / "projects").mkdir(parents=True)
    app = create_app(Config(claude_dir=tmp_path / "claude", cache_dir=None, client_queue=2))
    svc = app.extensions["helm"]
    with app.app_context():
        feed = Feed(None, None, on_disconnect=lambda reason: None)
    try:
        assert [kind for kind, _ in feed.opening()] == ["init", "host-status", "feed-status"]
        for _ in range(3):
            svc.broadcaster.publish("session-updated", [])
        assert feed.sub._items[0] is REFRESH  # overflowed: the backlog is one refresh
        live = feed.live()
        assert [next(live)[0] for _ in range(3)] == ["refresh", "host-status", "feed-status"]
        svc.broadcaster.publish_status("feed-status", {"ok": False, "since": 1234})
        kind, frame = next(live)
        assert kind == "feed-status" and b'"ok":false,"since":1234' in frame and not frame.startswith(b"id:")
        svc.broadcaster.publish("refresh", [])  # a published refresh: the same
        assert [next(live)[0] for _ in range(3)] == ["refresh", "host-status", "feed-status"]
        sent = app.extensions["helm_metrics"].events_sent
        assert sent["host-status"] == 3 and sent["feed-status"] == 4
    finally:
        feed.close()
