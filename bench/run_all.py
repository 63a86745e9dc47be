#!/usr/bin/env python3
"""Run every benchmark and print one combined markdown table (for the README).

    .venv/bin/python bench/run_all.py [--quick] [--only cold_start,idle] [--skip fanout]
                                      [--no-run] [--write bench/RESULTS.md]

Each benchmark runs as its own process (``bench/<name>.py [--quick]``) and writes
``bench/results/<name>.json``; this script then reads those files. ``--no-run`` only
rebuilds the table from existing results.

The soak (``bench/soak.py``, 30 minutes) runs only when named (``--only soak``); its
row and its section of RESULTS.md come from ``bench/results/soak.json``, or, without
one, the section is kept from the file being rewritten.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, RESULTS, machine

NOTES = """Method:
- Corpora: `bench/make_corpus.py` (deterministic; record templates from the real 2.1.330 / 2.1.29 /
  subagent samples; long-tailed session sizes, 2.1.29 projects with lagging sessions-index.json,
  subagents, multi-MB lines). 1 GB corpus: 1623 main transcripts in 191 projects, 634 other transcripts,
  largest 92 MB. Page cache warm.
- Times are from process start (`python -m helm_monitor`, gunicorn arbiter + one gevent worker) and
  include about 0.25 s of interpreter and gunicorn start-up. RSS is the sum over the process tree,
  sampled every 50 ms; "sum of VmHWM" adds each process's own peak.
- Latency: from the end of the `write()` of an O_APPEND user+assistant turn to the arrival of the event
  carrying that prompt, debounce 500 ms, measured on 3 clients in the benchmark process; the other clients
  are held by a child process (bench/sseload.py, one epoll loop) and read every event.
- Fan-out: first to last arrival over all N clients (two client processes for N=5000), median of 5 events;
  RSS per connection = (tree RSS with N clients - before) / N.
- All four agents: `bench/agents.py` on `bench/agents_corpus.py`'s history (Claude Code, Codex, OpenCode,
  Gemini CLI); its section below has the corpus, cold and warm starts and the change latency per source.
- Page at scale: `bench/page_scale.py` (issue 11), the page in headless Chromium with 5,000 and 20,000 small
  sessions (`bench/page_corpus.py`), timed in the page up to the next frame; its section below compares the
  results with `bench/results/page_scale-baseline.json`.
