#!/usr/bin/env python3
"""All four agents: cold start and change latency per source, on a history with Claude Code, Codex,
OpenCode and Gemini CLI sessions.

    .venv/bin/python bench/agents.py [--quick] [--reps N] [--repeat N] [--seed N]

The history (bench/agents_corpus.py, regenerated under $HELM_BENCH_DIR, default /tmp/helm-bench):
full: Claude Code 50 MB (make_corpus.py), 500 Codex rollouts (25 of 1-5 MB), an OpenCode database of
1,000 sessions x 20 messages (WAL), 500 Gemini chats in 20 projects; quick: a few dozen of each.

Cold start, three kinds (as bench/cold_start.py): ``cold`` (HELM_CACHE_DIR=""), ``cold+cache`` (an
empty cache directory, saved by the server when it stops) and ``warm`` (that directory again). Per
start: time from process start to /healthz ``scan: complete``, to GET /api/sessions/all listing every
expected session, and per source to /metrics counting all of its sessions; the sessions /all lists
per source; peak RSS of the worker (psutil, sampled every 50 ms, and its VmHWM) and of the tree.

Change latency, per source, on one server (debounce 500 ms) with one stream client
(/api/sessions/stream) in this process: N changes (full 30, quick 3), each written the way that agent
writes, spaced more than a debounce window apart. Latency: from the end of the change's last write
(OpenCode: the COMMIT returned in the writer process; CLOCK_MONOTONIC is system-wide) to the arrival
(stamped right after recv) of the first ``session-updated`` event whose session is the target and
carries the change's unique marker.

  claude-code  one O_APPEND write of a user prompt + assistant reply (make_corpus.turn_bytes);
  codex        a resumed turn (task_started ... task_complete, 10 lines from the real 0.171 records),
               one write() per line on a descriptor held open with O_APPEND, as Codex does;
  opencode     a user message + its text part + the session touch and their 3 event rows, one
               transaction, from a separate writer process (its own sqlite3 connection);
  gemini       a user record, then {"$set": {"lastUpdated"}}, each appended with open/append/close.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from common import (BENCH, WORK, Server, append_turn, fmt, pct, raise_nofile, table, tree_hwm, tree_rss,
                    write_results)
from agents_corpus import codex_turn_lines, make_agents_corpus
from make_corpus import turn_bytes
from sseload import LoadClient

try:
    import psutil
except ImportError:  # the bench extra has it; without it the worker's RSS comes from /proc
    psutil = None

DEBOUNCE_MS = 500
SOURCES = ["claude-code", "codex", "opencode", "gemini"]
STREAM = "/api/sessions/stream"
HOST = "bench"
METRIC_RE = re.compile(r'^helm_sessions_by_source\{source="([^"]+)"\} ([0-9.e+]+)$', re.M)


def server_env(m: dict) -> dict:
    d = m["dirs"]
    return {"HELM_CODEX_DIR": d["codex"], "HELM_OPENCODE_DB": d["opencode_db"], "HELM_GEMINI_DIR": d["gemini"],
            "HELM_HOST_NAME": HOST}


# ------------------------------------------------------------------ worker RSS

def worker_pid(srv: Server, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and srv.alive():
        w = srv.worker_pids()
        if w:
            return w[0]
        time.sleep(0.01)
    return None


def rss_of(pid: int) -> int:
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0
    return tree_rss(pid)


def hwm_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class WorkerSampler(threading.Thread):
    """Peak RSS of the worker (found as the arbiter's child) and of the whole tree, every interval."""

    def __init__(self, srv: Server, interval: float = 0.05):
        super().__init__(daemon=True)
        self.srv, self.interval = srv, interval
        self.worker = None
        self.peak_worker = self.peak_tree = 0
        self.samples = 0
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            w = self.srv.worker_pids()  # again each time: the worker is forked after the scan processes
            if w and w[0] != self.worker:
                self.worker, self.peak_worker = w[0], 0
            if self.worker is not None:
                self.peak_worker = max(self.peak_worker, rss_of(self.worker))
            self.peak_tree = max(self.peak_tree, tree_rss(self.srv.pid))
            self.samples += 1
            self._stop_ev.wait(self.interval)

    def stop(self) -> dict:
        self._stop_ev.set()
        self.join(2)
        return {"peak_worker_rss_mb": round(self.peak_worker / 1e6, 1),
                "worker_vmhwm_mb": round(hwm_of(self.worker) / 1e6, 1) if self.worker else None,
                "peak_tree_rss_mb": round(self.peak_tree / 1e6, 1), "rss_samples": self.samples}


# ------------------------------------------------------------------ cold start

def by_source(sessions: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in sessions:
        out.setdefault(s.get("source"), set()).add(s.get("id"))
    return out


def metrics_counts(srv: Server) -> dict[str, float] | None:
    try:
        status, body = srv.request("GET", "/metrics", timeout=2.0)
    except OSError:
        return None
    if status != 200:
        return None
    return {k: float(v) for k, v in METRIC_RE.findall(body.decode())}


def one_start(m: dict, cache_dir: str, timeout: float) -> dict:
    expected = {src: set(ids) for src, ids in m["ids"].items()}
    total = sum(len(v) for v in expected.values())
    srv = Server(Path(m["dirs"]["claude"]), cache_dir=cache_dir, debounce_ms=DEBOUNCE_MS, env=server_env(m))
    t0 = time.monotonic()
    srv.start()
    sampler = WorkerSampler(srv)
    sampler.start()
    res = {"cache_dir": cache_dir or None, "expected": {k: len(v) for k, v in expected.items()}}
    t_listen = t_scan = t_all = None
    t_src: dict[str, float] = {}
    served = None
    try:
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not srv.alive():
                raise RuntimeError(f"server exited: {srv.log_tail()}")
            h = srv.health()
            now = time.monotonic()
            if h is None:
                time.sleep(0.02)
                continue
            t_listen = t_listen or now
            if len(t_src) < len(SOURCES):
                counts = metrics_counts(srv) or {}
                now = time.monotonic()
                for src in SOURCES:
                    if src not in t_src and counts.get(src, 0) >= len(expected[src]):
                        t_src[src] = now
            if h.get("scan") == "complete" and t_scan is None:
                t_scan = now
            if h.get("scan") == "complete" or h.get("sessions", 0) >= total:
                status, body = srv.request("GET", "/api/sessions/all", timeout=60)
                if status == 200:
                    got = by_source(json.loads(body))
                    served = {src: len(got.get(src, ())) for src in got}
                    missing = {src: len(ids - got.get(src, set())) for src, ids in expected.items()}
                    if not any(missing.values()):
                        t_all = time.monotonic()
                        res["all_bytes"] = len(body)
                        for src in SOURCES:  # /all is the authority: a source is listed by now at the latest
                            t_src.setdefault(src, t_all)
                        break
                    res["missing"] = missing
            time.sleep(0.05)
        time.sleep(0.3)  # let the sampler see the settled state
        res.pop("missing", None) if t_all else None
        rel = lambda t: None if t is None else round(t - t0, 3)
        res.update({"t_listen_s": rel(t_listen), "t_scan_complete_s": rel(t_scan), "t_all_s": rel(t_all),
                    "t_source_s": {src: rel(t_src.get(src)) for src in SOURCES}, "served": served,
                    "tree_vmhwm_sum_mb": round(tree_hwm(srv.pid) / 1e6, 1)})
    finally:
        res.update(sampler.stop())
        t_stop = time.monotonic()
        srv.stop()
        res["stop_s"] = round(time.monotonic() - t_stop, 2)
    return res


# ------------------------------------------------------------------ changes

class OpenCodeWriter:
    """bench/agents_corpus.py --opencode-writer: a separate process with its own sqlite3 connection."""

    def __init__(self, db: str):
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "agents_corpus.py"), "--opencode-writer", db],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline()).get("ready")

    def user(self, sid: str, text: str) -> float:
        self.proc.stdin.write(json.dumps({"op": "user", "sid": sid, "text": text}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["t"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Changes:
    """One change per call, written as each agent writes it; returns time.monotonic() at its end."""

    def __init__(self, m: dict):
        self.t = m["targets"]
        self.codex_fd = os.open(self.t["codex"]["path"], os.O_WRONLY | os.O_APPEND)  # Codex keeps it open
        self.codex_ordinal = self.t["codex"]["lines"]
        self.oc = OpenCodeWriter(m["dirs"]["opencode_db"])
        self.n = 0

    def write(self, src: str, marker: str) -> float:
        self.n += 1
        prompt = f"{marker} check the change latency of this prompt"
        t = self.t[src]
        if src == "claude-code":
            return append_turn(Path(t["path"]), turn_bytes(t["id"], t["cwd"], prompt))
        if src == "codex":
            lines = codex_turn_lines(t, prompt, self.codex_ordinal, self.n)
            self.codex_ordinal += len(lines)
            for line in lines:
                os.write(self.codex_fd, line)
            return time.monotonic()
        if src == "opencode":
            return self.oc.user(t["id"], prompt)
        if src == "gemini":
            from tests.support.gemini import append
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
            append(Path(t["path"]), {"id": str(uuid.uuid4()), "timestamp": ts, "type": "user",
                                     "content": [{"text": prompt}]})
            append(Path(t["path"]), {"$set": {"lastUpdated": ts}})
            return time.monotonic()
        raise ValueError(src)

    def close(self):
        os.close(self.codex_fd)
        self.oc.close()


def find_update(conn, src: str, sid: str, marker: str) -> tuple[float | None, str | None]:
    """Arrival of the first session-updated event for (src, sid) carrying marker; else the first event type seen."""
    first_type = None
    mk = marker.encode()
    for etype, _eid, payload, t in list(conn.kept):
        if mk not in payload:
            continue
        first_type = first_type or etype
        if etype != "session-updated":
            continue
        for s in json.loads(payload).get("sessions", []):
            if s.get("source") == src and s.get("id") == sid and marker in json.dumps(s):
                return t, etype
    return None, first_type


def run_changes(lc: LoadClient, changes: Changes, m: dict, src: str, reps: int, spacing: float,
                timeout: float = 5.0) -> dict:
    conn = lc.open_conns()[0]
    sid = m["targets"][src]["id"]
    lat, missed, other_types = [], 0, {}
    for i in range(reps):
        marker = f"bench-{uuid.uuid4().hex[:12]}"
        conn.kept.clear()
        lc.add_watch(marker)
        t0 = changes.write(src, marker)
        lc.wait_watch(marker, timeout, min_clients=1)
        arrival, etype = find_update(conn, src, sid, marker)
        deadline = t0 + timeout
        while arrival is None and time.monotonic() < deadline:
            time.sleep(0.01)
            arrival, etype = find_update(conn, src, sid, marker)
        lc.watch.pop(marker.encode(), None)
        if arrival is None:
            missed += 1
            if etype:
                other_types[etype] = other_types.get(etype, 0) + 1
        else:
            lat.append(arrival - t0)
        time.sleep(max(0.0, t0 + spacing + random.random() * 0.1 - time.monotonic()))
    r = {"source": src, "n": len(lat), "missed": missed, "p50_ms": ms(pct(lat, 50)), "p95_ms": ms(pct(lat, 95)),
         "max_ms": ms(max(lat)) if lat else None, "min_ms": ms(min(lat)) if lat else None,
         "within_debounce": bool(lat) and not missed and max(lat) * 1000 <= DEBOUNCE_MS,
         "samples_ms": [ms(x) for x in lat]}
    if other_types:
        r["missed_first_event_types"] = other_types
    return r


def ms(x):
    return None if x is None else round(x * 1000, 1)


def live_phase(m: dict, reps: int, timeout: float) -> dict:
    srv = Server(Path(m["dirs"]["claude"]), cache_dir="", debounce_ms=DEBOUNCE_MS, env=server_env(m))
    srv.start()
    sampler = WorkerSampler(srv)
    sampler.start()
    spacing = DEBOUNCE_MS / 1000 + 0.25
    out = {"debounce_ms": DEBOUNCE_MS, "spacing_s": spacing, "reps": reps, "sources": {}}
    lc = changes = None
    try:
        srv.wait_ready(timeout, sessions=sum(m["counts"].values()))
        lc = LoadClient(port=srv.port, path=STREAM, keep_events=True).start_thread()
        lc.add(1)
        if not lc.wait_all_init(60):
            raise RuntimeError(f"stream client not ready: {lc.summary()}")
        time.sleep(1.0)
        changes = Changes(m)
        for src in SOURCES:
            r = run_changes(lc, changes, m, src, reps, spacing)
            out["sources"][src] = r
            print(f"  {src}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, "
                  f"missed {r['missed']}", file=sys.stderr)
            time.sleep(spacing)
    finally:
        if changes:
            changes.close()
        if lc:
            lc.stop()
        out.update(sampler.stop())
        srv.stop()
    return out


# ------------------------------------------------------------------ RESULTS.md

CHANGES = {"claude-code": "append a prompt + reply (1 O_APPEND write)",
           "codex": "append a turn (10 lines, 1 write each, fd kept open)",
           "opencode": "message + part + session touch, 3 event rows: 1 transaction, other process",
           "gemini": "append a user record, then $set lastUpdated"}

# What profiling found, kept with the numbers it explains.
FINDINGS: dict[str, str] = {
    "opencode": (
        "the first run of this benchmark measured p50 248 ms, p95 462 ms, max 467 ms (504.6 ms in a quick "
        "run): the server's own reads of the database were file events to it when it runs as root. Opening "
        "the database makes SQLite open `opencode.db-wal`; as root its unix VFS fchown()s a WAL it opens to "
        "the database's owner, an IN_ATTRIB event even when nothing changed, which watchdog reports as "
        "FileModifiedEvent. Every look scheduled the next one a window later (a key is processed at most "
        "once per window), for ever, and a real commit waited for that tick. Fixed twice over: a look whose "
        "database and WAL are unchanged (inode, size, mtime) reads nothing "
        "(`OpenCodeSource._look`, helm_monitor/sources/opencode/source.py), and a run that changed nothing "
        "no longer uses up its key's window (`Monitor._process`, helm_monitor/live/monitor.py). Measured with "
        "both: the numbers above."),
}


def markdown(res: dict) -> str:
    """The "All four agents" section of bench/RESULTS.md (run_all.py uses it too)."""
    m, c, lv = res["machine"], res["corpus"], res["live"]
    cs = res["cold_start"]
    when = res.get("when", "")[:10]
    lines = ["## All four agents", "",
             f"`bench/agents.py` on {when}"
             + (f", server commit {res['commit']}" if res.get("commit") else "")
             + f". Machine: {m['nproc']} CPU ({m['cpu']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}, "
             f"Python {m['python']}, gunicorn {m['gunicorn']}, gevent {m['gevent']}, watchdog {m['watchdog']}. "
             f"One history with every agent (`bench/agents_corpus.py`, seed {res.get('seed', 1)}; generated in "
             f"{c['generate_seconds']['total']} s), debounce {lv['debounce_ms']} ms.", ""]
    d = c["details"]
    corpus_rows = [
        ["claude-code", c["counts"]["claude-code"], round(c["bytes"]["claude-code"] / 1e6, 1),
         f"make_corpus.py: {d['claude-code']['projects']} projects, {d['claude-code']['subagent_transcripts']} "
         f"subagent transcripts, largest {d['claude-code']['largest_transcript'] / 1e6:.1f} MB"],
        ["codex", c["counts"]["codex"], round(c["bytes"]["codex"] / 1e6, 1),
         f"rollouts from the real 0.171 records, {d['codex']['rollouts_1MB_plus']} of 1-5 MB "
         f"(largest {d['codex']['largest'] / 1e6:.1f} MB), session_index.jsonl"],
        ["opencode", c["counts"]["opencode"], round(c["bytes"]["opencode"] / 1e6, 1),
         f"opencode.db (real 1.18.33 schema, WAL), {d['opencode']['messages_each']} messages per session, "
         "event rows for every change"],
        ["gemini", c["counts"]["gemini"], round(c["bytes"]["gemini"] / 1e6, 1),
         f"{d['gemini']['chats']} chat files in {d['gemini']['projects']} project slugs"],
    ]
    lines += [table(["source", "sessions", "MB", "corpus"], corpus_rows), ""]
    kinds = [k for k in ("cold", "cold+cache", "warm") if k in cs]
    names = {"cold": "cold (no cache)", "cold+cache": "cold, writing the cache", "warm": "warm cache (restart)"}
    rows = []
    for k in kinds:
        x = cs[k]
        rows.append([names[k], x["runs"], x["t_scan_complete_s"], x["t_all_s"],
                     *(x["t_source_s"].get(src) for src in SOURCES), x["peak_worker_rss_mb"], x["worker_vmhwm_mb"],
                     x["peak_tree_rss_mb"]])
    lines += ["Start (median of the runs; seconds from process start; per source: until /metrics counts all of "
              "its sessions, at the latest when /all lists them):", "",
              table(["start", "runs", "scan complete s", "/all lists all s", *(f"{s} s" for s in SOURCES),
                     "worker peak RSS MB", "worker VmHWM MB", "tree peak RSS MB"], rows), ""]
    served = (cs.get("cold") or {}).get("served") or {}
    cache_files = res.get("cache_files") or next((r.get("cache_files") for r in res.get("starts", [])
                                                  if r.get("cache_files")), None)
    nocache = [src for src in SOURCES if not any(f.startswith(f"state-{src}-") for f in cache_files or [])]
    rows = []
    for src in SOURCES:
        r = lv["sources"].get(src)
        if not r:
            continue
        rows.append([src, CHANGES[src], served.get(src), r["n"], r["p50_ms"], r["p95_ms"], r["max_ms"], r["missed"],
                     "met" if r["within_debounce"] else "**missed**"])
    lines += [f"Change latency ({lv['reps']} changes per source, {lv['spacing_s']:.2f}-{lv['spacing_s'] + 0.1:.2f} s "
              "apart; ms from the end of the change's last write to the session-updated event carrying it at a "
              "/api/sessions/stream client):", "",
              table(["source", "change", "listed", "n", "p50 ms", "p95 ms", "max ms", "missed",
                     f"max <= {lv['debounce_ms']} ms"], rows), "",
              f"- Worker peak RSS while the changes ran: {lv['peak_worker_rss_mb']} MB (VmHWM {lv['worker_vmhwm_mb']} MB).",
              "- The warm cache: the server saves parse state on stop; "
              + (f"after the first cached run the cache held {', '.join(cache_files)}"
                 + (f" (no saved state for {', '.join(nocache)}: read in full at every start)" if nocache else "")
                 if cache_files else "the cache directory stayed empty") + ".",
              "- Cold starts (no cache) varied between runs: scan complete "
              + "-".join(f"{f(r['t_scan_complete_s'] for r in res['starts'] if r['kind'] == 'cold'):.1f}" for f in (min, max))
              + " s (2-CPU machine shared with other work); the table gives medians, bench/results/agents.json "
              "every run."
              if not res.get("quick") else "- Quick run: a small history, not comparable."]
    for src, text in res.get("findings", {}).items():
        lines.append(f"- {src}: {text}")
    return "\n".join(lines) + "\n"


def update_results_md(section: str, path: Path = BENCH / "RESULTS.md") -> None:
    """Replace (or add, before the Soak section) the "All four agents" section."""
    text = path.read_text() if path.exists() else "# helm-monitor benchmark results\n"
    i = text.find("\n## All four agents")
    if i >= 0:
        j = text.find("\n## ", i + 1)
        before, after = text[:i + 1], (text[j + 1:] if j >= 0 else "")
    else:
        k = text.find("\n## Soak")
        before, after = (text, "") if k < 0 else (text[:k + 1], text[k + 1:])
    path.write_text(before.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n" + ("\n" + after if after else ""))


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=str(BENCH.parent), capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------ main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small corpus and 3 changes per source (a smoke test)")
    ap.add_argument("--reps", type=int, help="changes per source (default 30; quick 3)")
    ap.add_argument("--repeat", type=int, help="cold starts without cache and warm starts (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--write", type=Path, help="also put the section into this file (e.g. bench/RESULTS.md)")
    ap.add_argument("--from-results", action="store_true", help="no run: the section from bench/results/agents.json")
    a = ap.parse_args(argv)
    if a.from_results:
        res = json.loads((BENCH / "results" / f"agents{'-quick' if a.quick else ''}.json").read_text())
        res["findings"] = {**res.get("findings", {}), **FINDINGS}
        md = markdown(res)
        print(md)
        if a.write:
            update_results_md(md, a.write)
        return 0
    raise_nofile()
    reps = a.reps or (3 if a.quick else 30)
    repeat = a.repeat or (1 if a.quick else 3)
    corpus = WORK / ("agents-corpus-quick" if a.quick else "agents-corpus")
    print(f"generating the four-agent corpus in {corpus} ...", file=sys.stderr)
    m = make_agents_corpus(corpus, a.quick, a.seed, log=lambda s: print("  " + s, file=sys.stderr))
    out = {"quick": a.quick, "seed": a.seed, "commit": commit(), "corpus": {k: m[k] for k in ("counts", "bytes", "details", "sizes", "generate_seconds")},
           "targets": {src: {k: v for k, v in t.items() if k in ("id", "bytes")} for src, t in m["targets"].items()},
           "starts": []}

    cache = WORK / ("agents-cache-quick" if a.quick else "agents-cache")
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    plan = [("cold", "")] * repeat + [("cold+cache", str(cache))] + [("warm", str(cache))] * repeat
    for kind, cdir in plan:
        r = one_start(m, cdir, a.timeout)
        r["kind"] = kind
        if kind == "cold+cache":
            r["cache_files"] = out["cache_files"] = sorted(p.name for p in cache.iterdir())
        out["starts"].append(r)
        print(f"  {kind}: scan {r['t_scan_complete_s']} s, all {r['t_all_s']} s, worker peak "
              f"{r['peak_worker_rss_mb']} MB", file=sys.stderr)

    summary = {}
    for kind in ("cold", "cold+cache", "warm"):
        rs = sorted((r for r in out["starts"] if r["kind"] == kind and r.get("t_all_s") is not None),
                    key=lambda r: r["t_all_s"])
        if rs:
            med = rs[len(rs) // 2]
            summary[kind] = {"t_scan_complete_s": med["t_scan_complete_s"], "t_all_s": med["t_all_s"],
                             "t_source_s": med["t_source_s"], "served": med["served"],
                             "peak_worker_rss_mb": max(r["peak_worker_rss_mb"] for r in rs),
                             "worker_vmhwm_mb": max(r["worker_vmhwm_mb"] or 0 for r in rs),
                             "peak_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in rs), "runs": len(rs)}
    out["cold_start"] = summary

    print("change latency ...", file=sys.stderr)
    out["live"] = live_phase(m, reps, a.timeout)
    out["within_debounce"] = {src: r["within_debounce"] for src, r in out["live"]["sources"].items()}

    rows = []
    for src in SOURCES:
        lv = out["live"]["sources"].get(src, {})
        rows.append([src, m["counts"][src], round(m["bytes"][src] / 1e6, 1),
                     *(summary.get(k, {}).get("t_source_s", {}).get(src) for k in ("cold", "warm")),
                     (summary.get("cold", {}).get("served") or {}).get(src),
                     lv.get("p50_ms"), lv.get("p95_ms"), lv.get("max_ms"), lv.get("missed"),
                     "yes" if lv.get("within_debounce") else "NO"])
    print(table(["source", "sessions", "MB", "cold s", "warm s", "served", "p50 ms", "p95 ms", "max ms", "missed",
                 "<= 500 ms"], rows))
    for kind, s in summary.items():
        print(f"{kind}: scan complete {fmt(s['t_scan_complete_s'])} s, all listed {fmt(s['t_all_s'])} s, "
              f"worker peak RSS {s['peak_worker_rss_mb']} MB (VmHWM {s['worker_vmhwm_mb']} MB)")
    print(f"live: worker peak RSS {out['live']['peak_worker_rss_mb']} MB")
    out["findings"] = {src: FINDINGS[src] for src in FINDINGS if src in out["within_debounce"]}
    out["euid"] = os.geteuid()
    p = write_results("agents", out)
    print(f"\nwrote {p}")
    if a.write:
        update_results_md(markdown(json.loads(p.read_text())), a.write)
    return 0 if all(s.get("n") for s in out["live"]["sources"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
