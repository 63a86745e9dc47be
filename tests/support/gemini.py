"""Write a Gemini CLI data directory the way Gemini CLI 0.61 does (see tests/fixtures/gemini-0.61.0).

Every record is one ``JSON.stringify`` line (compact, non-ASCII kept) appended
with its own open/append/close, as ``ChatRecordingService.appendRecord`` does;
``projects.json`` is replaced by temp file + rename; ``.project_root`` holds the
path without a newline. Timestamps come from a counter so tests can work out
every field by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path

CONTEXT_ID = "d04923d38bb0f6017037e74183378ef4"
MODEL = "gemini-2.5-flash"


def dumps(record) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def append(path: Path, record) -> int:
    data = record if isinstance(record, bytes) else dumps(record)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return len(data)


class Clock:
    def __init__(self, start: str = "2026-12-01T06:19:37.125Z"):
        self.t = dt.datetime.strptime(start, "%Y-%m-%dT%H:%M:%S.%fZ")

    def now(self, step_ms: int = 10) -> str:
        self.t += dt.timedelta(milliseconds=step_ms)
        return self.t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class GeminiHome:
    """A ``~/.gemini`` directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.clock = Clock()
        self.root.mkdir(parents=True, exist_ok=True)

    def project(self, path: str, slug: str | None = None, project_root: bool = True) -> "GeminiProject":
        slug = slug or os.path.basename(path.rstrip("/"))
        reg_path = self.root / "projects.json"
        reg = json.loads(reg_path.read_text()) if reg_path.exists() else {"projects": {}}
        reg["projects"][path] = slug
        tmp = reg_path.with_name("projects.json.tmp")
        tmp.write_text(json.dumps(reg, indent=2))
        os.replace(tmp, reg_path)
        d = self.tmp / slug
        (d / "chats").mkdir(parents=True, exist_ok=True)
        if project_root:
            (d / ".project_root").write_text(path)
        return GeminiProject(self, path, slug)


class GeminiProject:
    def __init__(self, home: GeminiHome, path: str, slug: str):
        self.home = home
        self.path = path
        self.slug = slug
        self.dir = home.tmp / slug
        self.chats = self.dir / "chats"
        self.hash = hashlib.sha256(path.encode()).hexdigest()

    def session(self, session_id: str | None = None, minute: str | None = None) -> "GeminiChat":
        return GeminiChat(self, session_id or str(uuid.uuid4()), minute)

    def subagent(self, parent_id: str, agent_id: str | None = None) -> Path:
        return self.subagent_chat(parent_id, agent_id).path

    def subagent_chat(self, parent_id: str, agent_id: str | None = None) -> "GeminiChat":
        """A sub-agent's chat (``chats/<parent id>/<agent id>.jsonl``, 0.37+): its metadata line,
        then what the chat methods write."""
        d = self.chats / parent_id
        d.mkdir(parents=True, exist_ok=True)
        agent_id = agent_id or str(uuid.uuid4())
        chat = GeminiChat(self, agent_id, start=False, path=d / f"{agent_id}.jsonl")
        now = self.home.clock.now()
        chat.append({"sessionId": agent_id, "projectHash": self.hash, "startTime": now, "lastUpdated": now,
                     "kind": "subagent", "directories": [self.path]})
        return chat


class GeminiChat:
    """One chat file, started as the CLI starts one: metadata, then the context checkpoint."""

    def __init__(self, project: GeminiProject, session_id: str, minute: str | None = None, start: bool = True,
                 path: Path | None = None):
        self.project = project
        self.id = session_id
        clock = project.home.clock
        minute = minute or clock.t.strftime("%Y-%m-%dT%H-%M")
        self.path = path or project.chats / f"session-{minute}-{session_id[:8]}.jsonl"
        if start:
            now = clock.now()
            self.append({"sessionId": session_id, "projectHash": project.hash, "startTime": now,
                         "lastUpdated": now, "kind": "main"})
            ts = clock.now(1)
            self.append({"$set": {"messages": [self.context(ts)], "lastUpdated": ts}})

    @staticmethod
    def context(ts: str) -> dict:
        return {"id": CONTEXT_ID, "timestamp": ts, "type": "user",
                "content": [{"text": "<session_context>\nThis is the Gemini CLI. We are setting up the context."}]}

    def now(self, step_ms: int = 10) -> str:
        return self.project.home.clock.now(step_ms)

    def append(self, record) -> int:
        return append(self.path, record)

    def touch(self) -> int:
        return self.append({"$set": {"lastUpdated": self.now(1)}})

    def prompt(self, text: str) -> str:
        mid = str(uuid.uuid4())
        self.append({"id": mid, "timestamp": self.now(), "type": "user", "content": [{"text": text}]})
        self.touch()
        return mid

    def reply(self, text: str, tokens: dict | None = None, model: str = MODEL, mid: str | None = None,
              tool_calls: list | None = None, ts: str | None = None) -> str:
        mid = mid or str(uuid.uuid4())
        rec = {"id": mid, "timestamp": ts or self.now(), "type": "gemini", "content": text, "thoughts": [],
               "tokens": tokens, "model": model}
        if tool_calls is not None:
            rec["toolCalls"] = tool_calls
        self.append(rec)
        self.touch()
        return mid

    def tool_turn(self, command: str, tokens: dict, status: str = "success") -> tuple[str, str]:
        """A reply calling the shell tool, written as 0.61 does: the reply, then the same id again
        with its toolCalls, then (when done) the user record carrying the functionResponse."""
        ts = self.now()
        call_id = f"run_shell_command__run_shell_command_{uuid.uuid4().int % 10**13}_0"
        mid = self.reply("", tokens, ts=ts)
        response = [{"functionResponse": {"id": call_id, "name": "run_shell_command",
                                          "response": {"output": f"Output: {command}"}}}]
        call = {"id": call_id, "name": "run_shell_command", "args": {"command": command},
                "status": status, "timestamp": self.now(), "displayName": "Shell", "description": command}
        if status == "success":
            call["result"] = response
        self.reply("", tokens, mid=mid, ts=ts, tool_calls=[call])
        rid = None
        if status == "success":
            rid = str(uuid.uuid4())
            self.append({"id": rid, "timestamp": self.now(), "type": "user", "content": response})
            self.touch()
        return mid, rid

    def stub(self, minute: str) -> "GeminiChat":
        """The stub a ``--resume`` in a later minute leaves: metadata and the context checkpoint only."""
        return GeminiChat(self.project, self.id, minute)


def tokens(input: int, output: int, cached: int = 0, thoughts: int = 0, tool: int = 0) -> dict:
    """A reply's ``tokens`` as 0.61 records the API's usageMetadata: ``input`` (promptTokenCount)
    holds ``cached``; ``tool`` (toolUsePromptTokenCount) and ``thoughts`` are outside it and in the total."""
    return {"input": input, "output": output, "cached": cached, "thoughts": thoughts, "tool": tool,
            "total": input + output + thoughts + tool}
