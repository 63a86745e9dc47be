"""Usage and cost in team mode (SPEC 10): every session's priced cells, carried from its host.

A host prices its sessions' usage itself (its genai-prices decides list prices; the web tier
never prices anything again) and publishes the cells its UsageIndex holds
(:class:`helm_monitor.usage.query.SessionUsage`) beside the sessions, with the same guarantees
the sessions have (team/keys.py):

- ``hm:h:H:u``, a HASH of one field per session and UTC day, ``<session key>@<day>`` (day =
  days since 1970-01-01 UTC), whose value is that day's cells of that session (:func:`encode_day`).
  It is written in the same ``MULTI`` as the session's change and rewritten whole by a resync,
  so the web tier reads (sessions, usage, position) atomically.
- A session's ``created``/``updated`` entry, and a ``usage`` entry when only its usage changed,
  carries what changed: ``u``, a JSON object ``{"<day>": <day value> | null}`` (null: that day
  has no cells any more; a value with ``"p": 1`` holds only the cells of that day that changed,
  when none went), or, when that would exceed ``INLINE_MAX`` bytes, ``U``, the JSON list of
  the days changed, to be read from the hash (a missing field is null). The feed reads every
  entry after its snapshot's position, in order, so the stream carries usage exactly as it
  carries sessions; every cell is whole (applying one twice is harmless), and whatever a
  worker cannot follow exactly (a trimmed stream, a lost engine, a resync) makes it read the
  hash again.

Why a field per day: an append to a month-long session rewrites one day in the hash (at most
96 buckets times the models used that day), not the month, and its entry carries the one or two
cells that changed; no value or entry grows with a session's age. A day value is at most
96 x models cells of ~40-60 bytes; one over ``FIELD_MAX`` (some 100 models used in one day by
one session) is not published (counted in the publisher's ``usage_too_big`` and logged).

The web tier (:class:`UsageMirror`) keeps what hosts published per session and day, checked
(:func:`decode_day`, :func:`decode_entry_usage`, :func:`valid_usage`: a host's cells only ever
about its own sessions), and hands each listed session's cells to its UsageIndex.
"""

from __future__ import annotations

import hashlib
import math

import orjson

from helm_monitor.team.hosts import MAX_ENTRY_BYTES, Refused

BUCKET_MS = 15 * 60 * 1000  # (helm_monitor.usage.facts.BUCKET_MS)
DAY_MS = 86_400_000
QUARTERS = DAY_MS // BUCKET_MS  # 96 buckets in a UTC day
# Changed days carried in an entry up to this many bytes; beyond, the entry names the days.
INLINE_MAX = 256 * 1024
# One session's one day: never more (and the web tier refuses more than MAX_ENTRY_BYTES).
FIELD_MAX = 512 * 1024
MAX_DAY = 200_000  # (year 2517)
MAX_MODELS = 10_000
MAX_MODEL_CHARS = 200
MAX_COUNT = 1 << 53
MAX_DAYS_NAMED = 200_000

Cells = list  # of tuples: (bucket ms, model, input, output, cacheRead, cacheCreation, messages,
#                ledger usd | None, list-price usd | None, unpriced tokens)


