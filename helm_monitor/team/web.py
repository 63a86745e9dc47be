"""``helm-monitor web``: the team's dashboard, every host's sessions read from the shared engine.

:class:`TeamWebService` is what the web layer serves in place of this host's LiveService, with
the same surface (``store``, ``broadcaster``, ``channels``, ``start``/``stop``, ``wait_ready``,
``health``, ``hosts``, ``feed_status``, ``conversation``, ``monitor.refresh()``, ``usage``). It reads no
files: its only source is the feed (team/feed.py), which follows every host's stream into the
store. The broadcasters are PositionBroadcasters, whose ids are positions in the engine's
streams (``<epoch>.<ms>-<seq>``): every worker of every web machine numbers the same entries
alike, so a browser resumes on any of them (design/TEAM_SCALE.md 6.5).

Changes of the hosts' states and of the engine's reachability go to every channel as status
messages without ids (``host-status``, ``feed-status``, SPEC 4 v2).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time

import orjson
import redis

from helm_monitor.team.positions import PositionBroadcaster
from helm_monitor.live.store import SessionStore
from helm_monitor.live.usage import UsageIndex
from helm_monitor.sources.pages import window
from helm_monitor.team import client, keys
from helm_monitor.team.feed import Feed

log = logging.getLogger(__name__)

CLAUDE = "claude-code"
# The Claude-only channel's ids: the engine's epoch with this after it (SPEC 3: a stream of its own).
CHANNEL_SUFFIX = {CLAUDE: "c"}
# The latest messages an agent publishes of one session are bounded (keys.TRANSCRIPT_MESSAGES);
# what is bigger than this is not one of them.
MAX_TRANSCRIPT_BYTES = 8 << 20
MAX_PAGE = 500
# /healthz says degraded when the blocking read has not returned for this long beyond its block.
READ_STUCK_S = 10.0


class _Monitor:
    """What ``POST /api/sessions/refresh`` and /metrics ask of a monitor: here, the feed."""

    last_lag_s = None
    last_fs_event_at = None

    def __init__(self, service: "TeamWebService"):
        self._service = service

    @property
    def alive(self) -> bool:
        return self._service.feed.alive

    @property
    def ready(self) -> threading.Event:
        return self._service.feed.ready

    def refresh(self) -> int:
        """A new snapshot from the engine; every client gets a refresh. The session count."""
        try:
            return self._service.feed.refresh()
        except client.engine_errors() as exc:
            log.warning("refresh: the engine cannot be read (%s); the last state stays", exc)
            return len(self._service.store)


class TeamWebService:
    def __init__(self, config):
        self.config = config
        self.host = config.host_name
        pending = "0" + secrets.token_hex(4)  # until the engine's epoch is known: matches no browser's id
        self.broadcaster = PositionBroadcaster(queue_size=config.client_queue, max_clients=config.max_clients,
                                               epoch=pending, overlap_ms=keys.REPLAY_OVERLAP_MS,
                                               window_s=keys.RING_WINDOW_S, ring_max=keys.RING_MAX)
        claude_only = PositionBroadcaster(queue_size=config.client_queue, max_clients=config.max_clients,
                                          shares_cap_with=self.broadcaster, epoch=pending + CHANNEL_SUFFIX[CLAUDE],
                                          overlap_ms=keys.REPLAY_OVERLAP_MS, window_s=keys.RING_WINDOW_S,
                                          ring_max=keys.RING_MAX)
        self.store = SessionStore(self.broadcaster, {CLAUDE: claude_only})
        # Usage and cost (SPEC 10, ``/api/usage``): the cells each host priced and published, for
        # every listed session (offline hosts' included: usage is history). Waiting time is what
        # this worker observes of its own store's statuses, from its start (not saved: several
        # workers would write one file).
        self.usage = UsageIndex()
        self.store.add_listener(self.usage.store_listener)
        self.feed = Feed(self.store, self, url=config.redis_url, ca_file=config.redis_ca_file,
                         offline_s=config.team_offline_s, name=f"helm-web-{self.host}", usage=self.usage)
        self.monitor = _Monitor(self)
        self.watcher = None
        self.catalog = None
        self.attached: list = []
        self.started_at: float | None = None
        self._start_lock = threading.Lock()

    # -- life ----------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self.started_at is not None

    def start(self, offload=None, request_offload=None) -> None:
        """In the worker, after gevent patched: the feed's thread is a greenlet. Nothing here
        reads files, so the offloads are not needed."""
        with self._start_lock:
            if self.started_at is not None:
                return
            self.started_at = time.monotonic()
            self.feed.start()
            log.info("web tier: following every host's stream in %s", client.redacted(self.config.redis_url))

    def stop(self) -> None:
        self.close_streams()
        self.feed.stop()

    def close_streams(self) -> int:
        return sum(b.close_all("shutdown") for b in self.channels)

    def wait_ready(self, timeout: float) -> bool:
        """The first snapshot is in the store; False at once while the engine cannot be read
        (what is served then is what there is)."""
        return self.feed.settled.wait(timeout) and self.feed.ready.is_set()

    def wait_streamable(self, timeout: float) -> bool:
        """A stream opened before the first snapshot would get an id of no epoch yet, so a
        browser resuming from another worker would start over: it waits for the snapshot
        (not while the engine cannot be read at all)."""
        return self.wait_ready(timeout)

    @property
    def channels(self) -> list[PositionBroadcaster]:
        return [self.broadcaster, *self.store.by_source.values()]

    @property
    def clients(self) -> int:
        return sum(b.clients for b in self.channels)

    # -- what the feed tells the broadcasters --------------------------------
    def reset(self, epoch: str) -> None:
        self.broadcaster.reset(epoch)
        for source, channel in self.store.by_source.items():
            channel.reset(epoch + CHANNEL_SUFFIX.get(source, source))

    def preload(self, events: list, floor: tuple[int, int]) -> None:
        self.broadcaster.preload(events)
        self.broadcaster.set_floor(floor)
        for source, channel in self.store.by_source.items():
            mine = [(pos, kind, [s for s in sessions if s.get("source") == source]) for pos, kind, sessions in events]
            channel.preload([event for event in mine if event[2]])
            channel.set_floor(floor)

    def status_changed(self, kind: str) -> None:
        data = {"hosts": self.hosts()} if kind == "host-status" else self.feed_status()
        for channel in self.channels:
            channel.publish_status(kind, data)

    # -- what the web layer asks ---------------------------------------------
    def hosts(self) -> list[dict]:
        """``/api/hosts`` (SPEC 3): every host that has published."""
        return self.feed.hosts.view(self.store.snapshot())

    def feed_status(self) -> dict:
        return {"ok": self.feed.ok, "since": self.feed.down_since}

    def conversation(self, key: str, offset: int, limit: int) -> dict | None:
        """A page of the latest messages the session's host published (the full transcript stays
        on that host); None for a session that is neither listed nor published."""
        host = key.split(":", 1)[0]
        if not keys.valid_host(host) or self.feed.r is None:
            return None
        note = f"the full transcript stays on its host {host}"
        try:
            raw = self.feed.r.get(keys.transcript_key(host, key))
        except client.engine_errors():
            raw, note = None, f"the engine cannot be read now; the full transcript stays on its host {host}"
        except redis.ResponseError:
            raw = None
        published = _transcript(raw)
        if published is None:
            if self.store.get(key) is None:
                return None
            published = ([], 0)
        messages, total = published
        first = total - len(messages)  # the index of the first message held
        start, end = window(offset, limit, total, MAX_PAGE)
        page = messages[max(start - first, 0):max(end - first, 0)]
        return {"messages": page, "nextOffset": end if end < total else None, "total": total,
                "remote": True, "note": note}

    def subagent_conversation(self, key: str, agent_id: str, offset: int, limit: int) -> dict | None:
        """Subagents' transcripts are not published (they stay on their host): never found here."""
        return None

    def health(self) -> dict:
        feed = self.feed
        now = feed.engine_ms()
        newest = feed.hosts.newest_ms()
        read_age = None if feed.last_read_at is None else time.monotonic() - feed.last_read_at
        stuck = read_age is not None and read_age > feed.block_ms / 1000 + READ_STUCK_S
        healthy = feed.ok and feed.up and feed.alive and not stuck
        return {
            "status": "ok" if healthy or not self.started else "degraded",
            "role": "web",
            "pid": os.getpid(),
            "host": self.host,
            "scan": "not-started" if not self.started else ("complete" if feed.ready.is_set() else "scanning"),
            "engine": {"url": client.redacted(self.config.redis_url), "reachable": feed.ok,
                       "downSince": feed.down_since, "epoch": feed.epoch},
            "secondsSinceLastRead": None if read_age is None else round(read_age, 3),
            # Any entry proves the path agent -> engine -> this worker; heartbeats make sure there is one.
            "newestHeartbeatAgeSeconds": None if now is None or newest is None else round((now - newest) / 1000, 3),
            "hosts": feed.hosts.summary(),
            "sessions": len(self.store),
            "usageSessions": len(self.usage),  # listed sessions whose usage is counted (with or without cells)
            "clients": self.clients,
            "ignored": dict(feed.hosts.ignored),
            "feed": dict(feed.counters),
            "watcher": {"mode": "stopped", "watching": [], "error": None, "inotifyExhausted": False, "fallbacks": 0},
            "uptimeSeconds": None if self.started_at is None else round(time.monotonic() - self.started_at, 3),
        }


def _transcript(raw: bytes | None) -> tuple[list, int] | None:
    """(messages, total) of what an agent published, or None when there is nothing usable."""
    if raw is None or len(raw) > MAX_TRANSCRIPT_BYTES:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return None
    messages = value["messages"]
    total = value.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < len(messages):
        total = len(messages)
    return messages, total
