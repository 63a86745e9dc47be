"""The web tier's feed (team/feed.py) in-process: a real redis-server, simulated hosts writing the
wire format of team/keys.py (tests/support/team.py) and a TeamWebService whose broadcasters are
read through subscriptions, as the streams read them (design/TEAM_SCALE.md 6.4-6.10, 7.3)."""

from __future__ import annotations

import logging
import time

import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from helm_monitor.config import Config
from helm_monitor.live.broadcaster import CLOSED, REFRESH
from helm_monitor.team import admin, client, feed as feed_module, keys
from helm_monitor.team.web import TeamWebService
from tests.support.server import wait_until
from tests.support.team import make_session, simple

HB_S, OFFLINE_S = 0.2, 0.6


@pytest.fixture
def web(redis_server):
    """``web(**config)``: a started TeamWebService (real threads: no gevent here), stopped at teardown."""
    made: list[TeamWebService] = []

    def start(url: str | None = None, ready: bool = True, **options) -> TeamWebService:
        cfg = Config(role="web", redis_url=url or redis_server.url, host_name="web",
                     team_heartbeat_s=HB_S, team_offline_s=OFFLINE_S)
        for name, value in options.items():
            setattr(cfg, name, value)
        svc = TeamWebService(cfg.validate())
        made.append(svc)
        svc.start()
        if ready:
            assert svc.wait_ready(10), svc.health()
        return svc

    yield start
    for svc in made:
        svc.stop()
        assert not svc.feed.alive


class Reader:
    """One stream client of a broadcaster, without HTTP: (id, type, data) of each message."""

    def __init__(self, channel, last_event_id: str | None = None):
        self.channel = channel
        self.sub, self.replay, mark = channel.subscribe(last_event_id=last_event_id)
        self.opening_id = channel.event_id(mark)

    def until(self, predicate, timeout: float = 5.0) -> tuple[str | None, str, dict]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            item = self.sub.get(max(0.01, deadline - time.monotonic()))
            if item is None:
                continue
            assert item not in (REFRESH, CLOSED), item
            message = decode(item.frame)
            seen.append(message[1])
            if predicate(*message):
                return message
        raise AssertionError(f"no matching message within {timeout}s; saw {seen}")

    def close(self) -> None:
        self.sub.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def replay_of(channel, last_event_id: str):
    """What a client resuming from ``last_event_id`` is sent first: None means init."""
    with Reader(channel, last_event_id) as reader:
        return reader.replay


def decode(frame: bytes) -> tuple[str | None, str, dict]:
    event_id, kind, data = None, None, None
    for line in frame.decode().split("\n"):
        name, _, value = line.partition(": ")
        if name == "id":
            event_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data = orjson.loads(value)
    return event_id, kind, data


def engine_ms(redis_server) -> int:
    with redis_server.client() as r:
        sec, usec = r.time()
    return sec * 1000 + usec // 1000


def sessions_of(svc, host: str) -> dict[str, dict]:
    return {s["key"]: s for s in svc.store.snapshot() if s["host"] == host}


# -- the snapshot ----------------------------------------------------------------------

def test_the_first_snapshot_holds_every_host_and_one_id_on_two_hosts_is_two_rows(redis_server, hosts, web):
    laptop, runner = hosts("laptop"), hosts("ci-runner-1")
    shared = laptop.new(title="on the laptop")
    runner.new(shared["id"], title="on the runner")
    other = runner.new(source="codex")
    svc = web()
    rows = {s["key"]: s for s in svc.store.snapshot()}
    assert set(rows) == {shared["key"], f"ci-runner-1:claude-code:{shared['id']}", other["key"]}
    assert {rows[k]["title"] for k in rows if rows[k]["id"] == shared["id"]} == {"on the laptop", "on the runner"}
    assert [s["source"] for s in svc.store.snapshot("claude-code")] == ["claude-code", "claude-code"]
    # The engine's epoch names every id; the position is the newest entry of any host.
    with redis_server.client() as r:
        epoch = r.hget(keys.META, keys.EPOCH_FIELD).decode()
        newest = max(keys.parse_id(r.xrevrange(keys.stream_key(h), count=1)[0][0]) for h in ("laptop", "ci-runner-1"))
    assert svc.broadcaster.event_id() == keys.sse_id(epoch, newest)
    assert svc.store.channel("claude-code").epoch == epoch + "c"
    listed = {h["host"]: h for h in svc.hosts()}
    assert listed["laptop"]["sessions"] == 1 and listed["ci-runner-1"]["sessions"] == 2
    assert listed["ci-runner-1"]["sources"] == ["claude-code", "codex"]
    with redis_server.client() as r:
        assert listed["laptop"]["lastSeen"] == keys.parse_id(r.xrevrange(keys.stream_key("laptop"), count=1)[0][0])[0]
    # A second worker agrees on the epoch (HSETNX): its ids are the same.
    assert web().broadcaster.epoch == epoch


