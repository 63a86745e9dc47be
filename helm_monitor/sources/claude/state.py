"""Per-file parse state as plain data, so a restart need not read a big history again.

:func:`export_state` turns what the catalog learned from its transcripts into
JSON-able data; :func:`restore_state` hands it back to a fresh catalog, which
uses an entry only if the file still has the same inode and has not shrunk
(then only what was appended is read). Anything odd in the data discards that
entry, never the session: the file is simply read again.

Transcripts keep their usage facts and ledger with them; subagent transcripts and
legacy sidechains (read for usage only) are saved as entries of their own.
"""

from __future__ import annotations

from helm_monitor.sources.claude.catalog import Catalog, _Transcript
from helm_monitor.sources.claude.layout import Kind
from helm_monitor.sources.claude.sidechain import SidechainReader
from helm_monitor.sources.claude.transcript import TranscriptReader
from helm_monitor.sources.claude.usage import Ledger, UsageCounter, row_keys as _row_keys
from helm_monitor.sources.saved import count as _int, entries

# Bumped whenever what a read derives from the same bytes changes (prompt
# rules, records recovered behind cut ones, usage facts): older states are read again.
FORMAT = 7
_INT_ONLY = {int}
_TEXT_ONLY = {str, type(None)}
_STAT_FIELDS = ("first_ts", "last_ts", "cwd", "git_branch", "version", "model", "custom_title", "ai_title",
                "summary", "first_prompt", "last_prompt", "session_id")


def export_reader(reader: TranscriptReader) -> dict | None:
    if reader.has_unfinished_line:
        return None  # the unfinished line is not kept; the file is read again next time
    st = reader.stats
    out = {"inode": reader.inode, "size": reader.size, "mtime": reader.mtime, "ctime": reader.ctime,
           "offset": reader.offset, "tail": reader.tail_check.hex(), "prompts": st.prompt_count, "bad": st.bad_lines, "records": st.records,
           "ids": list(st.message_ids), **_export_recent(st),
           "tokens": list(st.tokens), "usage": st.usage.export(), "side": list(st.side_ids),
           "ledger": st.ledger.export(), "fileMs": st.file_ms, "first": st.first_key}
    for name in _STAT_FIELDS:
        out[name] = getattr(st, name)
    return out


def _export_recent(st) -> dict:
    """The latest messages, flat: 8 ints a message (digest, five counts, fast mode as 0/1, row or
    -1), the rows listed apart."""
    if st.saved_recent is not None:
        flat, rows = st.saved_recent
        return {"recent": flat, "recentRows": [list(r) for r in rows]}
    out, keys, at = [], [], {}
    for k, (counts, row) in st.recent_usage.items():
        i = -1
        if row is not None:
            i = at.get(row)
            if i is None:
                i = at[row] = len(keys)
                keys.append(list(row))
        out += (k, counts[0], counts[1], counts[2], counts[3], counts[4], 1 if counts[5] else 0, i)
    return {"recent": out, "recentRows": keys}


def restore_reader(path: str, data: dict) -> TranscriptReader:
    reader = TranscriptReader(path)
    st = reader.stats
    values = [data[name] for name in _STAT_FIELDS]
    if not set(map(type, values)) <= _TEXT_ONLY:  # (at C speed: thousands of these at a restart)
        raise ValueError("stats")
    for name, value in zip(_STAT_FIELDS, values):
        setattr(st, name, value)
    st.prompt_count = _int(data["prompts"])
    st.bad_lines = _int(data["bad"])
    st.records = _int(data["records"])
    ids = data["ids"]
    # Checked at C speed: a history holds a million ids (type() is int: no bools, no floats).
    if type(ids) is not list or not set(map(type, ids)) <= _INT_ONLY:
        raise ValueError("ids")
    st.message_ids = set(ids)
    rows = _row_keys(data["recentRows"])
    flat = data["recent"]
    # Checked at C speed and kept packed (SessionStats.materialize): 100,000 of them in a big history.
    if type(flat) is not list or len(flat) % 8 or not set(map(type, flat)) <= _INT_ONLY:
        raise ValueError("recent")
    if flat:
        digests = flat[0::8]
        if (not st.message_ids.issuperset(digests) or len(set(digests)) != len(digests)
                or min(min(flat[i::8]) for i in range(1, 7)) < 0 or max(flat[6::8]) > 1
                or min(flat[7::8]) < -1 or max(flat[7::8]) >= len(rows)):
            raise ValueError("recent")
        st.saved_recent = (flat, rows)
    st.tokens = [_int(x) for x in data["tokens"]]
    if len(st.tokens) != 4:
        raise ValueError("tokens")
    side = data["side"]
    if type(side) is not list or not set(map(type, side)) <= _INT_ONLY:
        raise ValueError("side")
    st.side_ids = set(side)
    st.usage = UsageCounter.restore(data["usage"], known=st.message_ids, also_known=st.side_ids)
    first = data["first"]
    if first is not None and (type(first) is not int or first not in st.message_ids):
        raise ValueError("first")
    st.first_key = first
    st.ledger = Ledger.restore(data["ledger"])
    st.file_ms = _int(data["fileMs"])
    reader.inode = _int(data["inode"])
    reader.size = _int(data["size"])
    reader.offset = _int(data["offset"])
    reader.mtime = float(data["mtime"])
    reader.ctime = float(data["ctime"])
    reader.tail_check = bytes.fromhex(data["tail"])
    if len(reader.tail_check) > reader.offset:
        raise ValueError("tail")
    return reader


def _sidechains(catalog: Catalog) -> dict[str, SidechainReader]:
    out = dict(catalog._legacy_readers)
    for readers in catalog._subagents.values():
        out.update(readers)
    return out


def export_state(catalog: Catalog, paths=None) -> dict:
    readers = {}
    sidechains = {}
    if paths is None:
        chosen = catalog._transcripts.items()
        chosen_sidechains = _sidechains(catalog).items()
    else:
        chosen = [(p, catalog._transcripts[p]) for p in paths if p in catalog._transcripts]
        chosen_sidechains = []
        for p in paths:
            info = catalog.layout.classify(p)
            if info.kind is Kind.SUBAGENT:
                r = catalog._subagents.get(info.session_id, {}).get(p)
            elif info.kind is Kind.LEGACY_SIDECHAIN:
                r = catalog._legacy_readers.get(p)
            else:
                continue
            if r is not None:
                chosen_sidechains.append((p, r))
    for path, t in chosen:
        data = export_reader(t.reader)
        if data is not None:
            readers[path] = [t.project, t.session_id, data]
    for path, r in chosen_sidechains:
        sidechains[path] = r.export()
    return {"format": FORMAT, "root": catalog.layout.root, "readers": readers, "sidechains": sidechains}


def restore_state(catalog: Catalog, state: dict) -> int:
    """Offer saved readers to ``catalog``. Returns how many entries were usable."""
    restored = 0
    for path, entry in entries(state, FORMAT, catalog.layout.root, "readers").items():
        try:
            project, session_id, data = entry
            info = catalog.layout.classify(path)
            if info.project != project or info.session_id != session_id:
                continue
            t = _Transcript(path, project, session_id, restore_reader(path, data))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            continue
        catalog.offer_restored(path, t)
        restored += 1
    for path, data in entries(state, FORMAT, catalog.layout.root, "sidechains").items():
        try:
            if catalog.layout.classify(path).kind not in (Kind.SUBAGENT, Kind.LEGACY_SIDECHAIN):
                continue
            reader = SidechainReader.restore(path, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            continue
        catalog.offer_restored_sidechain(path, reader)
        restored += 1
    return restored