# ------------------------------------------------------------------ the agent's side
def by_day(cells) -> dict[int, list]:
    """A session's cells grouped by UTC day."""
    out: dict[int, list] = {}
    for cell in cells:
        out.setdefault(int(cell[0]) // DAY_MS, []).append(cell)
    return out


def encode_days(cells) -> dict[int, bytes]:
    """A session's cells as day -> the compact JSON of that day's cells (sorted: the same cells
    always encode alike, so the publisher can tell which days changed)."""
    return {day: encode_day(day, day_cells) for day, day_cells in sorted(by_day(cells).items())}


def encode_day(day: int, cells, *, patch: bool = False) -> bytes:
    """``{"m": [model, ...], "c": [[quarter, model index, input, output, cacheRead, cacheCreation,
    messages, ledgerUsd|null, listPriceUsd|null, unpricedTokens], ...]}``, quarter = the bucket's
    15 minutes of the UTC day (0-95). With ``"p": 1`` (``patch``, in stream entries only): just
    the cells of the day that changed, each whole, to be put in place of the same (quarter, model)."""
    models: dict[str, int] = {}
    rows = []
    for cell in sorted(cells, key=lambda c: (c[0], c[1] or "")):
        model = cell[1] or ""
        index = models.setdefault(model, len(models))
        quarter = (int(cell[0]) - day * DAY_MS) // BUCKET_MS
        rows.append([quarter, index, *cell[2:7], cell[7], cell[8], cell[9]])
    value = {"m": list(models), "c": rows}
    if patch:
        value["p"] = 1
    return orjson.dumps(value)


def day_change(day: int, before, after, whole: bytes) -> bytes:
    """What an entry carries of a day that changed: only its cells that changed (a patch) when
    none of its cells went and that is smaller, else the day's whole value. An append changes one
    or two cells: its entry carries ~100 bytes of usage, not the day's (up to 96 x models cells)."""
    if not before:
        return whole
    old = {(c[0], c[1]): c for c in before}
    now = {(c[0], c[1]) for c in after}
    if any(k not in now for k in old):
        return whole
    patch = encode_day(day, [c for c in after if old.get((c[0], c[1])) != c], patch=True)
    return patch if len(patch) < len(whole) else whole


def entry_usage(changed: dict[int, bytes], removed) -> tuple[str, bytes] | None:
    """The stream entry's usage field for these changes: ("u", inline) or ("U", the days named)."""
    if not changed and not removed:
        return None
    parts = [b'"%d":%s' % (day, value) for day, value in sorted(changed.items())]
    parts += [b'"%d":null' % day for day in sorted(removed)]
    inline = b"{" + b",".join(parts) + b"}"
    if len(inline) <= INLINE_MAX:
        return "u", inline
    return "U", orjson.dumps(sorted([*changed, *removed]))


# ------------------------------------------------------------------ the web tier's side
def _usd(value) -> bool:
    return value is None or (type(value) in (float, int) and math.isfinite(value) and value >= 0)


def decode_day(day: int, raw) -> list[tuple]:
    """One day value of a host's hash, as cells (never a patch); raises Refused("bad-usage")."""
    cells, patch = decode_carried(day, raw)
    if patch:
        raise Refused("bad-usage", f"day {day}: a patch where the whole day belongs")
    return cells


def decode_carried(day: int, raw) -> tuple[list[tuple], bool]:
    """One day value a host wrote (JSON, or parsed): (cells, whether it is a patch); raises Refused."""
    if isinstance(raw, (bytes, str)):
        if len(raw) > MAX_ENTRY_BYTES:
            raise Refused("huge", f"usage of day {day}: {len(raw)} bytes")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused("bad-usage", f"day {day}: not JSON") from None
    else:
        value = raw
    if not isinstance(day, int) or not 0 <= day <= MAX_DAY:
        raise Refused("bad-usage", f"day {day!r}")
    if not isinstance(value, dict):
        raise Refused("bad-usage", f"day {day}: not an object")
    models, rows, patch = value.get("m"), value.get("c"), value.get("p")
    if patch not in (None, 1) or type(patch) is bool:
        raise Refused("bad-usage", f"day {day}: p is {patch!r}")
    if not isinstance(models, list) or not isinstance(rows, list) or len(models) > MAX_MODELS:
        raise Refused("bad-usage", f"day {day}: no models or cells")
    if not all(isinstance(m, str) and len(m) <= MAX_MODEL_CHARS for m in models):
        raise Refused("bad-usage", f"day {day}: a model is not a short string")
    if len(rows) > QUARTERS * max(len(models), 1):
        raise Refused("bad-usage", f"day {day}: {len(rows)} cells")
    out = []
    seen = set()
    base = day * DAY_MS
    n_models = len(models)
    for row in rows:
        if type(row) is not list or len(row) != 10:
            raise Refused("bad-usage", f"day {day}: a cell is not a list of 10")
        quarter, index, inp, outp, read, write, messages, ledger, listed, unpriced = row
        # (type() is int: a bool is not a count)
        if type(quarter) is not int or not 0 <= quarter < QUARTERS:
            raise Refused("bad-usage", f"day {day}: quarter {quarter!r}")
        if type(index) is not int or not 0 <= index < n_models:
            raise Refused("bad-usage", f"day {day}: model index {index!r}")
        for v in (inp, outp, read, write, messages, unpriced):
            if type(v) is not int or not 0 <= v < MAX_COUNT:
                raise Refused("bad-usage", f"day {day}: a count is not a whole number >= 0")
        if not (_usd(ledger) and _usd(listed)):
            raise Refused("bad-usage", f"day {day}: a cost is not a number >= 0 or null")
        at = quarter * 1000 + index
        if at in seen:
            raise Refused("bad-usage", f"day {day}: quarter {quarter} of {models[index]!r} twice")
        seen.add(at)
        out.append((base + quarter * BUCKET_MS, models[index], inp, outp, read, write, messages,
                    None if ledger is None else float(ledger), None if listed is None else float(listed), unpriced))
    return out, patch == 1


def _own_key(host: str, key: str) -> str:
    parts = key.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise Refused("bad-usage", f"not a session key: {key[:200]!r}")
    if parts[0] != host:
        raise Refused("other-host", f"usage of {key[:200]!r}")
    return key


def decode_entry_usage(host: str, key: str, fields: dict) -> tuple[str, object] | None:
    """What a stream entry says of its session's usage: None (nothing), ("days", {day: (cells,
    patch) or None}) or ("named", [day, ...]: read them from the hash). Raises Refused."""
    inline, named = fields.get(b"u"), fields.get(b"U")
    if inline is None and named is None:
        return None
    _own_key(host, key)
    try:
        value = orjson.loads(inline if inline is not None else named)
    except orjson.JSONDecodeError:
        raise Refused("bad-usage", "not JSON") from None
    if inline is not None:
        if not isinstance(value, dict):
            raise Refused("bad-usage", "u is not an object")
        days = {}
        for text, day_value in value.items():
            if not (text.isascii() and text.isdigit() and len(text) <= 7):
                raise Refused("bad-usage", f"day {text[:20]!r}")
            day = int(text)
            days[day] = None if day_value is None else decode_carried(day, day_value)
        return "days", days
    if not isinstance(value, list) or len(value) > MAX_DAYS_NAMED or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DAY for d in value):
        raise Refused("bad-usage", "U is not a list of days")
    return "named", value


