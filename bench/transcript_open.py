#!/usr/bin/env python3
"""Opening a large transcript: "a 50 MB transcript opens in under 300 ms (to the first messages)".

    .venv/bin/python bench/transcript_open.py [--quick] [--size 50MB] [--rest-reps 20] [--page-reps 10]
                                              [--cold-reps 3] [--nav-reps 5] [--seed 5] [--wait-quiet S]
                                              [--no-browser] [--no-profile] [--keep] [--corpus DIR]

Other jobs on the machine only add time: the CPU they use meanwhile is recorded per phase
(``others_cores_rest``, ``others_cores_page``) and a warning printed when it is high; --wait-quiet
waits (up to S seconds) for a quiet moment before each phase, as bench/page_scale.py does.

The history: one generated Claude Code 2.1.330 transcript of --size bytes (the newest session,
so the top row) and a few small sessions in two other projects, under a fresh claude root
($HELM_BENCH_DIR/transcript-open-<pid>/claude: projects/<key>/<uuid>.jsonl, sessions/). The big
transcript is written the way the CLI writes one (the record shapes and key order of the real
2.1.330 samples in tests/fixtures/): typed prompts, some pasted code; one record per content block
of an API message (thinking with its signature, Markdown text with fenced code, tables and lists,
tool_use), each tool_use answered by a user tool_result record carrying ``toolUseResult`` (Bash
stdout up to the CLI's 30,000 characters, Read's ``cat -n`` text and the file's content, Edit's
oldString/newString/``originalFile``/``structuredPatch`` of files that change edit after edit,
Write, Grep, Glob, TodoWrite, a few errors), and the bookkeeping between them (api-request per
API call, file-history-snapshot, attachment:date, tools-used, system turn_duration, last-prompt,
ai-title, cost-state, an api-request-blob per turn).

The server: ``python -m helm_monitor`` (bench/common.py Server: gunicorn + one gevent worker,
HELM_SEARCH=0 so the search indexer does not compete, no parse cache), started fresh for each
cold measurement and used once /healthz says the scan is complete.

(a) REST, as the page opens a session (static/view.js loadTail): ``GET /api/sessions/<key>?tail=1
    &limit=100``, the last 100 messages in one request (before 495fa86 it took two), on one
    keep-alive connection. Cold: the first such request after a server start (--cold-reps starts;
    the transcript is in the page cache, as the server's scan just read it), and once more with the
    transcript evicted from the page cache first (posix_fadvise DONTNEED on that file only).
    Warm: --rest-reps requests afterwards (p50/p95). Each request's time and answer size are kept.
(b) The page, in headless Chromium (Playwright, Debian's chromium), through stable hooks only:
    the row ``[data-session-key="<key>"]`` and its link, ``#messages [data-index]``,
    ``#detail-close``. On a fresh server the list is loaded, then the row's link clicked; an init
    script times, with ``performance.now()`` in the page, from the click event's timeStamp to the
    first ``[data-index]`` in ``#messages`` (MutationObserver) and the next frame ("first
    messages"), and to the next frame after the last change in ``#messages`` once it has been quiet
    for 500 ms ("tail rendered": Markdown, highlighting and any deferred work included). Cold: the
    first open after the server start; warm: ``#detail-close`` and the row again, --page-reps
    times. Also warm: --nav-reps fresh page loads of ``/?session=<key>`` (from navigation start).
    Per open: the two API fetches (Resource Timing), the items in ``#messages``, their lowest and
    highest data-index (the tail must be shown), long tasks, and CDP Performance deltas.
(c) Where the time goes (unless --no-profile): in-process, against the working tree's
    helm_monitor.sources.claude.conversation.Conversation: the line index built cold (split into
    the bare line scan and the message check), and built once more with the check as it was before
    it told messages by their bytes (every candidate line decoded: checked to give the same index);
    a head page and a tail page (split into reading, orjson.loads and to_message, and the masking
    inside it, pattern by pattern), orjson.dumps of the answer, a cold ``?tail=1`` open timed and
    cProfile's top functions of another. In the page, a V8 CPU profile (CDP Profiler) of one warm open.

Results: bench/results/transcript_open.json (--quick: transcript_open-quick.json). --quick: a
5 MB transcript, 2 repetitions, one cold start, no V8 profile: a smoke run (about 25 s).
"""

from __future__ import annotations

import argparse
import base64
import copy
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid as _uuid
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import REPO, WORK, Server, pct, table, write_results  # noqa: E402
from make_corpus import FIXTURES, WORDS, iso, parse_size, project_key, record_kind  # noqa: E402

TARGET_MS = 300.0
PAGE_SIZE = 100  # static/view.js PAGE_SIZE (older messages, as the reader scrolls up)
TAIL_SIZE = 40  # static/view.js TAIL_SIZE (the view opens at these last messages)
QUIET_MS = 500
GENERATOR_VERSION = 1
CHROMIUM = os.environ.get("HELM_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-precise-memory-info"]
VIEWPORT = {"width": 1280, "height": 800}
SERVER_ENV = {"HELM_SOURCES": "claude-code", "HELM_SEARCH": "0"}
BASH_MAX = 30_000  # the CLI cuts a command's output to this many characters

