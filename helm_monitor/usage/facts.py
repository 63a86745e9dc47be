"""One session's usage, kept in 15-minute UTC buckets as its files are read (SPEC 10).

A source adds every distinct API message once (its latest usage: a message streamed over
several records is replaced, not added again), subagents included, and every ledger entry
the agent itself wrote (Claude Code's ``cost-state`` deltas, OpenCode's stored ``cost``).
Nothing is grouped by a time zone here: a 15-minute UTC bucket lies inside one local hour of
every zone (offsets are whole quarter hours), so any zone regroups them exactly later.

Rows are keyed ``(bucket start ms, model, tier, speed)``:

- ``tier`` is the long-context class of the request (decided per request, as providers bill
  it): the largest of :data:`TIER_STARTS` that the request's whole prompt (uncached input,
  cache reads and cache writes) exceeds, else 0. Every tier start of the price table is one
  of these, so pricing the sum of a row is exact.
- ``speed`` is ``"fast"`` for fast-mode requests, else ``""``.

Each row holds :data:`FIELDS` counts. Ledger entries are keyed ``(bucket start ms, model)``
and hold dollars.
"""

from __future__ import annotations

from datetime import datetime

BUCKET_MS = 15 * 60 * 1000
# Uncached input, output (thinking included), cache reads, 5-minute and 1-hour cache writes,
# API messages (replies; subagents' included).
FIELDS = ("input", "output", "cacheRead", "cacheWrite5m", "cacheWrite1h", "messages")
IN, OUT, CACHE_READ, CACHE_WRITE_5M, CACHE_WRITE_1H, MESSAGES = range(6)
# Every tier start of genai-prices 0.2.x (tokens of one request's prompt above which a tier
# applies); pricing checks its table against this list.
TIER_STARTS = (32_000, 100_000, 128_000, 199_999, 200_000, 256_000, 272_000, 512_000, 524_288)
# Facts exported with a different version are read again (what a read derives changed).
VERSION = 1


def bucket_of(ts_ms: int) -> int:
    """The start (ms since the epoch, UTC) of the 15-minute bucket holding ``ts_ms``."""
    return ts_ms - ts_ms % BUCKET_MS


def tier_of(prompt_tokens: int) -> int:
    """The long-context class of a request whose whole prompt is ``prompt_tokens``."""
    tier = 0
    for start in TIER_STARTS:
        if prompt_tokens > start:
            tier = start
        else:
            break
    return tier


