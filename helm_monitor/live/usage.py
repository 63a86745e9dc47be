"""Every session's usage, kept beside the store for ``/api/usage`` and ``/metrics`` (SPEC 10).

The pump hands the index each changed session with its UsageFacts (built by the session's
source as it read the files); the index prices them once into cells and answers queries from
those. It also keeps what no file says: how long each session waited for its user, as the
registry's ``waiting`` status is observed (a store listener), in the same 15-minute buckets,
saved in the cache directory so a restart keeps the history it observed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
import time
from typing import Callable

import orjson

from helm_monitor.usage import pricing
from helm_monitor.usage import query as Q
from helm_monitor.usage.facts import BUCKET_MS, UsageFacts, bucket_of

log = logging.getLogger(__name__)

WAITING = "waiting"
WAITING_FILE = "usage-waiting.json"
WAITING_FORMAT = 1
PRICES_FILE = "usage-prices.json"  # unit prices worked out (usage.pricing.export_units)
# Observed waiting time is kept this long (then dropped, oldest first, at save).
WAITING_KEEP_MS = 400 * 86_400_000
_TIMEZONE_CACHES = 8
_ANSWERS_KEPT = 32


def _entry(key: str, session: dict, cells: list[tuple]) -> Q.SessionUsage:
    return Q.SessionUsage(key=key, project=session.get("projectPath"), source=session.get("source") or "",
                          host=session.get("host") or "", title=session.get("title"), model=session.get("model"),
                          cells=cells)


class UsageIndex:
    """Thread-safe: updated from the pump, read from request greenlets."""

    def __init__(self, *, cache_dir: str | os.PathLike | None = None, clock: Callable[[], float] = time.time):
        self._lock = threading.Lock()
        self._sessions: dict[str, Q.SessionUsage] = {}
        self._waiting: dict[str, dict[int, float]] = {}  # key -> bucket -> seconds waited (observed)
        self._waiting_since: dict[str, float] = {}  # key -> wall-clock seconds it was last seen waiting from
        self._local: dict[tuple[str, str], dict] = {}  # (zone, bucket size) -> LocalTime memo
        self._answers: dict[tuple, tuple] = {}  # question -> (version, when, answer): callers never alter answers
        self.version = 0  # bumped at each change (tests and the page can tell something moved)
        self.clock = clock
        # Called with the keys whose usage changed (None: everything), in the updater's thread
        # (the team agent's publisher follows them). Must not block.
        self._listeners: list[Callable[[set[str] | None], None]] = []
        self.path = os.path.join(os.fspath(cache_dir), WAITING_FILE) if cache_dir else None
        self.prices_path = os.path.join(os.fspath(cache_dir), PRICES_FILE) if cache_dir else None
        self._prices_saved = 0  # pricing.computed() when the unit prices were last saved
        self._dirty = False
        self._load_waiting()

    def add_listener(self, listener: Callable[[set[str] | None], None]) -> None:
        self._listeners.append(listener)

    def _tell(self, keys: set[str] | None) -> None:
        for listener in self._listeners:
            try:
                listener(keys)
            except Exception:  # a follower's fault never stops counting
                log.exception("a usage listener failed")

    # ------------------------------------------------------------ from the pump
    def update(self, key: str, session: dict | None, facts: UsageFacts | None) -> None:
        """A session changed (None: it went). Prices its facts into cells (outside the lock)."""
        self.put(key, session, None if session is None else Q.build_cells(facts, session.get("source") or ""))

    def put(self, key: str, session: dict | None, cells: list[tuple] | None) -> None:
        """A session's priced cells as they are (the team web tier's, priced by the host that read them)."""
        if session is None:
            with self._lock:
                if self._sessions.pop(key, None) is None:
                    return
                self.version += 1
            self._tell({key})
            return
        entry = _entry(key, session, cells or [])
        with self._lock:
            old = self._sessions.get(key)
            if old is not None and old.cells == entry.cells and old.title == entry.title \
                    and old.project == entry.project and old.model == entry.model and old.host == entry.host:
                return
            self._sessions[key] = entry
            self.version += 1
        self._tell({key})

    def replace_all(self, items: dict[str, tuple[dict, UsageFacts | None]]) -> None:
        fresh = {key: _entry(key, session, Q.build_cells(facts, session.get("source") or ""))
                 for key, (session, facts) in items.items()}
        with self._lock:
            self._sessions = fresh
            self.version += 1
        self._tell(None)

    def entry(self, key: str) -> Q.SessionUsage | None:
        """What is kept of one session (its cells are never altered in place: safe to read)."""
        with self._lock:
            return self._sessions.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------ waiting, observed
    def store_listener(self, kind: str, sessions: list[dict]) -> None:
        """A SessionStore listener: notes when sessions start and stop waiting for their user."""
        now = self.clock()
        with self._lock:
            if kind == "refresh":
                present = {s["key"] for s in sessions}
                for key in [k for k in self._waiting_since if k not in present]:
                    self._close_wait(key, now)
            for s in sessions:
                key = s.get("key")
                if key is None:
                    continue
                waiting = kind != "session-deleted" and s.get("status") == WAITING
                if waiting and key not in self._waiting_since:
                    self._waiting_since[key] = now
                    self.version += 1
                elif not waiting and key in self._waiting_since:
                    self._close_wait(key, now)

    def _close_wait(self, key: str, now: float) -> None:
        since = self._waiting_since.pop(key)
        self._add_wait(key, since, now)

    def _add_wait(self, key: str, since: float, until: float) -> None:
        if until <= since:
            return
        buckets = self._waiting.setdefault(key, {})
        t = int(since * 1000)
        end = int(until * 1000)
        while t < end:
            b = bucket_of(t)
            upto = min(end, b + BUCKET_MS)
            buckets[b] = buckets.get(b, 0.0) + (upto - t) / 1000
            t = upto
        self._dirty = True
        self.version += 1

    def _waiting_now(self) -> dict[str, dict[int, float]]:
        """Observed waiting, with the waits still under way counted up to now."""
        now = self.clock()
        out = {k: dict(v) for k, v in self._waiting.items()}
        for key, since in self._waiting_since.items():
            t, end = int(since * 1000), int(now * 1000)
            buckets = out.setdefault(key, {})
            while t < end:
                b = bucket_of(t)
                upto = min(end, b + BUCKET_MS)
                buckets[b] = buckets.get(b, 0.0) + (upto - t) / 1000
                t = upto
        return out

    # ------------------------------------------------------------ answering
    def query(self, *, start: str | None = None, end: str | None = None, tz: str | None = None,
              bucket: str = "day", by: str | None = None) -> dict:
        """The ``/api/usage`` answer; raises Q.QueryError for a query that cannot be answered."""
        zone = Q.zone(tz)
        now = self.clock()
        lo, hi = Q.parse_range(start, end, zone, int(now * 1000))
        asked = (zone.key, lo, hi, bucket, by)
        with self._lock:
            # The same question while nothing changed (every open page asks again after each change
            # of any session): the same answer. A wait under way grows by itself: then for a second.
            hit = self._answers.get(asked)
            if hit is not None and hit[0] == self.version and (not self._waiting_since or now - hit[1] < 1.0):
                return hit[2]
            version = self.version
            sessions = list(self._sessions.values())
            waiting = self._waiting_now() if (self._waiting or self._waiting_since) else {}
            memo_key = (zone.key, bucket)
            memo = self._local.get(memo_key)
            if memo is None:
                if len(self._local) >= _TIMEZONE_CACHES:
                    self._local.clear()
                # 15-minute bucket -> local bucket start, and session key -> its rollup
                memo = self._local[memo_key] = ({}, {})
        if waiting:
            by_key = {s.key: s for s in sessions}
            for key, buckets in waiting.items():
                s = by_key.get(key)
                if s is None:  # waited, then its transcript went: the time waited stays
                    s = by_key[key] = Q.SessionUsage(key=key, project=None, source="", host="", title=None,
                                                     model=None, cells=[])
                by_key[key] = dataclasses.replace(s, waiting=buckets)
            sessions = list(by_key.values())
        local_cache, rollups = memo
        if len(rollups) > 2 * len(sessions) + 64:  # sessions gone since: their rollups go too
            live = {s.key for s in sessions}
            for key in [k for k in rollups if k not in live]:
                del rollups[key]
        answer = Q.aggregate(sessions, lo=lo, hi=hi, tz=zone, bucket=bucket, by=by, local_cache=local_cache,
                             rollups=rollups)
        with self._lock:
            if len(self._answers) >= _ANSWERS_KEPT:
                self._answers.clear()
            self._answers[asked] = (version, now, answer)
        return answer

    def totals_by_model(self) -> dict[str, dict]:
        """All-time tokens and dollars per model and basis (``/metrics`` counters)."""
        out: dict[str, dict] = {}
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            for cell in s.cells:
                m = out.get(cell[1])
                if m is None:
                    m = out[cell[1]] = {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0,
                                        "messages": 0, "ledger": 0.0, "list-price": 0.0, "unpricedTokens": 0}
                m["input"] += cell[2]
                m["output"] += cell[3]
                m["cacheRead"] += cell[4]
                m["cacheCreation"] += cell[5]
                m["messages"] += cell[6]
                if cell[7] is not None:
                    m["ledger"] += cell[7]
                if cell[8] is not None:
                    m["list-price"] += cell[8]
                m["unpricedTokens"] += cell[9]
        return out

    def __len__(self) -> int:
        return len(self._sessions)

    # ------------------------------------------------------------ saved waiting time
    def _load_waiting(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                doc = orjson.loads(f.read(64 * 1024 * 1024))
            if not isinstance(doc, dict) or doc.get("format") != WAITING_FORMAT:
                raise ValueError("another format")
            waiting = {}
            for key, buckets in doc["waiting"].items():
                waiting[str(key)] = {int(b): float(s) for b, s in buckets.items() if int(b) % BUCKET_MS == 0}
            self._waiting = waiting
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("observed waiting time in %s is unusable (%s); starting afresh", self.path, exc)

    def save(self) -> bool:
        """Write the observed waiting time (atomically; waits under way are saved up to now), and
        the unit prices worked out since the last save."""
        if self.path is None:
            return False
        ok = self._save_prices()
        with self._lock:
            if not self._dirty and not self._waiting_since:
                return ok
            waiting = self._waiting_now()
            self._dirty = False
        horizon = int(self.clock() * 1000) - WAITING_KEEP_MS
        doc = {"format": WAITING_FORMAT,
               "waiting": {k: {str(b): round(s, 3) for b, s in v.items() if b >= horizon} for k, v in waiting.items()}}
        return _write(self.path, doc, "observed waiting time") and ok

    # ------------------------------------------------------------ saved unit prices
    def load_prices(self) -> int:
        """Take in the unit prices saved by an earlier run (of the same price table): a restart
        prices a known history without importing the table. Returns how many were taken in."""
        if self.prices_path is None:
            return 0
        try:
            with open(self.prices_path, "rb") as f:
                taken = pricing.import_units(orjson.loads(f.read(64 * 1024 * 1024)))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("saved unit prices in %s are unusable (%s); working them out again", self.prices_path, exc)
            return 0
        self._prices_saved = pricing.computed()
        return taken

    def _save_prices(self) -> bool:
        computed = pricing.computed()
        if self.prices_path is None or computed == self._prices_saved:
            return True
        if not _write(self.prices_path, pricing.export_units(), "unit prices"):
            return False  # tried again at the next save
        self._prices_saved = computed
        return True


_failing: set[str] = set()  # files whose last save failed (said once, until one works)


def _write(path: str, doc: dict, what: str) -> bool:
    """``doc`` as JSON at ``path``, atomically (readable by this user only, as the whole cache).
    A failure is logged once, not at every save; the last good file stays."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + "-", dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if path not in _failing:
            _failing.add(path)
            log.warning("cannot save %s to %s: %s; saving is retried at each save", what, path,
                        exc.strerror or exc)
        return False
    if path in _failing:
        _failing.discard(path)
        log.info("%s saved to %s again", what, path)
    return True
