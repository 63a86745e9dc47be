"""The agent's publisher against a real SessionStore and a real redis-server (design 6.3, 6.9, 9.1).

Each test drives the store the way the pump does (``apply``, ``replace_all``) and reads back what
the engine holds: the host's hash, its stream, the transcript tail keys. Faults are real ones: no
server at first, a server killed with SIGKILL and restarted, a server stopped with SIGSTOP, an ACL
that refuses a command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import orjson
import pytest

from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.store import SessionStore
from helm_monitor.team import client, keys
from helm_monitor.team.publisher import TAIL_INTERVAL_S, Publisher
from tests.support.claude import now_iso
from tests.support.redis import RedisServer
from tests.support.server import wait_until

HOST = "laptop"
SNAP = keys.snapshot_key(HOST)
STREAM = keys.stream_key(HOST)
PASSWORD = "pw-of-laptop"


def session(n: int, **fields) -> dict:
    s = {"key": keys.session_key(HOST, "claude-code", f"s{n}"), "id": f"s{n}", "host": HOST,
         "source": "claude-code", "projectPath": "/home/alice/code/webapp", "projectDir": "-home-alice-code-webapp",
         "title": f"session {n}", "status": "idle", "messageCount": 1, "updatedAt": now_iso(), "stale": False}
    s.update(fields)
    return s


def by_key(*sessions: dict) -> dict:
    return {s["key"]: s for s in sessions}


def deleted_of(s: dict) -> dict:
    return {name: s[name] for name in ("key", "id", "host", "source", "projectPath", "projectDir")}


def hash_of(r) -> dict:
    return {k.decode(): orjson.loads(v) for k, v in r.hgetall(SNAP).items()}


def entries(r) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in fields.items()} | {"id": entry_id.decode()}
            for entry_id, fields in r.xrange(STREAM)]


def changes(r) -> list[dict]:
    return [e for e in entries(r) if e["t"] not in ("hb",)]


def acl_user(admin, *, without: tuple[str, ...] = ()) -> None:
    """The host's engine user as ``helm-monitor hosts add`` makes it (design 5.6)."""
    admin.execute_command("ACL", "SETUSER", keys.user_of(HOST), "reset", "on", f">{PASSWORD}", "resetkeys",
                          "~" + keys.host_keys(HOST), "resetchannels", "-@all",
                          *(f"+{c}" for c in keys.HOST_COMMANDS if c not in without))


@pytest.fixture
def store() -> SessionStore:
    return SessionStore(Broadcaster())


@pytest.fixture
def publishers():
    """Start publishers (heartbeat 5 s unless a test scales it); all stopped at teardown."""
    made: list[Publisher] = []

    def start(store, url: str, **kw) -> Publisher:
        kw.setdefault("heartbeat_s", 5.0)
        publisher = Publisher(store, url=url, host=HOST, **kw)
        store.add_listener(publisher.on_change)
        made.append(publisher)
        publisher.start()
        return publisher

    yield start
    for publisher in made:
        publisher.stop()
        assert not publisher._thread.is_alive()


def test_resync_then_one_entry_per_change(store, publishers, redis_server):
    s1, s2 = session(1), session(2)
    store.apply(by_key(s1, s2))
    pub = publishers(store, redis_server.url)
    r = redis_server.client()
    try:
        wait_until(lambda: hash_of(r) == by_key(s1, s2), 10, message="the first resync")
        (resync,) = entries(r)
        assert resync == {"t": "resync", "b": pub.boot, "v": keys.WIRE_VERSION, "id": resync["id"]}

        s1b, s3 = session(1, status="busy", messageCount=2), session(3)
        store.apply({s1["key"]: s1b, s2["key"]: None, s3["key"]: s3})
        wait_until(lambda: len(entries(r)) == 4, 10, message="three change entries")
        assert hash_of(r) == by_key(s1b, s3)
        got = {e["k"]: e for e in entries(r)[1:]}
        assert {k: (e["t"], orjson.loads(e["d"]), e["b"], e["v"]) for k, e in got.items()} == {
            s3["key"]: ("created", s3, pub.boot, keys.WIRE_VERSION),
            s1["key"]: ("updated", s1b, pub.boot, keys.WIRE_VERSION),
            s2["key"]: ("deleted", deleted_of(s2), pub.boot, keys.WIRE_VERSION),
        }
        # What the store did not really change is not published again.
        store.apply({s1["key"]: dict(s1b)})
        time.sleep(0.3)
        assert len(entries(r)) == 4
        name, health = pub.health()
        assert name == "team"
        assert health | {"lastPublishAt": None} == {
            "role": "agent", "host": HOST, "engine": "ok", "since": None, "url": redis_server.url, "published": 3,
            "lastPublishAt": None, "resyncs": 1, "errors": 0, "lastError": None}
        assert abs(health["lastPublishAt"] - time.time() * 1000) < 10_000
    finally:
        r.close()


