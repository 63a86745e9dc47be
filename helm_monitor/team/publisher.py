"""This host's store, followed into the team's engine (design/TEAM_SCALE.md 6.3, 6.9, 9.1).

The store tells :meth:`Publisher.on_change` of every change in the pump's thread; that only
notes the change (the latest full Session per key) and wakes the publisher's own thread, so
an engine that is slow or gone never holds up the pump or the local dashboard. The thread
writes:

- on start and on every reconnect, a **resync**: in one ``MULTI``, the host's hash emptied and
  refilled with every session, and a ``resync`` entry. Nothing is buffered while the engine is
  down: changes noted then are dropped, the resync after it covers them (and repairs what an
  engine crash lost). The first one waits for the first scan, so that a big history goes as
  one resync, not as thousands of entries;
- each batch of changes in one ``MULTI``: the hash's fields set or removed and one stream entry
  per change. A transaction cut off never runs, so the engine never holds half a batch;
- a heartbeat entry when nothing else was written for a heartbeat period: it is what shows
  the web tier that this host is online;
- the latest messages of each created or updated session (at most once a second each), for
  the remote session view; the full transcript stays on this host;
- each session's usage, priced here (team/usage.py): the days of its cells that changed, in
  ``hm:h:H:u`` and in the session's entry, in the same ``MULTI``; a change of usage alone (its
  session held back by the pump's debounce, or not changed at all) goes as a ``usage`` entry
  once it has waited USAGE_ALONE_S for its session to carry it. A resync rewrites it whole.

Only the commands of ``keys.HOST_COMMANDS`` are used: the host's engine user may run no other.
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
import threading
import time
import weakref
from typing import Callable

import orjson
import redis

from helm_monitor.team import client, keys
from helm_monitor.team import usage as team_usage

log = logging.getLogger(__name__)

# Sessions per HSET of a resync: one transaction still, but no single huge command.
RESYNC_CHUNK = 200
# Changes per transaction; more pending than RESYNC_ABOVE (a burst the pump committed at once)
# go as one resync instead of as that many entries.
BATCH_MAX = 500
RESYNC_ABOVE = 2000
# A session's latest messages are written at most this often.
TAIL_INTERVAL_S = 1.0
# After a resync the newest sessions' latest messages are written again (an engine that
# restarted empty lost them), those updated within the keys' TTL, at most this many: each costs
# a read of its conversation.
RESYNC_TAILS_MAX = 32
# A session's usage changed but the session did not (yet): written on its own after this long
# (the pump counts usage as it builds a session, and may hold the session back for its debounce
# window: most changes of usage go out with their session's entry).
USAGE_ALONE_S = 1.0
# Usage fields per HSET of a resync.
USAGE_CHUNK = 500
READY_POLL_S = 0.5
JOIN_TIMEOUT_S = client.COMMAND_TIMEOUT_S + 1.0

# What a store event is called on the wire.
_WIRE_TYPES = {"session-created": "created", "session-updated": "updated", "session-deleted": "deleted"}

# (session key, how many) -> {"messages": the last ones, "total": how many there are}, or None.
ReadTail = Callable[[str, int], "dict | None"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _age_s(iso: str | None) -> float:
    try:
        then = _dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    return time.time() - then.timestamp()


class Publisher:
    """Writes one host's sessions to ``hm:h:<host>:*``; started and stopped with the service."""

    def __init__(self, store, *, url: str, host: str, ca_file: str | None = None,
                 heartbeat_s: float = keys.HEARTBEAT_S, wait_ready: Callable[[float], bool] | None = None,
                 read_tail: ReadTail | None = None, usage=None):
        if not keys.valid_host(host):
            raise ValueError(f"not a host name: {host!r}")
        self.store = store
        self.url = client.check_url(url)
        self.ca_file = ca_file
        self.host = host
        self.heartbeat_s = heartbeat_s
        self.wait_ready = wait_ready or (lambda timeout: True)
        self.read_tail = read_tail
        self.usage = usage  # a live.usage.UsageIndex (its cells are published), or None
        self.boot = secrets.token_hex(8)  # tells readers that this host's agent restarted
        self._snapshot_key = keys.snapshot_key(host)
        self._stream_key = keys.stream_key(host)
        self._usage_key = keys.usage_key(host)
        self._cond = threading.Condition(threading.Lock())
        # Guarded by _cond: what the store changed since the last write, key -> (wire type, data).
        self._pending: dict[str, tuple[str, dict]] = {}
        self._resync_due = True  # while set, changes are dropped: the resync to come covers them
        self._tails: dict[str, None] = {}  # keys whose latest messages are to be written (ordered)
        self._tail_at: dict[str, float] = {}  # key -> monotonic time its messages were last read
        self._usage_due: dict[str, float] = {}  # keys whose usage alone changed -> monotonic time noted
        # Only the publisher's thread: what hm:h:H:u holds, per key and day, and the cells it was
        # encoded from (the index never alters cells in place: the same list is the same usage).
        self._usage_sent: dict[str, dict[int, bytes]] = {}
        self._usage_cells: dict[str, object] = {}
        self._seen: weakref.WeakSet = weakref.WeakSet()  # connections of the client that connected once
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis | None = None
        self._attempt = 0  # failed attempts in a row: the backoff's step
        self._last_write = 0.0  # monotonic time of the last stream entry
        # What /healthz reports.
        self.engine = "starting"  # then "ok" or "down"
        self.since: int | None = None  # epoch ms the engine has been down since
        self.published = 0  # change entries written
        self.last_publish_at: int | None = None
        self.resyncs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.foreign = 0  # sessions of another host handed to this one (never published)
        self.usage_too_big = 0  # days of a session's usage over FIELD_MAX (never published)

    # ------------------------------------------------------------ the store's side
    def on_change(self, kind: str, sessions: list[dict]) -> None:
        """A store event (in the pump's thread): noted and the publisher woken; no I/O."""
        with self._cond:
            if kind == "refresh":
                self._resync_due = True
                self._pending.clear()
            elif not self._resync_due and kind in _WIRE_TYPES:
                wire = _WIRE_TYPES[kind]
                for session in sessions:
                    key = session.get("key")
                    if session.get("host") != self.host or not isinstance(key, str):
                        self.foreign += 1
                        continue
                    earlier = self._pending.get(key)
                    # Created and then updated before it went out: still new to readers.
                    wire_type = "created" if wire == "updated" and earlier and earlier[0] == "created" else wire
                    self._pending[key] = (wire_type, session)
                    if wire == "deleted":
                        self._tails.pop(key, None)
                        self._tail_at.pop(key, None)
                    else:
                        self._tails[key] = None
            else:
                return
            self._cond.notify()

    def on_usage(self, changed: set[str] | None) -> None:
        """A UsageIndex listener (the pump's thread): these sessions' usage changed; no I/O."""
        with self._cond:
            if changed is None:  # everything (a rescan, whose store refresh follows): a resync
                self._resync_due = True
                self._pending.clear()
                self._usage_due.clear()
            elif not self._resync_due:
                now = time.monotonic()
                prefix = self.host + ":"
                for key in changed:
                    if isinstance(key, str) and key.startswith(prefix):
                        self._usage_due.setdefault(key, now)
            else:
                return
            self._cond.notify()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"helm-team-publisher-{self.host}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)

    def health(self) -> tuple[str, dict]:
        return "team", {
            "role": "agent", "host": self.host, "engine": self.engine, "since": self.since,
            "url": client.redacted(self.url), "published": self.published, "lastPublishAt": self.last_publish_at,
            "resyncs": self.resyncs, "errors": self.errors, "lastError": self.last_error,
        }

    # ------------------------------------------------------------ the publisher's thread
    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self._follow()
                except client.engine_errors() as exc:
                    self._failed(exc, lost=True)
                except redis.RedisError as exc:  # refused (NOPERM, OOM, ...): the connection is fine
                    self._failed(exc, lost=False)
                except Exception as exc:  # a bug must not end publishing for good
                    log.exception("publishing to the team's engine failed")
                    self._failed(exc, lost=True)
                else:
                    break
                self._sleep(client.backoff(self._attempt))
                self._attempt += 1
        finally:
            self._close()

    def _follow(self) -> None:
        """Connect, resync, then write what the store changes until stopped (or an error)."""
        if self._redis is None:
            self._redis = client.connect(self.url, ca_file=self.ca_file, name=f"helm-agent-{self.host}")
            self._watch_reconnects(self._redis)
        self._redis.ping()
        if self.engine == "starting":
            self.engine = "ok"  # reachable; "down" turns "ok" only once a resync went through
        while not self._stopping and not self.wait_ready(READY_POLL_S):
            pass
        while True:
            with self._cond:
                work = self._next_work()
                if work is None:
                    return
            kind, arg = work
            if kind == "resync":
                self._resync()
            elif kind == "batch":
                self._publish(arg)
            elif kind == "tail":
                self._write_tail(arg)
            elif kind == "usage":
                self._publish_usage(arg)
            else:
                self._xadd("hb")

    def _next_work(self):
        """Under the lock: what to do next, waiting until there is something; None when stopping."""
        while not self._stopping:
            if self._resync_due or len(self._pending) > RESYNC_ABOVE:
                self._resync_due = True
                return "resync", None
            if self._pending:
                batch = {}
                for key in list(self._pending)[:BATCH_MAX]:
                    batch[key] = self._pending.pop(key)
                    self._usage_due.pop(key, None)  # its entry carries its usage
                return "batch", batch
            now = time.monotonic()
            wake = self._last_write + self.heartbeat_s
            if self._usage_due:
                due = [key for key, at in self._usage_due.items() if at + USAGE_ALONE_S <= now][:BATCH_MAX]
                if due:
                    for key in due:
                        del self._usage_due[key]
                    return "usage", due
                wake = min(wake, min(self._usage_due.values()) + USAGE_ALONE_S)
            for key in self._tails:
                due = self._tail_at.get(key, 0.0) + TAIL_INTERVAL_S
                if due <= now:
                    del self._tails[key]
                    self._tail_at[key] = now
                    return "tail", key
                wake = min(wake, due)
            if wake <= now:
                return "heartbeat", None
            self._cond.wait(wake - now)
        return None

    def _watch_reconnects(self, r) -> None:
        """A connection of ``r`` connected again: a resync. redis-py replaces an idle connection
        the engine closed on its own, without an error; an engine that restarted empty while this
        host had nothing to write would otherwise never get this host's whole state again."""
        pool = r.connection_pool
        make = pool.make_connection
        seen: weakref.WeakSet = weakref.WeakSet()

        def made():
            conn = make()
            conn.register_connect_callback(self._connected)
            return conn

        self._seen = seen
        pool.make_connection = made

    def _connected(self, conn) -> None:
        if conn not in self._seen:
            self._seen.add(conn)
            return
        log.info("the team's engine %s: connected again; publishing this host's whole state",
                 client.redacted(self.url))
        with self._cond:
            self._resync_due = True
            self._cond.notify()

    def _resync(self) -> None:
        with self._cond:
            # From here on changes are noted again: what the snapshot below misses goes next.
            self._resync_due = False
            self._pending.clear()
            self._usage_due.clear()
        sessions = [s for s in self.store.snapshot() if s.get("host") == self.host]
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._snapshot_key, self._usage_key)
        for i in range(0, len(sessions), RESYNC_CHUNK):
            pipe.hset(self._snapshot_key, mapping={s["key"]: orjson.dumps(s) for s in sessions[i:i + RESYNC_CHUNK]})
        sent: dict[str, dict[int, bytes]] = {}
        encoded: dict[str, object] = {}
        if self.usage is not None:
            fields = {}
            for s in sessions:
                cells = self._cells_of(s["key"])
                days = self._days_of(s["key"], cells)
                encoded[s["key"]], sent[s["key"]] = cells, days
                for day, value in days.items():
                    fields[keys.usage_field(s["key"], day)] = value
                    if len(fields) >= USAGE_CHUNK:
                        pipe.hset(self._usage_key, mapping=fields)
                        fields = {}
            if fields:
                pipe.hset(self._usage_key, mapping=fields)
        self._entry(pipe, "resync")
        pipe.execute()
        self._usage_sent, self._usage_cells = sent, encoded
        self.resyncs += 1
        self._wrote()
        self._up()
        log.info("published %d session(s) to %s (resync)", len(sessions), client.redacted(self.url))
        recent = [s["key"] for s in sessions if _age_s(s.get("updatedAt")) < keys.TRANSCRIPT_TTL_S]
        present = {s["key"] for s in sessions}
        with self._cond:
            self._tail_at = {key: at for key, at in self._tail_at.items() if key in present}
            for key in recent[:RESYNC_TAILS_MAX]:
                self._tails[key] = None

    def _publish(self, batch: dict[str, tuple[str, dict]]) -> None:
        data = {key: orjson.dumps(session) for key, (_wire, session) in batch.items()}
        upserts = {key: data[key] for key, (wire, _s) in batch.items() if wire != "deleted"}
        gone = [key for key, (wire, _s) in batch.items() if wire == "deleted"]
        plans = {key: self._usage_plan(key) for key in upserts} if self.usage is not None else {}
        pipe = self._redis.pipeline(transaction=True)
        if upserts:
            pipe.hset(self._snapshot_key, mapping=upserts)
        self._write_usage(pipe, plans)
        if gone:
            pipe.hdel(self._snapshot_key, *gone)
            pipe.delete(*(keys.transcript_key(self.host, key) for key in gone))
            fields = [keys.usage_field(key, day) for key in gone for day in self._usage_sent.get(key, ())]
            if fields:
                pipe.hdel(self._usage_key, *fields)
        for key, (wire, _session) in batch.items():
            plan = plans.get(key)
            self._entry(pipe, wire, key, data[key], usage=plan[3] if plan else None)
        pipe.execute()
        self._usage_done(plans)
        for key in gone:
            self._usage_sent.pop(key, None)
            self._usage_cells.pop(key, None)
        self.published += len(batch)
        self._wrote()

    def _publish_usage(self, due: list[str]) -> None:
        """Sessions whose usage alone changed: one ``usage`` entry each, in one MULTI."""
        if self.usage is None:
            return
        plans = {}
        for key in due:
            if self.store.get(key) is not None:  # (else its created entry, or its deletion, is to come)
                plan = self._usage_plan(key)
                if plan is not None and plan[3] is not None:
                    plans[key] = plan
        if not plans:
            return
        pipe = self._redis.pipeline(transaction=True)
        self._write_usage(pipe, plans)
        for key, plan in plans.items():
            self._entry(pipe, "usage", key, usage=plan[3])
        pipe.execute()
        self._usage_done(plans)
        self.published += len(plans)
        self._wrote()

    # ------------------------------------------------------------ usage (team/usage.py)
    def _cells_of(self, key: str):
        entry = self.usage.entry(key) if self.usage is not None else None
        return entry.cells if entry is not None else ()

    def _days_of(self, key: str, cells) -> dict[int, bytes]:
        days = team_usage.encode_days(cells)
        for day, value in list(days.items()):
            if len(value) > team_usage.FIELD_MAX:
                del days[day]
                self.usage_too_big += 1
                log.warning("session %s: its usage of day %d is %d bytes; not published", key, day, len(value))
        return days

    def _usage_plan(self, key: str):
        """(cells, days, removed days, entry field or None): what to write of a session's usage;
        None when its cells are those last written."""
        cells = self._cells_of(key)
        before = self._usage_cells.get(key)
        if cells is before:
            return None
        days = self._days_of(key, cells)
        old = self._usage_sent.get(key, {})
        changed = {day: value for day, value in days.items() if old.get(day) != value}
        removed = [day for day in old if day not in days]
        if changed and before:  # (what the web tier holds of a day: the cells it was sent)
            was, now = team_usage.by_day(before), team_usage.by_day(cells)
            changed = {day: team_usage.day_change(day, was.get(day) if day in old else None, now[day], value)
                       for day, value in changed.items()}
        return cells, days, removed, team_usage.entry_usage(changed, removed)

    def _write_usage(self, pipe, plans: dict) -> None:
        fields, gone = {}, []
        for key, plan in plans.items():
            if plan is None or plan[3] is None:
                continue
            old = self._usage_sent.get(key, {})
            for day, value in plan[1].items():
                if old.get(day) != value:
                    fields[keys.usage_field(key, day)] = value
            gone += [keys.usage_field(key, day) for day in plan[2]]
        if fields:
            pipe.hset(self._usage_key, mapping=fields)
        if gone:
            pipe.hdel(self._usage_key, *gone)

    def _usage_done(self, plans: dict) -> None:
        """The transaction went through: the hash holds what the plans wrote."""
        for key, plan in plans.items():
            if plan is not None:
                self._usage_cells[key] = plan[0]
                self._usage_sent[key] = plan[1]

    def _write_tail(self, key: str) -> None:
        """SET the session's latest messages (already masked and clipped by its source's page())."""
        session = self.store.get(key)
        if session is None or self.read_tail is None:
            return
        try:
            page = self.read_tail(key, keys.TRANSCRIPT_MESSAGES)
        except Exception as exc:  # the transcript went or is unreadable: the next change tries again
            log.debug("the latest messages of %s could not be read: %s", key, exc)
            return
        if page is None:
            return
        doc = {"messages": page["messages"], "total": page["total"], "updatedAt": session.get("updatedAt")}
        self._redis.set(keys.transcript_key(self.host, key), orjson.dumps(doc), ex=keys.TRANSCRIPT_TTL_S)

    def _entry(self, target, wire_type: str, key: str | None = None, data: bytes | None = None,
               usage: tuple[str, bytes] | None = None) -> None:
        """XADD one stream entry on ``target``: a transaction's pipeline, or the client itself."""
        fields = {"t": wire_type}
        if key is not None:
            fields["k"] = key
            if data is not None:
                fields["d"] = data
        if usage is not None:
            fields[usage[0]] = usage[1]
        fields["b"] = self.boot
        fields["v"] = keys.WIRE_VERSION
        target.xadd(self._stream_key, fields, maxlen=keys.STREAM_MAXLEN, approximate=True)

    def _xadd(self, wire_type: str) -> None:
        self._entry(self._redis, wire_type)
        self._wrote()

    def _wrote(self) -> None:
        self._last_write = time.monotonic()
        self.last_publish_at = _now_ms()
        self._attempt = 0

    # ------------------------------------------------------------ faults
    def _up(self) -> None:
        if self.engine == "down":
            log.info("the team's engine %s is reachable again after %.1f s", client.redacted(self.url),
                     (_now_ms() - self.since) / 1000.0)
        self.engine, self.since = "ok", None

    def _failed(self, exc: BaseException, *, lost: bool) -> None:
        """Drop what is pending (the resync after reconnecting covers it) and count the failure."""
        with self._cond:
            self._resync_due = True
            self._pending.clear()
            self._tails.clear()
            self._usage_due.clear()
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.engine != "down":
            log.warning("the team's engine %s failed (%s); the local dashboard goes on, retrying",
                        client.redacted(self.url), self.last_error)
            self.engine, self.since = "down", _now_ms()
        if lost:
            self._close()

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, seconds)

    def _close(self) -> None:
        if self._redis is not None:
            r, self._redis = self._redis, None
            try:
                r.close()
            except Exception:
                pass
