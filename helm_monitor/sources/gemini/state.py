"""Gemini's parse state as plain data, so a restart over an unchanged history reads no chat file again.

Per chat file: where its follower got to (a legacy ``.json``: the inode, size
and mtime it was read at) and its replayed :class:`~.records.ChatState`, the
facts of every message in the CLI's order (a later ``$rewindTo`` may bring
any of them back to the end). Prompts are saved as shown (masked, clipped),
never as typed: the state is a file on disk, and nothing unmasked leaves
memory. Totals are worked out again from the messages, not trusted. A
restored entry is used when its path is applied, and then only what was
appended is read; anything odd in one drops that entry, never the session:
its file is simply read again.
"""

from __future__ import annotations

import os

from collections import OrderedDict

from helm_monitor.sources.gemini.chatfile import ChatFile
from helm_monitor.sources.gemini.records import OTHER, PROMPT, ChatState, Facts, prompt_text
from helm_monitor.sources.jsonl import JsonlFollower
from helm_monitor.sources.saved import count as _int, counts, entries, text as _str

# Bumped whenever what a read derives from the same bytes changes (Facts, replay rules, prompt
# masking): older states are read again. 2: usage facts (SPEC 10, each reply's time kept; built
# again from it on restore), tool-use prompt tokens as input, sub-agents' chats.
FORMAT = 2
_STR_FIELDS = ("session_id", "project_hash", "start_time", "last_updated", "summary", "kind", "first_ts")


def export_chat(f: ChatFile) -> dict | None:
    if f.legacy:
        if f._legacy_key is None:
            return None
        where = {"legacy": list(f._legacy_key)}
    else:
        if f.follower.inode is None:
            return None
        where = {"follower": f.follower.export()}
    st = f.state
    state = {name: getattr(st, name) for name in _STR_FIELDS}
    state["metadata_lines"] = st.metadata_lines
    state["messages"] = [[mid, x.kind, prompt_text(x.prompt) if x.prompt is not None else None,
                          list(x.tokens) if x.tokens is not None else None, x.model, x.pending]
                         for mid, x in st.messages.items()]
    state["usage"] = [[mid, list(tokens), model, at] for mid, (tokens, model, at) in st.usage.items()]
    return {"slug": f.slug, "lines": f.lines, "size": f.size, "mtime": f.mtime, "ctime": f.ctime,
            "state": state, **where}


def restore_chat(path: str, data: dict, warn, legacy_max_bytes: int) -> ChatFile:
    """Raises ValueError/TypeError/KeyError for anything odd."""
    f = ChatFile(path, data["slug"], warn, legacy_max_bytes)
    f.lines = _int(data["lines"])
    f.size = _int(data["size"])
    f.mtime = float(data["mtime"])
    f.ctime = float(data["ctime"])
    if f.legacy:
        f._legacy_key = counts(data["legacy"], 3)
    else:
        f.follower = JsonlFollower.restore(path, data["follower"])
    f.state = _restore_state(data["state"])
    return f


def _restore_state(data: dict) -> ChatState:
    st = ChatState()
    for name in _STR_FIELDS:
        setattr(st, name, _str(data[name]))
    st.metadata_lines = _int(data["metadata_lines"])
    messages: OrderedDict[str, Facts] = OrderedDict()
    for mid, kind, prompt, tokens, model, pending in data["messages"]:
        if not isinstance(mid, str) or mid in messages or not isinstance(kind, int) or kind not in range(OTHER + 1) \
                or isinstance(kind, bool) or not isinstance(pending, bool):
            raise ValueError("message")
        if (prompt is None) != (kind != PROMPT):
            raise ValueError("prompt")
        messages[mid] = Facts(kind, _str(prompt), _tokens(tokens), _str(model), pending)
    for facts in messages.values():
        st._count(facts, 1)  # the totals, from the messages themselves
    st.messages = messages
    for mid, tokens, model, at in data["usage"]:
        if not isinstance(mid, str):
            raise ValueError("usage")
        st.usage[mid] = (_tokens(tokens) or (0, 0, 0), _str(model), None if at is None else _int(at))
    st.rebuild_facts()  # the usage facts, from the replies' own usage
    return st


def _tokens(value) -> tuple[int, int, int] | None:
    return None if value is None else counts(value, 3)


def export_state(source, paths=None) -> dict | None:
    """None while nothing was read: no cache file for an agent that is not used here (a stale one
    left behind names only files that are gone, which a restore drops). With ``paths``: only those.
    Sub-agents' chats (read for their usage) are saved beside the sessions' ("subs")."""
    out = {}
    for key, files in (("chats", source._files), ("subs", source._sub_files)):
        if paths is None:
            chosen = files.items()
        else:
            chosen = [(p, files[p]) for p in map(os.path.normpath, paths) if p in files]
        saved = {}
        for path, f in chosen:
            data = export_chat(f)
            if data is not None:
                saved[path] = data
        out[key] = saved
    if not out["chats"] and not out["subs"]:
        return None
    return {"format": FORMAT, "root": source.root, **out}


def restore_state(source, state) -> int:
    """Offer saved chat files to a fresh ``source``. Returns how many entries are usable."""
    restored = 0
    for key, is_ours, offer in (("chats", source.is_chat_of, source.offer_restored),
                                ("subs", source.is_subagent_chat_of, source.offer_restored_sub)):
        for path, data in entries(state, FORMAT, source.root, key).items():
            try:
                if not is_ours(path, data["slug"]):
                    continue  # not a chat file of this root (edited, or another layout)
                offer(path, restore_chat(path, data, source._warn, source.legacy_max_bytes))
            except (ValueError, TypeError, KeyError):
                continue
            restored += 1
    return restored
