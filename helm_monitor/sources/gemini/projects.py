"""Where a Gemini project folder's sessions work: the project path of ``tmp/<slug>/``.

``tmp/<slug>/.project_root`` holds it (0.29+); else ``projects.json`` maps
paths to slugs; a pre-0.29 folder is named by the sha256 of the path (the
chats' ``projectHash``), found again through the paths ``projects.json`` names.
Mixed into :class:`~helm_monitor.sources.gemini.source.GeminiSource`.
"""

from __future__ import annotations

import hashlib
import os

import orjson

from helm_monitor.sources.base import PASSING_ERRNOS
from helm_monitor.sources.gemini.chatfile import ChatFile


class ProjectsMixin:
    def _load_project_root(self, slug: str) -> bool:
        path = os.path.join(self.tmp, slug, ".project_root")
        try:
            with open(path, "rb") as f:
                raw = f.read(64 * 1024)
            value = raw.decode("utf-8", "surrogateescape").rstrip("\r\n") or None
            self._warn.clear((path, "read"))
        except (FileNotFoundError, NotADirectoryError):
            value = None
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
                return False
            self._warn.warn((path, "read"), "cannot read %s: %s; the project path comes from projects.json",
                            path, exc.strerror)
            value = None
        old = self._slug_roots.get(slug, ...)
        self._slug_roots[slug] = value
        return old != value

    def _apply_project_root(self, slug: str) -> set[str]:
        if not self._load_project_root(slug):
            return set()
        return set(self._sids_of_slug(slug))

    def _apply_projects(self) -> set[str]:
        registry: dict[str, str] = {}
        try:
            with open(self.projects_json, "rb") as f:
                doc = orjson.loads(f.read(16 * 1024 * 1024))
            projects = doc.get("projects") if isinstance(doc, dict) else None
            if isinstance(projects, dict):
                registry = {slug: p for p, slug in projects.items() if isinstance(slug, str) and isinstance(p, str)}
            self._warn.clear((self.projects_json, "read"))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, orjson.JSONDecodeError) as exc:
            if isinstance(exc, OSError) and exc.errno in PASSING_ERRNOS:
                self._later(self.projects_json, False, exc)
                return set()
            # Saved by temp file + rename, so a half-written one is corrupt: what was known stays.
            self._warn.warn((self.projects_json, "read"), "ignoring unusable %s: %s", self.projects_json, exc)
            return set()
        if registry == self._registry:
            return set()
        old = self._registry
        self._registry = registry
        self._hashes = {hashlib.sha256(p.encode("utf-8", "surrogateescape")).hexdigest(): p
                        for p in registry.values()}
        slugs = {s for s in set(old) | set(registry) if old.get(s) != registry.get(s)}
        ids = set()
        for s in slugs:
            ids |= self._sids_of_slug(s)
        # pre-0.29 hash folders are named by projectHash: their path may have just become known
        ids |= {sid for s, sids in self._slug_index().items() if len(s) == 64 for sid in sids}
        return ids

    def _slug_project(self, slug: str) -> str | None:
        if slug not in self._slug_roots:
            self._load_project_root(slug)
        return self._slug_roots.get(slug) or self._registry.get(slug) or self._hashes.get(slug)

    def _project_path(self, slug: str, f: ChatFile) -> str | None:
        return self._slug_project(slug) or self._hashes.get(f.state.project_hash or "")

    def _realpath(self, project: str) -> str:
        real = self._real.get(project)
        if real is None:
            real = self._real[project] = os.path.realpath(project)
        return real

