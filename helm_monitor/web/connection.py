"""The socket under a streaming response: notice a client leaving, close it at the end.

Under gunicorn the WSGI environ carries the client socket. An idle SSE stream
writes nothing for a keepalive interval, so a client that went away would
only be noticed at the next write; instead a greenlet waits for the socket to
become readable (an SSE client sends nothing after its request, so readable
means EOF or reset) and ends the stream at once. When a stream ends the
connection is shut down, so a keep-alive connection does not hold the worker
until the graceful timeout.
"""

from __future__ import annotations

import socket
from typing import Callable


def _gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


class Connection:
    def __init__(self, environ: dict):
        self.sock = environ.get("gunicorn.socket")
        self._watcher = None

    def watch(self, on_gone: Callable[[], None]) -> None:
        """Call ``on_gone`` when the client closes its side (gevent only)."""
        if self.sock is None or not _gevent_active():
            return
        import gevent
        from gevent.socket import wait_read

        sock = self.sock

        def wait_for_eof():
            try:
                wait_read(sock.fileno())
                data = sock.recv(1, socket.MSG_PEEK)
            except (OSError, ValueError):
                data = b""
            if not data:
                on_gone()
            # Data (a pipelined request) is left for the server to read.

        self._watcher = gevent.spawn(wait_for_eof)

    def stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.kill(block=False)

    def close(self) -> None:
        """Shut the connection down (both directions); the server then drops it.

        The OS socket under gevent's is shut down: gevent's own shutdown()
        cancels a send blocked in the stream's greenlet with EBADF ("closed in
        another greenlet"), which gunicorn logs with a traceback. Shut down
        underneath, that send wakes and fails with EPIPE, which it ignores.
        """
        self.stop_watching()
        if self.sock is None:
            return
        try:
            getattr(self.sock, "_sock", self.sock).shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
