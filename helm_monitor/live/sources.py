"""Every source of this host as one catalog whose sessions are named by ``key``.

The live layer below this point (monitor, store, cache, routes, page) deals in
keys only: ``<host>:<source>:<id>`` (SPEC 5 v2). A changed path goes to the
source that claims it; what a source answers with its own ids comes back
keyed, with ``key`` and ``host`` set on every Session.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

from helm_monitor.sources.base import STEADY_CLOCK, Conversation, Source, Watch

log = logging.getLogger(__name__)


def build_catalog(source_options: dict[str, dict], host: str) -> "SourceSet":
    """Every source named in ``source_options`` (name -> ``root`` and its own options), as one catalog."""
    from helm_monitor import sources as agent_sources
    return SourceSet([agent_sources.build(name, os.path.abspath(opts["root"]),
                                          **{k: v for k, v in opts.items() if k != "root"})
                      for name, opts in source_options.items()], host)


class SourceSet:
    def __init__(self, sources: list[Source], host: str):
        self.sources = list(sources)
        self.host = host
        self._by_name = {s.name: s for s in self.sources}
        self.monotonic = self.sources[0].monotonic if self.sources else STEADY_CLOCK

    # ------------------------------------------------------------ keys
    def key(self, source: Source, session_id: str) -> str:
        return f"{self.host}:{source.name}:{session_id}"

    def split(self, key: str) -> tuple[Source, str] | None:
        """The source and own id a key names, if it is one of this host's."""
        host, sep, rest = key.partition(":")
        name, sep2, session_id = rest.partition(":")
        source = self._by_name.get(name)
        if not sep or not sep2 or host != self.host or source is None or not session_id:
            return None
        return source, session_id

    def source(self, name: str) -> Source | None:
        return self._by_name.get(name)

    def _keys(self, source: Source, ids: set[str]) -> set[str]:
        prefix = f"{self.host}:{source.name}:"
        return {prefix + i for i in ids}

    # ------------------------------------------------------------ watching
    def watches(self) -> list[Watch]:
        return [w for s in self.sources for w in s.watches()]

    def owner(self, path: str) -> Source | None:
        """The source a path belongs to, if any."""
        for s in self.sources:
            if s.claims(path):
                return s
        return None

    def session_for_path(self, path: str, is_dir: bool | None = None) -> str | None:
        source = self.owner(path)
        if source is None:
            return None
        session_id = source.session_for_path(path, is_dir)
        return None if session_id is None else self.key(source, session_id)

    # ------------------------------------------------------------ reading
    def iter_paths(self) -> Iterator[str]:
        for s in self.sources:
            yield from s.iter_paths()

    def apply(self, path: str, is_dir: bool | None = None) -> set[str]:
        source = self.owner(path)
        return set() if source is None else self._keys(source, source.apply(path, is_dir))

    def full_scan(self) -> set[str]:
        return self._each(lambda s: s.full_scan())

    def check_liveness(self) -> set[str]:
        return self._each(lambda s: s.check_liveness())

    @property
    def needs_retry(self) -> bool:
        return any(s.needs_retry for s in self.sources)

    def retry(self) -> set[str]:
        return self._each(lambda s: s.retry() if s.needs_retry else set())

    def status_deadline(self, after: float | None = None) -> float | None:
        deadlines = [d for d in (s.status_deadline(after) for s in self.sources) if d is not None]
        return min(deadlines) if deadlines else None

    def drop_restored(self) -> None:
        for s in self.sources:
            s.drop_restored()

    def _each(self, fn) -> set[str]:
        changed: set[str] = set()
        for s in self.sources:
            try:
                changed |= self._keys(s, fn(s))
            except Exception:  # one source's bug must not stop the others
                log.exception("source %s failed; its sessions are kept as they were", s.name)
        return changed

    # ------------------------------------------------------------ answering
    def session(self, key: str) -> dict | None:
        found = self.split(key)
        if found is None:
            return None
        source, session_id = found
        session = source.session(session_id)
        return None if session is None else self._stamp(session, key)

    def sessions(self) -> dict[str, dict]:
        # A reader that fails here fails the whole refresh (the store keeps what it has) rather
        # than making its sessions look deleted.
        out = {}
        for s in self.sources:
            for session_id, session in s.sessions().items():
                key = self.key(s, session_id)
                out[key] = self._stamp(session, key)
        return out

    def _stamp(self, session: dict, key: str) -> dict:
        session["key"] = key
        session["host"] = self.host
        session.setdefault("cost", {"usd": None, "basis": "unpriced", "unpricedModels": []})
        session["stale"] = False  # the local host is never stale (SPEC 9)
        return session

    def usage(self, key: str):
        """The session's UsageFacts (helm_monitor.usage.facts), or None."""
        found = self.split(key)
        if found is None:
            return None
        source, session_id = found
        return source.usage(session_id)

    def conversation(self, key: str) -> Conversation | None:
        found = self.split(key)
        if found is None:
            return None
        source, session_id = found
        return source.conversation(session_id)
