"""The Codex CLI source: real 0.171.0 samples, live files, bad input, status from real flocks, costs."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard

from helm_monitor.sources.base import Watch
from helm_monitor.sources.codex import CodexSource, default_root
from helm_monitor.sources.redact import MASK
from tests.support.codex import OWNER_CHILD, CodexHome, line, now_iso
from tests.support.server import wait_until

SAMPLE = "codex-0.171.0"
T1 = "01a23041-3185-7183-91d9-eb8805f6c9ca"
T2 = "01a23041-3909-7322-bdeb-f1b242c53929"
T3 = "01a23041-401e-79a1-89e6-040c03fedf61"
T4 = "01a23041-4c09-7130-8a6c-4d410b693071"
T5 = "01a23041-a780-7601-be49-4fe4c5f884ab"
LOG = "helm_monitor.sources.codex"


def scan(src: CodexSource) -> set[str]:
    changed = set()
    for p in src.iter_paths():
        changed |= src.apply(p)
    return changed


def warnings(caplog, needle: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(LOG) and r.levelno >= logging.WARNING and needle in r.getMessage()]


@pytest.fixture
def sample(sample_dir) -> Path:
    return sample_dir(SAMPLE) / "home" / ".codex"


@pytest.fixture
def home(tmp_path) -> CodexHome:
    return CodexHome(tmp_path / "codex")


def neighbour(home: CodexHome):
    r = home.rollout().meta(cwd="/home/user/code/beta").turn_started()
    r.user("neighbour prompt").agent("neighbour reply").tokens(100, 40, 7).turn_complete()
    return r


def assert_neighbour_ok(src: CodexSource, r) -> None:
    s = src.session(r.id)
    assert s is not None and s["messageCount"] == 2 and s["firstPrompt"] == "neighbour prompt"
    assert s["tokens"] == {"input": 60, "output": 7, "cacheRead": 40, "cacheCreation": 0}


# ---------------------------------------------------------------------------------------------- samples
# Worked out by hand from tests/fixtures/codex-0.171.0/home/.codex/ (line numbers count from 0):
# projectPath/createdAt/gitBranch/version: line 0 (session_meta payload cwd, timestamp, git.branch, cli_version);
# updatedAt: the last line's timestamp; model: the last turn_context; tokens: the last event_msg/token_count
# total_token_usage (input = input_tokens - cached_input_tokens); messageCount: item_completed UserMessage +
# AgentMessage lines; title: session_index.jsonl for T5, else the first UserMessage text; sizeBytes: ls -l.
SAMPLE_SESSIONS = {
    T1: {  # exec, one turn with a shell call: UserMessage (l.8), AgentMessage (l.9, l.16)
        "projectPath": "/home/user/code/alpha", "title": "@tool Session 1 in alpha: check that the shell works",
        "firstPrompt": "@tool Session 1 in alpha: check that the shell works",
        "lastPrompt": "@tool Session 1 in alpha: check that the shell works", "messageCount": 3,
        "createdAt": "2026-12-01T06:18:28.627Z", "updatedAt": "2026-12-01T06:18:29.166Z",
        # l.19: input 20748, cached 10192, output 224
        "tokens": {"input": 10556, "output": 224, "cacheRead": 10192, "cacheCreation": 0}, "sizeBytes": 39901},
    T2: {  # exec + `exec resume`: a second task_started..task_complete (l.22-30) in the same file
        "projectPath": "/home/user/code/beta", "title": "@tool Session 2 in beta: check that the shell works",
        "firstPrompt": "@tool Session 2 in beta: check that the shell works",
        "lastPrompt": "Follow-up sent with resume", "messageCount": 5,
        "createdAt": "2026-12-01T06:18:30.547Z", "updatedAt": "2026-12-01T06:18:34.925Z",
        # l.29: input 31336, cached 30779, output 310
        "tokens": {"input": 557, "output": 310, "cacheRead": 30779, "cacheCreation": 0}, "sizeBytes": 46276},
    T3: {  # exec + `exec resume --last` ("continue"): two turns, no tool
        "projectPath": "/home/user/code/alpha", "title": "Session 3 in alpha: say hello and summarise the README",
        "firstPrompt": "Session 3 in alpha: say hello and summarise the README",
        "lastPrompt": "Follow-up sent with continue", "messageCount": 4,
        "createdAt": "2026-12-01T06:18:32.358Z", "updatedAt": "2026-12-01T06:18:34.374Z",
        # l.22: input 20711, cached 20372, output 186
        "tokens": {"input": 339, "output": 186, "cacheRead": 20372, "cacheCreation": 0}, "sizeBytes": 41695},
    T4: {  # the one captured while running (@hang): reply 20 s later
        "projectPath": "/home/user/code/beta", "title": "@hang Live session: the reply streams slowly",
        "firstPrompt": "@hang Live session: the reply streams slowly",
        "lastPrompt": "@hang Live session: the reply streams slowly", "messageCount": 2,
        "createdAt": "2026-12-01T06:18:35.409Z", "updatedAt": "2026-12-01T06:18:55.528Z",
        # l.12: input 10290, cached 10178, output 85
        "tokens": {"input": 112, "output": 85, "cacheRead": 10178, "cacheCreation": 0}, "sizeBytes": 35266},
    T5: {  # interactive TUI, two prompts; titled by session_index.jsonl
        "projectPath": "/home/user/code/alpha", "title": "Interactive session run a harmless c",
        "firstPrompt": "@tool Interactive session: run a harmless command",
        "lastPrompt": "@slow Interactive: second prompt, streams slowly", "messageCount": 5,
        # session_meta.payload.timestamp (06:18:58.836) is earlier than its line's own timestamp (06:19:00.363)
        "createdAt": "2026-12-01T06:18:58.836Z", "updatedAt": "2026-12-01T06:19:13.123Z",
        # l.29: input 38232, cached 25319, output 332
        "tokens": {"input": 12913, "output": 332, "cacheRead": 25319, "cacheCreation": 0}, "sizeBytes": 53077},
}


def test_sample_sessions_every_field(sample):
    src = CodexSource(str(sample))
    assert scan(src) == set(SAMPLE_SESSIONS)
    assert src.session_ids() == set(SAMPLE_SESSIONS)
    for tid, want in SAMPLE_SESSIONS.items():
        expected = {
            "id": tid, "source": "codex",
            "projectDir": None,  # Codex has no project folder
            "gitBranch": "main",  # every sample's session_meta.git.branch
            "model": "mock-model",  # every turn_context.payload.model
            "status": "ended", "pid": None,  # no thread-writer-locks/ in the samples
            "subagentCount": 0,  # no session_meta names a parent
            "version": "0.171.0",
            # Codex records no cost, and genai-prices has no list price for the mock's model
            "cost": {"usd": None, "basis": "unpriced", "unpricedModels": ["mock-model"]},
            **want,
        }
        assert src.session(tid) == expected, tid


def test_sample_conversation_pages(sample):
    src = CodexSource(str(sample))
    scan(src)
    conv = src.conversation(T1)
    with conv.lock:
        page = conv.page(0, 100)
    assert page["total"] == 5 and page["nextOffset"] is None
    kinds = [(m["role"], m["kind"], [b["type"] for b in m["blocks"]]) for m in page["messages"]]
    assert kinds == [("user", "prompt", ["text"]), ("assistant", "reply", ["text"]),
                     ("assistant", "reply", ["tool_use"]), ("user", "tool-result", ["tool_result"]),
                     ("assistant", "reply", ["text"])]
    msgs = page["messages"]
    assert msgs[0]["blocks"][0]["text"] == "@tool Session 1 in alpha: check that the shell works"
    assert msgs[0]["timestamp"] == "2026-12-01T06:18:28.771Z"  # line 8
    # the injected <environment_context> user message (line 3) is not shown
    assert not any("environment_context" in json.dumps(m) for m in msgs)
    assert msgs[2]["blocks"][0] == {"type": "tool_use", "id": "call_DTwGPF9aeEjEJJqnn4P0OgwT",
                                    "name": "exec_command", "input": '{"cmd": "echo hi"}'}
    assert msgs[3]["blocks"][0]["toolUseId"] == "call_DTwGPF9aeEjEJJqnn4P0OgwT"
    assert msgs[3]["blocks"][0]["text"].endswith("Output:\nhi\n") and msgs[3]["blocks"][0]["isError"] is False
    assert msgs[4]["blocks"][0]["text"].endswith("That is all the mock model had to do.")
    with conv.lock:
        p2 = conv.page(3, 1)
    assert [m["index"] for m in p2["messages"]] == [3] and p2["nextOffset"] == 4 and p2["total"] == 5


def test_default_root():
    assert default_root({"HOME": "/home/u"}) == "/home/u/.codex"
    assert default_root({"HOME": "/home/u", "CODEX_HOME": "/srv/codex"}) == "/srv/codex"
    assert default_root({"HOME": "/home/u", "CODEX_HOME": "/srv/codex", "HELM_CODEX_DIR": "/x/y"}) == "/x/y"
    assert default_root({"HOME": "/home/u", "CODEX_HOME": ""}) == "/home/u/.codex"


def test_watches_claims_and_session_for_path(home):
    src = CodexSource(str(home.root))
    root = str(home.root)
    assert set(src.watches()) == {Watch(root, False), Watch(root + "/sessions", True),
                                  Watch(root + "/archived_sessions", False),
                                  Watch(root + "/thread-writer-locks", False)}
    tid = "01a23041-3185-7183-91d9-eb8805f6c9ca"
    roll = f"{root}/sessions/2026/12/01/rollout-2026-12-01T06-18-28-{tid}.jsonl"
    assert src.claims(roll) and src.claims(roll + ".zst") and src.claims(root + "/session_index.jsonl")
    assert not src.claims(root + "/logs_2.sqlite-wal") and not src.claims(root + "/skills/x")
    assert src.session_for_path(roll) == tid and src.session_for_path(roll + ".zst") == tid
    assert src.session_for_path(f"{root}/thread-writer-locks/{tid}.lock") == tid
    assert src.session_for_path(f"{root}/thread-writer-locks/.coordination.lock") is None
    assert src.session_for_path(root + "/session_index.jsonl") is None
    # an empty source costs nothing and lists nothing
    assert scan(src) == set() and src.session_ids() == set() and src.check_liveness() == set()


# ---------------------------------------------------------------------------------------------- live files
def test_new_session_append_and_removal(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta(ts="2026-12-01T06:00:00.000Z").turn_started(ts="2026-12-01T06:00:00.100Z")
    assert src.apply(str(r.path)) == {r.id}
    s = src.session(r.id)
    assert s["messageCount"] == 0 and s["title"] == "Untitled session" and s["firstPrompt"] is None
    assert s["createdAt"] == "2026-12-01T06:00:00.000Z" and s["updatedAt"] == "2026-12-01T06:00:00.100Z"
    r.user("first question", ts="2026-12-01T06:00:01.000Z")
    assert src.apply(str(r.path)) == {r.id}
    s = src.session(r.id)
    assert (s["messageCount"], s["title"], s["firstPrompt"], s["lastPrompt"]) == \
        (1, "first question", "first question", "first question")
    r.agent("answer", ts="2026-12-01T06:00:02.000Z").tokens(1000, 600, 50, cache_write=25,
                                                            ts="2026-12-01T06:00:02.100Z")
    r.turn_complete(ts="2026-12-01T06:00:02.200Z")
    assert src.apply(str(r.path)) == {r.id}
    s = src.session(r.id)
    assert s["messageCount"] == 2 and s["updatedAt"] == "2026-12-01T06:00:02.200Z"
    # input_tokens is the whole prompt: the 600 cached and the 25 written are parts of it
    assert s["tokens"] == {"input": 375, "output": 50, "cacheRead": 600, "cacheCreation": 25}
    assert s["sizeBytes"] == r.path.stat().st_size
    assert src.apply(str(r.path)) == set()  # nothing new
    r.path.unlink()
    assert src.apply(str(r.path)) == {r.id}
    assert src.session(r.id) is None and r.id not in src.session_ids() and src.conversation(r.id) is None


def test_directory_apply_and_full_scan_reconcile(home):
    src = CodexSource(str(home.root))
    a = neighbour(home)
    b = home.rollout(when=_dt.datetime(2025, 5, 6, 7, 8, 9)).meta().turn_started().user("b")
    assert src.apply(str(home.sessions)) == {a.id, b.id}
    shutil.rmtree(b.path.parent)
    c = home.rollout(archived=True).meta().turn_started().user("archived one")
    assert src.full_scan() == {b.id, c.id}  # b gone, c new, a unchanged
    assert src.session_ids() == {a.id, c.id} and src.session(c.id)["firstPrompt"] == "archived one"


def test_legacy_rollout(home):
    """A pre-paginated thread: event_msg/user_message, agent_message, task_started/task_complete."""
    src = CodexSource(str(home.root))
    r = home.rollout(paginated=False).meta(version="0.98.0").turn_started(model="gpt-5-codex")
    r.user("legacy prompt").agent("legacy reply").tool("ls", "a\nb\n").agent("done").tokens(500, 100, 20)
    r.turn_complete().turn_started(model="gpt-5.1-codex").user("second legacy prompt")
    scan(src)
    s = src.session(r.id)
    assert (s["messageCount"], s["firstPrompt"], s["lastPrompt"], s["model"], s["version"]) == \
        (4, "legacy prompt", "second legacy prompt", "gpt-5.1-codex", "0.98.0")
    assert s["tokens"] == {"input": 400, "output": 20, "cacheRead": 100, "cacheCreation": 0}
    conv = src.conversation(r.id)
    with conv.lock:
        page = conv.page()
    assert [(m["kind"], m["blocks"][0]["type"]) for m in page["messages"]] == [
        ("prompt", "text"), ("reply", "text"), ("reply", "tool_use"), ("tool-result", "tool_result"),
        ("reply", "text"), ("prompt", "text")]
    assert page["messages"][0]["blocks"][0]["text"] == "legacy prompt"


def test_injected_context_is_never_a_prompt(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started()  # writes a response_item user <environment_context> message
    r.record("response_item", {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "# AGENTS.md instructions for /home/user/code/alpha\n\nbe nice"}]})
    scan(src)
    s = src.session(r.id)
    assert (s["firstPrompt"], s["lastPrompt"], s["messageCount"], s["title"]) == (None, None, 0, "Untitled session")


def test_prompts_titles_and_conversation_are_masked(home):
    src = CodexSource(str(home.root))
    secret = "sk-proj-" + "A1b2C3d4" * 4
    r = home.rollout().meta().turn_started().user(f"deploy with key {secret} " + "word " * 100)
    r.tool(f"echo {secret}", f"token={secret}").agent(f"I used {secret}")
    home.name_thread(r.id, f"Title with {secret}")
    scan(src)
    s = src.session(r.id)
    assert secret not in json.dumps(s) and MASK in s["firstPrompt"] and MASK in s["title"]
    assert len(s["firstPrompt"]) <= 200 and s["firstPrompt"].endswith("\u2026")
    conv = src.conversation(r.id)
    with conv.lock:
        page = conv.page()
    shown = json.dumps(page, ensure_ascii=False)
    assert page["total"] == 4 and secret not in shown and shown.count(MASK) == 4, shown


def test_session_index_titles_newest_wins_incrementally(home):
    src = CodexSource(str(home.root))
    r = neighbour(home)
    scan(src)
    assert src.session(r.id)["title"] == "neighbour prompt"
    home.name_thread(r.id, "First name")
    home.name_thread("01a23041-0000-7000-8000-000000000000", "a thread with no rollout")
    assert src.apply(str(home.index)) == {r.id}
    assert src.session(r.id)["title"] == "First name"
    read = src._index.bytes_read
    home.name_thread(r.id, "Renamed")
    added = len(line({"id": r.id, "thread_name": "Renamed", "updated_at": now_iso()}))
    assert src.apply(str(home.index)) == {r.id}
    assert src.session(r.id)["title"] == "Renamed"
    assert src._index.bytes_read - read == added  # only the appended line was read
    home.index.unlink()
    assert src.apply(str(home.index)) == {r.id} and src.session(r.id)["title"] == "neighbour prompt"


def test_one_thread_over_several_files(home):
    src = CodexSource(str(home.root))
    first = home.rollout(when=_dt.datetime(2026, 11, 30, 10, 0, 0)).meta(ts="2026-11-30T10:00:00.000Z")
    first.turn_started(model="model-a", ts="2026-11-30T10:00:00.100Z").user("old prompt", ts="2026-11-30T10:00:01.000Z")
    first.agent("old reply", ts="2026-11-30T10:00:02.000Z").tokens(100, 0, 10, ts="2026-11-30T10:00:02.100Z")
    first.turn_complete(ts="2026-11-30T10:00:03.000Z")
    # the same thread continued in a second physical file (a reverted thread's "_<rollout id>" suffix)
    second = home.rollout(first.id, when=_dt.datetime(2026, 12, 1, 9, 0, 0), suffix="_01a23041-ffff")
    second.meta(ts="2026-12-01T09:00:00.000Z", branch="feature").turn_started(model="model-b",
                                                                              ts="2026-12-01T09:00:00.100Z")
    second.user("new prompt", ts="2026-12-01T09:00:01.000Z")
    assert scan(src) == {first.id}
    assert src.session_ids() == {first.id}
    s = src.session(first.id)
    assert (s["messageCount"], s["firstPrompt"], s["lastPrompt"], s["model"]) == (3, "old prompt", "new prompt",
                                                                                  "model-b")
    assert (s["createdAt"], s["updatedAt"]) == ("2026-11-30T10:00:00.000Z", "2026-12-01T09:00:01.000Z")
    assert s["gitBranch"] == "main"  # the thread's first session_meta
    assert s["tokens"]["output"] == 10
    assert s["sizeBytes"] == first.path.stat().st_size + second.path.stat().st_size
    assert scan(src) == set() and src.session(first.id)["messageCount"] == 3  # applied again: nothing doubles
    conv = src.conversation(first.id)
    with conv.lock:
        texts = [m["blocks"][0]["text"] for m in conv.page()["messages"]]
    assert texts == ["old prompt", "old reply", "new prompt"]
    second.path.unlink()
    assert src.apply(str(second.path)) == {first.id} and src.session(first.id)["messageCount"] == 2


def test_subagent_threads_count_in_their_parent(home):
    src = CodexSource(str(home.root))
    parent = neighbour(home)
    child = home.rollout().meta(source={"subagent": {"thread_spawn": {"parent_thread_id": parent.id, "depth": 1}}},
                                thread_source="subagent")
    child.turn_started().user("delegated task")
    newer = home.rollout().meta(parent_thread_id=parent.id).turn_started()
    scan(src)
    assert src.session(parent.id)["subagentCount"] == 2
    # Sub-agents' threads are part of their parent's session, never listed on their own.
    assert child.id not in src.session_ids() and newer.id not in src.session_ids() and parent.id in src.session_ids()
    assert src.session(child.id) is None
    child.path.unlink()
    assert src.apply(str(child.path)) == {child.id, parent.id}
    assert src.session(parent.id)["subagentCount"] == 1 and newer.id not in src.session_ids()


# ---------------------------------------------------------------------------------------------- compressed
def compress(path: Path, remove_plain: bool = True) -> Path:
    zst = path.with_name(path.name + ".zst")
    zst.write_bytes(zstandard.ZstdCompressor(level=3).compress(path.read_bytes()))
    if remove_plain:
        path.unlink()
    return zst


def test_zst_rollout_read_once_and_plain_preferred(home):
    src = CodexSource(str(home.root))
    r = home.rollout(archived=True).meta().turn_started().user("compressed prompt").agent("reply")
    plain_size = r.path.stat().st_size
    zst = compress(r.path, remove_plain=False)
    r.user("only in the plain file")  # both exist: the plain one wins
    assert scan(src) == {r.id}
    s = src.session(r.id)
    assert s["messageCount"] == 3 and s["sizeBytes"] == r.path.stat().st_size
    # the plain file goes (compressed by Codex's worker): the .zst is read instead
    r.path.unlink()
    assert src.apply(str(r.path)) == {r.id}
    s = src.session(r.id)
    assert s["messageCount"] == 2 and s["lastPrompt"] == "compressed prompt" and s["sizeBytes"] == zst.stat().st_size
    assert plain_size > zst.stat().st_size
    read = src.bytes_read(r.id)
    assert read == zst.stat().st_size
    assert src.apply(str(zst)) == set() and src.full_scan() == set()
    assert src.bytes_read(r.id) == read  # immutable: not read again for the same (inode, size, mtime)
    conv = src.conversation(r.id)
    with conv.lock:
        assert [m["kind"] for m in conv.page()["messages"]] == ["prompt", "reply"]
    zst.unlink()
    assert src.apply(str(zst)) == {r.id} and src.session_ids() == set()


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_bad_zst_logged_once_and_harms_no_neighbour(home, caplog, damage):
    src = CodexSource(str(home.root))
    n = neighbour(home)
    r = home.rollout().meta().turn_started().user("before the damage")
    for i in range(2000):
        r.agent(f"reply {i} " + os.urandom(16).hex())
    zst = compress(r.path)
    data = zst.read_bytes()
    if damage == "truncated":
        zst.write_bytes(data[: len(data) // 2])
    else:
        zst.write_bytes(data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:])
    with caplog.at_level(logging.INFO):
        scan(src)
        src.full_scan()
        os.utime(zst, (1, 1))  # a new (inode, size, mtime): read again, still bad
        src.apply(str(zst))
    assert_neighbour_ok(src, n)
    assert len(warnings(caplog, str(zst))) == 1, warnings(caplog)
    assert len(warnings(caplog)) == 1
    s = src.session(r.id)  # listed with what could be read (faults never drop a session)
    assert s is not None and s["messageCount"] < 2001


def test_garbage_zst_is_skipped(home, caplog):
    src = CodexSource(str(home.root))
    n = neighbour(home)
    bogus = home.rollout(archived=True).path
    bogus.parent.mkdir(parents=True, exist_ok=True)
    zst = bogus.with_name(bogus.name + ".zst")
    zst.write_bytes(b"this is not zstd at all\n" * 10)
    with caplog.at_level(logging.INFO):
        scan(src)
        scan(src)
    assert_neighbour_ok(src, n)
    assert len(warnings(caplog, str(zst))) == 1


# ---------------------------------------------------------------------------------------------- bad input
def test_huge_first_line(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta(instructions_bytes=1_500_000, cwd="/big").turn_started().user("after a 1.5 MB meta")
    assert r.path.read_bytes().index(b"\n") > 1_500_000
    scan(src)
    s = src.session(r.id)
    assert (s["projectPath"], s["firstPrompt"], s["version"]) == ("/big", "after a 1.5 MB meta", "0.171.0")
    # what is kept per file is the few fields shown, not the system prompt
    stats = next(iter(src._files.values())).stats
    assert all(len(str(getattr(stats, n))) < 1000 for n in stats.__slots__)


def test_bad_lines_logged_once_and_harm_no_neighbour(home, caplog):
    src = CodexSource(str(home.root))
    n = neighbour(home)
    r = home.rollout().meta().turn_started().user("good prompt")
    r.raw(b'{"timestamp":"2026-12-01T06:00:00.000Z","type":"event_msg","payload":{"type":"us\n')  # torn
    r.raw(b"garbage that is not json\n")
    r.raw(b'{"timestamp":"2026-12-01T06:00:00.000Z","type":"event_msg","payload":{"type":"user_message",'
          b'"message":"caf\xe9 \xff"}}\n')  # not UTF-8: still read, bytes replaced
    r.raw(b'\xff\xfe\x00garbage\n')
    r.record("future_record_kind", {"anything": 1})
    r.record("future_record_kind", {"anything": 2})
    r.event({"type": "item_completed", "future_field": {"x": 1}, "item": {
        "type": "AgentMessage", "id": "m1", "future": True, "content": [{"type": "Text", "text": "still counted"}]}})
    r.event({"type": "some_future_event", "x": 1})
    r.raw(b'[1, 2, 3]\n')
    with caplog.at_level(logging.INFO):
        scan(src)
        r.user("after the bad lines")
        scan(src)
        src.full_scan()
    assert_neighbour_ok(src, n)
    s = src.session(r.id)
    assert s["messageCount"] == 3 and s["lastPrompt"] == "after the bad lines"
    logged = warnings(caplog)
    assert len([m for m in logged if "not JSON" in m and "UTF-8" not in m]) == 1, logged
    assert len([m for m in logged if "UTF-8" in m]) == 1, logged
    assert len([m for m in logged if "future_record_kind" in m]) == 1, logged
    assert len(logged) == 3, logged
    conv = src.conversation(r.id)
    with conv.lock:
        page = conv.page()
    assert [m["kind"] for m in page["messages"]] == ["prompt", "reply", "prompt"]


def test_unfinished_last_line_waits_for_its_newline(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started()
    full = line({"timestamp": now_iso(), "ordinal": 9, "type": "event_msg", "payload": {
        "type": "item_completed", "item": {"type": "UserMessage", "content": [{"type": "text", "text": "half"}]}}})
    r.raw(full[:40])
    scan(src)
    assert src.session(r.id)["messageCount"] == 0
    r.raw(full[40:])
    assert src.apply(str(r.path)) == {r.id} and src.session(r.id)["firstPrompt"] == "half"


UNPRIVILEGED_CHILD = r"""
import json, logging, os, sys
records = []
class H(logging.Handler):
    def emit(self, r):
        if r.name.startswith("helm_monitor.sources"):  # the source's own (not pricing's note on mock-model)
            records.append([r.levelno, r.getMessage()])
