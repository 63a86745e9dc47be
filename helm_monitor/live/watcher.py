"""A watchdog observer on the directories the sources name, filtered to what matters.

Each source names its watches (for Claude Code: the data directory itself, not
recursive, for ``projects/`` and ``sessions/`` appearing or vanishing;
``projects/``, recursive; ``sessions/``, not recursive). A watched directory
that does not exist yet is watched once it appears: its parent's watch (or
the periodic check) notices. Only create / modify / delete / move events are
asked for at ``schedule()``: reads (``opened``, ``closed_no_write``) would make
every read of a transcript an event, and directory-modified events (one per
write to a file in it) would defeat coalescing.

Where inotify is unavailable or out of watches, it falls back to polling and
says so (``mode``, ``error``). Watches can also run out after start: watchdog
adds a watch for every new directory below ``projects/`` and swallows a
failure, leaving that directory unwatched. The inotify observer here reports
such a failure, and the watcher then polls the whole tree. While polling
because watches ran out, it tries inotify again every ``RECOVER_INTERVAL_S``
and returns to it once every watch can be placed.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
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

from helm_monitor.sources.base import Watch

log = logging.getLogger(__name__)

EVENT_TYPES = [FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent,
               DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
POLL_INTERVAL_S = 1.0
# While polling because inotify ran out of watches: how often to try it again.
RECOVER_INTERVAL_S = 30.0
_EXHAUSTED = (errno.ENOSPC, errno.EMFILE)  # out of watches, out of inotify instances

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


def _inotify_observer(on_watch_failed: Callable[[str, OSError], None]) -> BaseObserver:
    """watchdog's inotify observer, reporting the watches it fails to add after start.

    watchdog (6.x, pinned) adds a watch for each directory created below a
    recursive watch in ``Inotify._add_watch`` and ignores an OSError there.
    The emitter wraps that method of its own ``Inotify`` instance.
    """
    from watchdog.observers.inotify import InotifyEmitter

    class CheckedEmitter(InotifyEmitter):
        def on_thread_start(self) -> None:
            super().on_thread_start()  # the first watches: a failure raises from schedule()
            inotify = getattr(self._inotify, "_inotify", None)
            add = getattr(inotify, "_add_watch", None)
            if add is None:
                log.warning("this watchdog version hides its inotify watches: a directory that cannot be "
                            "watched once the watch limit is reached will go unnoticed")
                return

            def checked_add_watch(path, mask):
                try:
                    return add(path, mask)
                except OSError as exc:
                    on_watch_failed(os.fsdecode(path), exc)
                    raise

            inotify._add_watch = checked_add_watch

    return BaseObserver(CheckedEmitter)


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
        # Not only directory events: projects/ replaced by a symbolic link arrives as a file event.
        if src in self._structural or (dest and os.fsdecode(dest) in self._structural):
            self._on_structure()


class Watcher:
    def __init__(self, watches: list[Watch], notify: Notify, *, mode: str = "auto",
                 offload: Callable[[Callable], object] | None = None):
        # Sources name the same directory once each at most; a directory named twice is watched
        # once, recursively if either asks so.
        wanted: dict[str, bool] = {}
        for w in watches:
            path = os.path.abspath(w.path)
            wanted[path] = wanted.get(path, False) or w.recursive
        self._wanted = list(wanted.items())
        self._notify = notify
        self._offload = offload or (lambda fn: fn())
        self.requested_mode = mode
        self.mode = "stopped"  # inotify | polling | stopped
        self.error: str | None = None
        self._observer = None
        self._watches: dict[str, tuple] = {}  # path -> (watch, inode)
        self._lock = threading.RLock()
        # A watched directory appearing, vanishing or being replaced changes what is watched.
        self._handler = _Handler(notify, self.ensure_watches, set(wanted))
        # Polling because inotify ran out (not because it was asked for, or is missing):
        # inotify is tried again from time to time.
        self.exhausted = False
        self._next_recovery = 0.0
        self.fallbacks = 0  # times watching fell back to polling after running out

    def start(self) -> None:
        with self._lock:
            if self.requested_mode == "polling":
                self._use_polling("polling requested")
            else:
                try:
                    self._observer = _inotify_observer(self._watch_failed)
                    self.mode = "inotify"
                except Exception as exc:  # not Linux, or no inotify
                    if self.requested_mode == "inotify":
                        raise
                    self._use_polling(f"inotify unavailable: {exc}")
            self._observer.daemon = True
            self._observer.start()
            # The monitor's first scan comes after these watches: nothing to ask for.
            self.ensure_watches(scan=False)

    def _use_polling(self, why: str, exhausted: bool = False) -> None:
        if self.mode == "inotify":
            log.warning("file watching falls back to polling every %.1fs: %s%s", POLL_INTERVAL_S, why,
                        f"; inotify is tried again every {RECOVER_INTERVAL_S:g}s" if exhausted else "")
        elif why != "polling requested":
            log.warning("file watching uses polling every %.1fs: %s", POLL_INTERVAL_S, why)
        self.error = None if why == "polling requested" else why
        self._observer = _polling_observer(self._offload)
        self.mode = "polling"
        if exhausted:
            self.exhausted = True
            self.fallbacks += 1
            self._next_recovery = time.monotonic() + RECOVER_INTERVAL_S

    def _watch_failed(self, path: str, exc: OSError) -> None:
        """From the inotify thread: a directory created after start could not be watched."""
        if exc.errno not in _EXHAUSTED:
            return  # gone again before it was watched, or not ours to read: nothing is missed
        why = f"{exc.strerror or exc} (fs.inotify.max_user_watches) while watching new directory {path}"
        # The observer cannot be stopped from its own thread.
        threading.Thread(target=self._fall_back, args=(why,), name="helm-watch-fallback", daemon=True).start()

    def _fall_back(self, why: str) -> None:
        with self._lock:
            if self.mode != "inotify":
                return
            self._switch(None, why)

    def _switch(self, new_observer, why: str | None, scan: bool = True) -> None:
        """Replace the observer: polling (``new_observer`` None) after ``why``, or the given inotify one.

        The new observer runs before the old one stops, and everything is
        scanned afterwards: a change in between is found either way.
        """
        old = self._observer
        if new_observer is None:
            self._use_polling(why, exhausted=True)
            self._watches.clear()
            self._observer.daemon = True
            self._observer.start()
            self.ensure_watches(scan)
        else:
            self._observer = new_observer
            self.mode = "inotify"
            self.exhausted = False
            self.error = None
        try:
            old.stop()
        except Exception:
            pass

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
        periodically (cheap: a stat per watch) to catch a data directory itself appearing;
        while polling because watches ran out, it also tries inotify again.
        """
        with self._lock:
            if self._observer is None:
                return
            if self.exhausted and time.monotonic() >= self._next_recovery:
                self._try_inotify()
                return
            for path, recursive in self._wanted:
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
            self._switch(None, f"{exc.strerror or exc} while watching {path}", scan)
            return False
        self._watches[path] = (watch, inode)
        return True

    def _try_inotify(self) -> None:
        """Polling because watches ran out: go back to inotify if every watch can be placed now."""
        self._next_recovery = time.monotonic() + RECOVER_INTERVAL_S
        try:
            observer = _inotify_observer(self._watch_failed)
            observer.daemon = True
            observer.start()
        except Exception as exc:
            log.debug("inotify still unavailable: %s", exc)
            return
        watches = {}
        try:
            for path, recursive in self._wanted:
                if os.path.isdir(path):
                    inode = os.stat(path).st_ino
                    watches[path] = (observer.schedule(self._handler, path, recursive=recursive,
                                                       event_filter=EVENT_TYPES), inode)
        except OSError as exc:
            log.debug("inotify watches still exhausted: %s", exc)
            observer.stop()
            return
        log.warning("inotify watches are available again: file watching is back to inotify")
        self._switch(observer, None)
        self._watches = watches
        for path in watches:  # what changed while the observers changed hands
            self._notify(path, True)

    @property
    def watching(self) -> list[str]:
        return sorted(self._watches)
