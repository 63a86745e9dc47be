"""The first scan shared out over processes, so that a big history is read on every core.

One Python process parses on one core at a time. For the first scan the files
a source says cost bytes to parse (``Source.scan_cost``: Claude Code's
transcripts, Codex's rollouts, Gemini CLI's chat files) are read by forked child
processes, one per core, which take the files newest first from one queue (a
pipe of file numbers: whoever is free takes the next, so they finish together
however unequal the files' cost per byte; with too many files for a pipe,
shares of equal bytes). A child reads them with a
copy of the pump's own sources and hands back, one line of JSON per file as
soon as it is read, what it learned (``Source.export_state([path])``). The
pump takes that in (``restore_state``) and applies the path as it applies any:
the state is checked against the file (inode, size, the bytes before its
offset) and only what was written since is read. So a file that changed
meanwhile, a child that died, hung or sent nonsense costs a read in the pump,
never a wrong or a lost session: whatever a child did not deliver is read
by the pump itself.

Forking happens from the pump's native thread; under gevent the functions used
here are the operating system's own (``os.fork``, ``os.waitpid`` and
``select.poll`` are patched for the event loop's thread only).

Under gunicorn the scan starts earlier still: the arbiter forks the scan
processes as it starts (``start_early``, before gunicorn even listens), and the
first worker it forks takes them over with their pipes (``adopt_early``), so
the history is read while the worker is still importing Flask and gevent. A
later worker (one that replaced a dead first one, or a reload) scans anew.
"""

from __future__ import annotations

import array
import errno
import fcntl
import gc
import importlib
import logging
import os
import signal
import sys
import time
from typing import Callable

import orjson

from helm_monitor.sources.jsonl import map_reads

log = logging.getLogger(__name__)

# Below this many bytes to parse, forking costs more than it saves.
MIN_PARALLEL_BYTES = 32 * 1024 * 1024
# A child that sends nothing for this long is taken for hung: killed, its files read here.
STALL_S = 120.0
# How long one step gathers results before the pump publishes what they changed.
STEP_S = 0.05
_READ_BYTES = 1 << 20
# Signals a child must not handle as the worker does (it is no gunicorn worker): default action.
_RESET_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCHLD")


