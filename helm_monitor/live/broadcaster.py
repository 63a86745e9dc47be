"""Fan-out of session events to stream clients, one bounded mailbox per client.

``publish`` never blocks: each event is framed once (SSE bytes shared by every
client) and offered to every mailbox. A client whose mailbox is full is
behind: its backlog is replaced by a single ``refresh`` marker (the stream
then sends the whole current state); if it fills up again before that refresh
was taken, the client is disconnected and its ``on_disconnect`` hook runs
(the web layer closes the socket so the handler really ends).

Plain ``threading``: under gunicorn's gevent worker these are gevent's
cooperative primitives.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import orjson

# Sentinels a mailbox can hold besides events.
REFRESH = "refresh-marker"
CLOSED = "closed-marker"


class TooManyClients(Exception):
    """The client cap is reached."""


class ShuttingDown(Exception):
    """The worker is stopping: new streams belong to the next worker."""


def sse_frame(event_id: str, event_type: str, data: bytes) -> bytes:
    """One SSE message. ``data`` is JSON (no newlines); id and type are stripped of CR/LF."""
    event_id = event_id.replace("\r", "").replace("\n", "")
    event_type = event_type.replace("\r", "").replace("\n", "")
    lines = data.split(b"\n")
    body = b"".join(b"data: " + line + b"\n" for line in lines)
    return f"id: {event_id}\nevent: {event_type}\n".encode() + body + b"\n"


def payload(event_type: str, sessions: list[dict]) -> bytes:
    return orjson.dumps({"type": event_type, "sessions": sessions, "timestamp": int(time.time() * 1000)})


class Event:
    __slots__ = ("seq", "type", "frame", "count")

    def __init__(self, seq: int, type_: str, frame: bytes, count: int):
        self.seq = seq
        self.type = type_
        self.frame = frame
        self.count = count


class Subscription:
    """One client's mailbox."""

    def __init__(self, broadcaster: "Broadcaster", maxsize: int, on_disconnect: Callable[[], None] | None):
        self._broadcaster = broadcaster
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self.maxsize = maxsize
        self.on_disconnect = on_disconnect
        self.refresh_pending = False
        self.closed = False
        self.close_reason: str | None = None

    def get(self, timeout: float | None):
        """The next event, REFRESH or CLOSED; None if nothing came within ``timeout``."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if item is REFRESH:
                self.refresh_pending = False
            return item

    def _offer(self, event: Event) -> None:
        disconnect = False
        with self._cond:
            if self.closed:
                return
            if len(self._items) < self.maxsize:
                self._items.append(event)
            elif not self.refresh_pending:
                self._items.clear()
                self._items.append(REFRESH)
                self.refresh_pending = True
                self._broadcaster.overflows += 1
            else:
                disconnect = True
            self._cond.notify()
        if disconnect:
            self._broadcaster.slow_disconnects += 1
            self.shut("slow")

    def shut(self, reason: str, *, hook: bool = True) -> None:
        """End this subscription: the stream sees CLOSED; ``on_disconnect`` runs once."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self.close_reason = reason
            self._items.clear()
            self._items.append(CLOSED)
            self._cond.notify_all()
        self._broadcaster._remove(self)
        if hook and self.on_disconnect is not None:
            try:
                self.on_disconnect()
            except Exception:  # the connection may already be gone
                pass

    def close(self) -> None:
        """The stream ended on its own (client went away, generator closed)."""
        self.shut("closed", hook=False)


class Broadcaster:
    def __init__(self, *, queue_size: int = 256, max_clients: int = 1000, replay_size: int = 512,
                 epoch: str | None = None, shares_cap_with: "Broadcaster | None" = None):
        self.queue_size = queue_size
        self.max_clients = max_clients
        # Broadcasters of one app (every session; one source's) count their clients against one cap.
        self._cap_group: list[Broadcaster] = shares_cap_with._cap_group if shares_cap_with else []
        self._cap_group.append(self)
        self.epoch = epoch or format(int(time.time() * 1000), "x")
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._seq = 0
        self._ring: collections.deque[Event] = collections.deque(maxlen=replay_size)
        self._ring_floor = 0  # events up to this sequence number cannot be replayed
        self.published: collections.Counter = collections.Counter()
        self.overflows = 0
        self.slow_disconnects = 0
        self.last_publish_at: float | None = None
        self._closing = False

    @property
    def clients(self) -> int:
        return len(self._subs)

    @property
    def seq(self) -> int:
        return self._seq

    def event_id(self, seq: int | None = None) -> str:
        return f"{self.epoch}-{self._seq if seq is None else seq}"

    def publish(self, event_type: str, sessions: list[dict]) -> Event:
        data = payload(event_type, sessions)
        with self._lock:
            self._seq += 1
            event = Event(self._seq, event_type, sse_frame(self.event_id(self._seq), event_type, data), len(sessions))
            if event_type == "refresh":
                # A whole snapshot: not worth holding for replay. Whoever missed it gets init.
                self._ring.clear()
                self._ring_floor = self._seq
            else:
                self._ring.append(event)
            subs = list(self._subs)
            self.published[event_type] += 1
            self.last_publish_at = time.time()
        for sub in subs:
            sub._offer(event)
        return event

    def subscribe(self, *, last_event_id: str | None = None,
                  on_disconnect: Callable[[], None] | None = None) -> tuple[Subscription, list[Event] | None, int]:
        """Register a client before it takes its snapshot.

        Returns the subscription, the events to replay (None when ``last_event_id``
        cannot be served, so the client needs ``init``), and the sequence number
        the snapshot corresponds to.
        """
        with self._lock:
            if self._closing:
                raise ShuttingDown()
            if sum(b.clients for b in self._cap_group) >= self.max_clients:
                raise TooManyClients(f"{self.max_clients} clients connected")
            sub = Subscription(self, self.queue_size, on_disconnect)
            self._subs.add(sub)
            replay = self._replay_locked(last_event_id)
            return sub, replay, self._seq

    def _replay_locked(self, last_event_id: str | None) -> list[Event] | None:
        if not last_event_id:
            return None
        epoch, _, seq_text = last_event_id.strip().rpartition("-")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        last = int(seq_text)
        if last > self._seq:
            return None
        if last == self._seq:
            return []
        oldest = self._ring[0].seq if self._ring else self._seq + 1
        if last + 1 < oldest or last < self._ring_floor:
            return None  # the gap is no longer held
        return [e for e in self._ring if e.seq > last]

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def close_all(self, reason: str = "shutdown") -> int:
        """Close every stream (the worker is stopping or reloading)."""
        with self._lock:
            self._closing = True
            subs = list(self._subs)
        for sub in subs:
            sub.shut(reason)
        return len(subs)
