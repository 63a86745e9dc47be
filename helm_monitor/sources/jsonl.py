"""Following an append-only JSONL file: each call hands over the complete lines added since the last.

An append costs what was appended: the follower keeps its offset and the
bytes just before it, so a file that was replaced (another inode), shrank or
had its tail rewritten is noticed and read again from the start (the caller
is told first, through ``on_reset``, to drop what it derived). An unfinished
last line is left for the next call: agents write a record and its newline
together, so a line without one is still being written.

Opened with ``O_NOFOLLOW | O_NONBLOCK``: a symbolic link is not followed and a
FIFO planted in an agent's folder never blocks the reader.
"""

from __future__ import annotations

import mmap
import os
import stat
from typing import Callable

READ_CHUNK_BYTES = 1024 * 1024
# A line longer than this is dropped (reported through on_long_line) rather than held in memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
_TAIL_CHECK_BYTES = 32
# How every reader opens an agent's file: a symbolic link is not followed, a FIFO never blocks.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


# Whether readers may map a file's new bytes instead of reading them (:func:`map_reads`).
_map_reads = False
MAP_WINDOW_BYTES = 16 * 1024 * 1024
# Below this many new bytes a read is as cheap as a mapping.
MAP_MIN_BYTES = 1024 * 1024
# Each window's pages mapped at once (Linux), not one fault per page as the parser reaches them.
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def map_reads(enabled: bool) -> None:
    """Let this process's readers map what they read (only the first scan's processes do).

    ``read()`` copies every byte out of the page cache; a mapping lets the parser look at them in
    place (a third of a scan's CPU on this machine kind). But a file truncated while it is mapped
    kills the process with SIGBUS on the next look at a page past its new end: so only where that
    costs a retry, in a scan process whose files the pump reads itself when it dies, never in a
    server's."""
    global _map_reads
    _map_reads = enabled


def mapping_wanted(size: int) -> bool:
    return _map_reads and size >= MAP_MIN_BYTES


class Window(mmap.mmap):
    """Part of a file mapped read-only, usable where a parser takes ``bytes`` (find, slices,
    regular expressions, the buffer protocol) and ``startswith``, which mmap lacks."""

    def startswith(self, prefix: bytes, start: int = 0) -> bool:
        return self[start:start + len(prefix)] == prefix


def windows(fd: int, offset: int, size: int, window_bytes: int = MAP_WINDOW_BYTES):
    """``fd``'s bytes from ``offset`` to ``size``: a short ``bytes`` up to the first mapping boundary,
    then :class:`Window` s of ``window_bytes`` (each unmapped once the next is asked for)."""
    window_bytes += -window_bytes % mmap.ALLOCATIONGRANULARITY  # each window starts on a boundary
    head = -offset % mmap.ALLOCATIONGRANULARITY
    if head:
        chunk = os.pread(fd, min(head, size - offset), offset)
        if not chunk:
            return
        yield chunk
        offset += len(chunk)
    while offset < size:
        length = min(window_bytes, size - offset)
        window = Window(fd, length, flags=_MAP_FLAGS, prot=mmap.PROT_READ, offset=offset)
        try:
            yield window
        finally:
            try:
                window.close()
            except BufferError:  # a view of it is still alive somewhere: unmapped with its last reference
                pass
        offset += length


class JsonlFollower:
    """The read position in one file. ``bytes_read`` counts every byte read (tests check costs)."""

    __slots__ = ("path", "inode", "size", "mtime", "ctime", "offset", "tail", "bytes_read", "max_line")

    def __init__(self, path: str, max_line: int = MAX_LINE_BYTES):
        self.path = path
        self.inode: int | None = None
        self.size = 0
        self.mtime = 0.0
        self.ctime = 0.0
        self.offset = 0  # start of the first line not yet handed over
        self.tail = b""  # the bytes just before offset
        self.bytes_read = 0
        self.max_line = max_line

    def read(self, on_line: Callable[[bytes], None], on_reset: Callable[[], None] | None = None,
             on_long_line: Callable[[int], None] | None = None) -> bool:
        """Hand every new complete line (without its newline) to ``on_line``.

        Returns whether anything changed (new lines, or a reset). Raises OSError
        when the file cannot be opened (FileNotFoundError when it is gone,
        ELOOP for a symbolic link); a directory or other non-file raises
        IsADirectoryError / OSError(ENXIO-like) through ``os.read``.
        """
        fd = os.open(self.path, OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(21, "not a regular file", self.path)
            reset = self.inode is not None and (
                st.st_ino != self.inode or st.st_size < self.offset or not self._tail_matches(fd))
            if reset:
                self.offset, self.tail = 0, b""
                if on_reset is not None:
                    on_reset()
            self.inode, self.size, self.mtime, self.ctime = st.st_ino, st.st_size, st.st_mtime, st.st_ctime
            if st.st_size <= self.offset:
                return reset
            return self._read_from(fd, on_line, on_long_line) or reset
        finally:
            os.close(fd)

    def _tail_matches(self, fd: int) -> bool:
        if not self.tail:
            return True
        n = len(self.tail)
        return os.pread(fd, n, self.offset - n) == self.tail

    def _read_from(self, fd: int, on_line, on_long_line) -> bool:
        pos = self.offset
        pending: list[bytes] = []  # an unfinished line spanning chunks
        pending_len = 0
        line_start = pos
        dropping = False  # inside a line longer than max_line
        got = False
        while True:
            chunk = os.pread(fd, READ_CHUNK_BYTES, pos)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                if dropping:
                    dropping = False
                    if on_long_line is not None:
                        on_long_line(pos + nl - line_start)
                elif pending:
                    pending.append(chunk[start:nl])
                    line = b"".join(pending)
                    pending, pending_len = [], 0
                    if line:
                        on_line(line)
                elif nl > start:
                    on_line(chunk[start:nl])
                start = nl + 1
                line_start = pos + start
                got = True
            rest = len(chunk) - start
            if rest and not dropping:
                if pending_len + rest > self.max_line:
                    pending, pending_len, dropping = [], 0, True
                else:
                    pending.append(chunk[start:] if start else chunk)
                    pending_len += rest
            pos += len(chunk)
        if line_start != self.offset:
            self.offset = line_start
            n = min(_TAIL_CHECK_BYTES, line_start)
            self.tail = os.pread(fd, n, line_start - n)
        return got

    @property
    def has_unfinished_line(self) -> bool:
        return self.size > self.offset

    def export(self) -> dict:
        return {"inode": self.inode, "size": self.size, "mtime": self.mtime, "ctime": self.ctime,
                "offset": self.offset, "tail": self.tail.hex()}

    @classmethod
    def restore(cls, path: str, data: dict) -> "JsonlFollower":
        """From :meth:`export`'s data; raises ValueError/TypeError/KeyError for anything odd."""
        f = cls(path)
        for name in ("inode", "size", "offset"):
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(name)
            setattr(f, name, value)
        f.mtime = float(data["mtime"])
        f.ctime = float(data["ctime"])
        f.tail = bytes.fromhex(data["tail"])
        if len(f.tail) > f.offset or f.offset > f.size:
            raise ValueError("tail")
        return f

