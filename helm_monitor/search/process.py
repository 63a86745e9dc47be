"""The server's side of the indexer: start it once the first scan is served, restart it if it dies.

A part attached to the LiveService (start, stop, health). The child gets a pipe on its
stdin and stops when that closes, so a killed server leaves no indexer behind.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

from helm_monitor.search import db

log = logging.getLogger(__name__)

RESTART_FIRST_S = 2.0
RESTART_MAX_S = 60.0
STOP_WAIT_S = 5.0


class SearchIndexer:
    def __init__(self, *, cache_dir, host: str, sources: dict[str, dict], ready: threading.Event | None = None,
                 watcher: str = "auto", log_level: str = "info"):
        self.cache_dir = os.fspath(cache_dir)
        self.path = db.path_in(self.cache_dir)
        self._argv = [sys.executable, "-m", "helm_monitor.search.indexer", "--cache-dir", self.cache_dir,
                      "--host", host, "--sources", json.dumps(sources), "--watcher", watcher,
                      "--log-level", log_level]
        self.ready = ready  # the server's first scan is served: only then does the indexer start
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="helm-search-indexer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.ready is not None:
            while not self.ready.wait(0.5):
                if self._stopping.is_set():
                    return
        delay = RESTART_FIRST_S
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, close_fds=True)
            except OSError as exc:
                log.error("the search indexer could not start: %s", exc)
            else:
                code = self._proc.wait()
                if self._stopping.is_set():
                    return
                log.warning("the search indexer exited (status %s); starting it again in %.0f s", code, delay)
                self.restarts += 1
            if time.monotonic() - began > RESTART_MAX_S:
                delay = RESTART_FIRST_S  # it ran a while: a new failure starts the backoff over
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_S)

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.close()
            proc.terminate()
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_WAIT_S)
        except OSError:
            pass

    def health(self) -> tuple[str, dict]:
        proc = self._proc
        state = {"running": proc is not None and proc.poll() is None, "pid": proc.pid if proc else None,
                 "restarts": self.restarts, "state": "starting", "sessions": 0, "documents": 0}
        try:
            conn = db.open_reader(self.path)
            try:
                info = db.meta(conn)
            finally:
                conn.close()
            state.update(state=info.get("state"), sessions=info.get("sessions") or 0,
                         documents=info.get("documents") or 0)
        except Exception:
            pass
        return "search", state
