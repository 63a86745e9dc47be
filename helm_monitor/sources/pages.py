"""What paging a conversation needs: an incremental index of a file's lines, and the recent conversations.

:class:`LineIndex` hands every complete line appended since the last call to
a callback with its file offset, so a conversation can note where its
messages lie and a page reads only its own lines. A file replaced, shrunk or
with its tail rewritten is indexed again from the start (the callback's owner
is told first). :class:`Recent` keeps the conversations paged last, so paging
on through a long one does not index it again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

from helm_monitor.sources.jsonl import READ_CHUNK_BYTES

_TAIL = 32

# on_line(buf, start, end, offset): a line is buf[start:end] (no newline, never empty), at ``offset``
# in the file. Given as a slice of the chunk read, so a line that is not wanted costs no copy.
OnLine = Callable[[bytes, int, int, int], None]


class LineIndex:
    """Where indexing one file got to: its inode, the offset after the last complete line, and the
    bytes just before it (to notice a rewrite)."""

    __slots__ = ("inode", "offset", "tail")

    def __init__(self):
        self.inode: int | None = None
        self.offset = 0
        self.tail = b""

    def update(self, fd: int, on_line: OnLine, on_reset: Callable[[], None]) -> None:
        """Index what was appended to the open file ``fd``. An unfinished last line waits for its newline."""
        st = os.fstat(fd)
        if self.inode is not None and (
                st.st_ino != self.inode or st.st_size < self.offset
                or (self.tail and os.pread(fd, len(self.tail), self.offset - len(self.tail)) != self.tail)):
            self.offset, self.tail = 0, b""
            on_reset()
        self.inode = st.st_ino
        pos = line_start = self.offset  # pos: the file offset of the chunk being read
        pending: list[bytes] = []  # an unfinished line spanning chunks
        while True:
            chunk = os.pread(fd, READ_CHUNK_BYTES, pos)
            if not chunk:
                break
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                if pending:
                    pending.append(chunk[start:nl])
                    line = b"".join(pending)
                    pending = []
                    on_line(line, 0, len(line), line_start)
                elif nl > start:
                    on_line(chunk, start, nl, pos + start)
                start = nl + 1
                line_start = pos + start
            if start < len(chunk):
                pending.append(chunk[start:])
            pos += len(chunk)
        if line_start != self.offset:
            self.offset = line_start
            n = min(_TAIL, line_start)
            self.tail = os.pread(fd, n, line_start - n)


def window(offset: int, limit: int, total: int, max_limit: int) -> tuple[int, int]:
    """The ``[start, end)`` of a page request, held within ``total`` and ``max_limit``."""
    offset = max(0, min(offset, total))
    return offset, min(total, offset + max(1, min(limit, max_limit)))


def page_of(messages: list, end: int, total: int) -> dict:
    return {"messages": messages, "nextOffset": end if end < total else None, "total": total}


K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The ``size`` conversations asked for last, by key, made by ``make(key)`` when missing. Thread-safe."""

    def __init__(self, make: Callable[[K], V], size: int):
        self.make = make
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = self._items[key] = self.make(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            else:
                self._items.move_to_end(key)
            return item

    def forget(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)
