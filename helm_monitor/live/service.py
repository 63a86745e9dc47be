"""The live pipeline assembled: files -> sources -> monitor -> store -> broadcasters.

One instance per worker process. Created inert (no threads, no file access)
so that an app can be built at import time; :meth:`start` runs after
gunicorn's gevent worker has monkey-patched, so every thread is a greenlet.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from helm_monitor.config import default_host_name
from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.cache import StateCaches
from helm_monitor.live.monitor import Monitor, Offload
from helm_monitor.live.scan import default_workers
from helm_monitor.live.sources import build_catalog
from helm_monitor.live.store import SessionStore
from helm_monitor.live.usage import UsageIndex
from helm_monitor.usage import pricing
from helm_monitor.live.watcher import Watcher

CLAUDE = "claude-code"

log = logging.getLogger(__name__)


class LiveService:
    def __init__(self, *, claude_dir: str | os.PathLike | None = None, sources: dict[str, dict] | None = None,
                 host: str | None = None, debounce_s: float = 0.5, max_clients: int = 1000,
                 client_queue: int = 256, watcher_mode: str = "auto", cache_dir: str | os.PathLike | None = None,
                 scan_workers: int | None = None):
        """``sources``: source name -> its options (``root`` and any of its own), as
        ``Config.source_options()`` gives; default: Claude Code over ``claude_dir`` alone."""
        if sources is None:
            sources = {CLAUDE: {"root": os.fspath(claude_dir)}}
        self.source_options = sources
        self.claude_dir = os.path.abspath(sources[CLAUDE]["root"]) if CLAUDE in sources else None
        self.host = host or default_host_name()
        self.catalog = build_catalog(sources, self.host)
        self.broadcaster = Broadcaster(queue_size=client_queue, max_clients=max_clients)
        # /api/claude-sessions/stream: Claude Code sessions only, with ids of its own (SPEC 3).
        claude_only = Broadcaster(queue_size=client_queue, max_clients=max_clients, shares_cap_with=self.broadcaster,
                                  epoch=self.broadcaster.epoch + "c")
        self.store = SessionStore(self.broadcaster, {CLAUDE: claude_only})
        # Usage and cost over time (SPEC 10): fed by the pump, waiting time observed from the store.
        self.usage = UsageIndex(cache_dir=cache_dir)
        self.store.add_listener(self.usage.store_listener)
        self.watcher_mode = watcher_mode
        self.debounce_s = debounce_s
        self.cache_dir = cache_dir
        # The first scan of a big history is shared out over this many processes (live/scan.py).
        self.scan_workers = default_workers() if scan_workers is None else scan_workers
        self.monitor: Monitor | None = None
        self.watcher: Watcher | None = None
        self.offload: Offload = lambda fn: fn()  # the pump's file reading
        self.request_offload: Offload = lambda fn: fn()  # requests' file reading (conversations)
        self.started_at: float | None = None
        self._start_lock = threading.Lock()
        # Parts that run beside the pipeline (the team agent's publisher): each has start(),
        # stop() and health() -> (name, dict); started after the pump, stopped before it.
        self.attached: list = []
        # The full-text index's file (SPEC 11), when an indexer keeps one (web/app.py attaches it).
        self.search_index: str | None = None
        # Set once the monitor's first scan is served (parts may wait on it before they start).
        self.ready = threading.Event()

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
            cache = StateCaches(self.cache_dir, self.catalog) if self.cache_dir else None
            monitor = Monitor(self.catalog, self.store, debounce_s=self.debounce_s, offload=self.offload,
                              state_cache=cache, scan_workers=self.scan_workers, usage=self.usage)
            watcher = Watcher(self.catalog.watches(), monitor.notify, mode=self.watcher_mode,
                              offload=self.request_offload)
            monitor._on_structure_check = watcher.ensure_watches
            self.monitor, self.watcher = monitor, watcher
            for source in self.catalog.sources:
                if not os.path.exists(source.root):
                    log.info("%s: %s does not exist (yet); watching for it", source.name, source.root)
            try:
                watcher.start()
            except Exception as exc:
                log.error("file watching could not start: %s", exc)
                watcher.error = str(exc)
            monitor.start()
            threading.Thread(target=lambda: monitor.ready.wait() and self.ready.set(), name="helm-ready",
                             daemon=True).start()
            for part in self.attached:
                part.start()
            log.info("watching %s (%s)", ", ".join(f"{s.name} {s.root}" for s in self.catalog.sources), watcher.mode)
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
        for part in self.attached:
            try:
                part.stop()
            except Exception:
                log.exception("stopping %r failed", part)
        if self.watcher is not None:
            self.watcher.stop()
        if self.monitor is not None:
            self.monitor.stop()

    def close_streams(self) -> int:
        return sum(b.close_all("shutdown") for b in self.channels)

    def wait_streamable(self, timeout: float) -> bool:
        """Streams open at once: sessions arrive on them as the first scan reads them."""
        return True

    def wait_ready(self, timeout: float) -> bool:
        return self.monitor is not None and self.monitor.ready.wait(timeout)

    @property
    def channels(self) -> list[Broadcaster]:
        """Every broadcaster: all sessions' first, then each source's own."""
        return [self.broadcaster, *self.store.by_source.values()]

    @property
    def clients(self) -> int:
        return sum(b.clients for b in self.channels)

    def conversation(self, key: str, offset: int, limit: int) -> dict | None:
        """A page of a listed session's conversation, or None."""
        if self.store.get(key) is None:
            return None
        return self._page(self.catalog.conversation(key), offset, limit)

    def subagent_conversation(self, key: str, agent_id: str, offset: int, limit: int) -> dict | None:
        """A page of the conversation of a listed session's subagent (its ``agentId``), or None."""
        if self.store.get(key) is None:
            return None
        found = self.catalog.split(key)
        if found is None:
            return None
        source, session_id = found
        return self._page(source.subagent_conversation(session_id, agent_id), offset, limit)

    def _page(self, conv, offset: int, limit: int) -> dict | None:
        if conv is None:
            return None
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
            "projectsDir": self.claude_dir is not None and os.path.isdir(os.path.join(self.claude_dir, "projects")),
            "host": self.host,
            "sources": [{"source": s.name, "root": s.root, "present": os.path.exists(s.root)}
                        for s in self.catalog.sources],
            "scan": "not-started" if monitor is None else ("complete" if monitor.ready.is_set() else "scanning"),
            "watcher": {
                "mode": watcher.mode if watcher else "stopped",
                "watching": watcher.watching if watcher else [],
                "error": watcher.error if watcher else None,
                # Polling because inotify ran out of watches; inotify is tried again.
                "inotifyExhausted": watcher.exhausted if watcher else False,
                "fallbacks": watcher.fallbacks if watcher else 0,
            },
            "clients": self.clients,
            "sessions": len(self.store),
            "secondsSinceLastEvent": None if last is None else round(time.monotonic() - last, 3),
            "uptimeSeconds": None if self.started_at is None else round(time.monotonic() - self.started_at, 3),
            # Models met without any price: their tokens are counted, their cost is shown unpriced.
            "unpricedModels": pricing.unpriced_models(),
            **dict(part.health() for part in self.attached),
        }

    def hosts(self) -> list[dict]:
        """``/api/hosts`` without a shared engine: this host alone (SPEC 3)."""
        sessions = self.store.snapshot()
        # lastSeen: epoch ms of the host's latest sign of life (this process: now).
        return [{"host": self.host, "online": True, "lastSeen": int(time.time() * 1000), "sessions": len(sessions),
                 "sources": sorted({s["source"] for s in sessions})}]

    def feed_status(self) -> dict:
        """Whether the shared engine is reachable: always, without one (SPEC 4)."""
        return {"ok": True, "since": None}
