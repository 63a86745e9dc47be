"""Where things are in a Claude data directory, and what a path is.

See CLAUDE_CODE_FORMAT.md: ``projects/<key>/<session-id>.jsonl`` are the only
main transcripts; subagent transcripts live under ``<session-id>/subagents/``
(nested folders included); legacy sidechains are ``agent-*.jsonl`` at a
project's top level; ``sessions/<pid>.json`` is the live-process registry.
Secrets (``sessions/*.key``, ``ide/*.lock``) are never classified as anything
to read.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REGISTRY_RE = re.compile(r"^([0-9]{1,10})\.json$")


class Kind(enum.Enum):
    ROOT = "root"
    PROJECTS_DIR = "projects-dir"
    REGISTRY_DIR = "registry-dir"
    PROJECT_DIR = "project-dir"
    TRANSCRIPT = "transcript"  # projects/<key>/<id>.jsonl
    SESSION_DIR = "session-dir"  # projects/<key>/<id>/ and anything below that is a directory
    SUBAGENT = "subagent"  # projects/<key>/<id>/subagents/**/agent-*.jsonl
    LEGACY_SIDECHAIN = "legacy-sidechain"  # projects/<key>/agent-*.jsonl
    INDEX = "index"  # projects/<key>/sessions-index.json
    REGISTRY = "registry"  # sessions/<pid>.json
    OTHER = "other"


@dataclass(frozen=True)
class PathInfo:
    kind: Kind
    project: str | None = None  # the directory name under projects/
    session_id: str | None = None  # the session the path belongs to
    pid: int | None = None


OTHER = PathInfo(Kind.OTHER)
_KNOWN_MAX = 1 << 17


def is_valid_session_id(value: str) -> bool:
    """Session ids are UUIDs; accept any safe file-name token, nothing with a path in it."""
    return bool(SESSION_ID_RE.match(value)) and ".." not in value


class Layout:
    """Paths of one Claude data directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.abspath(os.fspath(root))
        self.projects = os.path.join(self.root, "projects")
        self.registry = os.path.join(self.root, "sessions")
        # classify(path) of paths met without the watcher's word (a first scan asks several times a file)
        self._known: dict[str, PathInfo] = {}

    def transcript_path(self, project: str, session_id: str) -> str:
        return os.path.join(self.projects, project, session_id + ".jsonl")

    def classify(self, path: str, is_dir: bool | None = None) -> PathInfo:
        """What ``path`` is (from its name alone). ``is_dir`` is the watcher's word for it when known."""
        if is_dir is None:
            info = self._known.get(path)
            if info is None:
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()
                info = self._known[path] = self._classify(path, None)
            return info
        return self._classify(path, is_dir)

    def _classify(self, path: str, is_dir: bool | None) -> PathInfo:
        path = os.path.abspath(path)
        if path == self.root:
            return PathInfo(Kind.ROOT)
        if path == self.projects:
            return PathInfo(Kind.PROJECTS_DIR)
        if path == self.registry:
            return PathInfo(Kind.REGISTRY_DIR)
        if path.startswith(self.registry + os.sep):
            name = path[len(self.registry) + 1:]
            m = _REGISTRY_RE.match(name)
            if m and not is_dir:
                return PathInfo(Kind.REGISTRY, pid=int(m.group(1)))
            return OTHER
        if not path.startswith(self.projects + os.sep):
            return OTHER
        parts = path[len(self.projects) + 1:].split(os.sep)
        project = parts[0]
        if len(parts) == 1:
            return PathInfo(Kind.PROJECT_DIR, project) if is_dir is not False else OTHER
        name = parts[1]
        if len(parts) == 2:
            if name.endswith(".jsonl") and not is_dir:
                stem = name[:-6]
                if stem.startswith("agent-"):
                    return PathInfo(Kind.LEGACY_SIDECHAIN, project)
                if is_valid_session_id(stem):
                    return PathInfo(Kind.TRANSCRIPT, project, stem)
                return OTHER
            if name == "sessions-index.json" and not is_dir:
                return PathInfo(Kind.INDEX, project)
            if is_dir is not False and is_valid_session_id(name) and not name.endswith(".jsonl"):
                return PathInfo(Kind.SESSION_DIR, project, name)
            return OTHER
        session_id = name
        if not is_valid_session_id(session_id):
            return OTHER
        # Below <session-id>/ only subagents/ (and folders nested in it) hold transcripts.
        if parts[2] != "subagents":
            return OTHER
        leaf = parts[-1]
        if len(parts) >= 4 and not is_dir and leaf.startswith("agent-") and leaf.endswith(".jsonl"):
            return PathInfo(Kind.SUBAGENT, project, session_id)
        if is_dir or (is_dir is None and "." not in leaf):
            return PathInfo(Kind.SESSION_DIR, project, session_id)
        return OTHER  # .meta.json, journal.jsonl and the like


def decode_project_dir(name: str) -> str:
    """A best guess at the working directory a project folder was named after.

    The encoding is lossy (every non-alphanumeric character became ``-``), so
    this is used only when no record gives the real ``cwd``.
    """
    if name.startswith("-"):
        return "/" + name[1:].replace("-", "/")
    return name.replace("-", "/")
