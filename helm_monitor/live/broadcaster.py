"""Fan-out of session events to stream clients, one bounded mailbox per client.

``publish`` never blocks: each event is framed once (SSE bytes shared by every
client) and offered to every mailbox. A client whose mailbox is full is
behind: its backlog is replaced by a single ``refresh`` marker (the stream
then sends the whole current state); if it fills up again before that refresh
was taken, the client is disconnected and its ``on_disconnect`` hook runs
(the web layer closes the socket so the handler really ends).

Plain ``threading``: under gunicorn's gevent worker these are gevent's
cooperative primitives, and ``publish`` may run in a greenlet or in a native
thread. What one event costs per client is what limits how soon a thousand
clients have it, so the common case takes no lock and wakes every client at
once: a mailbox is a deque, and its client waits on the broadcaster's current
"something happened" Event, which ``publish`` swaps for a fresh one and sets
after filling every mailbox (one wake-up for all, not one per client; a
client that wakes looks at its own mailbox). Not a Condition per client,
whose every wait allocates a lock and whose ownership check (a failed
non-blocking acquire) makes gevent yield to its hub, once per client in
``publish`` and again in each wait. Nor does a wait carry a timer of its own
(under gevent a Timeout per wait costs more than the rest of the wake-up):
the broadcaster's clock, one thread ticking every ``TICK_S`` while it has
clients, wakes everyone when some wait is over (long waits end on whole
``ALIGN_S``, so idle keepalives come together) or a client was shut.

Cheaper still is no wake-up: a transport may give a client's subscription a
``deliver`` hook, and ``publish`` hands it the event while the client waits
with an empty mailbox; the hook writes it at once if it can (a stream's
socket with room for it, in the publisher's own thread) and says so, and
only what it did not write goes to the mailbox.

Status frames (``publish_status``: whether hosts are online, whether the shared engine is
reachable) carry no ``id:`` line: they go to every client like events but are never held
for replay and never move a browser's ``Last-Event-ID`` (SPEC 4 v2).

``PositionBroadcaster`` is the team web tier's: its ids are positions in the engine's
streams (``<epoch>.<ms>-<seq>``), so that any worker can resume any browser (design 6.5).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

import orjson

# Sentinels a mailbox can hold besides events.
REFRESH = "refresh-marker"
CLOSED = "closed-marker"
# How often the broadcaster's clock ends waits that timed out: a get()'s timeout is
# rounded up to it (keepalives are seconds apart).
TICK_S = 0.1
# Waits longer than this end on a multiple of it: the idle clients' keepalives cost one
# wake-up of everyone per ALIGN_S at most, however their connections were spread.
ALIGN_S = 1.0
_NEVER = float("inf")


def _deadline(timeout: float | None) -> float:
    """When a wait of ``timeout`` from now ends (a long one on a whole ALIGN_S)."""
    if timeout is None:
        return _NEVER
    deadline = time.monotonic() + timeout
    return math.ceil(deadline / ALIGN_S) * ALIGN_S if timeout > ALIGN_S else deadline


class TooManyClients(Exception):
    """The client cap is reached."""


class ShuttingDown(Exception):
    """The worker is stopping: new streams belong to the next worker."""


def sse_frame(event_id: str | None, event_type: str, data: bytes) -> bytes:
    """One SSE message (no ``id:`` line when ``event_id`` is None). ``data`` is JSON (no
    newlines); id and type are stripped of CR/LF."""
    event_type = event_type.replace("\r", "").replace("\n", "")
    lines = data.split(b"\n")
    body = b"".join(b"data: " + line + b"\n" for line in lines)
    head = f"event: {event_type}\n"
    if event_id is not None:
        head = "id: " + event_id.replace("\r", "").replace("\n", "") + "\n" + head
    return head.encode() + body + b"\n"


def payload(event_type: str, sessions: list[dict]) -> bytes:
    return orjson.dumps({"type": event_type, "sessions": sessions, "timestamp": int(time.time() * 1000)})


def status_frame(event_type: str, data: dict) -> bytes:
    """A status message: ``data`` with ``type`` first and ``timestamp`` last, and no ``id:`` line."""
    body = {"type": event_type, **data}
    body["type"] = event_type
    body["timestamp"] = int(time.time() * 1000)
    return sse_frame(None, event_type, orjson.dumps(body))


class Event:
    __slots__ = ("seq", "type", "frame", "count", "position")

    def __init__(self, seq: int, type_: str, frame: bytes, count: int, position: tuple[int, int] | None = None):
        self.seq = seq
        self.type = type_
        self.frame = frame
        self.count = count
        self.position = position  # PositionBroadcaster's: where in the engine's streams


class Subscription:
    """One client's mailbox."""

    def __init__(self, broadcaster: "Broadcaster", maxsize: int, on_disconnect: Callable[[], None] | None):
        self._broadcaster = broadcaster
        self._items: collections.deque = collections.deque()
        self._lock = threading.Lock()  # for the rare paths: overflow, refresh taken, shut
        self.wake_at = _NEVER  # when the clock ends the current wait
        self._timeout: float | None = None  # the current wait's
        self.waiting = False  # in get(), its mailbox empty
        # The transport's fast path (see the module's docstring): True when it wrote the event.
        self.deliver: Callable[[Event], bool] | None = None
        self.maxsize = maxsize
        self.on_disconnect = on_disconnect
        self.refresh_pending = False
        self.closed = False
        self.close_reason: str | None = None

    def get(self, timeout: float | None):
        """The next event, REFRESH or CLOSED (for ever, once shut); None if nothing came
        within ``timeout`` (rounded up to the clock's tick)."""
        if self._items:
            return self._take()
        if timeout is not None and timeout <= 0:
            return None
        self._timeout = timeout
        self.wake_at = _deadline(timeout)
        try:
            while True:
                # Taken before looking: a put after the look sets this Event (or one after it,
                # whose predecessors are all set), so the wait ends.
                woken = self._broadcaster._woken
                if self._items:
                    return self._take()
                if self.closed:  # CLOSED taken already: no clock need run for this one
                    return CLOSED
                if time.monotonic() >= self.wake_at:  # moved on by whatever deliver() wrote
                    return None
                self.waiting = True
                woken.wait()
                self.waiting = False
        finally:
            self.waiting = False
            self.wake_at = _NEVER

    def _take(self):
        item = self._items.popleft()  # deque operations are atomic: no lock for the common case
        if item is REFRESH:
            with self._lock:
                self.refresh_pending = False
        return item

    def _offer(self, event: Event) -> bool:
        """Put ``event`` in the mailbox, or hand it to ``deliver``; True when the client must be woken."""
        if self.waiting and self.deliver is not None and not self._items and not self.closed:
            if self.deliver(event):
                self.wake_at = _deadline(self._timeout)  # something went out: the keepalive waits again
                return False
        if len(self._items) < self.maxsize and not self.closed:
            # Room: no lock. Racing a shut() at worst appends after CLOSED, which nothing reads.
            self._items.append(event)
            return True
        disconnect = False
        with self._lock:
            if self.closed:
                return False
            if len(self._items) < self.maxsize:
                self._items.append(event)
            elif not self.refresh_pending:
                self._items.clear()
                self._items.append(REFRESH)
                self.refresh_pending = True
                self._broadcaster.overflows += 1
            else:
                disconnect = True
        if disconnect:
            self._broadcaster.slow_disconnects += 1
            self.shut("slow")
        return True

    def shut(self, reason: str, *, hook: bool = True, wake: bool = True) -> None:
        """End this subscription: the stream sees CLOSED (within a tick of the clock, or at
        once when every client is being shut or an event goes out); ``on_disconnect`` runs once."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.close_reason = reason
            self._items.clear()
            self._items.append(CLOSED)
        self._broadcaster._remove(self, wake=wake)
        if hook and self.on_disconnect is not None:
            try:
                self.on_disconnect()
            except Exception:  # the connection may already be gone
                pass

    def close(self) -> None:
        """The stream ended on its own (client went away, generator closed): it waits no more."""
        self.shut("closed", hook=False, wake=False)


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
        self._woken = threading.Event()  # set (and replaced) when mailboxes may hold something new
        self._wake_soon = False  # a client was shut: the clock wakes everyone at its next tick
        self._clock: threading.Thread | None = None  # runs while there are clients
        self.published: collections.Counter = collections.Counter()
        self.overflows = 0
        self.slow_disconnects = 0
        self.last_publish_at: float | None = None
        self._closing = False
        self.statuses_published = 0  # publish_status calls: what the streams' opening status frames go by

    @property
    def clients(self) -> int:
        return len(self._subs)

    @property
    def seq(self) -> int:
        return self._seq

    def event_id(self, mark: int | None = None) -> str:
        """The SSE id of the stream's current point (or of ``mark``, as ``subscribe`` returns it)."""
        return f"{self.epoch}-{self._seq if mark is None else mark}"

    def publish(self, event_type: str, sessions: list[dict], *, position: tuple[int, int] | None = None) -> Event:
        """Frame one event once and offer it to every client. ``position`` is
        PositionBroadcaster's; a plain broadcaster numbers its events itself."""
        data = payload(event_type, sessions)
        with self._lock:
            event = self._record_locked(event_type, data, len(sessions), position)
            subs = list(self._subs)
            self.published[event_type] += 1
            self.last_publish_at = time.time()
        self._offer_all(event, subs)
        return event

    def publish_status(self, event_type: str, data: dict) -> Event:
        """A status message (``host-status``, ``feed-status``) to every client: no id, not held for replay."""
        frame = status_frame(event_type, data)
        with self._lock:
            event = Event(self._seq, event_type, frame, 0)
            subs = list(self._subs)
            self.published[event_type] += 1
            self.statuses_published += 1
        self._offer_all(event, subs)
        return event

    def _record_locked(self, event_type: str, data: bytes, count: int, position) -> Event:
        self._seq += 1
        event = Event(self._seq, event_type, sse_frame(self.event_id(self._seq), event_type, data), count)
        if event_type == "refresh":
            # A whole snapshot: not worth holding for replay. Whoever missed it gets init.
            self._ring.clear()
            self._ring_floor = self._seq
        else:
            self._ring.append(event)
        return event

    def _offer_all(self, event: Event, subs: list[Subscription]) -> None:
        wake = False
        for sub in subs:
            wake = sub._offer(event) or wake
        if wake:
            self._wake()

    def subscribe(self, *, last_event_id: str | None = None,
                  on_disconnect: Callable[[], None] | None = None) -> tuple[Subscription, list[Event] | None, int]:
        """Register a client before it takes its snapshot.

        Returns the subscription, the events to replay (None when ``last_event_id``
        cannot be served, so the client needs ``init``), and the point of the stream
        the snapshot corresponds to (for ``event_id``).
        """
        with self._lock:
            if self._closing:
                raise ShuttingDown()
            if sum(b.clients for b in self._cap_group) >= self.max_clients:
                raise TooManyClients(f"{self.max_clients} clients connected")
            sub = Subscription(self, self.queue_size, on_disconnect)
            self._subs.add(sub)
            if self._clock is None:
                self._clock = threading.Thread(target=self._tick, name="helm-broadcaster-clock", daemon=True)
                self._clock.start()
            replay = self._replay_locked(last_event_id)
            return sub, replay, self._mark_locked()

    def _mark_locked(self):
        return self._seq

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

    def _remove(self, sub: Subscription, *, wake: bool = False) -> None:
        with self._lock:
            self._subs.discard(sub)
            self._wake_soon = self._wake_soon or wake

    def _wake(self) -> None:
        """Wake every waiting client: each looks at its mailbox and its deadline."""
        with self._lock:
            woken, self._woken = self._woken, threading.Event()
        woken.set()

    def _tick(self) -> None:
        """The clock: wake everyone when a wait is over or a client was shut; stop when the last
        client has gone (waking once more, for the stream of the one that went)."""
        while True:
            time.sleep(TICK_S)
            with self._lock:
                subs = list(self._subs)
                wake, self._wake_soon = self._wake_soon, False
                if not subs:
                    self._clock = None
            now = time.monotonic()
            if wake or any(sub.wake_at <= now for sub in subs):
                self._wake()
            if not subs:
                return

    def close_all(self, reason: str = "shutdown") -> int:
        """Close every stream (the worker is stopping or reloading)."""
        with self._lock:
            self._closing = True
            subs = list(self._subs)
        for sub in subs:
            sub.shut(reason)
        self._wake()
        return len(subs)
