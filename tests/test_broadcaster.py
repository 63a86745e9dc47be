"""The broadcaster on its own: framing, bounded mailboxes, replay, shutdown."""

from __future__ import annotations

import json
import threading
import time

import pytest

from helm_monitor.live.broadcaster import (CLOSED, REFRESH, TICK_S, Broadcaster, ShuttingDown, TooManyClients,
                                          sse_frame)


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
