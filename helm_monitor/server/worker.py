"""gunicorn's gevent worker, with keep-alive connections that neither race browsers nor hold a stop.

gunicorn's async workers wait for every request of a connection, the first one included,
for at most ``keepalive`` seconds, and a stopping worker waits for those waits up to its
graceful timeout. Both ends of that are wrong for a page:

- short (it was 1 s), the server closes connections a browser still counts as usable:
  Chromium keeps a preconnected socket up to 10 s and a used one far longer. On a loaded
  machine it sends a request down a socket the server is just closing, and the stylesheet or
  script fails (``net::ERR_SOCKET_NOT_CONNECTED``, seen in the browser tests);
- long, every stop waits for the idle connections of every open page.

So the wait is long (``gunicorn_conf.keepalive``) and a stop ends it: once the worker is
stopping, a connection that waits for its next request is closed at once, and one that
finishes a request is closed instead of kept.
"""

from __future__ import annotations

import gevent
from gevent import getcurrent
from gunicorn.workers.ggevent import GeventWorker


class _IdleWait:
    """``timeout_ctx()``: gevent's Timeout around the wait for the next request, known to the worker."""

    __slots__ = ("worker", "timeout", "greenlet")

    def __init__(self, worker: "HelmGeventWorker"):
        self.worker = worker
        self.timeout = gevent.Timeout(worker.cfg.keepalive if worker.alive else 0, False)
        self.greenlet = None

    def __enter__(self):
        self.greenlet = getcurrent()
        self.worker.idle[self.greenlet] = self.timeout
        return self.timeout.__enter__()

    def __exit__(self, typ, value, tb):
        self.worker.idle.pop(self.greenlet, None)
        return self.timeout.__exit__(typ, value, tb)


class HelmGeventWorker(GeventWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle: dict = {}  # greenlet -> the Timeout of its wait for the next request

    def timeout_ctx(self):
        return _IdleWait(self)

    def close_idle(self) -> int:
        """End every wait for a next request now (in the hub's loop, as the Timeout itself would)."""
        waits = list(self.idle.items())
        loop = gevent.get_hub().loop
        for greenlet, timeout in waits:
            loop.run_callback(self._end_wait, greenlet, timeout)
        return len(waits)

    def _end_wait(self, greenlet, timeout) -> None:
        # Only if it still waits: a request that came meanwhile is served (and then not kept).
        if self.idle.get(greenlet) is timeout:
            greenlet.throw(timeout)