def ms_of(ts: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 timestamp (``Z`` or an offset), or None."""
    if not ts or not isinstance(ts, str):
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None  # a time without a zone is no instant
    return int(dt.timestamp() * 1000)


_INT_ONLY = {int}


class UsageFacts:
    """What one session used: token rows and the agent's own ledger, bucketed by time."""

    __slots__ = ("rows", "ledger", "ledger_models_unknown", "ledger_per_model")

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, int, str], list[int]] = {}
        self.ledger: dict[tuple[int, str], float] = {}
        # The agent's ledger says it could not price some of its models itself
        # (Claude Code's ``hasUnknownModelCost``).
        self.ledger_models_unknown = False
        # The ledger charges each message (OpenCode), so a model it never charged was priced by
        # nobody there; otherwise (Claude Code's running totals) it covers every model of the session.
        self.ledger_per_model = False

    # ------------------------------------------------------------ writing
    def add(self, ts_ms: int, model: str, tokens, *, tier: int = 0, speed: str = "",
            messages: int = 1, sign: int = 1) -> tuple:
        """Add one message's usage (``tokens``: the first five :data:`FIELDS`) at ``ts_ms``.

        Returns the row key, so a later record of the same message can take it back with
        ``sign=-1`` before its newer usage is added."""
        key = (bucket_of(ts_ms), model or "", tier, speed)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0, 0, 0, 0, 0, 0]
        for i in range(5):
            row[i] += sign * tokens[i]
        row[MESSAGES] += sign * messages
        if sign < 0 and not any(row):
            del self.rows[key]
        return key

    def add_ledger(self, ts_ms: int, model: str, usd: float) -> None:
        """Add dollars the agent itself charged ``model`` at ``ts_ms`` (a delta of its ledger)."""
        if not usd:
            return
        key = (bucket_of(ts_ms), model or "")
        self.ledger[key] = self.ledger.get(key, 0.0) + usd

    def merge(self, other: "UsageFacts") -> None:
        """Add ``other``'s facts to these (a session's files each keep their own)."""
        for key, row in other.rows.items():
            mine = self.rows.get(key)
            if mine is None:
                self.rows[key] = list(row)
            else:
                for i in range(6):
                    mine[i] += row[i]
        for key, usd in other.ledger.items():
            self.ledger[key] = self.ledger.get(key, 0.0) + usd
        self.ledger_models_unknown = self.ledger_models_unknown or other.ledger_models_unknown
        self.ledger_per_model = self.ledger_per_model or other.ledger_per_model

    @classmethod
    def combined(cls, parts) -> "UsageFacts":
        out = cls()
        for part in parts:
            if part is not None:
                out.merge(part)
        return out

    # ------------------------------------------------------------ reading
    @property
    def has_ledger(self) -> bool:
        return bool(self.ledger)

    def charged_models(self) -> "set[str] | None":
        """The models whose tokens the agent's ledger charged (they are not list-priced again):
        None for every model (a ledger of running totals); an empty set without a ledger."""
        if not self.ledger:
            return set()
        if not self.ledger_per_model:
            return None
        return {m for _b, m in self.ledger}

    def totals(self) -> list[int]:
        """The sums of every row's :data:`FIELDS`."""
        out = [0, 0, 0, 0, 0, 0]
        for row in self.rows.values():
            for i in range(6):
                out[i] += row[i]
        return out

    def __bool__(self) -> bool:
        return bool(self.rows or self.ledger)

    def __eq__(self, other) -> bool:
        return (isinstance(other, UsageFacts) and self.rows == other.rows and self.ledger == other.ledger
                and self.ledger_models_unknown == other.ledger_models_unknown
                and self.ledger_per_model == other.ledger_per_model)

    def copy(self) -> "UsageFacts":
        out = UsageFacts()
        out.merge(self)
        return out

    # ------------------------------------------------------------ saved state
    def to_json(self) -> dict:
        return {"v": VERSION,
                "rows": [[b, m, t, s, *row] for (b, m, t, s), row in self.rows.items()],
                "ledger": [[b, m, usd] for (b, m), usd in self.ledger.items()],
                "unknown": self.ledger_models_unknown, "perModel": self.ledger_per_model}

    @classmethod
    def from_json(cls, data) -> "UsageFacts":
        """Facts from :meth:`to_json`; raises ValueError for anything odd (the file is read again)."""
        if type(data) is not dict or data.get("v") != VERSION:
            raise ValueError("usage facts of another version")
        out = cls()
        rows = out.rows
        for entry in data["rows"]:
            if type(entry) is not list or len(entry) != 10:
                raise ValueError("usage row")
            b, m, t, s, *row = entry
            if (type(b) is not int or type(m) is not str or type(t) is not int or type(s) is not str
                    or b % BUCKET_MS or not set(map(type, row)) <= _INT_ONLY):
                raise ValueError("usage row")
            rows[(b, m, t, s)] = row
        for entry in data["ledger"]:
            if type(entry) is not list or len(entry) != 3:
                raise ValueError("usage ledger")
            b, m, usd = entry
            if type(b) is not int or type(m) is not str or type(usd) not in (int, float) or b % BUCKET_MS:
                raise ValueError("usage ledger")
            out.ledger[(b, m)] = float(usd)
        out.ledger_models_unknown = bool(data.get("unknown", False))
        out.ledger_per_model = bool(data.get("perModel", False))
        return out
