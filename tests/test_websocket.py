"""``GET /api/sessions/ws`` (SPEC section 12) against a real gunicorn gevent worker, read
by a real WebSocket client (websocket-client) or, where the exact bytes matter, a raw socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
import urllib.error
import urllib.request

import pytest

from helm_monitor.web.security import TOKEN_COOKIE, cookie_value
from tests.support.server import wait_until
from tests.support.sse import SSEClient
from tests.support.ws import TCP_ESTABLISHED, Closed, WSClient, handshake, parse_frames, raw_session, tcp_state

pytestmark = pytest.mark.timeout(90)

TOKEN = "ws-test-token-4d1f"


@pytest.fixture(autouse=True)
def _close_ws_clients():
    yield
    while WSClient.opened:
        WSClient.opened.pop().close()


def connect(server, query: str = "", **kw) -> tuple[WSClient, object]:
    client = WSClient(server.url, query, **kw)
    assert client.status == 101
    first = client.next_message(5)
    return client, first


def clients(server) -> int:
    return server.get_json("/healthz")["clients"]


def metric(server, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key in (name + labels, name + "_total" + labels):
            return float(value)
    return 0.0


def assert_clean_log(server):
    log = server.log()
    assert "Traceback" not in log and "[ERROR]" not in log, log


def test_init_first_with_every_session(claude, server_factory):
    made = [claude.session(f"/home/alice/p{i}") for i in range(3)]
    for s in made:
        s.turn("a prompt", "a reply")
    server = server_factory(claude.root)
    client, init = connect(server)
    assert init.type == "init"
    assert set(init.data) >= {"id", "type", "sessions", "timestamp"}
    assert list(init.data)[0] == "id"
    assert isinstance(init.data["timestamp"], int)
    epoch, seq = init.id.rsplit("-", 1)
    assert epoch and seq.isdigit()
    assert {x["id"] for x in init.sessions} == {s.id for s in made}
    assert all(x["messageCount"] == 2 and x["key"] for x in init.sessions)
    assert metric(server, "helm_events_sent", '{type="init"}') == 1


def test_created_and_updated_arrive_within_a_second_with_the_sse_ids(claude, server_factory):
    server = server_factory(claude.root)
    client, init = connect(server)
    sse = SSEClient(server.url, path="/api/sessions/stream")
    sse_init = sse.next_event(5)
    assert init.sessions == [] and init.id == sse_init.id

    s = claude.session("/home/alice/code/api")
    t0 = time.monotonic()
    s.prompt("build the parser")
    created = client.wait_for(lambda m: m.type == "session-created", 1.0)
    [session] = created.sessions
    assert session["id"] == s.id and session["projectPath"] == "/home/alice/code/api"
    # The first change goes out at once: the file can be seen created before its first write
    # lands (then that write follows as an update, at once too).
    early = session["messageCount"] == 0
    if early:
        session = client.wait_for(lambda m: m.type == "session-updated", 1.0).session(s.id)
    assert time.monotonic() - t0 < 1.0
    assert session["messageCount"] == 1 and session["title"] == "build the parser"

    t0 = time.monotonic()
    s.reply("parser built")
    updated = client.wait_for(lambda m: m.type == "session-updated" and m.session(s.id)["messageCount"] == 2, 1.0)
    assert time.monotonic() - t0 < 1.0

    # The same events as the SSE stream, under the same ids.
    assert sse.wait_for(lambda e: e.type == "session-created", 2).id == created.id
    if early:
        sse.wait_for(lambda e: e.type == "session-updated", 2)
    assert sse.wait_for(lambda e: e.type == "session-updated", 2).id == updated.id
    updates = 2 if early else 1
    assert metric(server, "helm_events_sent", '{type="session-updated"}') == 2 * updates  # each, to both clients


def test_resume_with_last_event_id_replays_what_was_missed(claude, server_factory):
    s = claude.session("/w/replay")
    s.prompt("one")
    server = server_factory(claude.root)
    client, init = connect(server)
    s.reply("two")
    first = client.wait_for(lambda m: m.type == "session-updated", 2)
    client.close()
    wait_until(lambda: clients(server) == 0, 2, message="the first client to go")
    s.reply("three")
    wait_until(lambda: server.get_json(f"/api/sessions/{first.sessions[0]['key']}")["session"]["messageCount"] == 3,
               3, message="the third write to be seen")

    again, replayed = connect(server, f"lastEventId={first.id}")
    assert replayed.type == "session-updated" and replayed.session(s.id)["messageCount"] == 3
    assert int(replayed.id.rsplit("-", 1)[1]) > int(first.id.rsplit("-", 1)[1])
    again.close()

    for unknown in ("not-ours-7", f"{init.id.rsplit('-', 1)[0]}-999999"):
        fresh, first_message = connect(server, f"lastEventId={unknown}")
        assert first_message.type == "init" and first_message.session(s.id)["messageCount"] == 3
        fresh.close()


def test_resume_when_nothing_was_missed_sends_only_live_events(claude, server_factory):
    s = claude.session("/w/uptodate")
    s.prompt("one")
    server = server_factory(claude.root)
    client, init = connect(server)
    client.close()
    resumed = WSClient(server.url, f"lastEventId={init.id}")
    with pytest.raises(TimeoutError):
        resumed.next_message(0.5)  # no init: the client is up to date
    s.reply("two")
    live = resumed.wait_for(lambda m: True, 2)
    assert live.type == "session-updated" and live.session(s.id)["messageCount"] == 2


def test_a_foreign_host_or_origin_is_refused_before_the_upgrade(claude, server_factory):
    server = server_factory(claude.root)
    for headers in ({"Host": "evil.example"}, {"Host": f"attacker.example:{server.port}"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://localhost.evil.example:{server.port}"}):
        answer = handshake(server.url, headers=headers)
        assert answer.status == 403, headers
        assert "error" in answer.json() and "upgrade" not in answer.headers
    own = handshake(server.url, headers={"Origin": server.url})
    assert own.status == 101 and own.headers["upgrade"].lower() == "websocket"
    with pytest.raises(Exception) as refused:
        WSClient(server.url, origin="http://evil.example")
    assert getattr(refused.value, "status_code", None) == 403
    wait_until(lambda: clients(server) == 0, 2, message="the refused and closed clients to be gone")


def test_token_is_required_by_bearer_cookie_or_query(claude, server_factory):
    claude.session("/w/locked").prompt("secret work")
    server = server_factory(claude.root, args=["--token", TOKEN])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{TOKEN_COOKIE}=stale"}):
        answer = handshake(server.url, headers=headers)
        assert answer.status == 401, headers
        assert "error" in answer.json() and TOKEN.encode() not in answer.body
    assert handshake(server.url, "token=wrong").status == 401

    ways = [dict(header={"Authorization": f"Bearer {TOKEN}"}),
            dict(cookie=f"{TOKEN_COOKIE}={cookie_value(TOKEN)}"),
            dict(query=f"token={TOKEN}")]
    for way in ways:
        query = way.pop("query", "")
        client, init = connect(server, query, **way)
        assert init.type == "init" and len(init.sessions) == 1, way
        client.close()
    # ?token= on a handshake is used as it is: a WebSocket cannot follow a redirect.
    assert handshake(server.url, f"token={TOKEN}").status == 101


def test_the_client_cap_is_shared_with_sse_and_refused_before_the_upgrade(claude, server_factory):
    server = server_factory(claude.root, args=["--max-clients", "2"])
    sse = SSEClient(server.url, path="/api/sessions/stream")
    assert sse.status == 200 and sse.next_event(5).type == "init"
    ws, _ = connect(server)
    answer = handshake(server.url)
    assert answer.status == 503 and int(answer.headers["retry-after"]) > 0 and "error" in answer.json()
    assert SSEClient(server.url).status == 503
    ws.close()
    wait_until(lambda: clients(server) == 1, 3, message="the WebSocket client to leave")
    again, first = connect(server)
    assert first.type == "init"


def test_a_client_that_leaves_ends_its_subscription_at_once(claude, server_factory):
    server = server_factory(claude.root)  # keepalive 30 s: only the reader can notice
    client, _ = connect(server)
    client.close()  # closing handshake
    wait_until(lambda: clients(server) == 0, 1, message="a closed client to be unsubscribed")

    client, _ = connect(server)
    client.ws.sock.close()  # just gone: no closing frame
    wait_until(lambda: clients(server) == 0, 1, message="a vanished client to be unsubscribed")

    client, _ = connect(server)
    client.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.ws.sock.close()  # reset
    wait_until(lambda: clients(server) == 0, 1, message="a reset client to be unsubscribed")
    assert_clean_log(server)


def test_nothing_but_frames_follows_the_upgrade(claude, server_factory):
    claude.session("/w/raw").prompt("x")
    server = server_factory(claude.root)
    head, rest = raw_session(server.url)
    assert head.startswith(b"HTTP/1.1 101 ")
    frames, junk = parse_frames(rest)
    assert junk == b"", junk[:200]  # gunicorn wrote no HTTP answer after the WebSocket
    assert frames[0][0] == 0x1 and json.loads(frames[0][1])["type"] == "init"
    assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1000
    assert_clean_log(server)


def test_a_slow_client_is_evicted_while_another_keeps_receiving(claude, server_factory):
    sessions = [claude.session(f"/w/p{i}") for i in range(40)]
    for s in sessions:
        s.prompt("x" * 2000)
    server = server_factory(claude.root, env={"HELM_CLIENT_QUEUE": "4"})
    slow, _ = connect(server, rcvbuf=4096)
    healthy, _ = connect(server)

    # Each refresh carries every session (~100 KB): the slow client's socket buffers
    # fill, its mailbox overflows, and then overflows again.
    refreshes = 0
    deadline = time.monotonic() + 30
    while metric(server, "helm_stream_slow_disconnects") < 1:
        assert time.monotonic() < deadline, "the slow client was never evicted"
        server.post_json("/api/sessions/refresh")
        refreshes += 1
        message = healthy.wait_for(lambda m: m.type == "refresh", 3)  # the healthy one keeps up
        assert len(message.sessions) == 40
    assert metric(server, "helm_stream_overflows") >= 1
    # Evicted at once: the server has let go of its end, though the client still reads nothing.
    slow_port = slow.ws.sock.getsockname()[1]
    wait_until(lambda: tcp_state(server.port, slow_port) != TCP_ESTABLISHED, 2,
               message="the server to shut the slow client's connection")
    sessions[0].reply("still live")
    message = healthy.wait_for(lambda m: m.type == "session-updated", 2)
    assert message.sessions[0]["id"] == sessions[0].id
    # The slow one: what was already on its way, whole, then the end of the connection.
    received = []
    with pytest.raises(Closed) as ended:
        while True:
            received.append(slow.next_message(5).type)
    assert ended.value.code is None  # cut off, not closed politely: it was not reading
    assert received.count("refresh") < refreshes
    assert clients(server) == 1
    assert_clean_log(server)


def test_large_messages_arrive_whole_to_a_client_that_reads_slowly(claude, server_factory):
    """Messages queued behind a client that does not read fill every socket buffer on the
    way: each then goes out in many writes, and none may be cut short."""
    for i in range(200):
        claude.session(f"/w/big{i}").prompt(f"prompt {i} " + "y" * 300)
    server = server_factory(claude.root)
    client = WSClient(server.url, rcvbuf=4096)
    refreshes = 30  # ~200 KB each: more than the buffers hold (4 MB at most), fewer than the mailbox
    for _ in range(refreshes):
        server.post_json("/api/sessions/refresh")
    got = []
    while len(got) < 1 + refreshes:
        message = client.next_message(10)
        assert len(message.sessions) == 200, message.type
        got.append(message.type)
    assert got == ["init"] + ["refresh"] * refreshes
    assert metric(server, "helm_stream_overflows") == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_the_worker_stopping_sends_a_close_frame_within_two_seconds(claude, server_factory, sig):
    claude.session("/w/stop").prompt("x")
    server = server_factory(claude.root)
    client, _ = connect(server)
    worker_pid = server.get_json("/healthz")["pid"]
    t0 = time.monotonic()
    server.signal(sig)
    with pytest.raises(Closed) as closed:
        while True:
            client.next_message(3)
    assert closed.value.code == 1001  # going away
    assert closed.value.at - t0 < 2.0
    # The WebSocket does not hold the worker until the graceful timeout (5 s): gunicorn's
    # own stopping (its loop looks once a second) is all that is left.
    if sig == signal.SIGTERM:
        server.proc.wait(4.5)
        assert server.proc.returncode == 0
    else:
        wait_until(lambda: not os.path.exists(f"/proc/{worker_pid}"), 4.5 - (time.monotonic() - t0),
                   message="the old worker to exit")
        again = wait_until(lambda: _reconnect(server), 5, message="a WebSocket from the new worker")
        assert server.get_json("/healthz")["pid"] != worker_pid
        again.close()
    assert "Worker graceful timeout" not in server.log()
    assert_clean_log(server)


def _reconnect(server):
    try:
        client, first = connect(server)
    except Exception:
        return None
    return client if first.type == "init" else None


def test_keepalive_messages_and_pings_at_the_configured_interval(claude, server_factory):
    server = server_factory(claude.root, keepalive_s=1)
    client, init = connect(server)
    epoch = init.id.rsplit("-", 1)[0]
    keepalives = []
    while len(keepalives) < 3:
        message = client.next_message(3)
        assert message.type == "keepalive" and message.sessions == []
        assert message.id.startswith(epoch + "-")
        keepalives.append(message.received_at)
    gaps = [b - a for a, b in zip(keepalives, keepalives[1:])]
    assert all(0.7 < g < 1.6 for g in gaps), gaps
    # A ping frame with each keepalive (websocket-client answers it), so the stream stays open.
    assert len(client.pings) >= 2
    ping_gaps = [b - a for a, b in zip(client.pings, client.pings[1:])]
    assert all(0.7 < g < 1.6 for g in ping_gaps), ping_gaps
    assert clients(server) == 1


def test_a_request_that_is_no_handshake_gets_a_json_error(claude, server_factory):
    server = server_factory(claude.root)
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(server.url + "/api/sessions/ws", timeout=5)
    assert plain.value.code == 426 and "error" in json.loads(plain.value.read())
    old = handshake(server.url, headers={"Sec-WebSocket-Version": "8"})
    assert old.status == 426 and old.headers["sec-websocket-version"] == "13"
    assert handshake(server.url, headers={"Sec-WebSocket-Key": "short"}).status == 400
    assert clients(server) == 0
