"""Usage and cost of every host on the team dashboard (SPEC 10 in team mode; team/usage.py).

Each host prices its own sessions' usage and publishes the cells with its sessions (``hm:h:H:u``
by session and UTC day, and the days that changed in the session's stream entry); the web tier
counts them as they are. Against a real redis-server:

- the agent's publisher (a real SessionStore and UsageIndex, driven as the pump drives them):
  what the engine holds, what each entry carries, and how both stay bounded;
- the publisher and an in-process web tier together: the web tier's index equals the host's,
  through changes, a resync, an engine killed with SIGKILL, and a new worker;
- simulated hosts writing the wire format (tests/support/team.py) read by a real
  ``helm-monitor web``: ``/api/usage?by=host`` per host, what a misbehaving host cannot do;
- two real ``helm-monitor agent`` processes over Claude Code transcripts and a real web tier:
  each host's numbers on the web tier are exactly what its own ``/api/usage`` says, an append
  moves them within a couple of seconds, and a web worker killed and restarted rebuilds them.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import orjson
import pytest

from helm_monitor.config import Config
from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.store import SessionStore
from helm_monitor.live.usage import UsageIndex
from helm_monitor.team import keys, publisher as publisher_module
from helm_monitor.team import usage as team_usage
from helm_monitor.team.publisher import Publisher
from helm_monitor.team.web import TeamWebService
from tests.support.claude import ClaudeDir, now_iso
from tests.support.server import wait_until
from tests.support.team import DAY_MS, cell, make_session

HOST = "laptop"
HB_S, OFFLINE_S = 0.2, 0.6
FAST = {"HELM_TEAM_HEARTBEAT_S": str(HB_S), "HELM_TEAM_OFFLINE_S": str(OFFLINE_S)}
NOW_MS = int(time.time() * 1000)
TODAY = NOW_MS - NOW_MS % DAY_MS
RANGE = "from=2026-01-01&to=2028-01-01&tz=UTC"  # (the test machine's clock is in late 2026)


def session(n: int, host: str = HOST, **fields) -> dict:
    return make_session(host, f"s{n}", title=f"session {n}", status="idle", **fields)


def cells_of(index, key) -> list[tuple]:
    entry = index.entry(key)
    return sorted(entry.cells) if entry is not None else []


def usage_hash(r, host: str = HOST) -> dict[str, dict]:
    return {k.decode(): orjson.loads(v) for k, v in r.hgetall(keys.usage_key(host)).items()}


def entries(r, host: str = HOST) -> list[dict]:
    return [{k.decode(): v for k, v in fields.items()} | {"id": entry_id.decode()}
            for entry_id, fields in r.xrange(keys.stream_key(host)) if fields[b"t"] != b"hb"]


class Pump:
    """What the pump does for one host: usage first (UsageIndex.update, here put: cells as
    priced), then the store's change; the publisher follows both."""

    def __init__(self, host: str = HOST):
        self.host = host
        self.store = SessionStore(Broadcaster())
        self.usage = UsageIndex()
        self.store.add_listener(self.usage.store_listener)

    def change(self, s: dict, cells: list[tuple] | None) -> None:
        self.usage.put(s["key"], s, cells)
        self.store.apply({s["key"]: s})

    def delete(self, key: str) -> None:
        self.usage.put(key, None, None)
        self.store.apply({key: None})


@pytest.fixture
def publishers():
    made: list[Publisher] = []

    def start(pump: Pump, url: str, **kw) -> Publisher:
        kw.setdefault("heartbeat_s", 5.0)
        pub = Publisher(pump.store, url=url, host=pump.host, usage=pump.usage, **kw)
        pump.store.add_listener(pub.on_change)
        pump.usage.add_listener(pub.on_usage)
        made.append(pub)
        pub.start()
        return pub

    yield start
    for pub in made:
        pub.stop()


@pytest.fixture
def web(redis_server):
    """``web(**config)``: a started in-process TeamWebService, stopped at teardown."""
    made: list[TeamWebService] = []

    def start(url: str | None = None, ready: bool = True) -> TeamWebService:
        cfg = Config(role="web", redis_url=url or redis_server.url, host_name="web", team_heartbeat_s=HB_S,
                     team_offline_s=OFFLINE_S)
        svc = TeamWebService(cfg.validate())
        made.append(svc)
        svc.start()
        if ready:
            assert svc.wait_ready(10), svc.health()
        return svc

    yield start
    for svc in made:
        svc.stop()


def day_cells(day_ms: int, models=("claude-opus-5-5",), quarters=range(96), **kw) -> list[tuple]:
    return [cell(day_ms + q * 900_000, model=m, **kw) for q in quarters for m in models]


# -- the agent's side ------------------------------------------------------------------------

