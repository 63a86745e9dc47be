"""What every agent's reader offers the live layer: the source interface.

A source turns one agent's files into Session dicts (SPEC 5), kept up to
date path by path. It knows nothing of Flask, gevent, threads or the store:
the live layer tells it which paths changed and asks it for sessions; it
answers with the agent's own session ids (the live layer makes the ``key``).

Every method but :meth:`Source.session_for_path` and :meth:`Source.claims`
is called from one thread at a time (the live layer's pump); conversations
(:meth:`Source.conversation`) are paged from request threads, each holding the
returned object's ``lock``.

A source never writes inside its agent's data, never raises for bad input
(it logs once and skips), and costs nothing while its data directory does
not exist: its :meth:`watches` then name directories that do not exist yet,
which the watcher picks up when they appear.
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import logging
import time
from typing import Callable, Iterable, Iterator, Protocol

from helm_monitor.sources.text import iso_from_epoch  # noqa: F401  (part of what sources import from here)

log = logging.getLogger(__name__)

# Shown while nothing better is known (SPEC 5).
UNTITLED = "Untitled session"

# Read errors that pass: this process or the system ran short of file descriptors or
# memory, or a call was interrupted. Such a read says nothing about the file, so it is
# tried again (after RETRY_FIRST_S, doubling up to RETRY_MAX_S) until it works, and what
# was known stays meanwhile. Each cause is logged once, with what to do about it.
PASSING_ERRNOS = {
    errno.EMFILE: "too many open files: this process reached its open-file limit "
                  "(raise LimitNOFILE= in the systemd unit, or ulimit -n)",
    errno.ENFILE: "too many open files in the system (raise fs.file-max)",
    errno.ENOMEM: "out of memory",
    errno.ENOBUFS: "out of buffer space",
    errno.EAGAIN: "resource temporarily unavailable",
    errno.EINTR: "interrupted",
}
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0


def _boottime() -> float:
    # Like time.monotonic() (never stepped with the wall clock) but it counts a suspend.
    return time.clock_gettime(time.CLOCK_BOOTTIME)


STEADY_CLOCK = _boottime if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic


@dataclasses.dataclass(frozen=True)
class Watch:
    """A directory to watch. ``recursive`` watches everything below it too."""
    path: str
    recursive: bool


class Conversation(Protocol):
    """One session's messages, paged. Callers hold ``lock`` around :meth:`page`."""
    lock: object

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        """``{"messages": [Message, ...], "nextOffset": int or None, "total": int}``.

        A Message is ``{"index", "uuid", "role" ("user"/"assistant"), "kind"
        ("prompt", "reply", "tool-result", "meta"), "timestamp", "model",
        "messageId", "blocks": [...]}``; blocks are ``{"type": "text"|"thinking",
        "text"}``, ``{"type": "tool_use", "id", "name", "input"}`` (an edit's also
        ``"patch", "patchTruncated"``), ``{"type": "tool_result", "toolUseId", "text",
        "isError", "truncated"}`` (where known also ``"patch", "patchTruncated"``,
        ``"filePath"``, ``"agentId"``), ``{"type": "image", "mediaType", "bytes"}`` or
        ``{"type": "unknown", "kind", "raw"}`` (helm_monitor.sources.blocks), every text
        masked (helm_monitor.sources.redact).
        Raises FileNotFoundError when the session's data is gone.
        """


