"""One WebSocket connection of ``GET /api/sessions/ws`` (ws.py), framed by wsproto.

Apart from ws.py so that wsproto is imported with the first WebSocket, not at every
worker's start (where the first scan wants both cores). Two greenlets share the socket:
the view's writes the messages and pings; a reader answers pings and the closing
handshake and notices at once a client that leaves. Every write is whole (``sendall``:
a plain ``send`` may take part of a large frame) and one at a time.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
from wsproto.connection import Connection as Framing
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, generate_accept_token

from helm_monitor.web.connection import Connection
from helm_monitor.web.stream import Feed

log = logging.getLogger(__name__)

# How long the closing handshake may take before the socket is shut anyway.
CLOSE_WAIT_S = 1.0
RECV_BYTES = 4096
# Close codes (RFC 6455 7.4.1).
GOING_AWAY = CloseReason.GOING_AWAY  # the worker stops: come back (to the next one)
NO_PONG = CloseReason.POLICY_VIOLATION  # a ping went unanswered for a whole keepalive interval


_memo: tuple[bytes, str] = (b"", "")


def message_text(frame: bytes) -> str:
    """The WebSocket message of one SSE frame: its JSON data, with the frame's id first.

    The last conversion is kept: every client converts the same shared frame in turn.
    """
    global _memo
    seen, text = _memo
    if seen is frame:
        return text
    event_id, data = None, []
    for line in frame.split(b"\n"):
        if line.startswith(b"data: "):
            data.append(line[6:])
        elif line.startswith(b"id: "):
            event_id = line[4:].decode()
    body = b"\n".join(data)
    if event_id is not None and body.startswith(b"{") and body[1:].lstrip()[:1] not in (b"}", b""):
        body = b'{"id":' + orjson.dumps(event_id) + b"," + body[1:]
    text = body.decode()
    _memo = (frame, text)
    return text


class WebSocket:
    """The server end of one WebSocket on gunicorn's client socket."""

    def __init__(self, sock, conn: Connection):
        self.sock = sock
        self.conn = conn
        self._framing = Framing(ConnectionType.SERVER)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._reader_done = threading.Event()
        self._ping_unanswered = False
        self._shut_timer: threading.Timer | bool | None = None
        self._timer_lock = threading.Lock()
        self._deadline: float | None = None

    def serve(self, key: str, feed: Feed) -> None:
        """Upgrade, then send the feed's messages until it ends; close as its end says."""
        try:
            self.sock.sendall(_switching_protocols(key))
            self._reader = threading.Thread(target=self._read, args=(feed.client_gone,),
                                            name="helm-ws-reader", daemon=True)
            self._reader.start()
            for _, frame in feed.opening():
                self._send(TextMessage(data=message_text(frame)))
            for kind, frame in feed.live():
                if kind == "keepalive":
                    if self._ping_unanswered:
                        self._close(NO_PONG, "no pong")
                        return
                    self._ping_unanswered = True
                    self._send(Ping())
                self._send(TextMessage(data=message_text(frame)))
            if feed.close_reason == "shutdown":
                self._close(GOING_AWAY, "server stopping")
            # "slow": the socket is shut already; "client-gone": nobody to tell.
        except (OSError, LocalProtocolError):
            pass  # the client went away, or was cut off
        except Exception:
            log.exception("WebSocket stream failed")
        finally:
            self._finish()

    def dropped(self, reason: str) -> None:
        """The broadcaster ended this client. A slow one is cut off at once: it reads
        nothing, so a closing frame would wait behind its backlog. On shutdown the loop
        sends the closing frame; the socket is shut if that cannot happen in time."""
        if reason == "shutdown":
            self._shut_in(CLOSE_WAIT_S)
        else:
            self.conn.close()

    # -- the socket ---------------------------------------------------------

    def _send(self, event: Event) -> None:
        with self._lock:
            self.sock.sendall(self._framing.send(event))

    def _read(self, on_gone) -> None:
        """Answer pings and the closing handshake; whatever ends the reading ends the stream."""
        try:
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    return
                self._framing.receive_data(data)
                for event in self._framing.events():
                    if isinstance(event, Ping):
                        self._send(event.response())
                    elif isinstance(event, Pong):
                        self._ping_unanswered = False
                    elif isinstance(event, CloseConnection):
                        if self._framing.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                            self._send(event.response())
                        return
                    # A client's own messages mean nothing here; wsproto keeps none of them.
        except (OSError, LocalProtocolError):
            pass  # reset, shut down, or closed
        except Exception:
            log.exception("WebSocket reader failed")
        finally:
            self._reader_done.set()
            on_gone()

    def _close(self, code: int, reason: str) -> None:
        """Send the closing frame and wait for the client's; never longer than CLOSE_WAIT_S."""
        self._shut_in(CLOSE_WAIT_S)  # a client that reads nothing cannot hold the closing
        try:
            self._send(CloseConnection(code=code, reason=reason))
        except (OSError, LocalProtocolError):
            return
        self._reader_done.wait(max(0.0, (self._deadline or 0.0) - time.monotonic()))

    def _shut_in(self, seconds: float) -> None:
        """Shut the socket in ``seconds`` unless the stream ended by then (the earliest call counts)."""
        with self._timer_lock:
            if self._shut_timer is not None:  # armed, or the stream is over
                return
            self._deadline = time.monotonic() + seconds
            timer = self._shut_timer = threading.Timer(seconds, self.conn.close)
            timer.daemon = True
        timer.start()

    def _finish(self) -> None:
        with self._timer_lock:
            timer, self._shut_timer = self._shut_timer, False  # no timer after this
        if timer:
            timer.cancel()
        self.conn.close()  # the reader sees the end; gunicorn closes the socket next
        if self._reader is not None:
            self._reader.join(CLOSE_WAIT_S)


def _switching_protocols(key: str) -> bytes:
    accept = generate_accept_token(key.encode("ascii")).decode("ascii")
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode("ascii")