def test_each_batch_is_one_transaction(store, publishers, redis_server, tmp_path):
    """MONITOR shows what the publisher sends: every write inside MULTI ... EXEC, a batch in one."""
    log_path = tmp_path / "monitor.log"
    with open(log_path, "wb") as out:
        monitor = subprocess.Popen(["redis-cli", "-p", str(redis_server.port), "monitor"], stdout=out,
                                   stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: b"OK" in log_path.read_bytes(), 10, message="MONITOR to start")
        pub = publishers(store, redis_server.url)
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        a, b, c = session(1), session(2), session(3)
        store.apply(by_key(a, b, c))  # one session-created event: one batch
        wait_until(lambda: pub.published == 3, 10, message="the batch")
        store.apply({a["key"]: None, b["key"]: None})
        wait_until(lambda: pub.published == 5, 10, message="the deletions")
        wait_until(lambda: log_path.read_bytes().count(b'"EXEC"') >= 3, 10, message="MONITOR to log them")
    finally:
        monitor.terminate()
        monitor.wait(5)
    commands = [m.group(1).lower() for m in re.finditer(r'\] "([A-Za-z]+)"', log_path.read_text())]
    assert set(commands) <= {c.split("|")[0] for c in keys.HOST_COMMANDS}
    writes = [c for c in commands if c not in ("hello", "client", "ping")]  # connecting
    assert writes == ["multi", "del", "xadd", "exec",  # the resync of an empty store
                      "multi", "hset", "xadd", "xadd", "xadd", "exec",
                      "multi", "hdel", "del", "xadd", "xadd", "exec"]


def test_refresh_is_a_resync_of_the_whole_state(store, publishers, redis_server):
    s1, s2, s3 = session(1), session(2), session(3)
    store.apply(by_key(s1, s2))
    pub = publishers(store, redis_server.url)
    r = redis_server.client()
    try:
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        store.replace_all(by_key(s2, s3))
        wait_until(lambda: pub.resyncs == 2, 10, message="the second resync")
        assert hash_of(r) == by_key(s2, s3)  # s1 is gone from the hash, not left behind
        assert [e["t"] for e in changes(r)] == ["resync", "resync"]
    finally:
        r.close()


def test_heartbeat_when_nothing_else_is_written(store, publishers, redis_server):
    pub = publishers(store, redis_server.url, heartbeat_s=0.2)
    r = redis_server.client()
    try:
        wait_until(lambda: len([e for e in entries(r) if e["t"] == "hb"]) >= 4, 10, message="4 heartbeats")
        got = entries(r)
        assert got[0]["t"] == "resync"
        beats = [e for e in got[1:]]
        assert all(e | {"id": ""} == {"t": "hb", "b": pub.boot, "v": keys.WIRE_VERSION, "id": ""} for e in beats)
        times = [int(e["id"].split("-")[0]) for e in got]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(150 <= gap <= 2000 for gap in gaps), gaps
    finally:
        r.close()


def test_engine_down_at_start_then_reachable(store, publishers, tmp_path):
    srv = RedisServer(tmp_path / "late")  # its port is chosen, nothing listens yet
    s1, s2, s3 = session(1), session(2), session(3)
    store.apply(by_key(s1, s2))
    pub = publishers(store, srv.url)
    try:
        wait_until(lambda: pub.errors >= 1, 10, message="the first failure")
        name, health = pub.health()
        assert health["engine"] == "down" and health["since"] is not None and "Connection" in health["lastError"]
        # Changes while the engine is away are dropped, not buffered: the resync covers them.
        store.apply({s2["key"]: None, s3["key"]: s3})
        store.apply({s1["key"]: session(1, status="busy")})
        srv.start()
        r = srv.client()
        try:
            wait_until(lambda: pub.engine == "ok" and pub.resyncs == 1, 15, message="the resync once reachable")
            assert hash_of(r) == by_key(*store.snapshot())
            assert set(hash_of(r)) == {s1["key"], s3["key"]}
            assert [e["t"] for e in changes(r)] == ["resync"]
            assert pub.health()[1]["since"] is None
        finally:
            r.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("persistent", [False, True], ids=["no-persistence", "aof"])
