"""One Gemini chat file, read incrementally into a :class:`~.records.ChatState`.

``.jsonl`` files (0.39+) only grow: the CLI appends every record with
``fs.appendFileSync``. They are followed with the shared
:class:`~helm_monitor.sources.jsonl.JsonlFollower`, so an append costs the
appended bytes. A file that was replaced or shrank is replayed from the start.

Legacy ``.json`` files (before 0.39) hold the whole conversation as one JSON
document, rewritten whole on every change. One is read whole when it changes,
up to ``legacy_max_bytes`` (that is what its own writer costs anyway); a
larger one is skipped with one log line.

Problems of a file are logged once each (until they clear) and never hide
what the rest of the file says.
"""

from __future__ import annotations

import logging
import os
import stat

import orjson

from helm_monitor.sources.base import WarnOnce
from helm_monitor.sources.gemini.records import OTHER, ChatState
from helm_monitor.sources.jsonl import OPEN_FLAGS as _FLAGS, READ_CHUNK_BYTES, JsonlFollower

log = logging.getLogger(__name__)

LEGACY_MAX_BYTES = 32 * 1024 * 1024


class ChatFile:
    """A chat file: where reading got to, and what it says."""

    __slots__ = ("path", "slug", "legacy", "follower", "state", "lines", "warn", "legacy_max_bytes",
                 "changed_at", "read_at", "size", "mtime", "ctime", "bytes_read", "_legacy_key")

    def __init__(self, path: str, slug: str, warn: WarnOnce, legacy_max_bytes: int = LEGACY_MAX_BYTES):
        self.path = path
        self.slug = slug
        self.legacy = path.endswith(".json")
        self.follower = None if self.legacy else JsonlFollower(path)
        self.state = ChatState()
        self.lines = 0  # lines handed over since the last reset
        self.warn = warn
        self.legacy_max_bytes = legacy_max_bytes
        self.changed_at: float | None = None  # when it last changed, on the source's monotonic clock
        self.read_at: float | None = None
        self.size = 0
        self.mtime = 0.0
        self.ctime = 0.0
        self.bytes_read = 0
        self._legacy_key = None

    @property
    def session_id(self) -> str | None:
        return self.state.session_id

    def update(self) -> bool:
        """Read what changed. True if what the file says (or its size) changed. Raises OSError."""
        before = (self.size, self.mtime)
        changed = self._update_legacy() if self.legacy else self._update_jsonl()
        return changed or (self.size, self.mtime) != before

    # ---------------------------------------------------------------- jsonl
    def _update_jsonl(self) -> bool:
        f = self.follower
        start = f.bytes_read
        try:
            changed = f.read(self._line, self._reset, self._long_line)
        finally:
            self.bytes_read += f.bytes_read - start
        self.size, self.mtime, self.ctime = f.size, f.mtime, f.ctime
        return changed

    def _reset(self) -> None:
        log.info("%s was replaced or rewritten; reading it again from the start", self.path)
        self.state = ChatState()
        self.lines = 0

    def _long_line(self, length: int) -> None:
        self.warn.warn((self.path, "long"), "%s: a line of %d bytes is longer than the reader keeps; skipped",
                       self.path, length)

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        first = self.lines == 1
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            self._bad_json(line)
            return
        if not isinstance(rec, dict):
            self.warn.warn((self.path, "shape"), "%s: a line is JSON but not an object; skipped "
                           "(further such lines are not logged)", self.path)
            return
        if first and not (isinstance(rec.get("sessionId"), str) and isinstance(rec.get("projectHash"), str)):
            self._not_metadata()
        self._record(rec)

    def _record(self, rec: dict) -> None:
        try:
            kind = self.state.record(rec)
        except Exception:  # a shape never seen: skip the record, keep the session
            log.debug("record skipped in %s", self.path, exc_info=True)
            self.warn.warn((self.path, "shape"), "%s: a record has an unexpected shape; skipped", self.path)
            return
        if kind == OTHER:
            self.warn.warn((self.path, "type"), "%s: a message of unknown type %r (a newer Gemini CLI?); "
                           "kept, counted as neither prompt nor reply", self.path, rec.get("type"),
                           level=logging.INFO)
        elif kind == -1:
            self.warn.warn((self.path, "op"), "%s: unknown operation %s (a newer Gemini CLI?); skipped",
                           self.path, ",".join(sorted(k for k in rec if isinstance(k, str) and k.startswith("$"))),
                           level=logging.INFO)
        elif kind == -2:
            self.warn.warn((self.path, "record"), "%s: a record of no known shape (keys %s); skipped", self.path,
                           ",".join(sorted(str(k) for k in rec)[:8]), level=logging.INFO)

    def _bad_json(self, line: bytes) -> None:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            self.warn.warn((self.path, "utf8"), "%s: a line is not UTF-8; skipped (further such lines are "
                           "not logged)", self.path)
            return
        self.warn.warn((self.path, "json"), "%s: a line is not valid JSON (truncated or corrupt); skipped "
                       "(further such lines are not logged)", self.path)

    def _not_metadata(self) -> None:
        self.warn.warn((self.path, "first"), "%s: its first line is not a Gemini chat metadata line "
                       "(sessionId, projectHash); listed only if a later line names the session", self.path)

    # ---------------------------------------------------------------- legacy .json
    def _update_legacy(self) -> bool:
        fd = os.open(self.path, _FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(21, "not a regular file", self.path)
            self.size, self.mtime, self.ctime = st.st_size, st.st_mtime, st.st_ctime
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self._legacy_key:
                return False
            self._legacy_key = key
            if st.st_size > self.legacy_max_bytes:
                self.warn.warn((self.path, "big"), "%s: legacy whole-file chat of %d bytes (over %d); not read",
                               self.path, st.st_size, self.legacy_max_bytes)
                had = self.state.session_id is not None
                self.state = ChatState()
                return had
            chunks = []
            pos = 0
            while True:
                chunk = os.pread(fd, READ_CHUNK_BYTES, pos)
                if not chunk:
                    break
                chunks.append(chunk)
                pos += len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        self.bytes_read += len(data)
        self.warn.clear((self.path, "big"))
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            # Rewritten in place (truncate, write): caught half written, or corrupt. What was
            # known stays; its next change is read again.
            self.warn.warn((self.path, "legacy"), "%s: legacy chat file is not valid JSON (half written or "
                           "corrupt); kept what was known", self.path, level=logging.INFO)
            return False
        self.warn.clear((self.path, "legacy"))
        state = ChatState()
        if isinstance(doc, dict) and isinstance(doc.get("sessionId"), str):
            doc.setdefault("projectHash", "")
            if isinstance(doc.get("projectHash"), str):
                try:
                    state.metadata(doc)
                except Exception:
                    log.debug("legacy record skipped in %s", self.path, exc_info=True)
                    state = ChatState()
        if state.session_id is None:
            self.warn.warn((self.path, "legacy-shape"), "%s: not a Gemini chat record; skipped", self.path)
        self.state = state
        return True