def test_the_publisher_writes_usage_by_day_in_the_session_s_transaction(redis_server, publishers):
    pump = Pump()
    a, b = session(1), session(2)
    yesterday = [cell(TODAY - DAY_MS + 3_600_000), cell(TODAY - DAY_MS + 7_200_000, model="claude-haiku-4-5")]
    q4 = cell(TODAY + 4 * 900_000)
    pump.change(a, yesterday + [cell(TODAY + 60_000), q4])
    pump.change(b, None)  # a session with no usage yet
    pub = publishers(pump, redis_server.url)
    r = redis_server.client()
    try:
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        day0, day1 = TODAY // DAY_MS - 1, TODAY // DAY_MS
        held = usage_hash(r)
        assert set(held) == {keys.usage_field(a["key"], day0), keys.usage_field(a["key"], day1)}
        assert held[keys.usage_field(a["key"], day1)]["c"] == [[0, 0, 10, 20, 40, 30, 1, None, 0.00125, 0],
                                                               [4, 0, 10, 20, 40, 30, 1, None, 0.00125, 0]]
        assert held[keys.usage_field(a["key"], day0)] == {
            "m": ["claude-opus-5-5", "claude-haiku-4-5"],
            "c": [[4, 0, 10, 20, 40, 30, 1, None, 0.00125, 0], [8, 1, 10, 20, 40, 30, 1, None, 0.00125, 0]]}
        (resync,) = entries(r)
        assert resync["t"] == b"resync" and b"u" not in resync

        # An append today: the session's entry carries today's changed cells only (a patch), the
        # hash has the whole day.
        a2 = {**a, "messageCount": 2, "updatedAt": now_iso()}
        today = [cell(TODAY + 60_000, inp=11), cell(TODAY + 1_000_000), q4]
        pump.change(a2, yesterday + today)
        wait_until(lambda: len(entries(r)) == 2, 10, message="the update")
        update = entries(r)[-1]
        assert update["t"] == b"updated" and b"U" not in update
        carried = orjson.loads(update["u"])
        assert list(carried) == [str(day1)]
        assert carried[str(day1)] == {"m": ["claude-opus-5-5"], "p": 1, "c": [
            [0, 0, 11, 20, 40, 30, 1, None, 0.00125, 0], [1, 0, 10, 20, 40, 30, 1, None, 0.00125, 0]]}
        assert [row[:3] for row in usage_hash(r)[keys.usage_field(a["key"], day1)]["c"]] == [
            [0, 0, 11], [1, 0, 10], [4, 0, 10]]

        # A change of the session alone carries no usage.
        pump.change({**a2, "status": "busy"}, yesterday + list(today))
        wait_until(lambda: len(entries(r)) == 3, 10, message="the status change")
        assert b"u" not in entries(r)[-1] and b"U" not in entries(r)[-1]

        # Usage alone (the session held back by the pump's debounce): a ``usage`` entry, once it has
        # waited for its session; yesterday's cells gone: null.
        started = time.monotonic()
        pump.usage.put(a["key"], a2, [cell(TODAY + 60_000, inp=12)])
        wait_until(lambda: len(entries(r)) == 4, 10, message="the usage entry")
        waited = time.monotonic() - started
        assert publisher_module.USAGE_ALONE_S <= waited < publisher_module.USAGE_ALONE_S + 1.0
        alone = entries(r)[-1]
        assert alone["t"] == b"usage" and alone["k"] == a["key"].encode() and b"d" not in alone
        assert orjson.loads(alone["u"]) == {str(day0): None, str(day1): {
            "m": ["claude-opus-5-5"], "c": [[0, 0, 12, 20, 40, 30, 1, None, 0.00125, 0]]}}
        assert set(usage_hash(r)) == {keys.usage_field(a["key"], day1)}

        # b's first usage goes with its next change; a deleted session's usage leaves the hash.
        pump.change({**b, "messageCount": 3}, [cell(TODAY)])
        pump.delete(a["key"])
        wait_until(lambda: len(entries(r)) == 6, 10, message="the change and the deletion")
        assert set(usage_hash(r)) == {keys.usage_field(b["key"], day1)}
        assert {e["t"] for e in entries(r)[-2:]} == {b"updated", b"deleted"}

        # A rescan (store refresh): the hash is written whole again.
        r.hset(keys.usage_key(HOST), "laptop:claude-code:stale@1", b"{}")  # left behind by nobody
        pump.store.replace_all({b["key"]: pump.store.get(b["key"])})
        wait_until(lambda: pub.resyncs == 2, 10, message="the second resync")
        assert set(usage_hash(r)) == {keys.usage_field(b["key"], day1)}
    finally:
        r.close()