def test_engine_killed_and_restarted_gets_a_resync(store, publishers, redis_factory, persistent):
    srv = redis_factory(persistent=persistent)
    s1, s2, s3 = session(1), session(2), session(3)
    store.apply(by_key(s1, s2))
    pub = publishers(store, srv.url, heartbeat_s=0.2)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    time.sleep(1.2)  # appendfsync everysec: what was written is on disk
    srv.kill9()
    wait_until(lambda: pub.engine == "down", 10, message="the publisher to notice")
    store.apply({s2["key"]: None, s3["key"]: s3})
    srv.start()
    r = srv.client()
    try:
        wait_until(lambda: pub.resyncs == 2, 20, message="the resync after the restart")
        # With persistence the old hash came back holding s2: the resync's DEL removed it.
        assert hash_of(r) == by_key(s1, s3)
        if not persistent:
            assert changes(r)[0]["t"] == "resync"
        store.apply({s1["key"]: session(1, status="busy")})
        wait_until(lambda: hash_of(r)[s1["key"]]["status"] == "busy", 10, message="changes flow again")
        assert pub.errors >= 1 and pub.engine == "ok"
    finally:
        r.close()


def test_a_restricted_host_user_can_do_everything_the_publisher_does(store, publishers, redis_server):
    """The host's ACL user of design 5.6 (``keys.HOST_COMMANDS`` on ``hm:h:laptop:*``) is enough."""
    admin = redis_server.client()
    try:
        acl_user(admin)
        admin.execute_command("ACL", "LOG", "RESET")
        tails = {}
        s1, s2 = session(1), session(2)
        store.apply(by_key(s1))
        pub = publishers(store, redis_server.url_for(keys.user_of(HOST), PASSWORD), heartbeat_s=0.2,
                         read_tail=lambda key, n: tails.setdefault(key, {"messages": [{"index": 0}], "total": 1}))
        wait_until(lambda: admin.exists(keys.transcript_key(HOST, s1["key"])), 10, message="s1's tail")
        store.apply(by_key(s2))
        store.apply({s1["key"]: None})
        wait_until(lambda: not admin.exists(keys.transcript_key(HOST, s1["key"])), 10, message="s1's tail gone")
        store.replace_all(by_key(s2))
        wait_until(lambda: pub.resyncs == 2, 10, message="the refresh's resync")
        wait_until(lambda: [e["t"] for e in entries(admin)].count("hb") >= 2, 10, message="heartbeats")
        assert hash_of(admin) == by_key(s2)
        assert pub.errors == 0, pub.last_error
        denied = [e for e in admin.execute_command("ACL", "LOG")
                  if dict(zip(e[::2], e[1::2])).get(b"username") == keys.user_of(HOST).encode()]
        assert denied == []
        assert "pw-of-laptop" not in str(pub.health()) and "***" in pub.health()[1]["url"]
    finally:
        admin.close()


def test_a_refused_transaction_changes_nothing_and_a_resync_repairs_it(store, publishers, redis_server):
    admin = redis_server.client()
    try:
        acl_user(admin)
        s1, s2 = session(1), session(2)
        store.apply(by_key(s1))
        pub = publishers(store, redis_server.url_for(keys.user_of(HOST), PASSWORD))
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        acl_user(admin, without=("xadd",))  # the HSET would be allowed; the transaction is refused whole
        store.apply(by_key(s2))
        wait_until(lambda: pub.errors >= 1, 10, message="the refusal")
        assert "no permissions" in pub.last_error
        assert hash_of(admin) == by_key(s1)  # no half batch: s2's HSET did not run
        acl_user(admin)
        wait_until(lambda: hash_of(admin) == by_key(s1, s2), 15, message="the resync after the refusal")
        assert [e["t"] for e in changes(admin)] == ["resync", "resync"]
    finally:
        admin.close()


