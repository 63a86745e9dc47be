"""Forked sessions (``claude --resume <id> --fork-session``), whose copies count once (SPEC 10).

A fork's transcript begins with a copy of its origin's records: the same API messages (message
ids and request ids), used and billed once. Sessions that share their first message
(``SessionStats.first_key``) form a family; a later member (by first record, then id) leaves
out what an earlier one holds. A transcript keeps totals, not each message's part, so a later
member's file is read once more with each message logged to learn what its copies added, and
that is kept until they change. No history-wide index of message ids is kept.
"""

from __future__ import annotations

from typing import Callable

from helm_monitor.sources.claude.transcript import TranscriptReader
from helm_monitor.usage.facts import UsageFacts


class Forks:
    """Families of sessions by first message. Used from the catalog's thread."""

    def __init__(self, primary: Callable):
        self._primary = primary  # session id -> its transcript (catalog._Transcript) or None
        self._families: dict[int, set[str]] = {}
        self._family_of: dict[str, int] = {}
        # path -> (inode, the copied messages, offset read, SessionStats.replaced_n, their facts)
        self._copies: dict[str, tuple[int | None, frozenset, int, int, UsageFacts]] = {}

    def copies(self, session_id: str, t) -> UsageFacts | None:
        """What ``t`` (the session's transcript) holds of an earlier family member's messages."""
        shared = self._shared_earlier(session_id, t)
        return self._copies_in(t, shared) if shared else None

    def forget(self, path: str) -> None:
        self._copies.pop(path, None)

    def changed(self, changed: set[str]) -> set[str]:
        """Sessions whose usage moved with ``changed``: those sharing their first message."""
        affected: set[str] = set()
        for sid in changed:
            t = self._primary(sid)
            key = t.reader.stats.first_key if t is not None else None
            old = self._family_of.get(sid)
            if key != old:
                if old is not None:
                    members = self._families[old]
                    members.discard(sid)
                    affected |= members
                    if not members:
                        del self._families[old]
                    del self._family_of[sid]
                if key is not None:
                    members = self._families.setdefault(key, set())
                    affected |= members
                    members.add(sid)
                    self._family_of[sid] = key
            elif key is not None and len(self._families[key]) > 1:
                affected |= self._families[key]
        return affected

    def _shared_earlier(self, session_id: str, t) -> set[int] | None:
        """The messages of this transcript that a session earlier in its family holds too: a
        forked session's copy of its origin's. They count in the earliest (by first record, then
        id: a copy keeps its records' times, so origin and fork tie and the id decides)."""
        members = self._families.get(self._family_of.get(session_id))
        if not members or len(members) < 2:
            return None
        rank = self._family_rank(session_id, t)
        mine = t.reader.stats.message_ids | t.reader.stats.side_ids
        shared: set[int] = set()
        for other in members:
            o = self._primary(other) if other != session_id else None
            if o is not None and self._family_rank(other, o) < rank:
                st = o.reader.stats
                shared |= mine & st.message_ids
                shared |= mine & st.side_ids
        return shared

    def _copies_in(self, t, shared: set[int]) -> UsageFacts | None:
        """What the messages ``shared`` added to ``t``'s facts. A transcript keeps totals, not each
        message's part: a fork's file is read once more, logging each message, and what its copies
        added is kept until they change (the file rewritten, or other messages shared)."""
        path = t.reader.path
        key = frozenset(shared)
        st = t.reader.stats
        got = self._copies.get(path)
        if got is not None and got[0] == t.reader.inode and got[1] == key and t.reader.offset >= got[2]:
            since = st.replaced_n - got[3]
            if since == 0 or (0 < since <= len(st.replaced)
                              and key.isdisjoint(list(st.replaced)[-since:])):
                return got[4]
        replaced_n = st.replaced_n
        again = TranscriptReader(path, log_usage=True)
        try:
            again.update()
        except OSError:
            return None  # gone meanwhile: its removal is applied next
        if again.inode != t.reader.inode:
            return None
        counter = again.stats.usage
        facts = counter.facts_without(lambda d: d not in key)
        self._copies[path] = (again.inode, key, again.offset, replaced_n, facts)
        return facts

    @staticmethod
    def _family_rank(session_id: str, t) -> tuple[str, str]:
        return t.reader.stats.first_ts or "", session_id
