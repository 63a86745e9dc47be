"""The current sessions, and the events that describe how they change.

The pump hands the store fresh Session dicts for the ids that the domain said
changed; the store keeps what is really different and publishes one event per
kind of change with only those sessions. Readers (REST, stream snapshots) get
copies under a lock.
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


def newest_first(sessions) -> list[dict]:
    # Active sessions sort by their activity like the rest: the page groups them.
    return sorted(sessions, key=lambda s: s.get("updatedAt") or "", reverse=True)


class SessionStore:
    def __init__(self, broadcaster: Broadcaster):
        self.broadcaster = broadcaster
        self._sessions: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._payloads: dict[str, tuple[int, float, bytes]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def snapshot(self) -> list[dict]:
        with self._lock:
            values = list(self._sessions.values())
        return newest_first(values)

    def snapshot_payload(self, event_type: str) -> bytes:
        """The SSE data of an ``init`` or ``refresh`` carrying every session."""
        now = time.monotonic()
        cached = self._payloads.get(event_type)
        if cached is not None and cached[0] == self._version and now - cached[1] < SNAPSHOT_REUSE_S:
            return cached[2]
        version = self._version
        data = payload(event_type, self.snapshot())
        self._payloads[event_type] = (version, now, data)
        return data

    def get(self, session_id: str) -> dict | None:
        return self._sessions.get(session_id)

    def counts_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        with self._lock:
            for s in self._sessions.values():
                counts[s["status"]] = counts.get(s["status"], 0) + 1
        return counts

    def apply(self, changes: dict[str, dict | None]) -> dict[str, list[dict]]:
        """Record new versions (None: gone) and publish what really changed."""
        created, updated, deleted = [], [], []
        with self._lock:
            for sid, new in changes.items():
                old = self._sessions.get(sid)
                if new is None:
                    if old is not None:
                        del self._sessions[sid]
                        deleted.append({"id": sid, "projectPath": old["projectPath"], "projectDir": old["projectDir"]})
                elif old is None:
                    self._sessions[sid] = new
                    created.append(new)
                elif old != new:
                    self._sessions[sid] = new
                    updated.append(new)
            if created or updated or deleted:
                self._version += 1
        out = {"session-created": newest_first(created), "session-updated": newest_first(updated),
               "session-deleted": deleted}
        for kind, sessions in out.items():
            if sessions:
                self.broadcaster.publish(kind, sessions)
        return out

    def replace_all(self, sessions: dict[str, dict]) -> int:
        """A full rescan: every client gets the whole state as ``refresh``."""
        with self._lock:
            self._sessions = dict(sessions)
            self._version += 1
            values = list(self._sessions.values())
        self.broadcaster.publish("refresh", newest_first(values))
        return len(values)
