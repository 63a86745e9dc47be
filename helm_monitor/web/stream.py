"""The event stream of SPEC section 4: ``/api/sessions/stream`` (every source) and
``/api/claude-sessions/stream`` (Claude Code sessions only, as in the first version).

``Feed`` is one client's stream whatever carries it: the SSE responses here and the
WebSocket of ``ws.py`` (section 12) both run on it, so the stream rules live once.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Callable, Iterator

from flask import Blueprint, Response, current_app, request

from helm_monitor.live.broadcaster import (CLOSED, REFRESH, ShuttingDown, TooManyClients, payload, sse_frame,
                                          status_frame)
from helm_monitor.live.store import SNAPSHOT_REUSE_S
from helm_monitor.web.connection import Connection
from helm_monitor.web.errors import json_error
from helm_monitor.web.state import service_of

bp = Blueprint("stream", __name__)

# Milliseconds an EventSource waits before reconnecting.
RETRY_MS = 3000
# While a stopping worker still accepts (gunicorn notices within a second),
# a new stream is told to come back at once: the next worker will serve it.
SHUTDOWN_RETRY_MS = 250
# How long a stream waits for its service's first state (team web tier: the engine's snapshot).
STREAM_READY_WAIT_S = 10.0
# What a client that finds the client cap reached is told (seconds).
FULL_RETRY_AFTER_S = 5


class Feed:
    """One client's messages, by the rules of SPEC section 4.

    Subscribes before it takes the snapshot (no change is lost between them); opens with
    ``init``, or with the replay of what a resuming client missed; then every event, a
    fresh ``refresh`` snapshot after the client's mailbox overflowed, and a ``keepalive``
    whenever ``keepalive_s`` passed with nothing to send, until the subscription ends.
    After the init or the replay, and after every refresh, the current ``host-status`` and
    ``feed-status`` (status messages, without ids: the page knows at once which hosts are
    online and whether the engine is reachable; the service publishes their changes).
    A message is ``(type, SSE frame)``: the frame of a published event is the one every
    client shares. Each is counted in the metrics as it is handed out.

    ``on_disconnect(reason)`` runs when the broadcaster ends the subscription itself
    (``"slow"``: it could not keep up; ``"shutdown"``: the worker stops); the transport
    then unblocks whatever it is doing. Raises TooManyClients or ShuttingDown.

    A transport that can write without blocking calls ``write_directly``: a published
    event then goes out from ``publish`` itself while this client waits with nothing
    queued, without waking the client's greenlet (at a thousand clients, the wake-up and
    the server's write path cost twice what the write does).
    """

    def __init__(self, source: str | None, last_event_id: str | None, on_disconnect: Callable[[str], None]):
        svc = self._svc = service_of(current_app)
        self._store = svc.store
        self._source = source
        self._metrics = current_app.extensions["helm_metrics"]
        self.keepalive_s = current_app.config["HELM"].keepalive_s
        self.broadcaster = svc.store.channel(source)
        self._direct: tuple[Callable[[bytes], bytes], Callable[[bytes], int], Callable[[bytes], None]] | None = None
        self._thread = None  # the native thread the stream runs in
        self._rest = None  # (event, bytes of it still to write) after a partial direct write
        self.sub = None
        self.sub, replay, seq = self.broadcaster.subscribe(
            last_event_id=last_event_id,
            on_disconnect=lambda: on_disconnect(self.sub.close_reason if self.sub else "slow"))
        if replay is None:
            self._opening = [("init", sse_frame(self.broadcaster.event_id(seq), "init",
                                                svc.store.snapshot_payload("init", source)))]
        else:
            self._opening = [(e.type, e.frame) for e in replay]
        self._opening += self.statuses()

    def opening(self) -> list[tuple[str, bytes]]:
        """The first messages: init, or the replay (possibly none: nothing was missed), then the statuses."""
        opening, self._opening = self._opening, []  # handed over: an init is ~1 KB per session,
        for kind, _ in opening:                      # not to be held for the connection's life
            self._metrics.sent(kind)
        return opening

    def write_directly(self, wire: Callable[[bytes], bytes], send_nowait: Callable[[bytes], int],
                       sendall: Callable[[bytes], None]) -> None:
        """From now on ``publish`` may write an event itself: ``wire(frame)`` is what goes on
        the socket for it, ``send_nowait`` writes what it can without blocking (a raw
        non-blocking send), ``sendall`` the rest, from the stream's own greenlet. Call it
        once the transport has nothing of its own half-written (after its first message)."""
        self._direct = (wire, send_nowait, sendall)
        self._thread = threading.get_native_id()
        self.sub.deliver = self._deliver

    def statuses(self) -> list[tuple[str, bytes]]:
        """The current status messages, shared by the clients that ask within
        SNAPSHOT_REUSE_S while no session changed and no status was published."""
        key = (self._store.version, self.broadcaster.statuses_published)
        cached = _statuses.get(self.broadcaster)
        now = time.monotonic()
        if cached is not None and cached[0] == key and now - cached[1] < SNAPSHOT_REUSE_S:
            return cached[2]
        frames = [("host-status", status_frame("host-status", {"hosts": self._svc.hosts()})),
                  ("feed-status", status_frame("feed-status", self._svc.feed_status()))]
        _statuses[self.broadcaster] = (key, now, frames)
        return frames

    def _deliver(self, event) -> bool:
        # Only in the stream's own thread: under gevent, publish in a greenlet cannot be
        # interrupted by the stream's, and a native thread's publish takes the mailbox.
        # A refresh goes through the mailbox: the stream sends the statuses after it.
        if threading.get_native_id() != self._thread or self._rest is not None or event.type == "refresh":
            return False
        wire, send_nowait, _ = self._direct
        data = wire(event.frame)
        try:
            sent = send_nowait(data)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False  # the stream's own next write meets the error and ends it
        if sent < len(data):
            # The event goes to the mailbox as well; the stream writes the rest first.
            self._rest = (event, data[sent:])
            return False
        self._metrics.sent(event.type)
        return True

    def live(self) -> Iterator[tuple[str, bytes]]:
        """Every later message, until the subscription ends (then ``close_reason`` says why)."""
        while True:
            item = self.sub.get(self.keepalive_s)
            if self._rest is not None:
                # Whatever comes next, the half-written event is finished first.
                event, rest = self._rest
                self._rest = None
                self._direct[2](rest)
                self._metrics.sent(event.type)
                if item is event:
                    continue
            if item is None:
                kind = "keepalive"
                frame = sse_frame(self.broadcaster.event_id(), kind, payload(kind, []))
            elif item is REFRESH:
                kind = "refresh"
                frame = sse_frame(self.broadcaster.event_id(), kind, self._store.snapshot_payload(kind, self._source))
            elif item is CLOSED:
                return
            else:
                kind, frame = item.type, item.frame
            self._metrics.sent(kind)
            yield kind, frame
            if kind == "refresh":
                for kind, frame in self.statuses():
                    self._metrics.sent(kind)
                    yield kind, frame

    @property
    def close_reason(self) -> str | None:
        return self.sub.close_reason

    def client_gone(self) -> None:
        """The client went away: end at once."""
        self.sub.shut("client-gone", hook=False)

    def close(self) -> None:
        self.sub.close()


# Per broadcaster: ((store version, statuses published), when, the status messages).
_statuses: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def wait_streamable() -> None:
    """A web worker just (re)started has no epoch or snapshot yet: ids it gave now would all
    mean init to its next worker. Its service says when it has (a host's own: at once)."""
    svc = service_of(current_app)
    svc.wait_streamable(STREAM_READY_WAIT_S)


def last_event_id() -> str | None:
    """Where a resuming client left off: the ``Last-Event-ID`` header (an EventSource
    reconnecting), else ``?lastEventId=`` (a new EventSource or a WebSocket cannot send
    the header, e.g. a tab taking the stream over from another)."""
    header = request.headers.get("Last-Event-ID")
    return header if header is not None else request.args.get("lastEventId")


@bp.get("/api/sessions/stream")
def stream():
    """Stream every session's changes: init (or a replay), then deltas and keepalives, never ending on its own."""
    return _stream(None)


@bp.get("/api/claude-sessions/stream")
def claude_stream():
    """Stream Claude Code sessions' changes."""
    return _stream("claude-code")


def _stream(source: str | None):
    if request.method == "HEAD":
        # Headers only: no subscription (a HEAD body is never iterated, so it could never end one).
        return _stream_response(b"")
    wait_streamable()
    conn = Connection(request.environ)
    try:
        feed = Feed(source, last_event_id(), on_disconnect=lambda reason: conn.close())
    except TooManyClients:
        return json_error(503, "too many stream clients; try again later",
                          headers={"Retry-After": str(FULL_RETRY_AFTER_S)})
    except ShuttingDown:
        response = _stream_response(f"retry: {SHUTDOWN_RETRY_MS}\n\n".encode())
        response.call_on_close(conn.close)
        return response
    first = [f"retry: {RETRY_MS}\n\n".encode() + b"".join(frame for _, frame in feed.opening())]
    direct = _direct_writes(conn, request.environ)

    def generate():
        try:
            yield first.pop()  # not kept by this closure once written
            # Nor by the server's loop (and werkzeug's) over this body, whose variable holds the
            # last chunk until the next one: with events written directly that may be never.
            yield b""
            # The server wrote the head and the first chunk: events may go out directly now.
            if direct is not None:
                feed.write_directly(*direct)
            for _, frame in feed.live():
                yield frame
        finally:
            feed.close()

    conn.watch(feed.client_gone)
    response = _stream_response(generate())

    def closed():
        # Also when the body never started (the generator's finally would not run).
        feed.close()
        conn.close()

    response.call_on_close(closed)
    return response


def _direct_writes(conn: Connection, environ: dict):
    """(wire, send_nowait, sendall) for writing events on gunicorn's socket, or None.

    The response has no length, so gunicorn sends it chunked to an HTTP/1.1 client (and
    as is to HTTP/1.0): an event written directly is framed the same way.
    """
    sock = conn.sock
    raw = getattr(sock, "_sock", None)  # gevent's socket: the non-blocking OS socket under it
    protocol = environ.get("SERVER_PROTOCOL")
    if raw is None or protocol not in ("HTTP/1.0", "HTTP/1.1"):
        return None
    if protocol == "HTTP/1.1":
        wire = _chunk
    else:
        def wire(frame: bytes) -> bytes:
            return frame
    return wire, raw.send, sock.sendall


_chunked: tuple[bytes, bytes] = (b"", b"")


def _chunk(frame: bytes) -> bytes:
    """``frame`` as one HTTP/1.1 chunk; the last one is kept, as every client takes the same frame."""
    global _chunked
    seen, chunk = _chunked
    if seen is not frame:
        chunk = b"%X\r\n%b\r\n" % (len(frame), frame)
        _chunked = (frame, chunk)
    return chunk


def _stream_response(body) -> Response:
    response = Response(body, status=200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