def parse_field(host: str, field) -> tuple[str, int]:
    """A field of ``hm:h:H:u``: (session key, day); raises Refused."""
    text = field.decode("utf-8", "replace") if isinstance(field, bytes) else str(field)
    key, at, day = text.rpartition("@")
    if not at or not (day.isascii() and day.isdigit() and len(day) <= 7):
        raise Refused("bad-usage", f"field {text[:200]!r}")
    return _own_key(host, key), int(day)


class HostUsage:
    """A host's usage as read from its hash: ``days`` (session key -> day -> cells) and the
    digest of each value read (so that reading it again does not check it again)."""

    __slots__ = ("days", "digests")

    def __init__(self, days=None, digests=None):
        self.days: dict[str, dict[int, list]] = days or {}
        self.digests: dict[tuple[str, int], bytes] = digests or {}


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def valid_usage(hosts, name: str, state, known: "UsageMirror | None" = None) -> HostUsage:
    """The valid cells in a host's usage hash (HGETALL's reply, or the error reading it). What is
    refused is counted and logged once (``hosts.ignore``). A value ``known`` already holds,
    byte for byte, is not decoded again (a resync, a reconnect, a refresh read mostly those)."""
    out = HostUsage()
    if isinstance(state, Exception):
        hosts.ignore(name, "unreadable-usage", str(state))
        return out
    for field, raw in (state or {}).items():
        try:
            key, day = parse_field(name, field)
            digest = _digest(raw) if isinstance(raw, bytes) else None
            cells = known.known(key, day, digest) if known is not None and digest is not None else None
            if cells is None:
                cells = decode_day(day, raw)
            out.days.setdefault(key, {})[day] = cells
            if digest is not None:
                out.digests[(key, day)] = digest
        except Refused as refused:
            hosts.ignore(name, refused.reason, refused.detail)
    return out