def test_the_feed_client_waits_longer_than_it_blocks_and_retries_nothing(redis_server, web):
    svc = web()
    options = svc.feed.reader.connection_pool.connection_kwargs
    assert options["socket_timeout"] > svc.feed.block_ms / 1000
    assert options["retry"].get_retries() == 0
    assert svc.feed.r.connection_pool.connection_kwargs["retry"].get_retries() == 0
    # The production block (BLOCK_MS) against the production feed client: an idle read ends with
    # nothing, not an error...
    reader = client.connect_feed(redis_server.url, block_ms=1500)
    try:
        t0 = time.monotonic()
        assert reader.xread({"hm:h:idle:ev": "0-0"}, block=1500) == []
        assert 1.4 < time.monotonic() - t0 < 5
    finally:
        reader.close()
    # ...while a socket timeout under the block (redis-py 8's default is 5 s) cuts the read.
    trap = redis.Redis.from_url(redis_server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.TimeoutError):
            trap.xread({"hm:h:idle:ev": "0-0"}, block=1500)
    finally:
        trap.close()


# -- following -----------------------------------------------------------------------

def test_created_updated_and_deleted_reach_the_streams_with_the_entry_ids(redis_server, hosts, web):
    laptop = hosts("laptop")
    first = laptop.new()
    svc = web()
    reader = Reader(svc.broadcaster)
    try:
        created = laptop.new(title="second")
        event_id, kind, data = reader.until(lambda i, k, d: k.startswith("session-"))
        assert kind == "session-created" and data["sessions"][0]["key"] == created["key"]
        with redis_server.client() as r:
            last = r.xrevrange(keys.stream_key("laptop"), count=1)[0][0].decode()
        assert event_id == f"{svc.feed.epoch}.{last}"
        updated = laptop.update(first["key"], title="renamed", messageCount=5)
        _, kind, data = reader.until(lambda i, k, d: k == "session-updated")
        assert simple(data["sessions"][0]) == simple(updated) and data["sessions"][0]["stale"] is False
        laptop.delete(created["key"])
        _, kind, data = reader.until(lambda i, k, d: k == "session-deleted")
        assert data["sessions"] == [{"key": created["key"], "id": created["id"], "host": "laptop",
                                     "source": "claude-code", "projectPath": created["projectPath"],
                                     "projectDir": created["projectDir"]}]
        assert {k: simple(s) for k, s in sessions_of(svc, "laptop").items()} == laptop.truth()
    finally:
        reader.close()


def test_a_resync_makes_the_hosts_state_what_its_hash_says(hosts, web):
    laptop, other = hosts("laptop"), hosts("other")
    kept, dropped = laptop.new(), laptop.new()
    untouched = other.new()
    svc = web()
    # What the host's agent knows now, while some of its changes never reached the engine.
    laptop.sessions.pop(dropped["key"])
    laptop.sessions[kept["key"]] = {**kept, "title": "changed while away"}
    fresh = make_session("laptop", title="new while away")
    laptop.sessions[fresh["key"]] = fresh
    laptop.resync()
    wait_until(lambda: {k: simple(s) for k, s in sessions_of(svc, "laptop").items()} == laptop.truth(), 5,
               message="the resync applied")
    assert simple(svc.store.get(untouched["key"])) == simple(untouched)
    assert svc.feed.counters["resyncs"] == 1


