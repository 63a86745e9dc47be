"""Subagent transcripts (``<session-id>/subagents/**/agent-*.jsonl``) and legacy top-level
sidechains (``agent-*.jsonl``), read incrementally for their usage only (SPEC 10).

They are never sessions of their own (SPEC 5), so nothing but their assistant records is
needed: a line without ``"type":"assistant"`` in it (JSON as Claude Code writes it has no
spaces, and inside a string every quote is escaped, so an assistant record always holds these
bytes) is passed over by ``bytes`` search alone; only the rest is decoded. An append costs the
appended bytes (:class:`~helm_monitor.sources.jsonl.JsonlFollower`).
"""

from __future__ import annotations

import logging

import orjson

from helm_monitor.sources.claude import records as R
from helm_monitor.sources.claude.transcript import message_key
from helm_monitor.sources.claude.usage import LOG_WIDTH, UsageCounter, bucket_at
from helm_monitor.sources.jsonl import JsonlFollower
from helm_monitor.usage.facts import bucket_of

log = logging.getLogger(__name__)

_ASSISTANT = b'"type":"assistant"'
_CONVERSATION_START = b'{"parentUuid":'
# Record starts tried, from the line's end, for an assistant record glued behind a cut one.
MAX_RECOVERY_TRIES = 64


class SidechainReader:
    """One sidechain transcript's usage. ``generation`` moves whenever the facts do."""

    __slots__ = ("follower", "counter", "ids", "last_bucket", "generation", "bad_lines")

    def __init__(self, path: str) -> None:
        self.follower = JsonlFollower(path)
        self.generation = 0
        self._fresh()

    def _fresh(self) -> None:
        self.counter = UsageCounter(log=True)
        self.ids: set[int] = set()  # every message counted (digests)
        self.last_bucket: int | None = None  # the bucket (ms) of the latest record time read
        self.bad_lines = 0

    @property
    def path(self) -> str:
        return self.follower.path

    @property
    def facts(self):
        return self.counter.facts

    def update(self) -> bool:
        """Read what was appended. True if the usage changed. Raises OSError when the file cannot
        be opened or read (gone, a symbolic link, not a regular file)."""
        before = self.generation
        self.follower.read(self._line, self._reset)
        return self.generation != before

    def _reset(self) -> None:
        self._fresh()
        self.generation += 1

    def _line(self, line: bytes) -> None:
        if _ASSISTANT not in line:
            return
        rec = R.decode(line)
        if rec is None:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                rec = _recover(line)
                self.bad_lines += 1
            else:
                rec = R.from_dict(obj) if isinstance(obj, dict) else None
        if rec is None or rec.type != "assistant":
            return
        message = rec.message
        if message is None or not message.id or message.model == "<synthetic>":
            return
        try:
            self._count(rec, message)
        except Exception:  # a record of a shape never seen: skip it
            self.bad_lines += 1
            log.debug("record skipped in %s", self.path, exc_info=True)

    def _count(self, rec: R.Record, message: R.Message) -> None:
        key = message_key(message.id)
        tokens, tier, speed = R.usage_facts_of(message)
        model = message.model or ""
        counter = self.counter
        counter.materialize()
        ts = bucket_at(rec.timestamp)
        if ts is not None:
            self.last_bucket = ts
        replaced = counter.replace(key, model, tokens, tier, speed)
        if replaced is not None:
            if replaced:
                self.generation += 1
            return
        if key in self.ids:
            return  # seen long ago, written again: counted once
        self.ids.add(key)
        if ts is None:
            ts = self.last_bucket if self.last_bucket is not None else bucket_of(int(self.follower.mtime * 1000))
        counter.add(key, ts, model, tokens, tier, speed)
        self.generation += 1

    # ------------------------------------------------------------ saved state
    def export(self) -> dict:
        return {"follower": self.follower.export(), "usage": self.counter.export(), "last": self.last_bucket,
                "bad": self.bad_lines}

    @classmethod
    def restore(cls, path: str, data) -> "SidechainReader":
        """From :meth:`export`'s data; ValueError (TypeError, KeyError) for anything odd."""
        r = cls(path)
        r.follower = JsonlFollower.restore(path, data["follower"])
        r.counter = UsageCounter.restore(data["usage"], log=True)
        r.ids = set(r.counter.digests())
        if len(r.ids) * LOG_WIDTH != len(r.counter.log):
            raise ValueError("a message logged twice")
        last = data["last"]
        if last is not None and type(last) is not int:
            raise ValueError("last")
        r.last_bucket = last
        bad = data["bad"]
        if type(bad) is not int or bad < 0:
            raise ValueError("bad")
        r.bad_lines = bad
        return r


def _recover(line: bytes) -> R.Record | None:
    """The whole record a line ends with, when a record cut off mid-write is in front of it
    (a ``--resume`` after a crash appends behind the cut record, on the same line)."""
    pos = len(line)
    view = memoryview(line)
    for _ in range(MAX_RECOVERY_TRIES):
        pos = line.rfind(_CONVERSATION_START, 0, pos)
        if pos <= 0:
            return None
        rec = R.decode(view[pos:])
        if rec is not None:
            return rec
    return None