logging.getLogger("helm_monitor").addHandler(H()); logging.getLogger("helm_monitor").setLevel(logging.INFO)
from helm_monitor.sources.codex import CodexSource
src = CodexSource(sys.argv[1])
for _ in range(3):
    for p in src.iter_paths():
        src.apply(p)
    for p in sys.argv[2:]:
        src.apply(p)
try:
    os.listdir(sys.argv[2]); readable = True
except OSError:
    readable = False
print(json.dumps({"sessions": {k: v["messageCount"] for k, v in src.sessions().items()}, "log": records,
                  "readable": readable}))
"""


def test_unreadable_directory(home):
    n = neighbour(home)
    hidden = home.rollout(when=_dt.datetime(2025, 1, 2, 3, 4, 5)).meta().turn_started().user("private")
    folder = hidden.path.parent
    cmd = [sys.executable, "-c", UNPRIVILEGED_CHILD, str(home.root), str(folder), str(hidden.path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a directory unreadable to root")
        cmd = [shutil.which("setpriv"), "--bounding-set=-dac_override,-dac_read_search", *cmd]
    folder.chmod(0)
    try:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        out = subprocess.run(cmd, capture_output=True, timeout=60, env=env, check=False)
    finally:
        folder.chmod(0o755)
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout)
    assert result["readable"] is False, "the child could list a mode-000 directory: the test proves nothing"
    assert result["sessions"] == {n.id: 2}
    warned = [m for lvl, m in result["log"] if lvl >= logging.WARNING]
    assert len([m for m in warned if str(folder) in m and "Permission denied" in m]) >= 1, warned
    assert len(warned) == len(set(warned)) <= 2, warned  # once per path: the folder, the rollout named in it


def test_symlink_and_directory_named_like_a_rollout(home, caplog):
    src = CodexSource(str(home.root))
    n = neighbour(home)
    real = home.rollout().meta().turn_started().user("x")
    link = n.path.parent / real.path.name.replace(real.id, "01a23041-aaaa-7000-8000-000000000001")
    os.symlink(real.path, link)
    folder = n.path.parent / "rollout-2026-01-01T00-00-00-01a23041-bbbb-7000-8000-000000000002.jsonl"
    folder.mkdir()
    with caplog.at_level(logging.INFO):
        scan(src)
        src.apply(str(link))
        src.apply(str(folder), True)
        src.apply(str(folder))
    assert src.session_ids() == {n.id, real.id}
    assert len(warnings(caplog, str(link))) == 1 and len(warnings(caplog, str(folder))) <= 1


# ---------------------------------------------------------------------------------------------- status
def test_lock_file_without_holder_is_ended(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started().user("mid-turn")  # no task_complete
    home.locks.mkdir()
    home.lock_path(r.id).touch()  # left behind, nobody holds it
    (home.locks / ".coordination.lock").touch()
    scan(src)
    assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("ended", None)
    assert src.check_liveness() == set()


def _owner(home: CodexHome, r) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", OWNER_CHILD, str(home.lock_path(r.id)), str(r.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def _stop(child: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if child.poll() is None:
        os.kill(child.pid, sig)
    child.wait()
    child.stdin.close()
    child.stdout.close()


def _tell(child: subprocess.Popen, cmd: str) -> None:
    child.stdin.write(cmd + "\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "ok"


def _pump(src: CodexSource, *paths) -> set[str]:
    changed = set()
    for p in paths:
        changed |= src.apply(str(p))
    return changed | src.check_liveness()


def test_status_from_a_real_flock_holder(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started().user("q").agent("a").turn_complete()
    scan(src)
    child = _owner(home, r)
    try:
        lock = home.lock_path(r.id)
        assert src.session_for_path(str(lock)) == r.id
        assert src.apply(str(lock)) == {r.id}
        assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("waiting", child.pid)
        _tell(child, "append " + json.dumps({"timestamp": now_iso(), "ordinal": 99, "type": "event_msg",
                                              "payload": {"type": "task_started", "turn_id": "t2"}}))
        assert _pump(src, r.path) == {r.id}
        assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("busy", child.pid)
        _tell(child, "append " + json.dumps({"timestamp": now_iso(), "ordinal": 100, "type": "event_msg",
                                              "payload": {"type": "task_complete", "turn_id": "t2"}}))
        assert _pump(src, r.path) == {r.id}
        assert src.session(r.id)["status"] == "waiting"
        _tell(child, "release")  # unlink, then unlock
        assert not lock.exists()
        assert _pump(src, lock) == {r.id}
        assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("ended", None)
    finally:
        _stop(child)


def test_holder_killed_without_unlinking_turns_ended(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started().user("q")
    scan(src)
    child = _owner(home, r)
    try:
        src.apply(str(home.lock_path(r.id)))
        assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("busy", child.pid)
    finally:
        _stop(child)
    assert home.lock_path(r.id).exists()  # left behind; no event comes: check_liveness notices
    assert wait_until(lambda: src.check_liveness() == {r.id}, 5, message="the dead holder noticed")
    assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("ended", None)


def test_lock_before_rollout_exists(home):
    """A TUI thread takes its lock before its (deferred) rollout is written."""
    src = CodexSource(str(home.root))
    r = home.rollout()
    home.locks.mkdir()
    child = _owner(home, r)
    try:
        assert src.apply(str(home.lock_path(r.id))) == set()  # no session yet
        r.meta().turn_started().user("now it exists")
        assert src.apply(str(r.path)) == {r.id}
        assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("busy", child.pid)
    finally:
        _stop(child)


# ---------------------------------------------------------------------------------------------- cost
def test_append_to_a_50mb_rollout_reads_only_the_appended_bytes(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started().user("big one")
    block = line({"timestamp": now_iso(), "ordinal": 5, "type": "response_item", "payload": {
        "type": "function_call_output", "call_id": "c", "output": "y" * 1_000_000}})
    with open(r.path, "ab") as f:
        for _ in range(50):
            f.write(block)
    assert r.path.stat().st_size > 50_000_000
    scan(src)
    read = src.bytes_read(r.id)
    assert read == r.path.stat().st_size
    before = r.path.stat().st_size
    r.agent("a small reply")
    assert src.apply(str(r.path)) == {r.id}
    assert src.bytes_read(r.id) - read == r.path.stat().st_size - before
    assert src.session(r.id)["messageCount"] == 2
    # and the conversation reads its page, not the file
    conv = src.conversation(r.id)
    with conv.lock:
        page = conv.page(0, 1)
    assert page["total"] == 52 and page["messages"][0]["blocks"][0]["text"] == "big one"


def test_conversation_paged_from_another_thread_while_the_pump_applies(home):
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started().user("p0")
    scan(src)
    conv = src.conversation(r.id)
    errors, totals = [], []

    def pager():
        try:
            for _ in range(200):
                with conv.lock:
                    totals.append(conv.page(0, 500)["total"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=pager)
    t.start()
    for i in range(200):
        r.agent(f"reply {i}")
        src.apply(str(r.path))
    t.join()
    assert not errors and totals == sorted(totals)
    with conv.lock:
        assert conv.page(0, 500)["total"] == 201
    assert src.session(r.id)["messageCount"] == 201


def test_lock_holder_found_by_inode_when_the_device_differs(home, tmp_path):
    """/proc/locks names the superblock's device, not st_dev (btrfs subvolumes, overlayfs)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    r = home.rollout().meta().turn_started().user("q").agent("a").turn_complete()
    home.locks.mkdir()
    lock = home.lock_path(r.id)
    lock.touch()
    ino = lock.stat().st_ino
    (proc / "locks").write_text(f"1: FLOCK  ADVISORY  WRITE 4242 00:ff:{ino} 0 EOF\n"
                                f"2: FLOCK  ADVISORY  WRITE 4343 00:fe:{ino + 1} 0 EOF\n")
    src = CodexSource(str(home.root), proc_root=str(proc))
    scan(src)
    assert (src.session(r.id)["status"], src.session(r.id)["pid"]) == ("waiting", 4242)
    (proc / "locks").write_text("")
    assert src.check_liveness() == {r.id} and src.session(r.id)["status"] == "ended"


