"""One OpenCode session as the rows read of it, and the Session dict they make.

A :class:`SessionRows` holds the ``session`` row and a summary of each of its
``message`` and ``part`` rows (not their text, but for prompts), so that a
change re-reads only the rows that changed. The Session fields are worked
out from them on demand and cached until the next change.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import orjson

from helm_monitor.sources.base import UNTITLED, base_session
from helm_monitor.sources.opencode import records as R
from helm_monitor.sources.redact import redact_head
from helm_monitor.sources.text import iso_from_ms
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts, bucket_of, tier_of

SOURCE = "opencode"


class SessionRow(NamedTuple):
    rowid: int
    id: str
    directory: str | None
    title: str | None
    created: int
    updated: int
    parent_id: str | None
    project_id: str | None
    version: str | None
    cost: float | None
    tokens_input: int | None
    tokens_output: int | None
    tokens_reasoning: int | None
    tokens_cache_read: int | None
    tokens_cache_write: int | None
    model: str | None  # JSON {id, providerID, variant}
    permission: str | None  # JSON list of rules
    archived: int | None
    worktree: str | None  # project.worktree


def session_row(row) -> SessionRow:
    """From a row of :meth:`Schema.session_select` (TEXT as bytes)."""
    t = R.text
    num = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return SessionRow(row[0], t(row[1]), t(row[2]), t(row[3]), R.as_int(row[4]), R.as_int(row[5]),
                      t(row[6]), t(row[7]), t(row[8]), num(row[9]), num(row[10]), num(row[11]), num(row[12]),
                      num(row[13]), num(row[14]), t(row[15]), t(row[16]), num(row[17]), t(row[18]))


def _is_run_session(row: SessionRow) -> bool:
    """Made by ``opencode run``: it denies the ``question`` tool (nobody is there to answer).

    Observed in 1.18.33: every ``run`` session's ``permission`` holds
    ``{"permission":"question","pattern":"*","action":"deny"}``; a TUI session's is NULL.
    """
    if not row.permission or '"question"' not in row.permission:
        return False
    try:
        rules = orjson.loads(row.permission)
    except orjson.JSONDecodeError:
        return False
    return isinstance(rules, list) and any(
        isinstance(r, dict) and r.get("permission") == "question" and r.get("action") == "deny" for r in rules)


_VERSIONS = itertools.count(1)
# A ledger entry taken back to less than this is gone (what float sums leave of a cancelled amount).
_LEDGER_EPSILON = 1e-12


class SessionRows:
    """The rows of one session, and its usage (SPEC 10) kept up to date as messages come and change.

    Usage: each assistant message once, at its latest tokens (a message row rewritten replaces
    what it said before), at the time its reply ended, as ``providerID/modelID``; uncached input
    is OpenCode's ``tokens.input`` (it keeps cache reads and writes apart), output is output plus
    reasoning, the cache write is the 5-minute kind. Its stored ``cost`` is OpenCode's ledger for
    that message, with one exception: OpenCode stores ``0`` both for a free model and for one it
    has no price for (a custom or local provider, a model models.dev lacks), so a ``0`` beside
    tokens is no price at all and is not a ledger entry (those tokens go to list prices, else
    unpriced; SPEC 10: never 0 for a model nobody priced). A ``0`` without tokens is nothing.
    """

    __slots__ = ("row", "messages", "parts", "bad", "bad_parts", "cursor", "_summary", "usage", "_usage_of",
                 "u_version")

    def __init__(self, row: SessionRow):
        self.row = row
        self.messages: dict[str, R.Message] = {}
        self.parts: dict[str, R.Part] = {}
        self.bad: set[str] = set()  # ids of message rows whose data is unusable (counted as rows, not shown)
        self.bad_parts: set[str] = set()
        self.cursor = 0  # the latest time_updated of its message and part rows (ms)
        self._summary: dict | None = None
        self.usage = _facts()  # of its own messages (its sub-agents' are theirs)
        # message id -> (facts row key or None, its tokens, ledger key or None, its dollars)
        self._usage_of: dict[str, tuple] = {}
        self.u_version = next(_VERSIONS)  # a new value whenever ``usage`` changes

    def changed(self) -> None:
        self._summary = None

    def put_message(self, m: R.Message) -> bool:
        old = self.messages.get(m.id)
        if old == m:
            return False
        if old is not None:
            self._take_usage(m.id)
        self.messages[m.id] = m
        self._add_usage(m)
        self.cursor = max(self.cursor, m.updated)
        self._summary = None
        return True

    def drop_message(self, mid: str) -> bool:
        """A message row that can no longer be read: what it said goes."""
        if self.messages.pop(mid, None) is None:
            return False
        self._take_usage(mid)
        self._summary = None
        return True

    def reset_rows(self) -> None:
        """Before its message and part rows are read again from scratch."""
        self.messages, self.parts, self.bad, self.bad_parts, self.cursor = {}, {}, set(), set(), 0
        if self._usage_of or self.usage:
            self.usage, self._usage_of = _facts(), {}
            self.u_version = next(_VERSIONS)
        self._summary = None

    def _add_usage(self, m: R.Message) -> None:
        if m.role != "assistant":
            return
        t = m.tokens
        tokens = (t[0], t[1], t[2], t[3], 0)
        model = m.usage_model
        key = lkey = None
        usd = 0.0
        if any(tokens):
            key = self.usage.add(m.at, model, tokens, tier=tier_of(t[0] + t[2] + t[3]))
        if m.cost is not None and m.cost > 0:
            self.usage.add_ledger(m.at, model, m.cost)
            lkey, usd = (bucket_of(m.at), model), m.cost
        if key is not None or lkey is not None:
            self._usage_of[m.id] = (key, tokens, lkey, usd)
            self.u_version = next(_VERSIONS)

    def _take_usage(self, mid: str) -> None:
        entry = self._usage_of.pop(mid, None)
        if entry is None:
            return
        key, tokens, lkey, usd = entry
        if key is not None:
            self.usage.add(key[0], key[1], tokens, tier=key[2], speed=key[3], sign=-1)
        if lkey is not None:
            left = self.usage.ledger.get(lkey, 0.0) - usd
            if abs(left) < _LEDGER_EPSILON:
                self.usage.ledger.pop(lkey, None)
            else:
                self.usage.ledger[lkey] = left
        self.u_version = next(_VERSIONS)

    def put_part(self, p: R.Part) -> bool:
        if self.parts.get(p.id) == p:
            return False
        self.parts[p.id] = p
        self.cursor = max(self.cursor, p.updated)
        self._summary = None
        return True

    @property
    def size(self) -> int:
        return sum(m.size for m in self.messages.values()) + sum(p.size for p in self.parts.values())

    def summary(self) -> dict:
        """What the messages say: prompts, counts, tokens, cost, model, the turn in progress."""
        if self._summary is not None:
            return self._summary
        texts: dict[str, list[tuple[str, str]]] = {}
        for p in self.parts.values():
            if p.text is not None:
                texts.setdefault(p.message_id, []).append((p.id, p.text))
        prompts: list[str] = []
        replies = 0
        tokens = [0, 0, 0, 0]
        cost: float | None = None
        model = None
        latest_assistant: R.Message | None = None
        run = _is_run_session(self.row)
        for m in sorted(self.messages.values(), key=lambda m: (m.created, m.id)):
            if m.role == "user":
                body = "\n".join(t for _, t in sorted(texts.get(m.id, ()))).strip()
                if body:
                    prompts.append(R.unquote_run_prompt(body) if run else body)
            elif m.role == "assistant":
                replies += 1
                for i in range(4):
                    tokens[i] += m.tokens[i]
                if m.cost is not None:
                    cost = (cost or 0.0) + m.cost
                model = m.model or model
                latest_assistant = m
        self._summary = {
            "first": R.masked_prompt(prompts[0]) if prompts else None,
            "last": R.masked_prompt(prompts[-1]) if prompts else None,
            "title_prompt": R.masked_prompt(prompts[0], R.TITLE_PROMPT_MAX) if prompts else None,
            "count": len(prompts) + replies,
            "tokens": tokens,
            "cost": cost,
            "model": model,
            "in_turn": latest_assistant is not None and not latest_assistant.completed
            and not latest_assistant.error,
            "size": self.size,
        }
        return self._summary

    def in_turn(self) -> bool:
        return self.summary()["in_turn"]

    def build(self, status: str, subagents: int, usage: UsageFacts | None = None) -> dict:
        row, s = self.row, self.summary()
        out = base_session(SOURCE, row.id)
        if row.title and not R.is_placeholder_title(row.title):
            title = R.collapse(redact_head(row.title, R.TITLE_PROMPT_MAX)[0], R.TITLE_PROMPT_MAX)
        else:
            title = s["title_prompt"] or UNTITLED
        columns = (row.tokens_input, row.tokens_output, row.tokens_reasoning, row.tokens_cache_read,
                   row.tokens_cache_write)
        if any(c is not None for c in columns) and sum(R.as_int(c) for c in columns) > 0:
            tokens = {"input": R.as_int(row.tokens_input),
                      "output": R.as_int(row.tokens_output) + R.as_int(row.tokens_reasoning),
                      "cacheRead": R.as_int(row.tokens_cache_read), "cacheCreation": R.as_int(row.tokens_cache_write)}
        else:  # before the session_usage migration (or never totalled): the messages' own
            t = s["tokens"]
            tokens = {"input": t[0], "output": t[1], "cacheRead": t[2], "cacheCreation": t[3]}
        model = s["model"]
        if model is None and row.model:
            try:
                m = orjson.loads(row.model)
                model = R.str_or_none(m.get("id")) if isinstance(m, dict) else None
            except orjson.JSONDecodeError:
                model = None
        out.update({
            "projectPath": row.directory or row.worktree,
            "title": title,
            "firstPrompt": s["first"],
            "lastPrompt": s["last"],
            "messageCount": s["count"],
            "createdAt": iso_from_ms(row.created),
            "updatedAt": iso_from_ms(max(row.updated, row.created, self.cursor)),
            "model": model,
            "tokens": tokens,
            "status": status,
            "subagentCount": subagents,
            "sizeBytes": s["size"],
            "version": row.version or None,
            # its own messages' and its sub-agents' (the caller's ``usage``): OpenCode's ledger,
            # else list prices, else unpriced
            "cost": pricing.session_cost(self.usage if usage is None else usage, SOURCE),
        })
        return out


def _facts() -> UsageFacts:
    """OpenCode's ledger is per message: a model it charged nothing for was not priced by it."""
    facts = UsageFacts()
    facts.ledger_per_model = True
    return facts
