"""The blocks the session view renders: diffs of edits, images, unknown content as raw JSON,
and subagents' transcripts (``GET /api/sessions/<key>/subagents/<agentId>``).

Transcripts are written as Claude Code writes them (records shaped after tests/fixtures/
claude-code-2.1.330*, one ``O_APPEND`` write per flush); the subagent route is exercised over
the real subagent fixture through a real server.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from helm_monitor.config import Config
from helm_monitor.search.fields import fields_of
from helm_monitor.sources import blocks as B
from helm_monitor.sources.base import base_session
from helm_monitor.sources.claude.conversation import Conversation
from helm_monitor.sources.codex.conversation import Conversation as CodexConversation
from helm_monitor.sources.gemini.conversation import ChatConversation
from helm_monitor.sources.opencode.conversation import OpenCodeConversation
from helm_monitor.sources.redact import MASK
from helm_monitor.web import security
from tests.support.claude import append, project_key
from tests.support.codex import CodexHome
from tests.support.gemini import GeminiHome
from tests.support.opencode import OpenCodeDB, new_id
from tests.support.server import wait_until

HOST = "blockhost"
SUBAGENTS = "claude-code-2.1.330-subagents"
FIXTURE_SESSION = "71d75e02-8f29-4d6d-b979-ef7446a966d3"
FIXTURE_AGENT = "afa49ed9a952d16e0"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9" * 20
TOKEN = "blocks-token-5b1f"


# -------------------------------------------------------------------- writing like Claude Code
class Transcript:
    """One session's transcript, its records shaped as 2.1.330 writes them."""

    def __init__(self, root: Path, cwd: str = "/home/alice/code/app", session_id: str | None = None):
        self.cwd = cwd
        self.id = session_id or str(uuid.uuid4())
        self.dir = root / "projects" / project_key(cwd)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{self.id}.jsonl"
        self.parent = None
        self.n = 0

    def _base(self, type_: str, **fields) -> dict:
        self.n += 1
        rec = {"parentUuid": self.parent, "isSidechain": False, "type": type_, "uuid": str(uuid.uuid4()),
               "timestamp": f"2026-11-23T20:04:{self.n:02d}.000Z", "userType": "external", "entrypoint": "sdk-cli",
               "cwd": self.cwd, "sessionId": self.id, "version": "2.1.330", "gitBranch": "main"}
        rec.update(fields)
        self.parent = rec["uuid"]
        return rec

    def prompt(self, text: str) -> dict:
        return self._base("user", promptId=str(uuid.uuid4()), message={"role": "user", "content": text})

    def assistant(self, *content: dict, mid: str | None = None) -> list[dict]:
        """One API message: a record per content block (the same ``message.id``), as Claude Code writes it."""
        mid = mid or "msg_" + uuid.uuid4().hex[:24]
        out = []
        for i, block in enumerate(content):
            out.append(self._base("assistant", message={
                "id": mid, "type": "message", "role": "assistant", "model": "claude-opus-5-5", "content": [block],
                "stop_reason": "tool_use" if block.get("type") == "tool_use" else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 9000,
                          "output_tokens": 42}}, apiBlockIndex=i, requestId="req_" + mid[4:]))
        return out

    def user_blocks(self, content: list, tool_use_result=None, source_tool: str | None = None) -> dict:
        extra = {"sourceToolAssistantUUID": source_tool} if source_tool else {}
        if tool_use_result is not None:
            extra["toolUseResult"] = tool_use_result
        return self._base("user", message={"role": "user", "content": content}, **extra)

    def result(self, tool_use_id: str, text: str, tool_use_result=None, is_error: bool = False) -> dict:
        return self.user_blocks([{"tool_use_id": tool_use_id, "type": "tool_result", "content": text,
                                  "is_error": is_error}], tool_use_result, self.parent)

    def write(self, *records) -> None:
        flat = [r for rec in records for r in (rec if isinstance(rec, list) else [rec])]
        append(self.path, b"".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                                   for r in flat))


def tool_use(name: str, tool_input: dict, tid: str | None = None) -> dict:
    return {"type": "tool_use", "id": tid or "toolu_" + uuid.uuid4().hex[:20], "name": name, "input": tool_input}


