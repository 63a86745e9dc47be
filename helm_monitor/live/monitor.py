"""The pump: coalesces file events per session, feeds the domain, publishes changes.

Watcher events only mark paths dirty (O(1), from the observer's thread). The
pump thread wakes when a path is due:

- the first change of a quiet key (a session, or a path that belongs to
  none) is processed as soon as it arrives: nothing waits for a burst to end;
- what follows within ``debounce`` of that run is coalesced into one run at
  the window's end: a key is processed at most once per window, and a key
  written continuously once per window (no starvation). Runs keep to the
  schedule, each due one window after the previous was due, not after it
  ran: waking a little late (the event loop busy writing to a thousand
  clients) neither lets a session go a whole window without an update nor
  drifts the schedule. Only a run later than ``CATCH_UP`` of a window moves
  it, so that two runs are never less than ``1 - CATCH_UP`` windows apart;
- a removal (the first path of the burst is gone) waits ``GONE_SETTLE_S``:
  a whole folder removed goes out as one change, whose top is gone by then;
- a run that changed nothing does not count (an event that only echoes a
  read, as SQLite's fchown() of the WAL it opens as root, must not delay the
  next real change by a window: that one is then processed when it arrives);
- a session is published at most once per window, whatever made it change
  (its transcript, a subagent, its registry file, its process dying): a
  change within a window of the session's last update waits for the window's
  end and goes out with whatever else changed by then.

It also re-checks registered pids (a process killed without removing its
registry file), re-reads half-written registry files, and flips sessions whose
60-second recent-write rule expired. Work that reads files runs through
``offload`` so that, under gevent, big reads happen in a native thread and
never freeze open streams.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from typing import Callable

from helm_monitor.live import scan
from helm_monitor.live.sources import SourceSet
from helm_monitor.live.store import SessionStore
from helm_monitor.usage import pricing

log = logging.getLogger(__name__)

LIVENESS_INTERVAL_S = 1.0
# How late (a fraction of the debounce window) a run may start and still keep the schedule.
CATCH_UP = 0.05
# A removal is read this long after it began, not at once: ``rm -r projects/`` removes the files
# first and the folder last, and a transcript gone while projects/ still stands would be taken
# for a transcript deleted on its own (no grace period, helm_monitor.sources.claude.catalog).
# 50 ms was not always enough for rm -r on a loaded machine; a removal shown 0.25 s late is not seen.
GONE_SETTLE_S = 0.25
REGISTRY_RETRY_S = 0.2
STRUCTURE_CHECK_S = 2.0
# How often changed parse state is saved for the next start (and at stop).
STATE_SAVE_INTERVAL_S = 300.0
# The first scan is committed in slices so the page fills while a big history is read.
SCAN_SLICE_BYTES = 64 * 1024 * 1024
SCAN_SLICE_FILES = 2000

Offload = Callable[[Callable], object]


def _direct(fn):
    return fn()


class _Pending:
    __slots__ = ("first_seen", "paths", "gone")

    def __init__(self, now: float, gone: bool = False):
        self.first_seen = now
        self.paths: dict[str, bool | None] = {}
        # The first path was already gone: a removal, which waits GONE_SETTLE_S.
        self.gone = gone


class Monitor:
    def __init__(self, catalog: SourceSet, store: SessionStore, *, debounce_s: float = 0.5,
                 liveness_interval_s: float = LIVENESS_INTERVAL_S,
                 offload: Offload | None = None, on_structure_check: Callable[[], None] | None = None,
                 state_cache=None, scan_workers: int = 1, usage=None):
        self.catalog = catalog
        self.store = store
        self.usage = usage  # a live.usage.UsageIndex, told every session built with its usage facts
        self.debounce_s = debounce_s
        self.liveness_interval_s = liveness_interval_s
        self._offload = offload or _direct
        self._on_structure_check = on_structure_check
        self._state_cache = state_cache
        self.scan_workers = scan_workers  # processes the first scan may fork (live/scan.py)
        self.scan_stats: dict | None = None  # how the first scan was shared out, if it was
        self.scan_pids: list[int] = []  # its processes while they run
        self._state_dirty = False
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[str, _Pending] = {}
        self._last_run: dict[str, float] = {}  # key -> when its last run was due
        self._published_at: dict[str, float] = {}  # session key -> when its last update was due
        self._held: dict[str, float] = {}  # session key -> when its held update is due
        self._refresh_waiters: list[tuple[threading.Event, list]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.scanning = False
        self.last_fs_event_at: float | None = None  # monotonic: ages survive clock steps
        self.last_lag_s: float | None = None  # event arrival -> published
        self.batches = 0
        self.failures = 0
        self._status_deadline: float | None = None

    # ------------------------------------------------------------ from watchers
    def notify(self, path: str, is_dir: bool | None = None) -> None:
        """A path changed. Thread-safe, cheap: called for every file-system event."""
        now = time.monotonic()
        key = self._key(path, is_dir)
        # Whether a burst begins with a removal: one stat per burst, not per event, and not under
        # the lock the pump takes to find what is due (a look at the dict without it is a hint).
        gone = key not in self._pending and not os.path.lexists(path)
        with self._cond:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(now, gone)
                self._cond.notify()
            # A later event for the same path may know better whether it is a directory.
            pending.paths[path] = is_dir
        self.last_fs_event_at = time.monotonic()

    def _key(self, path: str, is_dir: bool | None) -> str:
        # Per session, whatever file changed (transcript, subagent, registry file):
        # the end of a turn touches several and must make one update.
        key = self.catalog.session_for_path(path, is_dir)
        return "session:" + key if key else path

    def refresh(self, timeout: float = 120.0) -> int:
        """Full rescan; every client receives ``refresh``. Returns the session count."""
        done = threading.Event()
        box: list = []
        with self._cond:
            self._refresh_waiters.append((done, box))
            self._cond.notify()
        if not done.wait(timeout):
            raise TimeoutError("refresh did not finish in time")
        if box and isinstance(box[0], Exception):
            raise box[0]
        return box[0] if box else len(self.store)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="helm-monitor-pump", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._save_state()  # never while the pump could still change what is saved

    def _save_state(self) -> None:
        if self.usage is not None:
            try:
                self._offload(self.usage.save)
            except Exception:
                log.exception("saving the observed waiting time failed")
        if self._state_cache is not None and self._state_dirty:
            self._state_dirty = False
            try:
                self._offload(lambda: self._state_cache.save(self.catalog))
            except Exception:
                log.exception("saving the parse state failed")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        collecting = gc.isenabled()
        # The first scan builds what the process keeps (saved states, usage facts, sessions) and
        # frees little: cyclic collections while it runs cost a third of restoring a saved state
        # and find nothing. Collecting starts again once it is served (not frozen away: /healthz
        # counts greenlets among the collector's objects).
        gc.disable()
        try:
            self._initial_scan()
        except Exception:
            log.exception("initial scan failed; continuing with what was read")
        finally:
            self._status_deadline = self.catalog.status_deadline()
            self.scanning = False
            self.ready.set()
        self._save_state()
        if self.usage is not None:
            self._offload(pricing.warm)  # loaded now if saved prices stood in: a new day or model needs it
        if collecting:
            gc.collect()  # what the scan (and requests meanwhile) left in cycles
            gc.enable()
        next_liveness = time.monotonic() + self.liveness_interval_s
        next_structure = time.monotonic() + STRUCTURE_CHECK_S
        next_save = time.monotonic() + STATE_SAVE_INTERVAL_S
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._refresh_waiters:
                        break
                    wake = min(next_liveness, next_structure, next_save)
                    if self.catalog.needs_retry:
                        wake = min(wake, now + REGISTRY_RETRY_S)
                    if self._status_deadline is not None:
                        wake = min(wake, now + max(0.0, self._status_deadline - self.catalog.monotonic()) + 0.05)
                    due_at = self._next_due()
                    if due_at is not None:
                        wake = min(wake, due_at)
                    if self._held:
                        wake = min(wake, min(self._held.values()))
                    if wake <= now:
                        break
                    self._cond.wait(wake - now)
                now = time.monotonic()
                refreshes, self._refresh_waiters = self._refresh_waiters, []
                due = self._take_due(now)
            built_at = self.catalog.monotonic()
            try:
                if refreshes:
                    self._do_refresh(refreshes)
                if due:
                    self._process(due)
                changed: set[str] = set()
                if now >= next_liveness:
                    changed |= self.catalog.check_liveness()
                    next_liveness = now + self.liveness_interval_s
                if self.catalog.needs_retry:
                    changed |= self.catalog.retry()
                if self._status_deadline is not None and self.catalog.monotonic() >= self._status_deadline:
                    changed |= self._expired_ids()
                held = self._take_held(now)
                changed |= held.keys()
                if changed:
                    self._commit(changed, self._window_start(min(held.values(), default=now), now))
                if due or changed or refreshes:
                    self._status_deadline = self.catalog.status_deadline(after=built_at)
                if due or refreshes or changed:
                    self._state_dirty = True
                if now >= next_save:
                    next_save = now + STATE_SAVE_INTERVAL_S
                    self._save_state()
                if now >= next_structure:
                    next_structure = now + STRUCTURE_CHECK_S
                    if self._on_structure_check is not None:
                        self._on_structure_check()
            except Exception:
                self.failures += 1
                log.exception("processing file changes failed; continuing")

    def _due_at(self, key: str, pending: _Pending) -> float:
        """When ``key`` is processed: at once when quiet (a removal a moment later), else when the
        window of its last run ends."""
        last = self._last_run.get(key)
        first = pending.first_seen + (GONE_SETTLE_S if pending.gone else 0.0)
        return first if last is None else max(first, last + self.debounce_s)

    def _next_due(self) -> float | None:
        return min((self._due_at(key, p) for key, p in self._pending.items()), default=None)

    def _window_start(self, due: float, now: float) -> float:
        """Where the window of a run due at ``due`` and starting at ``now`` begins (see CATCH_UP)."""
        return max(due, now - CATCH_UP * self.debounce_s)

    def _take_due(self, now: float) -> list[tuple[str, _Pending, float | None, float]]:
        """The keys due at ``now``: (key, its pending paths, where its previous window began,
        where this run's begins)."""
        due = []
        for key, p in list(self._pending.items()):
            at = self._due_at(key, p)
            if now >= at:
                # On schedule, not on the wake-up: a pump woken a little late (or after a long
                # run) does not push the next window later.
                start = self._window_start(at, now)
                due.append((key, self._pending.pop(key), self._last_run.get(key), start))
                self._last_run[key] = start
        if len(self._last_run) > 4096:
            horizon = now - self.debounce_s
            self._last_run = {k: t for k, t in self._last_run.items() if t >= horizon}
        return due

    def _process(self, due: list[tuple[str, _Pending, float | None, float]]) -> None:
        def work():
            changed: set[str] = set()
            idle = []
            for key, pending, last, _at in due:
                mine: set[str] = set()
                for path, is_dir in pending.paths.items():
                    mine |= self._apply_one(path, is_dir)
                if not mine:
                    idle.append((key, last))
                changed |= mine
            return self._sessions_for(changed), idle
        changes, idle = self._offload(work)
        # A run that changed nothing does not use up its key's window: an event that is only
        # an echo of reading (SQLite fchown()s the WAL it opens, as root) must not make the
        # next real change wait. Such runs cost a stat or a read of nothing new.
        for key, last in idle:
            if last is None:
                self._last_run.pop(key, None)
            else:
                self._last_run[key] = last
        # Published as of when the run's window began, so that the session's next update (its
        # key's next run, one window on) is not held back by how long this one took.
        # (Unless it took long: then as of a little before now, so that two updates of a session
        # are never much less than a window apart.)
        self._publish(changes, self._window_start(min(at for *_, at in due), time.monotonic()))
        self.batches += 1
        oldest = min(p.first_seen for _k, p, _l, _a in due)
        self.last_lag_s = time.monotonic() - oldest

    def _apply_one(self, path: str, is_dir: bool | None = None) -> set[str]:
        try:
            return self.catalog.apply(path, is_dir)
        except Exception:  # a bug met by one file must not drop its neighbours' changes
            self.failures += 1
            log.exception("reading %s failed; skipped", path)
            return set()

    def _expired_ids(self) -> set[str]:
        """Sessions shown busy by the recent-write rule: some of them just turned ended."""
        return {s["key"] for s in self.store.snapshot() if s["status"] == "busy" and s["pid"] is None}

    def _commit(self, ids: set[str], now: float) -> None:
        self._publish(self._offload(lambda: self._sessions_for(ids)), now)

    def _publish(self, changes: dict[str, dict | None], now: float) -> None:
        """Hand changes to the store; a session updated less than a window ago waits (SPEC 4)."""
        ready = {}
        for sid, session in changes.items():
            last = self._published_at.get(sid)
            # Written as the due time is, so that a run due exactly one window on is never held.
            if last is not None and now < last + self.debounce_s:
                self._held.setdefault(sid, last + self.debounce_s)
            else:
                ready[sid] = session
        if not ready:
            return
        out = self.store.apply(ready)
        for sessions in out.values():
            for s in sessions:
                self._published_at[s["key"]] = now
        if len(self._published_at) > 4096:
            horizon = now - self.debounce_s
            self._published_at = {k: t for k, t in self._published_at.items() if t >= horizon}

    def _take_held(self, now: float) -> dict[str, float]:
        """Held sessions whose window has passed (built afresh and published now), with when each was due."""
        if not self._held:
            return {}
        due = {sid: at for sid, at in self._held.items() if at <= now}
        for sid in due:
            del self._held[sid]
            self._published_at.pop(sid, None)
        return due

    def _sessions_for(self, keys: set[str]) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        for key in keys:
            try:
                out[key] = self.catalog.session(key)
            except Exception:  # one reader's bug must not drop the batch, nor delete the session
                self.failures += 1
                log.exception("building session %s failed; its last published state stands", key)
                continue
            if self.usage is not None:
                self._update_usage(key, out[key])
        return out

    def _update_usage(self, key: str, session: dict | None) -> None:
        try:
            self.usage.update(key, session, None if session is None else self.catalog.usage(key))
        except Exception:  # usage is counted beside the list: its failure never holds the list back
            self.failures += 1
            log.exception("counting the usage of session %s failed; its last counted usage stands", key)

    def _do_refresh(self, waiters) -> None:
        try:
            def work():
                self.catalog.full_scan()
                sessions = self.catalog.sessions()
                if self.usage is not None:
                    try:
                        self.usage.replace_all({k: (s, self.catalog.usage(k)) for k, s in sessions.items()})
                    except Exception:
                        self.failures += 1
                        log.exception("counting usage after the rescan failed; the last counted usage stands")
                return sessions
            count = self.store.replace_all(self._offload(work))
            result: object = count
        except Exception as exc:
            log.exception("refresh failed")
            result = exc
        for done, box in waiters:
            box.append(result)
            done.set()

    def _initial_scan(self) -> None:
        self.scanning = True
        # The unit prices of the last run price a known history without the price table (whose
        # load would hold every stream for 30-50 ms); without them the table is loaded now,
        # before sessions are read, not at the first session's cost while streams wait on it.
        if self.usage is not None and not self._offload(self.usage.load_prices):
            self._offload(pricing.warm)
        if self._state_cache is not None:
            self._offload(lambda: self._state_cache.load_into(self.catalog))

        listed = self._offload(lambda: scan.listing(self.catalog))
        # The heavy files go to scan processes (one per core) while the pump reads the rest; under
        # gunicorn the arbiter may have started them already.
        shared = scan.adopt_early(self.catalog, self._apply_one) or self._offload(
            lambda: scan.ParallelScan.plan(self.catalog, listed, self.scan_workers, self._apply_one))
        try:
            if shared is not None:
                if not shared.started:
                    self._offload(shared.start)
                self.scan_pids = shared.pids
                heavy = shared.heavy
                listed = [entry for entry in listed if entry[0] not in heavy]
            # Registry first (status), then transcripts in slices of bounded size.
            batch: list[str] = []
            size = 0
            for path, file_size, _mtime in listed:
                batch.append(path)
                size += file_size
                if size >= SCAN_SLICE_BYTES or len(batch) >= SCAN_SLICE_FILES:
                    self._scan_slice(batch)
                    batch, size = [], 0
                if self._stopping:
                    return
            if batch:
                self._scan_slice(batch)
            while shared is not None and not self._stopping:
                # What the scan processes handed back since the last step, published as it comes.
                self.store.apply(self._offload(lambda: self._sessions_for(shared.step())))
                if shared.done:
                    break
        finally:
            if shared is not None and not shared.done:
                self._offload(shared.close)
                if not self._stopping:  # what the processes did not hand back is read here
                    self.store.apply(self._offload(lambda: self._sessions_for(shared.step())))
            if shared is not None:
                self.scan_stats = stats = shared.stats()
                self.scan_pids = []
                log.info("first scan: %d of %d files handed back by the scan processes, %d read here; %.2f s",
                         stats["delivered"], stats["files"], stats["readHere"], stats["seconds"])
        if self._stopping:
            return
        self.catalog.drop_restored()
        self._state_dirty = True

    def _scan_slice(self, paths: list[str]) -> None:
        def work():
            changed: set[str] = set()
            for p in paths:
                changed |= self._apply_one(p)
            return self._sessions_for(changed)
        self.store.apply(self._offload(work))
