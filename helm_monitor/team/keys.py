"""The team mode's layout in the engine and the wire format of its stream entries.

This module is the whole contract between ``helm-monitor agent`` (the writer of one host's
keys) and ``helm-monitor web`` (the reader of every host's keys); both sides, the ACL rules
that ``helm-monitor hosts add`` creates and the benchmark's simulated agents use only what is
named here. Layout (design/TEAM_SCALE.md 6.2), ``H`` the provisioned host name, which is also
the host's engine user ``h-H``:

``hm:h:H:s``  HASH    session key -> the latest full Session JSON (SPEC 5, ``host`` == H)
``hm:h:H:ev`` STREAM  one entry per change, trimmed ``MAXLEN ~ 1000``; fields below
``hm:h:H:t:<session key>`` STRING  the latest messages of one session, JSON, with a TTL
``hm:h:H:u``  HASH    ``<session key>@<UTC day>`` -> that day's usage cells of the session, priced
              by the host (SPEC 10; the value's format is team/usage.py's ``encode_day``)
``hm:meta``   HASH    ``epoch``: 8 hex characters, set once with HSETNX by the web tier

Stream entry fields (bytes in the engine; names are one letter to keep entries small):

``t``  type: ``created``, ``updated``, ``deleted``, ``usage``, ``resync``, ``hb``
``k``  the Session's ``key`` (``created``/``updated``/``deleted``/``usage``)
``d``  JSON: the full Session (``created``/``updated``); for ``deleted`` the object
       ``session-deleted`` carries (key, id, host, source, projectPath, projectDir)
``b``  the agent's boot id (random per agent process), on every entry
``v``  the wire format's version, ``WIRE_VERSION``, on every entry
``u``  JSON (``created``/``updated``/``usage``, when the session's usage changed): the days of
       its usage that changed, ``{"<day>": <day value> | null}``, as ``hm:h:H:u`` now holds them,
       or (a day value with ``"p": 1``) only the cells of that day that changed
``U``  instead of ``u`` when those days exceed team/usage.py's INLINE_MAX: the JSON list of the
       days changed, to be read from ``hm:h:H:u``

A ``usage`` entry is a session's usage changing while the session itself did not; the hash,
the stream entry and the session change are one ``MULTI``.

``resync`` means: the host's hashes (sessions and usage) now hold its whole state (re-read
them). ``hb`` is the heartbeat that proves the whole path agent -> engine -> reader.
"""

from __future__ import annotations

import re

WIRE_VERSION = "1"
META = "hm:meta"
EPOCH_FIELD = "epoch"
STREAM_MATCH = "hm:h:*:ev"
# Per host stream, approximate trim (whole macro nodes): <= ~1.9 MB per host.
STREAM_MAXLEN = 1000
# The latest messages of one session kept for the remote session view (design 9.1).
TRANSCRIPT_MESSAGES = 50
TRANSCRIPT_TTL_S = 24 * 3600

TYPES = ("created", "updated", "deleted", "usage", "resync", "hb")

HOST_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_STREAM_RE = re.compile(r"hm:h:([a-z0-9][a-z0-9-]{0,62}):ev")
_ID_RE = re.compile(r"(\d{1,20})-(\d{1,20})")

# Timing (design 6.8, 3.3, 6.5). Tests scale the first two down through Config.
HEARTBEAT_S = 15.0
OFFLINE_AFTER_S = 45.0
HIDE_AFTER_S = 24 * 3600.0
BLOCK_MS = 5000
FEED_SOCKET_TIMEOUT_S = 15.0  # must stay above BLOCK_MS (redis-py 8 defaults break blocking reads)
REPLAY_OVERLAP_MS = 2000
FUTURE_TOLERANCE_MS = 5000
RING_WINDOW_S = 600.0
RING_MAX = 20000

# What each engine user may run (the ACL rules of team/admin.py are built from these; each
# role uses nothing else). Lower-case, as ACL SETUSER spells them.
HOST_COMMANDS = ("xadd", "hset", "hdel", "del", "set", "expire", "multi", "exec", "discard", "ping",
                 "hello", "time", "client|setname")
WEB_COMMANDS = ("xread", "xrange", "xrevrange", "xinfo|stream", "hgetall", "hmget", "hget", "get", "scan",
                "time", "ping", "hello", "multi", "exec", "discard", "client|setname")


def valid_host(name: str) -> bool:
    return bool(HOST_RE.fullmatch(name or ""))


def user_of(host: str) -> str:
    """The engine user a host authenticates as."""
    return f"h-{host}"


def host_keys(host: str) -> str:
    """The ACL key pattern of everything a host may write."""
    return f"hm:h:{host}:*"


def snapshot_key(host: str) -> str:
    return f"hm:h:{host}:s"


def stream_key(host: str) -> str:
    return f"hm:h:{host}:ev"


def transcript_key(host: str, session_key: str) -> str:
    return f"hm:h:{host}:t:{session_key}"


def usage_key(host: str) -> str:
    return f"hm:h:{host}:u"


def usage_field(session_key: str, day: int) -> str:
    """The field of ``hm:h:H:u`` holding one UTC day (days since 1970-01-01) of a session's usage."""
    return f"{session_key}@{day}"


def host_of_stream(key: bytes | str) -> str | None:
    """``hm:h:H:ev`` -> H; None for anything else."""
    if isinstance(key, bytes):
        try:
            key = key.decode("ascii")
        except UnicodeDecodeError:
            return None
    m = _STREAM_RE.fullmatch(key)
    return m.group(1) if m else None


def session_key(host: str, source: str, session_id: str) -> str:
    return f"{host}:{source}:{session_id}"


def parse_id(entry_id: bytes | str) -> tuple[int, int] | None:
    """A stream entry id ``<ms>-<seq>`` as a comparable pair; None if malformed."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("ascii", "replace")
    m = _ID_RE.fullmatch(entry_id)
    return (int(m.group(1)), int(m.group(2))) if m else None


def format_id(pos: tuple[int, int]) -> str:
    return f"{pos[0]}-{pos[1]}"


def sse_id(epoch: str, pos: tuple[int, int]) -> str:
    """The SSE id of the team's web tier: ``<epoch>.<ms>-<seq>`` (SPEC 4 v2)."""
    return f"{epoch}.{pos[0]}-{pos[1]}"


def parse_sse_id(value: str) -> tuple[str, tuple[int, int]] | None:
    epoch, dot, rest = (value or "").strip().partition(".")
    pos = parse_id(rest) if dot else None
    return (epoch, pos) if pos is not None and epoch else None
