#!/usr/bin/env python3
"""Generate a history with all four agents (Claude Code, Codex, OpenCode, Gemini CLI) for bench/agents.py.

    python bench/agents_corpus.py OUT_DIR [--quick] [--seed N]

Layout of OUT_DIR::

    claude/                   bench/make_corpus.py's Claude data directory (--claude-dir)
    codex/                    a ~/.codex (HELM_CODEX_DIR): sessions/YYYY/MM/DD/rollout-*.jsonl, session_index.jsonl
    opencode/opencode.db      OpenCode's database (HELM_OPENCODE_DB), WAL mode, the real 1.18.33 schema
    gemini/                   a ~/.gemini (HELM_GEMINI_DIR): projects.json, tmp/<slug>/chats/session-*.jsonl
    agents-manifest.json      every session id per source, and one target session per source for live changes

How each agent really writes, reproduced here:

- Codex 0.171: the records of the real rollout in tests/fixtures/codex-0.171.0 are the templates
  (session_meta with its ~21 KB base_instructions, task_started, developer/user messages, world_state,
  turn_context, item_completed UserMessage/AgentMessage/CommandExecution, function_call(_output),
  token_usage_record, token_count, task_complete); per thread and per turn every id is replaced
  (consistently), the prompts, replies and command outputs are new, timestamps and ordinals run on.
  Some rollouts are 1-5 MB (long command outputs). A live turn (:func:`codex_turn_lines`) is one
  ``write()`` per line on a descriptor held open with O_APPEND, as Codex does.
- OpenCode 1.18.33: tests/support/opencode.py's writer (the schema read from the real sample database,
  each change one transaction appending its ``event`` rows); the wall clock is real (spread over the
  last weeks for the history, "now" for live changes: the source reads rows updated since the latest
  it saw). The live writer is a separate process (``--opencode-writer DB``).
- Gemini CLI 0.61: tests/support/gemini.py (one ``JSON.stringify`` line per record, each appended with
  its own open/append/close; ``projects.json`` replaced by rename; ``.project_root``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import random
import re
import shutil
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from make_corpus import WORDS, make_corpus  # noqa: E402
from tests.support import gemini as G  # noqa: E402
from tests.support import opencode as OC  # noqa: E402

GENERATOR_VERSION = 1
MANIFEST = "agents-manifest.json"
CODEX_FIXTURE = next((REPO / "tests/fixtures/codex-0.171.0/home/.codex/sessions").rglob(
    "rollout-2026-12-01T06-18-58-*.jsonl"))

SIZES = {
    # claude bytes, codex rollouts, codex big (1-5 MB), opencode sessions, messages each, gemini files, slugs
    "full": {"claude_bytes": 50_000_000, "codex": 500, "codex_big": 25, "opencode": 1000, "opencode_msgs": 20,
             "gemini": 500, "gemini_slugs": 20},
    "quick": {"claude_bytes": 2_000_000, "codex": 30, "codex_big": 1, "opencode": 40, "opencode_msgs": 10,
              "gemini": 30, "gemini_slugs": 4},
}

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OPAQUE_RE = re.compile(r"\b(msg|call|fc|fco|resp|retained)_([0-9A-Za-z]{20,}|[0-9a-f-]{36})")


class Text:
    """Plain prose/code-like text, sliced from a pool (cheap)."""

    CODE = ["def f(x):", "return None", "self.items[i]", "{", "}", "=>", "==", "# TODO", "\n", "\n", "\n\n",
            "`code`", "src/app/main.py:42", "naïve", "→", "✓", "日本語", "\"quoted\"", "\t"]

    def __init__(self, rng: random.Random, chars: int = 2_000_000):
        toks = rng.choices(WORDS, k=chars // 7) + rng.choices(self.CODE, k=chars // 60)
        rng.shuffle(toks)
        self.pool = " ".join(toks)
        self.rng = rng

    def take(self, n: int) -> str:
        out, n = [], max(1, int(n))
        while n > 0:
            k = min(n, len(self.pool) - 1)
            o = self.rng.randrange(0, len(self.pool) - k)
            out.append(self.pool[o:o + k])
            n -= k
        return "".join(out)

    def sentence(self, lo: int = 4, hi: int = 14) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(lo, hi))).capitalize()


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * rng.lognormvariate(0, sigma)


def iso_ms(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def project_paths(rng: random.Random, n: int) -> list[str]:
    users = ["alice", "bob", "dev"]
    names = ["api", "web", "infra", "billing", "search", "mobile", "cli", "docs", "ml", "etl", "auth", "gateway",
             "ui-kit", "scheduler", "reports", "notebooks", "sdk", "proxy", "desktop", "firmware"]
    out = []
    for i in range(n):
        out.append(f"/home/{rng.choice(users)}/code/{names[i % len(names)]}" + (f"-{i // len(names)}" if i >= len(names) else ""))
    return out


# ------------------------------------------------------------------ Codex

class CodexTemplates:
    """The real 0.171.0 rollout, split into the session_meta, the first turn (with a tool call),
    a plain turn and a tool turn, each a list of JSON texts to fill in."""

    def __init__(self, path: Path = CODEX_FIXTURE):
        lines = path.read_text().splitlines()
        recs = [json.loads(x) for x in lines]
        self.thread = recs[0]["payload"]["id"]
        self.cwd = recs[0]["payload"]["cwd"]
        self.meta = lines[0]
        self.first = lines[1:21]                     # task_started ... task_complete (developer msg, world_state)
        self.plain = lines[21:31]                    # thread_settings_applied, task_started ... task_complete
        self.tool = lines[21:26] + lines[9:21]       # a later turn with an exec_command call

    def fill(self, texts: list[str], tid: str, cwd: str, rng: random.Random, t: float, ordinal: int,
             prompt: str, replies: list[str], output: str | None, tokens: list[int]) -> tuple[list[str], float]:
        """One turn's lines: ids replaced consistently, texts, timestamps and ordinals set."""
        ids: dict[str, str] = {self.thread: tid}

        def new_uuid(m):
            s = m.group(0)
            if s not in ids:
                ids[s] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            return ids[s]

        def new_opaque(m):
            s = m.group(0)
            if s not in ids:
                ids[s] = m.group(1) + "_" + "".join(rng.choices("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                                                                k=24))
            return ids[s]

        out = []
        reply_i = -1
        cmd = rng.choice(["pytest -q", "git status", "ls -la src", "rg TODO", "make build", "cat README.md"])
        for text in texts:
            text = OPAQUE_RE.sub(new_opaque, UUID_RE.sub(new_uuid, text)).replace(self.cwd, cwd)
            r = json.loads(text)
            p = r["payload"]
            typ, ptyp = r["type"], p.get("type") if isinstance(p, dict) else None
            t += rng.uniform(0.002, 0.4)
            r["timestamp"] = iso_ms(t)
            r["ordinal"] = ordinal
            ordinal += 1
            if typ == "response_item" and ptyp == "message" and p.get("role") == "user":
                if not p["content"][0]["text"].startswith("<"):
                    p["content"][0]["text"] = prompt
            elif ptyp == "item_completed":
                item = p["item"]
                if item["type"] == "UserMessage":
                    item["content"][0]["text"] = prompt
                elif item["type"] == "AgentMessage":
                    reply_i += 1
                    item["content"][0]["text"] = replies[min(reply_i, len(replies) - 1)]
                elif item["type"] == "CommandExecution":
                    item["command"][-1] = cmd
                    item["parsed_cmd"][0]["cmd"] = cmd
                    item["aggregated_output"] = output or ""
                p["started_at_ms"] = p["completed_at_ms"] = int(t * 1000)
            elif typ == "response_item" and ptyp == "message" and p.get("role") == "assistant":
                p["content"][0]["text"] = replies[min(max(reply_i, 0), len(replies) - 1)]
            elif typ == "response_item" and ptyp == "function_call":
                p["arguments"] = json.dumps({"cmd": cmd})
            elif typ == "response_item" and ptyp == "function_call_output":
                p["output"] = ("Chunk ID: 2eb888\nWall time: 0.0100 seconds\nProcess exited with code 0\n"
                               f"Original token count: {len(output or '') // 4}\nOutput:\n{output or ''}")
            elif ptyp == "token_count" and p.get("info"):
                tokens[0] += rng.randint(8_000, 40_000)
                tokens[1] += rng.randint(100, 2_000)
                usage = {"input_tokens": tokens[0], "cached_input_tokens": int(tokens[0] * 0.8),
                         "cache_write_input_tokens": 0, "output_tokens": tokens[1], "reasoning_output_tokens": 0,
                         "total_tokens": tokens[0] + tokens[1]}
                p["info"]["total_token_usage"] = usage
            elif ptyp == "task_complete":
                p["last_agent_message"] = replies[-1]
                p["started_at"] = p["completed_at"] = int(t)
            elif ptyp == "task_started":
                p["started_at"] = int(t)
            out.append(dumps(r))
        return out, t

    def session_meta(self, tid: str, cwd: str, branch: str, t: float) -> str:
        r = json.loads(self.meta.replace(self.cwd, cwd))
        p = r["payload"]
        p["id"] = p["session_id"] = tid
        p["timestamp"] = iso_ms(t)
        r["timestamp"] = iso_ms(t + 1.5)
        if isinstance(p.get("git"), dict):
            p["git"]["branch"] = branch
        return dumps(r)


class CodexWriter:
    def __init__(self, root: Path, rng: random.Random, text: Text):
        self.root = Path(root)
        self.rng, self.text = rng, text
        self.tpl = CodexTemplates()

    def rollout_path(self, tid: str, t: float) -> Path:
        when = _dt.datetime.fromtimestamp(t)  # local time, as Codex names them
        return (self.root / "sessions" / when.strftime("%Y/%m/%d")
                / f"rollout-{when.strftime('%Y-%m-%dT%H-%M-%S')}-{tid}.jsonl")

    def turn(self, tid, cwd, t, ordinal, tokens, prompt=None, tool=None, out_bytes=0):
        rng, text = self.rng, self.text
        prompt = prompt or text.sentence(5, 30)
        tool = rng.random() < 0.5 if tool is None else tool
        replies = [text.take(lognormal(rng, 300, 1.0)) for _ in range(2 if tool else 1)]
        output = text.take(out_bytes or lognormal(rng, 1500, 1.3)) if tool else None
        return self.tpl.fill(self.tpl.tool if tool else self.tpl.plain, tid, cwd, rng, t, ordinal, prompt,
                             replies, output, tokens)

    def write_rollout(self, cwd: str, t0: float, big_bytes: int = 0) -> dict:
        rng, text = self.rng, self.text
        tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        path = self.rollout_path(tid, t0)
        path.parent.mkdir(parents=True, exist_ok=True)
        branch = rng.choice(["main", "main", "dev", "fix/flaky-test", "feature/search"])
        tokens = [0, 0]
        lines = [self.tpl.session_meta(tid, cwd, branch, t0)]
        first, t = self.tpl.fill(self.tpl.first, tid, cwd, rng, t0 + 2, 1, text.sentence(5, 30),
                                 [text.take(200), text.take(lognormal(rng, 400, 1))], text.take(300), tokens)
        lines += first
        size = sum(len(x) + 1 for x in lines)
        turns = max(0, int(lognormal(rng, 4, 0.9))) if not big_bytes else 10**6
        k = 0
        while k < turns and (not big_bytes or size < big_bytes):
            per = int(rng.uniform(50_000, 400_000)) if big_bytes else 0
            more, t = self.turn(tid, cwd, t + rng.uniform(5, 120), len(lines), tokens, tool=bool(per) or None,
                                out_bytes=per)
            lines += more
            size += sum(len(x.encode()) + 1 for x in more)
            k += 1
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(data)
        os.utime(path, (t, t))
        return {"id": tid, "path": str(path), "bytes": len(data), "lines": len(lines), "cwd": cwd, "t_last": t}


def make_codex(root: Path, n: int, n_big: int, rng: random.Random, text: Text, cwds: list[str], now: float) -> dict:
    w = CodexWriter(root, rng, text)
    threads = []
    big = set(rng.sample(range(n), n_big))
    for i in range(n):
        t0 = now - 45 * 86400 + (i / n) * 44 * 86400 + rng.uniform(0, 3000)
        threads.append(w.write_rollout(rng.choice(cwds), t0, int(rng.uniform(1e6, 5e6)) if i in big else 0))
    with open(root / "session_index.jsonl", "w") as fh:  # the TUI's auto titles, for some threads
        for th in threads:
            if rng.random() < 0.3:
                fh.write(dumps({"id": th["id"], "thread_name": text.sentence(3, 7)[:40],
                                "updated_at": iso_ms(th["t_last"])}) + "\n")
    return {"sessions": threads, "bytes": sum(t["bytes"] for t in threads),
            "big": sum(1 for t in threads if t["bytes"] >= 1_000_000),
            "largest": max(t["bytes"] for t in threads)}


def codex_turn_lines(target: dict, prompt: str, ordinal: int, seed: int) -> list[bytes]:
    """A new turn for a target rollout (Codex resumes a thread by appending task_started ... task_complete)."""
    rng = random.Random(seed)
    w = CodexWriter(Path("/nonexistent"), rng, _small_text())
    lines, _ = w.turn(target["id"], target["cwd"], time.time(), ordinal, [100_000, 5_000], prompt=prompt, tool=False)
    return [x.encode() + b"\n" for x in lines]


_SMALL_TEXT = None


def _small_text() -> Text:
    global _SMALL_TEXT
    if _SMALL_TEXT is None:
        _SMALL_TEXT = Text(random.Random(5), 50_000)
    return _SMALL_TEXT


# ------------------------------------------------------------------ OpenCode

def make_opencode(db_path: Path, n: int, msgs: int, rng: random.Random, text: Text, cwds: list[str],
                  now: float) -> dict:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    clock = {"t": int((now - 40 * 86400) * 1000)}

    def tick():
        clock["t"] += rng.randint(5, 900)
        return clock["t"]

    random.seed(rng.getrandbits(32))  # OC.new_id draws from the module-level random
    db = OC.OpenCodeDB(db_path, clock_ms=tick)
    ids = []
    for i in range(n):
        clock["t"] = int((now - 40 * 86400 + (i / n) * 39 * 86400) * 1000)
        with db.tx():  # one transaction per session while generating (the live writer does one per change)
            sid = db.session(rng.choice(cwds), title=f"New session - {iso_ms(clock['t'] / 1000)}")
            db.set_title(sid, text.sentence(3, 7))
            for _ in range(max(1, msgs // 2)):
                tool = None
                if rng.random() < 0.4:
                    tool = ("bash", {"command": rng.choice(["pytest -q", "git diff", "ls"])},
                            text.take(lognormal(rng, 800, 1.2)))
                db.exchange(sid, text.sentence(5, 40), text.take(lognormal(rng, 500, 1.0)),
                            tokens=(rng.randint(2000, 30000), rng.randint(50, 1500), rng.randint(0, 20000), 0),
                            cost=round(rng.uniform(0, 0.02), 5), tool=tool)
                clock["t"] += rng.randint(5_000, 120_000)
        ids.append(sid)
    db.close()
    size = sum(os.path.getsize(p) for p in (db_path, Path(str(db_path) + "-wal")) if p.exists())
    return {"sessions": [{"id": s} for s in ids], "bytes": size, "messages_each": max(1, msgs // 2) * 2}


def opencode_writer(db_path: str) -> None:
    """The live writer process: ``user SID TEXT`` -> one transaction (message, part, session touch and their
    event rows) from this process's own connection; answers the CLOCK_MONOTONIC time after COMMIT."""
    db = OC.OpenCodeDB(db_path, clock_ms=lambda: int(time.time() * 1000))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "user":
            db.user(cmd["sid"], cmd["text"])
            t = time.monotonic()
            print(json.dumps({"t": t}), flush=True)
        elif cmd["op"] == "quit":
            break
    db.close()


# ------------------------------------------------------------------ Gemini

def make_gemini(root: Path, n: int, n_slugs: int, rng: random.Random, text: Text, now: float) -> dict:
    home = G.GeminiHome(root)
    paths = project_paths(rng, n_slugs)
    projects = [home.project(p, slug=os.path.basename(p)) for p in paths]
    weights = [1 / (i + 1) ** 0.8 for i in range(n_slugs)]
    chats = []
    for i in range(n):
        proj = rng.choices(projects, weights)[0]
        start = now - 40 * 86400 + (i / n) * 39 * 86400
        home.clock.t = _dt.datetime.utcfromtimestamp(start)
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        chat = proj.session(sid)
        inp = 0
        for _ in range(max(1, int(lognormal(rng, 4, 0.8)))):
            chat.prompt(text.sentence(5, 40))
            inp += rng.randint(3000, 20000)
            if rng.random() < 0.35:
                chat.tool_turn(rng.choice(["ls -la", "npm test", "git log -3"]), G.tokens(inp, rng.randint(20, 200)))
            chat.reply(text.take(lognormal(rng, 900, 1.0)), G.tokens(inp, rng.randint(50, 2000), int(inp * 0.7)))
            home.clock.now(rng.randint(5_000, 90_000))
        chats.append({"id": sid, "path": str(chat.path), "slug": proj.slug, "bytes": chat.path.stat().st_size})
    return {"sessions": chats, "bytes": sum(c["bytes"] for c in chats), "slugs": n_slugs}


# ------------------------------------------------------------------ all

def _pick(sessions: list[dict], lo: int, hi: int) -> dict:
    c = [s for s in sessions if lo <= s.get("bytes", 0) <= hi] or sessions
    c = sorted(c, key=lambda s: s.get("bytes", 0))
    return c[len(c) // 2]


def make_agents_corpus(out: Path, quick: bool = False, seed: int = 1, log=print) -> dict:
    t_start = time.monotonic()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sz = SIZES["quick" if quick else "full"]
    rng = random.Random(seed)
    text = Text(random.Random(seed + 1), 300_000 if quick else 2_000_000)
    now = time.time() - 3600
    cwds = project_paths(rng, 12 if quick else 40)
    timing = {}

    t = time.monotonic()
    if log:
        log(f"claude: {sz['claude_bytes'] / 1e6:.0f} MB ...")
    cm = make_corpus(out / "claude", sz["claude_bytes"], seed=seed, log=None)
    timing["claude"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    if log:
        log(f"codex: {sz['codex']} rollouts ...")
    codex = make_codex(out / "codex", sz["codex"], sz["codex_big"], rng, text, cwds, now)
    timing["codex"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    if log:
        log(f"opencode: {sz['opencode']} sessions x {sz['opencode_msgs']} messages ...")
    oc = make_opencode(out / "opencode" / "opencode.db", sz["opencode"], sz["opencode_msgs"], rng, text, cwds, now)
    timing["opencode"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    if log:
        log(f"gemini: {sz['gemini']} chats in {sz['gemini_slugs']} projects ...")
    gm = make_gemini(out / "gemini", sz["gemini"], sz["gemini_slugs"], rng, text, now)
    timing["gemini"] = round(time.monotonic() - t, 1)

    claude_new = [s for s in cm["sessions"] if s["kind"] == "v330i"] or cm["sessions"]
    ct = _pick(claude_new, 50_000, 5_000_000)
    xt = _pick(codex["sessions"], 40_000, 500_000)
    manifest = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "quick": quick, "sizes": sz,
        "dirs": {"claude": str(out / "claude"), "codex": str(out / "codex"),
                 "opencode_db": str(out / "opencode" / "opencode.db"), "gemini": str(out / "gemini")},
        "counts": {"claude-code": cm["main_transcripts"], "codex": len(codex["sessions"]),
                   "opencode": len(oc["sessions"]), "gemini": len(gm["sessions"])},
        "bytes": {"claude-code": cm["transcript_bytes"], "codex": codex["bytes"], "opencode": oc["bytes"],
                  "gemini": gm["bytes"]},
        "details": {"claude-code": {k: cm[k] for k in ("main_transcripts", "subagent_transcripts", "projects",
                                                       "largest_transcript")},
                    "codex": {"rollouts": len(codex["sessions"]), "rollouts_1MB_plus": codex["big"],
                              "largest": codex["largest"]},
                    "opencode": {"sessions": len(oc["sessions"]), "messages_each": oc["messages_each"]},
                    "gemini": {"chats": len(gm["sessions"]), "projects": gm["slugs"]}},
        "ids": {"claude-code": [s["id"] for s in cm["sessions"]], "codex": [s["id"] for s in codex["sessions"]],
                "opencode": [s["id"] for s in oc["sessions"]], "gemini": [s["id"] for s in gm["sessions"]]},
        "targets": {
            "claude-code": {"id": ct["id"], "path": str(out / "claude" / ct["path"]), "cwd": ct["cwd"],
                            "bytes": ct["bytes"]},
            "codex": {k: xt[k] for k in ("id", "path", "cwd", "bytes", "lines")},
            "opencode": {"id": oc["sessions"][len(oc["sessions"]) // 2]["id"]},
            "gemini": {k: v for k, v in _pick(gm["sessions"], 5_000, 100_000).items()},
        },
        "generate_seconds": {**timing, "total": round(time.monotonic() - t_start, 1)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--opencode-writer", metavar="DB", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.opencode_writer:
        opencode_writer(a.opencode_writer)
        return 0
    if not a.out:
        ap.error("OUT_DIR is required")
    m = make_agents_corpus(a.out, a.quick, a.seed)
    print(json.dumps({k: m[k] for k in ("counts", "bytes", "details", "generate_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
