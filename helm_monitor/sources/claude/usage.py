"""Usage facts of one Claude Code transcript, kept as it is read (SPEC 10).

Every distinct API message counts once: at the 15-minute bucket of its first record, with
the usage of its latest record (one message streamed over several records repeats, and in
2.1.29 grows, its usage on each). Only the latest messages can still get another record, so
only they keep what they added (to take it back when a newer record replaces it).

A subagent's file keeps, besides, what each of its messages added (:attr:`UsageCounter.log`,
7 machine integers a message): a message id found in more than one of a session's files
counts once, in the main transcript if it is there, else in the first subagent file (by path)
that has it, and that needs the other copies' contributions taken out again. Kept in an
array, that is 56 bytes a message, no Python objects.

The ledger (:class:`Ledger`) follows ``cost-state`` records: running totals of one process,
told apart by ``startTime``. ``--continue`` and ``--resume`` carry the same ``startTime`` and
totals on (seen in 2.1.330), so consecutive records of one ``startTime`` add their differences;
another ``startTime`` is another process, whose totals add to the earlier ones; a total that
falls within one ``startTime`` started again from nothing (its new value adds).
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections import OrderedDict

from helm_monitor.usage.facts import BUCKET_MS, UsageFacts, bucket_of, ms_of

# Messages whose usage a later record of theirs may still replace (as transcript.RECENT_MESSAGES).
RECENT_MESSAGES = 64
# One message in a log: digest, row (an index into UsageCounter.rows), and its five token counts.
LOG_WIDTH = 7
# One recent message in saved state: digest, row (an index into its list), five counts, log position.
_RECENT_WIDTH = 8
_INT_ONLY = {int}


_BUCKETS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" of UTC timestamps -> its bucket start (ms)
_HOURS: dict[str, int | None] = {}  # "YYYY-MM-DDTHH" -> the hour's start (ms), None if no hour
_BUCKETS_MAX = 4096
_DIGITS = frozenset("0123456789")


def bucket_at(ts) -> int | None:
    """The start (ms) of the 15-minute bucket of an ISO 8601 timestamp, or None if it is none.

    Records of one stretch of work share their minute, and a history its hours: UTC ones
    (``Z``, as Claude Code writes them) are bucketed through caches of both, a dict lookup
    (or a little arithmetic) instead of a parse per message."""
    if type(ts) is str and len(ts) >= 20 and ts[-1] == "Z" and ts[16] == ":":
        head = ts[:16]
        b = _BUCKETS.get(head)
        if b is None:
            b = _bucket_of_minute(head)
            if b is None:
                ms = ms_of(ts)
                return None if ms is None else bucket_of(ms)
            if len(_BUCKETS) >= _BUCKETS_MAX:
                _BUCKETS.clear()
            _BUCKETS[head] = b
        return b
    ms = ms_of(ts)
    return None if ms is None else bucket_of(ms)


def _bucket_of_minute(head: str) -> int | None:
    """``YYYY-MM-DDTHH:MM`` -> its bucket, from the hour's start (parsed once an hour)."""
    if head[13] != ":" or head[14] not in _DIGITS or head[15] not in _DIGITS:
        return None
    minute = int(head[14:16])
    if minute > 59:
        return None
    hour_key = head[:13]
    hour = _HOURS.get(hour_key, False)
    if hour is False:
        hour = ms_of(hour_key + ":00:00Z")
        if len(_HOURS) >= _BUCKETS_MAX:
            _HOURS.clear()
        _HOURS[hour_key] = hour
    return None if hour is None else hour + minute // 15 * BUCKET_MS


