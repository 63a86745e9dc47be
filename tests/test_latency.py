"""Issue 15, a change on screen at once: the pump's schedule (on a clock of the test's own,
real files, a real source and store) and the broadcaster's fan-out under gevent."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helm_monitor import sources as agent_sources
from helm_monitor.live import monitor as monitor_module
from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.monitor import Monitor
from helm_monitor.live.sources import SourceSet
from helm_monitor.live.store import SessionStore

WINDOW = 0.5
START = 1000.0


class Clock:
    """The pump's time.monotonic(), moved by the test."""

    def __init__(self, now: float):
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def pump(claude, monkeypatch):
    """A Monitor over a real Claude Code source, driven by hand: no threads, the test's clock."""
    clock = Clock(START)
    monkeypatch.setattr(monitor_module, "time", clock)
    catalog = SourceSet([agent_sources.build("claude-code", str(claude.root))], "h")
    store = SessionStore(Broadcaster())
    monitor = Monitor(catalog, store, debounce_s=WINDOW)
    sub, _, _ = store.broadcaster.subscribe()
    return monitor, clock, sub


def published(sub) -> list:
    out = []
    while (event := sub.get(0)) is not None:
        out.append(event)
    return out


def sessions_of(event) -> list[dict]:
    data = event.frame.split(b"\ndata: ", 1)[1]
    return json.loads(data)["sessions"]


def run_due(monitor: Monitor) -> bool:
    """One turn of the pump at the clock's time: process what is due (as ``_run`` does)."""
    due = monitor._take_due(monitor_module.time.monotonic())
    if due:
        monitor._process(due)
    return bool(due)


def test_the_first_change_of_a_quiet_session_is_processed_when_it_arrives(claude, pump):
    monitor, clock, sub = pump
    s = claude.session("/w/quiet")
    s.prompt("hello")
    monitor.notify(str(s.path))
    assert monitor._next_due() == START  # due on arrival: no settle delay
    assert run_due(monitor)
    [event] = published(sub)
    assert event.type == "session-created"

    clock.now += 2 * WINDOW  # quiet again
    s.reply("a reply")
    monitor.notify(str(s.path))
    assert monitor._next_due() == clock.now
    assert run_due(monitor)
    [event] = published(sub)
    assert event.type == "session-updated"


def test_a_change_within_the_window_waits_for_its_end_and_carries_everything(claude, pump):
    monitor, clock, sub = pump
    s = claude.session("/w/burst")
    s.prompt("one")
    monitor.notify(str(s.path))
    run_due(monitor)
    published(sub)
    for step in range(1, 4):
        clock.now = START + step * 0.1
        s.reply(f"reply {step}")
        monitor.notify(str(s.path))
        assert monitor._next_due() == START + WINDOW
        assert not run_due(monitor) and not published(sub)
    clock.now = START + WINDOW
    assert run_due(monitor)
    [event] = published(sub)
    assert sessions_of(event)[0]["messageCount"] == 4


def test_a_run_that_changed_nothing_does_not_hold_the_next_change(claude, pump):
    """An event that only echoes a read (SQLite's fchown() of the WAL, as root) costs a look,
    not a window: the real change after it is processed when it arrives."""
    monitor, clock, sub = pump
    s = claude.session("/w/echo")
    s.prompt("one")
    monitor.notify(str(s.path))
    run_due(monitor)
    published(sub)
    clock.now += 2 * WINDOW
    monitor.notify(str(s.path))  # nothing new in the file
    assert run_due(monitor) and not published(sub)
    clock.now += 0.01
    s.reply("now a real change")
    monitor.notify(str(s.path))
    assert monitor._next_due() == clock.now
    assert run_due(monitor)
    assert [e.type for e in published(sub)] == ["session-updated"]


def test_a_session_written_continuously_updates_once_per_window_on_schedule(claude, pump):
    """Written every 50 ms for 5 s, the pump waking 0-20 ms late each time (the event loop
    busy): one update per window, each due one window after the previous was due, so
    lateness neither skips a window nor accumulates into a slower cadence."""
    monitor, clock, sub = pump
    s = claude.session("/w/busy")
    s.prompt("start")
    monitor.notify(str(s.path))
    run_due(monitor)
    published(sub)
    lateness = [0.0, 0.02, 0.005, 0.015, 0.0, 0.01, 0.02, 0.02, 0.001, 0.019]
    runs = []
    writes, wake, end = 0, START, START + 5.0
    while clock.now < end:
        clock.now = round(START + writes * 0.05, 6)
        s.reply(f"chunk {writes}")
        monitor.notify(str(s.path))
        writes += 1
        nxt = START + writes * 0.05
        while True:
            due = monitor._next_due()
            if due is None or due + lateness[len(runs) % len(lateness)] >= nxt:
                break
            clock.now = max(clock.now, due + lateness[len(runs) % len(lateness)])
            assert run_due(monitor)
            if published(sub):
                runs.append(clock.now)
    assert len(runs) == 10, runs  # at START + 0.5, 1.0, ... 5.0 (START itself was the first change)
    for k, at in enumerate(runs, start=1):
        assert START + k * WINDOW <= at <= START + k * WINDOW + 0.02 + 1e-9, (k, runs)