def edit_result(path: str, old: str, new: str, original: str, patch) -> dict:
    """``toolUseResult`` of an Edit, as Claude Code records it."""
    return {"filePath": path, "oldString": old, "newString": new, "originalFile": original,
            "structuredPatch": patch, "userModified": False, "replaceAll": False}


def updated_text(path: str) -> str:
    return (f"The file {path} has been updated. Here's the result of running `cat -n` on a snippet of the "
            f"edited file:\n     1\tdef handler():\n     2\t    return 2")


def blocks_of(page: dict) -> list[dict]:
    return [b for m in page["messages"] for b in m["blocks"]]


def only(blocks: list[dict], type_: str) -> dict:
    found = [b for b in blocks if b["type"] == type_]
    assert len(found) == 1, blocks
    return found[0]


HUNK = {"oldStart": 1, "oldLines": 3, "newStart": 1, "newLines": 3,
        "lines": [" def handler():", "-    return 1", "+    return 2", " "]}


# -------------------------------------------------------------------- diffs
def test_an_edit_result_carries_its_patch_and_path_and_never_the_whole_file(tmp_path):
    t = Transcript(tmp_path)
    path = "/home/alice/code/app/src/app.py"
    original = "ORIGINAL-FILE-LINE that nobody should ship\n" * 50_000  # 2.1 MB
    assert len(original) > 2_000_000
    call = tool_use("Edit", {"file_path": path, "old_string": "    return 1", "new_string": "    return 2"})
    t.write(t.prompt("make the handler return 2"), t.assistant(call))
    t.write(t.result(call["id"], updated_text(path),
                     edit_result(path, "    return 1", "    return 2", original, [HUNK])))
    page = Conversation(str(t.path)).page(0, 100)
    assert [m["kind"] for m in page["messages"]] == ["prompt", "reply", "tool-result"]
    result = only(blocks_of(page), "tool_result")
    assert result["patch"] == [HUNK] and result["patchTruncated"] is False
    assert result["filePath"] == path and result["toolUseId"] == call["id"]
    assert result["text"].startswith(f"The file {path} has been updated.")
    # the pending edit's own diff, computed from its strings (line numbers relative to them)
    use = only(blocks_of(page), "tool_use")
    assert use["patch"] == [{"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 1,
                             "lines": ["-    return 1", "+    return 2"]}]
    body = json.dumps(page)
    assert "ORIGINAL-FILE-LINE" not in body and "originalFile" not in body and "oldString" not in body
    assert len(body) < 8_000


def test_a_pending_multiedit_is_shown_as_a_diff_before_its_result(tmp_path):
    t = Transcript(tmp_path)
    old_a = "import os\nimport sys\n\ndef main():\n    print('hi')\n    return 0\n"
    new_a = "import os\nimport sys\n\ndef main():\n    print('hello')\n    return 0\n"
    call = tool_use("MultiEdit", {"file_path": "/home/alice/code/app/main.py", "edits": [
        {"old_string": old_a, "new_string": new_a},
        {"old_string": "", "new_string": "# added\n# lines"},
        {"old_string": "x", "new_string": "x"},  # no change: no hunk
        {"old_string": 7, "new_string": "bad"},  # not strings: skipped
    ]})
    t.write(t.prompt("greet better"), t.assistant({"type": "text", "text": "Editing."}, call))
    use = only(blocks_of(Conversation(str(t.path)).page()), "tool_use")
    assert use["name"] == "MultiEdit" and use["patchTruncated"] is False
    assert use["patch"] == [
        {"oldStart": 2, "oldLines": 5, "newStart": 2, "newLines": 5,
         "lines": [" import sys", " ", " def main():", "-    print('hi')", "+    print('hello')", "     return 0"]},
        {"oldStart": 1, "oldLines": 0, "newStart": 1, "newLines": 2, "lines": ["+# added", "+# lines"]},
    ]
    assert json.loads(use["input"])["file_path"] == "/home/alice/code/app/main.py"


def test_a_write_gets_no_patch_of_its_own_and_a_create_result_no_empty_patch(tmp_path):
    t = Transcript(tmp_path)
    path = "/home/alice/code/app/new.txt"
    call = tool_use("Write", {"file_path": path, "content": "hello\n"})
    t.write(t.prompt("write it"), t.assistant(call))
    t.write(t.result(call["id"], f"File created successfully at: {path}",
                     {"type": "create", "filePath": path, "content": "hello\n", "structuredPatch": [],
                      "originalFile": None}))
    blocks = blocks_of(Conversation(str(t.path)).page())
    assert "patch" not in only(blocks, "tool_use")
    result = only(blocks, "tool_result")
    assert "patch" not in result and result["filePath"] == path