# ---------------------------------------------------------------------------------------------- saved state
def _restarted(root, tmp_path, save_from: CodexSource) -> tuple[CodexSource, int]:
    """A fresh source over ``root`` given what ``save_from`` saved, through the live layer's real cache."""
    from helm_monitor.live.cache import StateCache
    cache = StateCache(tmp_path / "cache", str(root), "codex")
    assert cache.save(save_from)
    src = CodexSource(str(root))
    restored = cache.load_into(src)
    src.full_scan()
    src.drop_restored()
    return src, restored


def _read_total(src: CodexSource) -> int:
    return sum(src.bytes_read(t) for t in src.session_ids()) + src._index.bytes_read


def _compress_one(sample: Path) -> Path:
    """T2's rollout as Codex leaves an old one: ``.jsonl.zst``, the plain file gone."""
    plain = next(sample.rglob(f"*{T2}.jsonl"))
    zst = plain.with_name(plain.name + ".zst")
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    plain.unlink()
    return zst


def test_restart_over_an_unchanged_history_reads_nothing(sample, tmp_path):
    _compress_one(sample)
    first = CodexSource(str(sample))
    first.full_scan()
    assert _read_total(first) > 0
    before = first.sessions()
    src, restored = _restarted(sample, tmp_path, first)
    assert restored == 6  # five rollouts (one compressed) and the thread names
    assert _read_total(src) == 0
    assert src.sessions() == before
    assert src.session(T5)["title"] == before[T5]["title"]  # the name from session_index.jsonl, kept