_T0 = time.monotonic()
log = lambda msg: print(f"[{time.monotonic() - _T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


# ================================================================== the transcript

SAMPLE = FIXTURES / "claude-code-2.1.330" / "projects" / "-home-alice-code-api-server" / \
    "82ae9970-35a9-4565-a76c-3565290ad217.jsonl"


def sample_records() -> dict[str, dict]:
    """The first record of each kind in a real 2.1.330 transcript: the shapes and key orders copied."""
    out = {}
    for line in SAMPLE.read_bytes().splitlines():
        r = json.loads(line)
        out.setdefault(record_kind(r), r)
    return out


IDENT = ("request response session stream event queue handler parser cache index path status config "
         "server client user token message offset buffer record reader writer store worker page line "
         "entry item result error value count total limit size chunk frame socket state").split()
LANGS = ["python", "typescript", "bash", "json", "diff", "go", "sql"]
PY_LINES = [
    "{i}def {a}_{b}(self, {c}: {T}, *, {d}: int = {n}) -> {T} | None:",
    "{i}\"\"\"Return the {a} of the {b}, or None when the {c} is {w}.\"\"\"",
    "{i}if {c} is None or len({c}) > self.{d}_limit:",
    "{i}    raise {E}(f\"{a} {{ {c}!r }}: {w} {w}\")",
    "{i}for {a}, {b} in enumerate(self._{c}s):",
    "{i}{a} = self._{b}.get({c}, {n})",
    "{i}return {{\"{a}\": {a}, \"{b}\": self.{b}, \"total\": {n}}}",
    "{i}# {W}: the {a} {w} before the {b} is {w}",
    "{i}with open(self.{a}_path, \"rb\") as f:",
    "{i}    {b} = orjson.loads(f.read()[{n}:])",
    "{i}self.{a}_{b} = [{c} for {c} in {d}s if {c}.{a} >= {n}]",
    "{i}log.warning(\"%s: %d {a}s {w}\", self.path, {n})",
    "{i}try:", "{i}except ({E}, OSError) as exc:", "{i}    return None", "",
    "{i}assert {a}.{b} == {n}, {a}",
    "from helm_monitor.{a} import {B}{C}",
    "import {a}",
    "class {B}{C}({B}):",
    "{i}@property",
    "{i}async def {a}(self) -> None:",
    "{i}    await self.{b}.{c}({n})",
]
TS_LINES = [
    "{i}export function {a}{B}({c}: {B}{C}, {d} = {n}): {B} {{",
    "{i}const {a} = await fetchJSON(`${{API}}/${{encodeURIComponent({b})}}?offset=${{{c}}}`);",
    "{i}if (!{a} || {a}.{b} === undefined) return null;",
    "{i}for (const {a} of {b}.{c}s) {{",
    "{i}  {a}.{b}.set({c}.key, {{ {d}: {n}, {a} }});",
    "{i}}}", "{i}// {W}: {w} {a} {w} the {b}",
    "{i}return {a}.filter(({b}) => {b}.{c} > {n}).map(({b}) => {b}.{d});",
    "{i}setText(el, `${{{a}.{b}}} {w} ${{{n}}}`);",
    "import {{ {a}, {b} }} from './{c}.js';",
]
ERRORS = ["ValueError", "KeyError", "RuntimeError", "TypeError", "OSError"]


class Text:
    """Raw (not yet JSON-encoded) text: prose, Markdown, code, command output. Deterministic."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.code_pool = {"python": [self._code_line(PY_LINES) for _ in range(6000)],
                          "typescript": [self._code_line(TS_LINES) for _ in range(4000)]}

    def _code_line(self, forms) -> str:
        r = self.rng
        f = r.choice(forms)
        return f.format(i="    " * r.choice((0, 1, 1, 2, 2, 2, 3)), a=r.choice(IDENT), b=r.choice(IDENT),
                        c=r.choice(IDENT), d=r.choice(IDENT), w=r.choice(WORDS), W=r.choice(("TODO", "NOTE", "XXX")),
                        n=r.randint(0, 4096), T=r.choice(("str", "bytes", "dict", "list[int]")), E=r.choice(ERRORS),
                        B=r.choice(IDENT).capitalize(), C=r.choice(IDENT).capitalize())

    def words(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(lo, hi)))

    def sentence(self, lo: int = 6, hi: int = 24) -> str:
        r = self.rng
        ws = r.choices(WORDS, k=r.randint(lo, hi))
        if r.random() < 0.3:
            ws.insert(r.randrange(len(ws)), f"`{r.choice(IDENT)}_{r.choice(IDENT)}()`")
        if r.random() < 0.1:
            ws.insert(r.randrange(len(ws)), f"**{r.choice(WORDS)} {r.choice(WORDS)}**")
        if r.random() < 0.05:
            ws.insert(r.randrange(len(ws)),
                      r.choice(("naïve", "→", "≤ 50 ms", "café", "—", "✓", "日本語", "😀")))
        return " ".join(ws).capitalize() + r.choice((".", ".", ".", ":", "?"))

    def paragraph(self, lo: int = 2, hi: int = 6) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def code(self, lang: str, lines: int) -> str:
        pool = self.code_pool.get(lang) or self.code_pool["python"]
        o = self.rng.randrange(0, len(pool) - lines) if len(pool) > lines else 0
        return "\n".join(pool[o:o + lines])

    def markdown(self, chars: int) -> str:
        """A reply: paragraphs, headings, lists, fenced code, now and then a table; about ``chars`` long."""
        r, parts, n = self.rng, [], 0
        while n < chars:
            k = r.random()
            if k < 0.35 or not parts:
                s = self.paragraph(1, 4)
            elif k < 0.5:
                s = "\n".join(f"{'- ' if r.random() < 0.6 else f'{i + 1}. '}{self.sentence(4, 14)}"
                              for i in range(r.randint(2, 6)))
            elif k < 0.58:
                s = f"{'#' * r.randint(2, 3)} {self.words(2, 5).capitalize()}"
            elif k < 0.9:
                lang = r.choice(LANGS)
                if lang == "diff":
                    body = "\n".join(r.choice("+- ") + ln for ln in self.code("python", r.randint(4, 16)).split("\n"))
                elif lang in ("bash", "json", "go", "sql"):
                    body = self.code("python", r.randint(2, 10))
                else:
                    body = self.code(lang, r.randint(4, 40))
                s = f"```{lang}\n{body}\n```"
            else:
                cols = r.randint(2, 4)
                head = "| " + " | ".join(self.words(1, 2) for _ in range(cols)) + " |"
                rule = "|" + "|".join("---" for _ in range(cols)) + "|"
                rows = ["| " + " | ".join(f"`{r.choice(IDENT)}`" if j == 0 else self.words(1, 4) for j in range(cols))
                        + " |" for _ in range(r.randint(2, 7))]
                s = "\n".join([head, rule, *rows])
            parts.append(s)
            n += len(s) + 2
        return "\n\n".join(parts)

    def thinking(self, chars: int) -> str:
        parts, n = [], 0
        while n < chars:
            s = self.paragraph(2, 7)
            if self.rng.random() < 0.15:
                s += "\n\n" + self.code("python", self.rng.randint(2, 6))
            parts.append(s)
            n += len(s) + 2
        return "\n\n".join(parts)

    def signature(self) -> str:
        return base64.b64encode(self.rng.randbytes(self.rng.randint(250, 1100))).decode()

    def command_output(self, chars: int) -> str:
        """A command's output: test runs, logs, tracebacks, listings, diffs."""
        r, lines, n = self.rng, [], 0
        style = r.random()
        while n < chars:
            if style < 0.3:
                ln = (f"tests/test_{r.choice(IDENT)}.py::test_{r.choice(IDENT)}_{r.choice(IDENT)} "
                      f"{r.choice(('PASSED', 'PASSED', 'PASSED', 'FAILED', 'SKIPPED'))} [{r.randint(0, 100):3d}%]")
            elif style < 0.5:
                ln = (f"2026-11-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
                      f"{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z {r.choice(('INFO', 'DEBUG', 'WARN', 'ERROR'))} "
                      f"[{r.choice(IDENT)}] {self.words(3, 14)}")
            elif style < 0.65:
                ln = (f"-rw-r--r-- 1 alice alice {r.randint(0, 99999):>6} Nov {r.randint(1, 28):2d} "
                      f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d} {r.choice(IDENT)}_{r.choice(IDENT)}.py")
            elif style < 0.8:
                ln = r.choice("+- ") + self.code("python", 1)
            else:
                ln = (f"  File \"/home/alice/code/api-server/src/{r.choice(IDENT)}.py\", line {r.randint(1, 900)}, "
                      f"in {r.choice(IDENT)}\n    {self.code('python', 1).strip()}")
            lines.append(ln)
            n += len(ln) + 1
        return "\n".join(lines)


def cat_n(lines: list[str], start: int) -> str:
    """Read's rendering: ``cat -n`` (a right-aligned number, a tab, the line)."""
    return "\n".join(f"{start + i:6d}\t{ln}" for i, ln in enumerate(lines))


class TranscriptWriter:
    """One Claude Code 2.1.330 session, record by record, in the sample's shapes; flushes in big writes."""

    def __init__(self, path: Path, sid: str, cwd: str, t0: float, seed: int, text: Text | None = None):
        self.path, self.sid, self.cwd = path, sid, cwd
        self.rng = random.Random(seed)
        self.text = text or Text(random.Random(seed + 1))
        self.tpl = sample_records()
        self.t = t0
        self.parent: str | None = None
        self.lines: list[bytes] = []
        self.size = 0
        self.counts = {"messages": 0, "prompts": 0, "replies": 0, "tool_results": 0, "thinking": 0, "edits": 0,
                       "records": 0}
        self.message_bytes = 0
        self.turn_messages = 0
        self.files: dict[str, list[str]] = {}
        self.model = "claude-opus-5-5"
        self.prompt_id = None
        self.turn_index = 0
        self.fh = open(path, "wb")

    # -- plumbing ------------------------------------------------------------------
    def uuid(self) -> str:
        return str(_uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, n: int) -> str:
        return "".join(self.rng.choices("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", k=n))

    def tick(self, dt: float) -> str:
        self.t += dt * (0.3 + self.rng.random())
        return iso(self.t)

    def put(self, rec: dict, message: bool = False) -> None:
        line = orjson.dumps(rec) + b"\n"
        self.lines.append(line)
        self.size += len(line)
        self.counts["records"] += 1
        if message:
            self.counts["messages"] += 1
            self.message_bytes += len(line)
            self.turn_messages += 1
        if len(self.lines) > 500:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.fh.write(b"".join(self.lines))
            self.lines = []

    def close(self) -> None:
        self.flush()
        self.fh.close()
        os.utime(self.path, (self.t, self.t))

    def _common(self, rec: dict) -> dict:
        for k, v in (("cwd", self.cwd), ("sessionId", self.sid), ("session_id", self.sid)):
            if k in rec:
                rec[k] = v
        return rec

    def conv(self, kind: str, dt: float, **fields) -> dict:
        """A conversation record (parentUuid chained) of the sample's ``kind``, fields replaced in place."""
        rec = copy.copy(self.tpl[kind])
        u = self.uuid()
        rec.update(parentUuid=self.parent, uuid=u, timestamp=self.tick(dt))
        for k, v in fields.items():
            rec[k] = v
        self.parent = u
        return self._common(rec)

    # -- bookkeeping -----------------------------------------------------------------
    def simple(self, kind: str, **fields) -> None:
        rec = copy.copy(self.tpl[kind])
        rec.update(fields)
        self.put(self._common(rec))

    def api_request(self) -> str:
        ref = self.uuid()
        rec = copy.copy(self.tpl["api-request"])
        rec.update(id=ref, timestamp=self.tick(0.01))
        self.put(self._common(rec))
        return ref

    def blob(self, chars: int) -> None:
        rec = copy.copy(self.tpl["api-request-blob"])
        rec["hash"] = "%064x" % self.rng.getrandbits(256)
        rec["message"] = {"role": "user", "content": [{"type": "text", "text": self.text.paragraph(3, 8)}
                                                      for _ in range(max(1, chars // 700))]}
        self.put(self._common(rec))

    # -- messages --------------------------------------------------------------------
    def prompt(self, text: str) -> None:
        self.turn_index += 1
        self.prompt_id = self.uuid()
        nxt = self.uuid()
        snap = copy.deepcopy(self.tpl["file-history-snapshot"])
        snap["messageId"] = snap["snapshot"]["messageId"] = nxt
        snap["snapshot"]["timestamp"] = iso(self.t)
        snap["snapshot"]["trackedFileBackups"] = {
            p: {"backupFileName": f"{self.b62(16)}@v{self.rng.randint(1, 9)}", "version": self.rng.randint(1, 9),
                "backupTime": iso(self.t - self.rng.random() * 3600)} for p in list(self.files)[:12]}
        self.put(snap)
        rec = self.conv("user:prompt", 30.0, promptId=self.prompt_id, message={"role": "user", "content": text},
                        turnPosition={"promptIndex": self.turn_index, "turnIndex": self.turn_index})
        rec["uuid"] = self.parent = nxt
        self.put(rec, message=True)
        self.counts["prompts"] += 1
        if self.rng.random() < 0.4:
            att = copy.copy(self.tpl["attachment:date"])
            att.update(parentUuid=self.parent, uuid=self.uuid(), timestamp=self.tick(0.001))
            self.parent = att["uuid"]
            self.put(self._common(att))

    def _assistant(self, kind: str, mid: str, rid: str, ref: str, block: dict, stop: str, block_index: int,
                   thinking_tokens: int = 0) -> None:
        r = self.rng
        usage = dict(self.tpl[kind]["message"]["usage"])
        usage.update(input_tokens=r.randint(1, 40), output_tokens=r.randint(20, 4000),
                     cache_creation_input_tokens=r.randint(0, 20000), cache_read_input_tokens=r.randint(10000, 180000),
                     output_tokens_details={"thinking_tokens": thinking_tokens})
        msg = dict(self.tpl[kind]["message"])
        msg.update(id=mid, model=self.model, content=[block], stop_reason=stop, usage=usage)
        rec = self.conv(kind, 2.0 if block_index == 0 else 0.2, message=msg, requestId=rid, requestRef=ref,
                        requestedModel=self.model, apiBlockIndex=block_index)
        self.put(rec, message=True)

    def api_message(self, *, think: bool, text: str | None, tool: dict | None) -> None:
        """One API message: a record per content block (thinking, text, tool_use), one message.id."""
        ref = self.api_request()
        mid, rid = "msg_01" + self.b62(22), "req_011C" + self.b62(20)
        stop = "tool_use" if tool else "end_turn"
        i = 0
        if think:
            t = self.text.thinking(int(min(12_000, self.rng.lognormvariate(7.0, 0.9))))
            self._assistant("assistant:text", mid, rid, ref, {"type": "thinking", "thinking": t,
                                                              "signature": self.text.signature()},
                            stop, i, thinking_tokens=len(t) // 4)
            self.counts["thinking"] += 1
            i += 1
        if text is not None:
            self._assistant("assistant:text", mid, rid, ref, {"type": "text", "text": text}, stop, i)
            self.counts["replies"] += 1
            i += 1
        if tool:
            self._assistant("assistant:tool_use", mid, rid, ref, {"type": "tool_use", "id": tool["id"],
                                                                  "name": tool["name"], "input": tool["input"]},
                            stop, i)

    def tool_result(self, tool_id: str, content: str, result, is_error: bool = False) -> None:
        kind = "user:tool_result"
        msg = {"role": "user", "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": content,
                                            "is_error": is_error}]}
        rec = self.conv(kind, 1.0, promptId=self.prompt_id, message=msg, toolUseResult=result,
                        sourceToolAssistantUUID=self.parent)
        self.put(rec, message=True)
        self.counts["tool_results"] += 1

    # -- tools -------------------------------------------------------------------------
    def _file(self) -> tuple[str, list[str]]:
        r = self.rng
        if self.files and r.random() < 0.85:
            p = r.choice(list(self.files))
        else:
            ext = r.choice((".py", ".py", ".ts"))
            top = r.choice(("src", "src", "tests", "static", "helm"))
            p = f"{self.cwd}/{top}/{r.choice(IDENT)}_{r.choice(IDENT)}{ext}"
            lines = int(min(6000, max(20, r.lognormvariate(5.9, 0.8))))  # median ~360 lines, ~13 KB
            lang = "typescript" if ext == ".ts" else "python"
            self.files[p] = self.text.code(lang, min(lines, 3900)).split("\n")
            while len(self.files[p]) < lines:
                self.files[p] += self.text.code(lang, min(lines - len(self.files[p]), 3900)).split("\n")
        return p, self.files[p]

    def tool_call(self) -> None:
        r, tx = self.rng, self.text
        tid = "toolu_01" + self.b62(22)
        k = r.random()
        lead = tx.sentence(6, 20) if r.random() < 0.45 else None
        think = r.random() < 0.3
        if k < 0.30:  # Bash
            cmd = r.choice(("pytest -q tests/", "git diff --stat", "ls -la src/", "npm run build 2>&1 | tail -80",
                            "python -m helm_monitor --help", "grep -rn TODO src/ | head -50", "git log --oneline -20"))
            out = tx.command_output(int(min(BASH_MAX * 1.5, r.lognormvariate(7.6, 1.4))))[:BASH_MAX]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Bash", "input": {
                "command": cmd, "description": tx.words(3, 8).capitalize()}})
            err = r.random() < 0.04
            self.tool_result(tid, out if not err else "Exit code 1\n" + out[:2000],
                             {"stdout": out, "stderr": "", "interrupted": False, "isImage": False,
                              "noOutputExpected": False} if not err else "Error: Exit code 1\n" + out[:2000], err)
        elif k < 0.52:  # Read
            p, lines = self._file()
            start = 1 if r.random() < 0.7 else r.randint(1, max(1, len(lines) - 50))
            n = min(len(lines) - start + 1, 2000)
            part = lines[start - 1:start - 1 + n]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Read", "input": {"file_path": p}})
            self.tool_result(tid, cat_n(part, start) + "\n\n<system-reminder>\nWhenever you read a file, you should "
                             "consider whether it would be considered malware.\n</system-reminder>\n",
                             {"type": "text", "file": {"filePath": p, "content": "\n".join(part), "numLines": n,
                                                       "startLine": start, "totalLines": len(lines)}})
        elif k < 0.76:  # Edit
            p, lines = self._file()
            original = "\n".join(lines)
            at = r.randint(0, max(0, len(lines) - 20))
            old = lines[at:at + r.randint(1, 12)]
            new = [ln.replace(r.choice(IDENT), r.choice(IDENT)) for ln in old] + \
                tx.code("python", r.randint(0, 10)).split("\n")
            if not "\n".join(old).strip():
                old = [lines[at] if at < len(lines) else "pass"]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Edit", "input": {
                "file_path": p, "old_string": "\n".join(old), "new_string": "\n".join(new)}})
            c0, c1 = max(0, at - 3), min(len(lines), at + len(old) + 3)
            hunk = ([" " + ln for ln in lines[c0:at]] + ["-" + ln for ln in old] + ["+" + ln for ln in new]
                    + [" " + ln for ln in lines[at + len(old):c1]])
            patch = [{"oldStart": c0 + 1, "oldLines": c1 - c0, "newStart": c0 + 1,
                      "newLines": c1 - c0 - len(old) + len(new), "lines": hunk}]
            lines[at:at + len(old)] = new
            s0 = max(0, at - 5)
            snippet = cat_n(lines[s0:at + len(new) + 5], s0 + 1)
            self.tool_result(tid, f"The file {p} has been updated. Here's the result of running `cat -n` on a "
                             f"snippet of the edited file:\n{snippet}",
                             {"filePath": p, "oldString": "\n".join(old), "newString": "\n".join(new),
                              "originalFile": original, "structuredPatch": patch, "userModified": False,
                              "replaceAll": False})
            self.counts["edits"] += 1
        elif k < 0.82:  # Write
            p = f"{self.cwd}/src/{r.choice(IDENT)}_{r.choice(IDENT)}_new.py"
            content = tx.code("python", r.randint(20, 400))
            self.files[p] = content.split("\n")
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Write", "input": {
                "file_path": p, "content": content}})
            self.tool_result(tid, f"File created successfully at: {p}",
                             {"type": "create", "filePath": p, "content": content, "structuredPatch": [],
                              "originalFile": None})
        elif k < 0.9:  # Grep
            hits = [f"{self.cwd}/src/{r.choice(IDENT)}_{r.choice(IDENT)}.py" for _ in range(r.randint(1, 60))]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Grep", "input": {
                "pattern": f"def {r.choice(IDENT)}_", "path": self.cwd, "output_mode": "files_with_matches"}})
            self.tool_result(tid, f"Found {len(hits)} files\n" + "\n".join(hits),
                             {"mode": "files_with_matches", "filenames": hits, "numFiles": len(hits)})
        elif k < 0.94:  # Glob
            hits = [f"{self.cwd}/tests/test_{r.choice(IDENT)}.py" for _ in range(r.randint(1, 100))]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "Glob",
                                                           "input": {"pattern": "tests/**/*.py"}})
            self.tool_result(tid, "\n".join(hits), {"filenames": hits, "durationMs": r.randint(2, 90),
                                                    "numFiles": len(hits), "truncated": False})
        else:  # TodoWrite
            todos = [{"content": tx.sentence(4, 10), "status": r.choice(("pending", "in_progress", "completed")),
                      "activeForm": tx.sentence(3, 8)} for _ in range(r.randint(2, 9))]
            self.api_message(think=think, text=lead, tool={"id": tid, "name": "TodoWrite", "input": {"todos": todos}})
            self.tool_result(tid, "Todos have been modified successfully. Ensure that you continue to use the todo "
                             "list to track your progress. Please proceed with the current tasks if applicable",
                             {"oldTodos": [], "newTodos": todos})

    # -- a turn ------------------------------------------------------------------------
    def turn(self) -> None:
        r, tx = self.rng, self.text
        self.turn_messages = 0
        if r.random() < 0.12:
            text = tx.paragraph(1, 3) + "\n\n```python\n" + tx.code("python", r.randint(10, 120)) + "\n```"
        else:
            text = tx.paragraph(1, 4)
        self.prompt(text)
        tools = min(40, int(r.expovariate(1 / 6)))
        if tools:
            self.simple("tools-used", tools=sorted({"Bash", "Read", "Edit"}))
        for _ in range(tools):
            self.tool_call()
        self.api_message(think=r.random() < 0.6, text=tx.markdown(int(min(20_000, r.lognormvariate(7.6, 0.8)))),
                         tool=None)
        self.blob(int(r.lognormvariate(8.0, 0.6)))
        sysrec = self.conv("system", 0.01, durationMs=r.randint(2000, 300000), messageCount=self.turn_messages)
        self.put(sysrec)
        if self.turn_index % 5 == 0:
            self.simple("last-prompt", lastPrompt=text[:1000], leafUuid=self.parent)
            self.simple("ai-title", aiTitle=tx.words(3, 7).capitalize())
            self.simple("mode")
            self.simple("permission-mode")
        if self.turn_index % 25 == 0:
            self.simple("cost-state")

    def write(self, target: int, first_prompt: str | None = None) -> dict:
        self.simple("mode")
        self.simple("permission-mode")
        if first_prompt:
            self.prompt(first_prompt)
            self.api_message(think=True, text=self.text.markdown(1500), tool=None)
        while self.size < target:
            self.turn()
        self.simple("last-prompt", lastPrompt="wrap up", leafUuid=self.parent)
        self.simple("cost-state")
        self.close()
        return {"path": str(self.path), "id": self.sid, "bytes": self.size, "message_bytes": self.message_bytes,
                "turns": self.turn_index, **self.counts, "t_last": self.t}


