"""The live pipeline assembled: files -> catalog -> monitor -> store -> broadcaster.

One instance per worker process. Created inert (no threads, no file access)
so that an app can be built at import time; :meth:`start` runs after
gunicorn's gevent worker has monkey-patched, so every thread is a greenlet.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from helm_monitor.claude.catalog import Catalog
from helm_monitor.claude.conversation import Conversations
from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.cache import StateCache
from helm_monitor.live.monitor import Monitor, Offload
from helm_monitor.live.store import SessionStore
from helm_monitor.live.watcher import Watcher

log = logging.getLogger(__name__)


class LiveService:
    def __init__(self, *, claude_dir: str | os.PathLike, debounce_s: float = 0.5, max_clients: int = 1000,
                 client_queue: int = 256, watcher_mode: str = "auto", cache_dir: str | os.PathLike | None = None):
        self.claude_dir = os.path.abspath(os.fspath(claude_dir))
        self.catalog = Catalog(self.claude_dir)
        self.broadcaster = Broadcaster(queue_size=client_queue, max_clients=max_clients)
        self.store = SessionStore(self.broadcaster)
        self.watcher_mode = watcher_mode
        self.debounce_s = debounce_s
        self.cache_dir = cache_dir
        self.monitor: Monitor | None = None
        self.watcher: Watcher | None = None
        self.offload: Offload = lambda fn: fn()  # the pump's file reading
        self.request_offload: Offload = lambda fn: fn()  # requests' file reading (conversations)
        self.started_at: float | None = None
        self._start_lock = threading.Lock()
        self._conversations = Conversations(16)

    @property
    def started(self) -> bool:
        return self.monitor is not None

    def start(self, offload: Offload | None = None, request_offload: Offload | None = None) -> None:
        with self._start_lock:
            if self.monitor is not None:
                return
            if offload is not None:
                self.offload = offload
            if request_offload is not None:
                self.request_offload = request_offload
            self.started_at = time.monotonic()
            cache = StateCache(self.cache_dir, self.claude_dir) if self.cache_dir else None
            monitor = Monitor(self.catalog, self.store, debounce_s=self.debounce_s, offload=self.offload,
                              state_cache=cache)
            watcher = Watcher(self.claude_dir, monitor.notify, mode=self.watcher_mode, offload=self.request_offload)
            monitor._on_structure_check = watcher.ensure_watches
            self.monitor, self.watcher = monitor, watcher
            if not os.path.isdir(self.claude_dir):
                log.warning("Claude data directory %s does not exist yet; watching for it", self.claude_dir)
            try:
                watcher.start()
            except Exception as exc:
                log.error("file watching could not start: %s", exc)
                watcher.error = str(exc)
            monitor.start()
            log.info("watching %s (%s)", self.claude_dir, watcher.mode)
            self._check_fd_limit()

    def _check_fd_limit(self) -> None:
        try:
            import resource
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ImportError, OSError, ValueError):
            return
        needed = self.broadcaster.max_clients + 64  # listeners, watches, files being read
        if soft != resource.RLIM_INFINITY and soft < needed:
            log.warning("the open-file limit (%d) is below what %d stream clients need (~%d): raise it "
                        "(ulimit -n, or LimitNOFILE= in the unit) or lower the client cap",
                        soft, self.broadcaster.max_clients, needed)

    def stop(self) -> None:
        self.close_streams()
        if self.watcher is not None:
            self.watcher.stop()
        if self.monitor is not None:
            self.monitor.stop()

    def close_streams(self) -> int:
        return self.broadcaster.close_all("shutdown")

    def wait_ready(self, timeout: float) -> bool:
        return self.monitor is not None and self.monitor.ready.wait(timeout)

    def transcript_path(self, session_id: str) -> str | None:
        if self.store.get(session_id) is None:
            return None
        return self.catalog.layout.transcript_path(self.store.get(session_id)["projectDir"], session_id)

    def conversation(self, session_id: str, offset: int, limit: int) -> dict | None:
        path = self.transcript_path(session_id)
        if path is None:
            return None
        conv = self._conversations.get(path)
        try:
            # The lock is taken here, in the request's greenlet, not in the pool's thread.
            with conv.lock:
                return self.request_offload(lambda: conv.page(offset, limit))
        except FileNotFoundError:
            return None

    def health(self) -> dict:
        monitor, watcher = self.monitor, self.watcher
        last = monitor.last_fs_event_at if monitor else None
        return {
            "status": "ok" if (monitor is None or monitor.alive) else "degraded",
            "pid": os.getpid(),
            "claudeDir": self.claude_dir,
            "projectsDir": os.path.isdir(self.catalog.layout.projects),
            "scan": "not-started" if monitor is None else ("complete" if monitor.ready.is_set() else "scanning"),
            "watcher": {
                "mode": watcher.mode if watcher else "stopped",
                "watching": watcher.watching if watcher else [],
                "error": watcher.error if watcher else None,
                # Polling because inotify ran out of watches; inotify is tried again.
                "inotifyExhausted": watcher.exhausted if watcher else False,
                "fallbacks": watcher.fallbacks if watcher else 0,
            },
            "clients": self.broadcaster.clients,
            "sessions": len(self.store),
            "secondsSinceLastEvent": None if last is None else round(time.monotonic() - last, 3),
            "uptimeSeconds": None if self.started_at is None else round(time.monotonic() - self.started_at, 3),
        }
