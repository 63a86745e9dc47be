#!/usr/bin/env python3
"""A Claude data directory of many small sessions, for the page at scale (bench/page_scale.py).

    .venv/bin/python bench/page_corpus.py OUT_DIR --sessions 5000 [--projects 200] [--seed N]

Every transcript is a short 2.1.330 session (1-4 prompts) rendered from the record templates of
bench/make_corpus.py, which are the real CLI samples of tests/fixtures/ (key order and fields as
the CLI wrote them): interactive sessions (file-history-snapshot, the prompt, a date attachment,
last-prompt, api-request, the reply, sometimes a Bash call and its result, turn_duration, and an
ai-title after the first turn; 4 % renamed with custom-title / agent-name) and ``claude -p``
sessions (queue-operation enqueue/dequeue, no title: the first prompt is the title). Sizes are
about 3-8 KB, so 20,000 sessions are about 100 MB and generate in seconds.

Titles and prompts are built from a small vocabulary so that search is meaningful (at 5,000, counting
every field the page may search): "fix" matches about a third of the sessions, "auth" a fifth (titles
and project names), "sock" 6 %; about 30 % of the first prompts name a ticket ``#NNNNN`` and three
sessions have #48210-#48212, so typing ``#4821`` narrows from 1,500 matches to three; "zqx" none. Sessions spread over ``--projects`` project directories
(Zipf-like weights) and the last 60 days; the newest ``active`` sessions get a live-process
registry file (``sessions/<pid>.json``, the fixture's shape) naming a pid the caller keeps alive.

The manifest (``page-corpus.json`` beside projects/) lists every session with its path, cwd,
title and prompts, so the benchmark can check what the page shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import Ctx, Generator, jstr, make_project_cwds, project_key  # noqa: E402

MANIFEST = "page-corpus.json"

VERBS = ["Add", "Refactor", "Debug", "Investigate", "Speed up", "Document", "Test", "Remove", "Migrate",
         "Review", "Explain", "Rename", "Upgrade", "Clean up", "Profile", "Simplify", "Port", "Harden"]
OBJECTS = ["flaky test", "login timeout", "memory leak", "race condition", "N+1 query", "CSV export", "dark mode",
           "rate limiter", "retry logic", "pagination", "error messages", "config loader", "cache invalidation",
           "websocket reconnect", "search index", "date parsing", "file upload", "email templates", "feature flag",
           "structured logging", "metrics endpoint", "build script", "Docker image", "CI pipeline", "type hints",
           "unit tests", "schema migration", "billing webhook", "OAuth callback", "session cookies",
           "socket timeout", "i18n strings", "PDF renderer", "image resizing", "queue backpressure"]
COMPONENTS = ["auth middleware", "API gateway", "payment service", "admin dashboard", "CLI", "scheduler",
              "worker queue", "frontend", "mobile app", "data pipeline", "search service", "notification service",
              "user profile page", "report generator", "sync engine", "parser", "ORM layer", "plugin loader",
              "settings page", "import tool", "GraphQL resolver", "billing module", "event bus", "upload service"]
DETAILS = ["it fails about one run in ten on CI", "users see a blank page after a while",
           "the logs show a stack trace from the middle of it", "keep the public API unchanged",
           "there is a failing test that shows it", "start by reading the code and tell me the plan",
           "we need it before Friday's release", "the old behaviour must stay behind a flag",
           "compare with how the other module does it", "write tests first", "it got slower since last week",
           "make it work on Windows too", "the customer report is in the issue", "keep the diff small"]
FOLLOW_UPS = ["Now run the whole test suite", "Also update the README and the changelog",
              "Looks good, commit it with a clear message", "Can you explain why that works?",
              "That broke the build, try another approach", "Add a regression test for it",
              "Check the edge case with an empty list", "Make the error message friendlier",
              "Split that into two smaller functions", "Run the linter and fix what it finds",
              "What about the migration for existing data?", "Open a draft PR for it"]
REPLIES = ["I read the code and found the cause: {o} is handled twice when the {c} retries.",
           "Done. I changed three files and the tests pass locally.",
           "Here is the plan: first reproduce it, then fix {o} in the {c}, then add a test.",
           "The {c} already has a helper for this; I reused it instead of writing a new one.",
           "I could not reproduce it yet; the failing case needs a slow network, so I added a fake clock."]
TOOLS = ["pytest -q", "npm test", "git status", "rg -n '{o}' src", "make lint", "cargo test", "go test ./..."]
BRANCHES = ["main", "main", "main", "develop", "feature/search", "fix/login-timeout", "release/2.4", "chore/deps"]
MODELS = ["claude-opus-5-5", "claude-sonnet-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"]
VERSIONS = ["2.1.330", "2.1.330", "2.1.301", "2.1.250", "2.1.180"]
STATUSES = ["busy", "waiting", "idle", "busy"]
GENERATOR_VERSION = 1


class PageCorpus:
    def __init__(self, seed: int):
        self.g = Generator(seed)
        self.rng = self.g.rng
        self.T = self.g.tpl.t330
        self.registry_template = self.g.tpl.registry

    def topic(self) -> tuple[str, str, str]:
        rng = self.rng
        verb = "Fix" if rng.random() < 0.2 else rng.choice(VERBS)
        return verb, rng.choice(OBJECTS), rng.choice(COMPONENTS)

    def session(self, path: Path, sid: str, cwd: str, t0: float, ticket: str | None, *, turns: int | None = None,
                interactive: bool | None = None, first_prompt: str | None = None, touch: bool = True) -> dict:
        """Write one small transcript; returns what the page should show of it."""
        rng, g, T = self.rng, self.g, self.T
        verb, obj, comp = self.topic()
        interactive = rng.random() < 0.7 if interactive is None else interactive
        turns = turns or rng.choice([1, 1, 2, 2, 2, 3, 4])
        branch, model, version = rng.choice(BRANCHES), rng.choice(MODELS), rng.choice(VERSIONS)
        title = f"{verb} {obj} in {comp}" if interactive else None
        renamed = f"{comp} {obj}".title() if interactive and rng.random() < 0.04 else None
        c = Ctx(g, sid, cwd, branch, version, t0)
        prompts = []
        if interactive:
            c.emit(T["mode"], dt=0.001)
            c.emit(T["permission-mode"], dt=0.001)
        for turn in range(turns):
            if turn == 0:
                text = first_prompt or (f"{verb} the {obj} in the {comp}: {rng.choice(DETAILS)}"
                                        + (f" (ticket {ticket})" if ticket else ""))
            else:
                text = rng.choice(FOLLOW_UPS)
            prompts.append(text)
            if interactive:
                c.next_u = g.uuid()
                c.emit(T["file-history-snapshot"], NEXTU='"' + c.next_u + '"')
            else:
                c.emit(T["queue-operation:enqueue"], PROMPT=jstr(text))
                c.emit(T["queue-operation:dequeue"])
            c.emit(T["user:prompt"], dt=2.0, PROMPT=jstr(text))
            c.prompts += 1
            c.emit(T["attachment:date"], dt=0.001)
            c.emit(T["last-prompt"], dt=0.001, PROMPT=jstr(text))
            req = '"' + g.uuid() + '"'
            c.emit(T["api-request"], REQ=req)
            vals = dict(MID=jstr("msg_01" + g.b62(22)), RID=jstr("req_011C" + g.b62(20)), MODEL=jstr(model), REQ=req,
                        **g.usage_vals())
            c.msg_ids += 1
            reply = rng.choice(REPLIES).format(o=obj, c=comp)
            c.emit(T["assistant:text"], dt=4.0, TEXT=jstr(reply), **vals)
            if rng.random() < 0.3:
                tid = jstr("toolu_01" + g.b62(22))
                cmd = rng.choice(TOOLS).format(o=obj.split()[0])
                c.emit(T["assistant:tool_use"], dt=0.5, TOOLID=tid,
                       TOOLINPUT=json.dumps({"command": cmd, "description": f"Run {cmd}"}), **vals)
                c.emit(T["user:tool_result"], dt=1.5, TOOLID=tid, TOOLOUT=jstr(f"$ {cmd}\nok\n"))
            if interactive:
                c.emit(T["system"], DUR=str(rng.randint(2000, 90000)), MC=str(c.prompts * 4))
                if turn == 0:
                    c.emit(T["ai-title"], dt=0.001, TITLE=jstr(title))
                    if renamed:
                        c.raw({"type": "custom-title", "customTitle": renamed, "sessionId": sid})
                        c.raw({"type": "agent-name", "agentName": renamed, "sessionId": sid})
            if turn + 1 < turns:
                c.t += g.lognormal(60, 1.0)  # think time before the next prompt
        with open(path, "wb") as fh:  # one write of the whole file (a new session: its first flush)
            c.flush(fh)
        t_written = time.time()
        if touch:
            os.utime(path, (c.t, c.t))
        first = " ".join(prompts[0].split())
        shown = renamed or title or (first if len(first) <= 120 else first[:119] + "\u2026")  # as the server cuts it
        return {"id": sid, "path": str(path), "cwd": cwd, "title": shown, "prompts": prompts, "branch": branch,
                "model": model, "version": version, "messages": c.prompts + c.msg_ids, "bytes": c.size,
                "t_last": c.t, "t_written": t_written}


def make_page_corpus(out: Path, n: int, *, projects: int = 200, seed: int = 5, now: float | None = None,
                     log=print) -> dict:
    """N small sessions under OUT/projects (OUT is emptied first). Returns the manifest."""
    t_start = time.monotonic()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "projects").mkdir(parents=True)
    (out / "sessions").mkdir()
    pc = PageCorpus(seed)
    rng = pc.rng
    n_proj = max(3, min(projects, n // 10))
    cwds = make_project_cwds(rng, n_proj)
    weights = [1 / (i + 1) ** 0.8 for i in range(n_proj)]
    now = time.time() if now is None else now
    span = 60 * 86400
    # start times, oldest first; the newest few start within the last hour
    starts = sorted(now - 3600 - rng.random() * span for _ in range(n))
    for k in range(min(n, 60)):
        starts[-1 - k] = now - 300 - k * 50 - rng.random() * 20
    starts.sort()
    tickets = rng.sample([t for t in range(10000, 100000) if t // 10 != 4821], n)  # "#4821" only where forced
    forced = {int(n * f): f"#4821{j}" for j, f in enumerate((0.21, 0.52, 0.83))}  # three "#4821x" tickets
    sessions = []
    size = 0
    for i, t0 in enumerate(starts):
        cwd = cwds[rng.choices(range(n_proj), weights)[0]]
        pdir = out / "projects" / project_key(cwd)
        pdir.mkdir(exist_ok=True)
        sid = pc.g.uuid()
        ticket = forced.get(i) or (f"#{tickets[i]}" if rng.random() < 0.3 else None)
        s = pc.session(pdir / f"{sid}.jsonl", sid, cwd, t0, ticket)
        s["ticket"] = ticket
        size += s["bytes"]
        sessions.append(s)
        if log and (i + 1) % 5000 == 0:
            log(f"  {i + 1}/{n} sessions, {size / 1e6:.0f} MB")
    manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "sessions_requested": n, "projects": n_proj,
                "bytes": size, "generate_seconds": round(time.monotonic() - t_start, 2), "sessions": sessions}
    (out / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def registry_entry(template: dict, pid: int, sid: str, cwd: str, version: str, status: str,
                   proc_start: str | None) -> dict:
    """sessions/<pid>.json as Claude Code writes it (the fixture's fields), for a live process."""
    now_ms = int(time.time() * 1000)
    entry = dict(template, pid=pid, sessionId=sid, cwd=cwd, startedAt=now_ms - 60_000, version=version,
                 messagingSocketPath=f"/tmp/cc-socks/{pid}.sock", name=f"{Path(cwd).name}-{pid % 100}",
                 nameSince=now_ms - 60_000, status=status, updatedAt=now_ms, statusUpdatedAt=now_ms)
    if proc_start:
        entry["procStart"] = proc_start
    else:
        entry.pop("procStart", None)
    return entry


def write_registry(out: Path, entry: dict) -> Path:
    """Written the way Claude Code does: a temporary file renamed over sessions/<pid>.json."""
    path = Path(out) / "sessions" / f"{entry['pid']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args(argv)
    m = make_page_corpus(a.out_dir, a.sessions, projects=a.projects, seed=a.seed)
    print(f"{len(m['sessions'])} sessions in {m['projects']} projects, {m['bytes'] / 1e6:.1f} MB "
          f"in {m['generate_seconds']} s (no live registry: bench/page_scale.py adds it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
