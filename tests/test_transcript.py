"""Incremental reading of one transcript (TranscriptReader), on real files.

The reader keeps its offset, the unfinished last line and running totals, so a
re-read touches only what was appended; a file that shrinks or is replaced is
read again from the start, without counting anything twice.
"""

from __future__ import annotations

import json
import os
import random
import uuid

import pytest

from helm_monitor.sources.claude.transcript import TranscriptReader

# every reader test with the C triage of lines and without it (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("triage")


def line(rec: dict) -> bytes:
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def tokens(st) -> tuple[int, int, int, int]:
    return tuple(st.tokens)


def proc_rchar() -> int:
    """Bytes this process has read through read() syscalls (an independent meter)."""
    with open("/proc/self/io") as f:
        for row in f:
            if row.startswith("rchar:"):
                return int(row.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


class Realistic:
    """Writes a 2.1.330-shaped transcript: per turn a prompt, big attachments,
    api-request copies, a file-history snapshot, an assistant message split over
    two records (text + tool_use, same id), a tool result and a reply; metadata
    records re-appended. Keeps the expected totals as it goes."""

    def __init__(self, writer, rng: random.Random):
        self.w = writer
        self.rng = rng
        self.prompts = 0
        self.ids: set[str] = set()
        self.tokens = [0, 0, 0, 0]
        self.last_prompt: str | None = None

    def filler(self, n: int) -> str:
        return "lorem ipsum " * (n // 12) + "x" * (n % 12)

    def attachment(self, size: int) -> dict:
        # Key order as 2.1.330 writes it: parentUuid, isSidechain, attachment, type, ...
        return {"parentUuid": self.w._parent, "isSidechain": False,
                "attachment": {"type": "prompt_snapshot", "systemPrompt": [self.filler(size)]},
                "type": "attachment", "uuid": str(uuid.uuid4()), "timestamp": "2026-11-23T20:08:16.049Z",
                "sessionId": self.w.id, "version": self.w.version}

    def api_request(self, size: int) -> dict:
        return {"type": "api-request", "sessionId": self.w.id, "id": str(uuid.uuid4()),
                "timestamp": "2026-11-23T20:08:16.049Z", "version": self.w.version, "querySource": "sdk",
                "params": {"model": "claude-opus-5-5", "messages": [{"role": "user", "content": self.filler(size)}]}}

    def snapshot(self, size: int) -> dict:
        return {"type": "file-history-snapshot", "messageId": str(uuid.uuid4()),
                "snapshot": {"messageId": str(uuid.uuid4()), "trackedFileBackups": {"a.py": self.filler(size)},
                             "timestamp": "2026-11-23T20:08:16.049Z"}, "isSnapshotUpdate": False}

    def turn(self, prompt: str) -> bytes:
        r = self.rng
        recs: list[dict] = [
            {"type": "queue-operation", "operation": "enqueue", "timestamp": "2026-11-23T20:08:15.391Z",
             "sessionId": self.w.id, "content": prompt},
            self.w.prompt_record(prompt),
        ]
        recs += [self.attachment(r.randint(2_000, 60_000)) for _ in range(r.randint(3, 6))]
        recs += [self.api_request(r.randint(30_000, 60_000)) for _ in range(2)]
        recs.append(self.snapshot(r.randint(5_000, 40_000)))
        usage = {"input_tokens": r.randint(1, 50), "output_tokens": r.randint(1, 500),
                 "cache_creation_input_tokens": r.randint(0, 5000), "cache_read_input_tokens": r.randint(0, 50000)}
        tool = self.w.assistant_records("Let me look.", tool_use={"name": "Bash", "input": {"command": "ls"}},
                                        usage=usage)
        recs += tool
        recs.append(self.w.tool_result_record(tool[-1]["message"]["content"][0]["id"], self.filler(3_000)))
        recs.append(self.api_request(r.randint(30_000, 60_000)))
        usage2 = {"input_tokens": 3, "output_tokens": 40, "cache_creation_input_tokens": 100,
                  "cache_read_input_tokens": 9000}
        reply = self.w.assistant_records("All done.", usage=usage2)
        recs += reply
        recs.append({"type": "last-prompt", "lastPrompt": prompt, "leafUuid": reply[-1]["uuid"], "sessionId": self.w.id})
        recs.append({"type": "ai-title", "aiTitle": "Working on it", "sessionId": self.w.id})
        self.prompts += 1
        self.last_prompt = prompt
        for u, recs_ in ((usage, tool), (usage2, reply)):
            self.ids.add(recs_[0]["message"]["id"])
            self.tokens[0] += u["input_tokens"]
            self.tokens[1] += u["output_tokens"]
            self.tokens[2] += u["cache_read_input_tokens"]
            self.tokens[3] += u["cache_creation_input_tokens"]
        data = b"".join(line(x) for x in recs)
        self.w.write_raw(data)
        return data


def test_large_transcript_append_reads_only_the_appended_bytes(claude):
    s = claude.session(cwd="/home/alice/code/big")
    gen = Realistic(s, random.Random(7))
    n = 0
    while (s.path.stat().st_size if s.path.exists() else 0) < 40 * 1024 * 1024:
        n += 1
        gen.turn(f"step {n}: refactor module {n}")
    size = s.path.stat().st_size
    assert size >= 40 * 1024 * 1024

    r = TranscriptReader(str(s.path))
    assert r.update() is True
    assert r.bytes_read == size and r.offset == size
    st = r.stats
    assert st.message_count == gen.prompts + len(gen.ids) == 3 * n
    assert tokens(st) == tuple(gen.tokens)
    assert st.last_prompt == f"step {n}: refactor module {n}"
    assert st.first_prompt == "step 1: refactor module 1"
    assert st.ai_title == "Working on it"
    assert st.bad_lines == 0

    # Nothing new: nothing read.
    assert r.update() is False
    assert r.bytes_read == size

    # Append one more turn (a small one: no bookkeeping) in one write.
    before, meter = r.bytes_read, proc_rchar()
    s.turn("one more: add a test for the parser", "Added.",
           usage={"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 11,
                  "cache_read_input_tokens": 13})
    appended = s.path.stat().st_size - size
    assert 0 < appended < 4096
    assert r.update() is True
    assert r.bytes_read - before == appended          # the reader's own count
    assert proc_rchar() - meter < appended + 64 * 1024  # and the kernel's: the 40 MB were not read again
    assert r.offset == size + appended
    assert st is r.stats
    assert st.message_count == 3 * n + 2
    assert st.last_prompt == "one more: add a test for the parser"
    assert st.first_prompt == "step 1: refactor module 1"
    assert tokens(st) == (gen.tokens[0] + 5, gen.tokens[1] + 7, gen.tokens[2] + 13, gen.tokens[3] + 11)


def _turns(writer, prompts, usage):
    return b"".join(
        b"".join(line(x) for x in [writer.prompt_record(p), *writer.assistant_records("ok", usage=usage)])
        for p in prompts)


USAGE = {"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 4}


def test_file_rewritten_shorter_is_read_again_from_the_start(claude):
    s = claude.session()
    s.write_raw(_turns(s, ["one", "two", "three"], USAGE))
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 6 and tokens(r.stats) == (3, 6, 12, 9)
    ino = s.path.stat().st_ino

    # Rewritten in place (same inode), shorter: e.g. messages removed.
    data = _turns(s, ["only"], USAGE)
    with open(s.path, "r+b") as f:
        f.truncate(0)
        f.write(data)
    assert s.path.stat().st_ino == ino and len(data) < r.offset
    assert r.update() is True
    assert r.stats.message_count == 2
    assert tokens(r.stats) == (1, 2, 4, 3)
    assert r.stats.first_prompt == r.stats.last_prompt == "only"
    assert r.offset == len(data)


def test_file_replaced_by_rename_is_read_again_from_the_start(claude):
    s = claude.session()
    s.write_raw(_turns(s, ["one", "two"], USAGE))
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 4
    old_size = r.offset

    # A new file (new inode), LONGER than the old one: size alone would not tell.
    tmp = s.path.with_name("new.tmp")
    data = _turns(s, ["alpha", "beta", "gamma"], USAGE)
    tmp.write_bytes(data)
    assert len(data) > old_size
    os.replace(tmp, s.path)
    assert r.update() is True
    assert r.stats.message_count == 6  # not 4 + 6, not 4 + (the tail past the old offset)
    assert tokens(r.stats) == (3, 6, 12, 9)
    assert r.stats.first_prompt == "alpha" and r.stats.last_prompt == "gamma"
    assert r.offset == len(data)


def test_assistant_message_split_over_records_counts_once_last_usage_wins(claude):
    s = claude.session()
    s.prompt("go")
    first, second = s.assistant_records("thinking aloud", tool_use={"name": "Bash"}, message_id="msg_split")
    # 2.1.29 writes the stream-start usage (output 1) on the first record, the final one later.
    first["message"]["usage"] = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0,
                                 "cache_read_input_tokens": 100}
    second["message"]["usage"] = {"input_tokens": 10, "output_tokens": 250, "cache_creation_input_tokens": 5,
                                  "cache_read_input_tokens": 100}
    s.write(first)
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 2
    assert tokens(r.stats) == (10, 1, 100, 0)
    s.write(second)  # the second record of the same message arrives in a later update
    r.update()
    assert r.stats.message_count == 2
    assert tokens(r.stats) == (10, 250, 100, 5)
    # And a third record of it within one read, plus a new message.
    third = dict(second, uuid=str(uuid.uuid4()))
    s.write(third, s.assistant_records("next", message_id="msg_other", usage=USAGE))
    r.update()
    assert r.stats.message_count == 3
    assert tokens(r.stats) == (11, 252, 104, 8)


@pytest.mark.parametrize("cut", [1, 5, 9, 12, 40, 120, -2, -1])
def test_truncated_last_line_counts_once_completed(claude, cut):
    s = claude.session()
    s.turn("first")
    rec = line(s.prompt_record("second prompt, caf\u00e9 \u2014 na\u00efve"))
    s.write_raw(rec[:cut])
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 2 and r.stats.last_prompt == "first"
    assert r.stats.bad_lines == 0
    r.update()
    assert r.stats.message_count == 2
    s.write_raw(rec[cut:])
    assert r.update() is True
    assert r.stats.message_count == 3
    assert r.stats.last_prompt == "second prompt, caf\u00e9 \u2014 na\u00efve"
    assert r.stats.bad_lines == 0
    assert r.bytes_read == r.offset == s.path.stat().st_size


def test_truncated_utf8_sequence_completed_later(claude):
    s = claude.session()
    rec = line(s.prompt_record("\u00e9t\u00e9 \U0001F600"))
    cut = rec.index("\U0001F600".encode()) + 2  # inside the 4-byte sequence
    s.write_raw(rec[:cut])
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 0
    s.write_raw(rec[cut:])
    r.update()
    assert r.stats.message_count == 1 and r.stats.last_prompt == "\u00e9t\u00e9 \U0001F600"
    assert r.stats.bad_lines == 0


@pytest.mark.parametrize("cut", [300, 600, 5000])
def test_truncated_long_bookkeeping_line_then_records(claude, cut):
    """A skippable record caught half written (before and after the reader can tell
    it is skippable), completed later together with a prompt: the prompt counts."""
    s = claude.session()
    s.turn("first")
    big = line({"type": "file-history-snapshot", "messageId": "m",
                "snapshot": {"trackedFileBackups": {"f": "y" * 20000}}})
    s.write_raw(big[:cut])
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 2
    s.write_raw(big[cut:] + line(s.prompt_record("after the snapshot")))
    r.update()
    assert r.stats.message_count == 3 and r.stats.last_prompt == "after the snapshot"
    assert r.stats.bad_lines == 0


def test_skipped_records_still_date_the_session(claude):
    s = claude.session()
    s.turn("hi")
    s.write_raw(line({"type": "api-request", "sessionId": s.id, "id": "x", "timestamp": "2099-01-01T00:00:00.000Z",
                      "params": {"p": "z" * 5000}}))
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.last_ts == "2099-01-01T00:00:00.000Z"
    assert r.stats.message_count == 2


def test_file_rewritten_in_place_and_grown_back_is_read_again(claude):
    """Same inode, rewritten (a tail rewrite) and by the next read longer than before:
    the size alone cannot tell; the bytes before the old offset no longer match."""
    s = claude.session()
    s.write_raw(_turns(s, ["one", "two"], USAGE))
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.message_count == 4
    ino, old = s.path.stat().st_ino, r.offset
    data = _turns(s, ["uno", "dos", "tres"], USAGE)
    with open(s.path, "r+b") as f:
        f.truncate(0)
        f.write(data)
    assert s.path.stat().st_ino == ino and len(data) > old
    r.update()
    assert r.stats.message_count == 6
    assert tokens(r.stats) == (3, 6, 12, 9)
    assert (r.stats.first_prompt, r.stats.last_prompt) == ("uno", "tres")


# ------------------------------------------------------------------- torn records
# A crash (or a full disk) cuts a record mid-write; ``--resume`` then appends to the
# file, so the next record lands on the same physical line as the cut one.

def _stats_tuple(st) -> tuple:
    return (st.message_count, st.prompt_count, len(st.message_ids), tuple(st.tokens), st.first_prompt,
            st.last_prompt, st.ai_title, st.custom_title, st.last_ts, st.model,
            sorted(st.usage.facts.rows.items()), sorted(st.usage.facts.ledger.items()))


def _torn_file(s, before: list[bytes], cut_rec: bytes, cut: int, after: list[bytes]) -> bytes:
    data = b"".join(before) + cut_rec[:cut] + b"".join(after)
    s.write_raw(data)
    return data


def _reference(tmp_path, before: list[bytes], after: list[bytes]):
    """The totals of the same file without the cut record."""
    ref = tmp_path / "reference.jsonl"
    ref.write_bytes(b"".join(before) + b"".join(after))
    r = TranscriptReader(str(ref))
    r.update()
    return r.stats


def _resumed(s) -> list[bytes]:
    return [line(s.prompt_record("resumed: fix the migration")),
            *[line(x) for x in s.assistant_records("On it.", usage={"input_tokens": 7, "output_tokens": 70})],
            line(s.cost_state_record({"claude-opus-5-5": 0.25})),
            line({"type": "ai-title", "aiTitle": "Migration fix", "sessionId": s.id})]


@pytest.mark.parametrize("kind", ["prompt", "assistant", "file-history-snapshot", "attachment", "api-request",
                                  "ai-title"])
def test_record_cut_mid_write_then_resumed_keeps_every_following_record(claude, tmp_path, caplog, kind):
    s = claude.session()
    gen = Realistic(s, random.Random(3))
    recs = {"prompt": s.prompt_record("the prompt the crash cut"),
            "assistant": s.assistant_records("cut reply")[0],
            "file-history-snapshot": gen.snapshot(3000), "attachment": gen.attachment(3000),
            "api-request": gen.api_request(3000),
            "ai-title": {"type": "ai-title", "aiTitle": "Cut title", "sessionId": s.id}}
    cut_rec = line(recs[kind])
    before = [line(s.prompt_record("first")), *[line(x) for x in s.assistant_records("A.")]]
    after = _resumed(s)
    expected = _stats_tuple(_reference(tmp_path, before, after))
    # Cut points: inside a string, after a colon, after a comma, right after a nested object.
    cuts = {len(cut_rec) // 2, cut_rec.index(b":") + 1, cut_rec.index(b",") + 1, 7, len(cut_rec) - 3}
    if b"}," in cut_rec:
        cuts.add(cut_rec.index(b"},") + 1)
    for cut in sorted(cuts):
        s.path.unlink(missing_ok=True)
        _torn_file(s, before, cut_rec, cut, after)
        whole = TranscriptReader(str(s.path))
        whole.update()
        assert _stats_tuple(whole.stats) == expected, (kind, cut)
        assert whole.stats.last_prompt == "resumed: fix the migration"
        assert whole.stats.bad_lines == 1, (kind, cut)
        # Live: the cut record is the unfinished last line, then the resume appends.
        s.path.unlink()
        s.write_raw(b"".join(before) + cut_rec[:cut])
        live = TranscriptReader(str(s.path))
        live.update()
        assert live.stats.last_prompt == "first"
        s.write_raw(b"".join(after))
        live.update()
        assert _stats_tuple(live.stats) == expected, (kind, cut)
    torn_logs = [r for r in caplog.records if "cut off mid-write" in r.getMessage()]
    assert torn_logs and all(str(s.path) in r.getMessage() for r in torn_logs)
    assert len(torn_logs) == 2 * len(cuts)  # once per reader, not once per line


@pytest.mark.parametrize("chunk", [5, 31, 47, 48, 49, 512, 4096])
def test_long_skipped_record_cut_then_resumed_across_chunk_boundaries(claude, tmp_path, monkeypatch, chunk):
    """The cut record is long enough to be skipped while it streams in chunks; the
    glued record's first bytes can straddle two chunks."""
    from helm_monitor.sources.claude import transcript
    monkeypatch.setattr(transcript, "READ_CHUNK_BYTES", chunk)
    s = claude.session()
    gen = Realistic(s, random.Random(5))
    before = [line(s.prompt_record("first")), *[line(x) for x in s.assistant_records("A.")]]
    after = _resumed(s)
    expected = _stats_tuple(_reference(tmp_path, before, after))
    for rec in (gen.attachment(20_000), gen.snapshot(20_000), gen.api_request(20_000)):
        cut_rec = line(rec)
        for cut in (600, 9_999, len(cut_rec) - 2):
            s.path.unlink(missing_ok=True)
            _torn_file(s, before, cut_rec, cut, after)
            r = TranscriptReader(str(s.path))
            r.update()
            assert _stats_tuple(r.stats) == expected, (rec["type"], cut)
            assert r.stats.bad_lines == 1
            assert not r.has_unfinished_line


def test_records_glued_without_their_newlines_are_all_read(claude, tmp_path):
    """A cut record, a run of NUL bytes (what a power loss leaves in a file's last block)
    and whole records missing their newlines on one line: every whole record counts, in order."""
    s = claude.session()
    p1, p2, p3 = (line(s.prompt_record(t)) for t in ("one", "two", "three"))
    title = line({"type": "custom-title", "customTitle": "Named", "sessionId": s.id})
    cut = line(s.prompt_record("cut"))[:30]
    s.write_raw(p1 + cut + b"\x00" * 64 + p2[:-1] + title[:-1] + p3)
    r = TranscriptReader(str(s.path))
    r.update()
    assert (r.stats.prompt_count, r.stats.first_prompt, r.stats.last_prompt) == (3, "one", "three")
    assert r.stats.custom_title == "Named"
    assert r.stats.bad_lines == 1


def test_nested_record_starts_in_a_whole_skipped_record_are_not_records(claude, caplog, monkeypatch):
    """A bookkeeping record that embeds objects shaped like records (a progress record
    carrying a message) is whole: nothing is counted from it, nothing is logged."""
    from helm_monitor.sources.claude import transcript
    s = claude.session()
    s.turn("first")
    inner = s.prompt_record("not a prompt of this session")
    big = line({"type": "progress", "data": {"message": inner, "more": [inner] * 3, "pad": "z" * 30_000},
                "sessionId": s.id})
    tail_rec = {"type": "progress", "data": {"last": inner}}
    for chunk in (64, 4 * 1024 * 1024):
        monkeypatch.setattr(transcript, "READ_CHUNK_BYTES", chunk)
        s.path.unlink()
        s.turn("first")
        s.write_raw(big + line(tail_rec) + big)
        r = TranscriptReader(str(s.path))
        r.update()
        assert r.stats.prompt_count == 1 and r.stats.last_prompt == "first"
        assert r.stats.bad_lines == 0
    assert [x for x in caplog.records if x.levelno >= 30] == []


@pytest.mark.parametrize("extra, text", [
    ({}, "<task-notification>\n<task-id>b7x</task-id>\n<status>completed</status>\n</task-notification>"),
    # 2.1.330 also marks the record itself (the sample's text is sampler filler).
    ({"origin": {"kind": "task-notification", "producer": "session-task"}, "promptSource": "system"},
     "lorem ipsum lorem ipsum"),
])
def test_background_task_notifications_are_not_prompts(claude, extra, text):
    """SPEC 5 (v2): Claude Code's own last-prompt skips them, and so does the session list."""
    s = claude.session()
    s.turn("start the background build")
    s.write(s.prompt_record(text, **extra))
    s.reply("The build finished.")
    r = TranscriptReader(str(s.path))
    r.update()
    assert (r.stats.prompt_count, r.stats.last_prompt) == (1, "start the background build")
    assert r.stats.message_count == 3


@pytest.mark.timeout(30)
def test_long_lines_full_of_nested_record_starts_stay_cheap(claude, monkeypatch):
    """Candidates inside a long record are each decoded as one nested value, not to the
    line's end: a multi-MB cut line with tens of thousands of them is still recovered."""
    s = claude.session()
    blocks = [{"type": "text", "text": f"block {i} " + "w" * 100} for i in range(40_000)]
    blob = line({"type": "api-request-blob", "sessionId": s.id, "messages": [
        {"parentUuid": None, "role": "user", "content": blocks}]})
    prompt = line(s.prompt_record("after"))
    assert len(blob) > 5_000_000
    for data in (blob[: len(blob) - 1000] + prompt, blob + prompt):
        s.path.unlink(missing_ok=True)
        s.write_raw(data)
        r = TranscriptReader(str(s.path))
        r.update()
        assert (r.stats.prompt_count, r.stats.last_prompt) == (1, "after")
        assert r.stats.bad_lines == (0 if data.startswith(blob) else 1)