class UsageCounter:
    """The usage facts of one file, each distinct message once. Which messages are new is the
    caller's to say (the main transcript already keeps every message id)."""

    __slots__ = ("facts", "recent", "log", "rows", "_row_at", "_saved")

    def __init__(self, *, log: bool = False) -> None:
        self.facts = UsageFacts()
        # Recent messages: digest -> (row key, tokens, position in the log or -1).
        self.recent: OrderedDict[int, tuple] = OrderedDict()
        self.log: array | None = array("q") if log else None
        self.rows: list[tuple] | None = [] if log else None  # the row keys the log names
        self._row_at: dict[tuple, int] | None = {} if log else None
        # Restored recent messages not yet unpacked into ``recent`` (:meth:`materialize`): a restart
        # over an unchanged history never needs them, and thousands of files would cost a second.
        self._saved: tuple[list[int], list[tuple]] | None = None

    def materialize(self) -> None:
        """Unpack restored recent messages: call before a restored counter takes more messages."""
        saved = self._saved
        if saved is None:
            return
        self._saved = None
        flat, keys = saved
        recent = self.recent
        for at in range(0, len(flat), _RECENT_WIDTH):
            recent[flat[at]] = (keys[flat[at + 1]], tuple(flat[at + 2:at + 7]), flat[at + 7])

    def add(self, key: int, bucket: int, model: str, tokens: tuple, tier: int, speed: str) -> None:
        """A message not counted before, in the bucket starting at ``bucket`` (ms)."""
        # UsageFacts.add inlined: once per message of every history read.
        row = (bucket, model, tier, speed)
        rows = self.facts.rows
        counts = rows.get(row)
        if counts is None:
            rows[row] = [tokens[0], tokens[1], tokens[2], tokens[3], tokens[4], 1]
        else:
            counts[0] += tokens[0]
            counts[1] += tokens[1]
            counts[2] += tokens[2]
            counts[3] += tokens[3]
            counts[4] += tokens[4]
            counts[5] += 1
        pos = -1
        log = self.log
        if log is not None:
            pos = len(log) // LOG_WIDTH
            log.append(key)
            log.append(self._row_index(row))
            log.extend(tokens)
        recent = self.recent
        recent[key] = (row, tokens, pos)
        if len(recent) > RECENT_MESSAGES:
            recent.popitem(last=False)

    def replace(self, key: int, model: str, tokens: tuple, tier: int, speed: str) -> bool | None:
        """Another record of a recent message: its usage replaces the earlier one, in the bucket of
        the message's first record. None if the message is not a recent one; else whether it changed."""
        old = self.recent.get(key)
        if old is None:
            return None
        self.recent.move_to_end(key)
        row, old_tokens, pos = old
        new_row = (row[0], model, tier, speed)
        if new_row == row and old_tokens == tokens:
            return False
        facts = self.facts
        facts.add(row[0], row[1], old_tokens, tier=row[2], speed=row[3], sign=-1)
        facts.add(row[0], model, tokens, tier=tier, speed=speed)
        if pos >= 0:
            at = pos * LOG_WIDTH
            self.log[at + 1] = self._row_index(new_row)
            self.log[at + 2:at + LOG_WIDTH] = array("q", tokens)
        self.recent[key] = (new_row, tokens, pos)
        return True

    def replace_any(self, key: int, model: str, tokens: tuple, tier: int, speed: str) -> bool:
        """Another record of a counted message, recent or not (then found in the log): its usage
        replaces the earlier one. Whether it changed; False for a message not counted here."""
        got = self.replace(key, model, tokens, tier, speed)
        if got is not None:
            return got
        log = self.log
        if log is None:
            return False
        try:
            at = self.digests().index(key) * LOG_WIDTH
        except ValueError:
            return False
        row = self.rows[log[at + 1]]
        old = tuple(log[at + 2:at + LOG_WIDTH])
        new_row = (row[0], model, tier, speed)
        if new_row == row and old == tokens:
            return False
        self.facts.add(row[0], row[1], old, tier=row[2], speed=row[3], sign=-1)
        self.facts.add(row[0], model, tokens, tier=tier, speed=speed)
        log[at + 1] = self._row_index(new_row)
        log[at + 2:at + LOG_WIDTH] = array("q", tokens)
        return True

    def _row_index(self, row: tuple) -> int:
        i = self._row_at.get(row)
        if i is None:
            i = self._row_at[row] = len(self.rows)
            self.rows.append(row)
        return i

    def digests(self) -> array:
        """Every logged message's digest."""
        return self.log[0::LOG_WIDTH]

    def facts_without(self, dropped) -> UsageFacts:
        """A copy of the facts without the logged messages whose digest ``dropped(digest)`` says."""
        out = self.facts.copy()
        log, rows = self.log, self.rows
        for at in range(0, len(log), LOG_WIDTH):
            if dropped(log[at]):
                b, model, tier, speed = rows[log[at + 1]]
                out.add(b, model, log[at + 2:at + LOG_WIDTH], tier=tier, speed=speed, sign=-1)
        return out

    # ------------------------------------------------------------ saved state
    def export(self) -> dict:
        if self._saved is not None:
            flat, keys = self._saved
        else:
            flat, keys, at = [], [], {}
            for k, (row, tokens, pos) in self.recent.items():
                i = at.get(row)
                if i is None:
                    i = at[row] = len(keys)
                    keys.append(row)
                flat += (k, i, *tokens, pos)
        out = {"facts": self.facts.to_json(), "recent": flat, "recentRows": [list(r) for r in keys]}
        if self.log is not None:
            out["rows"] = [list(r) for r in self.rows]
            out["log"] = base64.b64encode(self.log.tobytes()).decode("ascii")
            out["order"] = sys.byteorder
        return out

    @classmethod
    def restore(cls, data, *, log: bool = False, known=None, also_known=None) -> "UsageCounter":
        """From :meth:`export`'s data; ValueError (or TypeError, KeyError) for anything odd.
        ``known`` (and ``also_known``): the message digests the caller counted; recent ones must be
        among them. Checked at C speed where it can be (a restart takes in thousands of these)."""
        c = cls(log=log)
        c.facts = UsageFacts.from_json(data["facts"])
        if log:
            if data["order"] != sys.byteorder:
                raise ValueError("saved on a machine of another byte order")
            c.rows.extend(row_keys(data["rows"]))
            c._row_at.update((r, i) for i, r in enumerate(c.rows))
            if len(c._row_at) != len(c.rows):
                raise ValueError("usage rows repeated")
            c.log.frombytes(base64.b64decode(data["log"], validate=True))
            if len(c.log) % LOG_WIDTH:
                raise ValueError("usage log")
            if c.log and (min(c.log[1::LOG_WIDTH]) < 0 or max(c.log[1::LOG_WIDTH]) >= len(c.rows)):
                raise ValueError("usage log rows")
        flat = data["recent"]
        if type(flat) is not list or len(flat) % _RECENT_WIDTH or not set(map(type, flat)) <= _INT_ONLY:
            raise ValueError("recent usage")
        if not flat:
            return c
        keys = row_keys(data["recentRows"])
        digests = flat[0::_RECENT_WIDTH]
        # (Counts are checked for their type only, as UsageFacts.from_json checks the rows.)
        if min(flat[1::_RECENT_WIDTH]) < 0 or max(flat[1::_RECENT_WIDTH]) >= len(keys) \
                or len(set(digests)) != len(digests):
            raise ValueError("recent usage")
        if known is not None and not known.issuperset(digests):
            if also_known is None or not all(d in known or d in also_known for d in digests):
                raise ValueError("recent usage of an unknown message")
        positions = flat[7::_RECENT_WIDTH]
        if log:
            n = len(c.log) // LOG_WIDTH
            for d, pos in zip(digests, positions):
                if not 0 <= pos < n or c.log[pos * LOG_WIDTH] != d:
                    raise ValueError("recent usage not logged")
        elif set(positions) != {-1}:
            raise ValueError("recent usage")
        c._saved = (flat, keys)
        return c