def test_a_new_host_is_found_while_running_and_a_removed_one_leaves(redis_server, hosts, web, monkeypatch):
    monkeypatch.setattr(feed_module, "DISCOVER_EVERY_S", 0.3)
    laptop = hosts("laptop")
    laptop.new()
    svc = web()
    later = hosts("later")
    later.beat(HB_S)
    session = later.new()
    wait_until(lambda: svc.store.get(session["key"]), 5, message="the new host's session")
    assert "later" in [h["host"] for h in svc.hosts()]
    later.quiet()
    with redis_server.client() as r:
        r.delete(keys.stream_key("later"), keys.snapshot_key("later"))  # what `hosts remove later` does
    wait_until(lambda: svc.store.get(session["key"]) is None, 5, message="the removed host's session gone")
    assert [h["host"] for h in svc.hosts()] == ["laptop"]


# -- hosts that misbehave ----------------------------------------------------------------

def test_garbage_and_huge_entries_of_one_host_harm_no_other(hosts, web, caplog):
    good, evil = hosts("good"), hosts("evil")
    mine = good.new()
    evils_own = evil.new()
    svc = web()
    caplog.set_level(logging.WARNING, logger="helm_monitor.team.hosts")
    forged = make_session("good", mine["id"], title="forged by evil")
    wrong_key = make_session("evil", title="key mismatch")
    wrong_key["key"] = "evil:claude-code:somebody-else"
    base = {"b": "x", "v": keys.WIRE_VERSION}
    evil.raw({**base, "t": "updated", "k": forged["key"], "d": orjson.dumps(forged)})  # another host's session
    evil.raw({**base, "t": "updated", "k": evils_own["key"], "d": b"{not json"})
    evil.raw({**base, "t": "updated", "k": evils_own["key"], "d": b"[1, 2]"})
    evil.raw({**base, "t": "updated", "k": evils_own["key"], "d": b"{broken"})  # the same reason again
    evil.raw({**base, "t": "updated", "k": wrong_key["key"], "d": orjson.dumps(wrong_key)})
    evil.raw({**base, "t": "updated", "k": evils_own["key"], "d": orjson.dumps({**evils_own, "status": 7})})
    evil.raw({**base, "t": "explode"})
    evil.raw({**base, "t": "updated", "k": evils_own["key"],
              "d": orjson.dumps({**evils_own, "title": "x" * (2 << 20)})})  # 2 MB
    evil.raw({**base, "t": "deleted", "k": mine["key"]})  # deleting another host's session
    evil.raw({**base, "t": "hb", "pad": "y" * (2 << 20)})  # huge, whatever it is
    evil.raw_state(forged["key"], orjson.dumps(forged))  # and in its hash, read at its resync
    evil.raw({**base, "t": "resync"})
    updated = good.update(mine["key"], title="the real one")
    wait_until(lambda: svc.store.get(mine["key"])["title"] == "the real one", 5, message="good's update")
    assert simple(svc.store.get(mine["key"])) == simple(updated)
    assert simple(svc.store.get(evils_own["key"])) == simple(evils_own)
    assert len(svc.store) == 2
    ignored = svc.health()["ignored"]
    assert ignored == {"other-host": 2 + 1, "bad-json": 2, "not-an-object": 1, "bad-key": 1, "bad-session": 1,
                       "unknown-type": 1, "huge": 2}, ignored
    assert svc.feed.alive and svc.health()["status"] == "ok"
    warnings = [r.getMessage() for r in caplog.records if "host evil" in r.getMessage()]
    assert len([w for w in warnings if "(bad-json)" in w]) == 1  # logged once per host and reason
    assert not [r for r in caplog.records if "host good" in r.getMessage()]


def test_a_host_that_replaces_its_stream_by_another_type_stops_only_itself(redis_server, hosts, web):
    good, evil = hosts("good"), hosts("evil")
    mine = good.new()
    evil.new()
    svc = web()
    with redis_server.client() as r:  # a host may: these are its own keys
        r.delete(keys.stream_key("evil"))
        r.set(keys.stream_key("evil"), "not a stream")
    updated = good.update(mine["key"], title="still flowing")
    wait_until(lambda: svc.store.get(mine["key"])["title"] == "still flowing", 5, message="good's update")
    assert simple(svc.store.get(mine["key"])) == simple(updated)
    wait_until(lambda: svc.feed.counters["wrongtype"] >= 1, 5, message="the failed read noticed")
    wait_until(lambda: sessions_of(svc, "evil") == {}, 5, message="evil gone with its stream")
    updated = good.update(mine["key"], title="and flowing")
    wait_until(lambda: svc.store.get(mine["key"])["title"] == "and flowing", 5, message="good's next update")
    assert svc.feed.alive


