"""Write a Codex home the way Codex CLI 0.171 writes it (see tests/fixtures/codex-0.171.0/).

Rollouts: ``sessions/YYYY/MM/DD/rollout-<local time>-<uuid>.jsonl``, opened
``O_APPEND``, one compact JSON line per item (``{"timestamp","ordinal","type","payload"}``)
written with its newline in one ``write()``. ``session_meta`` first, with a
``base_instructions`` blob as big as asked. Paginated threads record
``event_msg/item_completed`` UserMessage/AgentMessage; legacy ones
``event_msg/user_message`` / ``agent_message``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from pathlib import Path


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def line(obj) -> bytes:
    """serde_json's compact form."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def uuid7(ms: int | None = None) -> str:
    """A UUIDv7 (time-ordered, as Codex's thread and turn ids): ``ms`` since the epoch, then random bits."""
    ms = int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000) if ms is None else ms
    rand = uuid.uuid4().int
    value = (ms & (2 ** 48 - 1)) << 80 | 0x7 << 76 | (rand & 0xFFF) << 64 | 0b10 << 62 | (rand >> 12) & (2 ** 62 - 1)
    return str(uuid.UUID(int=value))


def new_thread_id() -> str:
    return uuid7()


class Rollout:
    def __init__(self, home: "CodexHome", thread_id: str, path: Path, paginated: bool):
        self.home = home
        self.id = thread_id
        self.path = path
        self.paginated = paginated
        self.ordinal = 0
        self.turn_id: str | None = None
        # the thread's cumulative usage (total_token_usage): input, cached, cache write, output,
        # reasoning, total
        self.total = [0, 0, 0, 0, 0, 0]

    def raw(self, data: bytes) -> "Rollout":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append(self.path, data)
        return self

    def record(self, type_: str, payload: dict, ts: str | None = None) -> "Rollout":
        rec = {"timestamp": ts or now_iso(), "ordinal": self.ordinal, "type": type_, "payload": payload}
        self.ordinal += 1
        return self.raw(line(rec))

    def event(self, payload: dict, ts: str | None = None) -> "Rollout":
        return self.record("event_msg", payload, ts)

    def meta(self, cwd: str = "/home/user/code/alpha", branch: str | None = "main", version: str = "0.171.0",
             instructions_bytes: int = 20_000, ts: str | None = None, **extra) -> "Rollout":
        payload = {"account_scoped": True, "session_id": self.id, "id": self.id, "timestamp": ts or now_iso(),
                   "cwd": cwd, "runtime_workspace_roots": [cwd], "originator": "codex_exec", "cli_version": version,
                   "source": "exec", "thread_source": "user", "model_provider": "mock",
                   "base_instructions": "You are Codex. " + "x" * instructions_bytes,
                   "history_mode": "paginated" if self.paginated else "legacy"}
        if branch is not None:
            payload["git"] = {"commit_hash": "0c2288eff5042f098c91883af1f0034ac2f1518e", "branch": branch}
        payload.update(extra)
        return self.record("session_meta", payload, ts)

    def turn_started(self, model: str = "mock-model", ts: str | None = None, turn_id: str | None = None,
                     started_at: int = 1796105908) -> "Rollout":
        self.turn_id = turn_id or uuid7()
        self.event({"type": "task_started", "turn_id": self.turn_id, "started_at": started_at,
                    "model_context_window": 258400, "collaboration_mode_kind": "default"}, ts)
        self.record("response_item", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>\n  <cwd>/home/user/code/alpha</cwd>\n"
                                           "</environment_context>"}]}, ts)
        return self.record("turn_context", {"turn_id": self.turn_id, "cwd": "/home/user/code/alpha",
                                            "approval_policy": "never", "model": model}, ts)

    def user(self, text: str, ts: str | None = None) -> "Rollout":
        self.record("response_item", {"type": "message", "role": "user",
                                      "content": [{"type": "input_text", "text": text}]}, ts)
        if self.paginated:
            return self.event({"type": "item_completed", "thread_id": self.id, "turn_id": self.turn_id,
                               "item": {"type": "UserMessage", "id": str(uuid.uuid4()),
                                        "content": [{"type": "text", "text": text, "text_elements": []}]}}, ts)
        return self.event({"type": "user_message", "message": text, "images": []}, ts)

    def agent(self, text: str, ts: str | None = None) -> "Rollout":
        mid = "msg_" + uuid.uuid4().hex[:24]
        if self.paginated:
            self.event({"type": "item_completed", "thread_id": self.id, "turn_id": self.turn_id,
                        "item": {"type": "AgentMessage", "id": mid, "content": [{"type": "Text", "text": text}]}}, ts)
        else:
            self.event({"type": "agent_message", "message": text}, ts)
        return self.record("response_item", {"type": "message", "status": "completed", "id": mid, "role": "assistant",
                                             "content": [{"type": "output_text", "text": text}]}, ts)

    def tool(self, cmd: str, output: str, ts: str | None = None) -> "Rollout":
        call = "call_" + uuid.uuid4().hex[:24]
        self.record("response_item", {"type": "function_call", "status": "completed", "name": "exec_command",
                                      "arguments": json.dumps({"cmd": cmd}), "call_id": call}, ts)
        return self.record("response_item", {"type": "function_call_output", "call_id": call, "output": output}, ts)

    def tokens(self, inp: int, cached: int, out: int, cache_write: int = 0, ts: str | None = None) -> "Rollout":
        usage = {"input_tokens": inp, "cached_input_tokens": cached, "cache_write_input_tokens": cache_write,
                 "output_tokens": out, "reasoning_output_tokens": 0, "total_tokens": inp + out}
        return self.event({"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage,
                                                           "model_context_window": 258400}, "rate_limits": None}, ts)

    def request(self, inp: int, cached: int, out: int, cache_write: int = 0, reasoning: int = 0,
                ts: str | None = None) -> "Rollout":
        """One model request as Codex 0.171 records it: a token_count whose last_token_usage is the
        request's and whose total_token_usage is the thread's running sum (``input_tokens`` holds the
        cached and written parts; ``output_tokens`` holds reasoning)."""
        last = [inp, cached, cache_write, out, reasoning, inp + out]
        self.total = [a + b for a, b in zip(self.total, last)]
        return self.count(last, self.total, ts)

    def count(self, last, total, ts: str | None = None) -> "Rollout":
        """A token_count event with these usages (lists of input, cached, cache write, output,
        reasoning, total): ``request`` writes them; a repeated one is written with this."""
        keys = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens",
                "reasoning_output_tokens", "total_tokens")
        info = {"total_token_usage": dict(zip(keys, total)), "last_token_usage": dict(zip(keys, last)),
                "last_usage_includes_reasoning": False, "model_context_window": 258400}
        return self.event({"type": "token_count", "info": info, "rate_limits": None}, ts)

    def turn_complete(self, ts: str | None = None) -> "Rollout":
        return self.event({"type": "task_complete", "turn_id": self.turn_id, "last_agent_message": None,
                           "duration_ms": 10}, ts)


