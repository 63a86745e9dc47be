"""The indexer: a process of its own that follows every source and keeps search.db up to date.

``python -m helm_monitor.search.indexer --cache-dir DIR --host NAME --sources JSON``

Extraction holds the GIL (JSON, masking, tokenizing), and a cold build over a big history
takes tens of seconds of CPU: in the server's worker it would stall every stream. Here it
runs apart, at a lower priority, with a pipeline of its own (sources, watcher and monitor,
as the server's; its parse state saved in ``DIR/search-state``): a session changed on the
store is indexed from where it was left, newest sessions first.

The server starts it (helm_monitor.search.process) with a pipe on stdin: when the pipe
closes, its parent is gone, and it stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time

from helm_monitor.live.broadcaster import Broadcaster
from helm_monitor.live.cache import StateCaches
from helm_monitor.live.monitor import Monitor
from helm_monitor.live.sources import build_catalog
from helm_monitor.live.store import SessionStore
from helm_monitor.live.watcher import Watcher
from helm_monitor.search import db
from helm_monitor.search.writer import IndexWriter
from helm_monitor.sources.base import WarnOnce

log = logging.getLogger("helm_monitor.search")

# Changes are gathered this long before they are indexed: a live session makes one batch.
BATCH_WAIT_S = 0.3
# The index could not be written (disk full, read-only): what is left is tried again this much later.
WRITE_RETRY_S = 5.0
OPEN_RETRY_S = 30.0
PROGRESS_EVERY_S = 2.0


def _signature(session: dict) -> str:
    return f"{session.get('messageCount')}|{session.get('sizeBytes')}|{session.get('updatedAt')}"


class Follower:
    """Takes the store's changes and indexes the sessions they name, one at a time."""

    def __init__(self, catalog, store: SessionStore, writer: IndexWriter):
        self.catalog = catalog
        self.store = store
        self.writer = writer
        self._cond = threading.Condition()
        self._dirty: dict[str, dict | None] = {}
        self._stopping = False
        self.scanned = threading.Event()  # the monitor's first scan is done: a deletion is real
        self.documents = 0
        self._warn = WarnOnce(log)
        self._blocked = False  # the last write failed: the rest of the batch waits

    # ------------------------------------------------------------ from the store (the pump's thread)
    def changed(self, kind: str, sessions: list[dict]) -> None:
        with self._cond:
            if kind == "session-deleted":
                for s in sessions:
                    self._dirty[s["key"]] = None
            else:
                for s in sessions:
                    self._dirty[s["key"]] = s
                if kind == "refresh":
                    listed = {s["key"] for s in sessions}
                    for key in self.writer.known_keys() - listed:
                        self._dirty[key] = None
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    # ------------------------------------------------------------ the loop
    def run(self) -> None:
        building = True
        last_progress = 0.0
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    if building and self.scanned.is_set() or self.writer.vanished():
                        break
                    self._cond.wait(0.5)
                if self._stopping:
                    return
            if self.writer.vanished():
                log.warning("the search index %s was removed; building it again", self.writer.path)
                self._start_over()
                building = True
                continue
            time.sleep(BATCH_WAIT_S)
            with self._cond:
                batch, self._dirty = self._dirty, {}
            if self.scanned.is_set() and building and not batch:
                self._forget_vanished()
                self.writer.optimize()
                self.writer.set_state("ready", **self.writer.counts())
                building = False
                log.info("search index ready: %d sessions, %d documents", len(self.writer.known_keys()), self.documents)
                continue
            # Newest first: what was just written is what people look for.
            order = sorted(batch.items(), key=lambda kv: (kv[1] or {}).get("updatedAt") or "", reverse=True)
            for n, (key, session) in enumerate(order):
                if self._stopping:
                    return
                self._one(key, session)
                if self._blocked:
                    with self._cond:
                        for k, s in order[n:]:
                            self._dirty.setdefault(k, s)
                        self._cond.wait(WRITE_RETRY_S)
                    self._blocked = False
                    break
                now = time.monotonic()
                if building and now - last_progress > PROGRESS_EVERY_S:
                    last_progress = now
                    self.writer.set_state("building", **self.writer.counts())
            if self.writer.needs_rebuild():
                log.info("the search index holds too many dropped documents; building it again")
                self._start_over()
                building = True
            elif not building:
                self.writer.set_state("ready", **self.writer.counts())  # what /healthz shows

    def _start_over(self) -> None:
        """An empty index, and every session the store holds marked to be indexed into it."""
        self.writer = self.writer.rebuild()
        with self._cond:
            for s in self.store.snapshot():
                self._dirty[s["key"]] = s

    def _one(self, key: str, session: dict | None) -> None:
        try:
            if session is None:
                self.writer.drop(key)
                return
            seen = _signature(session)
            if self.writer.current(key, seen):
                return
            conversation = self.catalog.conversation(key)
            if conversation is None:
                return
            self.documents += self.writer.index(key, session, conversation, seen)
            self._warn.clear("write")
        except FileNotFoundError:
            pass  # gone meanwhile: the store says so next
        except sqlite3.OperationalError as exc:  # disk full, read-only: said once, tried again
            self._warn.warn("write", "the search index %s cannot be written (%s); trying again every %.0f s",
                            self.writer.path, exc, WRITE_RETRY_S)
            self._blocked = True
            return
        except Exception:
            log.exception("indexing %s failed; it is tried again at its next change", key)

    def _forget_vanished(self) -> None:
        listed = {s["key"] for s in self.store.snapshot()}
        for key in self.writer.known_keys() - listed:
            self._one(key, None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helm_monitor.search.indexer")
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--sources", required=True, help="JSON: source name -> its options")
    ap.add_argument("--watcher", default="auto")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s [indexer %(process)d] %(levelname)s %(name)s: %(message)s")
    try:
        os.nice(10)  # the server's streams come first
    except OSError:
        pass
    stop = threading.Event()

    def stop_now(*_):
        stop.set()

    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)

    def parent_gone():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=parent_gone, name="parent-pipe", daemon=True).start()
    warned = False
    while True:
        try:
            writer = IndexWriter(db.path_in(args.cache_dir))
            break
        except (OSError, sqlite3.Error) as exc:  # read-only or full: said once, tried again
            if not warned:
                log.warning("the search index cannot be opened in %s (%s); trying again every %.0f s",
                            args.cache_dir, exc, OPEN_RETRY_S)
                warned = True
            if stop.wait(OPEN_RETRY_S):
                return 0
    catalog = build_catalog(json.loads(args.sources), args.host)
    store = SessionStore(Broadcaster(queue_size=2, max_clients=1))
    follower = Follower(catalog, store, writer)
    store.add_listener(follower.changed)
    monitor = Monitor(catalog, store, debounce_s=1.0, scan_workers=1,
                      state_cache=StateCaches(os.path.join(args.cache_dir, "search-state"), catalog))
    watcher = Watcher(catalog.watches(), monitor.notify, mode=args.watcher)
    monitor._on_structure_check = watcher.ensure_watches
    try:
        watcher.start()
    except Exception as exc:
        log.error("file watching could not start: %s; the index follows nothing new", exc)
    monitor.start()

    def mark_scanned():
        monitor.ready.wait()
        follower.scanned.set()
        with follower._cond:
            follower._cond.notify()

    threading.Thread(target=mark_scanned, name="scanned", daemon=True).start()
    runner = threading.Thread(target=follower.run, name="indexer", daemon=True)
    runner.start()
    while not stop.wait(1.0):
        if not runner.is_alive():
            log.error("the indexing loop ended; stopping")
            break
    follower.stop()
    runner.join(5)
    watcher.stop()
    monitor.stop()
    follower.writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
