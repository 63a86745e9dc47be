"""One physical rollout file, read incrementally into what the session list needs.

A plain ``.jsonl`` is followed (an append costs the appended bytes, through
:class:`~helm_monitor.sources.jsonl.JsonlFollower`); a ``.jsonl.zst`` is
immutable (Codex decompresses it back to plain before appending), so it is
decompressed once, streaming, per ``(inode, size, mtime)``. The first line
(``session_meta``, 20 KB+ of system prompt) is parsed and dropped: only the
few fields used are kept.
"""

from __future__ import annotations

import itertools
import os
import stat
from typing import Callable

import zstandard

from helm_monitor.sources.codex import records as R
from helm_monitor.sources.jsonl import MAX_LINE_BYTES, OPEN_FLAGS as _FLAGS, READ_CHUNK_BYTES, JsonlFollower
from helm_monitor.usage.facts import UsageFacts, ms_of, tier_of


# warn(kind, detail): kind is "bad-json", "bad-utf8", "long-line", "unknown-type", "zst-corrupt", "zst-truncated"
Warn = Callable[[str, str], None]
_VERSIONS = itertools.count(1)


class Stats:
    """What one file says about its thread. Latest-of fields keep the timestamp they were seen at.

    Usage (``u_*``, SPEC 10): every ``token_count`` event that reports a new request adds that
    request's ``last_token_usage`` to ``u_facts``, at the event's time, with the model of the turn
    context read last. Not counted: an event whose ``total_token_usage`` did not move since the
    previous one (Codex repeats the count without a new request), and, in a rollout that copies
    another thread's history (a fork: its own ``session_meta`` names ``forked_from_id``, or a
    second ``session_meta`` of another thread follows it), every event before the first turn of
    its own thread (a turn whose UUIDv7 id is not older than the thread's): those requests are
    the other thread's, counted there.
    """

    __slots__ = ("meta_id", "cwd", "created", "version", "branch", "parent", "first_ts", "last_ts",
                 "p_users", "p_agents", "p_first", "p_last", "l_users", "l_agents", "l_first", "l_last",
                 "model", "model_ts", "tokens", "tokens_ts", "turn", "turn_ts", "lines",
                 "u_facts", "u_version", "u_model", "u_last", "u_first", "u_replay", "u_own_ms")

    def __init__(self):
        self.meta_id = self.cwd = self.created = self.version = self.branch = self.parent = None
        self.first_ts = self.last_ts = None
        self.p_users = self.p_agents = self.l_users = self.l_agents = 0
        self.p_first = self.p_last = self.l_first = self.l_last = None
        self.model = self.model_ts = None
        self.tokens: tuple[int, int, int, int] | None = None
        self.tokens_ts = None
        self.turn: str | None = None  # "busy" after a turn start, "done" after its end
        self.turn_ts = None
        self.lines = 0
        self.u_facts = UsageFacts()
        self.u_version = next(_VERSIONS)  # a new value whenever u_facts changes (unique across Stats)
        self.u_model: str | None = None  # the model of the turn context read last (file order)
        self.u_last: tuple[int, ...] | None = None  # total_token_usage of the last token_count read
        # The first request counted: (its total_token_usage, its facts row key, its tokens), so that
        # a later file of the thread that begins by repeating it is not counted twice.
        self.u_first: tuple | None = None
        self.u_replay = False  # reading history copied from another thread
        self.u_own_ms: int | None = None  # creation time of this file's thread (its UUIDv7 id)

    def snapshot(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def take(self, rec, warn: Warn) -> None:
        if not isinstance(rec, dict):
            warn("bad-json", "a line is not a JSON object")
            return
        self.lines += 1
        ts = R.norm_ts(rec.get("timestamp"))
        self._time(ts)
        kind = rec.get("type")
        payload = rec.get("payload")
        if kind not in R.KNOWN_TYPES:
            warn("unknown-type", f"record type {kind!r}" if isinstance(kind, str) else "a record without a type")
            return
        if not isinstance(payload, dict):
            return
        if kind == "event_msg":
            self._event(payload, ts)
        elif kind == "turn_context":
            model = R.str_or_none(payload.get("model"))
            if model and _later(ts, self.model_ts):
                self.model, self.model_ts = model, ts
            self._turn_begins(payload, ts)
            if model:
                self.u_model = model
        elif kind == "session_meta" and self.meta_id is None:
            self.meta_id = (R.str_or_none(payload.get("id")) or R.str_or_none(payload.get("session_id")) or "").lower() \
                or None
            self.cwd = R.str_or_none(payload.get("cwd"))
            self.created = R.norm_ts(payload.get("timestamp"))
            self.version = R.str_or_none(payload.get("cli_version"))
            git = payload.get("git")
            self.branch = R.str_or_none(git.get("branch")) if isinstance(git, dict) else None
            self.parent = R.parent_of(payload)
            self.u_own_ms = R.uuid7_ms(self.meta_id)
            if R.str_or_none(payload.get("forked_from_id")) and self.u_first is None:
                self.u_replay = True  # a fork: its parent's history is copied in first
        elif kind == "session_meta":
            other = (R.str_or_none(payload.get("id")) or "").lower()
            if other and other != self.meta_id and self.u_first is None:
                self.u_replay = True  # another thread's meta: its history follows, copied

    def take_skimmed(self, ts: str | None) -> None:
        self.lines += 1
        self._time(ts)

    def _time(self, ts: str | None) -> None:
        if ts is not None:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts

    def _event(self, p: dict, ts: str | None) -> None:
        sub = p.get("type")
        if sub == "item_completed":
            item = p.get("item")
            itype = item.get("type") if isinstance(item, dict) else None
            if itype == "UserMessage":
                self.p_users += 1
                prompt = R.user_prompt(p)
                if prompt:
                    shown = R.prompt_text(prompt)
                    self.p_first = self.p_first or shown
                    self.p_last = shown
            elif itype == "AgentMessage":
                self.p_agents += 1
        elif sub == "user_message":
            self.l_users += 1
            prompt = R.user_prompt(p)
            if prompt:
                shown = R.prompt_text(prompt)
                self.l_first = self.l_first or shown
                self.l_last = shown
        elif sub == "agent_message":
            self.l_agents += 1
        elif sub == "token_count":
            tokens = R.tokens_of(p.get("info"))
            if tokens is not None and _later(ts, self.tokens_ts):
                self.tokens, self.tokens_ts = tokens, ts
            self._request(p.get("info"), ts)
        elif sub in R.TURN_STARTS or sub in R.TURN_ENDS:
            if _later(ts, self.turn_ts):
                self.turn, self.turn_ts = ("busy" if sub in R.TURN_STARTS else "done"), ts
            if sub in R.TURN_STARTS:
                self._turn_begins(p, ts)

    def _turn_begins(self, p: dict, ts: str | None) -> None:
        """A turn starts (its ``task_started`` or ``turn_context``): one of this thread's own ends
        the copied history. Own: its UUIDv7 turn id is not older than the thread's id; failing
        UUIDv7 ids, it started (``started_at``, seconds) or was written no earlier than the
        thread's creation (session_meta ``timestamp``)."""
        if not self.u_replay:
            return
        turn_ms, own_ms = R.uuid7_ms(p.get("turn_id")), self.u_own_ms
        if turn_ms is not None and own_ms is not None:
            own = turn_ms >= own_ms
        else:
            created = ms_of(self.created)
            started = p.get("started_at")
            if created is None:
                own = False
            elif isinstance(started, (int, float)) and not isinstance(started, bool):
                own = started >= created // 1000
            else:
                at = ms_of(ts)
                own = at is not None and at >= created
        if own:
            self.u_replay = False

    def _request(self, info, ts: str | None) -> None:
        """A ``token_count`` event: the request it reports, if it is a new one of this thread."""
        if not isinstance(info, dict):
            return
        total = R.usage_fields(info.get("total_token_usage"))
        last = R.usage_fields(info.get("last_token_usage"))
        prev = self.u_last
        if total is not None:
            if total == prev:
                return  # the count repeated: no new request
            self.u_last = total
        if self.u_replay:
            return  # another thread's request, copied with its history
        if last is None:  # (no per-request usage: the move of the total)
            if total is None:
                return
            last = total if prev is None else tuple(max(a - b, 0) for a, b in zip(total, prev))
        tokens, prompt = R.request_tokens(last)
        at = ms_of(ts) if ts is not None else ms_of(self.last_ts)
        if not any(tokens) or at is None:
            return
        key = self.u_facts.add(at, self.u_model or "", tokens, tier=tier_of(prompt))
        if self.u_first is None:
            self.u_first = (total, key, tokens)
        self.u_version = next(_VERSIONS)


def _later(ts: str | None, than: str | None) -> bool:
    """A record at ``ts`` read after one at ``than`` supersedes it unless its time is earlier."""
    return ts is None or than is None or ts >= than


class RolloutFile:
    """The read state of one physical rollout (plain or compressed)."""

    def __init__(self, path: str, warn: Warn):
        self.path = path
        self.compressed = path.endswith(".zst")
        self.warn = warn
        self.stats = Stats()
        self.follower = None if self.compressed else JsonlFollower(path)
        self._zst_key: tuple | None = None
        self._zst_bytes = 0
        self.size = 0
        self.mtime = 0.0

    @property
    def bytes_read(self) -> int:
        return self._zst_bytes if self.compressed else self.follower.bytes_read

    def update(self) -> bool:
        """Read what changed. Returns whether the stats changed. Raises OSError (FileNotFoundError when gone)."""
        before = self.stats.snapshot()
        if self.compressed:
            self._read_zst()
        else:
            f = self.follower
            f.read(self._line, self._reset, self._long)
            self.size, self.mtime = f.size, f.mtime
        return self.stats.snapshot() != before

    def _reset(self) -> None:
        self.stats = Stats()

    def _long(self, n: int) -> None:
        self.warn("long-line", f"a line of {n} bytes (over {MAX_LINE_BYTES}) was skipped")

    def _line(self, line: bytes) -> None:
        skimmed = R.skim(line)
        if skimmed is not None:
            self.stats.take_skimmed(skimmed[1])
            return
        try:
            rec = R.parse(line)
        except R.BadLine as exc:
            self.warn("bad-json" if exc.utf8 else "bad-utf8", "a line is not JSON" if exc.utf8
                      else "a line holds bytes that are not UTF-8 and is not JSON")
            return
        self.stats.take(rec, self.warn)

    def _read_zst(self) -> None:
        fd = os.open(self.path, _FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(21, "not a regular file", self.path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self._zst_key:
                return
            self._zst_key = key
            self.size, self.mtime = st.st_size, st.st_mtime
            self.stats = Stats()
            for line in iter_zst_lines(fd, self._count, self.warn):
                self._line(line)
        finally:
            os.close(fd)

    def _count(self, n: int) -> None:
        self._zst_bytes += n


def iter_zst_lines(fd: int, count: Callable[[int], None], warn: Warn):
    """The lines of a zstd-compressed file, decompressed as a stream (several frames allowed).

    A corrupt or truncated file yields the lines before the damage, then warns.
    """
    d = zstandard.ZstdDecompressor().decompressobj()
    pending = b""
    pos = 0
    started = False
    try:
        while True:
            chunk = os.pread(fd, READ_CHUNK_BYTES, pos)
            if not chunk:
                break
            pos += len(chunk)
            count(len(chunk))
            while chunk:
                started = True
                out = d.decompress(chunk)
                chunk = b""
                if d.eof:
                    chunk = d.unused_data
                    d = zstandard.ZstdDecompressor().decompressobj()
                    started = False
                if out:
                    lines = (pending + out).split(b"\n")
                    pending = lines.pop()
                    if len(pending) > MAX_LINE_BYTES:
                        warn("long-line", f"a line over {MAX_LINE_BYTES} bytes was skipped")
                        pending = b""
                    for line in lines:
                        if line:
                            yield line
    except zstandard.ZstdError as exc:
        warn("zst-corrupt", f"not valid zstd data ({exc}); read up to the damage")
        return
    if started:
        warn("zst-truncated", "the compressed data ends early (truncated); read up to the cut")
    elif pending:
        yield pending  # a last line without its newline: the file is complete, so it is too
