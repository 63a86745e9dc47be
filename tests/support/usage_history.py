"""A generated Claude Code history with known usage, written the way Claude Code 2.1.330 writes it.

    history = write_history(tmp_path / "claude", seed=13)
    history.daily("UTC", rules="helm")     # what helm-monitor must report per local day
    history.daily("UTC", rules="ccusage")  # what ccusage reports per local day

Deterministic for a seed: every id, time and count comes from one ``random.Random``. Records
follow the real CLI's (tests/fixtures/claude-code-2.1.330*/ and CLAUDE_CODE_FORMAT.md): the same
fields in the same order, ``parentUuid`` chains, bookkeeping records between the conversation
records (queue-operation, attachment, api-request-shape/-blob, api-request, tools-used,
last-prompt, ai-title, file-history-snapshot, system/turn_duration, cost-state), one flush per
``O_APPEND`` write. What it holds:

- several projects, sessions spread over two weeks (from 2026-10-20: Europe's summer time ends
  on the 25th), some of them crossing UTC midnight, some resumed hours or a day later (the same
  file appended), several models (a session may switch model), fast mode on some requests;
- streamed messages: one API message written as one record per content block (thinking, text,
  tool_use), each with the same ``message.id``, ``requestId`` and usage;
- subagents: ``<session-id>/subagents/agent-<id>.jsonl`` (``isSidechain: true``, an ``agentId``,
  their own message ids) with their ``.meta.json``;
- cache writes as 5-minute and 1-hour writes (``cache_creation{ephemeral_5m,1h}``), some
  requests above 200k prompt tokens, ``cost-state`` ledgers, ``<synthetic>`` error replies;
- a few messages from the 2.1.29 era (a stream's first record with ``output_tokens: 1``, then the
  final usage) and some without the ``cache_creation`` breakdown.

With ``edge_cases`` (True: all of them, or some names of :data:`EDGE_CASES`) it also writes the
cases where tools may count differently; :meth:`History.daily` applies each tool's rule to them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import uuid as _uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

VERSION = "2.1.330"
START = datetime(2026, 10, 20, tzinfo=timezone.utc)
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PROJECTS = ["/home/alice/code/api-server", "/home/alice/code/webapp", "/home/alice/code/infra-tools",
            "/home/bob/work/data.pipeline", "/srv/repos/ml_models"]
BRANCHES = ["main", "main", "feature/usage", "fix/login", None]
# model -> weight; list prices per million tokens (input, output, 5m write, 1h write, read): only for
# the cost-state ledger this history writes (what the CLI itself charged), not checked here.
MODELS = {
    "claude-opus-4-5-20251101": (3, (5.0, 25.0, 6.25, 10.0, 0.5)),
    "claude-sonnet-4-5-20250929": (4, (3.0, 15.0, 3.75, 6.0, 0.3)),
    "claude-haiku-4-5-20251001": (2, (1.0, 5.0, 1.25, 2.0, 0.1)),
    "claude-opus-4-6": (1, (5.0, 25.0, 6.25, 10.0, 0.5)),
    "claude-opus-5-5": (2, (4.0, 20.0, 5.0, 8.0, 0.4)),
}
FAST_MODELS = {"claude-opus-4-6"}
TOKEN_FIELDS = ("input", "output", "cacheCreation", "cacheRead")

# The cases where tools may apply different rules (written only with edge_cases):
EDGE_CASES = {
    "zero-breakdown": "a usage whose cache_creation breakdown is all zeros while "
                      "cache_creation_input_tokens is not (the real CLI wrote this against a mock API: "
                      "7 of 39 records of tests/fixtures/claude-code-2.1.330*)",
    "forked-copy": "a forked session (--resume --fork-session) whose transcript begins with a copy of "
                   "the earlier conversation: the same message.id and requestId in two sessions' files",
    "midnight-split": "one API message streamed over records on either side of midnight UTC",
}


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ms_of(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def project_key(cwd: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)


def _append(path: Path, lines: list[dict]) -> int:
    """One flush: every line in one write() on a file opened with O_APPEND (as the CLI does)."""
    if not lines:
        return 0
    data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return len(data)


# ------------------------------------------------------------------ the facts written
@dataclasses.dataclass
class Record:
    """One assistant record of an API message, as written."""
    ts_ms: int
    input: int
    output: int
    cache_read: int
    cache_creation: int  # cache_creation_input_tokens
    cw5m: int | None  # cache_creation.ephemeral_5m_input_tokens (None: no breakdown object)
    cw1h: int | None
    speed: str | None
    file: str


@dataclasses.dataclass
class ApiMessage:
    """One API reply as it lies on disk: every record of it, in every file it is in."""
    message_id: str
    request_id: str
    session_id: str  # the session it was made in (its first record's file)
    project: str
    model: str
    sidechain: bool
    kind: str  # "plain", "no-breakdown", "growing", "synthetic", or one of EDGE_CASES
    records: list[Record] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class History:
    root: Path
    seed: int
    messages: list[ApiMessage]
    sessions: dict[str, dict]  # session id -> {"project", "transcript", "subagents": [...], "forkedFrom"}
    files: list[Path]
    bytes: int

    # -------------------------------------------------------------- expected numbers
    def counted(self, rules: str = "helm", **variant) -> list[tuple[int, str, str, dict]]:
        """Every message as ``rules`` counts it: (ms, session, model, {field: tokens}).

        ``"helm"`` (SPEC 10, USAGE_TRANSCRIPTS_SEARCH.md 1.1/1.4): one count per distinct
        (message.id, requestId) across the whole history (a copy in a forked session is the same
        API message), its last record's usage, dated by its first record (the request's time);
        cache creation is the 5m + 1h breakdown,
        or cache_creation_input_tokens when there is no breakdown or it sums to 0.
        ``"ccusage"`` (ccusage 20, src/adapter/claude/mod.rs push_deduped_entry, src/types.rs):
        one count per (message.id, requestId); of duplicates the non-sidechain entry wins, then the
        larger token total, then the one with ``speed``, else the first read; cache creation is the
        breakdown whenever the ``cache_creation`` object exists (so 0 when it is all zeros).

        ``variant`` changes one of helm's rules, to name what a wrong count did instead:
        ``dedupe="session"`` (a forked copy counted again), ``date_by="last"``,
        ``creation="breakdown"`` (ccusage's cache-creation rule), ``subagents=False``."""
        dedupe = variant.get("dedupe", "global")
        date_by = variant.get("date_by", "first")
        creation_rule = variant.get("creation", "fallback")
        subagents = variant.get("subagents", True)
        out = []
        seen: set[tuple] = set()
        for m in self.messages:
            key = (m.message_id, m.request_id) if dedupe == "global" or rules != "helm" else \
                (m.session_id, m.message_id, m.request_id)
            if key in seen:  # a copy (forked-copy): its records are already in the first one
                continue
            seen.add(key)
            if rules == "helm":
                if m.sidechain and not subagents:
                    continue
                r = m.records[-1]
                cw = (r.cw5m or 0) + (r.cw1h or 0)
                if creation_rule == "breakdown":
                    creation = r.cache_creation if r.cw5m is None else cw
                else:
                    creation = cw if cw else r.cache_creation
                ts_ms = m.records[0].ts_ms if date_by == "first" else r.ts_ms
            elif rules == "ccusage":
                r = m.records[0]
                for other in m.records[1:]:
                    if _total(other) > _total(r):
                        r = other
                creation = r.cache_creation if r.cw5m is None else (r.cw5m or 0) + (r.cw1h or 0)
                ts_ms = r.ts_ms
            else:
                raise ValueError(rules)
            out.append((ts_ms, m.session_id, m.model,
                        {"input": r.input, "output": r.output, "cacheCreation": creation, "cacheRead": r.cache_read}))
        return out

    def daily(self, tz: str = "UTC", rules: str = "helm", **variant) -> dict[str, dict[str, int]]:
        """Tokens per local day of ``tz`` ("YYYY-MM-DD" -> {input, output, cacheCreation, cacheRead})."""
        zone = ZoneInfo(tz)
        days: dict[str, dict[str, int]] = {}
        for ts_ms, _sid, _model, tokens in self.counted(rules, **variant):
            day = datetime.fromtimestamp(ts_ms / 1000, zone).date().isoformat()
            acc = days.setdefault(day, dict.fromkeys(TOKEN_FIELDS, 0))
            for k in TOKEN_FIELDS:
                acc[k] += tokens[k]
        return dict(sorted(days.items()))

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.messages:
            out[m.kind] = out.get(m.kind, 0) + 1
        return out


def _total(r: Record) -> int:
    cw = r.cache_creation if r.cw5m is None else (r.cw5m or 0) + (r.cw1h or 0)
    return r.input + r.output + r.cache_read + cw


# ------------------------------------------------------------------ writing
class _Writer:
    def __init__(self, root: Path, seed: int, edge_cases):
        self.root = Path(root)
        self.rng = random.Random(seed)
        edge = set(EDGE_CASES) if edge_cases is True else set(edge_cases or ())
        if edge - set(EDGE_CASES):
            raise ValueError(f"unknown edge cases {sorted(edge - set(EDGE_CASES))}")
        self.edge = edge
        self.messages: list[ApiMessage] = []
        self.sessions: dict[str, dict] = {}
        self.files: list[Path] = []
        self.bytes = 0
        self._seen_files: set[Path] = set()
        self.straddles = 0  # midnight-split messages written
        self.prompts: list[dict] = []  # history.jsonl

    # ids
    def uuid(self) -> str:
        return str(_uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, n: int) -> str:
        return "".join(self.rng.choice(B62) for _ in range(n))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def write(self, path: Path, lines: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path not in self._seen_files:
            self._seen_files.add(path)
            self.files.append(path)
        self.bytes += _append(path, lines)

    # -------------------------------------------------------------- one session
    def session(self, index: int) -> None:
        rng = self.rng
        cwd = rng.choice(PROJECTS)
        sid = self.uuid()
        branch = rng.choice(BRANCHES)
        pdir = self.root / "projects" / project_key(cwd)
        path = pdir / f"{sid}.jsonl"
        day = rng.randrange(14)
        if rng.random() < 0.3:  # late: the session runs over midnight UTC
            t = START + timedelta(days=day, hours=23, minutes=rng.randint(5, 55), seconds=rng.random() * 60)
        else:
            t = START + timedelta(days=day, hours=rng.randint(6, 21), minutes=rng.randint(0, 59),
                                  seconds=rng.random() * 60)
        names = list(MODELS)
        model = rng.choices(names, [MODELS[n][0] for n in names])[0]
        cache_kind = rng.choice(["5m", "5m", "5m", "1h", "mixed"])
        interactive = rng.random() < 0.5
        s = _Session(self, sid, cwd, branch, path, model, cache_kind, interactive)
        self.sessions[sid] = {"project": cwd, "transcript": path, "subagents": [], "forkedFrom": None}
        runs = rng.choices([1, 2, 3], [5, 3, 1])[0]
        for run in range(runs):
            if run:
                t += timedelta(hours=rng.uniform(2, 30))  # --continue / --resume: the same file, later
            t = s.run(t, rng.randint(2, 5))
        if "forked-copy" in self.edge and index % 9 == 4:
            self.fork(s, t + timedelta(minutes=rng.randint(10, 90)))

    def fork(self, parent: "_Session", t: datetime) -> None:
        """--resume --fork-session: a new session whose file starts with the parent's conversation."""
        rng = self.rng
        sid = self.uuid()
        path = parent.path.parent / f"{sid}.jsonl"
        copied = []
        for rec in parent.conversation:
            rec = dict(rec, sessionId=sid)
            copied.append(rec)
        self.write(path, copied)
        for m in list(self.messages):
            if m.session_id == parent.sid and not m.sidechain and m.records[0].file == str(parent.path):
                copy = ApiMessage(m.message_id, m.request_id, sid, m.project, m.model, False, "forked-copy",
                                  [dataclasses.replace(r, file=str(path)) for r in m.records])
                self.messages.append(copy)
        self.sessions[sid] = {"project": parent.cwd, "transcript": path, "subagents": [], "forkedFrom": parent.sid}
        s = _Session(self, sid, parent.cwd, parent.branch, path, parent.model, parent.cache_kind, True)
        s.parent_uuid = copied[-1]["uuid"] if copied else None
        s.run(t, rng.randint(1, 3))


class _Session:
    """One transcript being written (a main session or a subagent)."""

    def __init__(self, w: _Writer, sid: str, cwd: str, branch: str | None, path: Path, model: str,
                 cache_kind: str, interactive: bool, agent_id: str | None = None, ledger=None):
        self.w = w
        self.sid = sid
        self.cwd = cwd
        self.branch = branch
        self.path = path
        self.model = model
        self.cache_kind = cache_kind
        self.interactive = interactive
        self.agent_id = agent_id
        self.parent_uuid: str | None = None
        self.buf: list[dict] = []
        self.conversation: list[dict] = []  # user/assistant/attachment records, for a fork's copy
        # model -> [input, output, cacheRead, cacheCreation, cw5m, cw1h, usd]: the session's cost-state
        self.ledger = ledger if ledger is not None else {}
        self.subagents = 0
        self.t0_ms: int | None = None

    # -------------------------------------------------------------- records
    def base(self, type_: str, t: datetime, **extra) -> dict:
        rec = {"parentUuid": self.parent_uuid, "isSidechain": self.agent_id is not None}
        if self.agent_id:
            rec["agentId"] = self.agent_id
        rec.update(extra)
        rec["type"] = type_
        rec["uuid"] = self.w.uuid()
        rec["timestamp"] = iso(t)
        rec.update({"userType": "external", "entrypoint": "cli" if self.interactive else "sdk-cli",
                    "cwd": self.cwd, "sessionId": self.sid, "version": VERSION})
        if self.branch:
            rec["gitBranch"] = self.branch
        return rec

    def emit(self, rec: dict, conversation: bool = True) -> dict:
        self.buf.append(rec)
        if "uuid" in rec and rec.get("type") in ("user", "assistant", "attachment", "system"):
            self.parent_uuid = rec["uuid"]
        if conversation and rec.get("type") in ("user", "assistant"):
            self.conversation.append(rec)
        return rec

    def flush(self) -> None:
        self.w.write(self.path, self.buf)
        self.buf = []

    def side(self, type_: str, t: datetime | None = None, **fields) -> None:
        rec = {"type": type_}
        rec.update(fields)
        if t is not None:
            rec["timestamp"] = iso(t)
        rec["sessionId"] = self.sid
        if self.agent_id:
            rec["agentId"] = self.agent_id
        self.emit(rec, conversation=False)

    def user(self, t: datetime, content, prompt_id: str, **extra) -> dict:
        fields = {"promptId": prompt_id, "message": {"role": "user", "content": content}}
        fields.update(extra)
        return self.emit(self.base("user", t, **fields))

    def attachment(self, t: datetime, kind: str) -> None:
        rng = self.w.rng
        if kind == "environment":
            att = {"type": "environment", "snapshot": {"workingDirectory": self.cwd, "isWorktree": False,
                                                        "isGitRepo": True, "additionalWorkingDirectories": [],
                                                        "platform": "linux", "shell": "bash",
                                                        "osVersion": "Linux 6.18.44"}}
        else:
            att = {"type": kind, "content": "x" * rng.randint(40, 400)}
        self.emit(self.base("attachment", t, attachment=att,
                            rendered=[{"content": "filler " * rng.randint(5, 60)}], renderedRole="user"),
                  conversation=False)

    def api_bookkeeping(self, t: datetime) -> None:
        rng = self.w.rng
        shape = self.w.hex(64)
        if rng.random() < 0.3:
            self.side("api-request-shape", t, shapeHash=shape, version=VERSION,
                      shape={"system": [{"type": "text", "text": "You are Claude Code. " + "lorem " * rng.randint(50, 400)}]})
        self.side("api-request-blob", None, hash=self.w.hex(64),
                  message={"role": "user", "content": [{"type": "text", "text": "ipsum " * rng.randint(10, 200)}]})
        self.side("api-request", t, id=self.w.uuid(), version=VERSION, querySource="sdk", shapeHash=shape,
                  params={"model": self.model, "max_tokens": 128000, "thinking": {"type": "adaptive"}},
                  cacheControl={"type": "ephemeral"}, keep=rng.randint(1, 9), tail=[], requestDigest=self.w.hex(16))

    # -------------------------------------------------------------- usage
    def usage(self, model: str, plain: bool = False) -> tuple[dict, str]:
        """One request's usage (as the API returns it) and its kind."""
        rng = self.w.rng
        r = rng.random()
        inp = rng.randint(1, 60) if r < 0.8 else rng.randint(200, 9000)
        out = rng.choice([rng.randint(1, 300), rng.randint(300, 4000)])
        if rng.random() < 0.06:  # a long context: the whole prompt above 200k tokens
            read = rng.randint(200_001, 480_000)
        else:
            read = rng.choice([0, rng.randint(2_000, 60_000), rng.randint(60_000, 190_000)])
        write = rng.choice([0, rng.randint(100, 4_000), rng.randint(4_000, 40_000)])
        kind = self.cache_kind if self.cache_kind != "mixed" else rng.choice(["5m", "1h", "both"])
        if kind == "5m":
            cw5m, cw1h = write, 0
        elif kind == "1h":
            cw5m, cw1h = 0, write
        else:
            cw1h = rng.randint(0, write)
            cw5m = write - cw1h
        speed = "fast" if model in FAST_MODELS and rng.random() < 0.4 else "standard"
        usage = {"input_tokens": inp, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                 "output_tokens": out, "output_tokens_details": {"thinking_tokens": rng.randint(0, out)},
                 "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                 "service_tier": "standard",
                 "cache_creation": {"ephemeral_1h_input_tokens": cw1h, "ephemeral_5m_input_tokens": cw5m},
                 "inference_geo": "", "iterations": [], "speed": speed, "fallback_credit": None}
        r = 0.5 if plain else rng.random()
        if "zero-breakdown" in self.w.edge and write and r < 0.07:
            usage["cache_creation"] = {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}
            return usage, "zero-breakdown"
        if r > 0.95:  # no breakdown at all (older CLIs)
            del usage["cache_creation"]
            return usage, "no-breakdown"
        return usage, "plain"

    def assistant(self, t: datetime, *, tool: str | None = None,
                  straddle: bool = False) -> tuple[datetime, str | None, str | None]:
        """One API call: its records (one per content block) and the tool it called, if any.
        Returns (time after it, the last record's uuid, the tool_use id)."""
        w, rng = self.w, self.w.rng
        model = self.model
        mid = "msg_01" + w.b62(22)
        rid = "req_011C" + w.b62(20)
        usage, kind = self.usage(model, plain=straddle)
        blocks = []
        if rng.random() < 0.5:
            blocks.append({"type": "thinking", "thinking": "", "signature": w.b62(40)})
        blocks.append({"type": "text", "text": "Working on it. " + "words " * rng.randint(1, 40)})
        tool_id = None
        if tool:
            tool_id = "toolu_01" + w.b62(22)
            blocks.append({"type": "tool_use", "id": tool_id, "name": tool,
                           "input": {"command": "ls -la"} if tool == "Bash" else {"description": "Look around",
                                                                                  "prompt": "List the files"}})
        growing = midnight = False
        if straddle:  # the last block lands after midnight UTC
            if len(blocks) < 2:
                blocks.insert(0, {"type": "thinking", "thinking": "", "signature": w.b62(40)})
            midnight = True
            kind = "midnight-split"
        elif kind == "plain" and len(blocks) > 1 and rng.random() < 0.05:
            kind = "growing"  # as 2.1.29 wrote: the first record has the stream's start usage
            growing = True
        msg = ApiMessage(mid, rid, self.sid, self.cwd, model, self.agent_id is not None, kind)
        request_ref = w.uuid()
        cache_req = "1h" if self.cache_kind == "1h" else "5m"
        stop = "tool_use" if tool else "end_turn"
        last_uuid = None
        next_midnight = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        for i, block in enumerate(blocks):
            if midnight and i == len(blocks) - 1:
                t = max(t, next_midnight + timedelta(milliseconds=rng.randint(5, 900)))
            u = usage
            if growing and i == 0:
                u = dict(usage, output_tokens=1)
            m = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [block],
                 "stop_reason": stop, "stop_sequence": None, "usage": u, "stop_details": None}
            fields = {"message": m, "apiBlockIndex": i, "requestId": rid, "requestRef": request_ref,
                      "requestedModel": model, "promptCacheRequested": cache_req}
            if block["type"] == "tool_use":
                fields["toolInputStreamMs"] = rng.randint(1, 40)
            if self.agent_id:
                fields["attributionAgent"] = "general-purpose"
            rec = self.emit(self.base("assistant", t, **fields, effort="medium", perTurnEffort="medium", madeBy="model"))
            last_uuid = rec["uuid"]
            cw = u.get("cache_creation")
            msg.records.append(Record(ms_of(t), u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
                                      u["cache_creation_input_tokens"],
                                      None if cw is None else cw["ephemeral_5m_input_tokens"],
                                      None if cw is None else cw["ephemeral_1h_input_tokens"],
                                      u.get("speed"), str(self.path)))
            t += timedelta(milliseconds=rng.randint(2, 1500))
        self.w.messages.append(msg)
        self.charge(model, usage)
        return t, last_uuid, tool_id

    def synthetic(self, t: datetime) -> datetime:
        """An API error shown as a reply: model ``<synthetic>``, all usage zero."""
        w = self.w
        mid = str(w.uuid())
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                 "service_tier": None, "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}}
        m = {"id": mid, "model": "<synthetic>", "role": "assistant", "stop_reason": "stop_sequence",
             "stop_sequence": "", "type": "message", "usage": usage,
             "content": [{"type": "text", "text": "API Error: 529 Overloaded"}]}
        self.emit(self.base("assistant", t, message=m, isApiErrorMessage=True))
        msg = ApiMessage(mid, "", self.sid, self.cwd, "<synthetic>", self.agent_id is not None, "synthetic",
                         [Record(ms_of(t), 0, 0, 0, 0, 0, 0, None, str(self.path))])
        self.w.messages.append(msg)
        return t + timedelta(milliseconds=50)

    def charge(self, model: str, usage: dict) -> None:
        prices = MODELS[model][1]
        cw = usage.get("cache_creation") or {}
        cw5m = cw.get("ephemeral_5m_input_tokens", usage["cache_creation_input_tokens"])
        cw1h = cw.get("ephemeral_1h_input_tokens", 0)
        if cw5m + cw1h == 0:
            cw5m = usage["cache_creation_input_tokens"]
        usd = (usage["input_tokens"] * prices[0] + usage["output_tokens"] * prices[1] + cw5m * prices[2]
               + cw1h * prices[3] + usage["cache_read_input_tokens"] * prices[4]) / 1e6
        if usage.get("speed") == "fast":
            usd *= 6
        row = self.ledger.setdefault(model, [0, 0, 0, 0, 0, 0, 0.0])
        for i, v in enumerate((usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"],
                               usage["cache_creation_input_tokens"], cw5m, cw1h)):
            row[i] += v
        row[6] += usd

    def cost_state(self, t: datetime) -> None:
        """The CLI's running ledger of the session (subagents included), as it appends it."""
        rng = self.w.rng
        total = sum(r[6] for r in self.ledger.values())
        self.emit({"type": "cost-state", "sessionId": self.sid, "totalCostUSD": total,
                   "totalAPIDuration": rng.randint(100, 90_000), "totalAPIDurationWithoutRetries": rng.randint(100, 90_000),
                   "totalToolDuration": rng.randint(0, 9_000), "totalLinesAdded": rng.randint(0, 400),
                   "totalLinesRemoved": rng.randint(0, 200), "totalDuration": rng.randint(1000, 900_000),
                   "startTime": self.t0_ms or ms_of(t),
                   "modelUsage": {m: {"inputTokens": r[0], "outputTokens": r[1], "thinkingTokens": 0,
                                      "cacheReadInputTokens": r[2], "cacheCreationInputTokens": r[3],
                                      "cacheCreationEphemeral5mInputTokens": r[4],
                                      "cacheCreationEphemeral1hInputTokens": r[5], "webSearchRequests": 0,
                                      "costUSD": r[6]} for m, r in self.ledger.items()},
                   "hasUnknownModelCost": False}, conversation=False)

    # -------------------------------------------------------------- a process run
    def run(self, t: datetime, turns: int) -> datetime:
        rng = self.w.rng
        self.t0_ms = self.t0_ms or ms_of(t)
        for turn in range(turns):
            if rng.random() < 0.15 and turn:  # /model
                names = list(MODELS)
                self.model = rng.choices(names, [MODELS[n][0] for n in names])[0]
                self.side("mode", None, mode="normal")
            t = self.turn(t, turn)
            self.flush()
            t += timedelta(seconds=rng.uniform(20, 900))
        self.cost_state(t)
        if self.interactive and rng.random() < 0.6:
            self.side("ai-title", None, aiTitle=f"Work on {Path(self.cwd).name} {rng.randint(1, 99)}")
        self.flush()
        return t

    def turn(self, t: datetime, index: int) -> datetime:
        w, rng = self.w, self.w.rng
        text = f"Please look at {rng.choice(['the tests', 'the parser', 'the login bug', 'the build'])} ({w.b62(6)})"
        prompt_id = w.uuid()
        self.side("queue-operation", t, operation="enqueue", content=text)
        self.side("queue-operation", t, operation="dequeue")
        t += timedelta(milliseconds=rng.randint(50, 300))
        if self.agent_id is None:
            w.prompts.append({"display": text, "pastedContents": {}, "timestamp": ms_of(t), "project": self.cwd,
                              "sessionId": self.sid})
        self.user(t, text, prompt_id, permissionMode="default", promptSource="sdk", turnOrigin="sdk",
                  turnPosition={"promptIndex": index, "turnIndex": 1})
        for kind in ("environment", "todo_reminder")[: rng.randint(1, 2)]:
            self.attachment(t, kind)
        if rng.random() < 0.2:
            self.side("file-history-snapshot", None, messageId=w.uuid(),
                      snapshot={"messageId": w.uuid(), "trackedFileBackups": {}, "timestamp": iso(t)},
                      isSnapshotUpdate=False)
        turn_start = t
        calls = rng.randint(1, 4)
        tools = []
        for call in range(calls):
            self.api_bookkeeping(t)
            t += timedelta(milliseconds=rng.randint(400, 9000))
            tool = None
            if call < calls - 1:
                tool = "Agent" if (self.agent_id is None and rng.random() < 0.3) else "Bash"
            if rng.random() < 0.03:
                t = self.synthetic(t)
            midnight = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            straddle = ("midnight-split" in w.edge and w.straddles < 4 and midnight - t < timedelta(minutes=20)
                        and rng.random() < 0.5)
            if straddle:
                w.straddles += 1
                t = midnight - timedelta(milliseconds=rng.randint(100, 900))
            t, last, tool_id = self.assistant(t, tool=tool, straddle=straddle)
            if tool:
                tools.append(tool)
                if tool == "Agent":
                    t = self.spawn(t, prompt_id)
                result = {"tool_use_id": tool_id, "type": "tool_result", "content": "ok", "is_error": False}
                self.user(t, [result], prompt_id, toolUseResult={"stdout": "ok", "stderr": "", "interrupted": False},
                          sourceToolAssistantUUID=last)
                t += timedelta(milliseconds=rng.randint(20, 4000))
        if self.agent_id is None:
            self.emit(self.base("system", t, subtype="turn_duration",
                                durationMs=int((t - turn_start).total_seconds() * 1000), messageCount=calls * 2,
                                isMeta=False), conversation=False)
            self.side("last-prompt", None, lastPrompt=text, leafUuid=self.parent_uuid)
            if tools:
                self.side("tools-used", None, tools=sorted(set(tools)))
        return t

    def spawn(self, t: datetime, prompt_id: str) -> datetime:
        """The Agent tool: a subagent transcript beside the session, its calls in the meantime."""
        w, rng = self.w, self.w.rng
        agent = w.hex(17)
        sub_dir = self.path.parent / self.sid / "subagents"
        path = sub_dir / f"agent-{agent}.jsonl"
        model = self.model if rng.random() < 0.6 else "claude-haiku-4-5-20251001"
        sub = _Session(w, self.sid, self.cwd, self.branch, path, model, self.cache_kind, self.interactive,
                       agent_id=agent, ledger=self.ledger)
        sub.user(t, "List the files in the current directory and report them.", prompt_id)
        sub.attachment(t, "environment")
        for call in range(rng.randint(1, 4)):
            sub.api_bookkeeping(t)
            t += timedelta(milliseconds=rng.randint(300, 6000))
            t, last, tool_id = sub.assistant(t, tool="Bash" if rng.random() < 0.5 else None)
            if tool_id:
                sub.user(t, [{"tool_use_id": tool_id, "type": "tool_result", "content": "README src", "is_error": False}],
                         prompt_id, toolUseResult={"stdout": "README src", "stderr": "", "interrupted": False},
                         sourceToolAssistantUUID=last)
            sub.flush()
        meta = {"agentType": "general-purpose", "isBuiltIn": True, "launchedWithDefaults": True,
                "description": "List project files", "toolUseId": "toolu_01" + w.b62(22), "spawnDepth": 1,
                "model": model, "finished": True}
        (sub_dir / f"agent-{agent}.meta.json").write_text(json.dumps(meta))
        self.w.sessions.setdefault(self.sid, {}).setdefault("subagents", []).append(path)
        return t + timedelta(milliseconds=rng.randint(20, 300))


def write_history(root: Path | str, *, seed: int = 13, sessions: int = 30, edge_cases=False) -> History:
    """Write a Claude data directory at ``root`` (its projects/ and history.jsonl) and return its facts.

    ``sessions`` main sessions (forks come on top, with the ``forked-copy`` edge case)."""
    w = _Writer(Path(root), seed, edge_cases)
    (w.root / "projects").mkdir(parents=True, exist_ok=True, mode=0o700)
    for i in range(sessions):
        w.session(i)
    w.prompts.sort(key=lambda p: p["timestamp"])
    (w.root / "history.jsonl").write_text("".join(json.dumps(p) + "\n" for p in w.prompts))
    return History(w.root, seed, w.messages, w.sessions, w.files, w.bytes)


if __name__ == "__main__":  # a look at one: python tests/support/usage_history.py DIR [--edge]
    import sys
    h = write_history(sys.argv[1], edge_cases="--edge" in sys.argv)
    print(f"{len(h.files)} files, {h.bytes} bytes, {len(h.sessions)} sessions, {h.kinds()}")
    for day, tokens in h.daily("UTC").items():
        print(day, tokens)
