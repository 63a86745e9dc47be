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

from helm_monitor.claude.transcript import TranscriptReader


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