@pytest.mark.parametrize("patch", [
    "@@ -1 +1 @@\n-a\n+b",
    {"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 1, "lines": ["-a", "+b"]},
    [HUNK, "not a hunk"],
    [{**HUNK, "lines": "-a\n+b"}],
    [{**HUNK, "lines": ["-a", 7]}],
    [{**HUNK, "oldStart": "1"}],
    [{**HUNK, "newLines": True}],
    [{**HUNK, "oldLines": -3}],
    [{k: v for k, v in HUNK.items() if k != "newStart"}],
    [{**HUNK, "oldStart": 1e30}],
], ids=["string", "dict", "mixed", "lines-string", "line-int", "start-string", "bool", "negative", "missing",
        "float"])
def test_a_malformed_structured_patch_is_skipped_not_an_error(tmp_path, patch):
    t = Transcript(tmp_path)
    path = "/home/alice/code/app/src/app.py"
    call = tool_use("Edit", {"file_path": path, "old_string": "a", "new_string": "b"})
    t.write(t.prompt("edit"), t.assistant(call),
            t.result(call["id"], updated_text(path), edit_result(path, "a", "b", "a\n", patch)))
    t.write(t.assistant({"type": "text", "text": "Done."}))
    page = Conversation(str(t.path)).page()
    assert [m["kind"] for m in page["messages"]] == ["prompt", "reply", "tool-result", "reply"]
    result = only(blocks_of(page), "tool_result")
    assert "patch" not in result and "patchTruncated" not in result
    assert result["filePath"] == path and result["text"].startswith("The file")


def test_a_huge_patch_is_bounded_in_lines_and_line_length(tmp_path):
    t = Transcript(tmp_path)
    hunks = [{"oldStart": 1 + 1000 * h, "oldLines": 600, "newStart": 1 + 1000 * h, "newLines": 600,
              "lines": [f"+line {h}.{i}" for i in range(600)]} for h in range(3)]
    hunks[0]["lines"][0] = "+" + "y" * 50_000
    call = tool_use("Edit", {"file_path": "/a/big.txt", "old_string": "z" * 30_000 + "\n", "new_string": "w"})
    t.write(t.assistant(call), t.result(call["id"], "updated", edit_result("/a/big.txt", "", "", "", hunks)))
    blocks = blocks_of(Conversation(str(t.path)).page())
    result = only(blocks, "tool_result")
    assert result["patchTruncated"] is True
    assert [len(h["lines"]) for h in result["patch"]] == [600, 400]
    assert result["patch"][1]["lines"][-1] == "+line 1.399"
    first = result["patch"][0]["lines"][0]
    assert first.startswith("+yyy") and len(first) == B.PATCH_LINE_MAX + 1 and first.endswith("\u2026")
    # the server's diff of an edit is bounded too: its strings are cut before diffing
    use = only(blocks, "tool_use")
    assert use["patchTruncated"] is True
    assert all(len(line) <= B.PATCH_LINE_MAX + 1 for h in use["patch"] for line in h["lines"])
    assert sum(len(h["lines"]) for h in use["patch"]) <= B.PATCH_LINES_MAX


def test_a_pathological_edit_is_diffed_quickly_and_still_right(tmp_path):
    t = Transcript(tmp_path)
    old = "\n".join(f"{i:04d}" for i in range(4000))
    new = "\n".join(f"{i:04d}" if i % 2 else f"x{i:03d}" for i in range(4000))
    t.write(t.assistant(tool_use("Edit", {"file_path": "/a/n.txt", "old_string": old, "new_string": new})))
    import time
    started = time.perf_counter()
    use = only(blocks_of(Conversation(str(t.path)).page()), "tool_use")
    assert time.perf_counter() - started < 1.0  # difflib alone takes seconds on this
    lines = [line for h in use["patch"] for line in h["lines"]]
    assert use["patchTruncated"] is True and len(lines) == B.PATCH_LINES_MAX
    # every line shown is the old text removed or the new text added, in order
    removed = [line[1:] for line in lines if line.startswith("-")]
    assert removed == old.splitlines()[:len(removed)] and lines[0] == "-0000"


def test_secrets_in_patch_lines_are_masked(tmp_path):
    t = Transcript(tmp_path)
    path = "/home/alice/code/app/.env"
    pem = ["-----BEGIN RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA7bq9F0rPzJ2x", "a9Lk3mN0pQ7rS2tU4vW6xY8zB1cD3eF",
           "-----END RSA PRIVATE KEY-----"]
    hunk = {"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 6,
            "lines": ["-client = connect()", f'+client = connect("{ANTHROPIC_KEY}")', *["+" + p for p in pem],
                      " DEBUG=1"]}
    call = tool_use("Edit", {"file_path": path, "old_string": "client = connect()",
                             "new_string": f'client = connect("{ANTHROPIC_KEY}")\n' + "\n".join(pem)})
    t.write(t.assistant(call), t.result(call["id"], updated_text(path),
                                        edit_result(path, "", "", "password=hunter22hunter\n", [hunk])))
    page = Conversation(str(t.path)).page()
    body = json.dumps(page)
    assert "Zx9Zx9" not in body and "MIIEpAIBAAKCAQEA" not in body and "a9Lk3mN0pQ" not in body
    assert "hunter22" not in body
    lines = only(blocks_of(page), "tool_result")["patch"][0]["lines"]
    assert lines[1] == f'+client = connect("sk-ant-api03-{MASK}")'
    assert lines[3:5] == ["+" + MASK, "+" + MASK] and lines[5] == "+-----END RSA PRIVATE KEY-----"
    assert lines[6] == " DEBUG=1"  # after the key, lines are shown again
    server = [line for h in only(blocks_of(page), "tool_use")["patch"] for line in h["lines"]]
    assert f'+client = connect("sk-ant-api03-{MASK}")' in server and "+" + MASK in server


def test_the_result_of_a_record_goes_to_its_only_tool_result_and_an_agent_id_must_be_sane(tmp_path):
    t = Transcript(tmp_path)
    a, b = tool_use("Edit", {"file_path": "/a", "old_string": "1", "new_string": "2"}), tool_use("Read", {})
    t.write(t.assistant(a, b))
    t.write(t.user_blocks([{"tool_use_id": a["id"], "type": "tool_result", "content": "ok"},
                           {"tool_use_id": b["id"], "type": "tool_result", "content": "ok"}],
                          {"filePath": "/a", "structuredPatch": [HUNK], "agentId": "abc"}))
    for agent_id in ("../../etc/passwd", "a" * 65, "", 42, "agent id"):
        c = tool_use("Agent", {"prompt": "go"})
        t.write(t.assistant(c), t.result(c["id"], "launched", {"status": "async_launched", "agentId": agent_id}))
    page = Conversation(str(t.path)).page()
    results = [b for b in blocks_of(page) if b["type"] == "tool_result"]
    assert len(results) == 7
    assert all(set(r) == {"type", "toolUseId", "text", "isError", "truncated"} for r in results), results


# -------------------------------------------------------------------- unknown content, images
def test_unknown_blocks_are_raw_json_without_base64_and_images_a_size(tmp_path):
    t = Transcript(tmp_path)
    pdf = base64.b64encode(b"%PDF-1.7 " + bytes(range(256)) * 1200).decode()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 34_000).decode()
    encrypted = base64.b64encode(b"\x17" * 3000).decode()
    t.write(t.user_blocks([
        {"type": "text", "text": "what is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
         "title": f"keys {ANTHROPIC_KEY}"},
    ]))
    t.write(t.assistant({"type": "redacted_thinking", "data": encrypted},
                        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
                         "input": {"query": "what is " * 1200}},
                        {"type": "text", "text": 12},  # a known type, misshapen
                        {"type": "hologram_v9", "beam": {"color": "blue"}}))
    page = Conversation(str(t.path)).page()
    first, *replies = page["messages"]
    assert first["kind"] == "prompt" and [b["type"] for b in first["blocks"]] == ["text", "image", "unknown"]
    assert first["blocks"][1] == {"type": "image", "mediaType": "image/png", "bytes": 34_008}
    doc = first["blocks"][2]
    assert doc["kind"] == "document"
    raw = doc["raw"]
    assert f'"data": "[base64, {len(pdf) * 3 // 4 - pdf.count("=")} bytes]"' in raw
    assert '"media_type": "application/pdf"' in raw and f"sk-ant-api03-{MASK}" in raw
    assert pdf[:40] not in raw and "Zx9Zx9" not in raw
    unknown = [b for m in replies for b in m["blocks"]]
    assert [(b["type"], b["kind"]) for b in unknown] == [
        ("unknown", "redacted_thinking"), ("unknown", "server_tool_use"), ("unknown", "text"),
        ("unknown", "hologram_v9")]
    assert json.loads(unknown[0]["raw"]) == {"type": "redacted_thinking", "data": "[base64, 3000 bytes]"}
    assert len(unknown[1]["raw"]) == B.RAW_MAX + 1 and unknown[1]["raw"].endswith("\u2026")
    assert json.loads(unknown[3]["raw"]) == {"type": "hologram_v9", "beam": {"color": "blue"}}
    body = json.dumps(page)
    assert png[100:140] not in body and encrypted[:40] not in body and len(body) < 12_000
    # search indexes none of it: no base64, and no raw JSON
    assert fields_of(replies[0]) is None
    assert fields_of(first) == ("what is in these?", "", "", "")


