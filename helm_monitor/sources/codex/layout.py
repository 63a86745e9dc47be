"""Where Codex keeps what helm-monitor reads, and what a changed path is.

``$CODEX_HOME`` (default ``~/.codex``) holds, among much else (SQLite files,
logs, skills, which are never read):

- ``sessions/YYYY/MM/DD/rollout-<local time>-<thread uuid>[_<suffix>].jsonl``
  (or ``.jsonl.zst`` once compressed): one thread's rollout;
- ``archived_sessions/rollout-….jsonl[.zst]``: archived threads, flat;
- ``session_index.jsonl``: thread names, append-only;
- ``thread-writer-locks/<thread id>.lock``: flocked while a process owns the thread.
"""

from __future__ import annotations

import enum
import os
import re
from typing import NamedTuple

SESSIONS = "sessions"
ARCHIVED = "archived_sessions"
LOCKS = "thread-writer-locks"
INDEX = "session_index.jsonl"
ZST = ".zst"

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# rollout-2026-12-01T06-18-28-<uuid>.jsonl; a reverted thread's file has a "_<rollout id>" suffix
ROLLOUT_NAME = re.compile(r"^rollout-(?:\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-)?(" + _UUID + r")(?:_[^/]*)?\.jsonl(?:\.zst)?$")
LOCK_NAME = re.compile(r"^(" + _UUID + r")\.lock$")
_DATE_PARTS = (re.compile(r"^\d{4}$"), re.compile(r"^\d{2}$"), re.compile(r"^\d{2}$"))


class Kind(enum.Enum):
    OTHER = 0
    ROOT = 1
    SESSIONS_DIR = 2  # sessions/ or any folder below it
    ARCHIVED_DIR = 3
    LOCKS_DIR = 4
    ROLLOUT = 5
    INDEX = 6
    LOCK = 7


class Info(NamedTuple):
    kind: Kind
    thread_id: str | None = None


class Layout:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.sessions = os.path.join(self.root, SESSIONS)
        self.archived = os.path.join(self.root, ARCHIVED)
        self.locks = os.path.join(self.root, LOCKS)
        self.index = os.path.join(self.root, INDEX)

    def lock_path(self, thread_id: str) -> str:
        return os.path.join(self.locks, thread_id + ".lock")

    def classify(self, path: str, is_dir: bool | None = None) -> Info:
        path = os.path.abspath(path)
        if path == self.root:
            return Info(Kind.ROOT)
        if path == self.index:
            return Info(Kind.INDEX)
        parent, name = os.path.split(path)
        if path == self.sessions:
            return Info(Kind.SESSIONS_DIR)
        if path.startswith(self.sessions + os.sep):
            m = ROLLOUT_NAME.match(name)
            if m is not None and is_dir is not True:
                return Info(Kind.ROLLOUT, m.group(1).lower())
            rel = os.path.relpath(path, self.sessions).split(os.sep)
            if is_dir is not False and len(rel) <= 3 and all(p.match(r) for p, r in zip(_DATE_PARTS, rel)):
                return Info(Kind.SESSIONS_DIR)
            return Info(Kind.OTHER)
        if path == self.archived:
            return Info(Kind.ARCHIVED_DIR)
        if parent == self.archived:
            m = ROLLOUT_NAME.match(name)
            return Info(Kind.ROLLOUT, m.group(1).lower()) if m and is_dir is not True else Info(Kind.OTHER)
        if path == self.locks:
            return Info(Kind.LOCKS_DIR)
        if parent == self.locks:
            m = LOCK_NAME.match(name)
            return Info(Kind.LOCK, m.group(1).lower()) if m and is_dir is not True else Info(Kind.OTHER)
        return Info(Kind.OTHER)

    def claims(self, path: str) -> bool:
        """Cheap: the root itself, the index, or anything under sessions/, archived_sessions/, the locks."""
        if path == self.root or path == self.index:
            return True
        for top in (self.sessions, self.archived, self.locks):
            if path == top or path.startswith(top + os.sep):
                return True
        return False


def plain_of(path: str) -> str:
    """The plain rollout a path stands for (``x.jsonl.zst`` -> ``x.jsonl``)."""
    return path[: -len(ZST)] if path.endswith(ZST) else path
