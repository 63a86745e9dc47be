#!/usr/bin/env python3
"""The page at scale (issue 11): a real helm-monitor with 5,000 and 20,000 Claude Code sessions,
the page in headless Chromium, measured through the page's stable hooks (SPEC section 7) only.

    .venv/bin/python bench/page_scale.py [--quick] [--sizes 5000,20000] [--reps 10] [--label baseline]
                                         [--git-rev REV] [--wait-quiet S [--quiet-cores 0.25]]
                                         [--no-profile] [--keep]

The baseline (the page of commit a2c69dc, which renders every row):
    .venv/bin/python bench/page_scale.py --git-rev a2c69dc --label baseline --wait-quiet 1200
``--git-rev`` serves that commit's server and page from a ``git archive`` export, so the working tree
can be mid-edit. Other jobs on the machine only add time: the CPU they use meanwhile is recorded per
phase (``others_cores_*``) and a warning printed when it is high; ``--wait-quiet`` waits for a quiet
moment before each size.

Per size N: bench/page_corpus.py writes N small 2.1.330 sessions over ~200 projects (the newest
N/250, 3 to 40, are live: a registry file naming a ``sleep`` process this script started);
``python -m helm_monitor`` (gunicorn + one gevent worker, debounce 500 ms as the other latency
benches, no parse cache: HELM_CACHE_DIR="", HELM_SOURCES=claude-code) serves it; when /healthz says
the scan is complete and /api/sessions/all lists N sessions, one fresh Chromium context (1280x800,
``--enable-precise-memory-info``) opens the page. Everything is timed in the page
(``performance.now()``, whose zero is the navigation start) by an init script that runs before the
page's own scripts; "next frame" below means a ``setTimeout(0)`` posted from the first
``requestAnimationFrame`` after the event, i.e. after that frame's style, layout and paint work.

- first row: the first ``[data-session-key]`` element in the DOM (a MutationObserver on the
  document), and the next frame after it.
- complete list: the first moment a row is in the DOM, ``#total-count`` (or any ``[data-total]``)
  shows the number N (any thousands separator) and ``[data-active-count]`` shows the number of
  live sessions; and the next frame. It never counts row elements, so a windowed list works.
- memory, after the complete list and 1 s of quiet: ``performance.memory.usedJSHeapSize``, CDP
  ``Performance.getMetrics`` (JSHeapUsedSize, Nodes, JSEventListeners, Layout/RecalcStyle/Script/
  TaskDuration since navigation) before and after ``HeapProfiler.collectGarbage``; the elements in
  the document; the ``[data-session-key]`` rows in the DOM.
- keystroke to filtered list: 24 keystrokes typed into ``input[type="search"]`` (``fix``, ``auth``,
  ``sock``, ``#4821``, ``zqx`` char by char, each query cleared with Ctrl+A then Backspace, the
  Backspace measured too). From the keydown's ``event.timeStamp`` to the later of the next frame
  after the input event's handlers and the next frame after the last mutation of the page (the
  ``time`` elements, the connection status and the search box itself ignored), once the page has
  been quiet for 400 ms (a debounced search is measured with its debounce). After each keystroke
  the displayed rows (``getClientRects``) are checked against the corpus: every row shown must
  match the query (a superset haystack: title, project, every prompt, branch, model, id, agent).
- file change to row updated: a user prompt + assistant reply appended in one O_APPEND write
  (make_corpus.turn_bytes, as in bench/live_latency.py) to the session of the top row; from the
  writer's ``time.time()`` at the end of the write to that row's ``[data-field="messageCount"]``
  changing (MutationObserver, ``performance.timeOrigin + performance.now()``; the page's clock
  offset to ``time.time()`` is measured by round trips and removed), and to the next frame.
  Reps spaced a debounce window + 250 ms + jitter apart.
- new session to row shown: a new live session (a ``sleep`` process and its registry file
  written first, one debounce window earlier, as Claude Code does at start) whose transcript is
  then created in one write; from the end of that write to its ``[data-session-key]`` row in the
  DOM (by key suffix ``:<id>``), and the next frame; whether the row is in the viewport.
- where the time goes: long tasks (PerformanceObserver ``longtask``) per phase, CDP Performance
  metric deltas per phase, and (unless --no-profile) a V8 CPU profile (CDP Profiler, 200 us
  sampling) of a second page load and of 5 keystrokes in a fresh context, after the measured
  runs: the functions with the most self time.

Writes bench/results/page_scale.json (--quick: page_scale-quick.json; --label X: page_scale-X.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from common import CLK_TCK, REPO, WORK, Server, pct, table, tree_pids, write_results
from make_corpus import turn_bytes
from page_corpus import STATUSES, PageCorpus, make_page_corpus, registry_entry, write_registry

CHROMIUM = os.environ.get("HELM_CHROMIUM", "/usr/lib/chromium/chromium")
# as tests/browser/conftest.py, plus precise heap numbers
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-precise-memory-info"]
VIEWPORT = {"width": 1280, "height": 800}
DEBOUNCE_MS = 500
QUIET_MS = 400
# (query typed char by char; each is cleared afterwards with Ctrl+A, Backspace)
QUERIES = ["fix", "auth", "sock", "#4821", "zqx"]
TARGETS = {"complete_ms": 1000, "keystroke_p95_ms": 50, "update_p50_ms": 100, "new_session_p50_ms": 100}
SERVER_ENV = {"HELM_SOURCES": "claude-code"}

INIT_SCRIPT = r"""
(() => {
  if (window.top !== window || window.__pageScale) return;
  const E = window.__pageScaleExpect || {};
  const ps = window.__pageScale = {
    firstRowDom: null, firstRowFrame: null, completeDom: null, completeFrame: null, completeText: null,
    longTasks: [], key: null, watch: null,
  };
  const afterFrame = (fn) => requestAnimationFrame(() => setTimeout(() => fn(performance.now()), 0));
  ps.afterFrame = afterFrame;
  // "5,000", "5 000", "5.000", "5000": every number in a text
  const numbers = ps.numbers = (text) => {
    const out = [];
    for (const m of String(text || '').matchAll(/\d{1,3}(?:[,.\u00a0\u202f' ]\d{3})+(?!\d)|\d+/g)) {
      out.push(Number(m[0].replace(/\D/g, '')));
    }
    return out;
  };
  ps.totalText = () => {
    const parts = [];
    const t = document.getElementById('total-count');
    if (t) parts.push(t.textContent);
    for (const el of document.querySelectorAll('[data-total]')) parts.push(el.getAttribute('data-total'));
    return parts.join(' | ');
  };
  ps.activeText = () => {
    const a = document.querySelector('[data-active-count]');
    return a ? a.textContent : null;
  };
  const complete = () => {
    if (!document.querySelector('[data-session-key]')) return false;
    if (E.total == null || !numbers(ps.totalText()).includes(E.total)) return false;
    if (E.active != null && !numbers(ps.activeText()).includes(E.active)) return false;
    return true;
  };
  const load = new MutationObserver(() => {
    const now = performance.now();
    if (ps.firstRowDom === null && document.querySelector('[data-session-key]')) {
      ps.firstRowDom = now;
      afterFrame((t) => { ps.firstRowFrame = t; });
    }
    if (ps.firstRowDom !== null && ps.completeDom === null && complete()) {
      ps.completeDom = now;
      ps.completeText = ps.totalText();
      afterFrame((t) => { ps.completeFrame = t; });
      load.disconnect();
    }
  });
  load.observe(document, { childList: true, subtree: true, characterData: true, attributes: true,
    attributeFilter: ['data-total', 'data-session-key', 'hidden'] });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) ps.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) { /* no long task timing */ }

  // -- keystrokes ------------------------------------------------------------------
  const ignored = (node) => {
    const el = node.nodeType === 1 ? node : node.parentElement;
    if (!el) return true;
    if (el.matches('input[type="search"]')) return true;
    return Boolean(el.closest('time, [data-connection-status], head'));
  };
  const stampKey = (e) => {
    const k = ps.key;
    if (k && k.tKey === null) k.tKey = e.timeStamp;
  };
  document.addEventListener('keydown', stampKey, true);
  document.addEventListener('beforeinput', stampKey, true);
  document.addEventListener('input', (e) => {
    const k = ps.key;
    if (!k) return;
    stampKey(e);
    k.inputs += 1;
    k.pendingInput += 1;
    afterFrame((t) => { k.tInputFrame = Math.max(k.tInputFrame || 0, t); k.pendingInput -= 1; });
  }, true);
  ps.armKey = () => {
    const k = ps.key = { tKey: null, tInputFrame: null, tLastMut: null, tMutFrame: null, muts: 0, inputs: 0,
      pendingInput: 0, pendingMut: 0 };
    k.mo = new MutationObserver((records) => {
      for (const r of records) {
        if (ignored(r.target)) continue;
        k.tLastMut = performance.now();
        k.muts += records.length;
        k.pendingMut += 1;
        afterFrame((t) => { k.tMutFrame = Math.max(k.tMutFrame || 0, t); k.pendingMut -= 1; });
        break;
      }
    });
    k.mo.observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true });
  };
  ps.keySettled = (quiet) => {
    const k = ps.key;
    if (!k || k.tKey === null || k.tInputFrame === null || k.pendingInput || k.pendingMut) return false;
    return performance.now() - Math.max(k.tKey, k.tInputFrame, k.tLastMut || 0, k.tMutFrame || 0) > quiet;
  };
  ps.keyResult = () => {
    const k = ps.key;
    k.mo.disconnect();
    ps.key = null;
    const end = Math.max(k.tInputFrame, k.tMutFrame || 0);
    return { frame_ms: end - k.tKey, dom_ms: (k.tLastMut === null ? null : k.tLastMut - k.tKey),
      input_frame_ms: k.tInputFrame - k.tKey, mutations: k.muts, inputs: k.inputs, t_key: k.tKey };
  };
  // the rows displayed now (in the DOM and rendered), in document order
  ps.shownRows = (limit) => {
    const rows = document.querySelectorAll('[data-session-key]');
    const keys = [];
    let shown = 0;
    let inView = 0;
    for (const r of rows) {
      const rects = r.getClientRects();
      if (!rects.length) continue;
      shown += 1;
      if (keys.length < limit) keys.push(r.getAttribute('data-session-key'));
      if (rects[0].bottom > 0 && rects[0].top < innerHeight) inView += 1;
    }
    return { in_dom: rows.length, shown, in_view: inView, keys, total_text: ps.totalText() };
  };
  ps.topRow = () => {
    for (const r of document.querySelectorAll('[data-session-key]')) {
      const rects = r.getClientRects();
      if (!rects.length || rects[0].bottom <= 0) continue;
      const f = r.querySelector('[data-field="messageCount"]');
      return { key: r.getAttribute('data-session-key'), id: r.getAttribute('data-session-id'),
        count: f ? numbers(f.textContent)[0] : null, top: rects[0].top };
    }
    return null;
  };

  // -- live changes ------------------------------------------------------------------
  const wall = () => performance.timeOrigin + performance.now();
  ps.wall = wall;
  const watch = (find) => {
    const w = ps.watch = { tDom: null, tFrame: null, value: null, inView: null };
    const check = () => {
      const found = find();
      if (!found) return false;
      w.tDom = wall();
      w.value = found.value === undefined ? null : found.value;
      const rect = found.row.getBoundingClientRect();
      w.inView = rect.bottom > 0 && rect.top < innerHeight;
      afterFrame((t) => { w.tFrame = performance.timeOrigin + t; });
      return true;
    };
    if (check()) return;
    w.mo = new MutationObserver(() => { if (w.tDom === null && check()) w.mo.disconnect(); });
    w.mo.observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true });
  };
  ps.watchCount = (key, before) => watch(() => {
    const row = document.querySelector('[data-session-key="' + CSS.escape(key) + '"]');
    const f = row && row.querySelector('[data-field="messageCount"]');
    const v = f ? numbers(f.textContent)[0] : undefined;
    return v !== undefined && v !== before ? { row, value: v } : null;
  });
  ps.watchNew = (id) => watch(() => {
    const row = document.querySelector('[data-session-key$=":' + CSS.escape(id) + '"], [data-session-id="' +
      CSS.escape(id) + '"]');
    return row ? { row } : null;
  });
  ps.watchDone = () => ps.watch && ps.watch.tFrame !== null;
  ps.watchResult = () => {
    const w = ps.watch;
    if (w && w.mo) w.mo.disconnect();
    ps.watch = null;
    return w ? { t_dom: w.tDom, t_frame: w.tFrame, value: w.value, in_view: w.inView } : null;
  };
})();
"""

METRIC_KEYS = ["JSHeapUsedSize", "JSHeapTotalSize", "Nodes", "Documents", "JSEventListeners", "LayoutCount",
               "RecalcStyleCount", "LayoutDuration", "RecalcStyleDuration", "ScriptDuration", "TaskDuration"]


# ------------------------------------------------------------------ helpers

class AppServer(Server):
    """common.Server, optionally run from another source tree (``--git-rev``: a ``git archive`` export),
    so that the page and server of a commit can be measured while the working tree is being edited."""

    def __init__(self, *args, app_dir: Path | None = None, **kw):
        super().__init__(*args, **kw)
        self.app_dir = app_dir
        if app_dir is not None:
            self.env["PYTHONPATH"] = str(app_dir) + os.pathsep + self.env.get("PYTHONPATH", "")

    def start(self) -> "AppServer":
        if self.app_dir is None:
            return super().start()
        cmd = [sys.executable, "-m", "helm_monitor", "--claude-dir", str(self.claude_dir),
               "--host", "127.0.0.1", "--port", str(self.port), "--debounce-ms", str(self.debounce_ms)]
        self._log = open(self.log_path, "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self.app_dir), start_new_session=True)
        return self


def export_rev(rev: str) -> tuple[Path, str]:
    """``git archive <rev>`` of this repository into $HELM_BENCH_DIR/app-<sha>; returns (dir, sha)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    out = WORK / f"app-{sha[:12]}"
    if not (out / "helm_monitor" / "__main__.py").is_file():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out, sha