def native(module: str, name: str):
    """The operating system's own function, also where gevent monkey-patched the module."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ParallelScan:
    """The heavy part of one first scan, read by child processes. Used from one thread."""

    def __init__(self, catalog, paths: list[str], shards: list[list[int]], total_bytes: int,
                 apply: Callable[[str], set[str]], first_late: int | None = None):
        self.catalog = catalog
        self.paths = paths  # the heavy paths, newest first (what only adds to sessions last)
        # paths[first_late:] only add to sessions (Source.scan_late): once every path before it
        # is applied, every session is, and a step returns at once to have them published.
        self.first_late = len(paths) if first_late is None else first_late
        self._sessions_left = self.first_late
        self.total_bytes = total_bytes
        self._apply = apply  # the pump's: applies a path here, logging a reader's bug
        self._shards = shards
        self._pending = set(range(len(paths)))  # not yet applied here
        self._children: dict[int, int] = {}  # read fd -> pid
        self._buffers: dict[int, bytearray] = {}
        self._poll = None
        self._last_heard = time.monotonic()
        self.delivered = 0
        self.fallbacks = 0  # heavy paths read here after all
        self.started_at = time.monotonic()
        self.started = False

    # ------------------------------------------------------------ planning
    @classmethod
    def plan(cls, catalog, listing: list[tuple[str, int, float]], workers: int,
             apply: Callable[[str], set[str]]) -> "ParallelScan | None":
        """Split ``listing`` ((path, size, mtime) in scan order) when it is worth it; None otherwise."""
        if workers < 2:
            return None
        heavy = []
        total = 0
        for path, size, mtime in listing:
            source = catalog.owner(path)
            cost = source.scan_cost(path, size) if source is not None else 0
            if cost > 0:
                heavy.append((source.scan_late(path), -mtime, cost, path))
                total += cost
        if total < MIN_PARALLEL_BYTES:
            return None
        # Newest first (the sessions a user looks for first), what only adds to sessions last.
        heavy.sort(key=lambda h: (h[0], h[1]))
        workers = min(workers, len(heavy))
        shards: list[list[int]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for i, (_late, _age, cost, _path) in enumerate(heavy):
            least = loads.index(min(loads))
            shards[least].append(i)
            loads[least] += cost
        first_late = next((i for i, h in enumerate(heavy) if h[0]), len(heavy))
        return cls(catalog, [h[3] for h in heavy], shards, total, apply, first_late)

    @property
    def heavy(self) -> set[str]:
        return set(self.paths)

    @property
    def pids(self) -> list[int]:
        """The scan processes still running (or not yet reaped)."""
        return list(self._children.values())

    def stats(self) -> dict:
        return {"processes": len(self._shards), "files": len(self.paths), "bytes": self.total_bytes,
                "delivered": self.delivered, "readHere": self.fallbacks,
                "seconds": round(time.monotonic() - self.started_at, 3)}

    # ------------------------------------------------------------ children
    def start(self, fork: Callable[[], int] | None = None) -> None:
        self.started = True
        fork = fork or native("os", "fork")
        poll = native("select", "poll")
        self._poll = poll()
        work = self._work_queue()  # every file, newest first, taken by whichever process is free
        shards = [None] * len(self._shards) if work is not None else self._shards
        for shard in shards:
            r, w = os.pipe()
            _widen(w)  # a process never waits for the pump to read: room for most of what it sends
            try:
                pid = fork()
            except OSError as exc:
                os.close(r)
                os.close(w)
                log.warning("cannot start a scan process (%s); reading its share here", exc.strerror or exc)
                continue
            if pid == 0:  # the child: read, hand back, exit; never return into the worker
                code = 1
                try:
                    os.close(r)
                    for fd in list(self._children):
                        os.close(fd)
                    self._child(w, shard, work)
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            self._children[r] = pid
            self._buffers[r] = bytearray()
            self._poll.register(r, _POLLIN)
        if work is not None:
            os.close(work)
        self._last_heard = time.monotonic()
        if self._children:
            log.info("first scan: %d files (%.0f MB) read by %d processes", len(self.paths), self.total_bytes / 1e6,
                     len(self._children))

    def _work_queue(self) -> int | None:
        """A pipe holding every file's number, closed for writing: each process reads the next
        number when it is free, so they finish together however unequal the files' cost per byte.
        None when the numbers do not fit in a pipe (then each process reads its precomputed share)."""
        items = array.array("I", range(len(self.paths))).tobytes()
        r, w = os.pipe()
        try:
            if len(items) > 65536:
                _widen(w, len(items))
            size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) if hasattr(fcntl, "F_GETPIPE_SZ") else 65536
            if len(items) > size:
                os.close(r)
                return None
            _write_all(w, items)  # fits: never blocks
        finally:
            os.close(w)
        return r

    def _child(self, w: int, shard: list[int] | None, work: int | None) -> None:
        gc.disable()  # a short-lived process that frees little: cyclic collection would find nothing
        for name in _RESET_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                signal.signal(sig, signal.SIG_DFL)
        # Nothing of the worker's is held open here: a stream's socket closed there must close.
        _close_inherited({w} if work is None else {w, work})
        # Files are mapped, not copied: a file truncated meanwhile may kill this process (SIGBUS),
        # and what it did not hand back the pump reads (sources/jsonl.py map_reads).
        map_reads(True)
        catalog = self.catalog
        out = bytearray()
        last_flush = time.monotonic()
        late = self.first_late
        for i in shard if shard is not None else _taken(work):
            if i >= late:  # what makes sessions goes out before what only adds to them is read
                late = len(self.paths)
                if out:
                    _write_all(w, out)
                    out.clear()
                    last_flush = time.monotonic()
            path = self.paths[i]
            state = None
            try:
                source = catalog.owner(path)
                source.apply(path)
                state = source.export_state([path])
            except Exception:
                log.debug("scan process: %s failed; the pump reads it", path, exc_info=True)
            out += orjson.dumps([i, state])
            out += b"\n"
            now = time.monotonic()
            # Soon after each file at first (the page fills), then in bigger writes.
            if len(out) >= _READ_BYTES // 4 or now - last_flush >= 0.02:
                _write_all(w, out)
                out.clear()
                last_flush = now
        if out:
            _write_all(w, out)

    # ------------------------------------------------------------ the pump's side
    @property
    def done(self) -> bool:
        """Every heavy path was applied here (handed back, or read here after all)."""
        return not self._children and not self._pending

    @property
    def sessions_done(self) -> bool:
        """Every path that makes sessions was applied here (what is left only adds to them)."""
        return self._sessions_left == 0

    def step(self, budget_s: float = STEP_S) -> set[str]:
        """Take in what the children sent, for about ``budget_s``, or until the last path that
        makes sessions is in (then the list is whole: published now, not a step later); returns
        the keys that changed."""
        changed: set[str] = set()
        deadline = time.monotonic() + budget_s
        listing = self._sessions_left > 0
        while self._children and not (listing and self._sessions_left == 0):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = self._poll.poll(max(1, int(left * 1000)))
            if not ready:
                if time.monotonic() - self._last_heard > STALL_S:
                    log.warning("first scan: a scan process sent nothing for %g s; reading its files here",
                                STALL_S)
                    self.close()
                continue
            self._last_heard = time.monotonic()
            for fd, _event in ready:
                changed |= self._read(fd)
        if not self._children:
            changed |= self._finish()
        return changed

    def _read(self, fd: int) -> set[str]:
        try:
            data = os.read(fd, _READ_BYTES)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return set()
            data = b""
        if not data:
            self._end(fd)
            return set()
        buf = self._buffers[fd]
        buf += data
        end = buf.rfind(b"\n")
        if end < 0:
            return set()
        changed: set[str] = set()
        for line in bytes(buf[:end]).split(b"\n"):
            changed |= self._take(line)
        del buf[:end + 1]
        return changed

    def _take(self, line: bytes) -> set[str]:
        try:
            i, state = orjson.loads(line)
            path = self.paths[i]
        except (ValueError, TypeError, IndexError):
            log.warning("first scan: a scan process sent something unreadable; its files are read here")
            return set()
        if i not in self._pending:
            return set()
        self._pending.discard(i)
        if i < self.first_late:
            self._sessions_left -= 1
        source = self.catalog.owner(path)
        if state is not None and source is not None:
            try:
                source.restore_state(state)
            except Exception:
                log.exception("first scan: taking in the state of %s failed; reading it here", path)
        self.delivered += 1
        return self._apply(path)

    def _rebind(self, catalog, apply: Callable[[str], set[str]]) -> None:
        """Taken over by a forked worker: its own catalog and pump from now on."""
        self.catalog = catalog
        self._apply = apply
        self._poll = native("select", "poll")()
        for fd in self._children:
            self._poll.register(fd, _POLLIN)
        self._last_heard = time.monotonic()

    def _drop_fds(self) -> None:
        """The arbiter's copies of the pipes: the worker that took them over reads them."""
        for fd in list(self._children):
            try:
                os.close(fd)
            except OSError:
                pass
        self._children.clear()

    def _end(self, fd: int) -> None:
        pid = self._children.pop(fd)
        self._poll.unregister(fd)
        os.close(fd)
        self._buffers.pop(fd, None)
        _reap(pid)

    def _finish(self) -> set[str]:
        """Every heavy path a child did not deliver, read here."""
        changed: set[str] = set()
        if self._pending:
            self.fallbacks += len(self._pending)
            log.info("first scan: %d files were not handed back by the scan processes; reading them here",
                     len(self._pending))
            for i in sorted(self._pending):
                changed |= self._apply(self.paths[i])
            self._pending.clear()
        self._sessions_left = 0
        return changed

    def close(self) -> None:
        """Stop every child (stopping, or hung); what they did not deliver is read by :meth:`step`."""
        for fd, pid in list(self._children.items()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            self._end(fd)


_POLLIN = getattr(__import__("select"), "POLLIN", 1)


# ------------------------------------------------------------------ started by gunicorn's arbiter

class _Early:
    scan: ParallelScan | None = None
    sources: list[tuple[str, str]] = []
    forks = 0  # workers forked since it started
    taken = False  # this process is the first worker, and took it over
    started = False  # start_early ran in this process (or the one it was forked from)
    pids: list[int] = []  # the scan processes, children of this (the arbiter) process


def early_started() -> bool:
    return _Early.started


def listing(catalog) -> list[tuple[str, int, float]]:
    """Every path a first scan reads, with its size and mtime."""
    out = []
    for path in catalog.iter_paths():
        try:
            st = os.stat(path)
            out.append((path, st.st_size, st.st_mtime))
        except OSError:
            out.append((path, 0, 0.0))
    return out


def start_early(catalog, workers: int, fork: Callable[[], int] | None = None) -> ParallelScan | None:
    """In the arbiter, before any worker: fork the scan processes of the first scan, if worth it."""
    _Early.started = True
    shared = ParallelScan.plan(catalog, listing(catalog), workers, lambda path: set())
    if shared is None:
        return None
    shared.start(fork)
    _Early.pids = shared.pids
    _Early.scan = shared
    _Early.sources = [(s.name, s.root) for s in catalog.sources]
    _Early.forks = 0
    return shared


def early_pre_fork() -> None:
    """In the arbiter, before it forks a worker: only the first one takes the early scan over."""
    _Early.forks += 1
    # One that ended before gunicorn handled SIGCHLD would stay a zombie: gunicorn reaps only
    # when told, and reaps any child then.
    for pid in list(_Early.pids):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _Early.pids.remove(pid)
    if _Early.forks > 1 and _Early.scan is not None:
        _Early.scan._drop_fds()  # the scan processes now write to the first worker alone
        _Early.scan = None


def adopt_early(catalog, apply: Callable[[str], set[str]]) -> ParallelScan | None:
    """In a worker: the arbiter's scan, if this is the first worker and it reads the same sources."""
    shared, _Early.scan = _Early.scan, None
    if shared is None or _Early.forks != 1 or _Early.taken:
        return None
    _Early.taken = True
    if _Early.sources != [(s.name, s.root) for s in catalog.sources]:
        shared._rebind(catalog, apply)
        shared.close()
        return None
    shared._rebind(catalog, apply)
    log.info("first scan: taking over the %d scan processes started before this worker", len(shared.pids))
    return shared


def _close_inherited(keep: set[int]) -> None:
    """Close every descriptor above stderr but ``keep`` (sockets, inotify, databases of the worker)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _widen(fd: int, size: int = 1 << 20) -> None:
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass  # over this user's pipe buffer limits: the default size works, a little slower


def _taken(work: int):
    """The numbers of the work queue, as this process takes them (a 4-byte read is never split
    between readers: a pipe's reads hold its lock)."""
    while True:
        data = os.read(work, 4)
        if len(data) < 4:
            return
        yield int.from_bytes(data, sys.byteorder)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _reap(pid: int) -> None:
    waitpid = native("os", "waitpid")
    try:
        waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped already (an event loop's SIGCHLD handler)
    except OSError:
        pass