def test_an_append_after_the_save_reads_only_the_appended_bytes(home, tmp_path):
    r = home.rollout().meta().turn_started().user("first prompt").agent("first reply").turn_complete()
    other = neighbour(home)
    first = CodexSource(str(home.root))
    first.full_scan()
    size = r.path.stat().st_size
    r.user("second prompt").agent("second reply")
    appended = r.path.stat().st_size - size
    src, _ = _restarted(home.root, tmp_path, first)
    assert src.bytes_read(r.id) == appended and src.bytes_read(other.id) == 0
    s = src.session(r.id)
    assert s["messageCount"] == 4 and s["firstPrompt"] == "first prompt" and s["lastPrompt"] == "second prompt"
    # the same as a reader that read everything
    fresh = CodexSource(str(home.root))
    fresh.full_scan()
    assert src.sessions() == fresh.sessions()


def test_a_rollout_replaced_after_the_save_is_read_again(home, tmp_path):
    r = home.rollout().meta().turn_started().user("old prompt").agent("old reply").turn_complete()
    first = CodexSource(str(home.root))
    first.full_scan()
    data = r.path.read_bytes().replace(b"old prompt", b"new prompt")
    tmp = r.path.with_name("replacement")
    tmp.write_bytes(data)
    os.replace(tmp, r.path)  # another inode, the same size and the same last bytes
    src, _ = _restarted(home.root, tmp_path, first)
    assert src.bytes_read(r.id) == len(data)
    assert src.session(r.id)["firstPrompt"] == "new prompt"