def test_a_very_long_session_s_usage_is_named_in_its_entry_not_carried(redis_server, publishers, web):
    """400 days of a session used every 15 minutes with two models: 76,800 cells. Every value and
    every entry stays bounded; the web tier reads the days an entry names from the hash."""
    pump = Pump()
    first_day = TODAY - 399 * DAY_MS
    models = ("claude-opus-5-5", "claude-haiku-4-5")
    long_cells = [c for d in range(400) for c in day_cells(first_day + d * DAY_MS, models)]
    pub = publishers(pump, redis_server.url)
    svc = web()
    r = redis_server.client()
    try:
        wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
        big = session(1)
        pump.change(big, long_cells)  # created with all of it (a transcript that appeared whole)
        wait_until(lambda: len(entries(r)) == 2, 10, message="the created entry")
        created = entries(r)[-1]
        size = sum(len(k) + len(v) for k, v in created.items() if k != "id")
        assert b"u" not in created and len(orjson.loads(created["U"])) == 400
        assert size < 8 * 1024, size  # the days named: ~3 KB
        values = r.hgetall(keys.usage_key(HOST))
        biggest = max(len(v) for v in values.values())
        assert len(values) == 400 and biggest < 16 * 1024  # one day of two models: 192 cells
        wait_until(lambda: cells_of(svc.usage, big["key"]) == sorted(long_cells), 10, message="the web tier's cells")

        # An append on the last day: one day in the entry, and in the hash.
        grown = long_cells[:-1] + [cell(long_cells[-1][0], model="claude-haiku-4-5", out=99)]
        pump.change({**big, "messageCount": 9}, grown)
        wait_until(lambda: len(entries(r)) == 3, 10, message="the update")
        update = entries(r)[-1]
        assert list(orjson.loads(update["u"])) == [str(TODAY // DAY_MS)]
        assert orjson.loads(update["u"])[str(TODAY // DAY_MS)]["p"] == 1
        assert len(update["u"]) < 200  # the one cell that changed
        wait_until(lambda: cells_of(svc.usage, big["key"]) == sorted(grown), 10, message="the append on the web tier")
        print(f"\n400-day session: {len(values)} day values, largest {biggest} B, total "
              f"{sum(len(v) for v in values.values())} B; created entry {size} B; an append's entry "
              f"{sum(len(k) + len(v) for k, v in update.items() if k != 'id')} B")
    finally:
        r.close()


def test_the_agent_s_app_publishes_its_service_s_usage_index(claude, redis_server):
    """``helm-monitor agent`` as the app factory builds it: the publisher follows the service's
    own UsageIndex (what the pump counts there is what the engine gets)."""
    from helm_monitor.web.app import create_app
    cfg = Config(claude_dir=claude.root, role="agent", redis_url=redis_server.url, host_name=HOST, cache_dir=None,
                 sources=["claude-code"], scan_workers=1, team_heartbeat_s=0.2, team_offline_s=0.6)
    svc = create_app(cfg).extensions["helm"]
    (pub,) = svc.attached
    assert pub.usage is svc.usage
    w = claude.session()
    w.turn("count me", "ok")
    svc.start()
    r = redis_server.client()
    try:
        assert svc.wait_ready(20)
        key = keys.session_key(HOST, "claude-code", w.id)
        wait_until(lambda: pub.resyncs >= 1 and svc.store.get(key), 10, message="the session published")
        svc.usage.put(key, svc.store.get(key), [cell(TODAY, out=42)])  # as the pump counts it
        wait_until(lambda: usage_hash(r) == {keys.usage_field(key, TODAY // DAY_MS): {
            "m": ["claude-opus-5-5"], "c": [[0, 0, 10, 42, 40, 30, 1, None, 0.00125, 0]]}}, 10,
            message="the service's usage in the engine")
        assert entries(r)[-1]["t"] == b"usage"
    finally:
        r.close()
        svc.stop()


# -- the agent and the web tier together -------------------------------------------------------

def _same_usage(pump: Pump, svc) -> bool:
    mine = {s["key"]: cells_of(pump.usage, s["key"]) for s in pump.store.snapshot()}
    theirs = {k: cells_of(svc.usage, k) for k in svc.usage.keys() if k.startswith(pump.host + ":")}
    return mine == theirs


def test_the_web_tier_s_usage_is_the_host_s_through_changes_resyncs_and_new_workers(redis_server, publishers, web):
    pump = Pump()
    s1, s2, s3 = session(1), session(2), session(3)
    pump.change(s1, [cell(TODAY - 3 * DAY_MS), cell(TODAY + 5)])
    pump.change(s2, day_cells(TODAY - DAY_MS, quarters=range(0, 96, 7)))
    pub = publishers(pump, redis_server.url)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    svc = web()
    assert _same_usage(pump, svc)
    assert cells_of(svc.usage, s1["key"]) == sorted([cell(TODAY - 3 * DAY_MS), cell(TODAY + 5)])

    pump.change({**s1, "messageCount": 5}, [cell(TODAY + 5, out=77), cell(TODAY + 999_999)])
    pump.change(s3, [cell(TODAY + 1)])
    pump.delete(s2["key"])
    pump.usage.put(s3["key"], s3, [cell(TODAY + 1, ledger=0.5)])  # usage alone
    wait_until(lambda: _same_usage(pump, svc), 10, message="the changes on the web tier")
    assert svc.usage.entry(s2["key"]) is None

    # The agent starts again (its resync); the engine's state is rewritten whole.
    pub.stop()
    pump.change({**s3, "messageCount": 2}, [cell(TODAY + 1, ledger=0.75), cell(TODAY - 10 * DAY_MS)])
    pub2 = publishers(pump, redis_server.url)
    wait_until(lambda: pub2.resyncs == 1, 10, message="the new agent's resync")
    wait_until(lambda: _same_usage(pump, svc), 10, message="the resync on the web tier")
    # A new worker reads the same from the snapshot.
    assert _same_usage(pump, web())
    # Its /api/usage answer is the host's own.
    host_answer = pump.usage.query(start="2026-01-01", end="2028-01-01", tz="UTC", by="host")
    web_answer = svc.usage.query(start="2026-01-01", end="2028-01-01", tz="UTC", by="host")
    assert web_answer["groups"] == host_answer["groups"] and web_answer["buckets"] == host_answer["buckets"]


def test_random_changes_of_usage_reach_the_web_tier_exactly(redis_server, publishers, web):
    """Appends (patches), cells and days removed (whole values), usage alone, deletions, new
    sessions, in random order and bursts: the web tier's cells are the host's, cell for cell."""
    import random
    rnd = random.Random(1303)
    pump = Pump()
    pub = publishers(pump, redis_server.url)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    svc = web()
    models = ("claude-opus-5-5", "claude-haiku-4-5", "gpt-5")
    live: dict[str, tuple[dict, dict]] = {}  # key -> (session, {(bucket, model): cell})
    for step in range(300):
        roll = rnd.random()
        if roll < 0.1 or not live:
            s = session(step)
            live[s["key"]] = (s, {})
        key = rnd.choice(sorted(live))
        s, cells = live[key]
        if roll < 0.05 and len(live) > 1:
            pump.delete(key)
            del live[key]
            continue
        if roll < 0.2 and cells:
            del cells[rnd.choice(sorted(cells))]  # a cell gone (a transcript rewritten)
        else:
            bucket = TODAY - rnd.randrange(5) * DAY_MS + rnd.randrange(96) * 900_000
            model = rnd.choice(models)
            old = cells.get((bucket, model))
            cells[(bucket, model)] = cell(bucket, model=model, out=(old[3] if old else 0) + rnd.randrange(1, 500),
                                          ledger=rnd.choice([None, 0.01 * rnd.randrange(100)]))
        value = sorted(cells.values())
        if rnd.random() < 0.2:
            pump.usage.put(key, s, value)  # usage alone
        else:
            s = {**s, "messageCount": s["messageCount"] + 1}
            live[key] = (s, cells)
            pump.change(s, value)
        if rnd.random() < 0.1:
            time.sleep(0.02)
    wait_until(lambda: _same_usage(pump, svc), 15, message="the web tier to hold the host's usage")
    assert len(svc.usage.keys()) == len(pump.store)  # (a session whose usage alone was told is not listed)
    kinds = [e["t"] for e in entries(redis_server.client())]
    patches = sum(1 for e in entries(redis_server.client()) if b'"p":1' in e.get("u", b""))
    assert b"usage" in kinds and patches > 20, (kinds.count(b"usage"), patches)
    assert _same_usage(pump, web())  # and a new worker, from the snapshot


def test_an_engine_killed_with_sigkill_converges_to_the_host_s_usage(redis_factory, publishers, web):
    engine = redis_factory(persistent=True)
    pump = Pump()
    s1 = session(1)
    pump.change(s1, [cell(TODAY)])
    pub = publishers(pump, engine.url)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    svc = web(engine.url)
    engine.kill9()
    pump.change({**s1, "messageCount": 4}, [cell(TODAY, inp=500), cell(TODAY - DAY_MS)])
    pump.change(session(2), [cell(TODAY + 2_000_000, model="gpt-5")])
    engine.start()
    wait_until(lambda: pub.resyncs >= 2 and svc.feed.ok, 20, message="both back")
    wait_until(lambda: _same_usage(pump, svc), 20, message="the web tier to converge")


def test_an_engine_without_persistence_restarted_empty_converges_too(redis_server, publishers, web):
    pump = Pump()
    pump.change(session(1), [cell(TODAY)])
    pub = publishers(pump, redis_server.url)
    wait_until(lambda: pub.resyncs == 1, 10, message="the first resync")
    pump.change(session(2), [cell(TODAY - DAY_MS)])
    svc = web()
    epoch = svc.feed.epoch
    # Killed and back while the host has nothing to write: its client reconnects without an
    # error on its next write, and that reconnect is what makes it publish its whole state.
    redis_server.kill9()
    redis_server.start()
    pump.change(session(1, messageCount=3), [cell(TODAY, out=1234)])
    wait_until(lambda: svc.feed.epoch not in (None, epoch) and pub.resyncs >= 2, 20, message="a new epoch, a resync")
    wait_until(lambda: _same_usage(pump, svc), 20, message="the web tier to converge")


# -- what the web tier accepts ----------------------------------------------------------------

def test_usage_follows_its_session_deleted_offline_and_hidden(hosts, web):
    laptop = hosts("laptop")
    laptop.beat(HB_S)
    a, b = session(1), session(2)
    laptop.put(a, b, usage={a["key"]: [cell(TODAY)], b["key"]: [cell(TODAY, model="gpt-5")]})
    svc = web(ready=False)
    svc.feed.hosts.hide_ms = 1500  # a day, scaled down
    assert svc.wait_ready(10)
    assert cells_of(svc.usage, a["key"]) == [cell(TODAY)]
    laptop.delete(b["key"])
    wait_until(lambda: svc.usage.entry(b["key"]) is None, 5, message="the deleted session's usage gone")
    laptop.quiet()
    wait_until(lambda: svc.store.get(a["key"])["stale"] is True, 5, message="offline")
    assert cells_of(svc.usage, a["key"]) == [cell(TODAY)]  # usage is history: still counted
    wait_until(lambda: svc.store.get(a["key"]) is None, 5, message="hidden")
    assert svc.usage.entry(a["key"]) is None and svc.usage.keys() == []
    laptop.hb()
    wait_until(lambda: svc.store.get(a["key"]) is not None, 5, message="back")
    assert cells_of(svc.usage, a["key"]) == [cell(TODAY)]


def test_malformed_usage_is_refused_counted_and_logged_once_and_the_host_s_sessions_stay(hosts, web, caplog):
    laptop, other = hosts("laptop"), hosts("other")
    a, b = session(1), session(2)
    laptop.put(a, b, usage={a["key"]: [cell(TODAY)], b["key"]: [cell(TODAY)]})
    o = session(1, host="other")
    other.put(o, usage={o["key"]: [cell(TODAY, inp=5)]})
    # In the hash before the snapshot: a value that is no day of cells, a field about another
    # host's session, a field of no session key.
    laptop.raw_usage(keys.usage_field(b["key"], TODAY // DAY_MS - 1), b'{"m":["x"],"c":[[0,0,-1,0,0,0,1,null,null,0]]}')
    laptop.raw_usage(keys.usage_field(o["key"], TODAY // DAY_MS),
                     orjson.dumps({"m": ["x"], "c": [[0, 0, 9, 9, 9, 9, 9, None, None, 0]]}))
    laptop.raw_usage("no-key@5", b"{}")
    caplog.set_level(logging.WARNING, logger="helm_monitor.team.hosts")
    svc = web()
    assert cells_of(svc.usage, a["key"]) == [cell(TODAY)] and cells_of(svc.usage, b["key"]) == [cell(TODAY)]
    assert cells_of(svc.usage, o["key"]) == [cell(TODAY, inp=5)]  # nothing another host wrote
    assert svc.health()["ignored"] == {"bad-usage": 2, "other-host": 1}

    # In entries: each refused, the session in it applied all the same.
    def entry(kind, s, **usage_fields):
        fields = {"t": kind, "k": s["key"], "b": laptop.boot, "v": keys.WIRE_VERSION, **usage_fields}
        if kind != "usage":
            fields["d"] = orjson.dumps(s)
        laptop.r.hset(keys.snapshot_key("laptop"), s["key"], orjson.dumps(s))
        return laptop.raw(fields)

    a2 = {**a, "title": "still applied"}
    day = str(TODAY // DAY_MS)
    entry("updated", a2, u=b"not json")
    entry("updated", {**a2, "messageCount": 2},
          u=orjson.dumps({day: {"m": ["x"], "c": [[96, 0, 1, 1, 1, 1, 1, None, None, 0]]}}))
    entry("usage", a2, u=orjson.dumps({day: {"m": ["x"], "c": [[0, 0, 1, 1, 1, 1, 1, "free", None, 0]]}}))
    entry("usage", a2, U=b'["today"]')
    entry("usage", a2, u=orjson.dumps({"-1": None}))
    laptop.raw({"t": "usage", "k": o["key"], "b": laptop.boot, "v": keys.WIRE_VERSION,
                "u": orjson.dumps({day: None})})  # another host's session: refused whole
    wait_until(lambda: svc.store.get(a["key"])["messageCount"] == 2, 5, message="the sessions applied")
    wait_until(lambda: sum(svc.health()["ignored"].values()) == 9, 5, message="every refusal counted")
    assert svc.health()["ignored"] == {"bad-usage": 7, "other-host": 2}
    assert svc.store.get(a["key"])["title"] == "still applied"
    assert cells_of(svc.usage, a["key"]) == [cell(TODAY)]  # what was valid stands
    assert cells_of(svc.usage, o["key"]) == [cell(TODAY, inp=5)]
    # Logged once per host and reason, not once per entry.
    said = [r.getMessage() for r in caplog.records if "ignoring what it wrote" in r.getMessage()]
    assert sorted(m.split("(")[1].split(")")[0] for m in said) == ["bad-usage", "other-host"], said

    # A valid change after all that goes through.
    laptop.set_usage(a["key"], [cell(TODAY, out=3)])
    wait_until(lambda: cells_of(svc.usage, a["key"]) == [cell(TODAY, out=3)], 5, message="valid usage again")
    # Days named (too big for the entry) are read from the hash.
    laptop.set_usage(a["key"], [cell(TODAY, out=4), cell(TODAY - 7 * DAY_MS)], named=True)
    wait_until(lambda: cells_of(svc.usage, a["key"]) == sorted([cell(TODAY, out=4), cell(TODAY - 7 * DAY_MS)]), 5,
               message="named days read")


def test_the_codec_round_trips_every_kind_of_cell():
    cells = [cell(TODAY, ledger=0.1 + 0.2, listed=None, unpriced=7), cell(TODAY, model="", listed=1e-12),
             cell(TODAY + 95 * 900_000, model="m" * 200, inp=(1 << 53) - 1), cell(0)]
    days = team_usage.encode_days(cells)
    back = sorted(c for day, raw in days.items() for c in team_usage.decode_day(day, raw))
    assert back == sorted(cells)
    with pytest.raises(team_usage.Refused):
        team_usage.decode_day(TODAY // DAY_MS, orjson.dumps({"m": [True], "c": []}))
    with pytest.raises(team_usage.Refused):
        team_usage.parse_field("laptop", "other:claude-code:x@1")
    assert team_usage.parse_field("laptop", b"laptop:claude-code:a@b@20000") == ("laptop:claude-code:a@b", 20000)


def test_a_value_read_again_is_not_checked_again_until_an_entry_changes_its_day():
    from helm_monitor.team.hosts import Hosts
    hosts, mirror = Hosts(offline_ms=1000, hide_ms=1000), team_usage.UsageMirror(UsageIndex())
    key, day = "laptop:claude-code:s1", TODAY // DAY_MS
    state = {keys.usage_field(key, day).encode(): team_usage.encode_day(day, [cell(TODAY)])}
    first = team_usage.valid_usage(hosts, "laptop", state, known=mirror)
    mirror.replace_host("laptop", first)
    again = team_usage.valid_usage(hosts, "laptop", state, known=mirror)
    assert again.days[key][day] is first.days[key][day]  # the same cells: not decoded again
    mirror.stage(key, {day: ([cell(TODAY, out=1)], False)})
    after = team_usage.valid_usage(hosts, "laptop", state, known=mirror)
    assert after.days[key][day] is not first.days[key][day] and after.days[key][day] == [cell(TODAY)]
    assert mirror.cells(key) == [cell(TODAY, out=1)]
    # A patch: its cells in place of the same (bucket, model), the others kept.
    mirror.stage(key, {day: ([cell(TODAY + 900_000)], True)})
    mirror.stage(key, {day: ([cell(TODAY, out=2)], True)})
    assert mirror.cells(key) == [cell(TODAY, out=2), cell(TODAY + 900_000)]
    with pytest.raises(team_usage.Refused):  # never in the hash
        team_usage.decode_day(day, team_usage.encode_day(day, [cell(TODAY)], patch=True))


# -- real processes ----------------------------------------------------------------------------

USAGE_A = {"input_tokens": 12, "output_tokens": 75, "cache_read_input_tokens": 1000,
           "cache_creation_input_tokens": 12444}
USAGE_B = {"input_tokens": 3, "output_tokens": 400, "cache_read_input_tokens": 50_000,
           "cache_creation_input_tokens": 0}


def _turn(writer, when: str, mid: str, usage=USAGE_A, model="claude-opus-5-5") -> None:
    writer.write(writer.prompt_record("go", timestamp=when),
                 [dict(r, timestamp=when) for r in writer.assistant_records("ok", usage=usage, message_id=mid,
                                                                          model=model)])


def _agent(server_factory, tmp_path, engine, host: str):
    claude = ClaudeDir(tmp_path / host / ".claude")
    srv = server_factory(claude.root, role="agent", args=["--redis-url", engine.url, "--host-name", host], env=FAST)
    return claude, srv


def _web(server_factory, tmp_path, engine, name: str = "web"):
    return server_factory(tmp_path / name / ".claude", role="web",
                          args=["--redis-url", engine.url, "--host-name", name], env=FAST)


def _without_waiting(value):
    """An answer's numbers but the waiting time, which each process observes for itself."""
    if isinstance(value, dict):
        return {k: _without_waiting(v) for k, v in value.items() if k not in ("waitingSeconds", "pricing")}
    if isinstance(value, list):
        return [_without_waiting(v) for v in value]
    return value


def _per_host(web_answer: dict, host: str) -> dict:
    """The web tier's ``by=host`` answer, of one host, shaped as that host's own ``by=host`` answer."""
    return {"groups": [g for g in web_answer["groups"] if g["group"] == host],
            "buckets": [b for b in web_answer["buckets"] if b["group"] == host]}


def _assert_each_host_s_own(web, agents: dict) -> None:
    answer = web.get_json(f"/api/usage?{RANGE}&by=host&bucket=day")
    for host, agent in agents.items():
        own = agent.get_json(f"/api/usage?{RANGE}&by=host&bucket=day")
        assert _without_waiting(_per_host(answer, host)) == _without_waiting(
            {"groups": own["groups"], "buckets": own["buckets"]}), host
    totals = answer["totals"]
    owns = [agent.get_json(f"/api/usage?{RANGE}")["totals"] for agent in agents.values()]
    for kind in ("input", "output", "cacheRead", "cacheCreation", "total"):
        assert totals["tokens"][kind] == sum(t["tokens"][kind] for t in owns)
    assert totals["messages"] == sum(t["messages"] for t in owns)
    assert totals["sessions"] == sum(t["sessions"] for t in owns)
    assert totals["cost"]["usd"] == pytest.approx(sum(t["cost"]["usd"] or 0 for t in owns), rel=1e-12)
    assert sorted(answer["unpricedModels"]) == sorted({m for a in agents.values()
                                                       for m in a.get_json(f"/api/usage?{RANGE}")["unpricedModels"]})


def _messages(web) -> int:
    return web.get_json(f"/api/usage?{RANGE}")["totals"]["messages"]


@pytest.mark.slow
def test_two_hosts_numbers_on_the_web_tier_are_each_host_s_own_live_and_after_a_restart(
        tmp_path, redis_server, server_factory):
    laptop, laptop_agent = _agent(server_factory, tmp_path, redis_server, "laptop")
    runner, runner_agent = _agent(server_factory, tmp_path, redis_server, "ci-runner-1")
    agents = {"laptop": laptop_agent, "ci-runner-1": runner_agent}
    w1 = laptop.session("/home/alice/code/webapp")
    _turn(w1, "2026-11-20T10:00:00.000Z", "msg_laptop_1")
    _turn(w1, "2026-11-20T23:50:00.000Z", "msg_laptop_2", usage=USAGE_B, model="claude-haiku-4-5")
    w2 = laptop.session("/home/alice/code/api")
    _turn(w2, "2026-11-21T08:00:00.000Z", "msg_laptop_3")
    w3 = runner.session("/builds/app")
    _turn(w3, "2026-11-22T12:00:00.000Z", "msg_runner_1", usage=USAGE_B)
    _turn(w3, "2026-11-22T12:20:00.000Z", "msg_runner_2", model="claude-unknown-model-zz")  # no price: unpriced
    wait_until(lambda: len(laptop_agent.get_json("/api/sessions/all")) == 2, 10, message="the laptop's sessions")
    try:
        wait_until(lambda: _messages(laptop_agent) == 3 and _messages(runner_agent) == 2, 10,
                   message="each host counting its own usage")
    except AssertionError:
        if _messages(laptop_agent) == 0:  # (helm_monitor/sources/*: Source.usage() returns UsageFacts)
            pytest.skip("no source counts usage yet: the agents' own /api/usage is empty")
        raise
    web = _web(server_factory, tmp_path, redis_server)
    wait_until(lambda: _messages(web) == 5, 15, message="every message on the web tier")
    _assert_each_host_s_own(web, agents)
    answer = web.get_json(f"/api/usage?{RANGE}&by=host")
    by_host = {g["group"]: g for g in answer["groups"]}
    assert by_host["laptop"]["sessions"] == 2 and by_host["ci-runner-1"]["cost"]["basis"] == "list-price"
    assert answer["unpricedModels"] == ["claude-unknown-model-zz"]

    # An append on one host moves the web tier's numbers within a couple of seconds.
    started = time.monotonic()
    _turn(w3, now_iso(), "msg_runner_3")
    wait_until(lambda: _messages(web) == 6, 5, interval=0.01, message="the appended message on the web tier")
    took = time.monotonic() - started
    assert took < 2.0, took
    wait_until(lambda: runner_agent.get_json(f"/api/usage?{RANGE}")["totals"]["messages"] == 3, 5,
               message="(and on its host)")
    _assert_each_host_s_own(web, agents)
    print(f"\nan append reached the web tier's /api/usage in {took * 1000:.0f} ms")

    # A web worker killed with SIGKILL; a new one rebuilds the same numbers from the engine.
    before = _without_waiting(web.get_json(f"/api/usage?{RANGE}&by=session&bucket=hour"))
    os.killpg(web.proc.pid, signal.SIGKILL)
    again = _web(server_factory, tmp_path, redis_server, "web-2")
    wait_until(lambda: _messages(again) == 6, 15, message="the new worker's numbers")
    assert _without_waiting(again.get_json(f"/api/usage?{RANGE}&by=session&bucket=hour")) == before
    _assert_each_host_s_own(again, agents)


def _own_answer(*sim_hosts, query: str = RANGE) -> dict:
    """What each simulated host's own ``/api/usage?by=host`` says: its UsageIndex holding the
    cells it published, asked the same question."""
    index = UsageIndex()
    for sim in sim_hosts:
        for key, s in sim.sessions.items():
            index.put(key, s, sim.usage.get(key, []))
    args = dict(part.split("=", 1) for part in query.split("&"))
    return index.query(start=args.get("from"), end=args.get("to"), tz=args.get("tz"), bucket=args.get("bucket", "day"),
                       by=args.get("by"))


@pytest.mark.slow
def test_a_real_web_tier_answers_each_simulated_host_s_own_numbers_live_after_a_restart_and_despite_garbage(
        tmp_path, hosts, redis_server, server_factory):
    laptop, runner = hosts("laptop"), hosts("runner")
    laptop.beat(HB_S)
    runner.beat(HB_S)
    a, b = session(1), session(2)
    r1 = session(1, host="runner")
    laptop.put(a, b, usage={a["key"]: [cell(TODAY), cell(TODAY - DAY_MS, model="claude-haiku-4-5")],
                            b["key"]: [cell(TODAY + 900_000, ledger=0.25, listed=None)]})
    runner.put(r1, usage={r1["key"]: [cell(TODAY, inp=1000, listed=None, unpriced=1090),
                                      cell(TODAY - 40 * DAY_MS, out=7, listed=0.1 + 0.2)]})
    web = _web(server_factory, tmp_path, redis_server)
    by_host = f"{RANGE}&by=host&bucket=day"

    def answer(server=web, query=by_host):
        return server.get_json(f"/api/usage?{query}")

    def each_host_s_own(server=web) -> bool:
        got = _without_waiting(answer(server))
        for sim in (laptop, runner):
            own = _without_waiting(_own_answer(sim, query=by_host))
            if _per_host(got, sim.name) != {"groups": own["groups"], "buckets": own["buckets"]}:
                return False
        both = _without_waiting(_own_answer(laptop, runner, query=by_host))
        return got["groups"] == both["groups"] and got["buckets"] == both["buckets"] and got["totals"] == both["totals"]

    wait_until(each_host_s_own, 10, message="each host's own numbers")
    got = {g["group"]: g for g in answer()["groups"]}
    assert got["laptop"]["tokens"]["input"] == 30 and got["laptop"]["messages"] == 3 and got["laptop"]["sessions"] == 2
    assert got["laptop"]["cost"] == {"usd": 0.2525, "basis": "mixed", "ledgerUsd": 0.25, "listPriceUsd": 0.0025,
                                     "unpricedTokens": 0}
    assert got["runner"]["cost"] == {"usd": 0.3, "basis": "list-price", "ledgerUsd": 0.0, "listPriceUsd": 0.3,
                                     "unpricedTokens": 1090}
    by_session = "from=2026-01-01&to=2028-01-01&tz=Asia/Kathmandu&by=session&bucket=hour"
    assert _without_waiting(answer(query=by_session))["buckets"] == _without_waiting(
        _own_answer(laptop, runner, query=by_session))["buckets"]

    # An append on one host moves the web tier's numbers within a couple of seconds.
    grown = [cell(TODAY, inp=1000, listed=None, unpriced=1090), cell(TODAY - 40 * DAY_MS, out=7, listed=0.1 + 0.2),
             cell(NOW_MS, out=500)]
    started = time.monotonic()
    runner.put({**r1, "messageCount": 2}, usage={r1["key"]: grown})
    wait_until(lambda: {g["group"]: g for g in answer()["groups"]}["runner"]["messages"] == 3, 5, interval=0.005,
               message="the append on the web tier")
    took = time.monotonic() - started
    assert took < 2.0, took
    assert each_host_s_own()
    print(f"\nan append reached the web tier's /api/usage in {took * 1000:.0f} ms")

    # A web worker killed with SIGKILL; a new one rebuilds the same numbers from the engine.
    before = _without_waiting(answer(query=by_session))
    os.killpg(web.proc.pid, signal.SIGKILL)
    again = _web(server_factory, tmp_path, redis_server, "web-2")
    wait_until(lambda: each_host_s_own(again), 10, message="the new worker's numbers")
    assert _without_waiting(answer(again, by_session)) == before

    # A malformed usage entry: refused, counted; the session it came with is applied, and the
    # host's other sessions and usage stay.
    renamed = {**a, "title": "renamed"}
    laptop.r.hset(keys.snapshot_key("laptop"), a["key"], orjson.dumps(renamed))
    laptop.raw({"t": "updated", "k": a["key"], "d": orjson.dumps(renamed), "b": laptop.boot,
                "v": keys.WIRE_VERSION, "u": b'{"20000": {"m": 1}}'})
    laptop.sessions[a["key"]] = renamed
    wait_until(lambda: again.get_json("/healthz")["ignored"].get("bad-usage") == 1, 5, message="refused, counted")
    titles = {s["key"]: s["title"] for s in again.get_json("/api/sessions/all")}
    assert titles == {a["key"]: "renamed", b["key"]: b["title"], r1["key"]: r1["title"]}
    assert each_host_s_own(again)
    # An offline host's usage stays counted.
    runner.quiet()
    wait_until(lambda: {h["host"]: h["online"] for h in again.get_json("/api/hosts")}["runner"] is False, 5,
               message="runner offline")
    assert each_host_s_own(again)
    assert again.get_json("/healthz")["usageSessions"] == 3
