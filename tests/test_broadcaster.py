"""The broadcaster on its own: framing, bounded mailboxes, replay, shutdown; status
messages; the team web tier's position ids."""

from __future__ import annotations

import json
import threading
import time

import pytest

from helm_monitor.live.broadcaster import (CLOSED, REFRESH, TICK_S, Broadcaster, ShuttingDown,
                                          TooManyClients, sse_frame)
from helm_monitor.live.store import SessionStore
from helm_monitor.team.positions import PositionBroadcaster


def test_frame_splits_multiline_data_and_strips_cr_lf_from_id_and_type():
    frame = sse_frame("1-2\r\nevent: evil", "session-updated\ndata: x", b'{"a":1}\n{"b":2}')
    assert frame == (b"id: 1-2event: evil\nevent: session-updateddata: x\n"
                     b'data: {"a":1}\ndata: {"b":2}\n\n')


def test_published_frame_is_spec_shaped():
    b = Broadcaster()
    sub, replay, seq = b.subscribe()
    assert replay is None and seq == 0
    b.publish("session-created", [{"id": "s1"}])
    event = sub.get(1)
    lines = event.frame.decode().split("\n")
    assert lines[0] == f"id: {b.epoch}-1" and lines[1] == "event: session-created"
    data = json.loads(lines[2][len("data: "):])
    assert data["type"] == "session-created" and data["sessions"] == [{"id": "s1"}]
    assert isinstance(data["timestamp"], int)
    assert lines[3:] == ["", ""]


def test_publish_never_blocks_overflow_gives_one_refresh_then_disconnects():
    b = Broadcaster(queue_size=3)
    hook = threading.Event()
    slow, _, _ = b.subscribe(on_disconnect=hook.set)
    fast, _, _ = b.subscribe()
    for i in range(3):
        b.publish("session-updated", [{"id": str(i)}])
        assert fast.get(0).seq == i + 1
    b.publish("session-updated", [])  # slow's mailbox is full: backlog -> one refresh marker
    assert slow.refresh_pending and b.overflows == 1 and not hook.is_set()
    for i in range(3):
        b.publish("session-updated", [])
    assert slow.closed and slow.close_reason == "slow" and hook.is_set()
    assert b.clients == 1 and b.slow_disconnects == 1
    assert slow.get(0) is CLOSED
    assert fast.get(0) is not None  # the healthy one got everything


def test_a_refresh_taken_in_time_resets_the_overflow():
    b = Broadcaster(queue_size=2)
    sub, _, _ = b.subscribe()
    for _ in range(3):
        b.publish("session-updated", [])
    assert sub.get(0) is REFRESH and not sub.refresh_pending
    for _ in range(3):
        b.publish("session-updated", [])
    assert not sub.closed and b.overflows == 2


def test_replay_from_last_event_id():
    b = Broadcaster(replay_size=4)
    for i in range(6):
        b.publish("session-updated", [{"id": str(i)}])
    sub, replay, seq = b.subscribe(last_event_id=f"{b.epoch}-3")
    assert [e.seq for e in replay] == [4, 5, 6] and seq == 6
    assert b.subscribe(last_event_id=f"{b.epoch}-6")[1] == []
    assert b.subscribe(last_event_id=f"{b.epoch}-1")[1] is None  # no longer held
    assert b.subscribe(last_event_id="other-3")[1] is None
    assert b.subscribe(last_event_id=f"{b.epoch}-99")[1] is None
    assert b.subscribe(last_event_id="garbage")[1] is None


def test_client_cap_and_shutdown():
    b = Broadcaster(max_clients=2)
    a, _, _ = b.subscribe()
    b.subscribe()
    with pytest.raises(TooManyClients):
        b.subscribe()
    a.close()
    b.subscribe()
    closed = []
    for sub in list(b._subs):
        sub.on_disconnect = lambda: closed.append(1)
    assert b.close_all() == 2 and len(closed) == 2 and b.clients == 0
    with pytest.raises(ShuttingDown):
        b.subscribe()