"""

BENCHES = ["cold_start", "live_latency", "fanout", "incremental", "idle", "agents", "page_scale"]
OPTIONAL = ["soak"]  # long: run only when named
MIN_TIMEOUT_S = {"soak": 2700.0}  # 30 minutes of load, its set-up and its checks


def load(name: str, quick: bool = False) -> dict | None:
    try:
        return json.loads((RESULTS / f"{name}{'-quick' if quick else ''}.json").read_text())
    except (OSError, ValueError):
        return None


def verdict(ok) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def rows_for(res: dict) -> list[list[str]]:
    rows = []

    cs = res.get("cold_start")
    if cs:
        s = cs.get("summary", {})
        big = [k.split("/")[0] for k in s if k.endswith("/cold")]
        for label in big:
            c = s.get(f"{label}/cold", {})
            rows.append([f"cold start, {label} corpus", "time until /all lists every session",
                         f"{c.get('t_all_s')} s ({c.get('throughput_mb_s')} MB/s)",
                         ">= 200 MB/s" if label == "1GB" else "",
                         verdict((c.get("throughput_mb_s") or 0) >= 200) if label == "1GB" else ""])
            rows.append([f"cold start, {label} corpus", "peak RSS (arbiter + worker)",
                         f"{c.get('peak_rss_mb')} MB (sum of VmHWM {c.get('peak_rss_hwm_sum_mb')} MB)",
                         "< 300 MB" if label == "1GB" else "",
                         verdict((c.get("peak_rss_mb") or 1e9) < 300) if label == "1GB" else ""])
            peer, ratio = s.get(f"{label}/ccusage"), s.get(f"{label}/ratio")
            if peer:
                rows.append([f"cold start, {label} corpus", "ccusage (native) session report over the same files",
                             f"{peer.get('wall_s')} s: ratio ccusage / helm-monitor {ratio}",
                             ">= 1.0", verdict(ratio is not None and ratio >= 1.0)])
            r = s.get(f"{label}/restart", {})
            if r:
                rows.append([f"restart, {label} corpus (cache warm)", "time until /all lists every session",
                             f"{r.get('t_all_s')} s", "<= 1 s" if label == "1GB" else "",
                             verdict((r.get("t_all_s") or 1e9) <= 1.0) if label == "1GB" else ""])

    ll = res.get("live_latency")
    if ll:
        top = max(s["clients"] for s in ll["scenarios"])
        for s in ll["scenarios"]:
            target = ""
            ok = None
            if s["clients"] == top and top >= 1000:
                target = "p50 <= 10 ms, p99 <= 50 ms"
                ok = (s["p50_ms"] or 1e9) <= 10 and (s["p99_ms"] or 1e9) <= 50 and not s["missed"]
            rows.append([f"live latency, {s['clients']} clients, {s['scenario']}", "append -> event at every client",
                         f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms (n={s['n']}, missed {s['missed']})",
                         target, verdict(ok) if target else ""])
            upw = s.get("updates_per_window")
            if upw:
                rows.append([f"live latency, {s['clients']} clients, {s['scenario']}",
                             "updates per window of the session written every 50 ms",
                             f"min {upw['min']}, median {upw['median']}, max {upw['max']} over {upw['windows']} windows",
                             "1 to 2", verdict(1 <= upw["min"] and upw["max"] <= 2)])

    fo = res.get("fanout")
    if fo:
        for r in fo["runs"]:
            if "error" in r:
                rows.append([f"fan-out, {r['clients']} clients", "error", r["error"][:80], "", "**failed**"])
                continue
            is_t = r["clients"] == 1000
            ok_spread = (r.get("spread_ms_median") or 1e9) <= 250 and r.get("received_min") == r["clients"]
            rows.append([f"fan-out, {r['clients']} clients", "first -> last client",
                         f"{r.get('spread_ms_median')} ms median (max {r.get('spread_ms_max')} ms); "
                         f"{r.get('received_min')}/{r['clients']} received",
                         "<= 250 ms" if is_t else "", verdict(ok_spread) if is_t else ""])
            rows.append([f"fan-out, {r['clients']} clients", "server RSS per connection",
                         f"{r.get('rss_per_conn_kb')} KB", "<= 64 KB" if is_t else "",
                         verdict((r.get("rss_per_conn_kb") or 1e9) <= 64) if is_t else ""])

    inc = res.get("incremental")
    if inc:
        f = inc["files"]
        rows.append(["incremental cost", f"append to {f['big']['bytes'] / 1e6:.0f} MB vs {f['small']['bytes'] / 1e6:.0f} MB transcript",
                     f"p50 {f['big']['p50_ms']} vs {f['small']['p50_ms']} ms: ratio {inc.get('ratio_p50')} "
                     f"(read {f['big']['read_bytes_mean']} vs {f['small']['read_bytes_mean']} bytes/update)",
                     "ratio <= 1.5", verdict((inc.get("ratio_p50") or 1e9) <= 1.5)])

    so = res.get("soak")
    if so:
        from soak import window as soak_window

        v, rest = so["verdicts"], so["at_rest"]
        which, g = soak_window(so)
        greenlets = (f"; {rest['before']['greenlets']} -> {rest['after']['greenlets']} greenlets"
                     if rest["after"].get("greenlets") is not None else "")
        rows.append([f"soak, {so['settings']['duration'] / 60:.0f} min",
                     f"RSS growth ({'over the session plateau' if which == 'plateau' else 'after warm-up'}: "
                     "arbiter + worker, worker); at rest; divergences",
                     f"{g['rss_mb']['growth_pct']:+.1f} %, {g['rss_worker_mb']['growth_pct']:+.1f} %; "
                     f"{rest['before']['fds']} -> {rest['after']['fds']} fds{greenlets}; "
                     f"{so['divergences']} divergent",
                     "< 5 %; no growth; 0", verdict(v["rss_flat"] and v["no_fd_growth"] and v["zero_divergence"]
                                                    and v.get("no_greenlet_growth") is not False)])

    ag = res.get("agents")
    if ag:
        for src, r in ag["live"]["sources"].items():
            rows.append([f"change latency, {src} (four-agent history)", "change written -> session-updated at client",
                         f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms (n={r['n']}, "
                         f"missed {r['missed']})", "<= 500 ms (one debounce window)", verdict(r["within_debounce"])])
        for kind in ("cold", "warm"):
            c = ag["cold_start"].get(kind)
            if c:
                rows.append([f"{'cold start' if kind == 'cold' else 'restart (cache warm)'}, four-agent history",
                             "time until /api/sessions/all lists every session",
                             f"{c['t_all_s']} s (worker peak RSS {c['peak_worker_rss_mb']} MB)", "", ""])

    pg = res.get("page_scale")
    if pg:
        for r in pg["runs"]:
            if not r.get("load"):
                continue
            n, v = r["sessions"], r.get("verdicts", {})
            ld, ks, lv, mem = r["load"], r["keystrokes"], r["live"], r["memory"]
            big = n >= 5000
            rows.append([f"page, {n:,} sessions", "navigation -> first row; -> complete list (N in the summary)",
                         f"{ld['first_row_ms']} ms; {ld['complete_ms']} ms", "complete <= 1 s" if n == 5000 else "",
                         verdict(v.get("complete_list")) if n == 5000 else ""])
            rows.append([f"page, {n:,} sessions", f"keystroke -> filtered list (n={ks['n']})",
                         f"p50 {ks['p50_ms']} ms, p95 {ks['p95_ms']} ms, max {ks['max_ms']} ms"
                         + (f"; {ks['unexpected_rows']} wrong rows" if ks.get("unexpected_rows") else ""),
                         "p95 <= 50 ms" if big else "", verdict(v.get("keystroke")) if big else ""])
            for what, d, vk in (("file change -> row updated", lv["update"], "file_change"),
                                ("new session -> row shown", lv["new_session"], "new_session")):
                rows.append([f"page, {n:,} sessions", f"{what} (debounce {lv['debounce_ms']} ms)",
                             f"p50 {d['p50_ms']} ms, p95 {d['p95_ms']} ms (n={d['n']}, missed {d['missed']})",
                             "p50 <= 100 ms" if big else "", verdict(v.get(vk)) if big else ""])
            rows.append([f"page, {n:,} sessions", "JS heap (after GC); DOM after the complete list",
                         f"{mem['js_heap_used_mb']} MB ({mem['js_heap_used_after_gc_mb']} MB); "
                         f"{mem['dom_elements']} elements, {mem['rows_in_dom']} rows", "", ""])

    idle = res.get("idle")
    if idle:
        for r in idle["runs"]:
            is_t = r["clients"] >= 100
            rows.append([f"idle, {r['clients']} clients", f"server CPU over {r['seconds']:.0f} s",
                         f"{r['cpu_pct_of_core']} % of one core", "< 1 %" if is_t else "",
                         verdict(r["cpu_pct_of_core"] < 1.0) if is_t else ""])
    return rows


def markdown(res: dict, quick: bool) -> str:
    m = machine()
    lines = []
    lines.append(f"Machine: {m['nproc']} CPU ({m['cpu']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}. "
                 f"Python {m['python']}, gunicorn {m['gunicorn']}, gevent {m['gevent']}, Flask {m['flask']}, "
                 f"watchdog {m['watchdog']}, orjson {m.get('orjson')}.")
    if quick:
        lines.append("\n**Quick (smoke) run: tiny sizes, not comparable with the targets.**")
    lines.append("")
    rows = rows_for(res)
    head = ["benchmark", "measure", "result", "target", ""]
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    fmt = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
    lines.append(fmt(head))
    lines.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
    lines.extend(fmt(r) for r in rows)
    return "\n".join(lines)


def soak_section(path: Path) -> str:
    """The Soak section: made from soak.json, else the one the file already has."""
    from soak import markdown as soak_markdown, split_soak_section

    res = load("soak")
    if res:
        return soak_markdown(res)
    return split_soak_section(path.read_text() if path.exists() else "")[1]


PAGE_HEADING = "\n## Page at scale"


def page_section(path: Path) -> str:
    """The "Page at scale" section: made from page_scale.json (beside page_scale-baseline.json), else the one
    the file already has."""
    from page_scale import markdown as page_markdown

    res, base = load("page_scale"), load("page_scale-baseline")
    if res or base:
        return page_markdown(res, base)
    text = path.read_text() if path.exists() else ""
    i = text.find(PAGE_HEADING)
    if i < 0:
        return ""
    j = text.find("\n## ", i + 1)
    return text[i + 1:len(text) if j < 0 else j + 1]


AGENTS_HEADING = "\n## All four agents"


def split_agents_section(text: str) -> tuple[str, str, str]:
    """RESULTS.md's text before its "All four agents" section, the section, and what follows it."""
    i = text.find(AGENTS_HEADING)
    if i < 0:
        return text, "", ""
    j = text.find("\n## ", i + 1)
    j = len(text) if j < 0 else j
    return text[:i + 1], text[i + 1:j + 1], text[j + 1:]


