"""The hosts the web tier has seen in the engine: online or not, and what each sent that was refused.

A host's liveness is judged by the engine's clock, never the host's: the ``ms`` part of the id of
the newest entry it wrote (heartbeats every ``HEARTBEAT_S`` make sure there is one) against the
engine's ``TIME`` (design/TEAM_SCALE.md 6.8). A host is ``online`` while that entry is at most
``offline_ms`` old, ``offline`` after (its sessions stay listed, marked stale) and ``hidden`` once
it has been offline for ``hide_ms`` (its sessions leave the list). Entries with ids from the
future never count: they are the one thing a host can write that no ACL forbids (6.5).

What a host sends is checked here before anything uses it (:func:`decode_entry`,
:func:`session_of`): a session must be the host's own (``host`` == the stream's host, ``key`` ==
``<host>:<source>:<id>``), a JSON object with the fields the store sorts and counts by, and no
entry may exceed MAX_ENTRY_BYTES. What cannot be used is counted by reason and logged once per
host and reason, so that one noisy host neither floods the log nor hides another's problems.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field

import orjson

from helm_monitor.live.store import DELETED_FIELDS
from helm_monitor.sources.base import WarnOnce
from helm_monitor.team import keys

log = logging.getLogger(__name__)

ONLINE, OFFLINE, HIDDEN = "online", "offline", "hidden"
MAX_ENTRY_BYTES = 1 << 20


class Refused(Exception):
    """What a host wrote cannot be used: ``reason`` is what /healthz counts it under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def session_of(host: str, raw: bytes | None, *, key: str | None = None) -> dict:
    """The Session a host wrote (an entry's ``d``, a hash value), checked; raises Refused."""
    if raw is None:
        raise Refused("missing-data")
    if len(raw) > MAX_ENTRY_BYTES:
        raise Refused("huge", f"{len(raw)} bytes")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused("bad-json") from None
    if not isinstance(value, dict):
        raise Refused("not-an-object")
    for name in ("id", "source", "key", "host", "status"):
        if not isinstance(value.get(name), str):
            raise Refused("bad-session", f"{name} missing or not a string")
    for name in ("createdAt", "updatedAt"):
        if value.get(name) is not None and not isinstance(value[name], str):
            raise Refused("bad-session", f"{name} not a string")
    if value["host"] != host:
        raise Refused("other-host", f"a session of {value['host'][:64]!r}")
    if value["key"] != keys.session_key(host, value["source"], value["id"]) or (key is not None and key != value["key"]):
        raise Refused("bad-key", value["key"][:200])
    return value


def decode_entry(host: str, fields: dict) -> tuple[str, str | None, dict | None]:
    """A stream entry of ``host``: (type, session key, Session or the deleted object; None for a
    ``usage`` entry); raises Refused."""
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES:
        raise Refused("huge", f"{size} bytes")
    kind = fields.get(b"t", b"").decode("ascii", "replace")
    if kind not in keys.TYPES:
        raise Refused("unknown-type", kind[:40])
    version = fields.get(b"v")
    if version is not None and version != keys.WIRE_VERSION.encode():
        raise Refused("wire-version", version[:20].decode("ascii", "replace"))
    if kind in ("hb", "resync"):
        return kind, None, None
    key = fields.get(b"k", b"").decode("utf-8", "replace")
    parts = key.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise Refused("bad-key", key[:200])
    if parts[0] != host:
        raise Refused("other-host", key[:200])
    if kind == "usage":  # (its fields: team/usage.py decode_entry_usage)
        return kind, key, None
    if kind != "deleted":
        return kind, key, session_of(host, fields.get(b"d"), key=key)
    try:
        said = orjson.loads(fields.get(b"d") or b"{}")
    except orjson.JSONDecodeError:
        said = {}
    said = said if isinstance(said, dict) else {}
    gone = {name: said.get(name) for name in DELETED_FIELDS}
    gone.update(key=key, host=host, source=parts[1], id=parts[2])
    return kind, key, gone


@dataclass
class Host:
    name: str
    last_ms: int | None = None  # the ms of its newest entry that counts (engine clock)
    state: str = OFFLINE
    boot: str | None = None  # the agent process that wrote last (its boot id)
    ignored: collections.Counter = field(default_factory=collections.Counter)

    @property
    def online(self) -> bool:
        return self.state == ONLINE


def stamp(session: dict, stale: bool) -> dict:
    """The session marked stale (its host is offline: SPEC 5 v2) or not; a copy when that changes it."""
    return session if session.get("stale") is stale else {**session, "stale": stale}


def stamped(sessions: dict[str, dict], *, stale: bool) -> dict[str, dict]:
    return {key: stamp(s, stale) for key, s in sessions.items()}