def test_a_run_far_behind_its_schedule_keeps_the_next_most_of_a_window_away(claude, pump):
    """A pump that wakes 200 ms late (a long read, a stalled machine) does not catch up with a
    run right after: its window counts from CATCH_UP (a fraction of a window) before it at most."""
    monitor, clock, sub = pump
    s = claude.session("/w/late")
    s.prompt("start")
    monitor.notify(str(s.path))
    run_due(monitor)
    published(sub)
    clock.now = START + 0.1
    s.reply("one")
    monitor.notify(str(s.path))
    clock.now = START + WINDOW + 0.2  # due at START + WINDOW
    assert run_due(monitor) and published(sub)
    s.reply("two")
    monitor.notify(str(s.path))
    assert monitor._next_due() == pytest.approx(clock.now + (1 - monitor_module.CATCH_UP) * WINDOW)


def test_a_change_from_elsewhere_within_the_window_is_held_until_it_ends(claude, pump):
    """A session is published at most once per window whatever made it change: a change the
    pump itself finds (here: the recent-write rule's expiry) waits for the window's end."""
    monitor, clock, sub = pump
    s = claude.session("/w/held")
    s.prompt("one")
    monitor.notify(str(s.path))
    run_due(monitor)
    [created] = published(sub)
    [session] = sessions_of(created)
    key = session["key"]
    clock.now = START + 0.2
    monitor._publish({key: dict(session, title="changed elsewhere")}, clock.now)
    assert not published(sub) and monitor._held == {key: START + WINDOW}
    clock.now = START + WINDOW
    assert monitor._take_held(clock.now) == {key: START + WINDOW}


GEVENT_FANOUT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import threading, time
    import gevent
    import gevent.threadpool
    from helm_monitor.live.broadcaster import Broadcaster

    b = Broadcaster()
    got = []

    def reader(sub, i):
        while True:
            item = sub.get(30)
            if item is not None:
                got.append((i, item.seq))

    readers = [gevent.spawn(reader, b.subscribe()[0], i) for i in range(50)]
    gevent.sleep(0.05)  # every reader waits
    # From a greenlet: publish offers to every mailbox without handing the loop to a reader midway.
    b.publish("session-updated", [])
    assert got == [], f"{len(got)} readers ran inside publish()"
    gevent.sleep(0.05)
    assert sorted(got) == [(i, 1) for i in range(50)], got
    # From a native thread (as the pump's pool is): every reader still wakes.
    pool = gevent.threadpool.ThreadPool(1)
    native = pool.spawn(lambda: (b.publish("session-updated", []), threading.get_native_id())[1])
    assert native.get(5) != threading.get_native_id()
    deadline = time.monotonic() + 5
    while len(got) < 100 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert sorted(x for x in got if x[1] == 2) == [(i, 2) for i in range(50)], got
    print("ok")
""")


@pytest.mark.timeout(60)
def test_gevent_publish_wakes_every_reader_from_a_greenlet_or_a_native_thread():
    proc = subprocess.run([sys.executable, "-c", GEVENT_FANOUT], capture_output=True, text=True, timeout=50,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


DIRECT_WRITES = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from helm_monitor.web.app import create_app
    from helm_monitor.web.stream import Feed

    app = create_app()
    svc = app.extensions["helm"]  # not started: the store and its broadcaster are enough
    wire = lambda frame: b"%X\\\\r\\\\n%b\\\\r\\\\n" % (len(frame), frame)
    out = []  # the socket, as the client would read it
    room = [10 ** 6]  # what the socket takes without blocking

    def send_nowait(data):
        if room[0] <= 0:
            raise BlockingIOError()
        n = min(room[0], len(data))
        room[0] -= n
        out.append(data[:n])
        return n

    with app.app_context():
        feed = Feed(None, None, on_disconnect=lambda reason: None)
        opening = [frame for _, frame in feed.opening()]  # init, then host-status and feed-status
        out.extend(opening)

        def stream():  # what the SSE view does with the feed's messages: the server frames them
            for kind, frame in feed.live():
                out.append(wire(frame))

        feed.write_directly(wire, send_nowait, out.append)
        reader = gevent.spawn(stream)
        gevent.sleep(0.01)
        published = []
        for i, room_left in enumerate([10 ** 6, 10 ** 6, 150, 0, 10 ** 6, 0, 10 ** 6]):
            room[0] = room_left  # plenty, then a full socket in the middle of an event, then none
            published.append(svc.store.broadcaster.publish("session-updated", [{"id": str(i), "x": "y" * 200}]))
            gevent.sleep(0.01)  # the stream's greenlet writes what the socket did not take
        feed.close()
        gevent.sleep(0.01)
        body = b"".join(out[len(opening):])
        assert body == b"".join(wire(e.frame) for e in published), (body, published)
        assert app.extensions["helm_metrics"].events_sent["session-updated"] == len(published)
        print("ok")
""")


@pytest.mark.timeout(60)
def test_events_written_directly_by_publish_stay_whole_and_in_order(tmp_path):
    """Under gevent, publish writes an event on a waiting client's socket itself; when the
    socket takes only part of it, the client's stream writes the rest before anything else,
    and events published meanwhile follow in order."""
    (tmp_path / "claude" / "projects").mkdir(parents=True)
    env = {**__import__("os").environ, "HELM_CLAUDE_DIR": str(tmp_path / "claude"), "HELM_CACHE_DIR": ""}
    proc = subprocess.run([sys.executable, "-c", DIRECT_WRITES], capture_output=True, text=True, timeout=50,
                          cwd=Path(__file__).resolve().parents[1], env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
