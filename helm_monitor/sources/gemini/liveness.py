"""Status of Gemini sessions: awaiting a reply on disk, and Gemini CLI instances in /proc.

Nothing on disk says a session's process is alive (AGENTS_FORMAT 3.3): a
Gemini CLI instance whose working directory is the project is the only sign.
It cannot be tied to one session, so with k instances in a project only its
k most recently written sessions count as live. A session whose latest
message awaits a reply is ``busy`` while live, or for ``recent_write_s``
after its last write when no instance is seen (the scan lags; another user's
process cannot be seen); then ``ended``: an abandoned file is never busy for
ever. Mixed into :class:`~helm_monitor.sources.gemini.source.GeminiSource`.
"""

from __future__ import annotations

from collections import Counter

from helm_monitor.sources.gemini.chatfile import ChatFile
from helm_monitor.sources.proc import agent_processes, program_is, without_children


def gemini_instances(proc_root: str = "/proc") -> dict[str, int]:
    """Working directory -> how many Gemini CLI instances run there (processes of other users,
    whose cwd cannot be read, are not seen). Its argv is ``node …/bundle/gemini.js …`` or
    ``…/bin/gemini …``, and it relaunches itself once in a child: counted once."""
    procs = agent_processes(lambda argv: program_is(argv, "gemini"), proc_root)
    return dict(Counter(p.cwd for p in without_children(procs, proc_root)))


class LivenessMixin:
    def _scan(self, force: bool = False) -> bool:
        """Rescan /proc if due. True if the instances seen changed."""
        now = self.monotonic()
        if not force and self._scanned_at is not None and now - self._scanned_at < self.proc_scan_s:
            return False
        self._scanned_at = now
        instances = gemini_instances(self.proc_root)
        if instances == self._instances:
            return False
        self._instances = instances
        return True

    def _instances_at(self, project: str | None) -> int:
        if not project or not self._instances:
            return 0
        n = self._instances.get(project)
        return self._instances.get(self._realpath(project), 0) if n is None else n

    def _live(self, sid: str, slug: str, project: str | None) -> bool:
        """A Gemini CLI instance works in the project and this is one of the k most recently
        written sessions there (k = instances)."""
        k = self._instances_at(project)
        if k == 0:
            return False
        sids = self._slug_index().get(slug, ())
        if len(sids) <= k:
            return True
        newer = 0
        mine = self._mtime(sid)
        for other in sids:
            if other != sid and (self._mtime(other), other) > (mine, sid):
                newer += 1
                if newer >= k:
                    return False
        return True

    def _mtime(self, sid: str) -> float:
        return max((self._files[p].mtime for p in self._by_id.get(sid, ())), default=0.0)

    def _changed_at(self, sid: str) -> float:
        return max((self._files[p].changed_at or 0.0 for p in self._by_id.get(sid, ())), default=0.0)

    def _status(self, sid: str, main: ChatFile, project: str | None) -> str:
        live = self._live(sid, main.slug, project)
        if main.state.derived()[3] and (live or self.monotonic() - self._changed_at(sid) < self.recent_write_s):
            return "busy"
        return "idle" if live else "ended"

    def check_liveness(self) -> set[str]:
        """Rescan /proc when due; rebuild the status of every session it may have turned."""
        if not self._by_id:
            # No session to tell alive from ended (Gemini CLI not installed): no /proc scan.
            # The first session built scans afresh (session()).
            self._scanned_at, self._instances = None, {}
            return set()
        before = self._instances
        self._scan()
        candidates = set(self._awaiting)
        candidates |= {sid for sid, status in self._reported.items() if status != "ended"}
        cwds = set(before) | set(self._instances)
        if cwds:
            for slug, sids in self._slug_index().items():
                project = self._slug_project(slug)
                if project and (project in cwds or self._realpath(project) in cwds):
                    candidates |= sids
        changed = set()
        for sid in candidates:
            main = self._main(sid)
            if main is None:
                continue
            status = self._status(sid, main, self._project_path(main.slug, main))
            if self._reported.get(sid) != status:
                self._reported[sid] = status
                changed.add(sid)
        return changed

    def status_deadline(self, after: float | None = None) -> float | None:
        now = self.monotonic() if after is None else after
        best = None
        for sid in self._awaiting:
            due = self._changed_at(sid) + self.recent_write_s
            if due > now and (best is None or due < best):
                best = due
        return best

