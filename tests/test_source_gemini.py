"""The Gemini CLI source (helm_monitor.sources.gemini) against real and realistic files.

Samples in tests/fixtures/gemini-0.61.0 were written by the real Gemini CLI 0.61.0;
synthetic files are written by tests/support/gemini.py exactly as the CLI writes them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helm_monitor.sources.base import Watch
from helm_monitor.sources.gemini import GeminiSource, default_root
from helm_monitor.sources.proc import program_is
from tests.support.gemini import CONTEXT_ID, GeminiHome, append, dumps, tokens
from tests.support.server import wait_until

SAMPLE = "gemini-0.61.0"
NOW = 1_796_200_000.0  # a wall clock well after every sample (2026-12-01)
LOGGER = "helm_monitor.sources.gemini"


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def no_proc(tmp_path):
    d = tmp_path / "noproc"
    d.mkdir()
    return str(d)


def scan(root, proc_root, **kw) -> GeminiSource:
    kw.setdefault("clock", lambda: NOW)
    src = GeminiSource(str(root), proc_root=proc_root, **kw)
    for p in src.iter_paths():
        src.apply(p)
    return src


@pytest.fixture
def home(tmp_path) -> GeminiHome:
    return GeminiHome(tmp_path / "gemini-home" / ".gemini")


def warnings_about(caplog, text, level=logging.INFO):
    return [r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno >= level and text in r.getMessage()]


# ---------------------------------------------------------------------------- the real samples
# Each literal below was worked out by hand from the sample files (line numbers are the files').
ALPHA, BETA = "/home/user/code/alpha", "/home/user/code/beta"
EXPECTED = {
    # tmp/alpha/chats/session-2026-12-01T06-19-817f3b0f.jsonl: one -p tool session
    "817f3b0f-50e6-495a-aac1-c9cb99f079a9": {
        "projectPath": ALPHA, "projectDir": "alpha",  # tmp/alpha/.project_root
        "title": "@tool Session 1 in alpha: check that the shell works",  # no summary: the first prompt (line 3)
        "firstPrompt": "@tool Session 1 in alpha: check that the shell works",
        "lastPrompt": "@tool Session 1 in alpha: check that the shell works",  # line 8 is a functionResponse
        "messageCount": 3,  # 1 prompt (line 3) + replies f7aae8ac (lines 5, 7: one id) and 9822ba43 (line 10)
        "createdAt": "2026-12-01T06:19:37.125Z",  # line 1 startTime
        "updatedAt": "2026-12-01T06:19:37.503Z",  # line 11 lastUpdated
        "model": "gemini-2.5-flash",  # line 10
        # f7aae8ac last copy (line 7): 12364 in, 17 out, 0 cached; 9822ba43: 12474 in, 62 out, 12327 cached
        "tokens": {"input": 12364 + 12474 - 12327, "output": 17 + 62, "cacheRead": 12327, "cacheCreation": 0},
        "sizeBytes": 3121,
    },
    # tmp/beta/chats/session-2026-12-01T06-19-ace2799a.jsonl: a tool session, then --resume (line 12 on)
    "ace2799a-977a-4ba4-aed3-33b94d17d73c": {
        "projectPath": BETA, "projectDir": "beta",
        "title": "@tool Session 2 in beta: check that the shell works",
        "firstPrompt": "@tool Session 2 in beta: check that the shell works",  # line 3 (again in line 15)
        "lastPrompt": "Follow-up sent with resume",  # line 16
        # the checkpoint of line 15 holds prompt 6f4815fa, replies a90e5eee and eca186bc, a synthetic
        # a90e5eee_response and a6bc08cf (functionResponse user records); then prompt 2f9bc753 and reply 6af50bcc
        "messageCount": 2 + 3,
        "createdAt": "2026-12-01T06:19:40.678Z",  # line 1 (the resume's metadata line 12 starts 06:19:49)
        "updatedAt": "2026-12-01T06:19:49.334Z",  # line 19
        "model": "gemini-2.5-flash",  # line 18
        # line 15's copies of a90e5eee / eca186bc carry no tokens: the usage of lines 7 and 10 stays
        # a90e5eee: 12362/11/0; eca186bc: 12473/49/12388; 6af50bcc: 12581/55/12471
        "tokens": {"input": 12362 + (12473 - 12388) + (12581 - 12471), "output": 11 + 49 + 55,
                   "cacheRead": 12388 + 12471, "cacheCreation": 0},
        "sizeBytes": 6960,
    },
    # tmp/alpha/chats/session-2026-12-01T06-19-557652b1.jsonl: a session, --continue, and a later summary
    "557652b1-9c2b-406b-8e43-c2ca5129b4fd": {
        "projectPath": ALPHA, "projectDir": "alpha",
        "title": "Summarize the user s primary intent",  # line 15 $set.summary
        "firstPrompt": "Session 3 in alpha: say hello and summarise the README",  # line 3 / line 10
        "lastPrompt": "Follow-up sent with continue",  # line 11
        "messageCount": 2 + 2,  # prompts acb5983d, 1ca84294; replies 7aaad002, 9b1b3eb4
        "createdAt": "2026-12-01T06:19:44.085Z",  # line 1
        "updatedAt": "2026-12-01T06:19:47.478Z",  # line 14 (line 15 sets no lastUpdated)
        "model": "gemini-2.5-flash",
        # 7aaad002 (line 5): 12364/59/12239 (line 10's copy has none); 9b1b3eb4: 12432/55/12309
        "tokens": {"input": (12364 - 12239) + (12432 - 12309), "output": 59 + 55, "cacheRead": 12239 + 12309,
                   "cacheCreation": 0},
        "sizeBytes": 4710,
    },
    # tmp/beta/chats/session-2026-12-01T06-19-b0b299c8.jsonl: captured while running, then finished
    "b0b299c8-f10b-4e42-ae3b-4f7081b57478": {
        "projectPath": BETA, "projectDir": "beta",
        "title": "@hang Live session: the reply streams slowly",
        "firstPrompt": "@hang Live session: the reply streams slowly",
        "lastPrompt": "@hang Live session: the reply streams slowly",
        "messageCount": 2,
        "createdAt": "2026-12-01T06:19:50.868Z",
        "updatedAt": "2026-12-01T06:20:10.994Z",
        "model": "gemini-2.5-flash",
        "tokens": {"input": 12361 - 12076, "output": 62, "cacheRead": 12076, "cacheCreation": 0},
        "sizeBytes": 1663,
    },
    # tmp/alpha/chats/session-2026-12-01T06-20-23999ab2.jsonl: the interactive TUI, two prompts
    "23999ab2-e18d-414d-8522-25c701f5cf9c": {
        "projectPath": ALPHA, "projectDir": "alpha",
        "title": "@tool Interactive session: run a harmless command",
        "firstPrompt": "@tool Interactive session: run a harmless command",  # line 3
        "lastPrompt": "@slow Interactive: second prompt, streams slowly",  # line 12
        "messageCount": 2 + 3,  # replies 80c51263 (lines 5, 7), 1f9d3bfe, 368a67a3
        "createdAt": "2026-12-01T06:20:13.028Z",
        "updatedAt": "2026-12-01T06:20:28.491Z",
        "model": "gemini-2.5-flash",
        # 13065/30/0, 13176/64/12987, 13239/44/13134
        "tokens": {"input": 13065 + (13176 - 12987) + (13239 - 13134), "output": 30 + 64 + 44,
                   "cacheRead": 12987 + 13134, "cacheCreation": 0},
        "sizeBytes": 4446,
    },
}


def test_every_field_of_every_sample_session(sample_dir, no_proc):
    root = sample_dir(SAMPLE) / "home" / ".gemini"
    src = scan(root, no_proc)
    assert src.session_ids() == set(EXPECTED)
    for sid, want in EXPECTED.items():
        s = src.session(sid)
        expected = dict(want, id=sid, source="gemini",
                        # not on disk (AGENTS_FORMAT 3.4): no branch, no version, no pid
                        gitBranch=None, version=None, pid=None,
                        status="ended",  # no gemini process (empty proc root); none awaits a reply
                        subagentCount=0)
        # no cost on disk: gemini-2.5-flash's list price of its tokens (tests/test_usage_agents.py
        # checks it request by request against genai-prices' calc_price)
        cost = s.pop("cost")
        assert cost["basis"] == "list-price" and cost["unpricedModels"] == []
        assert cost["usd"] == pytest.approx(list_price(want["tokens"]), rel=1e-9, abs=1e-9), sid
        assert s == expected, sid


def list_price(t: dict) -> float:
    """genai-prices' own price of these gemini-2.5-flash tokens (one price per token, no tiers below 200k)."""
    from genai_prices import Usage, calc_price
    usage = Usage(input_tokens=t["input"] + t["cacheRead"], cache_read_tokens=t["cacheRead"], output_tokens=t["output"])
    return float(calc_price(usage, model_ref="gemini-2.5-flash", provider_id="google").total_price)


