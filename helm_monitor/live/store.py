"""The current sessions, and the events that describe how they change.

The pump hands the store fresh Session dicts for the keys that the sources
said changed; the store keeps what is really different and publishes one
event per kind of change with only those sessions. Readers (REST, stream
snapshots) get copies under a lock.

Events go to channels: every session to the main broadcaster
(``/api/sessions/stream``), and each source's sessions to that source's own
broadcaster where one is kept (``/api/claude-sessions/stream`` carries Claude
Code sessions only, SPEC 3). A change that comes with a ``position`` (the team web
tier's: where in the engine's streams it was read) gives every channel's event that
position, which a PositionBroadcaster makes its id; a plain Broadcaster numbers its own.
"""

from __future__ import annotations

import threading
import time

from helm_monitor.live.broadcaster import Broadcaster, payload

# A whole-state payload (init, refresh) is reused for clients connecting
# within this long of each other while nothing changed: 1,000 browsers
# reconnecting after a restart cost one serialisation, not 1,000.
SNAPSHOT_REUSE_S = 1.0

STATUSES = ("busy", "waiting", "idle", "ended")
# What a session-deleted event says of the session that went (SPEC 4 v2).
DELETED_FIELDS = ("key", "id", "host", "source", "projectPath", "projectDir")


def newest_first(sessions) -> list[dict]:
    # Active sessions sort by their activity like the rest: the page groups them.
    return sorted(sessions, key=lambda s: s.get("updatedAt") or "", reverse=True)


class SessionStore:
    def __init__(self, broadcaster: Broadcaster, by_source: dict[str, Broadcaster] | None = None):
        self.broadcaster = broadcaster
        self.by_source = dict(by_source or {})  # source name -> the broadcaster of its sessions only
        self._sessions: dict[str, dict] = {}  # key -> Session
        self._lock = threading.Lock()
        self._version = 0
        self._payloads: dict[tuple[str, str | None], tuple[int, float, bytes]] = {}
        # Called with (event type, sessions) after each publish, in the caller's thread: what
        # follows the store besides the streams (the team agent's publisher). Must not block.
        self._listeners: list = []

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def _tell(self, kind: str, sessions: list[dict]) -> None:
        for listener in self._listeners:
            try:
                listener(kind, sessions)
            except Exception:  # a follower's fault never stops the streams
                import logging
                logging.getLogger(__name__).exception("a store listener failed")

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def version(self) -> int:
        """Changes whenever the sessions do: what cached views of them go by."""
        return self._version

    def channel(self, source: str | None) -> Broadcaster:
        """The broadcaster of one source's sessions, or of every session (None)."""
        return self.broadcaster if source is None else self.by_source[source]

    @property
    def channels(self) -> list[Broadcaster]:
        """Every broadcaster: all sessions' first, then each source's own."""
        return [self.broadcaster, *self.by_source.values()]

    def publish_status(self, event_type: str, data: dict) -> None:
        """A status message (``host-status``, ``feed-status``: SPEC 4 v2) to every channel's clients."""
        for channel in self.channels:
            channel.publish_status(event_type, data)

    def snapshot(self, source: str | None = None) -> list[dict]:
        with self._lock:
            values = list(self._sessions.values())
        if source is not None:
            values = [s for s in values if s["source"] == source]
        return newest_first(values)

    def snapshot_payload(self, event_type: str, source: str | None = None) -> bytes:
        """The SSE data of an ``init`` or ``refresh`` carrying every session (of ``source``)."""
        now = time.monotonic()
        cached = self._payloads.get((event_type, source))
        if cached is not None and cached[0] == self._version and now - cached[1] < SNAPSHOT_REUSE_S:
            return cached[2]
        version = self._version
        data = payload(event_type, self.snapshot(source))
        self._payloads[(event_type, source)] = (version, now, data)
        return data

    def get(self, key: str) -> dict | None:
        return self._sessions.get(key)

    def find(self, source: str, session_id: str) -> dict | None:
        """A session by its agent's own id; of several hosts' (same id), the most recently updated."""
        with self._lock:
            found = [s for s in self._sessions.values() if s["id"] == session_id and s["source"] == source]
        return max(found, key=lambda s: s.get("updatedAt") or "") if found else None

    def counts_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        with self._lock:
            for s in self._sessions.values():
                counts[s["status"]] = counts.get(s["status"], 0) + 1
        return counts

    def counts_by_source(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for s in self._sessions.values():
                counts[s["source"]] = counts.get(s["source"], 0) + 1
        return counts

    def apply(self, changes: dict[str, dict | None], *,
              position: tuple[int, int] | None = None) -> dict[str, list[dict]]:
        """Record new versions (None: gone) and publish what really changed (at ``position``)."""
        created, updated, deleted = [], [], []
        with self._lock:
            for key, new in changes.items():
                old = self._sessions.get(key)
                if new is None:
                    if old is not None:
                        del self._sessions[key]
                        deleted.append({name: old.get(name) for name in DELETED_FIELDS})
                elif old is None:
                    self._sessions[key] = new
                    created.append(new)
                elif old != new:
                    self._sessions[key] = new
                    updated.append(new)
            if created or updated or deleted:
                self._version += 1
        out = {"session-created": newest_first(created), "session-updated": newest_first(updated),
               "session-deleted": deleted}
        for kind, sessions in out.items():
            if sessions:
                self.broadcaster.publish(kind, sessions, position=position)
                for source, channel in self.by_source.items():
                    mine = [s for s in sessions if s["source"] == source]
                    if mine:
                        channel.publish(kind, mine, position=position)
                self._tell(kind, sessions)
        return out

    def replace_all(self, sessions: dict[str, dict], *, position: tuple[int, int] | None = None) -> int:
        """A full rescan (or snapshot, at ``position``): every client gets the whole state as ``refresh``."""
        with self._lock:
            self._sessions = dict(sessions)
            self._version += 1
            values = newest_first(self._sessions.values())
        self.broadcaster.publish("refresh", values, position=position)
        for source, channel in self.by_source.items():
            channel.publish("refresh", [s for s in values if s["source"] == source], position=position)
        self._tell("refresh", values)
        return len(values)