def build_history(root: Path, size: int, seed: int = 5) -> dict:
    """The claude root: the big transcript (newest) and four small sessions in two other projects."""
    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    (root / "projects").mkdir(exist_ok=True)
    (root / "sessions").mkdir(exist_ok=True)
    rng = random.Random(seed)
    text = Text(random.Random(seed + 100))
    now = time.time()
    big_cwd = "/home/alice/code/api-server"
    sid = str(_uuid.UUID(int=rng.getrandbits(128), version=4))
    d = root / "projects" / project_key(big_cwd)
    d.mkdir(parents=True, exist_ok=True)
    # The writer's clock runs 0.3-0.4 s per KB written (prompts ~20 s apart, tool calls 1-3 s): started
    # 0.5 s per KB ago, the session ends a while ago (and in the past), the newest of the history.
    w = TranscriptWriter(d / f"{sid}.jsonl", sid, big_cwd, now - 300 - size * 0.0005, seed, text)
    big = w.write(size, first_prompt="Refactor the session store so that paging a long transcript reads only "
                                     "the lines of the page, and keep the tests green.")
    if big["t_last"] > now:
        log(f"    note: the big session's last record is dated {big['t_last'] - now:.0f} s in the future")
    small = []
    for i, cwd in enumerate(("/home/alice/code/webapp", "/home/alice/code/webapp", "/home/bob/src/cli-tools",
                             "/home/bob/src/cli-tools")):
        sd = root / "projects" / project_key(cwd)
        sd.mkdir(parents=True, exist_ok=True)
        s_id = str(_uuid.UUID(int=rng.getrandbits(128), version=4))
        sw = TranscriptWriter(sd / f"{s_id}.jsonl", s_id, cwd, now - 86400 * (i + 2), seed + 10 + i, text)
        small.append(sw.write(rng.randint(40_000, 400_000), first_prompt=f"Small session {i}: fix the flaky test"))
    if big["t_last"] < max(s["t_last"] for s in small):
        log("    note: a small session is newer than the big one")
    manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "requested_bytes": size, "big": big,
                "small": small, "generate_s": round(time.monotonic() - t0, 2)}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def history_for(root: Path, size: int, seed: int) -> dict:
    m = None
    try:
        m = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        pass
    if m and m.get("generator_version") == GENERATOR_VERSION and m.get("requested_bytes") == size \
            and m.get("seed") == seed and Path(m["big"]["path"]).is_file():
        m["reused"] = True
        return m
    shutil.rmtree(root, ignore_errors=True)
    return build_history(root, size, seed)