def test_ids_from_the_future_are_ignored_counted_and_never_move_the_position(redis_server, hosts, web):
    good, evil = hosts("good"), hosts("evil")
    mine = good.new()
    jam = evil.new()
    svc = web()
    reader = Reader(svc.broadcaster)
    try:
        far = f"{99999999999999}-0"
        evil.raw({"t": "updated", "k": jam["key"], "d": orjson.dumps({**jam, "title": "from the future"}),
                  "b": "x", "v": keys.WIRE_VERSION}, far)
        evil.put({**jam, "title": "after the jam"})  # its ids are all beyond the jam now
        wait_until(lambda: svc.health()["ignored"].get("future-id") == 2, 5, message="both counted")
        updated = good.update(mine["key"], title="now")
        event_id, kind, data = reader.until(lambda i, k, d: k == "session-updated")
        assert data["sessions"][0]["key"] == mine["key"]
        now = engine_ms(redis_server)
        position = keys.parse_sse_id(event_id)[1]
        assert position[0] <= now and svc.broadcaster.position == position
        assert svc.store.get(jam["key"])["title"] == jam["title"]
        assert simple(svc.store.get(mine["key"])) == simple(updated)
    finally:
        reader.close()


# -- hosts going silent ------------------------------------------------------------------

def test_a_silent_host_turns_offline_its_sessions_stale_and_back(hosts, web):
    laptop, other = hosts("laptop"), hosts("other")
    other.hb()
    laptop.beat(HB_S)
    other.beat(HB_S)
    session = laptop.new()
    svc = web()
    wait_until(lambda: {h["host"]: h["online"] for h in svc.hosts()} == {"laptop": True, "other": True}, 5,
               message="both online")
    reader = Reader(svc.broadcaster)
    try:
        laptop.quiet()
        silent_at = time.monotonic()
        seen = {}

        def offline(event_id, kind, data):
            if kind == "host-status" and not {h["host"]: h for h in data["hosts"]}["laptop"]["online"]:
                seen["status"] = (event_id, time.monotonic() - silent_at)
            if kind == "session-updated":
                seen["stale"] = data["sessions"]
            return len(seen) == 2
        reader.until(offline, 5)
        event_id, took = seen["status"]
        assert event_id is None  # no id: never moves a browser's Last-Event-ID
        assert took < OFFLINE_S + 3 * HB_S + 0.5, took
        assert [(s["key"], s["stale"]) for s in seen["stale"]] == [(session["key"], True)]
        assert svc.store.get(session["key"])["stale"] is True
        assert {h["host"]: h["online"] for h in svc.hosts()} == {"laptop": False, "other": True}
        laptop.beat(HB_S)
        reader.until(lambda i, k, d: k == "host-status" and {h["host"]: h for h in d["hosts"]}["laptop"]["online"])
        wait_until(lambda: svc.store.get(session["key"])["stale"] is False, 2, message="not stale again")
    finally:
        reader.close()


def test_a_host_offline_long_enough_is_hidden_and_comes_back_with_its_sessions(hosts, web):
    laptop = hosts("laptop")
    laptop.beat(HB_S)
    session = laptop.new()
    svc = web(ready=False)
    svc.feed.hosts.hide_ms = 500  # a day, scaled down
    assert svc.wait_ready(10)
    laptop.quiet()
    wait_until(lambda: svc.store.get(session["key"]) is None, 5, message="hidden")
    assert svc.hosts() == [{"host": "laptop", "online": False, "lastSeen": svc.hosts()[0]["lastSeen"],
                            "sessions": 0, "sources": []}]
    laptop.hb()
    wait_until(lambda: svc.store.get(session["key"]), 5, message="back")
    assert simple(svc.store.get(session["key"])) == simple(session) and svc.store.get(session["key"])["stale"] is False


# -- resuming: the rings -----------------------------------------------------------------