def stats(values: list[float]) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "mean_ms": None}
    r = lambda x: round(x, 1)
    return {"n": len(v), "p50_ms": r(pct(v, 50)), "p95_ms": r(pct(v, 95)), "max_ms": r(max(v)),
            "mean_ms": r(statistics.fmean(v))}


def metrics(cdp) -> dict:
    got = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {k: got.get(k) for k in METRIC_KEYS}


def metric_delta(a: dict, b: dict) -> dict:
    out = {}
    for k in ("LayoutCount", "RecalcStyleCount"):
        out[k] = None if a.get(k) is None else int(b[k] - a[k])
    for k in ("LayoutDuration", "RecalcStyleDuration", "ScriptDuration", "TaskDuration"):
        out[k.replace("Duration", "_ms")] = None if a.get(k) is None else round((b[k] - a[k]) * 1000, 1)
    return out


def long_tasks(tasks: list, start: float = 0.0, end: float = float("inf")) -> dict:
    d = [dur for t, dur in tasks if start <= t < end]
    return {"count": len(d), "total_ms": round(sum(d), 1), "max_ms": round(max(d), 1) if d else 0.0}


class OtherLoad:
    """CPU used on this machine by processes outside this benchmark's tree (other jobs distort the numbers)."""

    def __init__(self):
        self.t, self.busy, self.mine = time.monotonic(), self._busy(), self._mine()

    @staticmethod
    def _mine() -> float:
        """utime + stime + the reaped children's, over this process's tree (a renderer that exits counts on)."""
        total = 0
        for p in tree_pids(os.getpid()):
            try:
                with open(f"/proc/{p}/stat") as f:
                    st = f.read()
                v = st[st.rindex(")") + 2:].split()
                total += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
            except (OSError, ValueError, IndexError):
                pass
        return total / CLK_TCK

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait

    def cores(self) -> float:
        dt = time.monotonic() - self.t
        others = (self._busy() - self.busy) - (self._mine() - self.mine)
        return round(max(0.0, others) / dt, 2) if dt > 0 else 0.0


