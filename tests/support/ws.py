"""WebSocket clients for tests of ``/api/sessions/ws``.

``WSClient`` is a real client (websocket-client) that reads JSON messages and notes the
control frames it meets; ``handshake`` sends an upgrade request over a raw socket and
returns whatever answer came (status, headers, body), to check refusals exactly.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websocket

PATH = "/api/sessions/ws"
# Status messages (SPEC 4 v2): skipped unless asked, as tests/support/sse.py does.
STATUSES = ("host-status", "feed-status")


@dataclass
class Message:
    data: dict
    received_at: float = field(default_factory=time.monotonic)

    @property
    def type(self) -> str:
        return self.data.get("type")

    @property
    def id(self) -> str | None:
        return self.data.get("id")

    @property
    def sessions(self) -> list[dict]:
        return self.data.get("sessions", [])

    def session(self, session_id: str) -> dict | None:
        return next((s for s in self.sessions if s.get("id") == session_id), None)


class Closed(Exception):
    """The connection ended: ``code`` is the close frame's code, None when it just dropped."""

    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason
        self.at = time.monotonic()


class WSClient:
    # Every client a test opened; tests close the leftovers after each test.
    opened: "list[WSClient]" = []

    def __init__(self, base_url: str, query: str = "", *, path: str = PATH, rcvbuf: int | None = None,
                 timeout: float = 5.0, **options):
        """``options`` go to websocket.create_connection (header, cookie, origin, host, ...)."""
        url = base_url.replace("http://", "ws://", 1) + path + (f"?{query}" if query else "")
        if rcvbuf:
            options["sockopt"] = [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)]
        self.ws = websocket.create_connection(url, timeout=timeout, **options)
        WSClient.opened.append(self)
        self.pings: list[float] = []

    @property
    def status(self) -> int:
        return self.ws.getstatus()

    def next_message(self, timeout: float = 5.0, *, statuses: bool = False) -> Message:
        """The next text message (host-status and feed-status too only with ``statuses``);
        pings are answered (by websocket-client) and noted."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message before the deadline")
            self.ws.settimeout(remaining)
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError("no message before the deadline") from None
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
                raise Closed(None, str(exc)) from None
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message = Message(json.loads(frame.data))
                if statuses or message.type not in STATUSES:
                    return message
            if opcode == websocket.ABNF.OPCODE_PING:
                self.pings.append(time.monotonic())
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
                raise Closed(code, frame.data[2:].decode("utf-8", "replace"))

    def wait_for(self, predicate, timeout: float = 5.0, *, skip_keepalive: bool = True,
                 statuses: bool = False) -> Message:
        """The first message satisfying ``predicate`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = self.next_message(remaining, statuses=statuses)
            except TimeoutError:
                raise AssertionError(f"no matching message within {timeout}s; saw {seen}") from None
            seen.append(message.type)
            if skip_keepalive and message.type == "keepalive":
                continue
            if predicate(message):
                return message

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        try:
            self.ws.shutdown()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def handshake(base_url: str, query: str = "", *, path: str = PATH, headers: dict | None = None,
              timeout: float = 5.0) -> Answer:
    """Send a valid WebSocket upgrade request (plus ``headers``, which may replace its own)
    over a raw socket and read the answer: the head, and the body of a non-101 answer."""
    parts = urlsplit(base_url)
    hdrs = {"Host": f"{parts.hostname}:{parts.port}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13"}
    hdrs.update(headers or {})
    target = path + (f"?{query}" if query else "")
    request = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    deadline = time.monotonic() + timeout
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall((request + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += _recv(sock, deadline)
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        answer_headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            answer_headers[k.strip().lower()] = v.strip()
        if status != 101:
            length = int(answer_headers.get("content-length", "0"))
            while len(body) < length:
                body += _recv(sock, deadline)
        return Answer(status, answer_headers, body)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no answer before the deadline")
    sock.settimeout(remaining)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("connection closed before the answer was complete")
    return data


# -- raw frames -----------------------------------------------------------------

OPCODES = {0x0, 0x1, 0x2, 0x8, 0x9, 0xA}


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Server frames (unmasked) from the start of ``data``: [(opcode, payload)], and the
    bytes from the first one that is not a whole, valid frame on."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        if b0 & 0x70 or (b0 & 0x0F) not in OPCODES or b1 & 0x80:
            break
        length, head = b1 & 0x7F, 2
        if length == 126:
            if pos + 4 > len(data):
                break
            length, head = struct.unpack("!H", data[pos + 2:pos + 4])[0], 4
        elif length == 127:
            if pos + 10 > len(data):
                break
            length, head = struct.unpack("!Q", data[pos + 2:pos + 10])[0], 10
        if pos + head + length > len(data):
            break
        frames.append((b0 & 0x0F, data[pos + head:pos + head + length]))
        pos += head + length
    return frames, data[pos:]


def client_close_frame(code: int = 1000) -> bytes:
    """A masked close frame, as a client sends it."""
    mask = os.urandom(4)
    payload = struct.pack("!H", code)
    return bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_session(base_url: str, query: str = "", *, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Over a raw socket: the handshake, the first message, the client's close frame, and
    everything the server sends until it closes. Returns (response head, bytes after it)."""
    parts = urlsplit(base_url)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {PATH}{'?' + query if query else ''} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
    deadline = time.monotonic() + timeout
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += _recv(sock, deadline)
        head, rest = buf.split(b"\r\n\r\n", 1)
        while not parse_frames(rest)[0]:
            rest += _recv(sock, deadline)
        sock.sendall(client_close_frame())
        while True:
            try:
                rest += _recv(sock, deadline)
            except ConnectionError:
                return head, rest


# -- the server's end of a connection ---------------------------------------------

TCP_ESTABLISHED = "01"


def tcp_state(local_port: int, remote_port: int) -> str | None:
    """The kernel's state of the TCP socket ``local_port`` -> ``remote_port`` on this machine
    (hex, as /proc/net/tcp shows it: 01 established, 04 fin-wait-1, ...), None if there is none."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                return state
    return None