def test_codex_gemini_and_opencode_parts_not_known_are_shown_raw(tmp_path):
    png = base64.b64encode(b"\x89PNG" + b"\1" * 3000).decode()
    # Codex: a UserMessage item with a part of a new type and an image (a data: URL)
    codex = CodexHome(tmp_path / "codex")
    r = codex.rollout()
    r.meta().turn_started()
    r.event({"type": "item_completed", "thread_id": r.id, "turn_id": r.turn_id, "item": {
        "type": "UserMessage", "id": str(uuid.uuid4()), "content": [
            {"type": "text", "text": "look", "text_elements": []},
            {"type": "image", "url": f"data:image/png;base64,{png}"},
            {"type": "mention", "name": "repo", "path": f"app://x?{ANTHROPIC_KEY}"}]}})
    msgs = CodexConversation([str(r.path)]).page()["messages"]
    assert len(msgs) == 1 and msgs[0]["kind"] == "prompt"
    text, image, mention = msgs[0]["blocks"]
    assert image == {"type": "image", "mediaType": "image/png", "bytes": 3004}
    assert mention["type"] == "unknown" and mention["kind"] == "mention"
    assert json.loads(mention["raw"])["path"] == f"app://x?sk-ant-api03-{MASK}"

    # Gemini: a reply with a code-execution part, a user message with an inline image
    chat = GeminiHome(tmp_path / "gemini").project("/home/user/code/beta").session()
    chat.append({"id": str(uuid.uuid4()), "timestamp": chat.now(), "type": "user",
                 "content": [{"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": png}}]})
    chat.append({"id": str(uuid.uuid4()), "timestamp": chat.now(), "type": "gemini", "model": "gemini-3-pro",
                 "content": [{"executableCode": {"language": "PYTHON", "code": "print(1)"},
                              "thoughtSignature": png}, {"thoughtSignature": png}], "thoughts": []})
    msgs = ChatConversation(str(chat.path)).page()["messages"]
    assert msgs[1]["blocks"][1] == {"type": "image", "mediaType": "image/png", "bytes": 3004}
    code, = msgs[2]["blocks"]  # the signature alone is no content
    assert code["kind"] == "executableCode" and json.loads(code["raw"]) == {
        "executableCode": {"language": "PYTHON", "code": "print(1)"}, "thoughtSignature": "[base64, 3004 bytes]"}

    # OpenCode: a part of a type not known, an image file as a data: URL, bookkeeping unseen
    (tmp_path / "opencode").mkdir()
    db = OpenCodeDB(tmp_path / "opencode" / "opencode.db", "wal")
    sid = db.session("/x", "Parts")
    mid = db.user(sid, "hello")
    with db.tx():
        db._part(sid, mid, new_id("prt"), {"type": "file", "mime": "image/png", "filename": "a.png",
                                           "url": f"data:image/png;base64,{png}"})
        db._part(sid, mid, new_id("prt"), {"type": "file", "mime": "application/pdf",
                                           "url": f"data:application/pdf;base64,{png}"})
        db._part(sid, mid, new_id("prt"), {"type": "step-start", "snapshot": "1e88adb4"})
        db._part(sid, mid, new_id("prt"), {"type": "hologram", "beam": 1})
    msg, = OpenCodeConversation(str(db.path), sid).page()["messages"]
    assert msg["blocks"] == [{"type": "text", "text": "hello"},
                             {"type": "image", "mediaType": "image/png", "bytes": 3004},
                             {"type": "text", "text": "[file: file]"},
                             {"type": "unknown", "kind": "hologram",
                              "raw": '{\n  "type": "hologram",\n  "beam": 1\n}'}]