def row_keys(data) -> list[tuple]:
    """Row keys ``(bucket, model, tier, speed)`` from saved state."""
    if type(data) is not list:
        raise ValueError("usage rows")
    out = []
    for entry in data:
        if (type(entry) is not list or len(entry) != 4 or type(entry[0]) is not int or entry[0] % BUCKET_MS
                or type(entry[1]) is not str or type(entry[2]) is not int or type(entry[3]) is not str):
            raise ValueError("usage row")
        out.append(tuple(entry))
    return out


class Ledger:
    """What Claude Code charged, from the ``cost-state`` records of one transcript."""

    __slots__ = ("seen", "start", "total", "models")

    def __init__(self) -> None:
        self.seen = False  # a cost-state was read
        self.start: int | float | None = None  # its startTime: which process's totals these are
        self.total: float | None = None
        self.models: dict[str, float] = {}  # model -> its running total in this process

    def apply(self, facts: UsageFacts, ts_ms: int, start, total: float | None, models: dict[str, float],
              unknown: bool) -> None:
        """One cost-state's running totals: what they grew by since the last is added at ``ts_ms``."""
        if not self.seen or start != self.start:
            base: dict[str, float] = {}  # another process: its totals count from nothing
        elif total is not None and self.total is not None and total < self.total:
            base = {}  # fell within one process: started again
        else:
            base = self.models
        for model, usd in models.items():
            delta = usd - base.get(model, 0.0)
            if delta < 0:
                delta = usd  # one model's total fell: started again
            facts.add_ledger(ts_ms, model, delta)
        self.models = {**base, **models}
        self.seen = True
        self.start = start
        self.total = total
        if unknown:
            facts.ledger_models_unknown = True

    def export(self) -> dict | None:
        if not self.seen:
            return None
        return {"start": self.start, "total": self.total, "models": self.models}

    @classmethod
    def restore(cls, data) -> "Ledger":
        out = cls()
        if data is None:
            return out
        start, total, models = data["start"], data["total"], data["models"]
        if (start is not None and type(start) not in (int, float)) or (
                total is not None and type(total) not in (int, float)) or type(models) is not dict:
            raise ValueError("ledger")
        for model, usd in models.items():
            if type(model) is not str or type(usd) not in (int, float):
                raise ValueError("ledger")
        out.seen = True
        out.start = start
        out.total = None if total is None else float(total)
        out.models = {m: float(v) for m, v in models.items()}
        return out
