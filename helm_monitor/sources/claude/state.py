"""Per-file parse state as plain data, so a restart need not read a big history again.

:func:`export_state` turns what the catalog learned from its transcripts into
JSON-able data; :func:`restore_state` hands it back to a fresh catalog, which
uses an entry only if the file still has the same inode and has not shrunk
(then only what was appended is read). Anything odd in the data discards that
entry, never the session: the file is simply read again.
"""

from __future__ import annotations

from helm_monitor.sources.claude.catalog import Catalog, _Transcript
from helm_monitor.sources.claude.transcript import SessionStats, TranscriptReader
from helm_monitor.sources.saved import count as _int, entries

# Bumped whenever what a read derives from the same bytes changes (prompt
# rules, records recovered behind cut ones): older states are read again.
FORMAT = 4
_INT_ONLY = {int}
_STAT_FIELDS = ("first_ts", "last_ts", "cwd", "git_branch", "version", "model", "custom_title", "ai_title",
                "summary", "first_prompt", "last_prompt", "session_id")


def export_reader(reader: TranscriptReader) -> dict | None:
    if reader.has_unfinished_line:
        return None  # the unfinished line is not kept; the file is read again next time
    st = reader.stats
    out = {"inode": reader.inode, "size": reader.size, "mtime": reader.mtime, "ctime": reader.ctime,
           "offset": reader.offset, "tail": reader.tail_check.hex(), "prompts": st.prompt_count, "bad": st.bad_lines, "records": st.records,
           "ids": list(st.message_ids), "recent": [[k, *u] for k, u in st.recent_usage.items()],
           "tokens": list(st.tokens)}
    for name in _STAT_FIELDS:
        out[name] = getattr(st, name)
    return out


def restore_reader(path: str, data: dict) -> TranscriptReader:
    reader = TranscriptReader(path)
    st = SessionStats()
    for name in _STAT_FIELDS:
        value = data[name]
        if value is not None and not isinstance(value, str):
            raise ValueError(name)
        setattr(st, name, value)
    st.prompt_count = _int(data["prompts"])
    st.bad_lines = _int(data["bad"])
    st.records = _int(data["records"])
    ids = data["ids"]
    # Checked at C speed: a history holds a million ids (type() is int: no bools, no floats).
    if type(ids) is not list or not set(map(type, ids)) <= _INT_ONLY:
        raise ValueError("ids")
    st.message_ids = set(ids)
    for entry in data["recent"]:
        if type(entry) is not list or len(entry) != 5 or entry[0] not in st.message_ids:
            raise ValueError("recent")
        usage = tuple(entry[1:])
        if not set(map(type, usage)) <= _INT_ONLY or min(usage) < 0:
            raise ValueError("recent")
        st.recent_usage[entry[0]] = usage
    st.tokens = [_int(x) for x in data["tokens"]]
    if len(st.tokens) != 4:
        raise ValueError("tokens")
    reader.stats = st
    reader.inode = _int(data["inode"])
    reader.size = _int(data["size"])
    reader.offset = _int(data["offset"])
    reader.mtime = float(data["mtime"])
    reader.ctime = float(data["ctime"])
    reader.tail_check = bytes.fromhex(data["tail"])
    if len(reader.tail_check) > reader.offset:
        raise ValueError("tail")
    return reader


def export_state(catalog: Catalog, paths=None) -> dict:
    readers = {}
    if paths is None:
        chosen = catalog._transcripts.items()
    else:
        chosen = [(p, catalog._transcripts[p]) for p in paths if p in catalog._transcripts]
    for path, t in chosen:
        data = export_reader(t.reader)
        if data is not None:
            readers[path] = [t.project, t.session_id, data]
    return {"format": FORMAT, "root": catalog.layout.root, "readers": readers}


def restore_state(catalog: Catalog, state: dict) -> int:
    """Offer saved readers to ``catalog``. Returns how many entries were usable."""
    restored = 0
    for path, entry in entries(state, FORMAT, catalog.layout.root, "readers").items():
        try:
            project, session_id, data = entry
            info = catalog.layout.classify(path)
            if info.project != project or info.session_id != session_id:
                continue
            t = _Transcript(path, project, session_id)
            t.reader = restore_reader(path, data)
        except (ValueError, TypeError, KeyError):
            continue
        catalog.offer_restored(path, t)
        restored += 1
    return restored