# -------------------------------------------------------------------- over HTTP
def request(server, path: str, headers: dict | None = None):
    req = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def key_of(session_id: str, source: str = "claude-code") -> str:
    return f"{HOST}:{source}:{session_id}"


def q(key: str) -> str:
    return urllib.parse.quote(key, safe="")


def listed(server, *keys: str) -> None:
    wait_until(lambda: set(keys) <= {s["key"] for s in server.get_json("/api/sessions/all")}, 10,
               message=f"{keys} listed")


def test_the_session_view_over_http_has_patches_and_no_original_file(claude, server_factory):
    t = Transcript(claude.root)
    path = "/home/alice/code/app/src/app.py"
    original = "ORIGINAL-FILE-LINE " * 110_000  # 2 MB
    call = tool_use("Edit", {"file_path": path, "old_string": "    return 1", "new_string": "    return 2"})
    t.write(t.prompt("fix it"), t.assistant(call),
            t.result(call["id"], updated_text(path), edit_result(path, "    return 1", "    return 2", original,
                                                                 [HUNK])))
    assert t.path.stat().st_size > 2_000_000
    server = server_factory(claude.root, env={"HELM_HOST_NAME": HOST})
    listed(server, key_of(t.id))
    status, headers, body = request(server, f"/api/sessions/{q(key_of(t.id))}?offset=0&limit=50")
    assert status == 200 and len(body) < 8_000 and b"ORIGINAL-FILE-LINE" not in body
    page = json.loads(body)
    result = only(blocks_of(page), "tool_result")
    assert result["patch"] == [HUNK] and result["filePath"] == path
    assert only(blocks_of(page), "tool_use")["patch"][0]["lines"] == ["-    return 1", "+    return 2"]