def test_sample_conversation_pages(sample_dir, no_proc):
    root = sample_dir(SAMPLE) / "home" / ".gemini"
    src = scan(root, no_proc)
    conv = src.conversation("ace2799a-977a-4ba4-aed3-33b94d17d73c")
    with conv.lock:
        page = conv.page(0, 3)
    # 8 messages in the resume's checkpoint (line 15), one of them the "<reply id>_response" echo of
    # the tool result that the next message (the one recorded when the tool ran) carries too.
    assert page["total"] == 7 and page["nextOffset"] == 3
    kinds = [(m["role"], m["kind"]) for m in page["messages"]]
    assert kinds == [("user", "meta"), ("user", "prompt"), ("assistant", "reply")]
    assert page["messages"][0]["uuid"] == CONTEXT_ID
    assert page["messages"][1]["blocks"] == [{"type": "text", "text": "@tool Session 2 in beta: check that the shell works"}]
    # line 15's copy of the reply: a functionCall part
    assert page["messages"][2]["blocks"] == [{"type": "tool_use", "id": "run_shell_command__run_shell_command_1796105980781_0",
                                              "name": "run_shell_command", "input": '{"command": "echo hi"}'}]
    with conv.lock:
        rest = conv.page(3, 100)
    assert rest["nextOffset"] is None
    msgs = rest["messages"]
    assert [m["index"] for m in msgs] == [3, 4, 5, 6]
    assert [m["kind"] for m in msgs].count("tool-result") == 1  # the echo is not shown twice
    assert msgs[0]["uuid"] == "a6bc08cf-88ed-4a18-b615-380607857250"
    assert msgs[0]["kind"] == "tool-result" and msgs[0]["blocks"][0]["type"] == "tool_result"
    assert msgs[0]["blocks"][0]["toolUseId"] == "run_shell_command__run_shell_command_1796105980781_0"
    assert "Output: hi" in msgs[0]["blocks"][0]["text"] and msgs[0]["blocks"][0]["isError"] is False
    assert msgs[2] == {"index": 5, "uuid": "2f9bc753-ea22-4749-8257-f88e31f66c08", "role": "user", "kind": "prompt",
                       "timestamp": "2026-12-01T06:19:49.156Z", "model": None, "messageId": None,
                       "blocks": [{"type": "text", "text": "Follow-up sent with resume"}]}
    assert msgs[3]["model"] == "gemini-2.5-flash" and msgs[3]["kind"] == "reply"
    assert msgs[3]["blocks"][0]["text"].startswith("This is a scripted reply")

    # The tool session keeps its own toolCalls record (line 7): a tool_use with the tool's display name.
    conv = src.conversation("817f3b0f-50e6-495a-aac1-c9cb99f079a9")
    with conv.lock:
        msgs = conv.page()["messages"]
    assert [m["kind"] for m in msgs] == ["meta", "prompt", "reply", "tool-result", "reply"]
    assert msgs[2]["blocks"] == [{"type": "tool_use", "id": "run_shell_command__run_shell_command_1796105977217_0",
                                  "name": "Shell", "input": '{"command": "echo hi"}'}]