def test_a_corrupt_or_foreign_entry_is_read_again_and_the_rest_used(home, tmp_path):
    a = home.rollout().meta().turn_started().user("prompt of a").agent("reply").turn_complete()
    b = home.rollout().meta().turn_started().user("prompt of b").agent("reply").turn_complete()
    c = home.rollout().meta().turn_started().user("prompt of c").agent("reply").turn_complete()
    first = CodexSource(str(home.root))
    first.full_scan()
    before = first.sessions()
    state = json.loads(json.dumps(first.export_state()))
    rollouts = state["rollouts"]
    rollouts[str(a.path)]["p_users"] = "many"  # a stat of the wrong type
    rollouts[str(b.path)]["follower"]["offset"] = 10 ** 9  # past the file's end
    foreign = str(home.root.parent / "elsewhere" / a.path.name)  # a path outside this root
    rollouts[foreign] = dict(rollouts[str(c.path)], path=foreign)
    src = CodexSource(str(home.root))
    assert src.restore_state(state) == 1  # c's entry alone
    src.full_scan()
    src.drop_restored()
    assert src.bytes_read(a.id) == a.path.stat().st_size and src.bytes_read(b.id) == b.path.stat().st_size
    assert src.bytes_read(c.id) == 0
    assert src.sessions() == before


def test_a_state_of_another_format_or_root_is_not_used(home):
    home.rollout().meta().user("a prompt")
    first = CodexSource(str(home.root))
    first.full_scan()
    state = first.export_state()
    assert CodexSource(str(home.root)).restore_state(dict(state, format=state["format"] + 1)) == 0
    assert CodexSource(str(home.root)).restore_state(dict(state, root="/elsewhere")) == 0
    assert CodexSource(str(home.root)).restore_state(["not", "a", "state"]) == 0
    assert CodexSource(str(home.root)).restore_state(state) == 1


def test_nothing_read_saves_no_state(home):
    src = CodexSource(str(home.root))
    src.full_scan()
    assert src.export_state() is None  # no cache file for an agent not used on this machine
