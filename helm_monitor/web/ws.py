"""``GET /api/sessions/ws``: the event stream over a WebSocket (SPEC section 12).

The same ``Feed`` as the SSE stream (stream.py) and so the same rules; one JSON text
message per SSE message: its data object with its SSE id first,
``{"id", "type", "sessions", "timestamp", ...}`` (a message without an ``id:`` line
in SSE has no ``id``). ``?lastEventId=`` resumes as SSE's ``Last-Event-ID`` does.

Everything that can refuse happens before the upgrade, as plain JSON answers:
security.py's Host, Origin and token checks (a before_request hook), the handshake's
validity, the client cap. Then this view answers ``101`` on gunicorn's client socket
and serves the connection to its end; what it returns makes gunicorn write nothing
more and close the socket.

Framing is wsproto's (ws_socket.py, imported with the first WebSocket), without
extensions: permessage-deflate would compress every message once per client and keep
a zlib context for each connection.
"""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, request

from helm_monitor.live.broadcaster import ShuttingDown, TooManyClients
from helm_monitor.web.connection import Connection
from helm_monitor.web.errors import json_error
from helm_monitor.web.stream import FULL_RETRY_AFTER_S, Feed, last_event_id, wait_streamable

bp = Blueprint("ws", __name__)

PATH = "/api/sessions/ws"


@bp.route(PATH, websocket=True)
def sessions_ws():
    """Every session's changes over a WebSocket: init (or a replay), then deltas and keepalives."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return json_error(501, f"{PATH} needs the gunicorn worker helm-monitor runs; use /api/sessions/stream")
    key = _handshake_key()
    if isinstance(key, Response):
        return key
    # The framing (wsproto) is imported by the first WebSocket, not at every worker's start.
    from helm_monitor.web.ws_socket import WebSocket
    ws = WebSocket(sock, Connection(request.environ))
    try:
        wait_streamable()
        feed = Feed(None, last_event_id(), on_disconnect=ws.dropped)
    except TooManyClients:
        return json_error(503, "too many stream clients; try again later",
                          headers={"Retry-After": str(FULL_RETRY_AFTER_S)})
    except ShuttingDown:
        return json_error(503, "the server is restarting; try again", headers={"Retry-After": "1"})
    try:
        ws.serve(key, feed)
    finally:
        feed.close()
    return _TakenOver()


@bp.get(PATH)
def needs_upgrade():
    """A plain request (no WebSocket handshake) to the WebSocket route."""
    return json_error(426, f"{PATH} is a WebSocket; the event stream over HTTP is /api/sessions/stream",
                      headers={"Upgrade": "websocket", "Connection": "Upgrade"})


class _TakenOver(Response):
    """The view's answer once the socket carried a WebSocket: nothing may follow it.

    gunicorn's async workers take StopIteration from the application as "close this
    connection": logged at debug level, nothing written, the socket closed.
    """

    def __call__(self, environ, start_response):
        raise StopIteration()


def _handshake_key() -> str | Response:
    """The client's ``Sec-WebSocket-Key`` when this is a handshake to accept (RFC 6455
    4.2.1; the route matched only with ``Upgrade: websocket`` and ``Connection: upgrade``),
    else the error to answer."""
    if request.environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return json_error(400, "a WebSocket handshake is an HTTP/1.1 request")
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return json_error(426, "WebSocket version 13 only", headers={"Sec-WebSocket-Version": "13"})
    key = request.headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        return json_error(400, "the WebSocket handshake needs a valid Sec-WebSocket-Key")
    return key