class UsageMirror:
    """What hosts published of their sessions' usage, handed to a UsageIndex for every listed
    session (single writer: the feed, under its lock; the index is read by requests).

    Cells are staged here as the feed reads them (``replace``, ``replace_host``, ``stage``); the
    index follows the store (``store_listener``: a listed session has its staged cells, a session
    that leaves the list leaves the index) and ``flush`` hands over what changed without its
    session changing. Cells of a session that is not listed are held, never counted."""

    def __init__(self, index):
        self.index = index
        self.store = None
        self._days: dict[str, dict[int, list]] = {}  # session key -> day -> cells
        self._flat: dict[str, list] = {}  # session key -> its cells, flattened and sorted (memo)
        # (session key, day) -> the digest of the hash value its cells were read from; absent
        # once an entry changed that day (its cells no longer come from a value read).
        self._digests: dict[tuple[str, int], bytes] = {}

    def known(self, key: str, day: int, digest: bytes) -> list | None:
        """The cells of a day already read from a value with this digest, or None."""
        if self._digests.get((key, day)) != digest:
            return None
        return (self._days.get(key) or {}).get(day)

    def cells(self, key: str) -> list[tuple]:
        flat = self._flat.get(key)
        if flat is None:
            days = self._days.get(key) or {}
            flat = self._flat[key] = [cell for day in sorted(days) for cell in days[day]]
        return flat

    def replace(self, hosts_usage) -> None:
        """Everything (a snapshot: every host's HostUsage); the store's refresh that follows
        hands it to the index."""
        days: dict[str, dict[int, list]] = {}
        digests: dict[tuple[str, int], bytes] = {}
        for usage in hosts_usage:
            days.update(usage.days)
            digests.update(usage.digests)
        self._days, self._digests, self._flat = days, digests, {}

    def replace_host(self, host: str, usage: HostUsage) -> list[str]:
        """One host's whole usage (its resync, or found anew); returns every key it touched."""
        prefix = host + ":"
        old = [key for key in self._days if key.startswith(prefix)]
        for key in old:
            self.drop(key)
        for key, days in usage.days.items():
            self._days[key] = dict(days)
            self._flat.pop(key, None)
        self._digests.update(usage.digests)
        return [*old, *usage.days]

    def stage(self, key: str, days: dict[int, tuple[list, bool] | None]) -> None:
        """Days of one session changed: (cells, patch) each, or None (that day has no cells any
        more). A patch's cells take the place of the same (bucket, model); others stay."""
        for day in days:  # (first: a day's digest never names cells it was not read from)
            self._digests.pop((key, day), None)
        held = self._days.setdefault(key, {})
        for day, change in days.items():
            cells = None
            if change is not None:
                cells, patch = change
                if patch:
                    merged = {(c[0], c[1]): c for c in held.get(day, ())}
                    merged.update(((c[0], c[1]), c) for c in cells)
                    cells = sorted(merged.values(), key=lambda c: (c[0], c[1]))
            if cells:
                held[day] = cells
            else:
                held.pop(day, None)
        self._flat.pop(key, None)

    def drop(self, key: str) -> None:
        for day in self._days.pop(key, None) or ():
            self._digests.pop((key, day), None)
        self._flat.pop(key, None)

    def flush(self, keys_) -> None:
        """Hand these sessions' cells to the index (their sessions may not have changed)."""
        if self.store is None:
            return
        for key in keys_:
            session = self.store.get(key)
            if session is not None:
                self.index.put(key, session, self.cells(key))

    def store_listener(self, kind: str, sessions: list[dict]) -> None:
        if kind == "refresh":
            present = {s["key"] for s in sessions}
            for key in [k for k in self._days if k not in present]:
                self.drop(key)
            for key in self.index.keys():
                if key not in present:
                    self.index.put(key, None, None)
            for s in sessions:
                self.index.put(s["key"], s, self.cells(s["key"]))
        elif kind == "session-deleted":
            for s in sessions:
                key = s.get("key")
                if key is not None:
                    self.drop(key)
                    self.index.put(key, None, None)
        elif kind in ("session-created", "session-updated"):
            for s in sessions:
                self.index.put(s["key"], s, self.cells(s["key"]))

    def __len__(self) -> int:
        return len(self._days)
