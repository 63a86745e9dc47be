"""Write a Claude data directory the way Claude Code writes it.

Each flush is one ``write()`` on a file opened with ``O_APPEND`` (what the CLI
does), records carry the fields the real CLI writes (see tests/fixtures/), and
registry files are rewritten in place.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from pathlib import Path


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def project_key(cwd: str) -> str:
    """Claude Code's directory name for a working directory."""
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)


def append(path: Path, data: bytes) -> None:
    """One O_APPEND write, like Claude Code's flush."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def proc_start(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat: what Claude Code records as procStart."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2:].split()[19].decode()


class SessionWriter:
    def __init__(self, claude_dir: Path, cwd: str, session_id: str, version: str, git_branch: str | None):
        self.claude_dir = claude_dir
        self.cwd = cwd
        self.id = session_id
        self.version = version
        self.git_branch = git_branch
        self.project_dir = claude_dir / "projects" / project_key(cwd)
        self.path = self.project_dir / f"{session_id}.jsonl"
        self._parent: str | None = None

    # -- records -------------------------------------------------------------
    def _base(self, type_: str, **extra) -> dict:
        rec = {
            "parentUuid": self._parent,
            "isSidechain": False,
            "type": type_,
            "uuid": str(uuid.uuid4()),
            "timestamp": now_iso(),
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self.cwd,
            "sessionId": self.id,
            "version": self.version,
        }
        if self.git_branch is not None:
            rec["gitBranch"] = self.git_branch
        rec.update(extra)
        self._parent = rec["uuid"]
        return rec

    def prompt_record(self, text: str, **extra) -> dict:
        return self._base("user", message={"role": "user", "content": text}, **extra)

    def assistant_records(self, text: str | None = "Done.", *, tool_use: dict | None = None,
                          model: str = "claude-opus-5-5", usage: dict | None = None,
                          message_id: str | None = None, timestamp: str | None = None,
                          agent_id: str | None = None) -> list[dict]:
        """One API message: a record per content block, same message.id. ``agent_id``: a
        subagent's (sidechain) record, as Claude Code writes them in subagents/agent-<id>.jsonl."""
        mid = message_id or "msg_" + uuid.uuid4().hex[:24]
        usage = usage or {"input_tokens": 10, "output_tokens": 20,
                          "cache_creation_input_tokens": 30, "cache_read_input_tokens": 40}
        blocks = []
        if text is not None:
            blocks.append({"type": "text", "text": text})
        if tool_use is not None:
            blocks.append({"type": "tool_use", "id": tool_use.get("id", "toolu_" + uuid.uuid4().hex[:20]),
                           "name": tool_use.get("name", "Bash"), "input": tool_use.get("input", {})})
        recs = []
        for block in blocks:
            rec = self._base("assistant", requestId="req_" + mid[4:], message={
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
                "stop_sequence": None, "usage": usage})
            if timestamp is not None:
                rec["timestamp"] = timestamp
            if agent_id is not None:
                rec = {"parentUuid": rec["parentUuid"], "isSidechain": True, "agentId": agent_id,
                       **{k: v for k, v in rec.items() if k not in ("parentUuid", "isSidechain")}}
            recs.append(rec)
        return recs

    def cost_state_record(self, models: dict[str, float], *, start_time: int = 1795464497625,
                          total: float | None = None, unknown: bool = False) -> dict:
        """Claude Code's running ledger of one process (``startTime``): totals, never deltas."""
        return {"type": "cost-state", "sessionId": self.id,
                "totalCostUSD": sum(models.values()) if total is None else total,
                "totalAPIDuration": 300, "totalAPIDurationWithoutRetries": 295, "totalToolDuration": 40,
                "totalLinesAdded": 0, "totalLinesRemoved": 0, "totalDuration": 900, "startTime": start_time,
                "modelUsage": {m: {"inputTokens": 8, "outputTokens": 104, "thinkingTokens": 0,
                                   "cacheReadInputTokens": 12349, "cacheCreationInputTokens": 12760,
                                   "cacheCreationEphemeral5mInputTokens": 12760,
                                   "cacheCreationEphemeral1hInputTokens": 0, "webSearchRequests": 0,
                                   "costUSD": usd} for m, usd in models.items()},
                "hasUnknownModelCost": unknown}

    def cost_state(self, models: dict[str, float], **kw) -> None:
        self.write(self.cost_state_record(models, **kw))

    def tool_result_record(self, tool_use_id: str, content: str, is_error: bool = False) -> dict:
        return self._base("user", message={"role": "user", "content": [
            {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": is_error}]})

    # -- writing -------------------------------------------------------------
    def write(self, *records: dict | list) -> None:
        """Append records in a single write, as one flush."""
        flat: list[dict] = []
        for r in records:
            flat.extend(r if isinstance(r, list) else [r])
        self.project_dir.mkdir(parents=True, exist_ok=True)
        append(self.path, b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in flat))

    def write_raw(self, data: bytes) -> None:
        self.project_dir.mkdir(parents=True, exist_ok=True)
        append(self.path, data)

    def prompt(self, text: str, **extra) -> None:
        self.write(self.prompt_record(text, **extra))

    def turn(self, prompt: str, reply: str = "Done.", **assistant_kw) -> None:
        """A prompt and its reply, flushed together."""
        self.write(self.prompt_record(prompt), self.assistant_records(reply, **assistant_kw))

    def reply(self, text: str = "Done.", **kw) -> None:
        self.write(self.assistant_records(text, **kw))

    def title(self, ai_title: str) -> None:
        self.write({"type": "ai-title", "aiTitle": ai_title, "sessionId": self.id})

    def rename(self, name: str) -> None:
        self.write({"type": "custom-title", "customTitle": name, "sessionId": self.id},
                   {"type": "agent-name", "agentName": name, "sessionId": self.id})

    def bookkeeping(self, size: int = 4000) -> None:
        """An api-request style record: bytes the session list never needs."""
        self.write({"type": "attachment", "parentUuid": self._parent, "isSidechain": False,
                    "attachment": {"type": "text", "content": "x" * size}, "uuid": str(uuid.uuid4()),
                    "timestamp": now_iso(), "sessionId": self.id, "version": self.version})

    def write_to(self, path: Path, *records: dict | list) -> None:
        """Append records to another file of this session (a subagent's) in one write."""
        flat: list[dict] = []
        for r in records:
            flat.extend(r if isinstance(r, list) else [r])
        append(path, b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in flat))

    def subagent_reply(self, path: Path, text: str = "Found them.", **kw) -> None:
        """An assistant message of the subagent whose transcript is ``path``."""
        agent_id = path.stem[len("agent-"):]
        self.write_to(path, self.assistant_records(text, agent_id=agent_id, **kw))

    def subagent(self, agent_id: str | None = None, *, nested: str | None = None) -> Path:
        """A subagent transcript under <session-id>/subagents/ (optionally nested)."""
        agent_id = agent_id or uuid.uuid4().hex[:17]
        d = self.project_dir / self.id / "subagents"
        if nested:
            d = d / nested
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"agent-a{agent_id}.jsonl"
        rec = {"parentUuid": None, "isSidechain": True, "agentId": f"a{agent_id}", "type": "user",
               "message": {"role": "user", "content": "List project files"}, "uuid": str(uuid.uuid4()),
               "timestamp": now_iso(), "cwd": self.cwd, "sessionId": self.id, "version": self.version}
        append(p, json.dumps(rec).encode() + b"\n")
        return p


class ClaudeDir:
    """A Claude data directory under test: ``projects/`` and ``sessions/``."""

    def __init__(self, root: Path, *, create_projects: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if create_projects:
            (self.root / "projects").mkdir(exist_ok=True)
            (self.root / "sessions").mkdir(exist_ok=True)

    @property
    def projects(self) -> Path:
        return self.root / "projects"

    def session(self, cwd: str = "/home/alice/code/webapp", session_id: str | None = None, *,
                version: str = "2.1.330", git_branch: str | None = "main") -> SessionWriter:
        return SessionWriter(self.root, cwd, session_id or str(uuid.uuid4()), version, git_branch)

    def register(self, pid: int, session_id: str, *, status: str | None = "busy", cwd: str = "/tmp",
                 proc_start_value: str | None = None, version: str = "2.1.330", **extra) -> Path:
        """Write sessions/<pid>.json in place, as Claude Code does on start and on status change."""
        (self.root / "sessions").mkdir(exist_ok=True)
        now_ms = int(_dt.datetime.now().timestamp() * 1000)
        data = {"pid": pid, "sessionId": session_id, "cwd": cwd, "startedAt": now_ms,
                "procStart": proc_start_value if proc_start_value is not None else proc_start(pid),
                "version": version, "kind": "interactive", "entrypoint": "cli", "name": "test",
                "updatedAt": now_ms, "statusUpdatedAt": now_ms}
        if status is not None:
            data["status"] = status
        data.update(extra)
        path = self.root / "sessions" / f"{pid}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data).encode())
        finally:
            os.close(fd)
        return path

    def unregister(self, pid: int) -> None:
        (self.root / "sessions" / f"{pid}.json").unlink()
