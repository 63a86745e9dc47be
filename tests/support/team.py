"""A simulated team host: writes one host's keys in the engine exactly as ``helm-monitor agent``
does (team/keys.py: ``MULTI; HSET/HDEL hm:h:H:s; XADD hm:h:H:ev MAXLEN ~ 1000 ...; EXEC``,
resync, heartbeats), with redis-py and nothing of helm_monitor's writer, so that the web tier's
reader is tested against the wire format itself. It also writes what no agent would (garbage,
huge or foreign entries, explicit ids) for the tests of a misbehaving host.

``truth()`` is what the host's sessions are: what every web worker must converge to; and
``usage`` (key -> cells, SPEC 10) what their usage is, as the host priced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import secrets
import threading
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from helm_monitor.team import keys


def iso_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_session(host: str, session_id: str | None = None, *, source: str = "claude-code", **fields) -> dict:
    """A whole Session (SPEC 5) of ``host``; ``fields`` override."""
    session_id = session_id or str(uuid.uuid4())
    now = iso_now()
    session = {
        "id": session_id, "key": keys.session_key(host, source, session_id), "host": host, "source": source,
        "projectPath": f"/home/{host}/project", "projectDir": "-home-project", "title": f"work on {host}",
        "firstPrompt": "start", "lastPrompt": "start", "messageCount": 1, "createdAt": now, "updatedAt": now,
        "gitBranch": "main", "model": None,
        "tokens": {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0}, "status": "busy", "pid": None,
        "subagentCount": 0, "sizeBytes": 100, "version": "2.1.330", "cost": {"usd": None, "basis": "unpriced"},
        "stale": False,
    }
    session.update(fields)
    return session


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


DAY_MS, QUARTER_MS = 86_400_000, 900_000


def usage_days(cells) -> dict[int, str]:
    """A session's cells as the wire has them (team/keys.py ``hm:h:H:u``): UTC day -> the JSON of
    ``{"m": [models], "c": [[quarter, model index, input, output, cacheRead, cacheCreation, messages,
    ledgerUsd, listPriceUsd, unpricedTokens]]}``. Written here independently of the agent's encoder."""
    days: dict[int, list] = {}
    for cell in sorted(cells, key=lambda c: (c[0], c[1])):
        days.setdefault(cell[0] // DAY_MS, []).append(cell)
    out = {}
    for day, day_cells in days.items():
        models = sorted({c[1] for c in day_cells})
        rows = [[(c[0] % DAY_MS) // QUARTER_MS, models.index(c[1]), *c[2:]] for c in day_cells]
        out[day] = dumps({"m": models, "c": rows})
    return out


def cell(when_ms: int, model: str = "claude-opus-5-5", inp: int = 10, out: int = 20, cache_read: int = 40,
         cache_creation: int = 30, messages: int = 1, ledger: float | None = None, listed: float | None = 0.00125,
         unpriced: int = 0) -> tuple:
    """One usage cell (helm_monitor.usage.query.SessionUsage.cells) of the 15 minutes holding ``when_ms``."""
    return (when_ms - when_ms % QUARTER_MS, model, inp, out, cache_read, cache_creation, messages, ledger, listed,
            unpriced)


class SimHost:
    """One host's writer. ``url`` may name the host's own engine user (``url_for``)."""

    def __init__(self, url: str, name: str):
        self.name = name
        # No retries: a test that kills the engine sees the error at once, as the agent does.
        self.r = redis.Redis.from_url(url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
        self.boot = secrets.token_hex(4)
        self.sessions: dict[str, dict] = {}  # key -> Session: the truth
        self.usage: dict[str, list[tuple]] = {}  # key -> its usage cells: the truth
        self._days: dict[str, dict[int, str]] = {}  # key -> what hm:h:H:u holds of it
        self._beat: threading.Thread | None = None
        self._beat_stop = threading.Event()

    # -- what an agent writes -----------------------------------------------
    def _fields(self, kind: str, key: str | None = None, data: str | None = None) -> dict:
        fields = {"t": kind}
        if key is not None:
            fields["k"] = key
        if data is not None:
            fields["d"] = data
        fields.update(b=self.boot, v=keys.WIRE_VERSION)
        return fields

    def new(self, session_id: str | None = None, **fields) -> dict:
        """A new session, published (``created``)."""
        session = make_session(self.name, session_id, **fields)
        self.put(session)
        return session

    def put(self, *sessions: dict, usage: dict[str, list[tuple]] | None = None) -> list[bytes]:
        """Publish sessions as the agent does: one transaction, hash and one entry each; with
        ``usage`` (key -> all its cells), the days of their usage that changed too."""
        pipe = self.r.pipeline(transaction=True)
        for s in sessions:
            kind = "updated" if s["key"] in self.sessions else "created"
            pipe.hset(keys.snapshot_key(self.name), s["key"], dumps(s))
            fields = self._fields(kind, s["key"], dumps(s))
            if usage is not None and s["key"] in usage:
                fields.update(self._usage_write(pipe, s["key"], usage[s["key"]]))
            pipe.xadd(keys.stream_key(self.name), fields, maxlen=keys.STREAM_MAXLEN, approximate=True)
            self.sessions[s["key"]] = dict(s)
        return [r for r in pipe.execute() if isinstance(r, bytes)]

    def _usage_write(self, pipe, key: str, cells: list[tuple], *, named: bool = False) -> dict:
        """HSET/HDEL the days of ``key`` that changed; the entry's ``u`` (or ``U``) field."""
        days = usage_days(cells)
        old = self._days.get(key, {})
        changed = {d: v for d, v in days.items() if old.get(d) != v}
        removed = [d for d in old if d not in days]
        if changed:
            pipe.hset(keys.usage_key(self.name), mapping={keys.usage_field(key, d): v for d, v in changed.items()})
        if removed:
            pipe.hdel(keys.usage_key(self.name), *(keys.usage_field(key, d) for d in removed))
        self._days[key] = days
        self.usage[key] = list(cells)
        if not changed and not removed:
            return {}
        if named:
            return {"U": dumps(sorted([*changed, *removed]))}
        parts = [f'"{d}":{v}' for d, v in changed.items()] + [f'"{d}":null' for d in removed]
        return {"u": "{" + ",".join(parts) + "}"}

    def set_usage(self, key: str, cells: list[tuple], *, named: bool = False) -> bytes:
        """Only the usage of a session changed: a ``usage`` entry (``named``: its days named, not carried)."""
        pipe = self.r.pipeline(transaction=True)
        fields = self._fields("usage", key)
        fields.update(self._usage_write(pipe, key, cells, named=named))
        pipe.xadd(keys.stream_key(self.name), fields, maxlen=keys.STREAM_MAXLEN, approximate=True)
        return pipe.execute()[-1]

    def update(self, key: str, **fields) -> dict:
        session = {**self.sessions[key], **fields, "updatedAt": iso_now()}
        self.put(session)
        return session

    def delete(self, *keys_: str) -> list[bytes]:
        pipe = self.r.pipeline(transaction=True)
        for key in keys_:
            s = self.sessions.pop(key)
            gone = {name: s.get(name) for name in ("key", "id", "host", "source", "projectPath", "projectDir")}
            pipe.hdel(keys.snapshot_key(self.name), key)
            days = self._days.pop(key, {})
            self.usage.pop(key, None)
            if days:
                pipe.hdel(keys.usage_key(self.name), *(keys.usage_field(key, d) for d in days))
            pipe.xadd(keys.stream_key(self.name), self._fields("deleted", key, dumps(gone)),
                      maxlen=keys.STREAM_MAXLEN, approximate=True)
        return [r for r in pipe.execute() if isinstance(r, bytes)]

    def resync(self) -> bytes:
        """The whole state again, as on (re)connect."""
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(keys.snapshot_key(self.name), keys.usage_key(self.name))
        if self.sessions:
            pipe.hset(keys.snapshot_key(self.name), mapping={k: dumps(s) for k, s in self.sessions.items()})
        fields = {keys.usage_field(k, d): v for k, days in self._days.items() for d, v in days.items()}
        if fields:
            pipe.hset(keys.usage_key(self.name), mapping=fields)
        pipe.xadd(keys.stream_key(self.name), self._fields("resync"), maxlen=keys.STREAM_MAXLEN, approximate=True)
        return pipe.execute()[-1]

    def hb(self) -> bytes:
        return self.r.xadd(keys.stream_key(self.name), self._fields("hb"), maxlen=keys.STREAM_MAXLEN,
                           approximate=True)

    def beat(self, interval: float) -> None:
        """Heartbeats every ``interval`` seconds until ``quiet()``; engine errors are ridden out."""
        self._beat_stop.clear()

        def run():
            while not self._beat_stop.wait(interval):
                try:
                    self.hb()
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
        self._beat = threading.Thread(target=run, name=f"sim-{self.name}-hb", daemon=True)
        self._beat.start()

    def quiet(self) -> None:
        self._beat_stop.set()
        if self._beat is not None:
            self._beat.join(5)
            self._beat = None

    def transcript(self, key: str, messages: list[dict], total: int | None = None) -> None:
        value = {"messages": messages}
        if total is not None:
            value["total"] = total
        self.r.set(keys.transcript_key(self.name, key), dumps(value), ex=keys.TRANSCRIPT_TTL_S)

    # -- what no agent writes -----------------------------------------------
    def raw(self, fields: dict, entry_id: str = "*") -> bytes:
        """Any entry, with any id."""
        return self.r.xadd(keys.stream_key(self.name), fields, id=entry_id)

    def raw_state(self, key: str, value) -> None:
        self.r.hset(keys.snapshot_key(self.name), key, value)

    def raw_usage(self, field: str, value) -> None:
        self.r.hset(keys.usage_key(self.name), field, value)

    def truth(self) -> dict[str, dict]:
        """The host's sessions as the web tier must show them, but for ``stale`` (its own)."""
        return {k: simple(s) for k, s in self.sessions.items()}

    def close(self) -> None:
        self.quiet()
        self.r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def simple(s: dict) -> dict:
    """A session without what the web tier sets itself (``stale``): for comparing with the truth."""
    return {k: v for k, v in s.items() if k != "stale"}
