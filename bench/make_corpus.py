#!/usr/bin/env python3
"""Generate a deterministic, realistic Claude data directory for benchmarks.

    python bench/make_corpus.py OUT_DIR --size 100MB [--seed N]

Record templates are taken from the real CLI samples in tests/fixtures/ (2.1.330,
2.1.29 and the subagent sample): every record keeps the key order and fields the
CLI wrote; ids, timestamps, paths, prompts, usage and the long strings are
replaced per record. The long strings are slices of a pre-encoded pool of
code-like text (quotes, backslashes, newlines and some non-ASCII included), so
rendering a record is a handful of string joins and the generator writes about
100-300 MB/s.

The layout follows CLAUDE_CODE_FORMAT.md: projects/<key>/<id>.jsonl main
transcripts of long-tailed sizes across 40-200 projects, most bytes in
``attachment`` and ``api-request*`` records, some 2.1.29-style projects with a
lagging sessions-index.json (and an entry for a deleted transcript), empty
2.1.29 transcripts, subagent transcripts under <id>/subagents/ (some nested,
with .meta.json and journal.jsonl), legacy top-level agent-*.jsonl, tool-results/
and custom-title.json sidecars, occasional multi-MB lines, stale registry files
under sessions/, and history.jsonl.

A manifest (``corpus-manifest.json``, beside projects/) lists every main
transcript; benchmarks read ``main_transcripts`` from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import time
import uuid as _uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
GENERATOR_VERSION = 3
MANIFEST = "corpus-manifest.json"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 100MB, 1GB, 500k)")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]  # decimal, like MB/s
    return int(float(m.group(1)) * mult)


def project_key(cwd: str) -> str:
    key = "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)
    if len(key) > 200:  # 2.1.31+: cut and add a hash suffix
        key = key[:200] + "-" + hashlib.sha256(cwd.encode()).hexdigest()[:8]
    return key


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def jstr(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


# --------------------------------------------------------------------------- text

WORDS = ("the a to of and in is for that with on this it be as are from by at not or was "
         "file function error test value return self import def class const let var async await "
         "config server client request response session stream event queue handler parser cache "
         "index path status update create delete build run check fix refactor should would could "
         "we need add remove change because when then if else while for each into out data json "
         "line offset bytes size count user assistant tool result message model token usage").split()
CODE = ["def", "return", "self.", "()", "{", "}", "[", "]", "=>", "==", "!=", "->", "::", "&&",
        "||", "None", "null", "true", "false", "0", "1", "42", "0x1f", "i++", "err", "ctx",
        "src/app/main.py", "/home/user/code/app/server.ts", "tests/test_api.py:118", "# TODO",
        "// comment", "`code`", "**bold**", "- item", "1.", "http://127.0.0.1:8080/api",
        "\"quoted\"", "'single'", "C:\\\\Users\\\\dev", "a\\b", "\\n", "\t", "\n", "\n", "\n", "\n\n",
        "naïve", "café", "→", "✓", "—", "…", "über", "日本語", "😀", "≤", "µs"]


class TextPool:
    """A large pre-JSON-encoded text; fillers are slices of it (cheap, valid JSON)."""

    def __init__(self, rng: random.Random, chars: int = 6_000_000):
        toks = rng.choices(WORDS, k=chars // 8) + rng.choices(CODE, k=chars // 40)
        rng.shuffle(toks)
        raw = " ".join(toks)
        self.enc = json.dumps(raw, ensure_ascii=False)[1:-1]
        self.n = len(self.enc)
        self.rng = rng

    def take(self, n: int) -> str:
        """JSON-encoded string content of about n characters."""
        if n <= 0:
            return ""
        parts = []
        enc, rng = self.enc, self.rng
        while n > 0:
            k = min(n, self.n - 64)
            o = enc.find(" ", rng.randrange(0, self.n - k)) + 1
            s = enc[o:o + k]
            tail = len(s) - len(s.rstrip("\\"))
            if tail % 2:
                s = s[:-1]
            parts.append(s)
            n -= k
        return "".join(parts)

    def sentence(self, lo: int, hi: int) -> str:
        rng = self.rng
        return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi))).capitalize()


# ----------------------------------------------------------------------- templates

class Template:
    """A fixture record turned into literal pieces and slots.

    Slots: ("v", name) a value from the render context (JSON text), ("f", n) a filler
    of the record's original string length n (times a scale), ("x",) a fresh uuid,
    ("h",) a fresh 64-hex hash.
    """

    def __init__(self, kind: str, rec: dict, overrides):
        self.kind = kind
        self.has_uuid = "uuid" in rec
        rec = json.loads(json.dumps(rec))
        overrides(rec)
        self._slots: list[tuple] = []
        rec = self._walk(rec, None)
        text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        bits = re.split(r'"@@(\d+)@@"', text)
        self.head = bits[0]
        self.parts = [(self._slots[int(bits[i])], bits[i + 1]) for i in range(1, len(bits), 2)]
        self.filler_chars = sum(s[1] for s, _ in self.parts if s[0] == "f")

    def _slot(self, slot) -> str:
        self._slots.append(slot)
        return f"@@{len(self._slots) - 1}@@"

    def _walk(self, obj, key):
        if isinstance(obj, dict):
            return {k: self._walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(v, key) for v in obj]
        if key == "parentUuid" and obj is None:
            return self._slot(("v", "P"))
        if not isinstance(obj, str):
            return obj
        if obj.startswith("@@=") and obj.endswith("@@"):
            return self._slot(("v", obj[3:-2]))
        if key == "uuid":
            return self._slot(("v", "U"))
        if key in ("parentUuid", "leafUuid", "sourceToolAssistantUUID"):
            return self._slot(("v", "P"))
        if key in ("sessionId", "session_id"):
            return self._slot(("v", "SID"))
        if key == "agentId":
            return self._slot(("v", "AGENT"))
        if key == "timestamp":
            return self._slot(("v", "TS"))
        if key in ("cwd", "workingDirectory"):
            return self._slot(("v", "CWD"))
        if key == "gitBranch":
            return self._slot(("v", "BR"))
        if key == "version" and obj[:2] in ("2.", "1."):
            return self._slot(("v", "VER"))
        if UUID_RE.match(obj):
            return self._slot(("x",))
        if HEX64_RE.match(obj):
            return self._slot(("h",))
        if len(obj) > 300:
            return self._slot(("f", len(obj)))
        return obj


def _set(path: list, value):
    def apply(rec):
        obj = rec
        for p in path[:-1]:
            if isinstance(obj, dict) and p not in obj:
                return
            obj = obj[p]
        if isinstance(obj, dict) and path[-1] not in obj:
            return
        obj[path[-1]] = value
    return apply


def _all(*fns):
    def apply(rec):
        for f in fns:
            f(rec)
    return apply


def record_kind(r: dict) -> str:
    t = r.get("type")
    if t == "user":
        c = r.get("message", {}).get("content")
        if isinstance(c, str):
            return "user:meta" if r.get("isMeta") else "user:prompt"
        if isinstance(c, list) and c and c[0].get("type") == "tool_result":
            return "user:tool_result"
        return "user:blocks"
    if t == "assistant":
        return "assistant:" + r["message"]["content"][0]["type"]
    if t == "attachment":
        return "attachment:" + r["attachment"]["type"]
    if t == "queue-operation":
        return "queue-operation:" + r.get("operation", "")
    return t


USAGE = [_set(["message", "usage", "input_tokens"], "@@=IT@@"),
         _set(["message", "usage", "output_tokens"], "@@=OT@@"),
         _set(["message", "usage", "cache_creation_input_tokens"], "@@=CC@@"),
         _set(["message", "usage", "cache_read_input_tokens"], "@@=CR@@"),
         _set(["message", "usage", "cache_creation", "ephemeral_5m_input_tokens"], "@@=CC@@")]

OVERRIDES = {
    "user:prompt": _all(_set(["message", "content"], "@@=PROMPT@@")),
    "user:meta": _all(_set(["message", "content"], "@@=PROMPT@@")),
    "user:tool_result": _all(
        lambda r: r["message"]["content"][0].__setitem__("content", "@@=TOOLOUT@@"),
        lambda r: r["message"]["content"][0].__setitem__("tool_use_id", "@@=TOOLID@@"),
        _set(["toolUseResult", "stdout"], "@@=TOOLOUT@@")),
    "assistant:text": _all(_set(["message", "id"], "@@=MID@@"), _set(["requestId"], "@@=RID@@"),
                           _set(["message", "model"], "@@=MODEL@@"), _set(["requestedModel"], "@@=MODEL@@"),
                           _set(["requestRef"], "@@=REQ@@"),
                           lambda r: r["message"]["content"][0].__setitem__("text", "@@=TEXT@@"), *USAGE),
    "assistant:tool_use": _all(_set(["message", "id"], "@@=MID@@"), _set(["requestId"], "@@=RID@@"),
                               _set(["message", "model"], "@@=MODEL@@"), _set(["requestedModel"], "@@=MODEL@@"),
                               _set(["requestRef"], "@@=REQ@@"),
                               lambda r: r["message"]["content"][0].__setitem__("id", "@@=TOOLID@@"),
                               lambda r: r["message"]["content"][0].__setitem__("input", "@@=TOOLINPUT@@"),
                               *USAGE),
    "api-request": _set(["id"], "@@=REQ@@"),
    "last-prompt": _set(["lastPrompt"], "@@=PROMPT@@"),
    "ai-title": _set(["aiTitle"], "@@=TITLE@@"),
    "summary": _set(["summary"], "@@=TITLE@@"),
    "queue-operation:enqueue": _set(["content"], "@@=PROMPT@@"),
    "file-history-snapshot": _all(_set(["messageId"], "@@=NEXTU@@"),
                                  _set(["snapshot", "messageId"], "@@=NEXTU@@"),
                                  _set(["snapshot", "trackedFileBackups"], "@@=BACKUPS@@")),
    "system": _all(_set(["durationMs"], "@@=DUR@@"), _set(["messageCount"], "@@=MC@@")),
}


def load_templates(files: list[Path]) -> dict[str, Template]:
    out: dict[str, Template] = {}
    for f in files:
        for line in f.read_bytes().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            kind = record_kind(r)
            if kind in out:
                continue
            out[kind] = Template(kind, r, OVERRIDES.get(kind, lambda rec: None))
    return out


class Templates:
    def __init__(self):
        v330 = FIXTURES / "claude-code-2.1.330" / "projects"
        sub = FIXTURES / "claude-code-2.1.330-subagents" / "projects"
        v29 = FIXTURES / "claude-code-2.1.29" / "projects"
        self.t330 = load_templates(
            [v330 / "-home-alice-code-api-server" / "82ae9970-35a9-4565-a76c-3565290ad217.jsonl",
             v330 / "-home-alice-code-api-server" / "79a3bb72-fd99-4d90-8588-85c351d684ad.jsonl"])
        self.t330_first_attachments = []  # attachment kinds of a first turn, in CLI order, with sizes
        seen_prompt = False
        for line in (v330 / "-home-alice-code-api-server" / "82ae9970-35a9-4565-a76c-3565290ad217.jsonl").read_bytes().splitlines():
            r = json.loads(line)
            if r.get("type") == "user":
                if seen_prompt:
                    break
                seen_prompt = True
            elif r.get("type") == "attachment" and seen_prompt:
                if record_kind(r) in self.t330_first_attachments:
                    break
                self.t330_first_attachments.append(record_kind(r))
        # the first prompt_snapshot is small, the one after the reply is the big one (62 KB)
        big = [json.loads(l) for l in (v330 / "-home-alice-code-api-server" / "82ae9970-35a9-4565-a76c-3565290ad217.jsonl").read_bytes().splitlines()]
        snaps = [r for r in big if r.get("type") == "attachment" and r["attachment"]["type"] == "prompt_snapshot"]
        self.big_snapshot = Template("attachment:prompt_snapshot", max(snaps, key=lambda r: len(json.dumps(r))), lambda r: None)
        self.tsub = load_templates(sorted(sub.glob("*/*/subagents/*.jsonl")))
        self.sub_meta = json.loads(next(sub.glob("*/*/subagents/*.meta.json")).read_text())
        self.t29 = load_templates(sorted(v29.glob("*/*.jsonl")))
        self.registry = json.loads((FIXTURES / "claude-code-2.1.330" / "sessions" / "27246.json").read_text())


# ----------------------------------------------------------------------- generator

MODELS_NEW = ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"]
MODELS_OLD = ["claude-sonnet-4-5-20250929", "claude-opus-4-5-20251101"]
VERSIONS_NEW = ["2.1.330", "2.1.330", "2.1.301", "2.1.250", "2.1.180"]
VERSIONS_OLD = ["2.1.29", "2.1.29", "2.1.20", "2.1.15"]
USERS = ["alice", "bob", "carol", "dev", "sam"]
BRANCHES = ["main", "main", "main", "develop", "feature/search", "fix/login-timeout", "release/2.4"]
META_PROMPTS = ["<local-command-caveat>Caveat: The messages below were generated by the user while running local commands. DO NOT respond to these messages or otherwise consider them in your response unless the user explicitly asks you to.</local-command-caveat>",
                "<command-name>/clear</command-name>\n            <command-message>clear</command-message>\n            <command-args></command-args>",
                "<local-command-stdout></local-command-stdout>"]


class Ctx:
    """Render state of one transcript."""

    def __init__(self, gen: "Generator", sid: str, cwd: str, branch: str, version: str, t0: float,
                 agent: str | None = None):
        self.g = gen
        self.v = {"SID": jstr(sid), "CWD": jstr(cwd), "BR": jstr(branch), "VER": jstr(version),
                  "P": "null", "AGENT": jstr(agent or ""), "BACKUPS": "{}"}
        self.t = t0
        self.size = 0
        self.lines: list[str] = []
        self.next_u: str | None = None
        self.prompts = 0
        self.msg_ids = 0
        self.first_prompt: str | None = None
        self.t_first: float | None = None

    def emit(self, tpl: Template, scale: float = 1.0, dt: float = 0.05, **vals):
        g = self.g
        self.t += dt * (0.2 + g.rng.random())
        v = self.v
        v["TS"] = '"' + iso(self.t) + '"'
        if self.t_first is None:
            self.t_first = self.t
        if tpl.has_uuid:
            if self.next_u is not None:
                v["U"], self.next_u = '"' + self.next_u + '"', None
            else:
                v["U"] = '"' + g.uuid() + '"'
        v.update(vals)
        out = [tpl.head]
        take, rng = g.pool.take, g.rng
        for slot, lit in tpl.parts:
            k = slot[0]
            if k == "v":
                out.append(v[slot[1]])
            elif k == "f":
                out.append('"' + take(max(1, int(slot[1] * scale))) + '"')
            elif k == "x":
                out.append('"' + g.uuid() + '"')
            else:
                out.append('"%064x"' % rng.getrandbits(256))
            out.append(lit)
        out.append("\n")
        line = "".join(out)
        self.lines.append(line)
        self.size += len(line)
        if tpl.has_uuid:
            v["P"] = v["U"]
        return line

    def raw(self, obj: dict):
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        self.lines.append(line)
        self.size += len(line)

    def flush(self, fh):
        if self.lines:
            fh.write("".join(self.lines).encode("utf-8", "surrogatepass"))
            self.lines = []


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.pool = TextPool(self.rng)
        self.tpl = Templates()

    # -- small values --------------------------------------------------------
    def uuid(self) -> str:
        return str(_uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def b62(self, n: int) -> str:
        return "".join(self.rng.choices(B62, k=n))

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(self.rng.gauss(0, sigma))

    def prompt(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.08:  # a long, multi-line prompt
            return self.pool.sentence(40, 120) + "\n\n" + self.pool.sentence(20, 60)
        return self.pool.sentence(4, 28)

    def usage_vals(self) -> dict:
        rng = self.rng
        return {"IT": str(rng.randint(1, 40)), "OT": str(rng.randint(20, 3000)),
                "CC": str(rng.randint(0, 20000)), "CR": str(rng.randint(0, 200000))}

    # -- 2.1.330 -------------------------------------------------------------
    def write_session_330(self, path: Path, sid: str, cwd: str, branch: str, version: str, t0: float,
                          target: int, interactive: bool, big_lines: int = 0, renamed: str | None = None,
                          fh=None) -> dict:
        T, rng, pool = self.tpl.t330, self.rng, self.pool
        c = Ctx(self, sid, cwd, branch, version, t0)
        model = rng.choice(MODELS_NEW)
        own = fh is None
        fh = fh or open(path, "wb")
        s1 = min(1.0, target / 150_000) * math.exp(rng.gauss(0, 0.25))
        title = pool.sentence(3, 7)

        def meta_block():
            c.emit(T["mode"], dt=0.001)
            c.emit(T["permission-mode"], dt=0.001)
            c.emit(T["atis-latch"], dt=0.001)
            if interactive and c.prompts:
                c.emit(T["ai-title"], dt=0.001, TITLE=jstr(title))
            if renamed:
                c.raw({"type": "custom-title", "customTitle": renamed, "sessionId": sid})
                c.raw({"type": "agent-name", "agentName": renamed, "sessionId": sid})

        def prompt_rec(text: str):
            if not interactive:
                c.emit(T["queue-operation:enqueue"], PROMPT=jstr(text))
                c.emit(T["queue-operation:dequeue"])
            else:
                c.next_u = self.uuid()
                c.emit(T["file-history-snapshot"], NEXTU='"' + c.next_u + '"')
            c.emit(T["user:prompt"], dt=2.0, PROMPT=jstr(text))
            c.prompts += 1
            if c.first_prompt is None:
                c.first_prompt = text

        def api_call(text: bool, tool: bool, turn_scale: float):
            mid = "msg_01" + self.b62(22)
            req = '"' + self.uuid() + '"'
            c.emit(T["api-request"], REQ=req)
            vals = dict(MID=jstr(mid), RID=jstr("req_011C" + self.b62(20)), MODEL=jstr(model), REQ=req,
                        **self.usage_vals())
            c.msg_ids += 1
            if text:
                c.emit(T["assistant:text"], dt=3.0, TEXT=jstr(pool.sentence(8, 90)), **vals)
            if tool:
                tid = jstr("toolu_01" + self.b62(22))
                c.emit(T["assistant:tool_use"], dt=0.5, TOOLID=tid,
                       TOOLINPUT=json.dumps({"command": pool.sentence(2, 8), "description": pool.sentence(3, 9)}),
                       **vals)
                n = int(self.lognormal(1500, 1.3) * turn_scale)
                c.emit(T["user:tool_result"], dt=1.0, TOOLID=tid, TOOLOUT='"' + pool.take(n) + '"')

        # -- first turn: the CLI's full context dump (most of a one-prompt session's 145 KB)
        if interactive:
            meta_block()
        if rng.random() < 0.1:
            c.emit(T["user:prompt"], PROMPT=jstr(rng.choice(META_PROMPTS)))
        prompt_rec(self.prompt())
        for kind in self.tpl.t330_first_attachments:
            c.emit(T[kind], scale=s1, dt=0.001)
        c.emit(T["api-request-shape"], scale=s1, dt=0.01)
        c.emit(T["api-request-blob"], scale=s1, dt=0.001)
        c.emit(T["api-request-blob"], scale=s1, dt=0.001)
        c.emit(T["last-prompt"], PROMPT=jstr(c.first_prompt[:1000]), dt=0.001)
        if interactive:
            meta_block()
        api_call(True, rng.random() < 0.5, s1)
        c.emit(self.tpl.big_snapshot, scale=s1 * 0.5, dt=0.01)
        if interactive:
            c.emit(T["system"], DUR=str(rng.randint(2000, 90000)), MC=str(c.prompts * 4))
        c.flush(fh)

        # -- more turns until the target size
        turn = 0
        big_at = sorted(rng.uniform(0.2, 0.95) for _ in range(big_lines))
        while c.size < target:
            turn += 1
            ts = min(4.0, 0.3 + turn / 40) * math.exp(rng.gauss(0, 0.5))
            text = self.prompt()
            prompt_rec(text)
            if rng.random() < 0.5:
                c.emit(T["attachment:date"], dt=0.001)
            if rng.random() < 0.2:
                c.emit(T["attachment:deferred_tools_delta"], scale=ts, dt=0.001)
            if turn % 5 == 0:
                c.emit(T["api-request-shape"], scale=ts * 0.8, dt=0.01)
            c.emit(T["api-request-blob"], scale=ts, dt=0.001)
            ntools = min(int(rng.expovariate(0.5)), 25)
            if ntools:
                c.emit(T["tools-used"], dt=0.001)
            for _ in range(ntools):
                api_call(rng.random() < 0.4, True, ts)
                if big_at and c.size >= big_at[0] * target:
                    big_at.pop(0)
                    self._big_line(c, T, rng)
            api_call(True, False, ts)
            c.emit(T["attachment:prompt_snapshot"], scale=ts * 6, dt=0.01)
            if interactive:
                c.emit(T["system"], DUR=str(rng.randint(2000, 300000)), MC=str(c.prompts * 4))
            if turn % 5 == 0:
                c.emit(T["last-prompt"], PROMPT=jstr(text[:1000]), dt=0.001)
                if interactive:
                    meta_block()
            if turn % 25 == 0:
                c.emit(T["cost-state"], dt=0.001)
            if len(c.lines) > 2000 or sum(map(len, c.lines[-50:])) > 4_000_000:
                c.flush(fh)
            c.t += self.lognormal(40, 1.2)  # think time between prompts
        for tpl in (T["cost-state"], T["last-prompt"], T["cost-state"]):
            c.emit(tpl, PROMPT=jstr((text if turn else c.first_prompt)[:1000]), dt=0.01)
        c.flush(fh)
        if own:
            fh.close()
        return {"bytes": c.size, "t_first": c.t_first, "t_last": c.t, "prompts": c.prompts,
                "first_prompt": c.first_prompt, "messages": c.prompts + c.msg_ids}

    def _big_line(self, c: Ctx, T, rng):
        """A multi-MB line: a huge tool result, or a file-history snapshot tracking many files."""
        n = int(rng.uniform(1.0, 6.0) * 1_000_000)
        if rng.random() < 0.7:
            tid = jstr("toolu_01" + self.b62(22))
            c.emit(T["assistant:tool_use"], dt=0.5, TOOLID=tid, MID=jstr("msg_01" + self.b62(22)),
                   RID=jstr("req_011C" + self.b62(20)), MODEL=jstr("claude-opus-5-5"), REQ='"' + self.uuid() + '"',
                   TOOLINPUT=json.dumps({"command": "cat build/output.log"}), **self.usage_vals())
            c.emit(T["user:tool_result"], dt=1.0, TOOLID=tid, TOOLOUT='"' + self.pool.take(n // 2) + '"')
        else:
            per = 260
            items = []
            for i in range(n // per):
                items.append('"src/module_%d/file_%d.py":{"backupFileName":"%s@v%d","version":%d,"backupTime":"%s"}'
                             % (i // 50, i, "%016x" % rng.getrandbits(64), i % 9 + 1, i % 9 + 1, iso(c.t)))
            c.emit(T["file-history-snapshot"], NEXTU='"' + self.uuid() + '"', BACKUPS="{" + ",".join(items) + "}")
            c.v["BACKUPS"] = "{}"

    # -- 2.1.29 --------------------------------------------------------------
    def write_session_29(self, path: Path, sid: str, cwd: str, branch: str, version: str, t0: float,
                         target: int) -> dict:
        T, rng, pool = self.tpl.t29, self.rng, self.pool
        c = Ctx(self, sid, cwd, branch, version, t0)
        model = rng.choice(MODELS_OLD)
        with open(path, "wb") as fh:
            if target <= 0:
                return {"bytes": 0, "t_first": None, "t_last": t0, "prompts": 0, "first_prompt": None,
                        "messages": 0}
            text = None
            while c.size < target:
                text = self.prompt()
                if rng.random() < 0.5:
                    c.emit(T["queue-operation:dequeue"])
                else:
                    c.next_u = self.uuid()
                    c.emit(T["file-history-snapshot"], NEXTU='"' + c.next_u + '"')
                c.emit(T["user:prompt"], dt=2.0, PROMPT=jstr(text))
                c.prompts += 1
                c.first_prompt = c.first_prompt or text
                for _ in range(min(int(rng.expovariate(0.6)), 15)):
                    vals = dict(MID=jstr("msg_01" + self.b62(22)), RID=jstr("req_011C" + self.b62(20)),
                                MODEL=jstr(model), REQ='""', **self.usage_vals())
                    c.msg_ids += 1
                    if rng.random() < 0.5:
                        c.emit(T["assistant:text"], dt=3.0, TEXT=jstr(pool.sentence(8, 60)), **vals)
                    tid = jstr("toolu_01" + self.b62(22))
                    c.emit(T["assistant:tool_use"], dt=0.5, TOOLID=tid,
                           TOOLINPUT=json.dumps({"command": pool.sentence(2, 8)}), **vals)
                    c.emit(T["user:tool_result"], dt=1.0, TOOLID=tid,
                           TOOLOUT='"' + pool.take(int(self.lognormal(1200, 1.4))) + '"')
                c.msg_ids += 1
                c.emit(T["assistant:text"], dt=3.0, TEXT=jstr(pool.sentence(8, 120)),
                       MID=jstr("msg_01" + self.b62(22)), RID=jstr("req_011C" + self.b62(20)),
                       MODEL=jstr(model), REQ='""', **self.usage_vals())
                c.t += self.lognormal(40, 1.2)
                if len(c.lines) > 2000:
                    c.flush(fh)
            summary = None
            if rng.random() < 0.5:
                summary = pool.sentence(3, 6)
                c.emit(T["summary"], TITLE=jstr(summary), dt=3600)
            c.flush(fh)
        return {"bytes": c.size, "t_first": c.t_first, "t_last": c.t, "prompts": c.prompts,
                "first_prompt": c.first_prompt, "messages": c.prompts + c.msg_ids, "summary": summary}

    # -- subagents -----------------------------------------------------------
    def write_subagent(self, path: Path, parent_sid: str, agent_id: str, cwd: str, branch: str, version: str,
                       t0: float, target: int) -> int:
        T, rng, pool = self.tpl.tsub, self.rng, self.pool
        c = Ctx(self, parent_sid, cwd, branch, version, t0, agent=agent_id)
        with open(path, "wb") as fh:
            c.emit(T["user:prompt"], PROMPT=jstr(pool.sentence(6, 30)))
            scale = min(1.0, target / 40_000)
            for kind in ("attachment:deferred_tools_delta", "attachment:environment", "attachment:model",
                         "attachment:skill_listing", "attachment:session_context", "attachment:date",
                         "attachment:remote_session_change", "attachment:prompt_snapshot"):
                if kind in T:
                    c.emit(T[kind], scale=scale, dt=0.001)
            c.emit(T["api-request-shape"], scale=scale)
            while c.size < target:
                req = '"' + self.uuid() + '"'
                c.emit(T["api-request-blob"], scale=scale)
                c.emit(T["api-request"], REQ=req)
                vals = dict(MID=jstr("msg_mock" + self.b62(20)), RID=jstr("req_011C" + self.b62(20)),
                            MODEL=jstr("claude-opus-5-5"), REQ=req, **self.usage_vals())
                c.emit(T["assistant:text"], dt=2.0, TEXT=jstr(pool.sentence(5, 40)), **vals)
                tid = jstr("toolu_mock" + self.b62(14))
                c.emit(T["assistant:tool_use"], TOOLID=tid, TOOLINPUT=json.dumps({"command": "ls -la"}), **vals)
                c.emit(T["user:tool_result"], TOOLID=tid,
                       TOOLOUT='"' + pool.take(int(self.lognormal(2000, 1.2))) + '"')
                c.emit(T["attachment:prompt_snapshot"], scale=scale * 2)
                if len(c.lines) > 2000:
                    c.flush(fh)
            c.flush(fh)
        return c.size


# ------------------------------------------------------------------------ corpus

def make_project_cwds(rng: random.Random, n: int) -> list[str]:
    names = ("api server webapp tools infra docs cli sdk mobile backend frontend data etl ml "
             "billing auth search gateway worker scheduler notebooks site blog dotfiles game engine "
             "parser compiler monitor agent bot scraper").split()
    cwds, seen = [], set()
    while len(cwds) < n:
        user = rng.choice(USERS)
        base = f"/home/{user}/" + rng.choice(["code", "src", "work", "projects", "git"])
        name = "-".join(rng.sample(names, rng.randint(1, 3)))
        r = rng.random()
        if r < 0.05:
            name = name.replace("-", "_") + ".v2"
        elif r < 0.08:
            name = name + " (copy)"
        if len(cwds) in (7, 31):  # a path longer than 200 characters: hashed key
            name = "/".join(["very-deeply-nested-directory-level-%d" % i for i in range(7)]) + "/" + name
        cwd = f"{base}/{name}"
        if cwd in seen:
            continue
        seen.add(cwd)
        cwds.append(cwd)
    return cwds


def draw_size(g: Generator, total: int) -> tuple[str, int]:
    """(kind, bytes) of one main transcript: long-tailed (lognormal, capped at 15% of the corpus)."""
    rng = g.rng
    cap = max(400_000, int(total * 0.15))
    r = rng.random()
    if r < 0.12:
        size = int(min(cap / 10, g.lognormal(12_000, 1.3)))
        return "v29", (0 if rng.random() < 0.08 else size)
    return ("v330i" if r < 0.6 else "v330p"), int(min(cap, max(20_000, g.lognormal(120_000, 1.7))))


def make_corpus(out: Path, total: int, seed: int = 1, log=print) -> dict:
    t_start = time.monotonic()
    out = Path(out)
    g = Generator(seed)
    rng = g.rng
    projects_dir = out / "projects"
    projects_dir.mkdir(parents=True, exist_ok=True)
    (out / "sessions").mkdir(exist_ok=True)
    est_sessions = max(3, int(total / 480_000))
    n_proj = max(40, min(200, round(est_sessions / 10)))
    if total < 20_000_000:
        n_proj = max(3, min(n_proj, est_sessions // 3))
    cwds = make_project_cwds(rng, n_proj)
    weights = [1 / (i + 1) ** 0.9 for i in range(n_proj)]
    legacy_projects = set(rng.sample(range(n_proj), max(1, n_proj // 4)))
    t_base = 1_788_000_000.0  # 2026-08-29, fixed for determinism
    span = 80 * 86400

    sessions = []
    index: dict[int, list] = {}
    sub_files = sub_bytes = 0
    history = []
    written = 0
    i = -1
    while written < total:
        i += 1
        kind, size = draw_size(g, total)
        size = min(size, max(20_000, int((total - written) * 1.02))) if kind != "v29" else size
        if kind == "v29":
            pi = rng.choice(sorted(legacy_projects))
        else:
            pi = rng.choices(range(n_proj), weights)[0]
        cwd = cwds[pi]
        key = project_key(cwd)
        pdir = projects_dir / key
        pdir.mkdir(exist_ok=True)
        sid = g.uuid()
        path = pdir / f"{sid}.jsonl"
        branch = rng.choice(BRANCHES)
        t0 = t_base + rng.random() * span
        if kind == "v29":
            version = rng.choice(VERSIONS_OLD)
            info = g.write_session_29(path, sid, cwd, branch, version, t0, size)
            written += info["bytes"]
            index.setdefault(pi, []).append((sid, path, info, branch, cwd))
        else:
            version = rng.choice(VERSIONS_NEW)
            big = 0
            if size > 3_000_000 and rng.random() < 0.4:
                big = 1 + (size > 50_000_000)
            renamed = g.pool.sentence(2, 4) if rng.random() < 0.05 else None
            info = g.write_session_330(path, sid, cwd, branch, version, t0, size, kind == "v330i", big, renamed)
            if renamed and rng.random() < 0.5:
                (pdir / sid).mkdir(exist_ok=True)
                (pdir / sid / "custom-title.json").write_text(json.dumps({"customTitle": renamed}))
            if rng.random() < 0.1:
                d = pdir / sid / "tool-results"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"toolu_01{g.b62(22)}.txt").write_text(g.pool.take(int(g.lognormal(30_000, 1))))
            written += info["bytes"]
            if info["bytes"] > 100_000 and rng.random() < 0.2 and written < total:
                k = max(1, min(12, int(g.lognormal(3, 0.8))))
                per_sub_session = info["bytes"] * rng.uniform(0.1, 0.5)
                for j in range(k):
                    agent = "a" + "%017x" % rng.getrandbits(68)
                    sd = pdir / sid / "subagents"
                    if rng.random() < 0.1:
                        wf = sd / "workflows" / ("wf-" + "%012x" % rng.getrandbits(48))
                        wf.mkdir(parents=True, exist_ok=True)
                        (wf / "journal.jsonl").write_text(json.dumps({"type": "start", "agentId": agent}) + "\n")
                        sd = wf
                    sd.mkdir(parents=True, exist_ok=True)
                    n = g.write_subagent(sd / f"agent-{agent}.jsonl", sid, agent, cwd, branch, version,
                                         info["t_first"] or t0, int(per_sub_session / k))
                    meta = dict(g.tpl.sub_meta, toolUseId="toolu_mock" + g.b62(14),
                                description=g.pool.sentence(2, 5))
                    (sd / f"agent-{agent}.meta.json").write_text(json.dumps(meta))
                    sub_files += 1
                    sub_bytes += n
                    written += n
        t_last = info["t_last"]
        os.utime(path, (t_last, t_last))
        sessions.append({"id": sid, "path": str(path.relative_to(out)), "bytes": info["bytes"],
                         "version": version, "kind": kind, "project": key, "cwd": cwd})
        if info["first_prompt"]:
            history.append({"display": info["first_prompt"][:200], "pastedContents": {},
                            "timestamp": int((info["t_first"] or t0) * 1000), "project": cwd, "sessionId": sid})
        if (i + 1) % 500 == 0 and log:
            log(f"  {i + 1} sessions, {written / 1e6:.0f}/{total / 1e6:.0f} MB")

    # legacy top-level sidechains (2.0.x) in a few legacy projects, naming their parent in sessionId
    for pi in sorted(index)[:5]:
        sid = index[pi][0][0]
        agent = "%08x" % rng.getrandbits(32)
        p = projects_dir / project_key(cwds[pi]) / f"agent-{agent}.jsonl"
        sub_bytes += g.write_subagent(p, sid, agent, cwds[pi], "main", "2.0.76", t_base, 8000)
        sub_files += 1

    # sessions-index.json: written by 2.1.29 at process start, so it lags: the newest session
    # of the project is missing, and an entry for a since-deleted transcript can remain.
    for pi, entries in index.items():
        entries.sort(key=lambda e: e[2]["t_last"])
        listed = entries[:-1]
        rows = []
        for sid, path, info, branch, cwd in listed:
            rows.append({"sessionId": sid, "fullPath": str(path.resolve()),
                         "fileMtime": int(info["t_last"] * 1000),
                         "firstPrompt": (info["first_prompt"] or "No prompt")[:200],
                         **({"summary": info["summary"]} if info.get("summary") else {}),
                         "messageCount": info["messages"],
                         "created": iso(info["t_first"] or info["t_last"]), "modified": iso(info["t_last"]),
                         "gitBranch": branch, "projectPath": cwd, "isSidechain": False})
        if rng.random() < 0.3:
            gone = g.uuid()
            rows.append({"sessionId": gone, "fullPath": str((projects_dir / project_key(cwds[pi]) / f"{gone}.jsonl").resolve()),
                         "fileMtime": int(t_base * 1000), "firstPrompt": "an old deleted session",
                         "messageCount": 2, "created": iso(t_base), "modified": iso(t_base),
                         "gitBranch": "main", "projectPath": cwds[pi], "isSidechain": False})
        (projects_dir / project_key(cwds[pi]) / "sessions-index.json").write_text(
            json.dumps({"version": 1, "entries": rows, "originalPath": cwds[pi]}, indent=2))

    # per-project memory, stale registry files (crashed processes: dead pids), a secret to skip
    for pi in range(0, n_proj, 9):
        m = projects_dir / project_key(cwds[pi]) / "memory"
        m.mkdir(parents=True, exist_ok=True)
        (m / "MEMORY.md").write_text("# Memory\n\n- " + g.pool.sentence(5, 20) + "\n")
    reg = g.tpl.registry
    for k in range(3):
        s = sessions[k * len(sessions) // 3]
        pid = 4_190_000 + k  # above any pid this machine hands out (pid_max 4194304), so dead
        data = dict(reg, pid=pid, sessionId=s["id"], cwd=s["cwd"], procStart="1", status="idle",
                    messagingSocketPath=f"/tmp/cc-socks/{pid}.sock")
        (out / "sessions" / f"{pid}.json").write_text(json.dumps(data))
    (out / "sessions" / "4190000.0badc0ffee.key").write_text("bench-not-a-real-secret\n")
    history.sort(key=lambda h: h["timestamp"])
    with open(out / "history.jsonl", "w") as fh:
        for h in history[-2000:]:
            fh.write(json.dumps(h) + "\n")

    main_bytes = sum(s["bytes"] for s in sessions)
    manifest = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "requested_bytes": total,
        "main_transcripts": len(sessions), "main_bytes": main_bytes,
        "subagent_transcripts": sub_files, "subagent_bytes": sub_bytes,
        "transcript_bytes": main_bytes + sub_bytes, "projects": n_proj,
        "legacy_sessions": sum(1 for s in sessions if s["kind"] == "v29"),
        "largest_transcript": max(s["bytes"] for s in sessions),
        "generate_seconds": round(time.monotonic() - t_start, 2),
        "sessions": sessions,
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def load_manifest(out: Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def ensure_corpus(out: Path, total: int, seed: int = 1, log=print) -> dict:
    """Reuse OUT if it holds this exact corpus, else (re)generate it."""
    m = load_manifest(out)
    if m and m.get("generator_version") == GENERATOR_VERSION and m.get("seed") == seed \
            and m.get("requested_bytes") == total and (Path(out) / "projects").is_dir():
        return m
    if Path(out).exists():
        import shutil
        shutil.rmtree(out)
    if log:
        log(f"generating {total / 1e6:.0f} MB corpus in {out} ...")
    return make_corpus(out, total, seed, log=log)


# ---------------------------------------------------------------- helpers for benches

def write_single_session(path: Path, target: int, seed: int = 7, cwd: str = "/home/alice/code/bench",
                         session_id: str | None = None) -> dict:
    """One 2.1.330 transcript of about target bytes (e.g. the 1 MB / 200 MB files of incremental.py)."""
    g = Generator(seed)
    sid = session_id or Path(path).stem
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    big = 1 if target > 20_000_000 else 0
    return g.write_session_330(Path(path), sid, cwd, "main", "2.1.330", time.time() - 86400, target, True, big)


def turn_bytes(session_id: str, cwd: str, prompt: str, *, parent: str | None = None,
               version: str = "2.1.330", model: str = "claude-opus-5-5") -> bytes:
    """A user prompt and its assistant reply as one flush, the fields as the CLI writes them."""
    now = time.time()
    u1, u2 = str(_uuid.uuid4()), str(_uuid.uuid4())
    common = {"userType": "external", "entrypoint": "cli", "cwd": cwd, "sessionId": session_id,
              "version": version, "gitBranch": "main"}
    user = {"parentUuid": parent, "isSidechain": False, "promptId": str(_uuid.uuid4()), "type": "user",
            "message": {"role": "user", "content": prompt}, "uuid": u1, "timestamp": iso(now),
            "permissionMode": "auto", "origin": {"kind": "human"}, "promptSource": "typed", **common}
    mid = "msg_01" + _uuid.uuid4().hex[:22]
    asst = {"parentUuid": u1, "isSidechain": False,
            "message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": "Done: " + prompt[:100]}],
                        "stop_reason": "end_turn", "stop_sequence": None,
                        "usage": {"input_tokens": 9, "cache_creation_input_tokens": 120,
                                  "cache_read_input_tokens": 14000, "output_tokens": 77,
                                  "service_tier": "standard"}},
            "requestId": "req_011C" + _uuid.uuid4().hex[:20], "type": "assistant", "uuid": u2,
            "timestamp": iso(now + 0.001), "session_id": session_id, **common}
    return (json.dumps(user, separators=(",", ":")) + "\n" + json.dumps(asst, separators=(",", ":")) + "\n").encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--size", type=parse_size, default=parse_size("100MB"), help="e.g. 100MB, 1GB")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="delete OUT_DIR first if it exists")
    a = ap.parse_args(argv)
    if a.out_dir.exists() and any(a.out_dir.iterdir()):
        if not a.force and load_manifest(a.out_dir) is None:
            ap.error(f"{a.out_dir} exists and is not a corpus made by this tool (use --force)")
        import shutil
        shutil.rmtree(a.out_dir)
    t = time.monotonic()
    m = make_corpus(a.out_dir, a.size, a.seed)
    dt = time.monotonic() - t
    print(f"{m['main_transcripts']} main transcripts ({m['legacy_sessions']} 2.1.29-style) in {m['projects']} projects, "
          f"{m['subagent_transcripts']} subagent transcripts; {m['transcript_bytes'] / 1e6:.1f} MB of JSONL "
          f"(largest {m['largest_transcript'] / 1e6:.1f} MB) in {dt:.1f}s ({m['transcript_bytes'] / 1e6 / dt:.0f} MB/s)")


if __name__ == "__main__":
    sys.exit(main())
