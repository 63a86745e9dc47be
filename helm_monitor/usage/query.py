"""Many sessions' usage grouped into buckets of any time zone (``GET /api/usage``, SPEC 10).

Facts are kept in 15-minute UTC buckets; a query maps each to the local hour, day, week
(from Monday) or month of the asked IANA zone that holds it. Every UTC offset in use is a
whole number of quarter hours, so the mapping is exact across daylight-saving changes and
for zones such as Asia/Kathmandu (+05:45). A 15-minute bucket maps the same way in every
query of a zone, so the mapping is remembered (bounded) across queries.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time as dtime, timedelta
from zoneinfo import ZoneInfo

from helm_monitor.usage import pricing
from helm_monitor.usage.facts import BUCKET_MS, UsageFacts

BUCKETS = ("hour", "day", "week", "month")
GROUPS = ("project", "model", "source", "host", "session")
# At most this many buckets in one answer (a year by hour is 8,784).
MAX_BUCKETS = 20_000
_LOCAL_CACHE_MAX = 200_000


class QueryError(ValueError):
    """A query that cannot be answered as asked (the message says why, for a 400)."""


@dataclasses.dataclass
class SessionUsage:
    """One session as the usage index keeps it: what groups it, and its priced cells."""
    key: str
    project: str | None
    source: str
    host: str
    title: str | None
    model: str | None
    # (bucket ms, model, input, output, cacheRead, cacheCreation, messages, ledger usd or None,
    #  list-price usd or None, unpriced tokens)
    cells: list[tuple]
    waiting: dict[int, float] = dataclasses.field(default_factory=dict)  # bucket ms -> seconds waited


def build_cells(facts: UsageFacts | None, source: str) -> list[tuple]:
    """Token rows and ledger entries of one session, merged per (bucket, model) and priced."""
    if facts is None:
        return []
    merged: dict[tuple[int, str], list] = {}
    charged = facts.charged_models()  # None: the ledger covers every model
    for key, row in facts.rows.items():
        bucket, model = key[0], key[1]
        cell = merged.get((bucket, model))
        if cell is None:
            cell = merged[(bucket, model)] = [0, 0, 0, 0, 0, None, None, 0]
        cell[0] += row[0]
        cell[1] += row[1]
        cell[2] += row[2]
        cell[3] += row[3] + row[4]
        cell[4] += row[5]
        tokens = row[0] + row[1] + row[2] + row[3] + row[4]
        if charged is None or model in charged or not tokens:
            continue
        usd = pricing.row_cost(key, row, source)
        if usd is None:
            cell[7] += tokens
        else:
            cell[6] = (cell[6] or 0.0) + usd
    for (bucket, model), usd in facts.ledger.items():
        cell = merged.get((bucket, model))
        if cell is None:
            cell = merged[(bucket, model)] = [0, 0, 0, 0, 0, None, None, 0]
        cell[5] = (cell[5] or 0.0) + usd
    if facts.ledger:
        for (_bucket, model), cell in merged.items():
            if cell[5] is None and (charged is None or model in charged):
                cell[5] = 0.0  # the ledger charged these tokens elsewhere (it is per turn, not per message)
    return [(b, m, *c) for (b, m), c in sorted(merged.items())]


# ------------------------------------------------------------------ time
def zone(name: str | None) -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:
        raise QueryError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from exc
    except Exception as exc:  # zoneinfo raises ZoneInfoNotFoundError (a KeyError) or others
        raise QueryError(f"unknown time zone {name!r}") from exc


def _parse_bound(text: str, tz: ZoneInfo) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), dtime(0), tz)
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise QueryError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from exc
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt.astimezone(tz)


def parse_range(start: str | None, end: str | None, tz: ZoneInfo, now_ms: int) -> tuple[datetime, datetime]:
    """The asked range as aware local datetimes; by default the last 30 local days, today included."""
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    hi = _parse_bound(end, tz) if end else datetime.combine(today + timedelta(days=1), dtime(0), tz)
    lo = _parse_bound(start, tz) if start else datetime.combine(hi.date() - timedelta(days=30), dtime(0), tz)
    if lo >= hi:
        raise QueryError("'from' must be before 'to'")
    if hi.year - lo.year > 20:
        raise QueryError("the range is longer than 20 years")
    return lo, hi


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _local_start(dt: date, tz: ZoneInfo) -> int:
    # Midnight that does not exist (a zone that springs forward at 00:00) is read with the
    # offset before the change, which is the instant the day begins.
    return _ms(datetime.combine(dt, dtime(0), tz))


def _bucket_date(d: date, bucket: str) -> date:
    if bucket == "week":
        return d - timedelta(days=d.weekday())
    if bucket == "month":
        return d.replace(day=1)
    return d


class LocalTime:
    """Maps 15-minute UTC buckets to the local bucket of one zone and bucket size (memoised)."""

    def __init__(self, tz: ZoneInfo, bucket: str, cache: dict | None = None):
        self.tz = tz
        self.bucket = bucket
        self._cache = cache if cache is not None else {}

    def start_of(self, b: int) -> int:
        """Start (ms) of the local bucket holding the 15-minute UTC bucket ``b``."""
        got = self._cache.get(b)
        if got is None:
            if len(self._cache) > _LOCAL_CACHE_MAX:
                self._cache.clear()
            local = datetime.fromtimestamp(b / 1000, self.tz)
            if self.bucket == "hour":
                got = b - local.minute * 60_000
            else:
                got = _local_start(_bucket_date(local.date(), self.bucket), self.tz)
            self._cache[b] = got
        return got

    def starts(self, lo: datetime, hi: datetime) -> list[int]:
        """Every local bucket start from ``lo`` (its own bucket) to before ``hi``."""
        lo_ms, hi_ms = _ms(lo), _ms(hi)
        out: list[int] = []
        if self.bucket == "hour":
            b = lo_ms - lo_ms % BUCKET_MS
            while b < hi_ms:
                s = self.start_of(b)
                if not out or out[-1] != s:
                    out.append(s)
                    if len(out) > MAX_BUCKETS:
                        raise QueryError(f"more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range")
                b += BUCKET_MS
            return out
        d = _bucket_date(lo.date(), self.bucket)
        while True:
            s = _local_start(d, self.tz)
            if s >= hi_ms:
                return out
            out.append(s)
            if len(out) > MAX_BUCKETS:
                raise QueryError(f"more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range")
            if self.bucket == "day":
                d += timedelta(days=1)
            elif self.bucket == "week":
                d += timedelta(days=7)
            else:
                d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)

    def iso(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, self.tz).isoformat(timespec="seconds")


# ------------------------------------------------------------------ aggregation
def rollup(cells: list[tuple], start_of) -> list[tuple]:
    """A session's cells merged per (local bucket start, model): what a query of one zone and
    bucket size sums (the index keeps it per session until the session changes)."""
    out: dict[tuple, list] = {}
    for c in cells:
        k = (start_of(c[0]), c[1])
        acc = out.get(k)
        if acc is None:
            out[k] = list(c[2:])
            continue
        acc[0] += c[2]
        acc[1] += c[3]
        acc[2] += c[4]
        acc[3] += c[5]
        acc[4] += c[6]
        if c[7] is not None:
            acc[5] = c[7] if acc[5] is None else acc[5] + c[7]
        if c[8] is not None:
            acc[6] = c[8] if acc[6] is None else acc[6] + c[8]
        acc[7] += c[9]
    return [(k[0], k[1], *v) for k, v in out.items()]


# An accumulator: input, output, cacheRead, cacheCreation, messages, ledger usd, has ledger,
# list-price usd, has list price, unpriced tokens, waiting seconds, session keys.
def _acc() -> list:
    return [0, 0, 0, 0, 0, 0.0, False, 0.0, False, 0, 0.0, set()]


def _merge(into: list, acc: list) -> None:
    for i in (0, 1, 2, 3, 4, 5, 7, 9, 10):
        into[i] += acc[i]
    into[6] = into[6] or acc[6]
    into[8] = into[8] or acc[8]
    into[11] |= acc[11]


def _cost(acc: list) -> dict:
    """``usd`` is what is known (null when nothing used could be priced); ``basis`` says whence."""
    has_ledger, has_list, unpriced = acc[6], acc[8], acc[9]
    if has_ledger and has_list:
        basis = "mixed"
    elif has_ledger:
        basis = "ledger"
    elif has_list or not unpriced:
        basis = "list-price"  # (nothing used at all costs nothing at any price)
    else:
        basis = "unpriced"
    usd = None if basis == "unpriced" else round(acc[5] + acc[7], 9)
    return {"usd": usd, "basis": basis, "ledgerUsd": round(acc[5], 9), "listPriceUsd": round(acc[7], 9),
            "unpricedTokens": unpriced}


def _out(acc: list) -> dict:
    prompt = acc[0] + acc[2] + acc[3]
    return {"tokens": {"input": acc[0], "output": acc[1], "cacheRead": acc[2], "cacheCreation": acc[3],
                       "total": acc[0] + acc[1] + acc[2] + acc[3]},
            "cost": _cost(acc), "sessions": len(acc[11]), "messages": acc[4],
            "waitingSeconds": round(acc[10], 3),
            "cacheHitRatio": round(acc[2] / prompt, 6) if prompt else None}


def _group_of(s: SessionUsage, by: str | None):
    """The group of everything of ``s`` (by model: None, each cell says)."""
    if by is None or by == "model":
        return None
    if by == "project":
        return s.project
    if by == "session":
        return s.key
    return s.source if by == "source" else s.host


def aggregate(sessions, *, lo: datetime, hi: datetime, tz: ZoneInfo, bucket: str = "day",
              by: str | None = None, local_cache: dict | None = None, rollups: dict | None = None) -> dict:
    """The ``/api/usage`` answer for ``sessions`` (SessionUsage) over ``[lo, hi)``.

    ``rollups`` (session key -> (SessionUsage, its :func:`rollup` for this zone and bucket size))
    is a memo kept by the caller: a session's entry is used while it is the same object."""
    if bucket not in BUCKETS:
        raise QueryError(f"bucket must be one of {', '.join(BUCKETS)}")
    if by is not None and by not in GROUPS:
        raise QueryError(f"by must be one of {', '.join(GROUPS)}")
    local = LocalTime(tz, bucket, local_cache)
    starts = local.starts(lo, hi)
    lo_ms, hi_ms = _ms(lo), _ms(hi)
    start_of = local.start_of
    # Bounds on bucket starts (dates always are): every session's rollup answers. Otherwise
    # (a time in the middle of a bucket) cells are taken one by one.
    aligned = start_of(lo_ms - lo_ms % BUCKET_MS) == lo_ms and start_of(hi_ms - hi_ms % BUCKET_MS) == hi_ms
    by_model = by == "model"
    accs: dict[tuple, list] = {}
    labels: dict = {}
    unpriced_models: set[str] = set()
    for s in sessions:
        key = s.key
        if aligned:
            memo = rollups.get(key) if rollups is not None else None
            if memo is None or memo[0] is not s:
                memo = (s, rollup(s.cells, start_of))
                if rollups is not None:
                    rollups[key] = memo
            cells = memo[1]
        else:
            cells = [(start_of(c[0]), *c[1:]) for c in s.cells if lo_ms <= c[0] < hi_ms]
        fixed = _group_of(s, by)
        if fixed not in labels:
            labels[fixed] = (s.title or s.key) if by == "session" else fixed
        for c in cells:
            start = c[0]
            if aligned and (start < lo_ms or start >= hi_ms):
                continue  # (unaligned: already chosen by their own time)
            group = (c[1] or None) if by_model else fixed
            acc = accs.get((start, group))
            if acc is None:
                acc = accs[(start, group)] = _acc()
            acc[0] += c[2]
            acc[1] += c[3]
            acc[2] += c[4]
            acc[3] += c[5]
            acc[4] += c[6]
            if c[7] is not None:
                acc[5] += c[7]
                acc[6] = True
            if c[8] is not None:
                acc[7] += c[8]
                acc[8] = True
            if c[9]:
                acc[9] += c[9]
                unpriced_models.add(c[1])
            acc[11].add(key)
        if s.waiting:
            group = (s.model or None) if by_model else fixed
            for b, seconds in s.waiting.items():
                if b < lo_ms or b >= hi_ms or not seconds:
                    continue
                start = start_of(b)
                acc = accs.get((start, group))
                if acc is None:
                    acc = accs[(start, group)] = _acc()
                acc[10] += seconds
                acc[11].add(key)
    groups: dict = {}
    total = _acc()
    buckets = []
    for (start, group), acc in sorted(accs.items(), key=lambda kv: (kv[0][0], str(kv[0][1] or ""))):
        entry = {"start": local.iso(start), "group": group}
        entry.update(_out(acc))
        buckets.append(entry)
        g = groups.get(group)
        if g is None:
            g = groups[group] = _acc()
        _merge(g, acc)
        _merge(total, acc)
    ranked = []
    for group, acc in groups.items():
        entry = {"group": group, "label": labels.get(group, group)}
        entry.update(_out(acc))
        ranked.append(entry)
    ranked.sort(key=lambda g: (-(g["cost"]["usd"] or 0.0), -g["tokens"]["total"], str(g["group"] or "")))
    return {"tz": tz.key, "bucket": bucket, "by": by, "from": lo.isoformat(timespec="seconds"),
            "to": hi.isoformat(timespec="seconds"), "starts": [local.iso(s) for s in starts],
            "buckets": buckets, "groups": ranked, "totals": _out(total),
            "unpricedModels": sorted(unpriced_models), "pricing": pricing.table_version()}