def test_default_root_follows_the_cli():
    assert default_root({"HOME": "/home/ann"}) == "/home/ann/.gemini"
    # packages/core/src/utils/paths.ts homedir(): GEMINI_CLI_HOME replaces the home directory
    assert default_root({"HOME": "/home/ann", "GEMINI_CLI_HOME": "/srv/g"}) == "/srv/g/.gemini"
    assert default_root({"HOME": "/home/ann", "GEMINI_CLI_HOME": "/srv/g", "HELM_GEMINI_DIR": "/data/gem"}) == "/data/gem"


def test_watches_and_claims(home, no_proc):
    src = GeminiSource(str(home.root / "not-yet"), proc_root=no_proc)
    assert src.watches() == [Watch(str(home.root / "not-yet"), False), Watch(str(home.root / "not-yet" / "tmp"), True)]
    assert list(src.iter_paths()) == [] and src.full_scan() == set()
    assert src.claims(str(home.root / "not-yet" / "tmp" / "x")) and not src.claims(str(home.root / "not-yet-2"))


# ---------------------------------------------------------------------------- live files
def test_live_session_appears_grows_and_goes(home, no_proc):
    mono = Clock(5000.0)
    wall = Clock(NOW)
    src = GeminiSource(str(home.root), clock=wall, monotonic=mono, proc_root=no_proc)
    assert src.full_scan() == set()
    proj = home.project("/work/alpha")
    chat = proj.session()
    wall.t = os.stat(chat.path).st_mtime
    assert src.apply(str(chat.path)) == {chat.id}
    assert src.session_for_path(str(chat.path)) == chat.id
    s = src.session(chat.id)
    assert (s["messageCount"], s["title"], s["status"], s["projectPath"]) == (0, "Untitled session", "ended", "/work/alpha")

    chat.prompt("fix the flaky test")
    assert src.apply(str(chat.path)) == {chat.id}
    s = src.session(chat.id)
    # awaiting a reply, written just now: busy (no process seen: only for RECENT_WRITE_S)
    assert (s["messageCount"], s["firstPrompt"], s["status"]) == (1, "fix the flaky test", "busy")
    deadline = src.status_deadline()
    assert deadline is not None and 5000.0 < deadline <= 5030.0
    mono.t = deadline + 0.1
    assert src.check_liveness() == {chat.id}
    assert src.session(chat.id)["status"] == "ended"  # abandoned mid-turn: never busy forever

    chat.reply("done", tokens(1000, 20, cached=600, thoughts=5))
    assert src.apply(str(chat.path)) == {chat.id}
    s = src.session(chat.id)
    assert s["messageCount"] == 2 and s["tokens"] == {"input": 400, "output": 25, "cacheRead": 600, "cacheCreation": 0}
    assert s["sizeBytes"] == os.path.getsize(chat.path) and s["status"] == "ended"
    assert src.apply(str(chat.path)) == set()  # nothing new

    chat.path.unlink()
    assert src.apply(str(chat.path)) == {chat.id}
    assert src.session(chat.id) is None and chat.id not in src.session_ids()
    assert src.conversation(chat.id) is None


