"""A Server-Sent Events client over a raw socket, as a browser's EventSource reads.

A raw socket (not a library) so that tests can stop reading, shrink the
receive buffer, and see exactly what the server framed.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Status messages (SPEC 4 v2: no id): the readers skip them unless asked, so that a test
# reads the session events it is about.
STATUSES = ("host-status", "feed-status")


@dataclass
class Event:
    type: str
    data: dict | None
    id: str | None
    raw: str
    received_at: float = field(default_factory=time.monotonic)

    @property
    def sessions(self) -> list[dict]:
        return (self.data or {}).get("sessions", [])

    def session(self, session_id: str) -> dict | None:
        return next((s for s in self.sessions if s.get("id") == session_id), None)


class SSEClient:
    # Every client a test opened; tests/conftest.py closes the leftovers after each test.
    opened: "list[SSEClient]" = []

    def __init__(self, url: str, *, headers: dict | None = None, rcvbuf: int | None = None,
                 connect_timeout: float = 5.0, path: str = "/api/claude-sessions/stream"):
        parts = urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        SSEClient.opened.append(self)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(connect_timeout)
        self.sock.connect((self.host, self.port))
        hdrs = {"Host": f"{self.host}:{self.port}", "Accept": "text/event-stream",
                "Cache-Control": "no-cache", "Connection": "keep-alive"}
        hdrs.update(headers or {})
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(request.encode())
        self._buf = b""
        self._body = b""
        self.status, self.headers = self._read_head(connect_timeout)
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.retry: int | None = None
        self.closed = False

    # -- HTTP ---------------------------------------------------------------
    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        return data

    def _read_head(self, timeout: float):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            data = self._recv(deadline)
            if not data:
                raise ConnectionError("connection closed before the response head")
            self._buf += data
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def body_so_far(self) -> bytes:
        return self._buf

    def _fill(self, deadline: float) -> bool:
        """Move more of the body into ``_body``; False at end of stream."""
        if not self.chunked:
            data = self._buf or self._recv(deadline)
            self._buf = b""
            if not data:
                return False
            self._body += data
            return True
        while True:
            if b"\r\n" in self._buf:
                size_line, rest = self._buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self.closed = True
                    return False
                if len(rest) >= size + 2:
                    self._body += rest[:size]
                    self._buf = rest[size + 2:]
                    return True
            data = self._recv(deadline)
            if not data:
                return False
            self._buf += data

    # -- SSE ----------------------------------------------------------------
    def next_event(self, timeout: float = 5.0, *, statuses: bool = False) -> Event:
        """The next message; host-status and feed-status too only with ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self._body:
                block, self._body = self._body.split(b"\n\n", 1)
                event = self._parse(block.decode("utf-8"))
                if event is not None and (statuses or event.type not in STATUSES):
                    return event
            if not self._fill(deadline):
                raise ConnectionError("stream ended")

    def _parse(self, block: str) -> Event | None:
        etype, data_lines, eid = "message", [], None
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                etype = value
            elif name == "data":
                data_lines.append(value)
            elif name == "id":
                eid = value
            elif name == "retry":
                self.retry = int(value)
        if not data_lines:
            return None
        text = "\n".join(data_lines)
        return Event(etype, json.loads(text), eid, block)

    def wait_for(self, predicate, timeout: float = 5.0, *, skip_keepalive: bool = True,
                 statuses: bool = False) -> Event:
        """The first event satisfying ``predicate`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout}s; saw {[e.type for e in seen]}")
            try:
                event = self.next_event(remaining, statuses=statuses)
            except TimeoutError:
                raise AssertionError(f"no matching event within {timeout}s; saw {[e.type for e in seen]}") from None
            seen.append(event)
            if skip_keepalive and event.type == "keepalive":
                continue
            if predicate(event):
                return event

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