# ================================================================== REST

class Client:
    """One keep-alive HTTP/1.1 connection, as the page's fetches share one."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, timeout: float = 60.0) -> tuple[bytes, float]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                t = time.perf_counter()
                self.conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}"})
                resp = self.conn.getresponse()
                body = resp.read()
                dt = time.perf_counter() - t
                if resp.will_close:
                    self.close()
                if resp.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
                return body, dt
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def open_sequence(client: Client, key: str) -> dict:
    """What static/view.js loadTail asks: the tail, in one request (``?tail=1&limit=N``)."""
    from urllib.parse import quote
    base = f"/api/sessions/{quote(key, safe='')}"
    t = time.perf_counter()
    body, first = client.get(f"{base}?tail=1&limit={TAIL_SIZE}")
    page = orjson.loads(body)
    total = int(page.get("total") or 0)
    out = {"first_ms": round(first * 1000, 1), "first_bytes": len(body), "total": total,
           "first_messages": len(page.get("messages") or [])}
    out["open_ms"] = round((time.perf_counter() - t) * 1000, 1)
    msgs = page.get("messages") or []
    out["tail_messages"] = len(msgs)
    out["tail_first_index"] = msgs[0]["index"] if msgs else None
    return out


def stats(values) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None, "mean_ms": None}
    r = lambda x: round(x, 1)
    return {"n": len(v), "p50_ms": r(pct(v, 50)), "p95_ms": r(pct(v, 95)), "min_ms": r(min(v)), "max_ms": r(max(v)),
            "mean_ms": r(statistics.fmean(v))}


def evict(path: str) -> None:
    """Drop this one file's pages from the page cache (nothing else's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fresh_server(root: Path, sessions: int) -> tuple[Server, float]:
    srv = Server(root, env=SERVER_ENV)
    t = time.monotonic()
    srv.start()
    srv.wait_ready(300, sessions=sessions)
    return srv, time.monotonic() - t