def test_a_new_worker_resumes_another_workers_client_from_its_preloaded_ring(hosts, web):
    laptop, runner = hosts("laptop"), hosts("runner")
    laptop.beat(HB_S)
    a_session, r_session = laptop.new(), runner.new()
    worker_a = web()
    reader = Reader(worker_a.broadcaster)
    state = {s["key"]: s for s in worker_a.store.snapshot()}
    try:
        laptop.update(a_session["key"], messageCount=2)
        last_id, _, data = reader.until(lambda i, k, d: k == "session-updated")
        state.update({s["key"]: s for s in data["sessions"]})
    finally:
        reader.close()
    worker_a.stop()
    # While the client is away: changes it never saw, then a worker that did not exist.
    laptop.update(a_session["key"], messageCount=3)
    runner.update(r_session["key"], title="runner renamed")
    gone = laptop.new()
    laptop.delete(gone["key"])
    created = runner.new()
    worker_b = web()
    resumed = Reader(worker_b.broadcaster, last_id)
    try:
        assert resumed.replay is not None, "a resume on another worker must replay, not start over"
        for event in resumed.replay:
            _, kind, data = decode(event.frame)
            for s in data["sessions"]:
                if kind == "session-deleted":
                    state.pop(s["key"], None)
                else:
                    state[s["key"]] = s
    finally:
        resumed.close()
    truth = {**laptop.truth(), **runner.truth()}
    assert {k: simple(s) for k, s in state.items()} == truth
    assert created["key"] in state and gone["key"] not in state


def test_an_id_older_than_the_ring_or_the_trimmed_stream_gets_init(redis_server, hosts, web):
    laptop = hosts("laptop")
    session = laptop.new()
    for i in range(20):
        laptop.update(session["key"], messageCount=i)
    with redis_server.client() as r:
        r.xtrim(keys.stream_key("laptop"), maxlen=5, approximate=False)  # the host trims its own stream
        first_kept = keys.parse_id(r.xrange(keys.stream_key("laptop"), count=1)[0][0])
    time.sleep(keys.REPLAY_OVERLAP_MS / 1000 + 0.1)
    newest = keys.parse_id(laptop.put({**session, "title": "newest"})[0])
    svc = web()
    epoch = svc.feed.epoch
    # An id before the first entry kept: what followed it was trimmed away: init...
    assert replay_of(svc.broadcaster, keys.sse_id(epoch, (first_kept[0] - 1, 0))) is None
    assert replay_of(svc.broadcaster, keys.sse_id(epoch, (engine_ms(redis_server) - 11 * 60_000, 0))) is None
    assert replay_of(svc.broadcaster, keys.sse_id("deadbeef", newest)) is None
    assert replay_of(svc.broadcaster, "garbage") is None
    # ...while from the newest entry everything needed is held.
    replay = replay_of(svc.broadcaster, keys.sse_id(epoch, newest))
    assert [decode(e.frame)[2]["sessions"][0]["title"] for e in replay] == ["newest"]


def test_a_resync_in_the_window_means_init_for_ids_before_it(redis_server, hosts, web):
    laptop = hosts("laptop")
    session = laptop.new()
    before = keys.parse_id(laptop.put({**session, "title": "before"})[0])
    time.sleep(keys.REPLAY_OVERLAP_MS / 1000 + 0.1)  # so that "before" is more than the overlap before the resync
    resync = keys.parse_id(laptop.resync())
    time.sleep(keys.REPLAY_OVERLAP_MS / 1000 + 0.1)
    after = keys.parse_id(laptop.put({**session, "title": "after"})[0])
    svc = web()
    epoch = svc.feed.epoch
    assert before < resync < after
    assert replay_of(svc.broadcaster, keys.sse_id(epoch, before)) is None  # the resync is not in the ring
    assert replay_of(svc.broadcaster, keys.sse_id(epoch, after)) is not None


def test_entries_of_two_hosts_in_one_millisecond_survive_a_resume(redis_server, hosts, web):
    one, two = hosts("one"), hosts("two")
    s1, s2 = one.new(), two.new()
    svc = web()
    reader = Reader(svc.broadcaster)
    try:
        ms = engine_ms(redis_server) + 50
        base = {"b": "x", "v": keys.WIRE_VERSION}
        one.raw({**base, "t": "updated", "k": s1["key"], "d": orjson.dumps({**s1, "title": "one at ms"})}, f"{ms}-5")
        first_id, _, _ = reader.until(lambda i, k, d: k == "session-updated")
    finally:
        reader.close()
    # The other host's entry of the same millisecond comes in a later reply, with a lower id.
    two.raw({**base, "t": "updated", "k": s2["key"], "d": orjson.dumps({**s2, "title": "two at ms"})}, f"{ms}-3")
    wait_until(lambda: svc.store.get(s2["key"])["title"] == "two at ms", 5, message="the second entry")
    for worker in (svc, web()):  # this worker, and one whose ring was preloaded from the streams
        replay = replay_of(worker.broadcaster, first_id)
        replayed = {s["key"]: s["title"] for e in replay for s in decode(e.frame)[2]["sessions"]}
        assert replayed.get(s2["key"]) == "two at ms", replayed