class Source(abc.ABC):
    """One agent's sessions on this machine."""

    #: the Session ``source`` value: "claude-code", "codex", "opencode", "gemini"
    name: str = ""

    def __init__(self, root: str, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = STEADY_CLOCK, proc_root: str = "/proc"):
        self.root = root
        self.clock = clock  # wall clock: compared with file times
        self.monotonic = monotonic  # what status deadlines are measured in
        self.proc_root = proc_root

    # ------------------------------------------------------------ watching
    @abc.abstractmethod
    def watches(self) -> list[Watch]:
        """The directories whose changes matter, existing or not (cheap, no reading)."""

    def claims(self, path: str) -> bool:
        """``path`` belongs to this source (it is its root or below it). Thread-safe."""
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def session_for_path(self, path: str, is_dir: bool | None = None) -> str | None:
        """The session a changed path belongs to, when known without reading (changes are
        coalesced per session). Thread-safe: lookups only."""
        return None

    # ------------------------------------------------------------ reading
    @abc.abstractmethod
    def iter_paths(self) -> Iterator[str]:
        """Every path a full scan reads, found by listing directories (no reading)."""

    @abc.abstractmethod
    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        """Bring what is known of ``path`` up to date (it changed, appeared or went).

        Returns the ids of the sessions that changed. Costs what changed: an
        append reads the appended bytes, a database change the changed rows.
        """

    def full_scan(self) -> set[str]:
        """Read everything; forget what is gone. Returns the ids of sessions that changed."""
        before = self.session_ids()
        changed: set[str] = set()
        seen = set()
        for path in self.iter_paths():
            seen.add(path)
            changed |= self.apply(path)
        for path in self.known_paths() - seen:
            changed |= self.apply(path)  # gone: apply() notices
        return changed | (before ^ self.session_ids())

    def known_paths(self) -> set[str]:
        """The paths read so far (a full scan re-applies those no longer listed)."""
        return set()

    def reconcile(self, listed: Iterable[str], known: Iterable[str]) -> set[str]:
        """Apply every path ``listed``, then every ``known`` one that was not (gone: apply() notices)."""
        changed: set[str] = set()
        present = set()
        for path in listed:
            present.add(path)
            changed |= self.apply(path)
        for path in known:
            if path not in present:
                changed |= self.apply(path)
        return changed

    def check_liveness(self) -> set[str]:
        """Re-check the processes behind sessions (called about once a second). Returns changed ids."""
        return set()

    @property
    def needs_retry(self) -> bool:
        """Some reads failed for a passing reason and are to be tried again soon (:meth:`retry`)."""
        return False

    def retry(self) -> set[str]:
        return set()

    def status_deadline(self, after: float | None = None) -> float | None:
        """The earliest time (on ``monotonic``) after ``after`` at which a status turns by time alone."""
        return None

    # ------------------------------------------------------------ answering
    @abc.abstractmethod
    def session_ids(self) -> set[str]:
        """The ids of every listed session."""

    @abc.abstractmethod
    def session(self, session_id: str) -> dict | None:
        """The Session (SPEC 5, without ``key`` and ``host``), or None if unknown."""

    def sessions(self) -> dict[str, dict]:
        out = {}
        for sid in self.session_ids():
            s = self.session(sid)
            if s is not None:
                out[sid] = s
        return out

    def usage(self, session_id: str):
        """The session's :class:`helm_monitor.usage.facts.UsageFacts` (SPEC 10: every distinct API
        message of it and of its subagents, and the agent's own ledger), or None if unknown.
        Called from the pump's thread, like :meth:`session`; the caller may keep the object until
        the session next changes, and never alters it."""
        return None

    @abc.abstractmethod
    def conversation(self, session_id: str) -> Conversation | None:
        """The session's messages (paged from request threads), or None if unknown."""

    def subagent_conversation(self, session_id: str, agent_id: str) -> Conversation | None:
        """The messages of one of the session's subagents, named as its tool results name it
        (``agentId``), or None: unknown, or an agent whose subagents are not kept apart."""
        return None

    # ------------------------------------------------------------ parse state
    def export_state(self, paths: Iterable[str] | None = None) -> dict | None:
        """What was learned from the files (only from ``paths``, if given), as JSON-able data,
        so a restart reads only what changed."""
        return None

    def restore_state(self, data) -> int:
        """Take back :meth:`export_state`'s data (validated: anything odd is read again). Returns entries used."""
        return 0

    def drop_restored(self) -> None:
        """The first scan is done: forget restored state whose files were not found."""

    def scan_cost(self, path: str, size: int) -> int:
        """Bytes that reading ``path`` (``size`` bytes long) would parse now, when another process
        may read it instead and hand back what it learned (``export_state([path])``, then
        :meth:`restore_state` here); 0 when it is read here (cheap, or not exportable)."""
        return 0

    def scan_late(self, path: str) -> bool:
        """True for a file that adds to sessions without making one (a subagent's transcript): the
        first scan reads these after the rest, so that every session is listed sooner."""
        return False


def empty_tokens() -> dict:
    return {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0}


def base_session(source: str, session_id: str) -> dict:
    """Every Session field (SPEC 5) at its unknown value; a source fills in what its files say."""
    return {
        "id": session_id,
        "source": source,
        "projectPath": None,
        "projectDir": None,
        "title": UNTITLED,
        "firstPrompt": None,
        "lastPrompt": None,
        "messageCount": 0,
        "createdAt": None,
        "updatedAt": None,
        "gitBranch": None,
        "model": None,
        "tokens": empty_tokens(),
        "status": "ended",
        "pid": None,
        "subagentCount": 0,
        "sizeBytes": 0,
        "version": None,
        "cost": {"usd": None, "basis": "unpriced", "unpricedModels": []},
    }


class WarnOnce:
    """Log a problem once until it clears: ``warn(key, message)``, ``clear(key)``."""

    def __init__(self, logger: logging.Logger):
        self._log = logger
        self._active: set = set()

    def warn(self, key, message: str, *args, level: int = logging.WARNING) -> None:
        if key not in self._active:
            self._active.add(key)
            self._log.log(level, message, *args)

    def clear(self, key) -> None:
        self._active.discard(key)

    def clear_prefix(self, first) -> None:
        """Clear every key that is a tuple starting with ``first``."""
        self._active = {k for k in self._active if not (isinstance(k, tuple) and k and k[0] == first)}