class Hosts:
    """Every host known to this worker (single writer: the feed; readers take copies)."""

    def __init__(self, *, offline_ms: int, hide_ms: int):
        self.offline_ms = offline_ms
        self.hide_ms = hide_ms
        self._hosts: dict[str, Host] = {}
        self.ignored: collections.Counter = collections.Counter()  # reason -> entries, every host
        self._warn = WarnOnce(log)

    def __contains__(self, name: str) -> bool:
        return name in self._hosts

    def __iter__(self):
        return iter(list(self._hosts.values()))

    def __len__(self) -> int:
        return len(self._hosts)

    def names(self) -> list[str]:
        return sorted(self._hosts)

    def get(self, name: str) -> Host | None:
        return self._hosts.get(name)

    def add(self, name: str, last_ms: int | None, now_ms: int) -> Host:
        """A host found in the engine; its state is what its newest entry says, with no transition."""
        host = self._hosts.get(name) or Host(name)
        host.last_ms = last_ms if host.last_ms is None or (last_ms or 0) > host.last_ms else host.last_ms
        host.state = self.state_at(host, now_ms)
        self._hosts[name] = host
        return host

    def remove(self, name: str) -> Host | None:
        self._warn.clear_prefix(name)
        return self._hosts.pop(name, None)

    def clear(self) -> None:
        """Every host forgotten (a new snapshot reads them again). What was logged stays logged:
        a host's problem read again by the snapshot is not logged again (``remove`` forgets it)."""
        self._hosts.clear()

    def state_at(self, host: Host, now_ms: int) -> str:
        if host.last_ms is None:
            return OFFLINE
        silent = now_ms - host.last_ms
        if silent <= self.offline_ms:
            return ONLINE
        return HIDDEN if silent > self.offline_ms + self.hide_ms else OFFLINE

    def seen(self, name: str, ms: int, boot: str | None = None) -> tuple[str, str] | None:
        """An entry of ``name`` at ``ms``: it is online. Returns (old, new) state on a change."""
        host = self._hosts.get(name)
        if host is None:
            return None
        if host.last_ms is None or ms > host.last_ms:
            host.last_ms = ms
        if boot:
            host.boot = boot
        if host.state != ONLINE:
            old, host.state = host.state, ONLINE
            return old, ONLINE
        return None

    def judge(self, now_ms: int) -> list[tuple[Host, str, str]]:
        """Every host whose state changed by ``now_ms``: (host, old state, new state)."""
        changes = []
        for host in list(self._hosts.values()):
            state = self.state_at(host, now_ms)
            if state != host.state:
                changes.append((host, host.state, state))
                host.state = state
        return changes

    def ignore(self, name: str, reason: str, detail: str = "") -> None:
        """An entry (or snapshot field) of ``name`` refused for ``reason``: counted, logged once."""
        self.ignored[reason] += 1
        host = self._hosts.get(name)
        if host is not None:
            host.ignored[reason] += 1
        self._warn.warn((name, reason), "host %s: ignoring what it wrote (%s)%s; logged once, counted in /healthz",
                        name, reason, f": {detail}" if detail else "")

    def valid_state(self, name: str, state) -> dict[str, dict]:
        """The valid sessions of a host's hash (HGETALL's reply, or the error reading it)."""
        if isinstance(state, Exception):
            self.ignore(name, "unreadable-state", str(state))
            return {}
        sessions = {}
        for stored_key, raw in state.items():
            try:
                session = session_of(name, raw, key=stored_key.decode("utf-8", "replace"))
            except Refused as refused:
                self.ignore(name, refused.reason, refused.detail)
                continue
            sessions[session["key"]] = session
        return sessions

    def newest_ms(self) -> int | None:
        seen = [h.last_ms for h in list(self._hosts.values()) if h.last_ms is not None]
        return max(seen) if seen else None

    def view(self, sessions: list[dict]) -> list[dict]:
        """``/api/hosts`` (SPEC 3): every host that has published, with its listed sessions."""
        counts: dict[str, int] = collections.Counter()
        sources: dict[str, set] = collections.defaultdict(set)
        for s in sessions:
            counts[s["host"]] += 1
            sources[s["host"]].add(s["source"])
        return [{"host": h.name, "online": h.online, "lastSeen": h.last_ms, "sessions": counts.get(h.name, 0),
                 "sources": sorted(sources.get(h.name, ()))}
                for h in sorted(self._hosts.values(), key=lambda h: h.name)]

    def summary(self) -> dict:
        states = collections.Counter(h.state for h in list(self._hosts.values()))
        return {"known": len(self._hosts), ONLINE: states[ONLINE], OFFLINE: states[OFFLINE], HIDDEN: states[HIDDEN]}
