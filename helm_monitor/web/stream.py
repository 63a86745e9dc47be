"""The event stream of SPEC section 4: ``/api/sessions/stream`` (every source) and
``/api/claude-sessions/stream`` (Claude Code sessions only, as in the first version).

``Feed`` is one client's stream whatever carries it: the SSE responses here and the
WebSocket of ``ws.py`` (section 12) both run on it, so the stream rules live once.
"""

from __future__ import annotations

from typing import Callable, Iterator

from flask import Blueprint, Response, current_app, request

from helm_monitor.live.broadcaster import CLOSED, REFRESH, ShuttingDown, TooManyClients, payload, sse_frame
from helm_monitor.web.connection import Connection
from helm_monitor.web.errors import json_error
from helm_monitor.web.state import service_of

bp = Blueprint("stream", __name__)

# Milliseconds an EventSource waits before reconnecting.
RETRY_MS = 3000
# While a stopping worker still accepts (gunicorn notices within a second),
# a new stream is told to come back at once: the next worker will serve it.
SHUTDOWN_RETRY_MS = 250
# What a client that finds the client cap reached is told (seconds).
FULL_RETRY_AFTER_S = 5


class Feed:
    """One client's messages, by the rules of SPEC section 4.

    Subscribes before it takes the snapshot (no change is lost between them); opens with
    ``init``, or with the replay of what a resuming client missed; then every event, a
    fresh ``refresh`` snapshot after the client's mailbox overflowed, and a ``keepalive``
    whenever ``keepalive_s`` passed with nothing to send, until the subscription ends.
    A message is ``(type, SSE frame)``: the frame of a published event is the one every
    client shares. Each is counted in the metrics as it is handed out.

    ``on_disconnect(reason)`` runs when the broadcaster ends the subscription itself
    (``"slow"``: it could not keep up; ``"shutdown"``: the worker stops); the transport
    then unblocks whatever it is doing. Raises TooManyClients or ShuttingDown.
    """

    def __init__(self, source: str | None, last_event_id: str | None, on_disconnect: Callable[[str], None]):
        svc = service_of(current_app)
        self._store = svc.store
        self._source = source
        self._metrics = current_app.extensions["helm_metrics"]
        self.keepalive_s = current_app.config["HELM"].keepalive_s
        self.broadcaster = svc.store.channel(source)
        self.sub = None
        self.sub, replay, seq = self.broadcaster.subscribe(
            last_event_id=last_event_id,
            on_disconnect=lambda: on_disconnect(self.sub.close_reason if self.sub else "slow"))
        if replay is None:
            self._opening = [("init", sse_frame(self.broadcaster.event_id(seq), "init",
                                                svc.store.snapshot_payload("init", source)))]
        else:
            self._opening = [(e.type, e.frame) for e in replay]

    def opening(self) -> list[tuple[str, bytes]]:
        """The first messages: init, or the replay (possibly none: nothing was missed)."""
        for kind, _ in self._opening:
            self._metrics.sent(kind)
        return self._opening

    def live(self) -> Iterator[tuple[str, bytes]]:
        """Every later message, until the subscription ends (then ``close_reason`` says why)."""
        while True:
            item = self.sub.get(self.keepalive_s)
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

    @property
    def close_reason(self) -> str | None:
        return self.sub.close_reason

    def client_gone(self) -> None:
        """The client went away: end at once."""
        self.sub.shut("client-gone", hook=False)

    def close(self) -> None:
        self.sub.close()


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
    first = f"retry: {RETRY_MS}\n\n".encode() + b"".join(frame for _, frame in feed.opening())

    def generate():
        try:
            yield first
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


def _stream_response(body) -> Response:
    response = Response(body, status=200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
