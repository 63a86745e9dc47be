"""Incremental reading of one JSONL transcript into running session totals.

Reading what was appended costs time proportional to the appended bytes: the
reader keeps its offset, the unfinished last line and the running totals. A
file that shrinks or is replaced (another inode) is read again from the start.

Most of a 2.1.330 transcript's bytes are bookkeeping (attachments, copies of
API requests, file-history snapshots) that the session list never needs; such
lines are recognised by their first bytes and skipped without JSON parsing.
``cost-state`` lines, Claude Code's own ledger, are bookkeeping too but read for
usage (SPEC 10): recognised by their first bytes as well, and decoded alone.
The usage facts (helm_monitor.sources.claude.usage) are kept in the same pass.

A record cut off mid-write (a crash, a full disk) and then appended to (as
``--resume`` does) leaves the appended record on the same physical line as
the cut one. Every record starts with ``{"``, so such a line is split again:
a line that does not parse is searched for the records it ends with, and a
skipped line for the start of a record the session list needs. The cut part
is logged once per file and counted as one bad line; nothing is counted twice.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat

import orjson
from collections import OrderedDict, deque
from hashlib import blake2b

from helm_monitor.sources.claude import records as R
from helm_monitor.sources.claude.usage import Ledger, UsageCounter, bucket_at
from helm_monitor.sources.jsonl import Window, mapping_wanted, windows
from helm_monitor.sources.redact import redact, redact_head
from helm_monitor.usage.facts import bucket_of, ms_of, tier_of

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 4 * 1024 * 1024
# A line longer than this is dropped (and logged) rather than held in memory.
MAX_LINE_BYTES = 256 * 1024 * 1024
_TAIL_CHECK_BYTES = 32
# Messages whose usage a later record of theirs may still replace.
RECENT_MESSAGES = 64
# Bytes at the start of a line enough to tell a skippable record.
_PREFIX_BYTES = 512

# Record types read for the session list; every other type is bookkeeping.
WANTED_TYPES = frozenset({b"user", b"assistant", b"summary", b"ai-title", b"custom-title", b"agent-name"})
_TYPE_FIRST = b'{"type":"'
# Claude Code's ledger (running totals of what it charged): bookkeeping for the session list,
# read for usage. Small (about 1 KB) and a few a turn: recognised by its first bytes, decoded alone.
_COST_STATE = b'{"type":"cost-state"'
# Conversation records put parentUuid and isSidechain first; an attachment
# (the bulk of a 2.1.330 file) names its payload third.
_ATTACHMENT_RE = re.compile(rb'\{"parentUuid":(?:null|"[^"]{0,80}"),"isSidechain":(?:true|false),"attachment":')
# Top-level timestamps of skipped records. Bookkeeping records carry it among
# their first scalar keys (a nested one, as in file-history snapshots, sits
# behind an object and does not match); an attachment carries it after its payload.
_HEAD_TIMESTAMP_RE = re.compile(
    rb'\{"type":"[^"]{1,64}",(?:"[A-Za-z]{1,40}":(?:"[^"\\]{0,200}"|-?[0-9.eE+]{1,40}|true|false|null),){0,6}'
    rb'"timestamp":"([0-9T:.+Z-]{10,40})"')
_ATTACHMENT_MARK = b'"type":"attachment","uuid":"'
_ATTACHMENT_TIMESTAMP_RE = re.compile(re.escape(_ATTACHMENT_MARK) + rb'[^"]{0,80}","timestamp":"([0-9T:.+Z-]{10,40})"')
# Where a record can start (every top-level record's first key is one of these):
# the candidates for a record glued behind a cut one.
_RECORD_START_TEXT_RE = re.compile(r'\{"(?:parentUuid|type)":')
_DECODER = json.JSONDecoder()
# Inside skipped lines, the starts of records the session list needs. Inside a
# well-formed record such a start is only a nested object's, which never
# decodes to the line's end. Conversation records (user, assistant) start with
# this key, looked for over the whole line (bytes.find, about 5 GB/s; then the
# byte before it must be "{"). Titles and summaries are small records (about
# 100 bytes), so one glued behind a cut record lies within the line's last
# METADATA_TAIL_BYTES: a regular expression looks only there.
_CONVERSATION_KEY = b'"parentUuid":'
_METADATA_START_RE = re.compile(rb'\{"type":"(?:summary|ai-title|custom-title|agent-name|user|assistant)"')
METADATA_TAIL_BYTES = 1024
_START_MAX_BYTES = 48  # longer than any record start _wanted_start finds
# Candidates tried in one line before it is given up as corrupt.
MAX_RECOVERY_TRIES = 4096
# Records glued to each other on one line followed back.
MAX_GLUED = 32
_TORN = "a record was cut off mid-write and more records follow it on the same line; the cut part was skipped"

# The per-line triage of a chunk in C (``_lines.c``, built where a compiler is): the tests of
# _skippable and _wanted_start, byte for byte, over every line at once. Without it (not built, or
# HELM_PURE_PYTHON=1) the reader makes them in Python; the results are the same.
try:
    from helm_monitor.sources.claude import _lines
except ImportError:  # pragma: no cover (a build without a compiler)
    _lines = None
_triage = None if _lines is None or os.environ.get("HELM_PURE_PYTHON") == "1" else _lines.lines
_SKIP = _lines.SKIP if _lines is not None else 1
_RECORD = _lines.RECORD if _lines is not None else 2


def _conversation_start(buf, pos: int, end: int) -> int:
    """Where the first conversation record starts in ``buf[pos:end]``, or -1."""
    i = buf.find(_CONVERSATION_KEY, pos + 1, end)
    while i >= 0 and buf[i - 1] != 0x7B:  # "{"
        i = buf.find(_CONVERSATION_KEY, i + 1, end)
    return i - 1 if i >= 0 else -1


def _search(pattern: re.Pattern, literal: bytes, buf, pos: int, end: int) -> re.Match | None:
    """``pattern.search(buf, pos, end)`` for a pattern that starts with ``literal``: the literal is
    found first by ``bytes.find`` (several times faster than the regular expression's own scan)."""
    i = buf.find(literal, pos, end)
    return None if i < 0 else pattern.search(buf, i, end)


def _metadata_start(buf, pos: int, end: int) -> int:
    """Where the first ``{"type":"<a type the list reads>"`` in ``buf[pos:end]`` starts, or -1."""
    m = _search(_METADATA_START_RE, _TYPE_FIRST, buf, pos, end)
    return -1 if m is None else m.start()


def _wanted_start(buf, pos: int, end: int) -> int:
    """Where the first start of a needed record in the skipped line ``buf[:end]``, from ``pos``, is, or -1."""
    i = buf.find(_CONVERSATION_KEY, pos + 1, end)
    while i >= 0 and buf[i - 1] != 0x7B:  # "{"
        i = buf.find(_CONVERSATION_KEY, i + 1, end)
    m = _metadata_start(buf, max(pos, end - METADATA_TAIL_BYTES), end)
    if m >= 0 and (i < 0 or m < i - 1):
        return m
    return i - 1 if i >= 0 else -1


def _object(data) -> dict | None:
    try:
        rec = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None


def message_key(message_id: str) -> int:
    """A stable 64-bit digest of an API message id (stable across processes, for the saved state)."""
    return int.from_bytes(blake2b(message_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little",
                          signed=True)


def _prompt_text(prompt: str) -> str:
    # Masked before it is cut (a secret straddling the cut is still masked whole).
    head, cut = redact_head(prompt, R.FIRST_PROMPT_MAX)
    return R.clip(head + "\u2026" if cut else head, R.FIRST_PROMPT_MAX)


def _masked(value) -> str | None:
    """A title-like string, masked as soon as it is read (it is also kept in the saved state)."""
    text = R.str_or_none(value)
    return redact(text) if text else None


class SessionStats:
    """Running totals of one transcript: everything SPEC section 5 derives from records, and its
    usage facts and ledger (SPEC 10)."""

    __slots__ = (
        "first_ts", "last_ts", "cwd", "git_branch", "version", "model", "custom_title", "ai_title",
        "summary", "first_prompt", "last_prompt", "prompt_count", "message_ids", "recent_usage", "tokens",
        "bad_lines", "records", "session_id", "usage", "side_ids", "ledger", "file_ms", "_raw_first", "_raw_last",
        "saved_recent", "first_key", "replaced", "replaced_n",
    )

    def __init__(self, log: bool = False) -> None:
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.cwd: str | None = None
        self.git_branch: str | None = None
        self.version: str | None = None
        self.model: str | None = None
        self.custom_title: str | None = None
        self.ai_title: str | None = None
        self.summary: str | None = None
        self.first_prompt: str | None = None
        self.last_prompt: str | None = None
        self.prompt_count = 0
        # message id -> usage of its latest record: distinct ids count once
        # Distinct assistant message ids, as 64-bit digests (a 4 GB history holds a
        # million of them: ints take a quarter of the memory of the id strings).
        self.message_ids: set[int] = set()
        # Usage of the latest messages: the records of one message are written
        # together, and the last record's usage is the one that counts. Message id ->
        # (records.counts_of, the usage facts row it is counted in or None).
        self.recent_usage: OrderedDict[int, tuple[tuple, tuple | None]] = OrderedDict()
        self.tokens = [0, 0, 0, 0]
        self.bad_lines = 0
        self.records = 0
        self.session_id: str | None = None
        # Usage facts (SPEC 10): every distinct API message, sidechain records of this file included
        # (``tokens`` counts the main chain only, SPEC 5), and the ledger of cost-state records.
        # Main-chain messages are tracked in recent_usage, the counter's own recent ones are sidechains'.
        # With ``log``, what each message added (the catalog reads a forked session's copy of its
        # origin's messages so, to take them out: they count once).
        self.usage = UsageCounter(log=log)
        self.first_key: int | None = None  # the first main-chain message: a fork's is its origin's
        # The messages whose usage a later record changed (the latest of them, and how many in
        # all): what the catalog kept of a fork's copies is read again if one was among them.
        self.replaced: deque[int] = deque(maxlen=RECENT_MESSAGES)
        self.replaced_n = 0
        # Sidechain message ids met in this file (main-chain ones are in message_ids).
        self.side_ids: set[int] = set()
        self.ledger = Ledger()
        # The file's mtime (ms) at this read: the time of usage no record dates.
        self.file_ms = 0
        self._raw_first: str | None = None
        self._raw_last: str | None = None
        # Restored latest messages not yet unpacked into ``recent_usage`` (:meth:`materialize`):
        # (flat ints, 8 a message: digest, counts, fast as 0/1, row index or -1; the rows). A
        # restart over an unchanged history never needs them.
        self.saved_recent: tuple[list[int], list[tuple]] | None = None

    def materialize(self) -> None:
        """Unpack what a restore kept packed: call before more records are applied."""
        self.usage.materialize()
        saved = self.saved_recent
        if saved is None:
            return
        self.saved_recent = None
        flat, rows = saved
        recent = self.recent_usage
        for at in range(0, len(flat), 8):
            counts = (*flat[at + 1:at + 6], flat[at + 6] == 1)
            i = flat[at + 7]
            recent[flat[at]] = (counts, rows[i] if i >= 0 else None)

    def finish(self) -> None:
        """Mask the first and latest prompt seen by this read: only masked text is kept."""
        if self._raw_first is not None:
            self.first_prompt = _prompt_text(self._raw_first)
            self._raw_first = None
        if self._raw_last is not None:
            self.last_prompt = _prompt_text(self._raw_last)
            self._raw_last = None

    @property
    def message_count(self) -> int:
        return self.prompt_count + len(self.message_ids)

    def note_timestamp(self, ts: str) -> None:
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts

    def apply(self, rec: R.Record) -> None:
        self.records += 1
        ts = rec.timestamp
        if ts:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        if self.cwd is None and rec.cwd:
            self.cwd = rec.cwd
        if self.session_id is None and rec.sessionId:
            self.session_id = rec.sessionId
        if rec.gitBranch:
            self.git_branch = rec.gitBranch
        if rec.version:
            self.version = rec.version
        kind = rec.type
        if kind == "user":
            prompt = R.prompt_of(rec)
            if prompt is not None:
                self.prompt_count += 1
                # Kept raw until the read ends (finish): masking every prompt of a
                # long history would cost more than reading it.
                if self.first_prompt is None and self._raw_first is None:
                    self._raw_first = prompt
                self._raw_last = prompt
        elif kind == "assistant":
            message = rec.message
            if message is None:
                return
            model = message.model
            mid = message.id
            if rec.isSidechain is True:
                if mid:
                    self._count_side(message_key(mid), rec.timestamp, model, R.counts_of(message))
                return
            if model and model != "<synthetic>":
                self.model = model
            if not mid:
                return
            key = message_key(mid)
            counts = R.counts_of(message)
            recent = self.recent_usage
            tokens = self.tokens
            old = recent.get(key)
            if old is not None:
                # Another record of a recent message: its latest usage replaces the earlier.
                recent.move_to_end(key)
                old_counts, row = old
                if old_counts == counts and (row is None or row[1] == (model or "")):
                    return  # the usual case: a message's blocks repeat its usage
                tokens[0] += counts[0] - old_counts[0]
                tokens[1] += counts[1] - old_counts[1]
                tokens[2] += counts[2] - old_counts[2]
                tokens[3] += counts[3] - old_counts[3]
                if row is not None:
                    row = self._replace_usage(key, row, model or "", old_counts, counts)
                    self.replaced.append(key)
                    self.replaced_n += 1
                recent[key] = (counts, row)
                return
            if key in self.message_ids:
                return  # a message seen long ago, written again: counted once, as first seen
            self.message_ids.add(key)
            if self.first_key is None:
                self.first_key = key
            tokens[0] += counts[0]
            tokens[1] += counts[1]
            tokens[2] += counts[2]
            tokens[3] += counts[3]
            row = None
            # Claude Code's own stand-in replies (``<synthetic>``) made no API call: no usage.
            if model != "<synthetic>" and key not in self.side_ids:
                row = self._add_usage(key, rec.timestamp, model or "", counts)
            recent[key] = (counts, row)
            if len(recent) > RECENT_MESSAGES:
                recent.popitem(last=False)
        elif kind == "summary":
            self.summary = _masked(rec.summary) or self.summary
        elif kind == "ai-title":
            self.ai_title = _masked(rec.aiTitle) or self.ai_title
        elif kind == "custom-title":
            self.custom_title = _masked(rec.customTitle) or self.custom_title
        elif kind == "agent-name":
            self.custom_title = _masked(rec.agentName) or self.custom_title

    def _bucket(self, timestamp: str | None) -> int:
        """The bucket of a message's first record: its time, else the last time read, else the file's."""
        bucket = bucket_at(timestamp)
        if bucket is None:
            bucket = bucket_at(self.last_ts)
            if bucket is None:
                bucket = bucket_of(self.file_ms)
        return bucket

    def _add_usage(self, key: int, timestamp: str | None, model: str, counts: tuple) -> tuple:
        """A new main-chain message's usage facts (SPEC 10). Returns its row key. Inlined
        (:func:`records.facts_of`, UsageFacts.add): once per message of every history read."""
        inp, out, read, made, hour, fast = counts
        five = made - hour if made > hour else 0
        prompt = inp + read + five + hour
        row = (self._bucket(timestamp), model, tier_of(prompt) if prompt > R.TIER_FIRST else 0, "fast" if fast else "")
        if self.usage.log is not None:
            self.usage.add(key, row[0], model, (inp, out, read, five, hour), row[2], row[3])
            return row
        rows = self.usage.facts.rows
        n = rows.get(row)
        if n is None:
            rows[row] = [inp, out, read, five, hour, 1]
        else:
            n[0] += inp
            n[1] += out
            n[2] += read
            n[3] += five
            n[4] += hour
            n[5] += 1
        return row

    def _replace_usage(self, key: int, row: tuple, model: str, old: tuple, counts: tuple) -> tuple:
        """A later record of a recent message: its usage replaces the earlier, in the same bucket."""
        if self.usage.log is not None:
            tokens, tier, speed = R.facts_of(counts)
            self.usage.replace_any(key, model, tokens, tier, speed)
            return row[0], model, tier, speed
        facts = self.usage.facts
        tokens, tier, speed = R.facts_of(old)
        facts.add(row[0], row[1], tokens, tier=row[2], speed=row[3], sign=-1)
        tokens, tier, speed = R.facts_of(counts)
        return facts.add(row[0], model, tokens, tier=tier, speed=speed)

    def _count_side(self, key: int, timestamp: str | None, model: str | None, counts: tuple) -> None:
        """A sidechain record of this file: in the usage facts, not in ``tokens`` (SPEC 5)."""
        counter = self.usage
        known = key in self.message_ids or key in self.side_ids
        self.side_ids.add(key)
        if model == "<synthetic>":
            return
        model = model or ""
        tokens, tier, speed = R.facts_of(counts)
        replaced = counter.replace(key, model, tokens, tier, speed)
        if replaced is None and not known:
            counter.add(key, self._bucket(timestamp), model, tokens, tier, speed)
        elif replaced:
            self.replaced.append(key)
            self.replaced_n += 1

    def apply_cost_state(self, cs: R.CostState) -> None:
        """A ``cost-state`` record, dated by the last dated record before it (it carries no time)."""
        total, models = R.ledger_of(cs)
        start = cs.startTime
        ts = ms_of(self.last_ts)
        if ts is None:
            ts = int(start) if isinstance(start, (int, float)) and 0 < start < 1e15 else self.file_ms
        self.ledger.apply(self.usage.facts, ts, start, total, models, cs.hasUnknownModelCost is True)


class TranscriptReader:
    """One transcript file read incrementally into :class:`SessionStats`."""

    def __init__(self, path: str, *, log_usage: bool = False):
        self.path = path
        self.log_usage = log_usage  # each message's usage logged (SessionStats)
        self.stats = SessionStats(log_usage)
        self.offset = 0  # bytes of the file consumed, the unfinished line included
        self.inode: int | None = None
        self.size = 0
        self.mtime = 0.0
        self.ctime = 0.0
        # The unfinished last line. A bytearray grows in place (no re-copying of
        # a long line per chunk) and orjson parses it as it is.
        self._pending: bytearray | None = None
        self._pending_checked = False  # the unfinished line's first bytes were looked at
        self._skipping = False  # inside a long line already known to be skippable
        # The last bytes skipped: a record start can straddle two chunks, and a small
        # record glued at the line's end can begin in an earlier chunk.
        self._skip_tail = b""
        # The pending line starts at a record start found inside a skipped line:
        # either a record glued to a cut one, or a nested object of a long record.
        self._tentative = False
        self._warned = False
        # Skipped lines read since the last dated record: (buffer, start, end, match or None).
        self._undated: list = []
        self.bytes_read = 0  # total read from disk, for tests and benchmarks
        # The last bytes before ``offset``: if they differ on the next read, the
        # file was rewritten under us (a tail rewrite that then grew again).
        self.tail_check = b""

    @property
    def has_unfinished_line(self) -> bool:
        return bool(self._pending) or self._skipping or self._tentative

    # -- reading ---------------------------------------------------------------
    def update(self) -> bool:
        """Read what was appended since the last call. True if anything changed.

        Raises OSError if the file cannot be opened (gone, unreadable, a symlink,
        not a regular file).
        """
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                # A FIFO, device or directory named like a transcript: opening it did
                # not block (O_NONBLOCK), reading it could, and it is no transcript.
                raise OSError(errno.EINVAL, "not a regular file", self.path)
            changed = False
            if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset
                                           or not self._tail_matches(fd)):
                # Replaced, or rewritten (shorter, or rewritten and grown again): start over.
                self._reset()
                changed = True
            self.inode = st.st_ino
            if st.st_mtime != self.mtime or st.st_size != self.size:
                changed = True
            self.size = st.st_size
            self.mtime = st.st_mtime
            self.ctime = st.st_ctime
            if st.st_size > self.offset:
                self.stats.file_ms = int(st.st_mtime * 1000)
                self.stats.materialize()
                if mapping_wanted(st.st_size - self.offset):
                    for chunk in windows(fd, self.offset, st.st_size, READ_CHUNK_BYTES):
                        self._take(chunk)
                else:
                    os.lseek(fd, self.offset, os.SEEK_SET)
                    remaining = st.st_size - self.offset
                    while remaining > 0:
                        chunk = os.read(fd, min(READ_CHUNK_BYTES, remaining))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                        self._take(chunk)
                self.stats.finish()
                changed = True
            return changed
        finally:
            os.close(fd)

    def _take(self, chunk) -> None:
        """The next bytes of the file (``bytes``, or a mapped :class:`Window`, let go afterwards)."""
        self.offset += len(chunk)
        self.bytes_read += len(chunk)
        self._consume(chunk)
        self.tail_check = (self.tail_check + chunk[-_TAIL_CHECK_BYTES:])[-_TAIL_CHECK_BYTES:]

    def _tail_matches(self, fd: int) -> bool:
        if not self.tail_check:
            return True
        start = self.offset - len(self.tail_check)
        return start >= 0 and os.pread(fd, len(self.tail_check), start) == self.tail_check

    def _reset(self) -> None:
        self.tail_check = b""
        self._skip_tail = b""
        self.stats = SessionStats(self.log_usage)
        self._undated.clear()
        self.offset = 0
        self._drop_pending()
        self._skipping = False

    def _consume(self, chunk: bytes) -> None:
        self._consume_lines(chunk)
        if self._undated:
            self._date_skipped()

    def _consume_lines(self, chunk: bytes) -> None:
        start = 0
        if self._skipping:
            nl = chunk.find(b"\n")
            found = self._wanted_in_skipped(chunk, len(chunk) if nl < 0 else nl, nl >= 0)
            if found is not None:
                # A record may start inside the skipped line: collect from there.
                self._skipping = False
                self._tentative = True
                # (negative: it began in the previous chunk's last bytes)
                self._pending = bytearray(self._skip_tail[found:] if found < 0 else b"")
                start = max(found, 0)
            elif nl < 0:
                self._skip_tail = (self._skip_tail + chunk[-METADATA_TAIL_BYTES:])[-METADATA_TAIL_BYTES:]
                return
            else:
                self._skipping = False
                start = nl + 1
        if self._pending is not None:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                self._hold(chunk[start:] if start else chunk)
                return
            self._pending += memoryview(chunk)[start:nl]
            line = self._pending
            tentative = self._tentative
            self._drop_pending()
            if tentative:
                self._tentative_line(line)
            else:
                self._line(line, 0, len(line))
            start = nl + 1
        line_fn = self._line
        if _triage is not None:
            flat, start = _triage(chunk, start)
            stats = self.stats
            undated = self._undated
            decode = R.decode
            view = memoryview(chunk)
            it = iter(flat)
            for kind, s, e in zip(it, it, it):
                if kind == _SKIP:  # what _skipped_line finds of a line with nothing glued behind it
                    if stats.first_ts is None:
                        self._date_one(chunk, s, e, None)
                    else:
                        undated.append((chunk, s, e, None))
                elif kind == _RECORD:
                    rec = decode(view[s:e])
                    if rec is not None:
                        self._record(rec, chunk, s, e, False)
                    else:  # not of the usual shape: read leniently, or found bad
                        line_fn(chunk, s, e, 0, False)
                else:
                    line_fn(chunk, s, e)
        else:
            find = chunk.find
            while True:
                nl = find(b"\n", start)
                if nl < 0:
                    break
                if nl > start:
                    line_fn(chunk, start, nl)
                start = nl + 1
        if start < len(chunk):
            self._hold(chunk[start:] if start else chunk)

    def _hold(self, piece: bytes) -> None:
        """Keep part of an unfinished line, unless it is already known to be skippable."""
        if self._pending is None:
            self._pending = bytearray(piece)
        else:
            self._pending += piece
        size = len(self._pending)
        if size > MAX_LINE_BYTES:
            self._bad(f"a line longer than {MAX_LINE_BYTES} bytes was skipped")
            self._drop_pending()
            self._skipping = True
        elif not self._pending_checked and size >= _PREFIX_BYTES and not self._tentative:
            # Look at the line's first bytes once; a long line is then only collected.
            self._pending_checked = True
            pending = self._pending
            if (self._skippable(pending, 0, size) and not pending.startswith(_COST_STATE)
                    and _wanted_start(pending, 1, size) < 0):
                self._note_skipped(pending, 0, size)
                self._drop_pending()
                self._skipping = True
                self._skip_tail = bytes(pending[-METADATA_TAIL_BYTES:])

    def _drop_pending(self) -> None:
        self._pending = None
        self._pending_checked = False
        self._tentative = False

    def _wanted_in_skipped(self, chunk: bytes, end: int, line_ends: bool) -> int | None:
        """Where a needed record may start in the skipped ``chunk[:end]`` (negative: in the bytes before it)."""
        tail = self._skip_tail
        found = []
        if tail:  # a conversation record's start straddling the two chunks
            edge = tail[-_START_MAX_BYTES:]
            joined = edge + chunk[:_START_MAX_BYTES]
            at = _conversation_start(joined, 0, len(joined))
            if 0 <= at < len(edge):
                found.append(at - len(edge))
        at = _conversation_start(chunk, 0, end)
        if at >= 0:
            found.append(at)
        if line_ends:  # a small record glued at the line's end, perhaps begun in an earlier chunk
            if end >= METADATA_TAIL_BYTES:
                m = _metadata_start(chunk, end - METADATA_TAIL_BYTES, end)
                if m >= 0:
                    found.append(m)
            else:
                window = tail[-(METADATA_TAIL_BYTES - end):] + chunk[:end]
                m = _metadata_start(window, 0, len(window))
                if m >= 0:
                    found.append(m - (len(window) - end))
        return min(found) if found else None

    @staticmethod
    def _skippable(buf: bytes, start: int, end: int) -> bool:
        if buf.startswith(_TYPE_FIRST, start):
            q = buf.find(b'"', start + 9, min(end, start + 64))
            return q > 0 and bytes(buf[start + 9:q]) not in WANTED_TYPES
        return _ATTACHMENT_RE.match(buf, start, min(end, start + _PREFIX_BYTES)) is not None

    def _note_skipped(self, buf: bytes, start: int, end: int, m: re.Match | None = None) -> None:
        """Skipped records still date the session; only the first and the latest date count.

        So a skipped line is only remembered; its date is looked for when nothing
        dated follows it in this read (:meth:`_date_skipped`), or at once while
        the session has no first date.
        """
        if self.stats.first_ts is None:
            self._date_one(buf, start, end, m)
        else:
            self._undated.append((buf, start, end, m))

    def _date_one(self, buf, start: int, end: int, m: re.Match | None) -> bool:
        if m is not None:
            pass
        elif buf.startswith(_TYPE_FIRST, start):
            m = _HEAD_TIMESTAMP_RE.match(buf, start, min(end, start + 1024))
        else:
            m = _search(_ATTACHMENT_TIMESTAMP_RE, _ATTACHMENT_MARK, buf, max(start, end - 4096), end)
            if m is None and end - start > 4096:
                m = _search(_ATTACHMENT_TIMESTAMP_RE, _ATTACHMENT_MARK, buf, start, end)
        if m is None:
            return False
        self.stats.note_timestamp(m.group(1).decode("ascii"))
        return True

    def _date_skipped(self) -> None:
        """The latest date among the skipped lines remembered since the last dated record."""
        undated = self._undated
        while undated:
            if self._date_one(*undated.pop()):
                break
        undated.clear()

    def _skipped_line(self, buf: bytes, start: int, end: int) -> None:
        """A line known skippable by its first bytes, unless a needed record is glued behind it."""
        tail_mark = None
        if buf.startswith(_TYPE_FIRST, start):
            found = _wanted_start(buf, start + 1, end)
        else:
            # An attachment (half the bytes of a 2.1.330 history) ends with its type,
            # uuid and timestamp: found near the line's end, a glued record can only
            # follow it (a user or assistant record carries no such mark).
            tail_mark = _search(_ATTACHMENT_TIMESTAMP_RE, _ATTACHMENT_MARK, buf, max(start, end - 4096), end)
            found = _wanted_start(buf, tail_mark.end() if tail_mark else start + 1, end)
        if found < 0 or not self._split_glued(buf, start, end, 0, found):
            self._note_skipped(buf, start, end, tail_mark)

    def _line(self, buf: bytes, start: int, end: int, glued: int = 0, skippable: bool | None = None) -> None:
        """One physical line; ``glued`` > 0: the part of a line in front of a record glued to it.
        ``skippable``: what :meth:`_skippable` says of it, if already known."""
        if skippable is None:
            skippable = self._skippable(buf, start, end)
        if skippable and not glued:
            if buf.startswith(_COST_STATE, start) and (self._cost_state(buf, start, end)
                                                       or self._split_glued(buf, start, end, 0)):
                return  # (not whole: cut mid-write, the records glued behind it are read)
            # A needed record glued behind a skipped one is searched for, not parsed for.
            self._skipped_line(buf, start, end)
            return
        line = memoryview(buf)[start:end] if (start or end != len(buf) or type(buf) is Window) else buf
        rec = R.decode(line)
        if rec is not None:
            self._record(rec, buf, start, end, skippable)
            return
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            if self._split_glued(buf, start, end, glued):
                return
            if skippable:
                self._note_skipped(buf, start, end)
            if bytes(line).strip():
                self._bad(_TORN if glued else "a line is not valid JSON (corrupt, truncated or not UTF-8)")
            return
        if not isinstance(rec, dict):
            self._bad("a line is JSON but not an object")
            return
        self._record(rec, buf, start, end, skippable)

    def _record(self, rec: dict | R.Record, buf: bytes, start: int, end: int, skippable: bool | None = None) -> None:
        if skippable if skippable is not None else self._skippable(buf, start, end):
            if buf.startswith(_COST_STATE, start):
                self._cost_state(buf, start, end, rec if isinstance(rec, dict) else None)
            self._note_skipped(buf, start, end)
            return
        if isinstance(rec, dict):
            rec = R.from_dict(rec)
        if rec.timestamp and self._undated:
            self._undated.clear()  # dated after them: their dates no longer count
        try:
            self.stats.apply(rec)
        except Exception:  # a record of a shape never seen: skip it, keep the session
            log.debug("record skipped in %s", self.path, exc_info=True)
            self._bad("a record has an unexpected shape")

    def _cost_state(self, buf, start: int, end: int, rec: dict | None = None) -> bool:
        """Read a cost-state record (``buf[start:end]``) into the ledger. False if it is no whole record."""
        line = memoryview(buf)[start:end] if (start or end != len(buf) or type(buf) is Window) else buf
        cs = R.decode_cost_state(line)
        if cs is None:
            rec = rec if rec is not None else _object(line)
            if rec is None:
                return False
            cs = R.cost_state_from_dict(rec)
        if self._undated:
            self._date_skipped()  # the last dated record before it dates it, skipped ones included
        try:
            self.stats.apply_cost_state(cs)
        except Exception:  # a record of a shape never seen: skip it, keep the session
            log.debug("cost-state skipped in %s", self.path, exc_info=True)
            self._bad("a record has an unexpected shape")
        return True

    def _tentative_line(self, line: bytearray) -> None:
        """A line collected from a record start found inside a long skipped line."""
        rec = _object(line)
        if rec is not None or self._split_glued(line, 0, len(line), 1, 0):
            self._bad(_TORN)  # the skipped part in front of it was cut off
            if rec is not None:
                self._record(rec, line, 0, len(line))
        # else: a nested object of a whole long record, not a record

    def _split_glued(self, buf: bytes, start: int, end: int, glued: int, first: int | None = None) -> bool:
        """Find the whole record ``buf[start:end]`` ends with; read what is in front of it, then it.

        Candidates (record starts from ``first``, else after ``start``) are
        tried from the right: one inside the last record never decodes to the
        line's end, so the first that does is where that record starts. Each
        try decodes one value only (``raw_decode``), so a long line costs its
        length times its nesting depth, not its length times its candidates.
        """
        if glued >= MAX_GLUED:
            return False
        text = bytes(buf[start:end]).decode("utf-8", "surrogateescape")
        low = 1 if first is None else len(bytes(buf[start:first]).decode("utf-8", "surrogateescape"))
        pos = len(text)
        for _ in range(MAX_RECOVERY_TRIES):
            pos = text.rfind('{"', low, pos)
            if pos < 0:
                return False
            if not _RECORD_START_TEXT_RE.match(text, pos):
                continue
            try:
                rec, stop = _DECODER.raw_decode(text, pos)
            except ValueError:
                continue
            if not isinstance(rec, dict) or text[stop:].strip():
                continue
            cut = start + len(text[:pos].encode("utf-8", "surrogateescape"))
            if cut > start:
                self._line(buf, start, cut, glued + 1)  # cut records, or whole ones missing their newline
            self._record(rec, buf, cut, end)
            return True
        return False

    def _bad(self, why: str) -> None:
        self.stats.bad_lines += 1
        if not self._warned:
            self._warned = True
            log.warning("%s: %s; skipped (further bad lines in this file are counted, not logged)", self.path, why)


def read_first_session_id(path: str, limit: int = 256 * 1024) -> str | None:
    """The ``sessionId`` of the first record that has one (legacy sidechain files name their parent so)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return None
    for line in data.split(b"\n"):
        m = re.search(rb'"sessionId":"([^"]{1,128})"', line)
        if m:
            return m.group(1).decode("utf-8", "replace")
    return None
