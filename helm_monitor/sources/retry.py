"""Reads that failed for a passing reason (base.PASSING_ERRNOS), tried again until they work.

Such a failure says nothing about the file (this process ran out of file
descriptors or memory), so what was known stays and the read is tried again,
after RETRY_FIRST_S, doubling up to RETRY_MAX_S while it keeps failing. Each
cause is logged once (under EMFILE every read fails, and one line says it
all), and once more when every failed read has been done.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from helm_monitor.sources.base import PASSING_ERRNOS, RETRY_FIRST_S, RETRY_MAX_S, WarnOnce


def backoff(tries: int) -> float:
    """Seconds to wait before the next try, after ``tries`` failed ones beyond the first."""
    return min(RETRY_FIRST_S * 2 ** tries, RETRY_MAX_S)


class Retry:
    """One path to read again."""
    __slots__ = ("is_dir", "tries", "due")

    def __init__(self, is_dir: bool | None):
        self.is_dir = is_dir
        self.tries = 0
        self.due = 0.0


class Retries:
    """The paths of one source to read again. ``failed`` maps path -> :class:`Retry`."""

    def __init__(self, monotonic: Callable[[], float], logger: logging.Logger):
        self.monotonic = monotonic
        self.log = logger
        self.failed: dict[str, Retry] = {}
        self.causes: set[int] = set()  # errnos logged since reads last all worked

    def __bool__(self) -> bool:
        return bool(self.failed)

    def later(self, path: str, is_dir: bool | None, exc: OSError, action: str | None = None) -> None:
        """``path`` failed for a passing reason: try it again later, backing off while it keeps failing."""
        r = self.failed.get(path)
        if r is None:
            r = self.failed[path] = Retry(is_dir)
        else:
            r.tries += 1
        r.due = self.monotonic() + backoff(r.tries)
        if exc.errno not in self.causes:
            self.causes.add(exc.errno)
            self.log.warning("cannot %s: %s; retrying it, and every other read that fails so, until it works",
                             action or f"{'list' if is_dir else 'read'} {path}", PASSING_ERRNOS[exc.errno])

    def forget(self, path: str) -> None:
        self.failed.pop(path, None)

    def run(self, apply: Callable[[str, bool | None], set[str]]) -> set[str]:
        """``apply`` every path that is due. Returns what the applies return, joined."""
        changed: set[str] = set()
        now = self.monotonic()
        for path, r in list(self.failed.items()):
            if r.due <= now:
                tries = r.tries
                changed |= apply(path, r.is_dir)
                if self.failed.get(path) is r and r.tries == tries:
                    del self.failed[path]  # it worked (or failed for a lasting reason, logged as such)
        if self.causes and not self.failed:
            self.log.info("reads work again (after: %s); every read that had failed is done",
                          ", ".join(os.strerror(e) for e in sorted(self.causes)))
            self.causes.clear()
        return changed


def scandir(path: str, retries: Retries, warn: WarnOnce) -> list[os.DirEntry]:
    """The entries of directory ``path``; none when it is missing or cannot be listed (a passing
    failure is retried, another logged once)."""
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        if exc.errno in PASSING_ERRNOS:
            retries.later(path, True, exc)
        else:
            warn.warn((path, "dir"), "cannot list %s: %s; skipped", path, exc.strerror)
        return []
    warn.clear((path, "dir"))
    return entries


def is_dir(entry: os.DirEntry) -> bool:
    """A directory itself, not a link to one; False when that cannot be told."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