def test_a_subagent_transcript_through_a_real_server(sample_dir, server_factory, tmp_path):
    root = sample_dir(SUBAGENTS)
    codex = CodexHome(tmp_path / "codex")
    rollout = codex.rollout()
    rollout.meta().turn_started().user("hi codex").agent("hello")
    server = server_factory(root, env={"HELM_HOST_NAME": HOST, "HELM_CODEX_DIR": str(codex.root)})
    key = key_of(FIXTURE_SESSION)
    listed(server, key, key_of(rollout.id, "codex"))

    detail = server.get_json(f"/api/sessions/{q(key)}")
    launched = [b for b in blocks_of(detail) if b.get("agentId")]
    assert [(b["type"], b["agentId"]) for b in launched] == [("tool_result", FIXTURE_AGENT)]
    use = only(blocks_of(detail), "tool_use")
    assert use["name"] == "Agent" and use["id"] == launched[0]["toolUseId"]

    status, headers, body = request(server, f"/api/sessions/{q(key)}/subagents/{FIXTURE_AGENT}")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY
    sub = json.loads(body)
    assert set(sub) == {"agentId", "messages", "nextOffset", "total"}
    assert sub["agentId"] == FIXTURE_AGENT and sub["total"] == 5 and sub["nextOffset"] is None
    assert [(m["index"], m["role"], m["kind"]) for m in sub["messages"]] == [
        (0, "user", "prompt"), (1, "assistant", "reply"), (2, "assistant", "reply"), (3, "user", "tool-result"),
        (4, "assistant", "reply")]
    assert sub["messages"][0]["blocks"] == [
        {"type": "text", "text": "List the files in the current directory using ls -la and report them."}]
    bash = sub["messages"][2]["blocks"][0]
    assert bash["name"] == "Bash" and json.loads(bash["input"])["command"] == "ls -la"
    assert sub["messages"][3]["blocks"][0]["toolUseId"] == bash["id"]
    assert "README.md" in sub["messages"][3]["blocks"][0]["text"]
    assert set(sub["messages"][0]) == set(detail["messages"][0])  # the same message shape

    page = server.get_json(f"/api/sessions/{q(key)}/subagents/{FIXTURE_AGENT}?offset=1&limit=2")
    assert [m["index"] for m in page["messages"]] == [1, 2] and page["nextOffset"] == 3 and page["total"] == 5

    def error(path):
        status, headers, body = request(server, path)
        assert headers["Content-Type"] == "application/json" and set(json.loads(body)) == {"error"}, body
        return status

    base = f"/api/sessions/{q(key)}/subagents"
    assert error(f"{base}/a0000000000000000") == 404  # no such subagent
    assert error(f"{base}/aprompt_suggestion-1ff45b") == 404  # another session's (2.1.29) name
    assert error(f"/api/sessions/{q(key_of(str(uuid.uuid4())))}/subagents/{FIXTURE_AGENT}") == 404
    assert error(f"/api/sessions/{q(key_of(rollout.id, 'codex'))}/subagents/{FIXTURE_AGENT}") == 404
    assert error(f"/api/sessions/{q('elsewhere:claude-code:' + FIXTURE_SESSION)}/subagents/{FIXTURE_AGENT}") == 404
    for bad in ("a.b", "a" * 65, "..", "agent%20x", "%00", "%2E%2E"):
        assert error(f"{base}/{bad}") == 400, bad
    assert error(f"/api/sessions/not%20a%20key/subagents/{FIXTURE_AGENT}") == 400
    for query in ("offset=-1", "limit=0", "limit=501", "limit=x", "offset=1.5"):
        assert error(f"{base}/{FIXTURE_AGENT}?{query}") == 400, query
    # a path is no way in either: a slash, even escaped, matches no route
    for bad in (f"subagents%2Fagent-{FIXTURE_AGENT}.jsonl", "%2E%2E%2Fagent-x", f"..%2F..%2F{FIXTURE_SESSION}"):
        assert error(f"{base}/{bad}") == 404, bad
    # the same security as every route: a foreign Host or Origin is refused before any work
    assert request(server, f"{base}/{FIXTURE_AGENT}", {"Host": "attacker.example"})[0] == 403
    assert request(server, f"{base}/{FIXTURE_AGENT}", {"Origin": "http://attacker.example"})[0] == 403