def listed(srv: Server, sid: str) -> dict:
    for s in srv.get_json("/api/sessions/all", timeout=60):
        if s.get("id") == sid:
            return s
    raise RuntimeError(f"session {sid} is not listed")


def session_key(srv: Server, sid: str) -> str:
    return listed(srv, sid)["key"]


def rest_phase(root: Path, manifest: dict, cold_reps: int, warm_reps: int) -> dict:
    big = manifest["big"]
    n_sessions = 1 + len(manifest["small"])
    out: dict = {"cold": [], "cold_evicted": None, "warm": None}
    key = None
    for i in range(cold_reps + 1):
        evicted = i == cold_reps  # the last start: the transcript out of the page cache first
        srv, ready_s = fresh_server(root, n_sessions)
        try:
            row = listed(srv, big["id"])
            key = row["key"]
            out["listed_message_count"] = row.get("messageCount")
            if evicted:
                evict(big["path"])
            client = Client(srv.port)
            r = open_sequence(client, key)
            r["server_ready_s"] = round(ready_s, 2)
            if evicted:
                out["cold_evicted"] = r
                log(f"    cold, evicted from the page cache: {r['open_ms']} ms (first {r['first_ms']}, "
                    f"tail {r.get('tail_ms')} ms)")
            else:
                out["cold"].append(r)
                log(f"    cold #{i + 1}: {r['open_ms']} ms (first {r['first_ms']}, tail {r.get('tail_ms')} ms; "
                    f"server ready in {ready_s:.1f} s)")
            if i == 0:
                runs = [open_sequence(client, key) for _ in range(warm_reps + 2)][2:]  # two unmeasured
                out["warm"] = {"open": stats([x["open_ms"] for x in runs]),
                               "first": stats([x["first_ms"] for x in runs]),
                               "tail": stats([x.get("tail_ms") for x in runs]), "runs": runs}
                log(f"    warm: p50 {out['warm']['open']['p50_ms']} ms, p95 {out['warm']['open']['p95_ms']} ms "
                    f"(first p50 {out['warm']['first']['p50_ms']}, tail p50 {out['warm']['tail']['p50_ms']})")
            client.close()
        finally:
            srv.stop()
    c = out["cold"]
    out["key"] = key
    out["total"] = c[0]["total"]
    out["first_bytes"], out["tail_bytes"] = c[0]["first_bytes"], c[0].get("tail_bytes")
    out["cold_open"] = stats([x["open_ms"] for x in c])
    out["cold_first"] = stats([x["first_ms"] for x in c])
    out["cold_tail"] = stats([x.get("tail_ms") for x in c])
    return out


# ================================================================== the page

INIT_SCRIPT = r"""
(() => {
  if (window.top !== window || window.__open) return;
  const afterFrame = (fn) => requestAnimationFrame(() => setTimeout(() => fn(performance.now()), 0));
  const o = window.__open = { run: null, armed: false, longTasks: [], key: window.__openKey || null };
  const inMessages = (node) => {
    const el = node && (node.nodeType === 1 ? node : node.parentElement);
    return Boolean(el && el.closest('#messages'));
  };
  const start = (t0, how) => {
    const r = o.run = { how, t0, tFirst: null, tFirstFrame: null, firstItems: 0, tLast: null, tLastFrame: null,
      pending: 0, mutations: 0 };
    r.mo = new MutationObserver((records) => {
      let hit = false;
      for (const rec of records) if (inMessages(rec.target)) { hit = true; break; }
      if (!hit) return;
      const now = performance.now();
      if (r.tFirst === null) {
        const n = document.querySelectorAll('#messages [data-index]').length;
        if (!n) return;  // the view clearing the old conversation
        r.tFirst = now;
        r.firstItems = n;
        afterFrame((t) => { r.tFirstFrame = t; });
      }
      r.mutations += records.length;
      r.tLast = now;
      r.pending += 1;
      afterFrame((t) => { r.tLastFrame = Math.max(r.tLastFrame || 0, t); r.pending -= 1; });
    });
    r.mo.observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
  };
  o.arm = () => { performance.clearResourceTimings(); o.armed = true; };
  document.addEventListener('click', (e) => {
    if (!o.armed || !e.target.closest || !e.target.closest('[data-session-key]')) return;
    o.armed = false;
    start(e.timeStamp, 'click');
  }, true);
  if (new URLSearchParams(location.search).get('session')) start(0, 'navigation');
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) o.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) { /* no long task timing */ }
  o.settled = (quiet) => {
    const r = o.run;
    return Boolean(r && r.tFirstFrame !== null && r.pending === 0 &&
      performance.now() - Math.max(r.tLast, r.tLastFrame) > quiet);
  };
  o.state = () => {
    const r = o.run;
    return { run: r ? { how: r.how, tFirst: r.tFirst, tLast: r.tLast, pending: r.pending } : null,
      items: document.querySelectorAll('#messages [data-index]').length,
      state: (document.getElementById('conversation-state') || {}).textContent };
  };
  o.result = (key) => {
    const r = o.run;
    r.mo.disconnect();
    o.run = null;
    const idx = [...document.querySelectorAll('#messages [data-index]')]
      .map((e) => Number(e.getAttribute('data-index')));
    const marks = [key, encodeURIComponent(key)];
    const fetches = performance.getEntriesByType('resource')
      .filter((e) => marks.some((m) => e.name.includes('/api/sessions/' + m + '?')) && e.startTime >= r.t0 - 1)
      .map((e) => ({ url: e.name.slice(e.name.indexOf('?')), start_ms: e.startTime - r.t0,
        ttfb_ms: e.responseStart - r.t0, end_ms: e.responseEnd - r.t0, bytes: e.encodedBodySize }));
    const lt = o.longTasks.filter(([s]) => s >= r.t0 && s <= r.tLastFrame);
    return { how: r.how, first_dom_ms: r.tFirst - r.t0, first_ms: r.tFirstFrame - r.t0, first_items: r.firstItems,
      tail_dom_ms: r.tLast - r.t0, tail_ms: r.tLastFrame - r.t0, items: idx.length,
      min_index: idx.length ? Math.min(...idx) : null, max_index: idx.length ? Math.max(...idx) : null,
      mutations: r.mutations, fetches, long_tasks: lt.length, long_task_ms: lt.reduce((a, [, d]) => a + d, 0),
      elements: document.querySelectorAll('#messages *').length,
      nav: r.how === 'navigation' ? (() => { const n = performance.getEntriesByType('navigation')[0];
        return n ? { response_end_ms: n.responseEnd, dom_content_loaded_ms: n.domContentLoadedEventEnd } : null; })()
        : null };
  };
})();
"""