def test_get_waits_for_an_event_from_another_thread():
    b = Broadcaster()
    sub, _, _ = b.subscribe()
    threading.Timer(0.05, lambda: b.publish("session-created", [])).start()
    assert sub.get(5).type == "session-created"
    assert sub.get(0.01) is None


def test_refresh_snapshots_are_not_held_for_replay():
    b = Broadcaster(replay_size=8)
    b.publish("session-updated", [])
    b.publish("refresh", [{"id": str(i)} for i in range(100)])
    b.publish("session-updated", [{"id": "after"}])
    assert [e.type for e in b._ring] == ["session-updated"]
    assert b.subscribe(last_event_id=f"{b.epoch}-1")[1] is None  # missed the refresh: init
    assert [e.seq for e in b.subscribe(last_event_id=f"{b.epoch}-2")[1]] == [3]


def _waiting(sub, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not sub.waiting:
        assert time.monotonic() < deadline, "the reader never waited"
        time.sleep(0.001)


def test_a_timed_wait_ends_on_the_clock_and_a_shut_wakes_a_waiting_reader():
    b = Broadcaster()
    sub, _, _ = b.subscribe()
    t0 = time.monotonic()
    assert sub.get(0.3) is None
    assert 0.3 <= time.monotonic() - t0 < 0.3 + TICK_S + 0.5
    got = []
    reader = threading.Thread(target=lambda: got.append(sub.get(None)))
    reader.start()
    _waiting(sub)
    sub.shut("client-gone", hook=False)  # from another thread, as the connection watcher does
    reader.join(5)
    assert got == [CLOSED]


def test_deliver_takes_an_event_for_a_waiting_client_and_moves_its_keepalive_on():
    b = Broadcaster()
    sub, _, _ = b.subscribe()
    delivered, take = [], [True]
    sub.deliver = lambda event: take[0] and not delivered.append(event.seq)
    got = []
    reader = threading.Thread(target=lambda: got.append(sub.get(30)))
    reader.start()
    _waiting(sub)
    before = sub.wake_at
    time.sleep(1.1)
    b.publish("session-updated", [])  # written by deliver: the reader is not woken
    assert delivered == [1] and not sub._items and sub.wake_at > before
    take[0] = False
    b.publish("session-updated", [])  # refused: the mailbox has it
    reader.join(5)
    assert [e.seq for e in got] == [2] and delivered == [1]
    b.publish("session-updated", [])  # nobody waits: the mailbox, whatever deliver would say
    take[0] = True
    assert sub.get(0).seq == 3 and delivered == [1]


# -- status messages (SPEC 4 v2) ----------------------------------------------------------

def test_a_status_has_no_id_goes_to_every_client_and_is_never_replayed():
    b = Broadcaster(queue_size=4)
    one, _, _ = b.subscribe()
    two, _, _ = b.subscribe()
    b.publish("session-updated", [{"id": "s1"}])
    status = b.publish_status("feed-status", {"ok": False, "since": 1234})
    lines = status.frame.decode().split("\n")
    assert lines[0] == "event: feed-status" and not any(line.startswith("id:") for line in lines)
    data = json.loads(lines[1][len("data: "):])
    assert list(data) == ["type", "ok", "since", "timestamp"] and data["ok"] is False and data["since"] == 1234
    assert lines[2:] == ["", ""]
    for sub in (one, two):
        assert sub.get(0).type == "session-updated"
        assert sub.get(0) is status  # the one frame every client shares
    assert b.event_id() == f"{b.epoch}-1"  # a status moves no id
    assert [e.type for e in b._ring] == ["session-updated"]
    assert b.subscribe(last_event_id=f"{b.epoch}-1")[1] == []  # nothing was missed
    assert [e.type for e in b.subscribe(last_event_id=f"{b.epoch}-0")[1]] == ["session-updated"]
    assert b.statuses_published == 1


def test_statuses_fill_a_mailbox_like_events():
    b = Broadcaster(queue_size=2)
    sub, _, _ = b.subscribe()
    for _ in range(3):
        b.publish_status("host-status", {"hosts": []})
    assert sub.get(0) is REFRESH and b.overflows == 1


# -- position ids (team web tier, design 6.5) -------------------------------------------------

def _positions(events) -> list[tuple[int, int]]:
    return [e.position for e in events]


def _resumable(b: PositionBroadcaster) -> PositionBroadcaster:
    """Every event from the start is held (as if the history had been preloaded)."""
    b.set_floor((0, 0))
    return b


def test_position_ids_are_the_engine_positions_and_never_go_back():
    b = PositionBroadcaster(epoch="e1")
    assert b.event_id() == "e1.0-0"  # before any event
    sub, replay, mark = b.subscribe()
    assert replay is None and b.event_id(mark) == "e1.0-0"
    first = b.publish("session-created", [{"id": "a"}], position=(1_000_000, 3))
    assert first.frame.startswith(b"id: e1.1000000-3\nevent: session-created\n")
    late = b.publish("session-updated", [{"id": "b"}], position=(999_999, 0))  # another host's, read later
    assert late.position == (1_000_000, 3) and late.frame.startswith(b"id: e1.1000000-3\n")
    unnumbered = b.publish("session-updated", [])
    assert unnumbered.position == (1_000_000, 3)
    b.publish("session-deleted", [], position=(1_000_001, 0))
    assert b.event_id() == "e1.1000001-0" and b.position == (1_000_001, 0)
    assert [sub.get(0).position for _ in range(4)] == [(1_000_000, 3)] * 3 + [(1_000_001, 0)]
    b.publish_status("host-status", {"hosts": []})
    assert b.event_id() == "e1.1000001-0"


def test_resume_replays_from_the_overlap_so_equal_ms_entries_of_two_hosts_are_not_lost():
    """Another worker may have read host A's entry ``t-0`` before host B's ``(t-1)-5`` (another
    reply) and sent only the first; this worker read both, B's first. A client resuming here
    from ``t-0`` gets B's too, and everything from 2 s before."""
    b = _resumable(PositionBroadcaster(epoch="e1", overlap_ms=2000))
    t = 5_000_000
    b.publish("session-updated", [{"id": "old"}], position=(t - 2001, 9))
    b.publish("session-updated", [{"id": "edge"}], position=(t - 2000, 0))
    b.publish("session-updated", [{"id": "b"}], position=(t - 1, 5))  # missed on the other worker
    b.publish("session-updated", [{"id": "a"}], position=(t, 0))  # the client saw this one, then left
    b.publish("session-updated", [{"id": "c"}], position=(t, 0))  # same ms, another host: missed
    b.publish("session-updated", [{"id": "d"}], position=(t + 10, 1))
    _, replay, mark = b.subscribe(last_event_id=f"e1.{t}-0")
    assert [json.loads(e.frame.split(b"data: ")[1])["sessions"][0]["id"] for e in replay] == [
        "edge", "b", "a", "c", "d"]
    assert _positions(replay) == [(t - 2000, 0), (t - 1, 5), (t, 0), (t, 0), (t + 10, 1)] and mark == (t + 10, 1)
    # Up to date: the last overlap again (duplicates the page upserts).
    assert _positions(b.subscribe(last_event_id=f"e1.{t + 10}-1")[1]) == [(t - 1, 5), (t, 0), (t, 0), (t + 10, 1)]


def test_resume_refused_other_epoch_malformed_too_old_unknown_floor_or_ahead():
    b = PositionBroadcaster(epoch="e1", overlap_ms=2000)
    t = 5_000_000
    b.publish("session-updated", [], position=(t, 0))
    assert b.subscribe(last_event_id=f"e1.{t}-0")[1] is None  # floor unknown: no history is known to be whole
    b.set_floor((t - 1000, 0))
    for bad in (f"e0.{t}-0", "e1", "e1.", f"e1.{t}", "garbage", f"{t}-0", "e1-7", ""):
        assert b.subscribe(last_event_id=bad)[1] is None, bad
    assert b.subscribe(last_event_id=f"e1.{t - 1001}-0")[1] is None  # before the floor: the gap is not held
    # From the floor on everything is held: a client past it gets what followed the floor
    # (the overlap cannot reach further back than the floor, nor needs to beyond ties).
    assert _positions(b.subscribe(last_event_id=f"e1.{t - 1000}-0")[1]) == [(t, 0)]
    assert _positions(b.subscribe(last_event_id=f"e1.{t}-0")[1]) == [(t, 0)]
    assert b.subscribe(last_event_id=f"e1.{t + 1000}-0")[1] is not None
    assert _positions(b.subscribe(last_event_id=f"e1.{t + 2000}-0")[1]) == [(t, 0)]  # ahead by the overlap: fine
    assert b.subscribe(last_event_id=f"e1.{t + 2001}-0")[1] is None  # further: not ours to vouch for


def test_a_refresh_is_not_held_and_moves_the_floor_up_to_it():
    b = _resumable(PositionBroadcaster(epoch="e1"))
    t = 5_000_000
    b.publish("session-updated", [], position=(t, 0))
    b.publish("refresh", [{"id": "x"}], position=(t + 100, 0))
    b.publish("session-updated", [], position=(t + 5000, 0))
    assert _positions(b._ring) == [(t + 5000, 0)]
    assert b.subscribe(last_event_id=f"e1.{t}-0")[1] is None  # missed the refresh: init
    assert _positions(b.subscribe(last_event_id=f"e1.{t + 3000}-0")[1]) == [(t + 5000, 0)]


def test_reset_starts_a_new_epoch_with_nothing_replayable():
    b = _resumable(PositionBroadcaster(epoch="e1"))
    t = 5_000_000
    b.publish("session-updated", [], position=(t, 0))
    b.reset("e2")
    assert b.epoch == "e2" and b.event_id() == "e2.0-0" and not b._ring
    assert b.subscribe(last_event_id=f"e1.{t}-0")[1] is None
    assert b.subscribe(last_event_id="e2.0-0")[1] is None  # floor unknown again
    b.publish("refresh", [], position=(t - 50_000, 0))  # the new engine's clock may even be behind
    b.publish("session-updated", [], position=(t - 40_000, 0))
    assert b.event_id() == f"e2.{t - 40_000}-0"
    assert _positions(b.subscribe(last_event_id=f"e2.{t - 40_000}-0")[1]) == [(t - 40_000, 0)]


def test_preload_holds_history_before_the_snapshot_from_the_floor_on():
    b = PositionBroadcaster(epoch="e1")
    t = 5_000_000
    b.publish("refresh", [{"id": "all"}], position=(t, 0))  # the snapshot, at the latest position
    b.publish("session-updated", [], position=(t + 1, 0))  # live already, before the history is in
    history = [((t - 9000, 0), "session-created", [{"id": "a"}]),
               ((t - 5000, 2), "session-updated", [{"id": "a"}]),
               ((t - 5000, 1), "session-updated", [{"id": "b"}]),  # out of order: raised
               ((t, 0), "session-deleted", [{"id": "a"}]),
               ((t + 2, 0), "session-updated", [{"id": "b"}])]  # after what the ring holds: not history
    assert b.preload(history) == 4
    assert _positions(b._ring) == [(t - 9000, 0), (t - 5000, 2), (t - 5000, 2), (t, 0), (t + 1, 0)]
    assert b.event_id() == f"e1.{t + 1}-0"
    assert b._ring[0].frame.startswith(f"id: e1.{t - 9000}-0\nevent: session-created\n".encode())
    assert b.subscribe(last_event_id=f"e1.{t - 6000}-0")[1] is None  # below the refresh's floor
    b.set_floor((t - 9000, 0))  # the history is whole from here
    assert _positions(b.subscribe(last_event_id=f"e1.{t - 6000}-0")[1]) == [(t - 5000, 2)] * 2 + [(t, 0), (t + 1, 0)]
    assert b.subscribe(last_event_id=f"e1.{t - 9001}-0")[1] is None  # needs what came before the floor
    b.publish("session-updated", [], position=(t + 3, 0))
    assert _positions(b._ring)[-3:] == [(t, 0), (t + 1, 0), (t + 3, 0)]


def test_the_ring_keeps_its_window_and_its_cap_and_the_floor_follows():
    b = _resumable(PositionBroadcaster(epoch="e1", window_s=10, ring_max=5, overlap_ms=0))
    t = 5_000_000
    for i in range(5):
        b.publish("session-updated", [], position=(t + i * 1000, 0))
    b.publish("session-updated", [], position=(t + 12_000, 0))  # the first two are > 10 s older
    assert _positions(b._ring) == [(t + 2000, 0), (t + 3000, 0), (t + 4000, 0), (t + 12_000, 0)]
    assert b.subscribe(last_event_id=f"e1.{t + 1000}-0")[1] is None
    assert len(b.subscribe(last_event_id=f"e1.{t + 2000}-0")[1]) == 4
    for i in range(3):
        b.publish("session-updated", [], position=(t + 13_000 + i, 0))
    assert len(b._ring) == 5 and b._ring[0].position == (t + 4000, 0)  # the cap
    assert b.subscribe(last_event_id=f"e1.{t + 3000}-0")[1] is None
    assert len(b.subscribe(last_event_id=f"e1.{t + 4000}-0")[1]) == 5
    # A floor set after the ring let go of events stays above them.
    b.set_floor((0, 0))
    assert b.subscribe(last_event_id=f"e1.{t + 3000}-0")[1] is None
    # Preloaded history beyond the cap: the oldest goes, and the floor knows it.
    c = PositionBroadcaster(epoch="e1", ring_max=3, overlap_ms=0)
    c.preload([((t + i, 0), "session-updated", []) for i in range(5)])
    c.set_floor((t, 0))
    assert _positions(c._ring) == [(t + 2, 0), (t + 3, 0), (t + 4, 0)]
    assert c.subscribe(last_event_id=f"e1.{t + 1}-0")[1] is None
    assert len(c.subscribe(last_event_id=f"e1.{t + 2}-0")[1]) == 3


def test_store_changes_carry_their_position_to_every_channel():
    main = PositionBroadcaster(epoch="e1")
    claude = Broadcaster()  # a plain channel numbers its own
    store = SessionStore(main, {"claude-code": claude})
    sub, _, _ = main.subscribe()
    csub, _, _ = claude.subscribe()
    s = {"key": "h:claude-code:1", "id": "1", "source": "claude-code", "host": "h", "updatedAt": "x"}
    store.replace_all({s["key"]: s}, position=(7_000, 0))
    store.apply({s["key"]: {**s, "updatedAt": "y"}}, position=(7_001, 4))
    store.apply({s["key"]: None}, position=(7_002, 0))
    assert [(e.type, e.position) for e in (sub.get(0), sub.get(0), sub.get(0))] == [
        ("refresh", (7_000, 0)), ("session-updated", (7_001, 4)), ("session-deleted", (7_002, 0))]
    assert [sub_event.seq for sub_event in (csub.get(0), csub.get(0), csub.get(0))] == [1, 2, 3]
    assert claude.event_id() == f"{claude.epoch}-3" and main.event_id() == "e1.7002-0"


def test_a_store_status_reaches_every_channel():
    main, claude = Broadcaster(), Broadcaster()
    store = SessionStore(main, {"claude-code": claude})
    subs = [main.subscribe()[0], claude.subscribe()[0]]
    store.publish_status("host-status", {"hosts": [{"host": "h", "online": False}]})
    for sub in subs:
        event = sub.get(0)
        assert event.type == "host-status" and b'"online":false' in event.frame
    assert main.event_id() == f"{main.epoch}-0" and claude.event_id() == f"{claude.epoch}-0"
