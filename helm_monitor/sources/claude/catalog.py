"""The Claude data directory as a set of sessions, kept up to date path by path.

:class:`Catalog` is the domain's whole surface: the live layer tells it which
paths changed and gets back the ids of the sessions that changed; the web
layer asks it for sessions and conversations. It reads files only when told
a path changed (or on a full scan), never writes, and keeps per-file state so
an append costs time proportional to the appended bytes.

Usage (SPEC 10) is kept per file as it is read: a transcript's facts and ledger with its
other totals, subagents' and legacy sidechains' by readers of their own (usage only). A
session's combined facts, each API message once, are built when asked after one of its files
changed (:meth:`Catalog.usage`); its ``cost`` is priced from them.

Faults never make it forget a session: a read that fails for a passing reason
(out of file descriptors or memory) is retried until it works (:meth:`Catalog.retry`),
and projects/ or sessions/ vanishing is held for a grace period, so that one
moved elsewhere and linked back loses nothing.

Not thread-safe: one caller at a time (the live layer's pump).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Callable, Iterator

from helm_monitor.sources.claude import records as R
from helm_monitor.sources.claude.conversation import Conversation, is_valid_agent_id
from helm_monitor.sources.claude.forks import Forks
from helm_monitor.sources.claude.index import IndexHints, read_index
from helm_monitor.sources.claude.layout import Kind, Layout, decode_project_dir, is_valid_session_id
from helm_monitor.sources.claude.registry import Incomplete, RegistryEntry, is_alive, read_entry
from helm_monitor.sources.claude.sidechain import SidechainReader
from helm_monitor.sources.claude.transcript import TranscriptReader, read_first_session_id
from helm_monitor.sources.base import PASSING_ERRNOS, STEADY_CLOCK, Source, Watch, iso_from_epoch
from helm_monitor.sources.pages import Recent
from helm_monitor.sources.retry import Retries
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts

log = logging.getLogger(__name__)

# Claude Code versions before this keep no live-process registry.
REGISTRY_SINCE = (2, 1, 75)
# Reads of a registry file that stays incomplete before waiting for its next change.
REGISTRY_RETRIES = 25
# Without a registry, a transcript written this recently counts as busy.
RECENT_WRITE_S = 60.0
SOURCE = "claude-code"

# projects/ or sessions/ gone: held this long before its sessions are dropped. A user who
# moves ~/.claude/projects to another disk and links it back makes it vanish for a
# moment; clients must not see every session deleted and created again.
VANISHED_GRACE_S = 10.0


# Counts a suspend: after a night's sleep, a transcript written before it is not "written a minute ago".
_STEADY_CLOCK = STEADY_CLOCK


def parse_version(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    parts = []
    for piece in value.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            return None
        parts.append(int(digits))
    return tuple(parts)


class _Transcript:
    __slots__ = ("reader", "project", "session_id", "changed_at", "read_at")

    def __init__(self, path: str, project: str, session_id: str, reader: TranscriptReader | None = None):
        self.reader = reader if reader is not None else TranscriptReader(path)
        self.project = project
        self.session_id = session_id
        # When the file last changed, on the monotonic clock: the recent-write rule
        # must hold when the wall clock is stepped (NTP, a suspended laptop).
        self.changed_at: float | None = None
        self.read_at: float | None = None  # the last successful read, monotonic


class Catalog(Source):
    """Claude Code's source (helm_monitor.sources.base)."""

    name = SOURCE

    def __init__(self, root: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = _STEADY_CLOCK, proc_root: str = "/proc",
                 vanished_grace_s: float = VANISHED_GRACE_S):
        self.layout = Layout(root)
        super().__init__(self.layout.root, clock=clock, monotonic=monotonic, proc_root=proc_root)
        self._transcripts: dict[str, _Transcript] = {}  # path -> transcript
        self._paths_by_id: dict[str, set[str]] = {}
        # session id -> its subagent transcripts (path -> reader, read for usage only)
        self._subagents: dict[str, dict[str, SidechainReader]] = {}
        self._legacy: dict[str, str] = {}  # legacy sidechain path -> parent session id
        self._legacy_paths: dict[str, set[str]] = {}  # parent session id -> its legacy sidechain paths
        self._legacy_readers: dict[str, SidechainReader] = {}  # legacy sidechain path -> reader
        # session id -> (its usage with every sidechain's, its cost): built when asked after a change
        self._usage: dict[str, tuple[UsageFacts, dict]] = {}
        self._forks = Forks(self._primary)  # forked sessions' copies count once
        self._indexes: dict[str, IndexHints] = {}  # project -> hints
        self._registry: dict[str, RegistryEntry] = {}  # registry path -> entry
        self._alive: dict[str, bool] = {}  # registry path -> pid alive
        self.incomplete_registry: set[str] = set()  # registry paths to read again soon
        self._registry_retries: dict[str, int] = {}
        self._retries = Retries(self.monotonic, log)
        self._failed = self._retries.failed  # path -> its retry after a passing error
        self.vanished_grace_s = vanished_grace_s
        self._vanished: dict[str, float] = {}  # projects/ or sessions/ gone -> end of its grace period
        self._warned: set[tuple[str, str]] = set()
        # Their indexes are kept, so paging on through a long transcript does not index it again.
        self._conversations = Recent(Conversation, 8)
        self._request_conversations = Recent(Conversation, 16)  # paged by requests, apart from the pump's
        self._subagent_conversations = Recent(lambda path: Conversation(path, sidechain=True), 8)
        # Readers restored from a saved state (helm_monitor.sources.claude.state), used when their path is applied.
        self._restored: dict[str, _Transcript] = {}
        self._restored_sidechains: dict[str, SidechainReader] = {}

    # ------------------------------------------------------------------ watching
    def watches(self) -> list[Watch]:
        # The data directory itself (projects/ and sessions/ appearing or vanishing), every
        # project below projects/, and the registry (flat).
        return [Watch(self.layout.root, False), Watch(self.layout.projects, True), Watch(self.layout.registry, False)]

    # ------------------------------------------------------------------ scanning
    def iter_paths(self) -> Iterator[str]:
        """Every path the catalog reads, found by walking the directory (no reading)."""
        yield from self._walk_registry()
        yield from self._walk_projects(self.layout.projects)

    def _walk_registry(self) -> Iterator[str]:
        for entry in self._scandir(self.layout.registry):
            if entry.name.endswith(".json"):
                yield entry.path

    def _walk_projects(self, top: str) -> Iterator[str]:
        info = self.layout.classify(top, is_dir=True)
        if info.kind is Kind.PROJECTS_DIR:
            for entry in self._scandir(top):
                if self._is_dir(entry):
                    yield from self._walk_project(entry.path)
        elif info.kind is Kind.PROJECT_DIR:
            yield from self._walk_project(top)
        elif info.kind is Kind.SESSION_DIR:
            yield from self._walk_session_dir(top)

    def _walk_project(self, project_dir: str) -> Iterator[str]:
        subdirs = []
        for entry in self._scandir(project_dir):
            name = entry.name
            if name.endswith(".jsonl") or name == "sessions-index.json":
                yield entry.path
            elif is_valid_session_id(name) and self._is_dir(entry):
                subdirs.append(entry.path)
        for d in subdirs:
            yield from self._walk_session_dir(d)

    def _walk_session_dir(self, path: str) -> Iterator[str]:
        # Only subagents/ holds transcripts below a session folder; tool-results/ etc. are not read.
        parts = os.path.relpath(path, self.layout.projects).split(os.sep)
        if len(parts) == 2:
            path = os.path.join(path, "subagents")
        stack = [path]
        while stack:
            d = stack.pop()
            for entry in self._scandir(d):
                if entry.name.startswith("agent-") and entry.name.endswith(".jsonl"):
                    yield entry.path
                elif self._is_dir(entry):
                    stack.append(entry.path)

    def _scandir(self, path: str) -> list[os.DirEntry]:
        try:
            with os.scandir(path) as it:
                entries = list(it)
            self._warned.discard((path, "dir"))
            return entries
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(path, True, exc)
            else:
                self._warn(path, "dir", f"cannot list {path}: {exc.strerror}; skipped")
            return []

    @staticmethod
    def _is_dir(entry: os.DirEntry) -> bool:
        try:
            return entry.is_dir()
        except OSError:
            return False

    def full_scan(self) -> set[str]:
        """Read everything; forget what is gone. Returns the ids of sessions that changed."""
        seen = set()
        changed: set[str] = set()
        for path in self.iter_paths():
            seen.add(path)
            changed |= self.apply(path)
        for path in self.known_paths() - seen:
            changed |= self.apply(path)  # it is gone: apply() notices
        return changed

    def offer_restored(self, path: str, transcript: "_Transcript") -> None:
        self._restored[path] = transcript

    def offer_restored_sidechain(self, path: str, reader: SidechainReader) -> None:
        self._restored_sidechains[path] = reader

    def drop_restored(self) -> None:
        """Forget saved readers whose files were not found."""
        self._restored.clear()
        self._restored_sidechains.clear()

    def known_paths(self) -> set[str]:
        known = set(self._transcripts) | set(self._legacy) | set(self._registry) | self.incomplete_registry
        for paths in self._subagents.values():
            known.update(paths)
        known |= {os.path.join(self.layout.projects, p, "sessions-index.json") for p in self._indexes}
        return known

    # ------------------------------------------------------------------ changes
    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        """Bring what the catalog knows of ``path`` up to date. Returns changed session ids."""
        changed = self._apply_path(path, is_dir)
        if changed:
            changed |= self._forks.changed(changed)
        for sid in changed:
            self._usage.pop(sid, None)
        return changed

    def _apply_path(self, path: str, is_dir: bool | None) -> set[str]:
        info = self.layout.classify(path, is_dir)
        kind = info.kind
        if kind is Kind.TRANSCRIPT:
            return self._apply_transcript(path, info.project, info.session_id)
        if kind is Kind.SUBAGENT:
            return self._apply_subagent(path, info.session_id)
        if kind is Kind.LEGACY_SIDECHAIN:
            return self._apply_legacy(path)
        if kind is Kind.REGISTRY:
            return self._apply_registry(path, info.pid)
        if kind is Kind.INDEX:
            return self._apply_index(path, info.project)
        if kind in (Kind.ROOT, Kind.PROJECTS_DIR, Kind.PROJECT_DIR, Kind.SESSION_DIR, Kind.REGISTRY_DIR):
            return self.apply_dir(path)
        return set()

    def apply_dir(self, path: str) -> set[str]:
        """A directory appeared, vanished or moved: reconcile everything below it."""
        path = os.path.abspath(path)
        if path == self.layout.root:
            return self.full_scan()
        exists = os.path.isdir(path)
        if path in self._vanished and exists:
            del self._vanished[path]
            log.info("%s is back within its grace period; reconciling with what it holds now", path)
        elif not exists and self._held(path):
            return set()
        info = self.layout.classify(path, is_dir=True)
        if info.kind is Kind.SESSION_DIR:
            # The hot case (a runaway agent makes folders by the thousand): only this session's files.
            below = [p for p in self._subagents.get(info.session_id, ()) if p.startswith(path + os.sep)]
        else:
            below = [p for p in self.known_paths() if p.startswith(path + os.sep)]
        if not exists:
            return self.reconcile((), below)
        return self.reconcile(self._walk_registry() if path == self.layout.registry else self._walk_projects(path),
                              below)

    def _apply_transcript(self, path: str, project: str, session_id: str) -> set[str]:
        t = self._transcripts.get(path) or self._restored.pop(path, None)
        if t is None:
            t = _Transcript(path, project, session_id)
        content = (t.reader.inode, t.reader.size)
        try:
            changed = t.reader.update()
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return set() if path in self._transcripts and self._held(path) else self._forget_transcript(path)
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW: a symlink (dangling or not) is not read
                self._warn(path, "read", f"{path} is a symbolic link; not followed, skipped")
                return self._forget_transcript(path)
            if exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
            else:
                self._warn(path, "read", f"cannot read {path}: {exc.strerror}; skipped")
            return set()
        self._warned.discard((path, "read"))
        now = self.monotonic()
        if changed or t.changed_at is None:
            # The file's age by the wall clock, read on the monotonic one. A file time in
            # the future (the clock was stepped back) counts as written now. Bytes that were
            # not there at the last read were written after it, however old the clock makes
            # them look (stepped forward between the write and this read); a time set back
            # by hand (touch, a restore) is taken as it is.
            t.changed_at = now - max(0.0, self.clock() - t.reader.mtime)
            if t.read_at is not None and (t.reader.inode, t.reader.size) != content:
                t.changed_at = max(t.changed_at, t.read_at)
        t.read_at = now
        if path not in self._transcripts:
            self._transcripts[path] = t
            self._paths_by_id.setdefault(session_id, set()).add(path)
            return {session_id}
        return {session_id} if changed else set()

    def _forget_transcript(self, path: str) -> set[str]:
        t = self._transcripts.pop(path, None)
        self._forks.forget(path)
        self._conversations.forget(path)
        self._request_conversations.forget(path)
        if t is None:
            return set()
        paths = self._paths_by_id.get(t.session_id)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self._paths_by_id[t.session_id]
        return {t.session_id}

    def _apply_subagent(self, path: str, session_id: str) -> set[str]:
        readers = self._subagents.setdefault(session_id, {})
        exists = os.path.isfile(path)
        if not exists and path in readers and self._held(path):
            return set()
        if not exists:
            gone = readers.pop(path, None) is not None
            self._subagent_conversations.forget(path)
            if not readers:
                del self._subagents[session_id]
            return {session_id} if gone else set()
        reader = readers.get(path)
        known = reader is not None
        if reader is None:
            reader = readers[path] = self._restored_sidechains.pop(path, None) or SidechainReader(path)
        return {session_id} if self._read_sidechain(reader) or not known else set()

    def _read_sidechain(self, reader: SidechainReader) -> bool:
        """Read a sidechain transcript's appended usage. Whether it changed; a failure keeps what was read."""
        path = reader.path
        try:
            changed = reader.update()
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
            elif exc.errno == errno.ELOOP:
                self._warn(path, "read", f"{path} is a symbolic link; counted, but its usage is not read")
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # gone meanwhile: its removal is applied next
                self._warn(path, "read", f"cannot read {path}: {exc.strerror}; its usage is not counted")
            return False
        self._warned.discard((path, "read"))
        return changed

    def _apply_legacy(self, path: str) -> set[str]:
        old = self._legacy.get(path)
        exists = os.path.isfile(path)
        parent = read_first_session_id(path) if exists else None
        if parent is None and old is not None:
            # None also when the file could not be opened: not a reason to drop what it said.
            failure = self._cannot_open() if exists else None
            if failure is not None:
                self._later(path, False, failure)
                return set()
            if not exists and self._held(path):
                return set()
        changed = set()
        if parent != old:
            if old is not None:
                del self._legacy[path]
                paths = self._legacy_paths[old]
                paths.discard(path)
                if not paths:
                    del self._legacy_paths[old]
                changed.add(old)
            if parent is not None:
                self._legacy[path] = parent
                self._legacy_paths.setdefault(parent, set()).add(path)
                changed.add(parent)
        if parent is None:
            self._legacy_readers.pop(path, None)
            return changed
        reader = self._legacy_readers.get(path)
        if reader is None:
            reader = self._legacy_readers[path] = self._restored_sidechains.pop(path, None) or SidechainReader(path)
        if self._read_sidechain(reader):
            changed.add(parent)
        return changed

    def _apply_index(self, path: str, project: str) -> set[str]:
        old = self._indexes.get(project)
        try:
            hints = read_index(path)
            self._warned.discard((path, "index"))
        except FileNotFoundError:
            if old is not None and self._held(path):
                return set()
            hints = None
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
                return set()
            self._warn(path, "index", f"ignoring unusable sessions index {path}: {exc}")
            hints = None
        if hints == old:
            return set()  # read again unchanged (a rescan, a directory reconciled)
        if hints is None:
            self._indexes.pop(project, None)
        else:
            self._indexes[project] = hints
        ids = set(old.entries if old else ()) | set(hints.entries if hints else ())
        return {i for i in ids if i in self._paths_by_id}

    def _apply_registry(self, path: str, pid: int, retry: bool = False) -> set[str]:
        if not retry:
            self._registry_retries.pop(path, None)  # a new write: a new budget of retries
        old = self._registry.get(path)
        try:
            entry = read_entry(path, pid)
        except FileNotFoundError:
            if old is not None and self._held(path):
                return set()
            entry = None
            self.incomplete_registry.discard(path)
            for what in ("registry", "incomplete", "dead"):
                self._warned.discard((path, what))
        except Incomplete as exc:
            # Rewritten in place: caught half written. Keep what we had and retry.
            # Normal in passing, so noted once (not per retry) and not as a warning.
            self.incomplete_registry.add(path)
            self._warn(path, "incomplete", f"registry file {path} is incomplete ({exc}); will retry",
                       logging.INFO)
            return set()
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
            else:
                self._warn(path, "registry", f"cannot read registry file {path}: {exc.strerror}")
            return set()
        else:
            self.incomplete_registry.discard(path)
            self._warned.discard((path, "incomplete"))
            self._warned.discard((path, "registry"))
        old_alive = self._alive.get(path, False)
        if entry is None:
            self._registry.pop(path, None)
            self._alive.pop(path, None)
        else:
            self._registry[path] = entry
            self._alive[path] = self._check_alive(path, entry)
        if old == entry and old_alive == self._alive.get(path, False):
            return set()
        return {e.session_id for e in (old, entry) if e is not None}

    def check_liveness(self) -> set[str]:
        """Re-check every registered pid (cheap: one /proc read each). Returns changed ids."""
        changed = set()
        for path, entry in self._registry.items():
            alive = self._check_alive(path, entry)
            if alive != self._alive.get(path):
                self._alive[path] = alive
                changed.add(entry.session_id)
        return changed

    def _check_alive(self, path: str, entry: RegistryEntry) -> bool:
        alive = is_alive(entry, self.proc_root)
        if not alive:
            failure = self._cannot_open()
            if failure is not None:
                # /proc/<pid>/stat could not be opened: that says nothing about the process.
                # What was known stands; the registry file is read and checked again soon.
                self._later(path, False, failure, f"check whether pid {entry.pid} ({path}) is running")
                return self._alive.get(path, False)
        if alive:
            self._warned.discard((path, "dead"))
        else:
            # A crash leaves the file behind: normal, noted once per file, not per check.
            self._warn(path, "dead", f"registry file {path} names pid {entry.pid}, which is not running "
                       "(exited, or the pid was reused); its session counts as ended", logging.INFO)
        return alive

    def retry_incomplete(self) -> set[str]:
        """Read half-written registry files again; give up on one after a few seconds
        (it is then malformed, not half written: its next change brings it back)."""
        changed = set()
        for path in list(self.incomplete_registry):
            tries = self._registry_retries.get(path, 0) + 1
            if tries > REGISTRY_RETRIES:
                self.incomplete_registry.discard(path)
                self._registry_retries.pop(path, None)
                continue
            self._registry_retries[path] = tries
            info = self.layout.classify(path)
            if info.kind is Kind.REGISTRY:
                changed |= self._apply_registry(path, info.pid, retry=True)
        return changed

    def status_deadline(self, after: float | None = None) -> float | None:
        """The earliest time after ``after`` (default: now) at which a session's status turns by time alone.

        Times are on the catalog's monotonic clock. A caller that built sessions
        at time T passes ``after=T``, so a deadline that fell between the build
        and this call is not missed.
        """
        now = self.monotonic() if after is None else after
        best = None
        for t in self._transcripts.values():
            due = (t.changed_at or 0.0) + RECENT_WRITE_S
            if due > now and self._uses_recent_write_rule(t) and (best is None or due < best):
                best = due
        return best

    # ------------------------------------------------------------------ for the live layer
    def session_for_path(self, path: str, is_dir: bool | None = None) -> str | None:
        """The session a changed path belongs to, if known without reading: changes are coalesced per session.

        Safe to call from the watcher's thread (lookups only).
        """
        info = self.layout.classify(path, is_dir)
        if info.kind in (Kind.TRANSCRIPT, Kind.SUBAGENT, Kind.SESSION_DIR):
            return info.session_id
        if info.kind is Kind.REGISTRY:
            entry = self._registry.get(os.path.abspath(path))
            return entry.session_id if entry is not None else None
        if info.kind is Kind.LEGACY_SIDECHAIN:
            return self._legacy.get(os.path.abspath(path))
        return None

    @property
    def needs_retry(self) -> bool:
        """Some reads failed for a passing reason and are to be tried again soon (:meth:`retry`)."""
        return bool(self.incomplete_registry or self._failed or self._vanished)

    def retry(self) -> set[str]:
        """Try again what failed for a passing reason, each when it is due; settle vanished
        top-level directories. Call it every ~0.2 s while :attr:`needs_retry`. Returns changed session ids."""
        changed = self.retry_incomplete()
        changed |= self._retries.run(self.apply)
        now = self.monotonic()
        for top, deadline in list(self._vanished.items()):
            back = os.path.isdir(top)
            if back or now >= deadline:
                if not back:
                    log.info("%s is still gone after %.0f s: its sessions are removed", top, self.vanished_grace_s)
                changed |= self.apply_dir(top)  # reconciles with what is there now (nothing, if gone)
                self._vanished.pop(top, None)
        return changed

    def _later(self, path: str, is_dir: bool | None, exc: OSError, action: str | None = None) -> None:
        self._retries.later(path, is_dir, exc, action)

    @staticmethod
    def _cannot_open() -> OSError | None:
        """Why this process cannot open any file right now (out of descriptors or memory), if so.

        For readers that answer "nothing" rather than raise when a file cannot be opened.
        """
        try:
            os.close(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                return exc
        return None

    def _held(self, path: str) -> bool:
        """``path`` is gone because projects/ or sessions/ is: keep what is known below it for a grace period.

        Only a vanished top-level directory (the whole data directory, or
        projects/ swapped for a link to another disk) is held; a file or a project
        folder removed while projects/ stays is forgotten at once.
        """
        top = next((d for d in (self.layout.projects, self.layout.registry)
                    if path == d or path.startswith(d + os.sep)), None)
        if top is None or os.path.isdir(top):
            return False
        deadline = self._vanished.get(top)
        if deadline is None:
            if not any(p.startswith(top + os.sep) for p in self.known_paths()):
                return False
            deadline = self._vanished[top] = self.monotonic() + self.vanished_grace_s
            log.info("%s vanished; its sessions are kept for %.0f s in case it comes back (moved and linked back)",
                     top, self.vanished_grace_s)
        return self.monotonic() < deadline

    # ------------------------------------------------------------------ reading
    def session_ids(self) -> set[str]:
        return set(self._paths_by_id)

    def sessions(self) -> dict[str, dict]:
        return {sid: self.session(sid) for sid in self._paths_by_id}

    def session(self, session_id: str) -> dict | None:
        t = self._primary(session_id)
        return None if t is None else self._build(t)

    def transcript_path(self, session_id: str) -> str | None:
        t = self._primary(session_id)
        return None if t is None else t.reader.path

    def _primary(self, session_id: str) -> _Transcript | None:
        paths = self._paths_by_id.get(session_id)
        if not paths:
            return None
        if len(paths) == 1:
            return self._transcripts[next(iter(paths))]
        # The same id in two project folders: the most recently written wins.
        return max((self._transcripts[p] for p in paths), key=lambda t: t.reader.mtime)

    def _live_entry(self, session_id: str) -> RegistryEntry | None:
        best = None
        for path, entry in self._registry.items():
            if entry.session_id == session_id and self._alive.get(path):
                if best is None or entry.updated_at > best.updated_at:
                    best = entry
        return best

    def _uses_recent_write_rule(self, t: _Transcript) -> bool:
        version = parse_version(t.reader.stats.version)
        return version is None or version < REGISTRY_SINCE

    def _build(self, t: _Transcript) -> dict:
        st = t.reader.stats
        sid = t.session_id
        hints = self._indexes.get(t.project)
        hint = hints.entries.get(sid, {}) if hints else {}
        first_prompt = st.first_prompt
        title = (st.custom_title or hint.get("customTitle") or st.ai_title or st.summary or hint.get("summary")
                 or (R.collapse(first_prompt, R.TITLE_PROMPT_MAX) if first_prompt else None) or "Untitled session")
        project_path = st.cwd or hint.get("projectPath") or (hints.original_path if hints else None) \
            or decode_project_dir(t.project)
        live = self._live_entry(sid)
        if live is not None:
            status, pid = live.effective_status, live.pid
        elif self._uses_recent_write_rule(t) and self.monotonic() - (t.changed_at or 0.0) < RECENT_WRITE_S:
            status, pid = "busy", None
        else:
            status, pid = "ended", None
        tokens = st.tokens
        return {
            "id": sid,
            "source": SOURCE,
            "projectPath": project_path,
            "projectDir": t.project,
            # Masked when read (transcript, index): not again for every build.
            "title": title,
            "firstPrompt": first_prompt,
            "lastPrompt": st.last_prompt,
            "messageCount": st.message_count,
            "createdAt": st.first_ts or iso_from_epoch(min(t.reader.ctime, t.reader.mtime) or t.reader.mtime),
            "updatedAt": st.last_ts or iso_from_epoch(t.reader.mtime),
            "gitBranch": st.git_branch,
            "model": st.model,
            "tokens": {"input": tokens[0], "output": tokens[1], "cacheRead": tokens[2], "cacheCreation": tokens[3]},
            "status": status,
            "pid": pid,
            "subagentCount": len(self._subagents.get(sid, ())) + len(self._legacy_paths.get(sid, ())),
            "sizeBytes": t.reader.size,
            "version": st.version,
            "cost": self._cost(sid, t),
        }

    # ------------------------------------------------------------------ usage
    def usage(self, session_id: str) -> UsageFacts | None:
        """The session's usage (SPEC 10): its transcript's, every subagent's and legacy sidechain's,
        each API message once. Built when asked after a change; callers never alter it."""
        t = self._primary(session_id)
        return None if t is None else self._usage_of(session_id, t)[0]

    def _cost(self, session_id: str, t: _Transcript) -> dict:
        cost = self._usage_of(session_id, t)[1]
        return dict(cost, unpricedModels=list(cost["unpricedModels"]))

    def _usage_of(self, session_id: str, t: _Transcript) -> tuple[UsageFacts, dict]:
        got = self._usage.get(session_id)
        if got is None:
            facts = self._combined_usage(session_id, t)
            got = self._usage[session_id] = (facts, pricing.session_cost(facts, SOURCE))
        return got

    def _combined_usage(self, session_id: str, t: _Transcript) -> UsageFacts:
        """The transcript's facts and its sidechains'. A message in several of the files counts once:
        in the transcript if it is there, else in the first sidechain (by path) that has it."""
        st = t.reader.stats
        out = st.usage.facts.copy()
        copies = self._forks.copies(session_id, t)
        if copies is not None:
            for (bucket, model, tier, speed), row in copies.rows.items():
                out.add(bucket, model, row[:5], tier=tier, speed=speed, messages=row[5], sign=-1)
        readers = [r for _path, r in sorted(self._subagents.get(session_id, {}).items())]
        legacy = self._legacy_paths.get(session_id)
        if legacy:
            readers += [self._legacy_readers[p] for p in sorted(legacy) if p in self._legacy_readers]
        main_ids, side_ids = st.message_ids, st.side_ids
        seen: set[int] = set()
        for n, r in enumerate(readers, 1):
            ids = r.ids
            if not ids:
                continue
            if main_ids.isdisjoint(ids) and side_ids.isdisjoint(ids) and seen.isdisjoint(ids):
                out.merge(r.facts)
            else:
                out.merge(r.counter.facts_without(lambda d: d in main_ids or d in side_ids or d in seen))
            if n < len(readers):
                seen |= ids
        return out

    def conversation(self, session_id: str):
        """The session's transcript as a conversation, paged from request threads."""
        try:
            path = self.transcript_path(session_id)
        except RuntimeError:  # the pump changed the session's paths meanwhile
            path = None
        return None if path is None else self._request_conversations.get(path)

    def subagent_conversation(self, session_id: str, agent_id: str):
        """The transcript of the session's subagent ``agent_id`` (``toolUseResult.agentId``): one of
        the subagent files (``<session>/subagents/**/agent-<id>.jsonl``, or a legacy top-level
        sidechain of the session) already known, never a path made from the id."""
        if not is_valid_agent_id(agent_id) or self._primary_or_none(session_id) is None:
            return None
        path = self._subagent_path(session_id, "agent-" + agent_id + ".jsonl")
        return None if path is None else self._subagent_conversations.get(path)

    def _subagent_path(self, session_id: str, name: str) -> str | None:
        for _ in range(3):  # the pump may change these sets meanwhile: look again
            try:
                paths = list(self._subagents.get(session_id, ())) + list(self._legacy_paths.get(session_id, ()))
            except RuntimeError:
                continue
            found = sorted(p for p in paths if os.path.basename(p) == name)
            # The same id twice (nested folders): the one nearest the session's folder.
            return min(found, key=lambda p: (p.count(os.sep), p)) if found else None
        return None

    def _primary_or_none(self, session_id: str) -> _Transcript | None:
        try:
            return self._primary(session_id)
        except (RuntimeError, KeyError):  # the pump changed the session's paths meanwhile
            return None

    def export_state(self, paths=None) -> dict:
        from helm_monitor.sources.claude import state
        return state.export_state(self, paths)

    def scan_cost(self, path: str, size: int) -> int:
        """Transcripts are what costs, sidechains' too (everything else is a listing or a small file)."""
        info = self.layout.classify(path)
        if info.kind is Kind.TRANSCRIPT:
            t = self._transcripts.get(path) or self._restored.get(path)
            return max(0, size - t.reader.offset) if t is not None else size
        if info.kind is Kind.SUBAGENT:
            r = self._subagents.get(info.session_id, {}).get(path)
        elif info.kind is Kind.LEGACY_SIDECHAIN:
            r = self._legacy_readers.get(path)
        else:
            return 0
        r = r or self._restored_sidechains.get(path)
        return max(0, size - r.follower.offset) if r is not None else size

    def scan_late(self, path: str) -> bool:
        """Subagent transcripts and legacy sidechains: usage only, never a session of their own."""
        return self.layout.classify(path).kind in (Kind.SUBAGENT, Kind.LEGACY_SIDECHAIN)

    def restore_state(self, data) -> int:
        from helm_monitor.sources.claude import state
        return state.restore_state(self, data)

    def messages(self, session_id: str, offset: int = 0, limit: int = 100) -> dict | None:
        """A page of the conversation, or None for an unknown session."""
        path = self.transcript_path(session_id)
        if path is None:
            return None
        return self._conversations.get(path).page(offset, limit)

    # ------------------------------------------------------------------ misc
    def _warn(self, path: str, what: str, message: str, level: int = logging.WARNING) -> None:
        """Log ``message`` once until the condition ``(path, what)`` clears."""
        if (path, what) not in self._warned:
            self._warned.add((path, what))
            log.log(level, message)

