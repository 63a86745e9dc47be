"""The web tier's source of sessions: every host's stream in the engine, followed with one blocking read.

Where the local app's monitor reads files into the store, the feed reads the engine
(design/TEAM_SCALE.md 6.4-6.10), in one thread (a greenlet under gevent: redis-py's sockets
are cooperative):

1. Hosts are found by ``SCAN MATCH hm:h:*:ev TYPE stream``, again every ``DISCOVER_EVERY_S``.
2. The epoch is ``HSETNX hm:meta epoch``, then ``HGET``: every worker agrees on it.
3. Each host's state and position are read atomically (``MULTI; XREVRANGE ev + - COUNT 1;
   HGETALL s; HGETALL u; EXEC``) and become the store's state (a ``refresh`` at the newest
   position) and the usage index's (team/usage.py: what each host priced, never priced again).
4. The broadcasters' rings are preloaded with the last ``window_s`` of every stream, so a
   worker seconds old can resume a browser that another worker served. Its floor is raised
   wherever that history is incomplete: a stream trimmed or with entries deleted inside the
   window, or a ``resync`` (whose effect lives in the hash, not in the stream).
5. Then ``XREAD COUNT 500 BLOCK`` over every host's stream, each reply sorted by (id, host)
   and applied to the store as one batch at the position of its newest entry; the usage an
   entry carries goes to the usage index with it.

What a host writes is checked before it is used: a refused entry is skipped and counted
(team/hosts.py) and never stops the feed or touches another host's sessions. An entry id
further than FUTURE_TOLERANCE_MS ahead of the engine's clock never moves the position: a
host can jam its own stream, nobody else's.

When the engine cannot be reached the store keeps what it has, the service says so
(``feed-status``) and the feed reconnects with backoff. Back with the same epoch and every
host's position still in its stream, it reads on: nothing was missed. Otherwise (the epoch
is gone: the engine lost its data; or a position was trimmed away) it takes a new snapshot,
and a new epoch makes every browser holding an old id start over with ``init``.
"""

from __future__ import annotations

import collections
import heapq
import logging
import re
import secrets
import socket
import threading
import time

import redis

from helm_monitor.team import client, keys
from helm_monitor.team.hosts import HIDDEN, ONLINE, Hosts, Refused, decode_entry, stamp, stamped
from helm_monitor.team.usage import HostUsage, UsageMirror, decode_day, decode_entry_usage, valid_usage

log = logging.getLogger(__name__)

READ_COUNT = 500
# Under a steady flow entries are applied (and told to clients) at most this often; a change
# after a quiet spell goes at once (_gathered).
BATCH_S = 0.05
DISCOVER_EVERY_S = 5.0
# How often the engine's clock is read again (between reads it is the last reading plus
# this process's monotonic time since).
CLOCK_EVERY_S = 1.0
# Hosts snapshotted per MULTI: each transaction holds the engine a few ms at most.
SNAPSHOT_HOSTS_PER_TX = 25
_EPOCH_RE = re.compile(r"[0-9A-Za-z]{1,32}")

Position = tuple[int, int]


