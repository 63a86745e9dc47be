"""Codex's parse state as plain data, so a restart over an unchanged history reads nothing but listings.

Per rollout: where its follower got to (or, for a ``.zst``, the inode, size
and mtime it was decompressed at) and its :class:`~.rollout.Stats`; and the
thread names of ``session_index.jsonl`` with that file's follower. A restored
entry is only offered: it is used when its path is applied, and then only
what was appended is read (a replaced or rewritten file is read again from
the start, as the follower notices). Anything odd in an entry drops that
entry, never the session: its file is simply read again.
"""

from __future__ import annotations

import os

from helm_monitor.sources.codex.layout import Kind, plain_of
from helm_monitor.sources.codex.rollout import RolloutFile, Stats
from helm_monitor.sources.jsonl import JsonlFollower
from helm_monitor.sources.saved import count as _int, counts, entries, text as _str
from helm_monitor.usage.facts import UsageFacts

# Bumped whenever what a read derives from the same bytes changes (Stats' fields, prompt rules):
# older states are read again. 2: usage facts (SPEC 10); input less cache writes.
FORMAT = 2
_STR_FIELDS = ("meta_id", "cwd", "created", "version", "branch", "parent", "first_ts", "last_ts", "p_first",
               "p_last", "l_first", "l_last", "model", "model_ts", "tokens_ts", "turn_ts", "u_model")
_INT_FIELDS = ("p_users", "p_agents", "l_users", "l_agents", "lines")
# u_version is not saved: a restored Stats gets a new one.
_OTHER_FIELDS = ("tokens", "turn", "u_facts", "u_version", "u_last", "u_first", "u_replay", "u_own_ms")
assert set(_STR_FIELDS + _INT_FIELDS + _OTHER_FIELDS) == set(Stats.__slots__), "a Stats field is not saved"


def export_rollout(f: RolloutFile) -> dict | None:
    st = f.stats
    out = {"path": f.path, "size": f.size, "mtime": f.mtime, "tokens": list(st.tokens) if st.tokens else None,
           "turn": st.turn}
    if f.compressed:
        if f._zst_key is None:
            return None  # never read whole: nothing to keep
        out["zst"] = list(f._zst_key)
    else:
        if f.follower.inode is None:
            return None
        out["follower"] = f.follower.export()
    for name in _STR_FIELDS + _INT_FIELDS:
        out[name] = getattr(st, name)
    first = st.u_first
    out["usage"] = {"facts": st.u_facts.to_json(), "last": list(st.u_last) if st.u_last is not None else None,
                    "first": None if first is None else
                    [list(first[0]) if first[0] is not None else None, list(first[1]), list(first[2])],
                    "replay": st.u_replay, "own": st.u_own_ms}
    return out


def restore_rollout(data: dict, warn) -> RolloutFile:
    """Raises ValueError/TypeError/KeyError for anything odd."""
    f = RolloutFile(data["path"], warn)
    st = Stats()
    for name in _STR_FIELDS:
        setattr(st, name, _str(data[name]))
    for name in _INT_FIELDS:
        setattr(st, name, _int(data[name]))
    if data["tokens"] is not None:
        st.tokens = counts(data["tokens"], 4)
    if data["turn"] not in (None, "busy", "done"):
        raise ValueError("turn")
    st.turn = data["turn"]
    _restore_usage(st, data["usage"])
    f.stats = st
    f.size = _int(data["size"])
    f.mtime = float(data["mtime"])
    if f.compressed:
        f._zst_key = counts(data["zst"], 3)
        if f._zst_key[1] != f.size:
            raise ValueError("zst size")
    else:
        f.follower = JsonlFollower.restore(f.path, data["follower"])
    return f


def _restore_usage(st: Stats, data: dict) -> None:
    st.u_facts = UsageFacts.from_json(data["facts"])
    st.u_last = None if data["last"] is None else counts(data["last"], 6)
    first = data["first"]
    if first is not None:
        if not isinstance(first, list) or len(first) != 3:
            raise ValueError("usage first")
        total = None if first[0] is None else counts(first[0], 6)
        key = first[1]
        if (not isinstance(key, list) or len(key) != 4 or not isinstance(key[1], str)
                or not isinstance(key[3], str)):
            raise ValueError("usage first key")
        st.u_first = (total, (_int(key[0]), key[1], _int(key[2]), key[3]), counts(first[2], 5))
    if not isinstance(data["replay"], bool):
        raise ValueError("usage replay")
    st.u_replay = data["replay"]
    st.u_own_ms = None if data["own"] is None else _int(data["own"])


def export_state(source, paths=None) -> dict | None:
    """None while nothing was read: no cache file for an agent that is not used here (a stale one
    left behind names only files that are gone, which a restore drops). With ``paths``: only
    those rollouts, without the thread names."""
    rollouts = {}
    if paths is None:
        chosen = source._files.items()
    else:
        plains = {plain_of(os.path.abspath(p)) for p in paths}
        chosen = [(plain, source._files[plain]) for plain in plains if plain in source._files]
    for plain, f in chosen:
        data = export_rollout(f)
        if data is not None:
            rollouts[plain] = data
    index = None
    if paths is None and source._index_read and source._index.inode is not None:
        index = {"follower": source._index.export(), "names": dict(source._names)}
    if not rollouts:
        return None
    return {"format": FORMAT, "root": source.root, "rollouts": rollouts, "index": index}


def restore_state(source, state) -> int:
    """Offer saved rollouts (and the thread names) to a fresh ``source``. Returns how many entries are usable."""
    restored = 0
    rollouts = entries(state, FORMAT, source.root, "rollouts")
    for plain, data in rollouts.items():
        try:
            path = data["path"]
            info = source.layout.classify(path, False)
            if info.kind is not Kind.ROLLOUT or plain_of(path) != plain:
                continue  # not a rollout of this root (edited, or another layout)
            source.offer_restored(plain, restore_rollout(data, source._file_warner(path)))
        except (ValueError, TypeError, KeyError):
            continue
        restored += 1
    try:
        # Names matter only beside rollouts; and with none, ``state`` may not even be a dict.
        index = state.get("index") if rollouts else None
        if index is not None:
            names = index["names"]
            if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                      for k, v in names.items()):
                raise ValueError("names")
            source.offer_restored_index(JsonlFollower.restore(source.layout.index, index["follower"]), names)
            restored += 1
    except (ValueError, TypeError, KeyError):
        pass
    return restored
