"""Answering ``GET /api/search`` from search.db, read-only (SPEC 11).

The words typed are never FTS syntax: each becomes a quoted phrase of its tokens (so
``json.loads`` finds the phrase "json loads", as the tokenizer split it when indexing), all
of them must match, and the last one is a prefix while it is being typed (from 3
characters: shorter prefixes match half the index). Quotes group words into one phrase.

Snippets are cut from the stored masked fields around the first match, and masked again;
they come back as text with the ranges to highlight, never as HTML.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timezone

from helm_monitor.search import db
from helm_monitor.search.fields import COLUMNS, DEFAULT_COLUMNS
from helm_monitor.sources.redact import redact
from helm_monitor.sources.text import iso_from_ms

MAX_QUERY = 1_000
MAX_TERMS = 32
PREFIX_MIN = 3
MAX_LIMIT = 100
MAX_OFFSET = 10_000
# The count is the expensive part of a common word's query: it stops here ("1000+").
COUNT_CAP = 1_000
SNIPPET_SIDE = 120
# Title, replies, thinking and tool calls matter more than tool output.
_WEIGHTS = "10.0, 3.0, 2.0, 1.0"
# What unicode61 keeps as a token: letters and digits (an underscore, a dot, a dash split words).
_TOKEN = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|(\S+)')


class QueryError(ValueError):
    """The query cannot be answered as given (a 400)."""


class Parsed:
    def __init__(self, phrases: list[list[str]], prefix: bool):
        self.phrases = phrases  # each a list of tokens, lower-cased
        self.prefix = prefix  # the last token of the last phrase is a prefix

    def match(self, columns) -> str:
        terms = []
        for n, tokens in enumerate(self.phrases):
            star = "*" if self.prefix and n == len(self.phrases) - 1 else ""
            terms.append('"' + " ".join(tokens) + '"' + star)
        return "{" + " ".join(columns) + "} : (" + " AND ".join(terms) + ")"

    def pattern(self) -> re.Pattern:
        """Where the terms are in a text, as the tokenizer saw them (case and word boundaries)."""
        alts = []
        for n, tokens in enumerate(self.phrases):
            last = self.prefix and n == len(self.phrases) - 1
            body = r"[\W_]+".join(re.escape(t) for t in tokens)
            alts.append(r"(?<![^\W_])" + body + (r"[^\W_]*" if last else r"(?![^\W_])"))
        return re.compile("|".join(alts), re.IGNORECASE)


def parse(q: str) -> Parsed:
    if len(q) > MAX_QUERY:
        raise QueryError(f"the query is longer than {MAX_QUERY} characters")
    phrases = []
    for m in _PART.finditer(q):
        quoted, word = m.group(1), m.group(2)
        tokens = [t.lower() for t in _TOKEN.findall(quoted if quoted is not None else word)]
        if tokens:
            phrases.append(tokens)
    if not phrases:
        raise QueryError("the query has no words to search for")
    if sum(len(p) for p in phrases) > MAX_TERMS:
        raise QueryError(f"the query has more than {MAX_TERMS} words")
    last = q.rstrip()
    prefix = (q == last and not last.endswith('"') and len(phrases[-1][-1]) >= PREFIX_MIN)
    return Parsed(phrases, prefix)


def _ms_of(value: str | None, name: str) -> int | None:
    if not value:
        return None
    if re.fullmatch(r"\d{1,15}", value):
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} must be a date (2026-12-01), a time (ISO 8601) or epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def search(path: str, q: str, *, limit: int = 20, offset: int = 0, source: str | None = None,
           project: str | None = None, host: str | None = None, start: str | None = None,
           end: str | None = None, results: bool = False, sort: str = "relevance") -> dict:
    """The SPEC 11 answer. QueryError for a query that cannot be run, db.IndexUnavailable while building."""
    began = time.perf_counter()
    parsed = parse(q)
    if not 1 <= limit <= MAX_LIMIT or not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"limit must be 1-{MAX_LIMIT} and offset 0-{MAX_OFFSET}")
    if sort not in ("relevance", "recent"):
        raise QueryError("sort must be relevance or recent")
    columns = COLUMNS if results else DEFAULT_COLUMNS
    where, args = ["fts MATCH ?"], [parsed.match(columns)]
    for column, value in (("s.source", source), ("s.host", host), ("s.project", project)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    lo, hi = _ms_of(start, "from"), _ms_of(end, "to")
    if lo is not None:
        where.append("d.ts >= ?")
        args.append(lo)
    if hi is not None:
        where.append("d.ts < ?")
        args.append(hi)
    # CROSS JOIN keeps SQLite from starting at docs or sessions for a filter (seconds, not ms).
    base = ("FROM fts CROSS JOIN docs d ON d.rowid = fts.rowid CROSS JOIN sessions s ON s.id = d.session "
            "WHERE " + " AND ".join(where))
    order = f"bm25(fts, {_WEIGHTS}), fts.rowid DESC" if sort == "relevance" else "d.ts DESC, d.rowid DESC"
    conn = db.open_reader(path)
    try:
        try:
            if len(where) == 1 and sort == "relevance":
                rows = _top_ranked(conn, args[0], limit, offset)
            else:
                rows = conn.execute(f"SELECT s.key, d.idx, d.role, d.ts, d.body {base} ORDER BY {order} LIMIT ? OFFSET ?",
                                    (*args, limit, offset)).fetchall()
            total = conn.execute(f"SELECT count(*) FROM (SELECT 1 {base} LIMIT {COUNT_CAP + 1})", args).fetchone()[0]
            info = db.meta(conn)
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc).lower() or "syntax" in str(exc).lower():
                raise QueryError("the query could not be read") from None
            raise db.IndexUnavailable(str(exc)) from exc
    finally:
        conn.close()
    pattern = parsed.pattern()
    hits = []
    for key, idx, role, ts, body in rows:
        snippet, highlights, field = _snippet(db.unpack(body), columns, pattern)
        hits.append({"key": key, "messageIndex": idx, "role": role, "timestamp": iso_from_ms(ts) if ts else None,
                     "snippet": snippet, "highlights": highlights, "field": field})
    return {"hits": hits, "total": min(total, COUNT_CAP), "totalCapped": total > COUNT_CAP,
            "indexing": info.get("state") != "ready",
            "tookMs": round((time.perf_counter() - began) * 1000, 2)}


def _top_ranked(conn: sqlite3.Connection, match: str, limit: int, offset: int) -> list:
    """The best ``limit`` hits after ``offset``, unfiltered: ranked in the FTS table alone, then joined.

    Ranking the joined rows costs twice as much for a common word (bm25 for every joined row).
    Postings of dropped documents (orphans, at most about a fifth) are skipped after the join,
    so more are ranked than asked for, and more again when too many of those were orphans.
    """
    want = offset + limit
    take = want + want // 4 + 10
    while True:
        rows = conn.execute(
            "SELECT s.key, d.idx, d.role, d.ts, d.body FROM "
            f"(SELECT rowid, bm25(fts, {_WEIGHTS}) AS r FROM fts WHERE fts MATCH ? ORDER BY r, rowid DESC LIMIT ?) AS top "
            "CROSS JOIN docs d ON d.rowid = top.rowid CROSS JOIN sessions s ON s.id = d.session "
            "ORDER BY top.r, top.rowid DESC", (match, take)).fetchall()
        ranked = conn.execute("SELECT count(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ? LIMIT ?)",
                              (match, take)).fetchone()[0] if len(rows) < want else 0
        if len(rows) >= want or ranked < take:  # enough, or every match was ranked
            return rows[offset:want]
        take *= 2


def _snippet(fields: tuple[str, ...], columns, pattern: re.Pattern) -> tuple[str, list, str | None]:
    """A window of the first field (of those searched) where a term is, masked, and the terms' ranges in it."""
    for name in columns:
        text = fields[COLUMNS.index(name)]
        m = pattern.search(text) if text else None
        if m is None:
            continue
        lo = max(0, m.start() - SNIPPET_SIDE)
        hi = min(len(text), m.end() + SNIPPET_SIDE)
        # Start and end on a word boundary where one is near.
        if lo > 0:
            space = text.find(" ", lo, m.start())
            lo = space + 1 if space != -1 else lo
        if hi < len(text):
            space = text.rfind(" ", m.end(), hi)
            hi = space if space != -1 else hi
        window = redact(" ".join(text[lo:hi].split()))
        marks = [[h.start(), h.end()] for h in pattern.finditer(window)][:20]
        return (("\u2026" if lo > 0 else "") + window + ("\u2026" if hi < len(text) else ""),
                [[a + (1 if lo > 0 else 0), b + (1 if lo > 0 else 0)] for a, b in marks], name)
    # The tokenizer matched what the pattern does not see (diacritics folded): the field's start.
    for name in columns:
        text = fields[COLUMNS.index(name)]
        if text:
            window = redact(" ".join(text[: 2 * SNIPPET_SIDE].split()))
            return window + ("\u2026" if len(text) > 2 * SNIPPET_SIDE else ""), [], name
    return "", [], None