class Feed:
    """Follows the engine into ``store`` (and ``usage``, a UsageIndex, if given); ``out`` is told
    what concerns its broadcasters (``reset(epoch)``, ``preload(events, floor)``, ``status_changed(kind)``)."""

    def __init__(self, store, out, *, url: str, ca_file: str | None = None, offline_s: float,
                 hide_after_s: float = keys.HIDE_AFTER_S, block_ms: int | None = None,
                 window_s: float = keys.RING_WINDOW_S, ring_max: int = keys.RING_MAX, name: str = "helm-web",
                 usage=None):
        self.store, self.out = store, out
        # The usage index follows the store: a listed session has the cells its host published.
        self.mirror = UsageMirror(usage) if usage is not None else None
        if self.mirror is not None:
            self.mirror.store = store
            store.add_listener(self.mirror.store_listener)
        self.url, self.ca_file, self.name = url, ca_file, name
        # A silent host must be noticed within a fraction of the offline time, even when every
        # stream is idle and the read would block for BLOCK_MS.
        self.block_ms = block_ms or max(50, min(keys.BLOCK_MS, int(offline_s * 1000 / 3)))
        self.window_ms = int(window_s * 1000)
        self.ring_max = ring_max
        self.hosts = Hosts(offline_ms=int(offline_s * 1000), hide_ms=int(hide_after_s * 1000))
        self.epoch: str | None = None
        self.position: Position = (0, 0)  # the newest entry applied (never one from the future)
        self._cursor: dict[str, Position] = {}  # per host: the last entry read
        self._lock = threading.RLock()  # the store's writer: this thread, or a manual refresh
        self._stop = threading.Event()
        self.ready = threading.Event()  # the first snapshot is in the store
        self.settled = threading.Event()  # ready, or the engine did not answer the first time
        self.up = False  # following the streams now
        self.down_since: int | None = None  # epoch ms: since when the engine cannot be read
        self.last_read_at: float | None = None  # monotonic: the last XREAD return
        self._applied_at = 0.0  # monotonic: the last batch of entries applied
        self.counters: collections.Counter = collections.Counter()
        self._clock: tuple[int, float] | None = None  # (engine ms, monotonic) at the last TIME
        self._next_clock = self._next_discover = 0.0
        self._thread: threading.Thread | None = None
        self.r: redis.Redis | None = None
        self.reader: redis.Redis | None = None

    # -- life ----------------------------------------------------------------
    def start(self) -> None:
        self.r = client.connect(self.url, ca_file=self.ca_file, name=self.name)
        self.reader = client.connect_feed(self.url, ca_file=self.ca_file, name=f"{self.name}-feed",
                                          block_ms=self.block_ms)
        self._thread = threading.Thread(target=self.run, name="helm-team-feed", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake_reader()
        if self._thread is not None:
            # A read that began just before the wake-up ends with its block.
            self._thread.join(self.block_ms / 1000 + 2.0)
        for c in (self.reader, self.r):
            if c is not None:
                c.close()

    def _wake_reader(self) -> None:
        """End a read blocked in the engine: its socket shut (not closed) here, so that the
        reading thread meets the end itself and redis-py cleans up in that thread. Closing
        the connection from this thread instead races its parser and can leave the read
        waiting out the socket timeout."""
        pool = self.reader.connection_pool if self.reader is not None else None
        for conn in list(getattr(pool, "_connections", ())):
            sock = getattr(conn, "_sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self.epoch is None or not self._still_valid():
                    self.snapshot()
                self._set_up()
                attempt = 0
                self._follow()
            except Exception as exc:  # noqa: BLE001 - the feed never dies; each failure is a pause
                if self._stop.is_set():
                    break
                self._set_down(exc)
                self._stop.wait(client.backoff(attempt))
                attempt += 1

    @property
    def ok(self) -> bool:
        """What ``feed-status`` says: the engine was reachable the last time it was asked."""
        return self.down_since is None

    def _set_up(self) -> None:
        self.up = True
        if self.down_since is not None:
            log.info("the engine %s answers again", client.redacted(self.url))
            self.down_since = None
            self.out.status_changed("feed-status")

    def _set_down(self, exc: BaseException) -> None:
        self.counters["errors"] += 1
        self.settled.set()
        if isinstance(exc, client.engine_errors()):
            detail = f"{type(exc).__name__}: {exc}"
        else:
            log.exception("the team feed failed; it starts again")
            detail = repr(exc)
        self.up = False
        if self.down_since is None:
            log.warning("the engine %s cannot be read (%s); serving the last state, reconnecting",
                        client.redacted(self.url), detail)
            self.down_since = int(time.time() * 1000)
            self.out.status_changed("feed-status")

    # -- the engine's clock -------------------------------------------------
    def _sync_clock(self) -> None:
        sec, usec = self.r.time()
        self._clock = (sec * 1000 + usec // 1000, time.monotonic())
        self._next_clock = time.monotonic() + CLOCK_EVERY_S

    def engine_ms(self) -> int | None:
        if self._clock is None:
            return None
        ms, at = self._clock
        return ms + int((time.monotonic() - at) * 1000)

    # -- snapshots -----------------------------------------------------------
    def _epoch(self) -> str:
        self.r.hsetnx(keys.META, keys.EPOCH_FIELD, secrets.token_hex(4))
        return _epoch_text(self.r.hget(keys.META, keys.EPOCH_FIELD))

    def _still_valid(self) -> bool:
        """After a failure: the same epoch, and every host's position still in its stream."""
        if _epoch_text(self.r.hget(keys.META, keys.EPOCH_FIELD), strict=False) != self.epoch:
            log.warning("the engine's epoch changed (it lost its data): taking a new snapshot")
            return False
        pipe = self.r.pipeline(transaction=False)
        names = [name for name, pos in self._cursor.items() if pos != (0, 0)]  # (0, 0): read from the start
        for name in names:
            pos = keys.format_id(self._cursor[name])
            pipe.xrange(keys.stream_key(name), pos, pos, count=1)
        for name, found in zip(names, pipe.execute(raise_on_error=False)):
            if not (isinstance(found, list) and found):
                log.warning("host %s: its stream no longer holds where this worker read to: taking a new snapshot",
                            name)
                return False
        return True

    def snapshot(self) -> int:
        """Every host's state into the store (a ``refresh``), the rings preloaded. Returns the session count."""
        epoch = self._epoch()
        self._sync_clock()
        names = self._discover()
        snap = self._read_hosts(names)
        now = self.engine_ms()
        with self._lock:
            self.hosts.clear()
            merged: dict[str, dict] = {}
            usage: list[HostUsage] = []
            newest = (0, 0)
            for name, (pos, last_ms, sessions, cells) in snap.items():
                host = self.hosts.add(name, last_ms, now)
                if last_ms is not None:
                    newest = max(newest, pos)
                if host.state != HIDDEN:
                    merged.update(stamped(sessions, stale=not host.online))
                    usage.append(cells)
            if self.mirror is not None:
                self.mirror.replace(usage)  # (the store's refresh below hands it to the index)
            if epoch != self.epoch:
                if self.epoch is not None:
                    self.counters["epochs"] += 1
                self.out.reset(epoch)
                self.position = (0, 0)
            self.epoch = epoch
            self.position = max(self.position, newest)
            self._cursor = {name: pos for name, (pos, *_) in snap.items()}
            count = self.store.replace_all(merged, position=self.position)
            events, floor = self._history(snap, now)
            self.out.preload(events, floor)
            self.counters["snapshots"] += 1
        self._next_discover = time.monotonic() + DISCOVER_EVERY_S
        self.ready.set()
        self.settled.set()
        self.out.status_changed("host-status")
        return count

    def _discover(self) -> list[str]:
        names = []
        for key in self.r.scan_iter(match=keys.STREAM_MATCH, count=1000, _type="stream"):
            name = keys.host_of_stream(key)
            if name is not None:
                names.append(name)
        return sorted(set(names))

    def _read_hosts(self, names) -> dict[str, tuple[Position, int | None, dict[str, dict], HostUsage]]:
        """Per host: (position, ms of its newest entry that counts, its valid sessions, its valid
        usage), atomically."""
        out = {}
        names = list(names)
        for i in range(0, len(names), SNAPSHOT_HOSTS_PER_TX):
            chunk = names[i:i + SNAPSHOT_HOSTS_PER_TX]
            pipe = self.r.pipeline(transaction=True)
            for name in chunk:
                pipe.xrevrange(keys.stream_key(name), "+", "-", count=1)
                pipe.hgetall(keys.snapshot_key(name))
                pipe.hgetall(keys.usage_key(name))
            replies = pipe.execute(raise_on_error=False)
            for j, name in enumerate(chunk):
                last, state, usage = replies[3 * j], replies[3 * j + 1], replies[3 * j + 2]
                if isinstance(last, Exception):
                    self.hosts.ignore(name, "unreadable-stream", str(last))
                    continue
                pos = keys.parse_id(last[0][0]) if last else (0, 0)
                last_ms = pos[0] if last and not self._future(pos) else None
                out[name] = (pos, last_ms, self.hosts.valid_state(name, state), self._valid_usage(name, usage))
                time.sleep(0)  # under gevent: the streams run between hosts (checking cells is ~1 us each)
        return out

    def _valid_usage(self, name: str, usage) -> HostUsage:
        if self.mirror is None:
            return HostUsage()
        return valid_usage(self.hosts, name, usage, known=self.mirror)

    def _history(self, snap, now: int) -> tuple[list, Position]:
        """The last window of every host's stream up to its snapshot position, and the floor
        from which that history is complete."""
        start = (max(now - self.window_ms, 0), 0)
        floor = start
        names = [n for n, (pos, *_) in snap.items() if pos != (0, 0) and self.hosts.get(n).state != HIDDEN]
        pipe = self.r.pipeline(transaction=True)  # each stream's info and entries agree
        for name in names:
            pipe.xinfo_stream(keys.stream_key(name))
            pipe.xrevrange(keys.stream_key(name), keys.format_id(snap[name][0]), keys.format_id(start),
                           count=self.ring_max)
        replies = pipe.execute(raise_on_error=False)
        per_host = []
        for i, name in enumerate(names):
            info, entries = replies[2 * i], replies[2 * i + 1]
            if isinstance(info, Exception) or isinstance(entries, Exception):
                floor = max(floor, snap[name][0])  # its history cannot be read: none held
                continue
            floor = max(floor, _complete_from(info, start))
            if len(entries) >= self.ring_max:
                floor = max(floor, keys.parse_id(entries[-1][0]))
            stale = not self.hosts.get(name).online
            items = []
            for entry_id, fields in reversed(entries):
                pos = keys.parse_id(entry_id)
                if self._future(pos, now):
                    continue
                try:
                    kind, key, value = decode_entry(name, fields)
                except Refused:
                    continue
                if kind == "resync":
                    floor = max(floor, (pos[0], pos[1] + 1))
                elif kind in ("created", "updated"):
                    items.append((pos, name, f"session-{kind}", [stamp(value, stale)]))
                elif kind == "deleted":
                    items.append((pos, name, "session-deleted", [value]))
            per_host.append(items)
            time.sleep(0)  # under gevent: the streams run between hosts (a host's window is ~10 ms of JSON)
        merged = list(heapq.merge(*per_host, key=lambda item: (item[0], item[1])))[-self.ring_max:]
        if merged and len(merged) == self.ring_max:
            floor = max(floor, merged[0][0])
        return [(pos, kind, sessions) for pos, _, kind, sessions in merged if pos >= floor], floor

    def _future(self, pos: Position, now: int | None = None) -> bool:
        now = self.engine_ms() if now is None else now
        return now is not None and pos[0] > now + keys.FUTURE_TOLERANCE_MS

    # -- following -----------------------------------------------------------
    def _follow(self) -> None:
        while not self._stop.is_set():
            self._housekeeping()
            streams = {keys.stream_key(name): keys.format_id(pos) for name, pos in self._cursor.items()}
            if not streams:
                self._stop.wait(self.block_ms / 1000)
                self.last_read_at = time.monotonic()
                continue
            try:
                reply = self.reader.xread(streams, count=READ_COUNT, block=self.block_ms)
            except redis.ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                # A host replaced its stream by another type (it may: they are its keys). Finding
                # hosts again (streams only) leaves it out, and everyone else reads on.
                self.counters["wrongtype"] += 1
                self._rediscover()
                continue
            self.last_read_at = time.monotonic()
            if reply:
                self._apply(self._gathered(reply, streams))
                self._applied_at = time.monotonic()
            time.sleep(0)  # under gevent: let the streams write what this reply published

    def _gathered(self, reply, streams: dict[str, str]):
        """``reply`` and whatever else arrives within BATCH_S of the last batch applied.

        The first change after a quiet spell goes out at once; under a steady flow (50 hosts
        writing 10 changes a second) every client gets one message per BATCH_S holding what
        changed, not one per entry: what it costs a worker to tell 1,000 clients is per
        message far more than per session in it."""
        wait = self._applied_at + BATCH_S - time.monotonic()
        if wait <= 0 or self._stop.wait(wait):
            return reply
        after = dict(streams)
        for stream, entries in reply:
            if entries:
                name = stream.decode("ascii", "replace") if isinstance(stream, bytes) else stream
                after[name] = entries[-1][0].decode("ascii") if isinstance(entries[-1][0], bytes) else entries[-1][0]
        try:
            more = self.reader.xread(after, count=READ_COUNT)  # not blocking: what is there now
        except redis.ResponseError:  # (a stream replaced meanwhile: the next read finds out)
            return reply
        return list(reply) + list(more or [])

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_clock:
            self._sync_clock()
        if now >= self._next_discover:
            self._rediscover()
        self._judge()

    def _rediscover(self) -> None:
        self._next_discover = time.monotonic() + DISCOVER_EVERY_S
        names = set(self._discover())
        gone = set(self._cursor) - names
        new = names - set(self._cursor)
        snap = self._read_hosts(new) if new else {}
        if not gone and not snap:
            return
        now = self.engine_ms()
        with self._lock:
            for name in gone:
                log.info("host %s: its stream is gone; its sessions leave the list", name)
                self._cursor.pop(name, None)
                self.hosts.remove(name)
                self._publish(dict.fromkeys(self._keys_of(name)), self.position)
            for name, (pos, last_ms, sessions, cells) in snap.items():
                host = self.hosts.add(name, last_ms, now)
                self._cursor[name] = pos
                log.info("host %s: found, %d session(s)", name, len(sessions))
                if host.state != HIDDEN:
                    touched = self.mirror.replace_host(name, cells) if self.mirror is not None else ()
                    self._publish(stamped(sessions, stale=not host.online), pos if last_ms is not None else None)
                    self._flush(touched)
        self.out.status_changed("host-status")

    def _judge(self) -> None:
        now = self.engine_ms()
        turned = self.hosts.judge(now) if now is not None else []
        if not turned:
            return
        with self._lock:
            changes: dict[str, dict | None] = {}
            for host, old, new in turned:
                changes.update(self._transition(host.name, old, new))
            self._publish(changes, self.position)
            self._flush(changes)
        self.out.status_changed("host-status")

    def _transition(self, name: str, old: str, new: str) -> dict[str, dict | None]:
        """What a host's change of state does to its sessions: marked stale, or not; hidden, or back."""
        log.info("host %s: %s -> %s", name, old, new)
        if new == HIDDEN:
            return dict.fromkeys(self._keys_of(name))
        if old == HIDDEN:  # its sessions left the list: read them again (and their usage)
            return stamped(self._read_state(name), stale=new != ONLINE)
        return {s["key"]: stamp(s, new != ONLINE) for s in self.store.snapshot() if s["host"] == name}

    def _apply(self, reply) -> None:
        now = self.engine_ms()
        items = []
        for stream, entries in reply:
            name = keys.host_of_stream(stream)
            for entry_id, fields in entries:
                pos = keys.parse_id(entry_id)
                if name is not None and pos is not None:
                    items.append((pos, name, fields))
        items.sort(key=lambda item: (item[0], item[1]))
        hosts_changed = False
        with self._lock:
            changes: dict[str, dict | None] = {}
            usage_changed: set[str] = set()
            for pos, name, fields in items:
                read_to = self._cursor.get(name)
                if read_to is None or pos <= read_to:
                    continue  # a host that left, or what a snapshot since already holds
                self._cursor[name] = pos
                self.counters["entries"] += 1
                if self._future(pos, now):
                    self.hosts.ignore(name, "future-id", keys.format_id(pos))
                    continue
                self.position = max(self.position, pos)
                boot = fields.get(b"b")
                turned = self.hosts.seen(name, pos[0], boot.decode("ascii", "replace") if boot else None)
                if turned is not None:  # back online: its first entry in this batch
                    hosts_changed = True
                    changes.update(self._transition(name, *turned))
                    usage_changed.update(changes)
                try:
                    kind, key, value = decode_entry(name, fields)
                except Refused as refused:
                    self.hosts.ignore(name, refused.reason, refused.detail)
                    continue
                if kind in ("created", "updated"):
                    changes[key] = stamp(value, False)
                elif kind == "deleted":
                    changes[key] = None
                    if self.mirror is not None:
                        self.mirror.drop(key)
                elif kind == "resync":
                    self._publish(changes, self.position)
                    changes = {}
                    usage_changed.update(self._resync(name))
                if kind in ("created", "updated", "usage") and self.mirror is not None \
                        and self._stage(name, key, fields):
                    usage_changed.add(key)
            self._publish(changes, self.position)
            self._flush(usage_changed)
        if hosts_changed:
            self.out.status_changed("host-status")

    def _resync(self, name: str) -> list[str]:
        """The host's hashes hold its whole state again: what is not in them is gone. Returns
        the keys whose usage was replaced."""
        changes: dict[str, dict | None] = dict.fromkeys(self._keys_of(name))
        state = self._read_state(name)
        changes.update(stamped(state, stale=False))
        self.counters["resyncs"] += 1
        self._publish(changes, self.position)
        return list(changes)

    def _read_state(self, name: str) -> dict[str, dict]:
        """A host's valid sessions, read with its usage (staged) in one transaction."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(keys.snapshot_key(name))
        if self.mirror is not None:
            pipe.hgetall(keys.usage_key(name))
        try:
            replies = pipe.execute(raise_on_error=False)  # (a reply that is an error is counted, not raised)
        except redis.ResponseError as exc:  # the transaction refused whole
            replies = [exc, exc]
        sessions = self.hosts.valid_state(name, replies[0])
        if self.mirror is not None:
            self.mirror.replace_host(name, self._valid_usage(name, replies[1]))
        return sessions

    # -- usage ---------------------------------------------------------------
    def _stage(self, name: str, key: str, fields: dict) -> bool:
        """The usage an entry of ``name`` carries for ``key``, staged; False when none (or refused)."""
        try:
            said = decode_entry_usage(name, key, fields)
            if said is None:
                return False
            how, what = said
            if how == "named":  # too big for the entry: the days are read from the hash
                what = self._named_days(name, key, what)
        except Refused as refused:
            self.hosts.ignore(name, refused.reason, refused.detail)
            return False
        self.mirror.stage(key, what)
        return True

    def _named_days(self, name: str, key: str, days: list[int]) -> dict[int, list | None]:
        if not days:
            return {}
        try:
            values = self.r.hmget(keys.usage_key(name), [keys.usage_field(key, day) for day in days])
        except redis.ResponseError as exc:
            raise Refused("unreadable-usage", str(exc)) from None
        return {day: None if raw is None else (decode_day(day, raw), False) for day, raw in zip(days, values)}

    def _flush(self, keys_) -> None:
        """The usage index given these sessions' cells (after the store took their changes)."""
        if self.mirror is not None and keys_:
            self.mirror.flush(keys_)

    def _keys_of(self, name: str) -> list[str]:
        return [s["key"] for s in self.store.snapshot() if s["host"] == name]

    def _publish(self, changes: dict, position: Position | None) -> None:
        if changes:
            if position is not None:
                self.position = max(self.position, position)
            self.store.apply(changes, position=self.position)

    def refresh(self) -> int:
        """A new snapshot now (``POST /api/sessions/refresh``); the session count."""
        with self._lock:
            return self.snapshot()


def _epoch_text(value, strict: bool = True) -> str | None:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if text is not None and _EPOCH_RE.fullmatch(text):
        return text
    if strict:
        raise redis.ResponseError(f"the engine's epoch is missing or malformed: {text!r}")
    return None


def _complete_from(info: dict, start: Position) -> Position:
    """From where a stream's history is whole: its first entry when older entries were
    trimmed away, just after an entry deleted inside the window."""
    floor = start
    first = info.get("first-entry")
    if first and info.get("entries-added", 0) > info.get("length", 0):
        floor = max(floor, keys.parse_id(first[0]) or start)
    deleted = keys.parse_id(info.get("max-deleted-entry-id") or b"0-0") or (0, 0)
    if deleted >= start:
        floor = max(floor, (deleted[0], deleted[1] + 1))
    return floor