def test_the_subagent_route_needs_the_token(sample_dir, server_factory):
    root = sample_dir(SUBAGENTS)
    server = server_factory(root, env={"HELM_HOST_NAME": HOST}, args=["--token", TOKEN])
    path = f"/api/sessions/{q(key_of(FIXTURE_SESSION))}/subagents/{FIXTURE_AGENT}"
    status, _, body = request(server, path)
    assert status == 401 and FIXTURE_AGENT.encode() not in body and b"messages" not in body
    assert request(server, path, {"Authorization": "Bearer wrong-token"})[0] == 401
    wait_until(lambda: request(server, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200, 10,
               message="the subagent served with the token")
    status, _, body = request(server, path, {"Authorization": f"Bearer {TOKEN}"})
    assert json.loads(body)["total"] == 5


def test_the_team_web_tier_has_no_subagent_transcripts():
    from helm_monitor.web.app import create_app
    app = create_app(Config(role="web", redis_url="redis://127.0.0.1:9", host_name="web", cache_dir=None))
    svc = app.extensions["helm"]
    svc.wait_ready = lambda timeout: True  # never started: no engine needed for what is asked here
    key = f"good:claude-code:{FIXTURE_SESSION}"
    svc.store.apply({key: dict(base_session("claude-code", FIXTURE_SESSION), key=key, host="good", stale=False)})
    client = app.test_client()
    detail = client.get(f"/api/sessions/{q(key)}", headers={"Host": "localhost"})
    assert detail.status_code == 200 and detail.get_json()["remote"] is True  # the session is known...
    sub = client.get(f"/api/sessions/{q(key)}/subagents/{FIXTURE_AGENT}", headers={"Host": "localhost"})
    assert sub.status_code == 404 and set(sub.get_json()) == {"error"}  # ...its subagents are not
    assert client.get(f"/api/sessions/{q(key)}/subagents/a.b", headers={"Host": "localhost"}).status_code == 400