def agents_section(path: Path) -> str:
    """The "All four agents" section: made from agents.json, else the one the file already has."""
    from agents import markdown as agents_markdown

    res = load("agents")
    if res:
        return agents_markdown(res)
    return split_agents_section(path.read_text() if path.exists() else "")[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHES + OPTIONAL))
    ap.add_argument("--skip", help="comma-separated benchmarks to skip")
    ap.add_argument("--no-run", action="store_true", help="only build the table from bench/results/*.json")
    ap.add_argument("--write", type=Path, help="also write the markdown to this file (e.g. bench/RESULTS.md)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per benchmark, seconds")
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(BENCHES)
    if a.skip:
        names = [n for n in names if n not in a.skip.split(",")]
    status = {}
    if not a.no_run:
        for name in names:
            t = time.monotonic()
            cmd = [sys.executable, str(BENCH / f"{name}.py")] + (["--quick"] if a.quick else [])
            print(f"== {name}: {' '.join(cmd)}", flush=True)
            try:
                rc = subprocess.run(cmd, timeout=max(a.timeout, MIN_TIMEOUT_S.get(name, 0.0))).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            status[name] = rc
            print(f"== {name}: exit {rc} after {time.monotonic() - t:.0f}s\n", flush=True)
    res = {n: load(n, a.quick) for n in BENCHES + OPTIONAL}
    res = {k: v for k, v in res.items() if v}
    md = markdown(res, a.quick)
    print(md)
    if a.write:
        section = "" if a.quick else soak_section(a.write)
        agents = "" if a.quick else agents_section(a.write)
        if agents:
            section = agents.rstrip("\n") + "\n" + ("\n" + section if section else "")
        page = "" if a.quick else page_section(a.write)
        if page:
            section = page.rstrip("\n") + "\n" + ("\n" + section if section else "")
        a.write.write_text("# helm-monitor benchmark results\n\nMade with `.venv/bin/python bench/run_all.py"
                           + (" --quick" if a.quick else "") + "` (each benchmark: `bench/<name>.py`, "
                           "raw numbers in `bench/results/<name>.json`).\n\n" + md + "\n\n" + NOTES
                           + ("\n" + section if section else ""))
    failed = [n for n, rc in status.items() if rc != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
