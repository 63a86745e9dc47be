"""A watchdog observer on the Claude data directory, filtered to what matters.

Three watches: the data directory itself (not recursive: ``projects/`` and
``sessions/`` appearing or vanishing), ``projects/`` (recursive) and
``sessions/`` (not recursive). Only create / modify / delete / move events are
asked for at ``schedule()``: reads (``opened``, ``closed_no_write``) would make
every read of a transcript an event, and directory-modified events (one per
write to a file in it) would defeat coalescing.

Where inotify is unavailable or out of watches, it falls back to polling and
says so (``mode``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingEmitter

log = logging.getLogger(__name__)

EVENT_TYPES = [FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent,
               DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
POLL_INTERVAL_S = 1.0

Notify = Callable[[str, "bool | None"], None]


def _polling_observer(offload: Callable[[Callable], object]) -> BaseObserver:
    """watchdog's polling observer, its directory walks run through ``offload``.

    A walk of a big history stats every file; under gevent that would hold the
    event loop for a good part of every interval.
    """

    class OffloadedPollingEmitter(PollingEmitter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            take = self._take_snapshot
            self._take_snapshot = lambda: offload(take)

    return BaseObserver(OffloadedPollingEmitter, timeout=POLL_INTERVAL_S)


class _Handler(FileSystemEventHandler):
    def __init__(self, notify: Notify, on_structure: Callable[[], None], structural: set[str]):
        self._notify = notify
        self._on_structure = on_structure
        self._structural = structural

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        self._notify(src, event.is_directory)
        dest = getattr(event, "dest_path", None)
        if dest:
            self._notify(os.fsdecode(dest), event.is_directory)
        if event.is_directory and (src in self._structural or (dest and os.fsdecode(dest) in self._structural)):
            self._on_structure()


class Watcher:
    def __init__(self, root: str, notify: Notify, *, mode: str = "auto",
                 offload: Callable[[Callable], object] | None = None):
        self.root = os.path.abspath(root)
        self.projects = os.path.join(self.root, "projects")
        self.registry = os.path.join(self.root, "sessions")
        self._notify = notify
        self._offload = offload or (lambda fn: fn())
        self.requested_mode = mode
        self.mode = "stopped"  # inotify | polling | stopped
        self.error: str | None = None
        self._observer = None
        self._watches: dict[str, tuple] = {}  # path -> (watch, inode)
        self._lock = threading.RLock()
        self._handler = _Handler(notify, self.ensure_watches, {self.root, self.projects, self.registry})

    def start(self) -> None:
        with self._lock:
            if self.requested_mode == "polling":
                self._use_polling("polling requested")
            else:
                try:
                    from watchdog.observers.inotify import InotifyObserver
                    self._observer = InotifyObserver()
                    self.mode = "inotify"
                except Exception as exc:  # not Linux, or no inotify
                    if self.requested_mode == "inotify":
                        raise
                    self._use_polling(f"inotify unavailable: {exc}")
            self._observer.daemon = True
            self._observer.start()
            # The monitor's first scan comes after these watches: nothing to ask for.
            self.ensure_watches(scan=False)

    def _use_polling(self, why: str) -> None:
        if self.mode == "inotify":
            log.warning("file watching falls back to polling every %.1fs: %s", POLL_INTERVAL_S, why)
        elif why != "polling requested":
            log.warning("file watching uses polling every %.1fs: %s", POLL_INTERVAL_S, why)
        self.error = None if why == "polling requested" else why
        self._observer = _polling_observer(self._offload)
        self.mode = "polling"

    def stop(self) -> None:
        with self._lock:
            obs, self._observer = self._observer, None
            self._watches.clear()
            self.mode = "stopped"
        if obs is not None:
            obs.stop()
            try:
                obs.join(2)
            except RuntimeError:
                pass

    def ensure_watches(self, scan: bool = True) -> None:
        """Watch what exists now; drop watches whose directory went or was replaced.

        Called at start, when a top-level directory appears or vanishes, and
        periodically (cheap: three stats) to catch ``~/.claude`` itself appearing.
        """
        with self._lock:
            if self._observer is None:
                return
            for path, recursive in ((self.root, False), (self.projects, True), (self.registry, False)):
                try:
                    inode = os.stat(path).st_ino if os.path.isdir(path) else None
                except OSError:
                    inode = None
                current = self._watches.get(path)
                if current is not None and current[1] != inode:
                    try:
                        self._observer.unschedule(current[0])
                    except (KeyError, ValueError, OSError):
                        pass
                    del self._watches[path]
                    current = None
                if current is None and inode is not None:
                    if not self._schedule(path, recursive, inode, scan):
                        return  # switched to polling; that call scheduled everything
                    if scan:
                        # Anything created before the watch existed is found by a scan.
                        self._notify(path, True)

    def _schedule(self, path: str, recursive: bool, inode: int, scan: bool = True) -> bool:
        try:
            watch = self._observer.schedule(self._handler, path, recursive=recursive, event_filter=EVENT_TYPES)
        except OSError as exc:
            if self.mode != "inotify" or self.requested_mode == "inotify":
                log.error("cannot watch %s: %s", path, exc)
                self.error = f"cannot watch {path}: {exc}"
                return True
            # Out of inotify watches or instances: poll everything instead.
            old = self._observer
            self._use_polling(f"{exc.strerror or exc} while watching {path}")
            self._watches.clear()
            self._observer.daemon = True
            self._observer.start()
            try:
                old.stop()
            except Exception:
                pass
            self.ensure_watches(scan)
            return False
        self._watches[path] = (watch, inode)
        return True

    @property
    def watching(self) -> list[str]:
        return sorted(self._watches)