# -- the engine going away -----------------------------------------------------------------

def test_an_engine_blip_costs_nothing(redis_factory, hosts, web):
    engine = redis_factory(persistent=True)
    laptop = hosts("laptop", engine.url)
    session = laptop.new()
    svc = web(engine.url)
    epoch, snapshots = svc.feed.epoch, svc.feed.counters["snapshots"]
    reader = Reader(svc.broadcaster)
    try:
        time.sleep(1.1)  # appendfsync everysec: on disk (a kill -9 keeps the page cache anyway)
        engine.kill9()
        _, _, data = reader.until(lambda i, k, d: k == "feed-status" and d["ok"] is False, 10)
        assert isinstance(data["since"], int)
        assert svc.health()["status"] == "degraded" and svc.feed_status()["ok"] is False
        assert simple(svc.store.get(session["key"])) == simple(session)  # the last state is still served
        assert svc.wait_ready(0.1)
        engine.start()
        reader.until(lambda i, k, d: k == "feed-status" and d["ok"] is True, 15)
        wait_until(lambda: svc.health()["status"] == "ok", 5, message="healthy again")
        updated = laptop.update(session["key"], title="after the blip")
        reader.until(lambda i, k, d: k == "session-updated" and d["sessions"][0]["title"] == "after the blip")
        assert simple(svc.store.get(session["key"])) == simple(updated)
    finally:
        reader.close()
    assert svc.feed.epoch == epoch and svc.feed.counters["snapshots"] == snapshots  # read on from where it was


def test_an_engine_that_lost_its_data_means_a_new_epoch_and_init_for_old_ids(redis_server, hosts, web):
    laptop, gone = hosts("laptop"), hosts("gone")
    session = laptop.new()
    gone.new()
    svc = web()
    old_epoch, old_id = svc.feed.epoch, svc.broadcaster.event_id()
    assert replay_of(svc.broadcaster, old_id) is not None  # served, before
    redis_server.kill9()
    wait_until(lambda: not svc.feed.ok, 10, message="the feed to notice")
    redis_server.start()  # empty: no persistence
    wait_until(lambda: svc.feed.epoch not in (None, old_epoch), 15, message="a new epoch")
    laptop.resync()  # what the agent does on reconnect; "gone" never comes back
    wait_until(lambda: {k: simple(s) for k, s in {s["key"]: s for s in svc.store.snapshot()}.items()}
               == laptop.truth(), 10, message="the state to converge")
    assert svc.broadcaster.epoch == svc.feed.epoch and svc.store.channel("claude-code").epoch == svc.feed.epoch + "c"
    assert replay_of(svc.broadcaster, old_id) is None  # init, never a silent replay
    assert svc.feed.counters["epochs"] == 1
    assert simple(svc.store.get(session["key"])) == simple(session)


def test_workers_agree_on_a_new_epoch_even_when_no_host_had_written(redis_server, web):
    first = web()  # an engine with no hosts yet: no position to miss, only the epoch tells
    old = first.feed.epoch
    redis_server.kill9()
    wait_until(lambda: not first.feed.ok, 10, message="the feed to notice")
    redis_server.start()
    wait_until(lambda: first.feed.ok and first.feed.epoch != old, 15, message="a new epoch")
    with redis_server.client() as r:
        assert r.hget(keys.META, keys.EPOCH_FIELD).decode() == first.feed.epoch == web().feed.epoch


# -- the feed under the engine's ACL ------------------------------------------------------