METRIC_KEYS = ["ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration", "Nodes"]


def cdp_metrics(cdp) -> dict:
    got = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {k: got.get(k) for k in METRIC_KEYS}


def rounded(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = round(v, 1)
        elif isinstance(v, list):
            out[k] = [rounded(x) if isinstance(x, dict) else x for x in v]
        else:
            out[k] = v
    return out


class PageRun:
    def __init__(self, browser, srv: Server, key: str):
        self.key = key
        self.ctx = browser.new_context(viewport=VIEWPORT)
        self.ctx.set_default_timeout(60_000)
        self.ctx.add_init_script(f"window.__openKey = {json.dumps(key)};\n" + INIT_SCRIPT)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console error: {m.text}"))
        self.cdp = self.ctx.new_cdp_session(self.page)
        self.cdp.send("Performance.enable")
        self.base = f"http://127.0.0.1:{srv.port}/"
        self.row = f'[data-session-key="{key}"]'

    def load_list(self) -> None:
        self.page.goto(self.base, wait_until="commit")
        self.page.wait_for_selector(self.row, state="attached", timeout=120_000)
        self.page.wait_for_timeout(1000)  # the list settles; the stream connects

    def _wait(self, timeout_s: float) -> tuple[dict, dict]:
        try:
            self.page.wait_for_function(f"() => window.__open.settled({QUIET_MS})", timeout=timeout_s * 1000,
                                        polling=50)
        except Exception as exc:  # playwright's TimeoutError
            raise RuntimeError(f"the conversation never showed: {self.page.evaluate('() => window.__open.state()')}; "
                               f"page errors {self.errors[:5]}") from exc
        m1 = cdp_metrics(self.cdp)
        r = self.page.evaluate("(k) => window.__open.result(k)", self.key)
        return r, m1

    def open_click(self, timeout_s: float = 120) -> dict:
        link = self.page.locator(f"{self.row} a").first
        link.scroll_into_view_if_needed()
        m0 = cdp_metrics(self.cdp)
        self.page.evaluate("() => window.__open.arm()")
        link.click()
        r, m1 = self._wait(timeout_s)
        return self._with_metrics(r, m0, m1)

    def close_view(self) -> None:
        self.page.click("#detail-close")
        self.page.wait_for_function("() => !document.querySelector('#messages [data-index]')", timeout=30_000)
        self.page.wait_for_timeout(300)

    def open_url(self, timeout_s: float = 120) -> dict:
        from urllib.parse import quote
        self.page.goto(self.base + "?session=" + quote(self.key, safe=""), wait_until="commit")
        r, m1 = self._wait(timeout_s)
        return self._with_metrics(r, {k: 0.0 for k in METRIC_KEYS}, m1)

    @staticmethod
    def _with_metrics(r: dict, m0: dict, m1: dict) -> dict:
        for k in ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration"):
            if m0.get(k) is not None and m1.get(k) is not None:
                r[k.replace("Duration", "_ms")] = (m1[k] - m0[k]) * 1000
        return rounded(r)

    def close(self) -> None:
        self.ctx.close()


def breakdown(runs: list[dict]) -> dict:
    """Medians over opens: click -> first answer, -> tail answer (Resource Timing responseEnd), -> first
    messages in the DOM (after rendering and any layout the page forces), -> the next frame."""
    parts = {"first_fetch_ms": [], "tail_fetch_ms": [], "render_ms": [], "frame_ms": []}
    for r in runs:
        f = r.get("fetches") or []
        if len(f) < 1:
            continue
        last = f[-1]["end_ms"]
        parts["first_fetch_ms"].append(f[0]["end_ms"])
        parts["tail_fetch_ms"].append(last - f[0]["end_ms"] if len(f) > 1 else 0.0)
        parts["render_ms"].append(r["first_dom_ms"] - last)
        parts["frame_ms"].append(r["first_ms"] - r["first_dom_ms"])
    return {k: (round(statistics.median(v), 1) if v else None) for k, v in parts.items()}


def check_tail(r: dict, total: int) -> bool:
    """The tail page is what is shown: its last message, and nothing from the head page."""
    if total <= TAIL_SIZE:
        return r["items"] > 0
    return r["max_index"] is not None and r["max_index"] >= total - TAIL_SIZE and r["min_index"] >= total - TAIL_SIZE


def page_phase(browser, root: Path, manifest: dict, reps: int, nav_reps: int, profile: bool) -> dict:
    n_sessions = 1 + len(manifest["small"])
    srv, ready_s = fresh_server(root, n_sessions)
    out: dict = {"server_ready_s": round(ready_s, 2)}
    try:
        key = session_key(srv, manifest["big"]["id"])
        total = None
        run = PageRun(browser, srv, key)
        try:
            run.load_list()
            cold = run.open_click()
            out["cold"] = cold
            log(f"    cold click: first messages {cold['first_ms']} ms, tail rendered {cold['tail_ms']} ms "
                f"({cold['items']} items, index {cold['min_index']}-{cold['max_index']})")
            total = orjson.loads(srv.request("GET", f"/api/sessions/{key}?offset=0&limit=1")[1])["total"]
            out["total"] = total
            warm = []
            for i in range(reps):
                run.close_view()
                warm.append(run.open_click())
            out["warm_runs"] = warm
            out["warm_first"] = stats([r["first_ms"] for r in warm])
            out["warm_tail"] = stats([r["tail_ms"] for r in warm])
            out["warm_breakdown"] = breakdown(warm)
            out["warm_script"] = stats([r.get("Script_ms") for r in warm])
            out["warm_layout"] = stats([r.get("Layout_ms") for r in warm])
            out["warm_style"] = stats([r.get("RecalcStyle_ms") for r in warm])
            log(f"    warm click: first messages p50 {out['warm_first']['p50_ms']} / "
                f"p95 {out['warm_first']['p95_ms']} ms, "
                f"tail rendered p50 {out['warm_tail']['p50_ms']} / p95 {out['warm_tail']['p95_ms']} ms")
            if profile:
                run.close_view()
                out["profile"] = profile_open(run)
                top = out["profile"]["top_self"][:6]
                log("    page profile (one warm open): " + ", ".join(f"{t['function']} {t['self_ms']} ms" for t in top))
            out["page_errors"] = run.errors[:20]
        finally:
            run.close()
        nav = []
        for i in range(nav_reps):
            run = PageRun(browser, srv, key)
            try:
                nav.append(run.open_url())
                out.setdefault("page_errors", []).extend(run.errors[:5])
            finally:
                run.close()
        out["nav_runs"] = nav
        out["nav_first"] = stats([r["first_ms"] for r in nav])
        out["nav_tail"] = stats([r["tail_ms"] for r in nav])
        if nav:
            log(f"    /?session= page load: first messages p50 {out['nav_first']['p50_ms']} ms, tail rendered p50 "
                f"{out['nav_tail']['p50_ms']} ms (from navigation start)")
        out["tail_shown"] = all(check_tail(r, total) for r in [out["cold"], *out["warm_runs"], *nav])
        out["key"] = key
    finally:
        srv.stop()
    return out


def profile_open(run: PageRun) -> dict:
    from page_scale import top_functions
    run.cdp.send("Profiler.enable")
    run.cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    run.cdp.send("Profiler.start")
    r = run.open_click()
    prof = run.cdp.send("Profiler.stop")["profile"]
    out = top_functions(prof, 15)
    out["open"] = {k: r[k] for k in ("first_ms", "tail_ms", "Script_ms", "Layout_ms", "RecalcStyle_ms") if k in r}
    return out


def chromium_version() -> str | None:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ================================================================== where the server's time goes

def before_is_message():
    """Conversation._is_message as it was before it told messages by their bytes (up to da356fd): every line
    not skipped by its ``{"type":"…"`` prefix decoded with orjson to read ``type`` and ``isSidechain``."""
    from helm_monitor.sources.claude.transcript import TranscriptReader

    def is_message(buf, start, end, sidechain=False):
        if end <= start or TranscriptReader._skippable(buf, start, end):
            return False
        if buf.startswith(b'{"type":"', start):
            q = buf.find(b'"', start + 9, start + 64)
            if buf[start + 9:q] not in (b"user", b"assistant"):
                return False
        try:
            rec = orjson.loads(buf[start:end])
        except orjson.JSONDecodeError:
            return False
        return isinstance(rec, dict) and rec.get("type") in ("user", "assistant") and (
            sidechain or rec.get("isSidechain") is not True)
    return is_message


def server_profile(path: str) -> dict:
    """The working tree's Conversation (what GET /api/sessions/<key> pages), in this process."""
    from helm_monitor.sources import redact as RD
    from helm_monitor.sources.claude import conversation as C
    from helm_monitor.sources.pages import LineIndex
    ms_ = lambda s: round(s * 1000, 1)
    out: dict = {"file_mb": round(os.path.getsize(path) / 1e6, 1)}
    pc = time.perf_counter

    # -- the line index, cold
    fd = os.open(path, os.O_RDONLY)
    try:
        li = LineIndex()
        lines = [0]
        t = pc()
        li.update(fd, lambda b, s, e, o: lines.__setitem__(0, lines[0] + 1), lambda: None)
        out["index_line_scan_ms"] = ms_(pc() - t)
    finally:
        os.close(fd)
    out["lines"] = lines[0]
    conv = C.Conversation(path)
    spent = [0.0, 0, 0]  # seconds in the message check, lines checked (not skipped by their prefix), their bytes
    is_message = conv._is_message

    def timed_check(buf, start, end, *more):
        t0 = pc()
        skippable = end <= start or C.TranscriptReader._skippable(buf, start, end)
        r = is_message(buf, start, end, *more)
        spent[0] += pc() - t0
        if not skippable:
            spent[1] += 1
            spent[2] += end - start
        return r
    conv._is_message = timed_check
    t = pc()
    conv._update()
    out["index_build_ms"] = ms_(pc() - t)
    out["index_message_check_ms"] = ms_(spent[0])
    out["index_lines_checked"] = spent[1]
    out["index_bytes_checked_mb"] = round(spent[2] / 1e6, 1)
    conv._is_message = is_message
    total = len(conv._starts)
    out["messages"] = total
    alt = C.Conversation(path)
    alt._is_message = before_is_message()
    t = pc()
    alt._update()
    out["index_before"] = {"build_ms": ms_(pc() - t), "same_index": (alt._starts == conv._starts
                                                                     and alt._ends == conv._ends),
                           "what": "every line not skipped by its prefix decoded (before the check by the "
                                   "record's first and last bytes)"}
    t = pc()
    conv._update()
    out["index_update_nothing_new_ms"] = round((pc() - t) * 1000, 3)

    # -- a head and a tail page: reading, decoding, to_message (masking apart), the answer's encoding
    calls: list[tuple[str, int]] = []
    real_clip = C.redact_clipped
    redact_s = [0.0]

    def timed_clip(text, limit, *a):
        calls.append((text, limit))
        t0 = pc()
        r = real_clip(text, limit, *a)
        redact_s[0] += pc() - t0
        return r
    pages = {}
    C.redact_clipped = timed_clip
    try:
        for name, offset, size in (("head", 0, PAGE_SIZE), ("tail", max(0, total - TAIL_SIZE), TAIL_SIZE)):
            read = loads = tomsg = 0.0
            nbytes = 0
            redact_s[0] = 0.0
            n_calls = len(calls)
            msgs = []
            with open(path, "rb") as f:
                for i in range(offset, min(total, offset + size)):
                    t0 = pc()
                    f.seek(conv._starts[i])
                    line = f.read(conv._ends[i] - conv._starts[i])
                    t1 = pc()
                    rec = orjson.loads(line)
                    t2 = pc()
                    msgs.append(C.to_message(i, rec))
                    t3 = pc()
                    read, loads, tomsg, nbytes = read + t1 - t0, loads + t2 - t1, tomsg + t3 - t2, nbytes + len(line)
            t0 = pc()
            body = orjson.dumps({"session": {}, **C.page_of(msgs, offset + len(msgs), total)})
            dumps = pc() - t0
            texts = calls[n_calls:]
            pages[name] = {"offset": offset, "line_bytes": nbytes, "answer_bytes": len(body), "read_ms": ms_(read),
                           "orjson_loads_ms": ms_(loads), "to_message_ms": ms_(tomsg),
                           "of_which_masking_ms": ms_(redact_s[0]), "orjson_dumps_ms": ms_(dumps),
                           "texts_masked": len(texts), "texts_chars": sum(len(x) for x, _ in texts),
                           "texts_with_trigger": sum(1 for x, _ in texts if RD._TRIGGERS.search(x))}
            pages[name]["_texts"] = texts
    finally:
        C.redact_clipped = real_clip
    t = pc()
    conv.page(max(0, total - TAIL_SIZE), TAIL_SIZE)
    out["tail_page_call_ms"] = ms_(pc() - t)

    # -- masking, pattern by pattern, over the tail page's texts (as to_message hands them over, unclipped)
    texts = pages["tail"].pop("_texts") + pages["head"].pop("_texts")
    windows = [x[:limit + RD._CLIP_MARGIN] for x, limit in texts]
    t = pc()
    triggered = [x for x in windows if RD._TRIGGERS.search(x) is not None]
    per_pattern = [{"pattern": "(the trigger search, every text)", "ms": ms_(pc() - t)}]
    for pattern, replacement in RD._PATTERNS:
        t = pc()
        for x in triggered:
            pattern.sub(replacement, x)
        per_pattern.append({"pattern": pattern.pattern[:60], "ms": ms_(pc() - t)})
    out["masking_by_pattern_head_and_tail"] = sorted(per_pattern, key=lambda p: -p["ms"])
    out["masking_texts"] = {"texts": len(windows), "chars": sum(map(len, windows)), "triggered": len(triggered),
                            "triggered_chars": sum(map(len, triggered))}
    out["pages"] = pages

    # -- a cold open as the server answers ?tail=1 (index, an empty page for the total, the tail page):
    # timed, then under cProfile
    def cold_open(c):
        head = c.page(1 << 62, 1)
        c.page(max(0, head["total"] - TAIL_SIZE), TAIL_SIZE)
    t = pc()
    cold_open(C.Conversation(path))
    out["cold_open_in_process_ms"] = ms_(pc() - t)
    prof = cProfile.Profile()
    c2 = C.Conversation(path)
    t = pc()
    prof.enable()
    cold_open(c2)
    prof.disable()
    out["cold_open_under_cprofile_ms"] = ms_(pc() - t)
    st = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append({"function": f"{fn} ({Path(file).name}:{line})" if line else fn, "calls": nc,
                     "self_ms": ms_(tt), "total_ms": ms_(ct)})
    out["cprofile_cold_open_top_self"] = sorted(rows, key=lambda r: -r["self_ms"])[:15]
    return out


# ================================================================== main

def _ms(x) -> str:
    return "-" if x is None else f"{x:.0f} ms"


def _pair(s: dict | None) -> str:
    return "-" if not s or not s.get("n") else f"{_ms(s['p50_ms'])} / {_ms(s['p95_ms'])}"


def verdicts(res: dict) -> dict:
    pg = res.get("page") or {}
    out = {}
    if pg.get("cold"):
        out["cold_first_messages"] = pg["cold"]["first_ms"] <= TARGET_MS
    if pg.get("warm_first", {}).get("n"):
        out["warm_first_messages_p95"] = pg["warm_first"]["p95_ms"] <= TARGET_MS
    return out


def report(res: dict) -> str:
    rest, pg = res["rest"], res.get("page") or {}
    rows = [
        [f"REST open: GET ?tail=1&limit={TAIL_SIZE}", _ms(rest["cold_open"]["p50_ms"]), _pair(rest["warm"]["open"]),
         f"{rest['first_bytes'] / 1e3:.0f} KB"],
        ["REST open, transcript evicted from page cache", _ms((rest.get("cold_evicted") or {}).get("open_ms")), "", ""],
    ]
    if pg:
        rows += [
            ["page: click row -> first messages (next frame)", _ms(pg["cold"]["first_ms"]), _pair(pg["warm_first"]),
             f"target <= {TARGET_MS:.0f} ms"],
            ["page: click row -> tail rendered (quiet, next frame)", _ms(pg["cold"]["tail_ms"]), _pair(pg["warm_tail"]),
             f"{pg['cold']['items']} items"],
            ["page: /?session= load -> first messages", "", _pair(pg.get("nav_first")), "from navigation start"],
            ["page: /?session= load -> tail rendered", "", _pair(pg.get("nav_tail")), ""],
            ["page: renderer script / layout / style per warm open", "",
             " / ".join(_ms(pg[k]["p50_ms"]) for k in ("warm_script", "warm_layout", "warm_style")), "p50"],
        ]
    text = table(["measure", "cold", "warm p50 / p95", "note"], rows)
    b = pg.get("warm_breakdown")
    if b:
        text += ("\n\nwarm click, medians: first answer at %s, tail answer %s later, rendering %s more (to the "
                 "first messages in the DOM), next frame %s" % tuple(_ms(b[k]) for k in (
                     "first_fetch_ms", "tail_fetch_ms", "render_ms", "frame_ms")))
    sp = res.get("server_profile")
    if sp:
        hd, tl, ib = sp["pages"]["head"], sp["pages"]["tail"], sp["index_before"]
        prow = [
            [f"line index, cold ({sp['file_mb']} MB, {sp['lines']} lines)", _ms(sp["index_build_ms"])],
            ["  bare line scan", _ms(sp["index_line_scan_ms"])],
            [f"  message check: {sp['index_lines_checked']} lines, {sp['index_bytes_checked_mb']} MB",
             _ms(sp["index_message_check_ms"])],
            [f"  before: every such line decoded (same index: {ib['same_index']})", _ms(ib["build_ms"])],
            [f"head page ({PAGE_SIZE}): read + orjson + to_message (of which masking)",
             f"{_ms(hd['read_ms'] + hd['orjson_loads_ms'] + hd['to_message_ms'])} ({_ms(hd['of_which_masking_ms'])})"],
            [f"tail page ({TAIL_SIZE}): read + orjson + to_message (of which masking)",
             f"{_ms(tl['read_ms'] + tl['orjson_loads_ms'] + tl['to_message_ms'])} ({_ms(tl['of_which_masking_ms'])})"],
            ["cold open in process (index + tail page, as ?tail=1)", _ms(sp["cold_open_in_process_ms"])],
        ]
        text += "\n\n" + table(["server, in process", "time"], prow)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 MB, 2 repetitions, 1 cold start (a smoke run)")
    ap.add_argument("--size", type=parse_size, help="the big transcript (default 50MB; quick 5MB)")
    ap.add_argument("--rest-reps", type=int, help="warm REST opens (default 20; quick 2)")
    ap.add_argument("--page-reps", type=int, help="warm clicks on the row (default 10; quick 2)")
    ap.add_argument("--cold-reps", type=int, help="server starts for the cold REST open (default 3; quick 1)")
    ap.add_argument("--nav-reps", type=int, help="page loads of /?session=<key> (default 5; quick 1)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true", help="REST and the in-process profile only")
    ap.add_argument("--no-profile", action="store_true", help="skip the in-process and V8 profiles")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each phase, wait up to S seconds for 10 s in which other processes use less "
                         "than 0.25 cores")
    ap.add_argument("--keep", action="store_true", help="keep the generated history")
    ap.add_argument("--corpus", type=Path, help="a claude root to use (and reuse): generated there unless "
                                                "it holds the same history already")
    a = ap.parse_args(argv)
    size = a.size or parse_size("5MB" if a.quick else "50MB")
    q = a.quick
    rest_reps = a.rest_reps or (2 if q else 20)
    page_reps = a.page_reps or (2 if q else 10)
    cold_reps = a.cold_reps or (1 if q else 3)
    nav_reps = a.nav_reps if a.nav_reps is not None else (1 if q else 5)
    browser_on = not a.no_browser
    if browser_on and not os.path.exists(CHROMIUM):
        print(f"no Chromium at {CHROMIUM} (set HELM_CHROMIUM, or apt-get install chromium; or --no-browser)",
              file=sys.stderr)
        return 2

    def terminate(signum, frame):  # SIGTERM: stop the server, remove the history
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)

    root = a.corpus or (WORK / f"transcript-open-{os.getpid()}" / "claude")
    t0 = time.monotonic()
    from page_scale import OtherLoad, wait_quiet
    res: dict = {"quick": q, "target_ms": TARGET_MS, "page_size": PAGE_SIZE, "tail_size": TAIL_SIZE,
                 "quiet_ms": QUIET_MS,
                 "server_env": SERVER_ENV, "viewport": VIEWPORT,
                 "app": {"head": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                                text=True).stdout.strip() or None,
                         "dirty": bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "static",
                                                       "templates", "helm_monitor"], capture_output=True,
                                                      text=True).stdout.strip())},
                 "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        log(f"== history: {size / 1e6:.0f} MB transcript in {root} ...")
        m = history_for(root, size, a.seed)
        big = m["big"]
        res["history"] = {"bytes": big["bytes"], "message_bytes": big["message_bytes"], "records": big["records"],
                          "messages": big["messages"], "turns": big["turns"], "prompts": big["prompts"],
                          "replies": big["replies"], "thinking": big["thinking"], "tool_results": big["tool_results"],
                          "edits": big["edits"], "small_sessions": len(m["small"]),
                          "generate_s": m.get("generate_s"), "reused": bool(m.get("reused"))}
        log(f"    {big['bytes'] / 1e6:.1f} MB, {big['records']} records, {big['messages']} messages "
            f"({big['turns']} turns, {big['tool_results']} tool results, {big['edits']} edits); "
            f"+ {len(m['small'])} small sessions")
        quiet = lambda: wait_quiet(a.wait_quiet, log) if a.wait_quiet else None
        log("== REST (static/view.js loadTail's two requests) ...")
        res["others_cores_before_rest"] = quiet()
        others = OtherLoad()
        res["rest"] = rest_phase(root, m, cold_reps, rest_reps)
        res["others_cores_rest"] = others.cores()
        if browser_on:
            log("== the page in Chromium ...")
            from playwright.sync_api import sync_playwright
            res["chromium"] = chromium_version()
            res["others_cores_before_page"] = quiet()
            others = OtherLoad()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    res["page"] = page_phase(browser, root, m, page_reps, nav_reps, not (a.no_profile or q))
                finally:
                    browser.close()
            res["others_cores_page"] = others.cores()
        if not a.no_profile:
            log("== where the server's time goes (in-process, the working tree's Conversation) ...")
            res["server_profile"] = sp = server_profile(big["path"])
            log(f"    index {sp['index_build_ms']} ms (line scan {sp['index_line_scan_ms']}, message check "
                f"{sp['index_message_check_ms']} ms over {sp['index_lines_checked']} lines; every such line decoded, "
                f"as before: {sp['index_before']['build_ms']} ms, same index: {sp['index_before']['same_index']}); "
                f"tail page {sp['pages']['tail']['to_message_ms']} ms to_message "
                f"(masking {sp['pages']['tail']['of_which_masking_ms']} ms), head page "
                f"{sp['pages']['head']['to_message_ms']} ms; cold open {sp['cold_open_in_process_ms']} ms")
    finally:
        if not a.keep and a.corpus is None:
            shutil.rmtree(root.parent, ignore_errors=True)
    busy = max(res.get("others_cores_rest", 0), res.get("others_cores_page", 0))
    if busy > 0.3:
        log(f"WARNING: other processes used up to {busy} of {os.cpu_count()} cores meanwhile: the times are inflated")
    res["verdicts"] = verdicts(res)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    print(report(res))
    if res["verdicts"]:
        print("target (first messages <= %d ms): " % TARGET_MS +
              ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in res["verdicts"].items()))
    p = write_results("transcript_open", res)
    print(f"\nwrote {p} ({res['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
