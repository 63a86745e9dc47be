"""The event stream of SPEC section 4: ``/api/sessions/stream`` (every source) and
``/api/claude-sessions/stream`` (Claude Code sessions only, as in the first version)."""

from __future__ import annotations

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
    svc = service_of(current_app)
    cfg = current_app.config["HELM"]
    metrics = current_app.extensions["helm_metrics"]
    conn = Connection(request.environ)
    try:
        broadcaster = svc.store.channel(source)
        sub, replay, seq = broadcaster.subscribe(last_event_id=request.headers.get("Last-Event-ID"),
                                                     on_disconnect=conn.close)
    except TooManyClients:
        return json_error(503, "too many stream clients; try again later", headers={"Retry-After": "5"})
    except ShuttingDown:
        response = _stream_response(f"retry: {SHUTDOWN_RETRY_MS}\n\n".encode())
        response.call_on_close(conn.close)
        return response
    if replay is None:
        first = sse_frame(broadcaster.event_id(seq), "init", svc.store.snapshot_payload("init", source))
        metrics.sent("init")
    else:
        first = b"".join(e.frame for e in replay)
        for e in replay:
            metrics.sent(e.type)
    keepalive_s = cfg.keepalive_s

    def generate():
        try:
            yield f"retry: {RETRY_MS}\n\n".encode() + first
            while True:
                item = sub.get(keepalive_s)
                if item is None:
                    metrics.sent("keepalive")
                    yield sse_frame(broadcaster.event_id(), "keepalive", payload("keepalive", []))
                elif item is REFRESH:
                    metrics.sent("refresh")
                    yield sse_frame(broadcaster.event_id(), "refresh", svc.store.snapshot_payload("refresh", source))
                elif item is CLOSED:
                    return
                else:
                    metrics.sent(item.type)
                    yield item.frame
        finally:
            sub.close()

    conn.watch(lambda: sub.shut("client-gone", hook=False))
    response = _stream_response(generate())

    def closed():
        # Also when the body never started (the generator's finally would not run).
        sub.close()
        conn.close()

    response.call_on_close(closed)
    return response


def _stream_response(body) -> Response:
    response = Response(body, status=200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