def test_the_feed_runs_on_the_web_users_permissions(redis_server, hosts, web):
    with redis_server.client() as r:
        r.execute_command("ACL", "SETUSER", "web", *admin.web_rules("webpw"))
        r.execute_command("ACL", "SETUSER", keys.user_of("laptop"), *admin.host_rules("laptop", "hostpw"))
    laptop = hosts("laptop", redis_server.url_for(keys.user_of("laptop"), "hostpw"))
    session = laptop.new()
    laptop.transcript(session["key"], [{"index": 0, "role": "user"}])
    svc = web(redis_server.url_for("web", "webpw"))
    assert svc.feed.epoch and simple(svc.store.get(session["key"])) == simple(session)
    updated = laptop.update(session["key"], title="under ACLs")
    laptop.resync()
    wait_until(lambda: svc.store.get(session["key"])["title"] == "under ACLs", 5, message="the update")
    assert simple(svc.store.get(session["key"])) == simple(updated)
    assert svc.conversation(session["key"], 0, 10)["messages"] == [{"index": 0, "role": "user"}]
    assert svc.monitor.refresh() == 1
    with redis_server.client() as r:
        denied = [e for e in r.acl_log() if e.get("username") == "web"]
    assert denied == [], denied
    assert svc.health()["status"] == "ok"


# -- the remote session view, and stopping -------------------------------------------------

def test_a_remote_sessions_latest_messages_page_like_the_local_ones(hosts, web):
    laptop = hosts("laptop")
    session, bare = laptop.new(), laptop.new()
    held = [{"index": i, "role": "user", "blocks": [{"type": "text", "text": f"m{i}"}]} for i in range(150, 200)]
    laptop.transcript(session["key"], held, total=200)
    svc = web()
    tail = svc.conversation(session["key"], 150, 100)
    assert tail == {"messages": held, "nextOffset": None, "total": 200, "remote": True,
                    "note": "the full transcript stays on its host laptop"}
    middle = svc.conversation(session["key"], 160, 20)
    assert [m["index"] for m in middle["messages"]] == list(range(160, 180)) and middle["nextOffset"] == 180
    early = svc.conversation(session["key"], 0, 100)
    assert early["messages"] == [] and early["nextOffset"] == 100  # kept on its host only
    assert svc.conversation(bare["key"], 0, 100) == {"messages": [], "nextOffset": None, "total": 0,
                                                     "remote": True, "note": tail["note"]}
    laptop.r.set(keys.transcript_key("laptop", bare["key"]), b"{not json")
    assert svc.conversation(bare["key"], 0, 100)["messages"] == []
    assert svc.conversation("laptop:claude-code:nobody", 0, 100) is None
    assert svc.conversation("Not A Host:claude-code:x", 0, 100) is None


def test_stop_ends_a_blocked_read_at_once(redis_server, hosts):
    hosts("laptop").hb()
    cfg = Config(role="web", redis_url=redis_server.url, host_name="web").validate()  # BLOCK 5000
    svc = TeamWebService(cfg)
    svc.start()
    assert svc.wait_ready(10) and svc.feed.block_ms == keys.BLOCK_MS
    time.sleep(0.3)  # in the blocking read
    t0 = time.monotonic()
    svc.stop()
    assert time.monotonic() - t0 < 1.5 and not svc.feed.alive


def test_a_steady_flow_is_told_in_batches_and_a_lone_change_at_once(hosts, web):
    from helm_monitor.team.feed import BATCH_S
    laptop = hosts("laptop")
    sessions = [laptop.new() for _ in range(10)]
    svc = web()
    published = svc.broadcaster.published
    before = published["session-updated"]
    started = time.monotonic()
    for i in range(100):  # 10 sessions, each changed 10 times, every 2 ms: 200 ms of entries
        laptop.update(sessions[i % 10]["key"], messageCount=i)
        time.sleep(0.002)
    truth = {s["key"]: s["messageCount"] for s in laptop.truth().values()}
    wait_until(lambda: {k: s["messageCount"] for k, s in sessions_of(svc, "laptop").items()} == truth, 5,
               message="every change in the store")
    elapsed = time.monotonic() - started
    messages = published["session-updated"] - before
    # About one message per batch window (some 5 to 20 here), not one per entry (100).
    assert messages <= min(40, elapsed / BATCH_S + 2), (messages, elapsed)
    time.sleep(BATCH_S * 2)  # quiet
    reader = Reader(svc.broadcaster)
    try:
        sent = time.monotonic()
        laptop.update(sessions[0]["key"], title="alone")
        reader.until(lambda i, k, d: k == "session-updated" and d["sessions"][0]["title"] == "alone")
        assert time.monotonic() - sent < BATCH_S * 0.8 + 0.5  # not held for a batch (generous under load)
    finally:
        reader.close()
