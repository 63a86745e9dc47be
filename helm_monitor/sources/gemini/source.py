"""Gemini CLI's data directory (``~/.gemini``) as a set of sessions, kept up to date path by path.

Layout (Gemini CLI 0.29+; AGENTS_FORMAT.md section 3)::

    projects.json                          {"projects": {"<project path>": "<slug>"}}
    tmp/<slug>/.project_root               the project path
    tmp/<slug>/chats/session-<minute>-<id8>.jsonl   one session (several files may share an id)
    tmp/<slug>/chats/session-….json        legacy whole-file chat (before 0.39)
    tmp/<slug>/chats/<parent id>/<id>.jsonl         a sub-agent's chat: counted, not listed

A session is the set of chat files whose metadata names one ``sessionId``
(a resume in a later minute leaves a stub file of the same id beside the real
one): the file with the most content gives the fields, sizes add up. Files
vanish as a matter of course (the CLI's start-up cleanup deletes whole
sessions): a file gone is forgotten, not an error.

Status: ``busy`` while the session's latest message awaits a reply (a prompt,
a tool result, or tool calls still scheduled, executing or awaiting approval)
and either a Gemini CLI instance works in its project or the file was written
in the last ``recent_write_s`` seconds; else ``idle`` while one does; else
``ended``. An instance cannot be tied to one session (nothing on disk says
which it runs), so with k instances in a project only its k most recently
written sessions count as theirs; ``pid`` stays null.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Callable, Iterator

from helm_monitor.sources.base import STEADY_CLOCK, UNTITLED, Source, Watch, WarnOnce, base_session
from helm_monitor.sources.base import PASSING_ERRNOS, iso_from_epoch
from helm_monitor.sources.pages import Recent
from helm_monitor.sources.retry import Retries, is_dir, scandir
from helm_monitor.sources.gemini.chatfile import LEGACY_MAX_BYTES, ChatFile
from helm_monitor.sources.gemini.conversation import ChatConversation
from helm_monitor.sources.gemini.liveness import LivenessMixin
from helm_monitor.sources.gemini.projects import ProjectsMixin
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts, tier_of

log = logging.getLogger(__name__)

# Awaiting a reply with no Gemini CLI seen in the project: busy this long after the last write
# (the process scan lags, or runs as another user whose cwd cannot be read), then ended.
RECENT_WRITE_S = 30.0
PROC_SCAN_S = 2.5  # /proc is scanned at most this often

ROOT, PROJECTS, TMP, SLUG, PROJECT_ROOT, CHATS, CHAT, SUB_DIR, SUB, OTHER = range(10)


def _is_chat_name(name: str) -> bool:
    return name.startswith("session-") and (name.endswith(".jsonl") or name.endswith(".json"))


class GeminiSource(ProjectsMixin, LivenessMixin, Source):
    name = "gemini"

    def __init__(self, root: str, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = STEADY_CLOCK, proc_root: str = "/proc",
                 recent_write_s: float = RECENT_WRITE_S, proc_scan_s: float = PROC_SCAN_S,
                 legacy_max_bytes: int = LEGACY_MAX_BYTES):
        super().__init__(os.path.abspath(root), clock=clock, monotonic=monotonic, proc_root=proc_root)
        self.tmp = os.path.join(self.root, "tmp")
        self.projects_json = os.path.join(self.root, "projects.json")
        self.recent_write_s = recent_write_s
        self.proc_scan_s = proc_scan_s
        self.legacy_max_bytes = legacy_max_bytes
        self._warn = WarnOnce(log)
        self._files: dict[str, ChatFile] = {}
        self._by_id: dict[str, set[str]] = {}
        self._path_sid: dict[str, str] = {}  # read by session_for_path from the watcher's thread
        self._primary: dict[str, str] = {}  # session id -> path of its main file (read by request threads)
        self._subagents: dict[str, set[str]] = {}  # parent session id -> sub-agent chat paths
        self._sub_files: dict[str, ChatFile] = {}  # sub-agent chat path -> its reader (for its usage)
        self._usage: dict[str, tuple[tuple, UsageFacts]] = {}  # session id -> (combined from, facts)
        self._slug_roots: dict[str, str | None] = {}  # slug -> .project_root contents (None: none)
        self._registry: dict[str, str] = {}  # slug -> project path, from projects.json
        self._hashes: dict[str, str] = {}  # sha256 of a project path -> the path (pre-0.29 hash folders)
        self._real: dict[str, str] = {}  # project path -> its realpath
        self._slug_sids: dict[str, set[str]] | None = None
        self._awaiting: set[str] = set()
        self._reported: dict[str, str] = {}  # session id -> status last built
        self._instances: dict[str, int] = {}
        self._scanned_at: float | None = None
        self._retries = Retries(self.monotonic, log)
        self._conversations = Recent(ChatConversation, 8)
        # Chat files of a saved state (helm_monitor.sources.gemini.state), used when their path is applied.
        self._restored: dict[str, ChatFile] = {}
        self._restored_subs: dict[str, ChatFile] = {}

    # ---------------------------------------------------------------- layout
    def watches(self) -> list[Watch]:
        return [Watch(self.root, False), Watch(self.tmp, True)]

    def _classify(self, path: str, is_dir: bool | None = None) -> tuple[int, list[str]]:
        path = os.path.normpath(path)
        if path == self.root:
            return ROOT, []
        if not path.startswith(self.root + os.sep):
            return OTHER, []
        parts = path[len(self.root) + 1:].split(os.sep)
        n = len(parts)
        if n == 1:
            return (PROJECTS if parts[0] == "projects.json" else TMP if parts[0] == "tmp" else OTHER), parts
        if parts[0] != "tmp":
            return OTHER, parts
        if n == 2:
            return SLUG, parts
        if n == 3:
            return {".project_root": PROJECT_ROOT, "chats": CHATS}.get(parts[2], OTHER), parts
        if parts[2] != "chats":
            return OTHER, parts
        if n == 4:
            if _is_chat_name(parts[3]) and is_dir is not True:
                return CHAT, parts
            if is_dir is not False and not parts[3].endswith((".jsonl", ".json")) and "." not in parts[3][:1]:
                return SUB_DIR, parts
            return OTHER, parts
        if n == 5 and parts[4].endswith(".jsonl") and is_dir is not True:
            return SUB, parts
        return OTHER, parts

    def session_for_path(self, path: str, is_dir: bool | None = None) -> str | None:
        kind, parts = self._classify(path, is_dir)
        if kind == CHAT:
            return self._path_sid.get(os.path.normpath(path))
        if kind in (SUB, SUB_DIR):
            return parts[3]
        return None

    # ---------------------------------------------------------------- listing
    def iter_paths(self) -> Iterator[str]:
        for entry in self._scandir(self.root):
            if entry.name == "projects.json":
                yield entry.path
        yield from self._walk(self.tmp, TMP)

    def _walk(self, path: str, kind: int) -> Iterator[str]:
        if kind == TMP:
            for entry in self._scandir(path):
                if self._is_dir(entry):
                    yield from self._walk(entry.path, SLUG)
        elif kind == SLUG:
            for entry in self._scandir(path):
                if entry.name == ".project_root":
                    yield entry.path
            yield from self._walk(os.path.join(path, "chats"), CHATS)
        elif kind == CHATS:
            subdirs = []
            for entry in self._scandir(path):
                if _is_chat_name(entry.name):
                    yield entry.path
                elif self._is_dir(entry):
                    subdirs.append(entry.path)
            for d in subdirs:
                yield from self._walk(d, SUB_DIR)
        elif kind == SUB_DIR:
            for entry in self._scandir(path):
                if entry.name.endswith(".jsonl"):
                    yield entry.path

    def _scandir(self, path: str) -> list[os.DirEntry]:
        return scandir(path, self._retries, self._warn)

    _is_dir = staticmethod(is_dir)

    def known_paths(self) -> set[str]:
        known = set(self._files)
        for paths in self._subagents.values():
            known |= paths
        known |= {os.path.join(self.tmp, s, ".project_root") for s, v in self._slug_roots.items() if v}
        if self._registry:
            known.add(self.projects_json)
        return known

    # ---------------------------------------------------------------- changes
    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        path = os.path.normpath(path)
        kind, parts = self._classify(path, is_dir)
        if kind == CHAT:
            return self._apply_chat(path, parts[1])
        if kind == SUB:
            return self._apply_subagent(path, parts[3])
        if kind == PROJECT_ROOT:
            return self._apply_project_root(parts[1])
        if kind == PROJECTS:
            return self._apply_projects()
        if kind == ROOT:
            return self.full_scan()
        if kind in (TMP, SLUG, CHATS, SUB_DIR):
            return self._apply_dir(path, kind)
        return set()

    def _apply_dir(self, path: str, kind: int) -> set[str]:
        """A directory appeared, went or moved: reconcile everything below it."""
        below = [p for p in self.known_paths() if p.startswith(path + os.sep)]
        return self.reconcile(self._walk(path, kind) if os.path.isdir(path) else (), below)

    def _apply_chat(self, path: str, slug: str) -> set[str]:
        f = self._files.get(path)
        new = f is None
        if new:
            f = self._restored.pop(path, None) or ChatFile(path, slug, self._warn, self.legacy_max_bytes)
        old_sid = f.session_id
        try:
            changed = f.update()
        except OSError as exc:
            return self._read_failed(path, exc, new)
        self._warn.clear((path, "read"))
        now = self.monotonic()
        if changed or f.changed_at is None:
            # The file's age by the wall clock, measured on the monotonic one (see claude/catalog.py).
            f.changed_at = now - max(0.0, self.clock() - f.mtime)
            if changed and f.read_at is not None:
                f.changed_at = max(f.changed_at, f.read_at)
        f.read_at = now
        if new:
            self._files[path] = f
        sid = f.session_id
        ids: set[str] = set()
        if new or sid != old_sid:
            if old_sid is not None and not new:
                self._unlink(path, old_sid)
                ids.add(old_sid)
            if sid is not None:
                self._by_id.setdefault(sid, set()).add(path)
                self._path_sid[path] = sid
                ids.add(sid)
            self._slug_sids = None
        elif changed and sid is not None:
            ids.add(sid)
        for i in ids:
            self._refresh(i)
        return ids

    def _read_failed(self, path: str, exc: OSError, new: bool) -> set[str]:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return set() if new else self._forget(path)  # deleted (the CLI's cleanup): not an error
        if exc.errno == errno.ELOOP:
            self._warn.warn((path, "read"), "%s is a symbolic link; not followed, skipped", path)
            return set() if new else self._forget(path)
        if exc.errno in PASSING_ERRNOS:
            self._later(path, False, exc)
            return set()
        self._warn.warn((path, "read"), "cannot read %s: %s; skipped", path, exc.strerror or exc)
        return set()

    def _unlink(self, path: str, sid: str) -> None:
        paths = self._by_id.get(sid)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self._by_id[sid]
        self._path_sid.pop(path, None)
        self._slug_sids = None

    def _forget(self, path: str) -> set[str]:
        f = self._files.pop(path, None)
        self._retries.forget(path)
        self._warn.clear_prefix(path)
        self._conversations.forget(path)
        if f is None or f.session_id is None:
            return set()
        sid = f.session_id
        self._unlink(path, sid)
        self._refresh(sid)
        return {sid}

    def _refresh(self, sid: str) -> None:
        """After a change of one of the session's files: its main file and whether it awaits a reply."""
        main = self._main(sid)
        if main is None:
            self._usage.pop(sid, None)
            self._primary.pop(sid, None)
            self._awaiting.discard(sid)
            self._reported.pop(sid, None)
            return
        self._primary[sid] = main.path
        if main.state.derived()[3]:
            self._awaiting.add(sid)
        else:
            self._awaiting.discard(sid)

    def _main(self, sid: str) -> ChatFile | None:
        paths = self._by_id.get(sid)
        if not paths:
            return None
        files = [self._files[p] for p in paths]
        if len(files) == 1:
            return files[0]
        # The stub a resume leaves beside the real file has no content: the fullest file wins.
        return max(files, key=lambda f: (f.state.has_content, f.state.prompts + f.state.replies,
                                         len(f.state.messages), f.mtime, f.path))

    def _apply_subagent(self, path: str, parent: str) -> set[str]:
        paths = self._subagents.setdefault(parent, set())
        before = path in paths
        try:
            exists = os.path.isfile(path) and not os.path.islink(path)
        except OSError:
            exists = before
        used = self._read_subagent(path, exists)
        if exists:
            paths.add(path)
        else:
            paths.discard(path)
        if not paths:
            del self._subagents[parent]
        return {parent} if (exists != before or used) and parent in self._by_id else set()

    def _read_subagent(self, path: str, exists: bool) -> bool:
        """Read a sub-agent's chat for its usage (its requests count in the parent's, SPEC 10).
        Returns whether its usage facts changed."""
        f = self._sub_files.get(path)
        mark = None if f is None else f.state.u_version
        if exists:
            if f is None:
                f = self._restored_subs.pop(path, None) or ChatFile(path, self._classify(path, False)[1][1],
                                                                    self._warn, self.legacy_max_bytes)
            try:
                f.update()
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    if exc.errno in PASSING_ERRNOS:
                        self._later(path, False, exc)
                    else:
                        self._warn.warn((path, "read"), "cannot read %s: %s; its usage is not counted", path,
                                        exc.strerror or exc)
                    return False  # what was known stays
                exists = False
            else:
                self._warn.clear((path, "read"))
                self._sub_files[path] = f
        if not exists:
            f = self._sub_files.pop(path, None)
            self._warn.clear_prefix(path)
            return f is not None and bool(f.state.facts)
        return f.state.u_version != mark

    def _slug_index(self) -> dict[str, set[str]]:
        if self._slug_sids is None:
            index: dict[str, set[str]] = {}
            for sid, paths in self._by_id.items():
                for p in paths:
                    index.setdefault(self._files[p].slug, set()).add(sid)
            self._slug_sids = index
        return self._slug_sids

    def _sids_of_slug(self, slug: str) -> set[str]:
        return set(self._slug_index().get(slug, ()))

    # ---------------------------------------------------------------- retries
    @property
    def needs_retry(self) -> bool:
        return bool(self._retries)

    def retry(self) -> set[str]:
        return self._retries.run(self.apply)

    def _later(self, path: str, is_dir: bool | None, exc: OSError) -> None:
        self._retries.later(path, is_dir, exc)

    # ---------------------------------------------------------------- answers
    def session_ids(self) -> set[str]:
        return set(self._by_id)

    def session(self, session_id: str) -> dict | None:
        main = self._main(session_id)
        if main is None:
            return None
        if self._scanned_at is None:
            self._scan(force=True)
        files = [self._files[p] for p in self._by_id[session_id]]
        st = main.state
        first, last, model, _ = st.derived()
        project = self._project_path(main.slug, main)
        s = base_session(self.name, session_id)
        created = [f.state.start_time or f.state.first_ts for f in files if f.state.start_time or f.state.first_ts]
        updated = [f.state.last_updated for f in files if f.state.last_updated]
        status = self._status(session_id, main, project)
        self._reported[session_id] = status
        s.update({
            "projectPath": project,
            "projectDir": main.slug,
            "title": st.title or UNTITLED,
            "firstPrompt": first,
            "lastPrompt": last,
            "messageCount": st.prompts + st.replies,
            "createdAt": min(created) if created else iso_from_epoch(min(main.ctime, main.mtime) or main.mtime),
            "updatedAt": max(updated) if updated else iso_from_epoch(main.mtime),
            "model": model,
            "tokens": {"input": st.tokens[0], "output": st.tokens[1], "cacheRead": st.tokens[2], "cacheCreation": 0},
            "status": status,
            "subagentCount": len(self._subagents.get(session_id, ())),
            "sizeBytes": sum(f.size for f in files),
            "cost": pricing.session_cost(self.usage(session_id), self.name),
        })
        return s

    def usage(self, session_id: str) -> UsageFacts | None:
        """The session's usage (SPEC 10): the replies of its chat files (a reply found in two files
        of the session, as a resume or a legacy file's conversion copies them, counts once) and of
        its sub-agents' chats. Combined again only when one of those files' facts changed."""
        paths = self._by_id.get(session_id)
        if not paths:
            self._usage.pop(session_id, None)
            return None
        # the file with the most replies first: the others' replies it holds are not added again
        files = sorted((self._files[p] for p in paths), key=lambda f: (-len(f.state.usage), f.path))
        subs = [self._sub_files[p] for p in sorted(self._subagents.get(session_id, ())) if p in self._sub_files]
        if len(files) == 1 and not subs:
            return files[0].state.facts
        mark = tuple((f.path, f.state.u_version) for f in files + subs)
        cached = self._usage.get(session_id)
        if cached is not None and cached[0] == mark:
            return cached[1]
        facts = UsageFacts()
        seen: dict[str, tuple] = {}
        for f in files:
            facts.merge(f.state.facts)
            for mid, used in f.state.usage.items():
                if mid in seen:
                    tokens, model, at = used
                    if at is not None:  # counted with the file that holds it already
                        facts.add(at, model or "", (tokens[0], tokens[1], tokens[2], 0, 0),
                                  tier=tier_of(tokens[0] + tokens[2]), sign=-1)
                else:
                    seen[mid] = used
        for f in subs:
            facts.merge(f.state.facts)
        self._usage[session_id] = (mark, facts)
        return facts

    def conversation(self, session_id: str):
        path = self._primary.get(session_id)
        return None if path is None else self._conversations.get(path)

    # ---------------------------------------------------------------- parse state
    def export_state(self, paths=None) -> dict | None:
        from helm_monitor.sources.gemini import state
        return state.export_state(self, paths)

    def scan_cost(self, path: str, size: int) -> int:
        """Chat files are what costs; one read before (restored, or known) is left to this process."""
        path = os.path.normpath(path)
        kind = self._classify(path, False)[0]
        if kind == SUB:
            return 0 if path in self._sub_files or path in self._restored_subs else size
        if kind != CHAT:
            return 0
        return 0 if path in self._files or path in self._restored else size

    def restore_state(self, data) -> int:
        from helm_monitor.sources.gemini import state
        return state.restore_state(self, data)

    def is_chat_of(self, path: str, slug: str) -> bool:
        """``path`` is a chat file of this root, in project folder ``slug``."""
        kind, parts = self._classify(path, False)
        return kind == CHAT and path == os.path.normpath(path) and parts[1] == slug

    def is_subagent_chat_of(self, path: str, slug: str) -> bool:
        """``path`` is a sub-agent's chat file of this root, in project folder ``slug``."""
        kind, parts = self._classify(path, False)
        return kind == SUB and path == os.path.normpath(path) and parts[1] == slug

    def offer_restored(self, path: str, f: ChatFile) -> None:
        self._restored[path] = f

    def offer_restored_sub(self, path: str, f: ChatFile) -> None:
        self._restored_subs[path] = f

    def drop_restored(self) -> None:
        self._restored.clear()
        self._restored_subs.clear()

    @property
    def bytes_read(self) -> int:
        """Bytes read from chat files (sub-agents' too) so far (tests check what a change costs)."""
        return sum(f.bytes_read for f in self._files.values()) + sum(f.bytes_read for f in self._sub_files.values())