def wait_quiet(max_s: float, log, window_s: float = 10.0, cores: float = 0.25) -> float | None:
    """Wait (at most max_s) for window_s in which other processes use less than ``cores``; returns their use."""
    deadline = time.monotonic() + max_s
    while True:
        o = OtherLoad()
        time.sleep(window_s)
        used = o.cores()
        if used < cores or time.monotonic() > deadline:
            return used
        log(f"    waiting for a quiet machine: other processes use {used} cores")


def proc_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
        return st[st.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return None


class LivePids:
    """``sleep`` processes standing in for live Claude Code processes; only these are killed."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self) -> int:
        p = subprocess.Popen(["sleep", "7200"])
        self.procs.append(p)
        return p.pid

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs.clear()


def haystacks(sessions: list[dict], manifest: dict) -> dict[str, str]:
    """key -> a superset of what the page may search (lower case)."""
    prompts = {s["id"]: s["prompts"] for s in manifest["sessions"]}
    out = {}
    for s in sessions:
        parts = [s.get("title"), s.get("projectPath"), s.get("projectDir"), s.get("firstPrompt"), s.get("lastPrompt"),
                 s.get("gitBranch"), s.get("model"), s.get("id"), s.get("key"), s.get("source"), s.get("host"),
                 "claude", "claude code", *prompts.get(s.get("id"), [])]
        out[s.get("key") or s["id"]] = "\n".join(str(p) for p in parts if p).lower()
    return out


def expected_keys(hay: dict[str, str], query: str) -> set[str]:
    terms = query.lower().split()
    return {k for k, h in hay.items() if all(t in h for t in terms)}


def top_functions(profile: dict, n: int = 15) -> dict:
    """Self and total time per function of a CDP Profiler profile."""
    nodes = {nd["id"]: nd for nd in profile["nodes"]}
    parent = {}
    for nd in profile["nodes"]:
        for c in nd.get("children", []):
            parent[c] = nd["id"]

    def label(nd):
        cf = nd["callFrame"]
        name = cf.get("functionName") or "(anonymous)"
        url = cf.get("url") or ""
        if not url:
            return name
        return f"{name} ({url.rsplit('/', 1)[-1].split('?')[0]}:{cf.get('lineNumber', -1) + 1})"

    labels = {i: label(nd) for i, nd in nodes.items()}
    samples, deltas = profile.get("samples", []), profile.get("timeDeltas", [])
    self_t, total_t, by_file = Counter(), Counter(), Counter()
    for i, sid in enumerate(samples):
        dt = (deltas[i + 1] if i + 1 < len(deltas) else 0) / 1000.0  # us -> ms
        self_t[labels[sid]] += dt
        url = nodes[sid]["callFrame"].get("url") or labels[sid]
        by_file[url.rsplit("/", 1)[-1].split("?")[0] if "/" in url else url] += dt
        seen, x = set(), sid
        while x is not None:
            lb = labels[x]
            if lb not in seen:
                seen.add(lb)
                total_t[lb] += dt
            x = parent.get(x)
    wall_ms = (profile["endTime"] - profile["startTime"]) / 1000.0
    skip = {"(root)", "(idle)"}
    top = [{"function": f, "self_ms": round(t, 1), "total_ms": round(total_t[f], 1)}
           for f, t in self_t.most_common() if f not in skip][:n]
    by_total = [{"function": f, "total_ms": round(t, 1), "self_ms": round(self_t[f], 1)}
                for f, t in total_t.most_common() if f not in skip and f != "(program)"][:n]
    return {"wall_ms": round(wall_ms, 1), "idle_ms": round(self_t.get("(idle)", 0.0), 1),
            "by_file_ms": {k: round(v, 1) for k, v in by_file.most_common(8)}, "top_self": top, "top_total": by_total}


# ------------------------------------------------------------------ the page

class PageRun:
    def __init__(self, browser, srv: Server, expect: dict):
        self.ctx = browser.new_context(viewport=VIEWPORT)
        self.ctx.set_default_timeout(30_000)
        self.ctx.add_init_script(f"window.__pageScaleExpect = {json.dumps(expect)};\n" + INIT_SCRIPT)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console error: {m.text}"))
        self.cdp = self.ctx.new_cdp_session(self.page)
        self.cdp.send("Performance.enable")
        self.url = f"http://127.0.0.1:{srv.port}/"

    def ev(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def load(self, timeout_s: float) -> dict:
        self.page.goto(self.url, wait_until="commit")
        try:
            self.page.wait_for_function("() => window.__pageScale && window.__pageScale.completeFrame !== null",
                                        timeout=timeout_s * 1000, polling=100)
        except Exception as exc:
            seen = self.ev("""() => { const p = window.__pageScale; return p && {expect: window.__pageScaleExpect,
                first_row_dom_ms: p.firstRowDom, total_text: p.totalText(), active_text: p.activeText(),
                rows: document.querySelectorAll('[data-session-key]').length}; }""")
            raise RuntimeError(f"the page never showed the complete list within {timeout_s:.0f} s: {seen}; "
                               f"page errors {self.errors[:5]}") from exc
        ps = self.ev("""() => { const p = window.__pageScale; const nav = performance.getEntriesByType('navigation')[0];
            return {first_row_dom_ms: p.firstRowDom, first_row_ms: p.firstRowFrame, complete_dom_ms: p.completeDom,
                    complete_ms: p.completeFrame, total_text: p.completeText, active_text: p.activeText(),
                    html_response_end_ms: nav ? nav.responseEnd : null,
                    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null}; }""")
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in ps.items()}

    def memory(self) -> dict:
        before = metrics(self.cdp)
        heap = self.ev("() => performance.memory ? performance.memory.usedJSHeapSize : null")
        self.cdp.send("HeapProfiler.collectGarbage")
        time.sleep(0.2)
        after = metrics(self.cdp)
        heap_gc = self.ev("() => performance.memory ? performance.memory.usedJSHeapSize : null")
        dom = self.ev("""() => ({elements: document.getElementsByTagName('*').length,
                                 rows: document.querySelectorAll('[data-session-key]').length})""")
        mb = lambda x: None if x is None else round(x / 1e6, 2)
        return {"js_heap_used_mb": mb(heap), "js_heap_used_after_gc_mb": mb(heap_gc),
                "cdp_js_heap_used_mb": mb(before["JSHeapUsedSize"]),
                "cdp_js_heap_used_after_gc_mb": mb(after["JSHeapUsedSize"]),
                "cdp_js_heap_total_mb": mb(after["JSHeapTotalSize"]), "dom_elements": dom["elements"],
                "dom_nodes": int(after["Nodes"]) if after["Nodes"] is not None else None,
                "dom_nodes_before_gc": int(before["Nodes"]) if before["Nodes"] is not None else None,
                "rows_in_dom": dom["rows"], "js_event_listeners": int(after["JSEventListeners"] or 0)}

    def long_tasks(self) -> list:
        return self.ev("() => window.__pageScale.longTasks")

    def keystroke(self, key: str, *, press: bool = False, timeout_s: float = 60.0) -> dict:
        self.ev("() => window.__pageScale.armKey()")
        if press:
            self.page.keyboard.press(key)
        else:
            self.page.keyboard.type(key)
        self.page.wait_for_function("(q) => window.__pageScale.keySettled(q)", arg=QUIET_MS,
                                    timeout=timeout_s * 1000, polling=50)
        r = self.ev("() => window.__pageScale.keyResult()")
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}

    def shown_rows(self, limit: int = 60) -> dict:
        return self.ev("(n) => window.__pageScale.shownRows(n)", limit)

    def clock_offset(self) -> tuple[float, float]:
        """page wall clock - time.time(), from the round trip with the smallest delay."""
        best = None
        for _ in range(7):
            t0 = time.time()
            tp = self.ev("() => window.__pageScale.wall()") / 1000.0
            t1 = time.time()
            if best is None or t1 - t0 < best[1]:
                best = (tp - (t0 + t1) / 2, t1 - t0)
        return best

    def wait_watch(self, timeout_s: float) -> dict | None:
        try:
            self.page.wait_for_function("() => window.__pageScale.watchDone()", timeout=timeout_s * 1000, polling=20)
        except Exception:  # playwright TimeoutError
            pass
        return self.ev("() => window.__pageScale.watchResult()")

    def close(self):
        self.ctx.close()


def typing_phase(run: PageRun, hay: dict[str, str], log) -> dict:
    run.page.focus('input[type="search"]')
    m0 = metrics(run.cdp)
    t_start = run.ev("() => performance.now()")
    samples = []
    unexpected = 0
    for q in QUERIES:
        for i in range(1, len(q) + 1):
            r = run.keystroke(q[i - 1])
            r.update(query=q[:i], typing=q)
            samples.append(r)
        run.page.keyboard.press("Control+A")
        r = run.keystroke("Backspace", press=True)
        r.update(query="", typing=q, clear=True)
        samples.append(r)
    t_end = run.ev("() => performance.now()")
    m1 = metrics(run.cdp)
    # the checks, one per query state, typed again without timing (getClientRects forces layout)
    checks = []
    for q in QUERIES:
        run.page.fill('input[type="search"]', q)
        run.page.wait_for_timeout(QUIET_MS + 200)
        shown = run.shown_rows(60)
        want = expected_keys(hay, q)
        bad = [k for k in shown["keys"] if k not in want]
        unexpected += len(bad)
        checks.append({"query": q, "expected_at_most": len(want), "shown": shown["shown"], "in_dom": shown["in_dom"],
                       "in_view": shown["in_view"], "total_text": shown["total_text"], "unexpected": bad[:5],
                       "empty_when_none": (shown["shown"] == 0) if not want else None})
    run.page.fill('input[type="search"]', "")
    run.page.wait_for_timeout(QUIET_MS + 200)
    for r in samples:
        want = expected_keys(hay, r["query"]) if r["query"] else set(hay)
        r["expected_at_most"] = len(want)
    lat = [r["frame_ms"] for r in samples]
    out = {"quiet_ms": QUIET_MS, **stats(lat), "dom": stats([r["dom_ms"] for r in samples if r["dom_ms"] is not None]),
           "clear": stats([r["frame_ms"] for r in samples if r.get("clear")]),
           "narrowing": stats([r["frame_ms"] for r in samples if not r.get("clear")]),
           "per_query": {q: [r["frame_ms"] for r in samples if r["typing"] == q] for q in QUERIES},
           "unexpected_rows": unexpected, "checks": checks, "metrics": metric_delta(m0, m1),
           "long_tasks": long_tasks(run.long_tasks(), t_start, t_end), "samples": samples}
    log(f"    keystrokes: p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms, max {out['max_ms']} ms "
        f"(n={out['n']}; unexpected rows {unexpected})")
    return out


def live_phase(run: PageRun, corpus: Path, by_id: dict, pc: PageCorpus, pids: LivePids, reps: int, log) -> dict:
    spacing = DEBOUNCE_MS / 1000 + 0.25
    offset, rtt = run.clock_offset()
    m0 = metrics(run.cdp)
    t_start = run.ev("() => performance.now()")
    top = run.ev("() => window.__pageScale.topRow()")
    if not top:
        raise RuntimeError("no row on screen")
    key = top["key"]
    sid = top.get("id") or key.split(":", 2)[-1]
    target = by_id[sid]
    upd, upd_frame, upd_samples, missed = [], [], [], 0
    for i in range(reps):
        before = run.ev("() => window.__pageScale.topRow()")
        count = before["count"] if before and before["key"] == key else None
        if count is None:
            count = run.ev("""(k) => { const r = document.querySelector('[data-session-key="' + CSS.escape(k) + '"]');
                const f = r && r.querySelector('[data-field="messageCount"]');
                return f ? window.__pageScale.numbers(f.textContent)[0] : null; }""", key)
        run.ev("([k, c]) => window.__pageScale.watchCount(k, c)", [key, count])
        data = turn_bytes(sid, target["cwd"], f"page-scale-{uuid.uuid4().hex[:8]} also check the {i}th edge case")
        fd = os.open(target["path"], os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            t_w = time.time()
        finally:
            os.close(fd)
        w = run.wait_watch(10.0)
        if not w or w["t_dom"] is None:
            missed += 1
        else:
            dom = (w["t_dom"] / 1000 - offset - t_w) * 1000
            frame = (w["t_frame"] / 1000 - offset - t_w) * 1000 if w["t_frame"] else None
            upd.append(dom)
            upd_frame.append(frame)
            upd_samples.append({"dom_ms": round(dom, 1), "frame_ms": None if frame is None else round(frame, 1),
                                "count_before": count, "count_after": w["value"], "in_view": w["in_view"]})
        time.sleep(max(0.0, t_w + spacing + random.random() * 0.1 - time.time()))

    new, new_frame, new_samples, new_missed = [], [], [], 0
    cwd = target["cwd"]
    pdir = Path(target["path"]).parent
    for i in range(reps):
        nid = str(uuid.uuid4())
        pid = pids.start()
        write_registry(corpus, registry_entry(pc.registry_template, pid, nid, cwd, "2.1.330", "busy",
                                              proc_start_time(pid)))
        time.sleep(spacing)  # Claude Code writes its registry file at start, the transcript at the first prompt
        run.ev("(id) => window.__pageScale.watchNew(id)", nid)
        s = pc.session(pdir / f"{nid}.jsonl", nid, cwd, time.time() - 8, None, turns=1, interactive=True,
                       first_prompt=f"page-scale new session {i}: start the websocket reconnect work", touch=False)
        t_w = s["t_written"]
        w = run.wait_watch(10.0)
        if not w or w["t_dom"] is None:
            new_missed += 1
        else:
            dom = (w["t_dom"] / 1000 - offset - t_w) * 1000
            frame = (w["t_frame"] / 1000 - offset - t_w) * 1000 if w["t_frame"] else None
            new.append(dom)
            new_frame.append(frame)
            new_samples.append({"dom_ms": round(dom, 1), "frame_ms": None if frame is None else round(frame, 1),
                                "in_view": w["in_view"]})
        time.sleep(max(0.0, t_w + spacing + random.random() * 0.1 - time.time()))
    t_end = run.ev("() => performance.now()")
    m1 = metrics(run.cdp)
    out = {"debounce_ms": DEBOUNCE_MS, "spacing_s": spacing, "clock_offset_ms": round(offset * 1000, 2),
           "clock_rtt_ms": round(rtt * 1000, 2), "target_key": key, "target_top_px": top.get("top"),
           "update": {**stats(upd_frame), "dom": stats(upd), "missed": missed, "samples": upd_samples,
                      "count_ok": all(s["count_after"] == s["count_before"] + 2 for s in upd_samples if
                                      s["count_before"] is not None and s["count_after"] is not None)},
           "new_session": {**stats(new_frame), "dom": stats(new), "missed": new_missed, "samples": new_samples,
                           "in_view": sum(1 for s in new_samples if s["in_view"])},
           "metrics": metric_delta(m0, m1), "long_tasks": long_tasks(run.long_tasks(), t_start, t_end)}
    log(f"    file change -> row: p50 {out['update']['p50_ms']} ms, p95 {out['update']['p95_ms']} ms "
        f"(missed {missed}); new session -> row: p50 {out['new_session']['p50_ms']} ms, "
        f"p95 {out['new_session']['p95_ms']} ms (missed {new_missed}, in view {out['new_session']['in_view']})")
    return out


def profile_phase(browser, srv: Server, expect: dict, timeout_s: float) -> dict:
    run = PageRun(browser, srv, expect)
    try:
        run.cdp.send("Profiler.enable")
        run.cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        run.cdp.send("Profiler.start")
        load = run.load(timeout_s)
        prof = run.cdp.send("Profiler.stop")["profile"]
        out = {"load": {"complete_ms_with_profiler": load["complete_ms"], **top_functions(prof)}}
        run.page.wait_for_timeout(1000)
        run.page.focus('input[type="search"]')
        run.cdp.send("Profiler.start")
        for k in ("f", "i", "x"):
            run.keystroke(k)
        run.page.keyboard.press("Control+A")
        run.keystroke("Backspace", press=True)
        run.keystroke("a")
        prof = run.cdp.send("Profiler.stop")["profile"]
        out["keystrokes"] = {"keys": "f, i, x, clear, a", **top_functions(prof)}
        return out
    finally:
        run.close()


# ------------------------------------------------------------------ one size

def run_size(browser, n: int, reps: int, profile: bool, keep: bool, log, app_dir: Path | None = None,
             quiet_s: float = 0.0, quiet_cores: float = 0.25) -> dict:
    corpus = WORK / f"page-corpus-{n}-{os.getpid()}"  # several runs at once must not share it
    pids = LivePids()
    srv = AppServer(corpus, debounce_ms=DEBOUNCE_MS, env=SERVER_ENV, app_dir=app_dir)
    try:
        log(f"== {n} sessions: generating {corpus} ...")
        manifest = make_page_corpus(corpus, n, log=log)
        by_id = {s["id"]: s for s in manifest["sessions"]}
        pc = PageCorpus(seed=99)
        n_active = max(3, min(40, n // 250))
        newest = sorted(manifest["sessions"], key=lambda s: s["t_last"])[-n_active:]
        for i, s in enumerate(newest):
            pid = pids.start()
            write_registry(corpus, registry_entry(pc.registry_template, pid, s["id"], s["cwd"], s["version"],
                                                  STATUSES[i % len(STATUSES)], proc_start_time(pid)))
        res = {"sessions": n, "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
               "projects": manifest["projects"], "corpus_mb": round(manifest["bytes"] / 1e6, 1),
               "generate_s": manifest["generate_seconds"], "live_registry": n_active}
        if quiet_s:
            res["others_cores_before"] = wait_quiet(quiet_s, log, cores=quiet_cores)
        others = OtherLoad()
        t0 = time.monotonic()
        srv.start()
        srv.wait_ready(600, sessions=n)
        res["server_ready_s"] = round(time.monotonic() - t0, 2)
        t = time.monotonic()
        status, body = srv.request("GET", "/api/sessions/all", timeout=120)
        res["all_fetch_ms"] = round((time.monotonic() - t) * 1000, 1)
        res["all_json_mb"] = round(len(body) / 1e6, 2)
        sessions = json.loads(body)
        active = sum(1 for s in sessions if s.get("status") != "ended")
        res["served"], res["served_active"] = len(sessions), active
        res["corpus_check"] = {
            "title_mismatch": sum(1 for s in sessions if by_id.get(s["id"], {}).get("title") != s.get("title")),
            "count_mismatch": sum(1 for s in sessions
                                  if by_id.get(s["id"], {}).get("messages") != s.get("messageCount"))}
        log(f"    server ready in {res['server_ready_s']} s; /all {res['all_json_mb']} MB in {res['all_fetch_ms']} ms; "
            f"{len(sessions)} sessions, {active} active; corpus check {res['corpus_check']}")
        if len(sessions) != n:
            raise RuntimeError(f"server lists {len(sessions)} sessions, expected {n}")
        hay = haystacks(sessions, manifest)
        expect = {"total": n, "active": active}
        timeout_s = 120 + n / 50
        run = PageRun(browser, srv, expect)
        try:
            res["load"] = run.load(timeout_s)
            res["load"]["long_tasks"] = long_tasks(run.long_tasks(), 0, res["load"]["complete_ms"] + 1)
            res["load"]["metrics"] = metric_delta({k: 0 for k in METRIC_KEYS}, metrics(run.cdp))
            log(f"    first row {res['load']['first_row_ms']} ms, complete list {res['load']['complete_ms']} ms "
                f"({res['load']['total_text']!r})")
            run.page.wait_for_timeout(1000)
            res["memory"] = run.memory()
            log(f"    JS heap {res['memory']['js_heap_used_mb']} MB "
                f"(after GC {res['memory']['js_heap_used_after_gc_mb']} MB), "
                f"{res['memory']['dom_elements']} elements, {res['memory']['rows_in_dom']} rows in the DOM")
            res["others_cores_load"] = others.cores()
            others = OtherLoad()
            res["keystrokes"] = typing_phase(run, hay, log)
            res["others_cores_keystrokes"] = others.cores()
            run.page.wait_for_timeout(1000)
            others = OtherLoad()
            res["live"] = live_phase(run, corpus, by_id, pc, pids, reps, log)
            res["others_cores_live"] = others.cores()
            busy = max(res["others_cores_load"], res["others_cores_keystrokes"], res["others_cores_live"])
            if busy > max(0.25, quiet_cores + 0.1):
                log(f"    WARNING: other processes used up to {busy} of {os.cpu_count()} cores meanwhile: "
                    "these numbers are distorted")
            res["page_errors"] = run.errors[:20]
        finally:
            run.close()
        if profile:
            log("    profiling a second load and 5 keystrokes ...")
            now = srv.get_json("/api/sessions/all", timeout=120)
            expect = {"total": len(now), "active": sum(1 for s in now if s.get("status") != "ended")}
            res["profile"] = profile_phase(browser, srv, expect, timeout_s)
            for phase in ("load", "keystrokes"):
                top = res["profile"][phase]["top_self"][:5]
                log(f"    {phase}: " + ", ".join(f"{t['function']} {t['self_ms']} ms" for t in top))
    finally:
        srv.stop()
        pids.close()
        if not keep:
            shutil.rmtree(corpus, ignore_errors=True)
    res["verdicts"] = verdicts(res)
    return res


def verdicts(r: dict) -> dict:
    """Targets met (True), missed (False); None where none applies (a quick run's few sessions)."""
    out = {}
    if r["sessions"] < 5000:
        return {"complete_list": None, "keystroke": None, "file_change": None, "new_session": None}
    if r.get("load"):
        ok = (r["load"]["complete_ms"] or 1e9) <= TARGETS["complete_ms"]
        out["complete_list"] = ok if r["sessions"] <= 5000 else None
    if r.get("keystrokes"):
        ks = r["keystrokes"]
        out["keystroke"] = (ks["p95_ms"] or 1e9) <= TARGETS["keystroke_p95_ms"] and not ks["unexpected_rows"]
    if r.get("live"):
        u, s = r["live"]["update"], r["live"]["new_session"]
        out["file_change"] = (u["p50_ms"] or 1e9) <= TARGETS["update_p50_ms"] and not u["missed"]
        out["new_session"] = (s["p50_ms"] or 1e9) <= TARGETS["new_session_p50_ms"] and not s["missed"]
    return out


# ------------------------------------------------------------------ report

def _ms(x) -> str:
    return "-" if x is None else (f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms")


def _pair(d: dict | None) -> str:
    if not d:
        return "-"
    return f"{_ms(d.get('p50_ms'))} / {_ms(d.get('p95_ms'))}" + (f" ({d['missed']} missed)" if d.get("missed") else "")


def _by_size(res: dict | None) -> dict[int, dict]:
    return {r["sessions"]: r for r in (res or {}).get("runs", []) if r.get("load")}


def summary_rows(r: dict) -> dict[str, str]:
    """measure -> the text of one run's result."""
    ld, mem, ks, lv = r["load"], r["memory"], r["keystrokes"], r["live"]
    return {
        "first row": f"{_ms(ld['first_row_ms'])}",
        "complete list": f"{_ms(ld['complete_ms'])}",
        "keystroke": _pair(ks) + (f", {ks['unexpected_rows']} wrong rows" if ks.get("unexpected_rows") else ""),
        "file change": _pair(lv["update"]),
        "new session": _pair(lv["new_session"]),
        "heap": f"{mem['js_heap_used_mb']} MB ({mem['js_heap_used_after_gc_mb']} MB after GC)",
        "dom": f"{mem['dom_elements']:,} elements, {mem['rows_in_dom']:,} rows",
        "others": " / ".join("-" if r.get(f"others_cores_{k}") is None else str(r[f"others_cores_{k}"])
                             for k in ("load", "keystrokes", "live")),
        "load work": _work(ld.get("metrics"), 1),
        "key work": _work(ks.get("metrics"), ks["n"]),
    }


def _work(m: dict | None, n: int) -> str:
    if not m or m.get("Script_ms") is None:
        return "-"
    return " / ".join(_ms(m[k] / n) for k in ("Script_ms", "RecalcStyle_ms", "Layout_ms"))


MEASURES = [("first row", "navigation -> first `[data-session-key]` row, next frame", "", None),
            ("complete list", "navigation -> `#total-count` says N, next frame", "<= 1 s (5,000)", "complete_list"),
            ("keystroke", "keystroke -> filtered list, p50 / p95 (24 keys)", "p95 <= 50 ms", "keystroke"),
            ("file change", "appended turn -> row's messageCount on screen, p50 / p95", "p50 <= 100 ms", "file_change"),
            ("new session", "new transcript -> its row on screen, p50 / p95", "p50 <= 100 ms", "new_session"),
            ("load work", "renderer during the load: script / style / layout", "", None),
            ("key work", "the same per keystroke (mean)", "", None),
            ("heap", "JS heap after the complete list", "", None),
            ("dom", "DOM after the complete list", "", None),
            ("others", "CPU cores used by other processes meanwhile: load / keys / live", "~0", None)]


def markdown(res: dict | None, baseline: dict | None = None) -> str:
    """The "Page at scale" section of bench/RESULTS.md: the results, next to the baseline when there is one."""
    cur, base = _by_size(res), _by_size(baseline)
    if res and baseline and res.get("when") == baseline.get("when"):
        base = {}
    main = res or baseline
    sizes = sorted(set(cur) | set(base))
    lines = ["## Page at scale", "",
             f"`bench/page_scale.py` (issue 11): N small Claude Code sessions in ~200 projects, a real server "
             f"(debounce {main.get('debounce_ms')} ms), the page in headless {main.get('chromium') or 'Chromium'} "
             f"({main['viewport']['width']}x{main['viewport']['height']}); every time is taken in the page through the "
             "stable hooks (SPEC section 7) and ends at the frame after the change (see the script's docstring). "
             "File changes are timed from the end of the writer's `write()` (clocks aligned by round trips).", ""]
    if base:
        b = baseline.get("app", {})
        lines.append(f"Baseline: `bench/results/page_scale-baseline.json` ({baseline.get('when', '')[:10]}, "
                     f"commit {str(b.get('commit') or b.get('head') or '?')[:12]}: the page that renders every row).")
        lines.append("")
    head = ["measure", "target"]
    cols = []
    for n in sizes:
        if n in base:
            head.append(f"{n:,} baseline")
            cols.append((base[n], False))
        if n in cur:
            head.append(f"{n:,}" + (" now" if n in base else ""))
            cols.append((cur[n], True))
    rows = []
    for key, label, target, vkey in MEASURES:
        row = [label, target]
        for r, _ in cols:
            text = summary_rows(r)[key]
            v = r.get("verdicts", {}).get(vkey) if vkey else None
            if v is not None:
                text += " met" if v else " **missed**"
            row.append(text)
        rows.append(row)
    lines += [table(head, rows), ""]
    lines.append("CPU profiles (V8 sampling, a second page load and 5 keystrokes in a fresh context; `(program)` is "
                 "the renderer's own work: style, layout, paint, parsing):")
    lines.append("")
    for r, is_now in cols:
        prof = r.get("profile")
        if not prof:
            continue
        which = "now" if is_now and base else ("baseline" if not is_now else "")
        for phase, what in (("load", "page load"), ("keystrokes", "5 keystrokes")):
            p = prof[phase]
            top = ", ".join(f"`{t['function']}` {t['self_ms']:.0f} ms" for t in p["top_self"][:6])
            lines.append(f"- {r['sessions']:,} sessions{', ' + which if which else ''}, {what} "
                         f"({p['wall_ms']:.0f} ms, idle {p['idle_ms']:.0f} ms), most self time: {top}.")
    return "\n".join(lines).rstrip("\n") + "\n"


def chromium_version() -> str | None:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 sessions, 3 reps (the smoke test)")
    ap.add_argument("--sizes", help="comma-separated session counts (default 5000,20000; quick 300)")
    ap.add_argument("--reps", type=int, help="file changes and new sessions per size (default 10; quick 3)")
    ap.add_argument("--label", help="write bench/results/page_scale-<label>.json (e.g. baseline)")
    ap.add_argument("--no-profile", action="store_true", help="skip the CPU profiles")
    ap.add_argument("--keep", action="store_true", help="keep the generated corpora")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each size, wait up to S seconds for 10 s in which other processes use less than "
                         "--quiet-cores")
    ap.add_argument("--quiet-cores", type=float, default=0.25, help="(default 0.25)")
    ap.add_argument("--git-rev", help="serve the server and page of this commit (a git archive export), "
                                      "not the working tree; e.g. --git-rev HEAD --label baseline")
    a = ap.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"no Chromium at {CHROMIUM} (set HELM_CHROMIUM)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    def terminate(signum, frame):  # SIGTERM: stop the server and the sleep processes, remove the corpus
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)

    sizes = [int(x) for x in (a.sizes or ("300" if a.quick else "5000,20000")).split(",")]
    reps = a.reps or (3 if a.quick else 10)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    results = {"quick": a.quick, "debounce_ms": DEBOUNCE_MS, "reps": reps, "viewport": VIEWPORT,
               "chromium": chromium_version(), "chromium_args": CHROMIUM_ARGS, "server_env": SERVER_ENV,
               "targets": TARGETS, "queries": QUERIES, "runs": []}
    app_dir = None
    if a.git_rev:
        app_dir, sha = export_rev(a.git_rev)
        results["app"] = {"git_rev": a.git_rev, "commit": sha, "dir": str(app_dir)}
        log(f"serving {a.git_rev} ({sha[:12]}) from {app_dir}")
    else:
        results["app"] = {"working_tree": str(REPO), "head": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None,
            "dirty": bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "static", "templates",
                                          "helm_monitor"], capture_output=True, text=True).stdout.strip())}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for n in sizes:
                results["runs"].append(run_size(browser, n, reps, not a.no_profile, a.keep, log, app_dir,
                                                a.wait_quiet, a.quiet_cores))
        finally:
            browser.close()
    rows = []
    for r in results["runs"]:
        ld, mem, ks, lv = r["load"], r["memory"], r["keystrokes"], r["live"]
        rows.append([r["sessions"], ld["first_row_ms"], ld["complete_ms"], ks["p50_ms"], ks["p95_ms"],
                     lv["update"]["p50_ms"], lv["update"]["p95_ms"], lv["new_session"]["p50_ms"],
                     lv["new_session"]["p95_ms"], mem["js_heap_used_mb"], mem["dom_elements"]])
    print(table(["sessions", "first row ms", "complete ms", "key p50", "key p95", "update p50", "update p95",
                 "new p50", "new p95", "heap MB", "elements"], rows))
    name = "page_scale" + (f"-{a.label}" if a.label else "")
    p = write_results(name, results)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
