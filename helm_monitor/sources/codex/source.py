"""Codex CLI threads as sessions (SPEC 8), kept up to date path by path.

Change detection: rollouts are followed from their last offset (a compressed
one is read once per inode/size/mtime); ``session_index.jsonl`` likewise.
One thread may span several physical rollouts (same thread id): they are
merged, never double counted. Status comes from
``thread-writer-locks/<id>.lock``: its flock holder is read from
``/proc/locks`` (never by taking the lock), ``busy`` while the thread's latest
turn has not ended, else ``waiting``; no lock file or no holder: ``ended``.

One caller at a time (the live layer's pump), except :meth:`claims` and
:meth:`session_for_path` (lookups only) and conversations (own state, own lock).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Iterator

from helm_monitor.sources.base import UNTITLED, Source, Watch, WarnOnce, base_session
from helm_monitor.sources.base import PASSING_ERRNOS
from helm_monitor.sources.codex import records as R
from helm_monitor.sources.codex.conversation import Conversation
from helm_monitor.sources.codex.layout import LOCK_NAME, ROLLOUT_NAME, Kind, Layout, plain_of
from helm_monitor.sources.codex.rollout import RolloutFile
from helm_monitor.sources.jsonl import JsonlFollower
from helm_monitor.sources.pages import Recent
from helm_monitor.sources.proc import file_id, flock_holders
from helm_monitor.sources.retry import Retries, is_dir as _is_dir, scandir
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts

log = logging.getLogger(__name__)
NAME_MAX = 200
CONVERSATIONS_KEPT = 8


class CodexSource(Source):
    name = "codex"

    def __init__(self, root: str, **kw):
        super().__init__(os.path.abspath(root), **kw)
        self.layout = Layout(self.root)
        self._files: dict[str, RolloutFile] = {}  # plain path -> reader (of the plain or the .zst file)
        self._file_thread: dict[str, str] = {}  # plain path -> thread id
        self._threads: dict[str, set[str]] = {}  # thread id -> plain paths
        self._parent: dict[str, str] = {}  # thread id -> the thread that spawned it
        self._children: dict[str, set[str]] = {}
        self._index = JsonlFollower(self.layout.index)
        self._index_read = False
        self._names: dict[str, str] = {}  # thread id -> masked thread name
        self._locks: dict[str, tuple[int, int, int]] = {}  # thread id -> (major, minor, inode) of its lock file
        self._holders: dict[tuple[int, int, int], int] = {}
        self._holders_by_inode: dict[int, int | None] = {}
        self._retries = Retries(self.monotonic, log)
        self._warn = WarnOnce(log)
        self._conversations: Recent[str, Conversation] = Recent(lambda tid: Conversation([]), CONVERSATIONS_KEPT)
        # session id -> (what its facts were combined from, the facts): see usage()
        self._usage: dict[str, tuple[tuple, UsageFacts]] = {}
        # Saved state (helm_monitor.sources.codex.state), used when its path is applied.
        self._restored: dict[str, RolloutFile] = {}  # plain path -> reader
        self._restored_index: tuple[JsonlFollower, dict[str, str]] | None = None

    # ------------------------------------------------------------ watching
    def watches(self) -> list[Watch]:
        lay = self.layout
        return [Watch(lay.root, False), Watch(lay.sessions, True), Watch(lay.archived, False), Watch(lay.locks, False)]

    def claims(self, path: str) -> bool:
        return self.layout.claims(path)

    def session_for_path(self, path: str, is_dir: bool | None = None) -> str | None:
        info = self.layout.classify(path, is_dir)
        if info.kind is Kind.ROLLOUT:
            return self._file_thread.get(plain_of(os.path.abspath(path))) or info.thread_id
        if info.kind is Kind.LOCK:
            return info.thread_id
        return None

    # ------------------------------------------------------------ scanning
    def iter_paths(self) -> Iterator[str]:
        if os.path.lexists(self.layout.index):
            yield self.layout.index
        for entry in self._scandir(self.layout.locks):
            if LOCK_NAME.match(entry.name):
                yield entry.path
        yield from self._walk(self.layout.sessions)
        yield from self._walk(self.layout.archived)

    def _walk(self, top: str) -> Iterator[str]:
        stack = [top]
        while stack:
            d = stack.pop()
            for entry in self._scandir(d):
                if ROLLOUT_NAME.match(entry.name):
                    yield entry.path
                elif d != self.layout.archived and self.layout.classify(entry.path, True).kind is Kind.SESSIONS_DIR \
                        and _is_dir(entry):
                    stack.append(entry.path)

    def _scandir(self, path: str) -> list[os.DirEntry]:
        return scandir(path, self._retries, self._warn)

    def known_paths(self) -> set[str]:
        known = {f.path for f in self._files.values()} | {self.layout.lock_path(t) for t in self._locks}
        if self._index_read:
            known.add(self.layout.index)
        return known

    # ------------------------------------------------------------ changes
    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        path = os.path.abspath(path)
        info = self.layout.classify(path, is_dir)
        kind = info.kind
        if kind is Kind.ROLLOUT:
            return self._apply_rollout(plain_of(path), info.thread_id)
        if kind is Kind.LOCK:
            return self._apply_lock(info.thread_id, path)
        if kind is Kind.INDEX:
            return self._apply_index()
        if kind is Kind.ROOT:
            return self.full_scan()
        if kind in (Kind.SESSIONS_DIR, Kind.ARCHIVED_DIR, Kind.LOCKS_DIR):
            return self._apply_dir(path, kind)
        return set()

    def _apply_dir(self, path: str, kind: Kind) -> set[str]:
        if kind is Kind.LOCKS_DIR:
            present = [e.path for e in self._scandir(path) if LOCK_NAME.match(e.name)]
        else:
            present = list(self._walk(path))
        changed: set[str] = set()
        for p in present:
            changed |= self.apply(p)
        seen = set(present) | {plain_of(p) for p in present}
        for p in self.known_paths():
            if p.startswith(path + os.sep) and p not in seen and plain_of(p) not in seen:
                changed |= self.apply(p)
        return changed

    def _file_warner(self, path: str):
        def warn(kind: str, detail: str) -> None:
            key = ("unknown-type", detail) if kind == "unknown-type" else (path, kind)
            self._warn.warn(key, "codex rollout %s: %s; skipped", path, detail)
        return warn

    def _apply_rollout(self, plain: str, name_id: str) -> set[str]:
        old = self._files.get(plain) or self._restored.pop(plain, None)
        before = _usage_mark(self._files.get(plain))
        changed = self._apply_rollout_file(plain, name_id, old)
        if _usage_mark(self._files.get(plain)) != before:
            # a sub-agent's requests count in the session that spawned it (SPEC 10)
            tid = self._file_thread.get(plain) or name_id
            changed |= self._ancestors(tid)
        return changed

    def _ancestors(self, tid: str) -> set[str]:
        """The listed sessions whose usage includes thread ``tid``'s (its root ancestor)."""
        seen = {tid}
        while tid in self._parent:
            tid = self._parent[tid]
            if tid in seen:
                return set()  # a cycle of parents (edited files): no listed root
            seen.add(tid)
        return {tid} if len(seen) > 1 and tid in self._threads else set()

    def _apply_rollout_file(self, plain: str, name_id: str, old: RolloutFile | None) -> set[str]:
        for candidate in (plain, plain + ".zst"):
            reader = old if old is not None and old.path == candidate else RolloutFile(candidate,
                                                                                         self._file_warner(candidate))
            try:
                changed = reader.update()
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    continue
                if exc.errno in PASSING_ERRNOS:
                    self._later(plain, False, exc)
                    return set()
                what = "is a symbolic link; not followed" if exc.errno == errno.ELOOP else \
                    "is not a regular file" if isinstance(exc, IsADirectoryError) else f"cannot be read: {exc.strerror}"
                self._warn.warn((candidate, "read"), "codex rollout %s %s; skipped", candidate, what)
                if exc.errno == errno.ELOOP or isinstance(exc, IsADirectoryError):
                    continue
                return set()  # what was known stays (a permission fixed later brings the rest)
            self._warn.clear((candidate, "read"))
            if old is not None and reader is not old:
                self._warn.clear_prefix(old.path)
            return self._settle(plain, reader, changed or reader is not old, name_id)
        return self._forget_file(plain)

    def _settle(self, plain: str, reader: RolloutFile, changed: bool, name_id: str) -> set[str]:
        tid = reader.stats.meta_id or name_id
        old_tid = self._file_thread.get(plain)
        out: set[str] = set()
        self._files[plain] = reader
        if old_tid != tid:
            if old_tid is not None:
                out |= self._unlink_file(plain, old_tid)
            self._file_thread[plain] = tid
            self._threads.setdefault(tid, set()).add(plain)
            changed = True
        if changed:
            out.add(tid)
            out |= self._relink(tid)
        return out

    def _unlink_file(self, plain: str, tid: str) -> set[str]:
        paths = self._threads.get(tid, set())
        paths.discard(plain)
        if not paths:
            self._threads.pop(tid, None)
            self._usage.pop(tid, None)
        return {tid} | self._relink(tid)

    def _forget_file(self, plain: str) -> set[str]:
        reader = self._files.pop(plain, None)
        if reader is not None:
            self._warn.clear_prefix(reader.path)
        tid = self._file_thread.pop(plain, None)
        if tid is None:
            return set()
        return self._unlink_file(plain, tid) | self._ancestors(tid)

    def _relink(self, tid: str) -> set[str]:
        """Bring the parent link of ``tid`` up to date; returns the parents whose subagentCount changed."""
        parent = None
        for p in sorted(self._threads.get(tid, ())):
            parent = parent or self._files[p].stats.parent
        old = self._parent.get(tid)
        if parent == old:
            return set()
        if old is not None:
            self._children.get(old, set()).discard(tid)
            if not self._children.get(old):
                self._children.pop(old, None)
        if parent is None:
            self._parent.pop(tid, None)
        else:
            self._parent[tid] = parent
            self._children.setdefault(parent, set()).add(tid)
        return {p for p in (old, parent) if p is not None and p in self._threads}

    def _apply_index(self) -> set[str]:
        if not self._index_read and self._restored_index is not None:
            self._index, names = self._restored_index
            self._names.update(names)
            self._restored_index = None
        before = dict(self._names)
        try:
            self._index.read(self._index_line, self._names.clear)
            self._index_read = True
            self._warn.clear((self.layout.index, "read"))
        except (FileNotFoundError, NotADirectoryError):
            self._index, self._index_read = JsonlFollower(self.layout.index), False
            self._names.clear()
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(self.layout.index, False, exc)
            else:
                self._warn.warn((self.layout.index, "read"), "cannot read %s: %s; thread names not shown",
                                self.layout.index, exc.strerror)
            return set()
        ids = {i for i in set(before) | set(self._names) if before.get(i) != self._names.get(i)}
        return ids & set(self._threads)

    def _index_line(self, line: bytes) -> None:
        try:
            rec = R.parse(line)
        except R.BadLine:
            rec = None
        if not isinstance(rec, dict) or not R.str_or_none(rec.get("id")):
            self._warn.warn((self.layout.index, "bad"), "%s: a line is not a thread name record; skipped",
                            self.layout.index)
            return
        tid, name = rec["id"].lower(), R.str_or_none(rec.get("thread_name"))
        shown = R.collapse(R.masked(name), NAME_MAX) if name and name.strip() else None
        if shown:
            self._names[tid] = shown
        else:
            self._names.pop(tid, None)  # a name cleared

    # ------------------------------------------------------------ status
    def _apply_lock(self, tid: str, path: str) -> set[str]:
        try:
            st = os.stat(path, follow_symlinks=False)
            fid = file_id(st) if stat.S_ISREG(st.st_mode) else None
        except (FileNotFoundError, NotADirectoryError):
            fid = None
        except OSError as exc:
            if exc.errno in PASSING_ERRNOS:
                self._later(path, False, exc)
                return set()
            self._warn.warn((path, "lock"), "cannot stat %s: %s", path, exc.strerror)
            fid = None
        before = self._status(tid)
        if fid is None:
            self._locks.pop(tid, None)
        else:
            self._locks[tid] = fid
        changed = self.check_liveness()
        if self._status(tid) != before and tid in self._threads:
            changed.add(tid)
        return changed

    def check_liveness(self) -> set[str]:
        """Re-read /proc/locks (one small file) while any lock file is known. Returns changed ids."""
        if not self._locks:
            self._holders, self._holders_by_inode = {}, {}
            return set()
        old = {t: self._holder(f) for t, f in self._locks.items()}
        self._holders = flock_holders(self.proc_root)
        by_inode: dict[int, int | None] = {}
        for (_, _, ino), pid in self._holders.items():
            by_inode[ino] = pid if ino not in by_inode else None  # None: two files share it, ambiguous
        self._holders_by_inode = by_inode
        return {t for t, f in self._locks.items() if self._holder(f) != old[t] and t in self._threads}

    def _holder(self, fid: tuple[int, int, int] | None) -> int | None:
        """The pid holding the lock file ``fid``. /proc/locks names the superblock's device, which is not
        stat()'s st_dev on btrfs subvolumes or overlayfs: failing an exact match, a unique inode will do."""
        if fid is None:
            return None
        pid = self._holders.get(fid)
        return pid if pid is not None else self._holders_by_inode.get(fid[2])

    def _status(self, tid: str, busy: bool | None = None) -> tuple[str, int | None]:
        pid = self._holder(self._locks.get(tid))
        if pid is None:
            return "ended", None
        if busy is None:
            busy = self._turn_busy(tid)
        return ("busy" if busy else "waiting"), pid

    def _turn_busy(self, tid: str) -> bool:
        files = [self._files[p] for p in self._threads.get(tid, ())]
        latest = _latest(files, "turn", "turn_ts")
        return latest == "busy"

    # ------------------------------------------------------------ retries
    @property
    def needs_retry(self) -> bool:
        return bool(self._retries)

    def _later(self, path: str, is_dir: bool | None, exc: OSError) -> None:
        self._retries.later(path, is_dir, exc)

    def retry(self) -> set[str]:
        return self._retries.run(self.apply)

    # ------------------------------------------------------------ answering
    def session_ids(self) -> set[str]:
        # A sub-agent's thread is part of the session that spawned it (SPEC 5: never listed on
        # its own), as Claude Code's sidechains, OpenCode's child sessions and Gemini's sub-agent chats.
        return {t for t in self._threads if t not in self._parent}

    def _ordered(self, tid: str) -> list[RolloutFile]:
        files = [self._files[p] for p in self._threads.get(tid, ())]
        return sorted(files, key=lambda f: (f.stats.created or f.stats.first_ts or "~", f.path))

    def session(self, session_id: str) -> dict | None:
        files = self._ordered(session_id)
        if not files or session_id in self._parent:
            return None
        s = base_session(self.name, session_id)
        stats = [f.stats for f in files]
        meta = next((st for st in stats if st.meta_id is not None), stats[0])
        paginated = any(st.p_users or st.p_agents for st in stats)
        if paginated:
            first = next((st.p_first for st in stats if st.p_first), None)
            last = next((st.p_last for st in reversed(stats) if st.p_last), None)
            count = sum(st.p_users + st.p_agents for st in stats)
        else:
            first = next((st.l_first for st in stats if st.l_first), None)
            last = next((st.l_last for st in reversed(stats) if st.l_last), None)
            count = sum(st.l_users + st.l_agents for st in stats)
        created = min((st.created or st.first_ts for st in stats if st.created or st.first_ts), default=None)
        updated = max((st.last_ts for st in stats if st.last_ts), default=None)
        tokens = _latest(files, "tokens", "tokens_ts")
        s.update({
            "projectPath": meta.cwd,
            "title": self._names.get(session_id) or (R.collapse(first, R.TITLE_MAX) if first else None) or UNTITLED,
            "firstPrompt": first,
            "lastPrompt": last,
            "messageCount": count,
            "createdAt": created or R.iso_from_epoch(min(f.mtime for f in files)),
            "updatedAt": updated or R.iso_from_epoch(max(f.mtime for f in files)),
            "gitBranch": meta.branch,
            "model": _latest(files, "model", "model_ts"),
            "subagentCount": len(self._children.get(session_id, set()) & set(self._threads)),
            "sizeBytes": sum(f.size for f in files),
            "version": next((st.version for st in reversed(stats) if st.version), None),
        })
        if tokens is not None:
            s["tokens"] = {"input": tokens[0], "output": tokens[1], "cacheRead": tokens[2], "cacheCreation": tokens[3]}
        s["status"], s["pid"] = self._status(session_id, _latest(files, "turn", "turn_ts") == "busy")
        s["cost"] = pricing.session_cost(self.usage(session_id), self.name)
        return s

    def usage(self, session_id: str) -> UsageFacts | None:
        """The session's requests (SPEC 10): its thread's rollouts and its sub-agents' threads,
        each request once. Combined again only when one of those files' facts changed."""
        if session_id not in self._threads or session_id in self._parent:
            self._usage.pop(session_id, None)
            return None
        threads = [session_id]
        seen = {session_id}
        for tid in threads:  # the threads it spawned, theirs, and so on
            for child in sorted(self._children.get(tid, ())):
                if child not in seen and child in self._threads:
                    seen.add(child)
                    threads.append(child)
        chains = [self._ordered(tid) for tid in threads]
        mark = tuple(_usage_mark(f) for files in chains for f in files)
        cached = self._usage.get(session_id)
        if cached is not None and cached[0] == mark:
            return cached[1]
        if len(chains) == 1 and len(chains[0]) == 1:
            facts = chains[0][0].stats.u_facts
        else:
            facts = UsageFacts()
            for files in chains:
                prev = None
                for f in files:
                    facts.merge(f.stats.u_facts)
                    first = f.stats.u_first
                    if prev is not None and first is not None and first[0] is not None and first[0] == prev.u_last:
                        # this file of the thread begins by repeating the last count of the one before
                        (bucket, model, tier, speed), tokens = first[1], first[2]
                        facts.add(bucket, model, tokens, tier=tier, speed=speed, sign=-1)
                    prev = f.stats
        self._usage[session_id] = (mark, facts)
        return facts

    def conversation(self, session_id: str) -> Conversation | None:
        paths = [f.path for f in self._ordered(session_id)]
        if not paths:
            return None
        conv = self._conversations.get(session_id)
        if conv.paths != paths:  # a rollout added or compressed since it was made
            with conv.lock:
                conv.set_paths(paths)
        return conv

    # ------------------------------------------------------------ parse state
    def export_state(self, paths=None) -> dict | None:
        from helm_monitor.sources.codex import state
        return state.export_state(self, paths)

    def scan_cost(self, path: str, size: int) -> int:
        """Rollouts are what costs; one read before (restored, or known) is left to this process."""
        path = os.path.abspath(path)
        if self.layout.classify(path, False).kind is not Kind.ROLLOUT:
            return 0
        plain = plain_of(path)
        return 0 if plain in self._files or plain in self._restored else size

    def restore_state(self, data) -> int:
        from helm_monitor.sources.codex import state
        return state.restore_state(self, data)

    def offer_restored(self, plain: str, reader: RolloutFile) -> None:
        self._restored[plain] = reader

    def offer_restored_index(self, follower: JsonlFollower, names: dict[str, str]) -> None:
        self._restored_index = (follower, names)

    def drop_restored(self) -> None:
        self._restored.clear()
        self._restored_index = None

    def bytes_read(self, session_id: str) -> int:
        """Every byte read so far for a thread's rollouts (tests check what a change costs)."""
        return sum(f.bytes_read for f in self._ordered(session_id))


def _latest(files: list[RolloutFile], field: str, ts_field: str):
    """The value of ``field`` seen last: by its record's time, then by file order."""
    best, best_key = None, None
    for n, f in enumerate(files):
        value = getattr(f.stats, field)
        if value is None:
            continue
        key = (getattr(f.stats, ts_field) or "", n)
        if best_key is None or key >= best_key:
            best, best_key = value, key
    return best


def _usage_mark(f: RolloutFile | None) -> tuple | None:
    """Changes whenever the file's usage facts do (another reader, a reset, a new request)."""
    return None if f is None else (f.path, f.stats.u_version)