def test_the_store_never_waits_for_the_engine(store, publishers, redis_server):
    """A stopped engine (SIGSTOP: connections open, nothing answers) holds up no store change."""
    s1 = session(1)
    pub = publishers(store, redis_server.url)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        store.apply(by_key(s1))  # the publisher gets stuck in this batch's transaction
        for n in range(50):
            store.apply({s1["key"]: session(1, messageCount=n + 2)})
        elapsed = time.monotonic() - started
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    # Waiting for the engine would cost at least one command timeout (5 s); this takes milliseconds.
    assert elapsed < client.COMMAND_TIMEOUT_S / 2, elapsed
    r = redis_server.client()
    try:
        wait_until(lambda: hash_of(r).get(s1["key"], {}).get("messageCount") == 51, 15, message="the latest state")
    finally:
        r.close()


def test_transcript_tail_per_session_coalesced_and_deleted(store, publishers, redis_server):
    reads: list[str] = []
    messages = {}

    def read_tail(key, n):
        reads.append(key)
        if key not in messages:
            raise FileNotFoundError(key)
        all_ = messages[key]
        return {"messages": all_[-n:], "total": len(all_)}

    s1, s2 = session(1), session(2)
    messages[s1["key"]] = [{"index": i, "blocks": [{"type": "text", "text": f"m{i}"}]} for i in range(80)]
    pub = publishers(store, redis_server.url, read_tail=read_tail)
    r = redis_server.client()
    try:
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        store.apply(by_key(s1, s2))  # s2's read fails (its data went): skipped, nothing written
        tail_key = keys.transcript_key(HOST, s1["key"])
        wait_until(lambda: r.exists(tail_key), 10, message="s1's tail")
        tail = orjson.loads(r.get(tail_key))
        assert tail == {"messages": messages[s1["key"]][-keys.TRANSCRIPT_MESSAGES:], "total": 80,
                        "updatedAt": s1["updatedAt"]}
        assert keys.TRANSCRIPT_TTL_S - 60 < r.ttl(tail_key) <= keys.TRANSCRIPT_TTL_S
        wait_until(lambda: s2["key"] in reads, 5, message="s2's read")
        assert not r.exists(keys.transcript_key(HOST, s2["key"])) and pub.errors == 0

        # 25 updates within about half a second: its messages are read about once a second.
        before = reads.count(s1["key"])
        started = time.monotonic()
        for n in range(25):
            messages[s1["key"]].append({"index": 80 + n})
            store.apply({s1["key"]: session(1, messageCount=n + 2, updatedAt=f"2099-01-01T00:00:{n:02d}.000Z")})
            time.sleep(0.02)
        wait_until(lambda: orjson.loads(r.get(tail_key))["total"] == 105, 10, message="the latest messages")
        elapsed = time.monotonic() - started
        assert orjson.loads(r.get(tail_key))["updatedAt"] == "2099-01-01T00:00:24.000Z"
        assert reads.count(s1["key"]) - before <= 2 + elapsed / TAIL_INTERVAL_S

        store.apply({s1["key"]: None})
        wait_until(lambda: not r.exists(tail_key), 10, message="the tail deleted with its session")
    finally:
        r.close()


def test_a_session_of_another_host_is_never_published(store, publishers, redis_server):
    pub = publishers(store, redis_server.url)
    other = session(1) | {"host": "vm1", "key": keys.session_key("vm1", "claude-code", "s1")}
    mine = session(2)
    r = redis_server.client()
    try:
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        store.apply(by_key(other, mine))
        wait_until(lambda: pub.published == 1, 10, message="the batch")
        assert hash_of(r) == by_key(mine) and pub.foreign == 1
        assert not r.keys("hm:h:vm1:*")
    finally:
        r.close()


def test_the_first_resync_waits_for_the_first_scan(store, publishers, redis_server):
    """While the history is read, its sessions go to the engine as one resync, not as entries."""
    import threading
    ready = threading.Event()
    pub = publishers(store, redis_server.url, wait_ready=ready.wait)
    r = redis_server.client()
    try:
        wait_until(lambda: pub.engine == "ok", 10, message="the engine to answer")
        for n in range(50):  # the scan's slices
            store.apply(by_key(session(n)))
        time.sleep(0.3)
        assert r.xlen(STREAM) == 0 and not r.exists(SNAP)
        ready.set()
        wait_until(lambda: pub.resyncs == 1, 10, message="the resync")
        assert [e["t"] for e in entries(r)] == ["resync"]
        assert len(hash_of(r)) == 50
    finally:
        r.close()