class CodexHome:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sessions = self.root / "sessions"
        self.locks = self.root / "thread-writer-locks"
        self.index = self.root / "session_index.jsonl"

    def rollout(self, thread_id: str | None = None, paginated: bool = True, archived: bool = False,
                when: _dt.datetime | None = None, suffix: str = "") -> Rollout:
        tid = thread_id or new_thread_id()
        when = when or _dt.datetime.now()  # local time, as Codex names them
        name = f"rollout-{when.strftime('%Y-%m-%dT%H-%M-%S')}-{tid}{suffix}.jsonl"
        folder = self.root / "archived_sessions" if archived else self.sessions / when.strftime("%Y/%m/%d")
        return Rollout(self, tid, folder / name, paginated)

    def fork(self, parent: Rollout, thread_id: str | None = None, subagent: bool = False, **meta) -> Rollout:
        """A thread forked from ``parent`` as Codex writes it: its own session_meta (``forked_from_id``;
        a sub-agent's also names its parent), then the parent's rollout copied line by line, its own
        session_meta too, every line stamped anew (Codex rewrites the copies' times), its usage
        continuing from the parent's total."""
        child = self.rollout(thread_id)
        extra = dict(meta, forked_from_id=parent.id)
        if subagent:
            extra.update(source={"subagent": {"thread_spawn": {"parent_thread_id": parent.id, "depth": 1}}},
                         thread_source="subagent")
        child.meta(**extra)
        for raw in parent.path.read_bytes().splitlines():
            rec = json.loads(raw)
            child.record(rec["type"], rec["payload"])
        child.total = list(parent.total)
        return child

    def name_thread(self, thread_id: str, name: str) -> None:
        append(self.index, line({"id": thread_id, "thread_name": name, "updated_at": now_iso()}))

    def lock_path(self, thread_id: str) -> Path:
        return self.locks / f"{thread_id}.lock"


# A child that owns a thread as Codex does: creates thread-writer-locks/<id>.lock, holds an exclusive flock
# on it, appends to the rollout; commands on stdin: "append <json line>", "release" (unlink, then unlock).
OWNER_CHILD = r"""
import fcntl, os, sys
lock, rollout = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(lock), exist_ok=True)
fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
for cmd in sys.stdin:
    cmd = cmd.rstrip("\n")
    if cmd.startswith("append "):
        out = os.open(rollout, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(out, cmd[7:].encode() + b"\n")
        os.close(out)
    elif cmd == "release":
        os.unlink(lock)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    print("ok", flush=True)
"""