def test_reappended_message_counts_once_and_tool_calls_pend(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("run it")
    src = scan(home.root, no_proc)
    t = tokens(500, 10, cached=100)
    ts = chat.now()
    mid = chat.reply("", t, ts=ts)
    call = {"id": "c1", "name": "run_shell_command", "args": {"command": "make"}, "status": "executing",
            "timestamp": ts}
    chat.reply("", t, mid=mid, ts=ts, tool_calls=[call])  # the same id again, with its tool call running
    src.apply(str(chat.path))
    s = src.session(chat.id)
    assert s["messageCount"] == 2 and s["tokens"]["input"] == 400 and s["tokens"]["output"] == 10
    assert src._files[str(chat.path)].state.derived()[3] is True  # awaiting: a tool call executing
    chat.reply("", t, mid=mid, ts=ts, tool_calls=[dict(call, status="success", result=[])])
    src.apply(str(chat.path))
    s = src.session(chat.id)
    assert s["messageCount"] == 2 and s["tokens"]["input"] == 400
    assert src._files[str(chat.path)].state.derived()[3] is False


def test_rewind_and_checkpoint_replace_the_list(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session()
    p1 = chat.prompt("first")
    chat.reply("one", tokens(100, 1))
    p2 = chat.prompt("second")
    chat.reply("two", tokens(200, 2))
    src = scan(home.root, no_proc)
    assert src.session(chat.id)["messageCount"] == 4
    chat.append({"$rewindTo": p2})  # drops "second" and its reply
    src.apply(str(chat.path))
    s = src.session(chat.id)
    assert (s["messageCount"], s["lastPrompt"], s["tokens"]["input"]) == (2, "first", 100)
    chat.append({"$rewindTo": "no-such-id"})  # the CLI's reader then drops everything
    src.apply(str(chat.path))
    assert src.session(chat.id)["messageCount"] == 0
    chat.append({"$set": {"messages": [chat.context(chat.now()),
                                       {"id": p1, "timestamp": chat.now(), "type": "user", "content": "first"}],
                          "lastUpdated": chat.now()}})
    src.apply(str(chat.path))
    s = src.session(chat.id)
    assert (s["messageCount"], s["firstPrompt"], s["tokens"]["input"]) == (1, "first", 0)
    conv = src.conversation(chat.id)
    with conv.lock:
        page = conv.page()
    assert [m["uuid"] for m in page["messages"]] == [CONTEXT_ID, p1]


def test_resume_stub_merges_then_cleanup_removes_both(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session(minute="2026-12-01T06-19")
    chat.prompt("real work")
    chat.reply("ok", tokens(300, 3))
    src = scan(home.root, no_proc)
    stub = chat.stub("2026-12-01T06-25")  # --resume a few minutes later
    assert stub.path != chat.path
    assert src.apply(str(stub.path)) == {chat.id}
    assert src.session_ids() == {chat.id}
    s = src.session(chat.id)
    assert (s["messageCount"], s["firstPrompt"]) == (2, "real work")  # the file with content wins
    assert s["sizeBytes"] == os.path.getsize(chat.path) + os.path.getsize(stub.path)
    assert s["createdAt"] < s["updatedAt"]
    assert src.conversation(chat.id).path == str(chat.path)
    # the next gemini start's cleanup deletes the stub and the real file together
    chat.path.unlink()
    stub.path.unlink()
    assert src.apply(str(proj.chats), True) == {chat.id}
    assert src.session_ids() == set() and src.session(chat.id) is None


def test_the_stub_alone_keeps_the_session_listed(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session(minute="2026-12-01T06-19")
    chat.prompt("real work")
    stub = chat.stub("2026-12-01T06-25")
    src = scan(home.root, no_proc)
    chat.path.unlink()
    assert src.apply(str(chat.path)) == {chat.id}
    s = src.session(chat.id)
    assert (s["messageCount"], s["title"], s["sizeBytes"]) == (0, "Untitled session", os.path.getsize(stub.path))


def test_subagents_count_in_the_parent_and_are_not_listed(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("delegate")
    a = proj.subagent(chat.id)
    proj.subagent(chat.id)
    src = scan(home.root, no_proc)
    assert src.session_ids() == {chat.id}
    assert src.session(chat.id)["subagentCount"] == 2
    assert src.session_for_path(str(a)) == chat.id
    a.unlink()
    assert src.apply(str(a)) == {chat.id}
    assert src.session(chat.id)["subagentCount"] == 1
    shutil.rmtree(proj.chats / chat.id)
    assert src.apply(str(proj.chats / chat.id), True) == {chat.id}
    assert src.session(chat.id)["subagentCount"] == 0


def test_project_path_from_projects_json_and_hash_folders(home, no_proc):
    proj = home.project("/work/no-marker", project_root=False)
    chat = proj.session()
    chat.prompt("x")
    # a pre-0.29 folder named by the sha256 of the project path
    old = home.project("/work/hashed", slug=None)
    hashed_dir = home.tmp / old.hash / "chats"
    hashed_dir.mkdir(parents=True)
    legacy = old.session()
    legacy.path.rename(hashed_dir / legacy.path.name)
    src = scan(home.root, no_proc)
    assert src.session(chat.id)["projectPath"] == "/work/no-marker"
    assert src.session(chat.id)["projectDir"] == "no-marker"
    assert src.session(legacy.id)["projectPath"] == "/work/hashed"
    assert src.session(legacy.id)["projectDir"] == old.hash
    # projects.json changes: the sessions it names change
    (home.root / "projects.json").write_text(json.dumps({"projects": {"/elsewhere/no-marker": "no-marker"}}))
    changed = src.apply(str(home.root / "projects.json"))
    assert chat.id in changed
    assert src.session(chat.id)["projectPath"] == "/elsewhere/no-marker"
    assert src.session(legacy.id)["projectPath"] is None


def test_legacy_whole_file_json_is_read(home, no_proc):
    proj = home.project("/work/old")
    doc = {"sessionId": "0ld5e551-0000-4000-8000-000000000001", "projectHash": proj.hash,
           "startTime": "2025-09-01T10:00:00.000Z", "lastUpdated": "2025-09-01T10:05:00.000Z",
           "messages": [{"id": "u1", "timestamp": "2025-09-01T10:00:01.000Z", "type": "user",
                         "content": "explain the build"},
                        {"id": "g1", "timestamp": "2025-09-01T10:00:05.000Z", "type": "gemini", "content": "It uses make.",
                         "tokens": {"input": 50, "output": 5, "cached": 10, "thoughts": 2, "tool": 0, "total": 57},
                         "model": "gemini-2.5-pro"}]}
    path = proj.chats / "session-2025-09-01T10-00-0ld5e551.json"
    path.write_text(json.dumps(doc, indent=2))
    src = scan(home.root, no_proc)
    s = src.session(doc["sessionId"])
    assert (s["messageCount"], s["firstPrompt"], s["model"]) == (2, "explain the build", "gemini-2.5-pro")
    assert s["tokens"] == {"input": 40, "output": 7, "cacheRead": 10, "cacheCreation": 0}
    assert (s["createdAt"], s["updatedAt"]) == ("2025-09-01T10:00:00.000Z", "2025-09-01T10:05:00.000Z")
    conv = src.conversation(doc["sessionId"])
    with conv.lock:
        assert [m["kind"] for m in conv.page()["messages"]] == ["prompt", "reply"]


def test_secrets_are_masked_everywhere(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session()
    secret = "sk-ant-api03-" + "A" * 40
    chat.prompt(f"deploy with key {secret} please")
    chat.reply(f"used {secret}", tokens(1, 1))
    chat.append({"$set": {"summary": f"Deploy using {secret}"}})
    src = scan(home.root, no_proc)
    s = src.session(chat.id)
    assert secret not in json.dumps(s) and "sk-ant-api03-" in s["firstPrompt"] and "sk-ant-api03-" in s["title"]
    conv = src.conversation(chat.id)
    with conv.lock:
        page = conv.page()
    assert secret not in json.dumps(page) and "\u2022" in json.dumps(page, ensure_ascii=False)


def test_prompt_rules_and_clipping(home, no_proc):
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("/stats")  # a slash command
    chat.prompt("?help")
    chat.prompt("<hook_context>injected</hook_context>")
    chat.prompt("   ")
    long = "word " * 100
    chat.prompt(long)
    chat.append({"id": "n1", "timestamp": chat.now(), "type": "info", "content": "Switched model"})
    chat.append({"id": "n2", "timestamp": chat.now(), "type": "error", "content": "quota"})
    src = scan(home.root, no_proc)
    s = src.session(chat.id)
    assert s["messageCount"] == 1  # notices are neither prompts nor replies
    assert len(s["firstPrompt"]) == 200 and s["firstPrompt"].endswith("\u2026")
    assert len(s["title"]) == 120 and s["title"].endswith("\u2026")
    assert s["status"] == "ended"  # the turn closed with an error notice: nothing awaits a reply


# ---------------------------------------------------------------------------- bad input
def _neighbour(home):
    proj = home.project("/work/neighbour")
    n = proj.session()
    n.prompt("neighbour prompt")
    n.reply("fine", tokens(10, 1))
    return n


def _rounds(src, *paths, n=3):
    for _ in range(n):
        src.full_scan()
        for p in paths:
            src.apply(str(p))


def test_garbage_truncated_and_non_utf8_lines(home, no_proc, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    n = _neighbour(home)
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("before")
    chat.append(b'{"id":"x","type":"gemini","content":"cut off\n')  # truncated record, then a newline
    chat.append(b"garbage here\n")
    chat.append(b'{"id":"y","timestamp":"2026-12-01T06:30:00.000Z","type":"user","content":"\xff\xfe bad"}\n')
    chat.prompt("after")
    src = scan(home.root, no_proc)
    _rounds(src, chat.path)
    s = src.session(chat.id)
    assert (s["messageCount"], s["firstPrompt"], s["lastPrompt"]) == (2, "before", "after")
    assert src.session(n.id)["messageCount"] == 2
    assert len(warnings_about(caplog, "not valid JSON", logging.WARNING)) == 1
    assert len(warnings_about(caplog, "not UTF-8", logging.WARNING)) == 1


def test_unknown_type_future_op_and_future_field(home, no_proc, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    n = _neighbour(home)
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("hello")
    chat.append({"id": "z1", "timestamp": chat.now(), "type": "compression", "content": "summary of earlier turns"})
    chat.append({"$truncateTo": "z1"})
    chat.append({"id": "g1", "timestamp": chat.now(), "type": "gemini", "content": "hi", "tokens": tokens(9, 1),
                 "model": "gemini-9", "futureField": {"nested": [1, 2]}})
    chat.append({"weird": True})
    src = scan(home.root, no_proc)
    _rounds(src, chat.path)
    s = src.session(chat.id)
    assert (s["messageCount"], s["model"], s["tokens"]["input"]) == (2, "gemini-9", 9)
    assert src.session(n.id)["messageCount"] == 2
    assert len(warnings_about(caplog, "unknown type 'compression'")) == 1
    assert len(warnings_about(caplog, "unknown operation $truncateTo")) == 1
    assert len(warnings_about(caplog, "no known shape")) == 1
    conv = src.conversation(chat.id)
    with conv.lock:
        kinds = [m["kind"] for m in conv.page()["messages"]]
    assert kinds == ["meta", "prompt", "meta", "reply"]


def test_first_line_not_metadata(home, no_proc, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    n = _neighbour(home)
    proj = home.project("/work/alpha")
    bad = proj.chats / "session-2026-12-01T06-40-deadbeef.jsonl"
    append(bad, {"id": "m1", "timestamp": "2026-12-01T06:40:00.000Z", "type": "user", "content": "orphan"})
    append(bad, {"$set": {"lastUpdated": "2026-12-01T06:40:00.001Z"}})
    src = scan(home.root, no_proc)
    _rounds(src, bad)
    assert src.session_ids() == {n.id}
    assert len(warnings_about(caplog, "first line is not a Gemini chat metadata line", logging.WARNING)) == 1
    # a metadata line arriving later (the CLI's reader takes metadata from any line) lists it
    append(bad, {"sessionId": "deadbeef-0000-4000-8000-000000000000", "projectHash": proj.hash,
                 "startTime": "2026-12-01T06:40:01.000Z", "lastUpdated": "2026-12-01T06:40:01.000Z", "kind": "main"})
    assert src.apply(str(bad)) == {"deadbeef-0000-4000-8000-000000000000"}
    assert src.session("deadbeef-0000-4000-8000-000000000000")["firstPrompt"] == "orphan"


def test_file_deleted_between_listing_and_reading_and_between_reads(home, no_proc, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    n = _neighbour(home)
    proj = home.project("/work/alpha")
    gone = proj.session()
    gone.prompt("soon gone")
    src = GeminiSource(str(home.root), proc_root=no_proc, clock=lambda: NOW)
    paths = list(src.iter_paths())
    gone.path.unlink()  # the CLI's start-up cleanup, between the listing and the read
    for p in paths:
        src.apply(p)
    assert src.session_ids() == {n.id}
    later = proj.session()
    later.prompt("read once")
    assert src.apply(str(later.path)) == {later.id}
    later.path.unlink()  # between two reads
    assert src.apply(str(later.path)) == {later.id}
    assert src.session_ids() == {n.id}
    assert src.full_scan() == set()
    assert warnings_about(caplog, "", logging.WARNING) == []  # a vanishing file is not an error


def test_symlink_and_fifo_named_like_chats(home, no_proc, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger=LOGGER)
    n = _neighbour(home)
    proj = home.project("/work/alpha")
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(n.path.read_bytes())
    (proj.chats / "session-2026-12-01T07-00-11111111.jsonl").symlink_to(target)
    os.mkfifo(proj.chats / "session-2026-12-01T07-00-22222222.jsonl")
    src = scan(home.root, no_proc)
    _rounds(src)
    assert src.session_ids() == {n.id}
    assert len(warnings_about(caplog, "symbolic link", logging.WARNING)) == 1
    assert len(warnings_about(caplog, "22222222", logging.WARNING)) == 1


UNPRIVILEGED_CHILD = textwrap.dedent("""
    import json, logging, sys
    from helm_monitor.sources.gemini import GeminiSource
    root, proc_root, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    records = []
    class H(logging.Handler):
        def emit(self, r):
            records.append([r.levelno, r.getMessage()])
    logging.getLogger("helm_monitor").addHandler(H())
    logging.getLogger("helm_monitor").setLevel(logging.DEBUG)
    src = GeminiSource(root, proc_root=proc_root)
    for _ in range(3):
        src.full_scan()
        for p in paths:
            src.apply(p)
    try:
        import os; os.listdir(paths[0]); readable = True
    except OSError:
        readable = False
    print(json.dumps({"sessions": {k: v["messageCount"] for k, v in src.sessions().items()},
                      "log": records, "readable": readable}))
""")


def test_unreadable_slug_directory(home, no_proc):
    n = _neighbour(home)
    proj = home.project("/work/private")
    hidden = proj.session()
    hidden.prompt("private")
    cmd = [sys.executable, "-c", UNPRIVILEGED_CHILD, str(home.root), no_proc, str(proj.dir), str(hidden.path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: root reads mode-000 directories")
        # still uid 0, but without the capabilities that let root ignore permission bits
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proj.dir.chmod(0)
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=60, env=env, check=False)
    finally:
        proj.dir.chmod(0o755)
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout)
    assert result["readable"] is False, "the child could list a mode-000 directory: the test proves nothing"
    assert result["sessions"] == {n.id: 2}
    warned = [m for lvl, m in result["log"] if lvl >= logging.WARNING]
    assert any(str(proj.dir) in m and "Permission denied" in m for m in warned), warned
    assert len(warned) == len(set(warned)) <= 3, warned  # once per path, however many rounds


def test_out_of_file_descriptors_forgets_nothing(home, no_proc, caplog):
    """EMFILE (a passing errno): the session stays as it was and is read again once reads work."""
    import resource
    caplog.set_level(logging.INFO, logger=LOGGER)
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("one")
    src = scan(home.root, no_proc)
    chat.prompt("two")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(len(os.listdir("/proc/self/fd")) + 8, 64), hard))
    try:
        with pytest.raises(OSError):
            while True:  # use up every descriptor below the limit
                fds.append(os.open(os.devnull, os.O_RDONLY))
        assert src.apply(str(chat.path)) == set()
        assert src.session(chat.id)["messageCount"] == 1 and src.needs_retry
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(warnings_about(caplog, "too many open files", logging.WARNING)) == 1
    wait_until(lambda: src.retry() == {chat.id}, 5, message="the failed read retried")
    assert src.session(chat.id)["messageCount"] == 2 and not src.needs_retry


def test_tmp_removed_forgets_everything(home, no_proc):
    proj = home.project("/work/alpha")
    a = proj.session()
    a.prompt("a")
    b = home.project("/work/beta").session()
    b.prompt("b")
    src = scan(home.root, no_proc)
    assert src.session_ids() == {a.id, b.id}
    shutil.rmtree(home.tmp)
    assert src.apply(str(home.tmp), True) == {a.id, b.id}
    assert src.session_ids() == set()


def test_conversation_pages_from_another_thread_while_the_file_grows(home, no_proc):
    import threading
    proj = home.project("/work/alpha")
    chat = proj.session()
    src = scan(home.root, no_proc)
    errors = []
    stop = threading.Event()
    conv = None

    def pager():
        while not stop.is_set():
            try:
                c = src.conversation(chat.id)
                with c.lock:
                    page = c.page(0, 500)
                assert all(m["uuid"] for m in page["messages"])
            except Exception as exc:  # pragma: no cover - what the test looks for
                errors.append(exc)

    src.apply(str(chat.path))
    t = threading.Thread(target=pager)
    t.start()
    try:
        for i in range(50):
            chat.prompt(f"p{i}")
            chat.reply(f"r{i}", tokens(1, 1))
            src.apply(str(chat.path))
    finally:
        stop.set()
        t.join()
    assert errors == []
    conv = src.conversation(chat.id)
    with conv.lock:
        assert conv.page(0, 500)["total"] == 101  # the context message, 50 prompts, 50 replies


# ---------------------------------------------------------------------------- liveness
def test_is_gemini_matches_the_real_argv():
    def is_gemini(argv):
        return program_is(argv, "gemini")
    assert is_gemini(("node", "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js", "-p", "hi"))
    # past two interpreter options: the script is the first argument that is not one
    assert is_gemini(("node", "--max-old-space-size=8192", "--no-warnings",
                      "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js"))
    assert is_gemini(("/usr/local/bin/gemini",))
    assert not is_gemini(("node", "/srv/app/server.js")) and not is_gemini(("vim", "gemini.md"))
    # an argument of the script is not the script
    assert not is_gemini(("node", "--inspect", "--trace-warnings", "/srv/app/server.js", "gemini.js"))


@pytest.fixture
def fake_gemini(tmp_path):
    """Start processes whose argv[0] is named ``gemini`` (python, linked), in a given directory."""
    exe = tmp_path / "bin" / "gemini"
    exe.parent.mkdir()
    exe.symlink_to(sys.executable)
    procs = []

    def start(cwd):
        p = subprocess.Popen([str(exe), "-c", "import time; time.sleep(120)"], cwd=cwd)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_a_gemini_process_in_the_project_makes_it_idle_then_ended(home, tmp_path, fake_gemini):
    project = tmp_path / "code" / "alpha"
    project.mkdir(parents=True)
    proj = home.project(str(project))
    chat = proj.session()
    chat.prompt("hello")
    chat.reply("hi", tokens(10, 1))
    mono = Clock(100.0)
    src = scan(home.root, "/proc", monotonic=mono, proc_scan_s=2.5)
    assert src.session(chat.id)["status"] == "ended"
    proc = fake_gemini(project)

    def turned(status):
        mono.t += 3.0  # past the scan interval at each call
        src.check_liveness()
        return src.session(chat.id)["status"] == status

    wait_until(lambda: turned("idle"), 10, message="idle while a gemini process works in the project")
    assert src.session(chat.id)["pid"] is None
    # awaiting a reply with the process there: busy, however old the write
    chat.prompt("next")
    src.apply(str(chat.path))
    mono.t += 1000
    assert src.session(chat.id)["status"] == "busy"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: turned("ended"), 10, message="ended once the process is gone")


def test_only_the_most_recent_sessions_of_a_project_are_live(home, tmp_path, fake_gemini):
    project = tmp_path / "code" / "beta"
    project.mkdir(parents=True)
    proj = home.project(str(project))
    old = proj.session()
    old.prompt("old")
    old.reply("ok", tokens(1, 1))
    os.utime(old.path, (time.time() - 3600, time.time() - 3600))
    new = proj.session()
    new.prompt("new")
    new.reply("ok", tokens(1, 1))
    mono = Clock(100.0)
    src = scan(home.root, "/proc", monotonic=mono)
    fake_gemini(project)

    def live():
        mono.t += 3.0
        src.check_liveness()
        return src.session(new.id)["status"] == "idle"

    wait_until(live, 10, message="the newest session idle")
    assert src.session(old.id)["status"] == "ended"  # one instance: one session


# ---------------------------------------------------------------------------- cost
def test_an_append_to_a_big_chat_reads_only_the_appended_bytes(home, no_proc):
    proj = home.project("/work/big")
    chat = proj.session()
    filler = "x" * 2000
    lines = []
    for i in range(10_000):  # about 20 MB, written in one go (the records are what the CLI writes)
        lines.append(dumps({"id": f"u{i}", "timestamp": "2026-12-01T07:00:00.000Z", "type": "user",
                            "content": [{"text": f"prompt {i} {filler}"}]}))
        lines.append(dumps({"$set": {"lastUpdated": "2026-12-01T07:00:00.000Z"}}))
    chat.append(b"".join(lines))
    size = os.path.getsize(chat.path)
    assert size > 20_000_000
    src = scan(home.root, no_proc)
    assert src.session(chat.id)["messageCount"] == 10_000
    before = src.bytes_read
    added = chat.append({"id": "g-last", "timestamp": "2026-12-01T07:00:01.000Z", "type": "gemini",
                         "content": "done", "tokens": tokens(7, 3), "model": "gemini-2.5-flash"})
    assert src.apply(str(chat.path)) == {chat.id}
    assert src.bytes_read - before == added
    s = src.session(chat.id)
    assert s["messageCount"] == 10_001 and s["tokens"]["input"] == 7 and s["sizeBytes"] == size + added


# ---------------------------------------------------------------------------- saved state
def _restarted(root, tmp_path, no_proc, save_from: GeminiSource) -> tuple[GeminiSource, int]:
    """A fresh source over ``root`` given what ``save_from`` saved, through the live layer's real cache."""
    from helm_monitor.live.cache import StateCache
    cache = StateCache(tmp_path / "cache", str(root), "gemini")
    assert cache.save(save_from)
    src = GeminiSource(str(root), proc_root=no_proc, clock=lambda: NOW)
    restored = cache.load_into(src)
    src.full_scan()
    src.drop_restored()
    return src, restored


def test_restart_over_an_unchanged_history_reads_no_chat_file(sample_dir, home, no_proc, tmp_path):
    root = sample_dir(SAMPLE) / "home" / ".gemini"
    first = scan(root, no_proc)
    assert first.bytes_read > 0
    before = first.sessions()
    src, restored = _restarted(root, tmp_path, no_proc, first)
    assert restored == len(first._files)
    assert src.bytes_read == 0
    assert src.sessions() == before


def test_restart_keeps_rewinds_checkpoints_legacy_files_and_masking(home, no_proc, tmp_path):
    proj = home.project("/work/alpha")
    chat = proj.session()
    secret = "sk-ant-api03-" + "B" * 40
    p1 = chat.prompt(f"first, with {secret}")
    chat.reply("one", tokens(100, 1))
    p2 = chat.prompt("second")
    chat.reply("two", tokens(200, 2))
    chat.append({"$rewindTo": p2})
    legacy = {"sessionId": "0ld5e551-0000-4000-8000-000000000001", "projectHash": proj.hash,
              "startTime": "2025-09-01T10:00:00.000Z", "lastUpdated": "2025-09-01T10:05:00.000Z",
              "messages": [{"id": "u1", "timestamp": "2025-09-01T10:00:01.000Z", "type": "user", "content": "hi"}]}
    (proj.chats / "session-2025-09-01T10-00-0ld5e551.json").write_text(json.dumps(legacy))
    first = scan(home.root, no_proc)
    before = first.sessions()
    assert before[chat.id]["messageCount"] == 2
    state = first.export_state()
    assert secret not in json.dumps(state)  # the state is a file on disk: prompts are saved masked
    src, _ = _restarted(home.root, tmp_path, no_proc, first)
    assert src.bytes_read == 0 and src.sessions() == before
    # replay goes on from the restored facts: a rewind to the first prompt empties the list
    n = chat.append({"$rewindTo": p1})
    src.apply(str(chat.path))
    assert src.bytes_read == n and src.session(chat.id)["messageCount"] == 0
    fresh = scan(home.root, no_proc)
    assert src.sessions() == fresh.sessions()


def test_an_append_after_the_save_reads_only_the_appended_bytes_gemini(home, no_proc, tmp_path):
    proj = home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("first")
    chat.reply("one", tokens(100, 1))
    other = proj.session()
    other.prompt("the neighbour")
    first = scan(home.root, no_proc)
    size = chat.path.stat().st_size
    chat.prompt("second")
    chat.reply("two", tokens(200, 2))
    appended = chat.path.stat().st_size - size
    src, _ = _restarted(home.root, tmp_path, no_proc, first)
    assert src.bytes_read == appended
    s = src.session(chat.id)
    assert (s["messageCount"], s["firstPrompt"], s["lastPrompt"], s["tokens"]["input"]) == (4, "first", "second", 300)
    assert src.sessions() == scan(home.root, no_proc).sessions()


def test_a_corrupt_or_foreign_entry_is_read_again_and_the_rest_used_gemini(home, no_proc, tmp_path):
    proj = home.project("/work/alpha")
    chats = []
    for text in ("a", "b", "c", "d"):
        chat = proj.session()
        chat.prompt(f"prompt {text}")
        chat.reply("reply", tokens(10, 1))
        chats.append(chat)
    a, b, c, d = chats
    first = scan(home.root, no_proc)
    before = first.sessions()
    state = json.loads(json.dumps(first.export_state()))
    entries = state["chats"]
    entries[str(a.path)]["state"]["messages"][1][1] = "reply"  # a kind of the wrong type
    entries[str(b.path)]["follower"]["tail"] = "zz"  # not hex
    entries[str(c.path)]["slug"] = "another-project"  # not where the file is
    foreign = str(home.root.parent / "elsewhere" / d.path.name)
    entries[foreign] = entries[str(d.path)]
    src = GeminiSource(str(home.root), proc_root=no_proc, clock=lambda: NOW)
    assert src.restore_state(state) == 1  # d's own entry alone
    src.full_scan()
    src.drop_restored()
    assert src.bytes_read == sum(x.path.stat().st_size for x in (a, b, c))
    assert src.sessions() == before
    assert GeminiSource(str(home.root)).restore_state(dict(state, format=state["format"] + 1)) == 0
    assert GeminiSource(str(home.root)).restore_state(dict(state, root="/elsewhere")) == 0


def test_nothing_read_saves_no_state_gemini(home, no_proc):
    assert scan(home.root, no_proc).export_state() is None  # no cache file for an agent not used here
