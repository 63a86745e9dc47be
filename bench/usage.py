#!/usr/bin/env python3
"""Usage (issue 13): /api/usage for a year by day, and what counting usage costs a cold start.

    .venv/bin/python bench/usage.py [--quick] [--size 1GB] [--calls 50] [--rounds 7]
                                    [--base-rev 2cf9080] [--no-base]

(a) Queries: one real server (gunicorn + one gevent worker, no parse-state cache) over a generated
    history (bench/make_corpus.py: usage on every assistant record, subagents, 200 projects);
    when every session is listed, ``GET /api/usage?bucket=day&tz=Europe/Berlin&from=<a year
    ago>&to=<tomorrow>`` without ``by``, with ``by=model`` and with ``by=project``, ``--calls``
    times each (after 3 unmeasured), one at a time, each on a new loopback connection; the time
    is from the request's send to the body's last byte. Target: p95 <= 50 ms.
(b) Cold start: bench/cold_start.py's own ``one_start`` (process start until
    /api/claude-sessions/all lists every session) run from this tree and from the commit before
    issue 13 (``--base-rev``, unpacked with ``git archive`` under $HELM_BENCH_DIR), alternating
    base and this tree ``--rounds`` times, for a cold start (no cache) and for a restart (a
    parse-state cache written by one start before). Target: this tree's median cold start no
    more than 10 % slower than the base's. The minimum of each is shown too: on a shared
    machine it is the figure least disturbed by others' work. Beside it, the CPU time one
    process of each tree takes to read the history and build every session (and its usage
    facts), which others' work on the machine barely moves.

--quick: a 20 MB history, 10 calls per query and one round (a smoke test: tests/test_bench_smoke.py).
Results: bench/results/usage.json (usage-quick.json); a summary is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

from common import REPO, WORK, Server, pct, raise_nofile, table, write_results
from make_corpus import ensure_corpus, parse_size

BASE_REV = "2cf9080"  # the commit before issue 13 (usage and cost)
TZ = "Europe/Berlin"
QUERY_TARGET_MS = 50.0
COLD_TARGET = 1.10
# bench/make_corpus.py's histories end by this day (2026-08-29 plus 80 days, plus the sessions' lengths):
# "a year" ends on the later of today and this, so that it holds the whole history on any clock.
CORPUS_END = date(2026, 11, 30)


# ------------------------------------------------------------------ (a) queries
def year_query(by: str | None, today: date) -> str:
    args = {"bucket": "day", "tz": TZ, "from": (today - timedelta(days=365)).isoformat(),
            "to": (today + timedelta(days=1)).isoformat()}
    if by:
        args["by"] = by
    return "/api/usage?" + urlencode(args)


def time_calls(srv: Server, path: str, calls: int) -> dict:
    for _ in range(3):  # unmeasured: the zone's bucket map, the first pricing of each model
        status, body = srv.request("GET", path, timeout=60)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
    lat = []
    for _ in range(calls):
        t0 = time.perf_counter()
        status, body = srv.request("GET", path, timeout=60)
        lat.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
    answer = json.loads(body)
    totals = answer.get("totals", {})
    return {"path": path, "n": calls, "p50_ms": round(pct(lat, 50) * 1000, 2), "p95_ms": round(pct(lat, 95) * 1000, 2),
            "max_ms": round(max(lat) * 1000, 2), "mean_ms": round(statistics.fmean(lat) * 1000, 2),
            "bytes": len(body), "buckets": len(answer.get("buckets", [])), "days": len(answer.get("starts", [])),
            "groups": len(answer.get("groups", [])), "total_tokens": totals.get("tokens", {}).get("total"),
            "messages": totals.get("messages"), "sessions": totals.get("sessions"),
            "cost_basis": totals.get("cost", {}).get("basis")}


def queries(corpus: Path, manifest: dict, calls: int, today: date) -> dict:
    srv = Server(corpus, cache_dir="")
    srv.start()
    try:
        t0 = time.monotonic()
        srv.wait_ready(timeout=300, sessions=manifest["main_transcripts"])
        ready_s = time.monotonic() - t0
        runs = {by or "none": time_calls(srv, year_query(by, today), calls) for by in (None, "model", "project")}
    finally:
        srv.stop()
    return {"ready_s": round(ready_s, 3), "tz": TZ, "runs": runs}


# ------------------------------------------------------------------ (b) cold start against the base
ONE_START = r"""
import json, sys
sys.path.insert(0, "bench")
from cold_start import compile_package, one_start
manifest = json.load(open(sys.argv[1]))
compile_package()
res = one_start(sys.argv[2], manifest, sys.argv[3], float(sys.argv[4]))
print("RESULT " + json.dumps(res))
"""


IN_PROCESS = r"""
import json, sys, time
from helm_monitor.sources.claude import Catalog
c = Catalog(sys.argv[1])
t0 = time.process_time()
c.full_scan()
t1 = time.process_time()
sessions = c.sessions()
t2 = time.process_time()
usage = getattr(c, "usage", None)
counted = sum(1 for sid in sessions if usage is not None and usage(sid))
t3 = time.process_time()
print("RESULT " + json.dumps({"scan_cpu_s": round(t1 - t0, 3), "sessions_cpu_s": round(t2 - t1, 3),
                              "usage_cpu_s": round(t3 - t2, 3), "total_cpu_s": round(t3 - t0, 3),
                              "sessions": len(sessions), "with_usage": counted}))
"""


def in_process(tree: Path, corpus: Path, timeout: float) -> dict:
    """CPU seconds (this process only: no scan workers) for ``tree``'s Catalog to read the corpus,
    build every session and, where it has them, every session's usage facts. CPU time, unlike
    the wall time of a start, barely moves when other work shares the machine."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, str(corpus)], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"in-process read in {tree} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def unpack_base(rev: str) -> Path:
    """The tree of ``rev`` under WORK (made once, from git archive: no worktree to prune)."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    dest = WORK / f"base-{full[:12]}"
    if (dest / ".complete").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", full], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {rev} failed")
    (dest / ".complete").write_text(full + "\n")
    return dest


def start_in(tree: Path, corpus: Path, manifest_path: Path, cache: str, timeout: float) -> dict:
    """One start of ``tree``'s helm-monitor, timed by ``tree``'s bench/cold_start.py."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", ONE_START, str(manifest_path), str(corpus), cache, str(timeout)],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=timeout + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"one start in {tree} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def imports_from(tree: Path) -> str:
    """Where ``python -m helm_monitor`` run in ``tree`` imports helm_monitor from (it must be that tree)."""
    return subprocess.run([sys.executable, "-c", "import helm_monitor; print(helm_monitor.__file__)"], cwd=tree,
                          capture_output=True, text=True, check=True).stdout.strip()


def cold_starts(corpus: Path, manifest: dict, base: Path, rounds: int, timeout: float) -> dict:
    trees = {"base": base, "head": REPO}
    for name, tree in trees.items():
        where = imports_from(tree)
        if not where.startswith(str(tree.resolve())):
            raise RuntimeError(f"{name}: python in {tree} imports helm_monitor from {where}")
    manifest_path = WORK / f"usage-manifest-{os.getpid()}.json"
    manifest_path.write_text(json.dumps(manifest))
    caches = {name: WORK / f"usage-cache-{name}" for name in trees}
    runs: dict[str, dict[str, list]] = {name: {"cold": [], "restart": []} for name in trees}
    try:
        for name in trees:  # each tree writes its own parse-state cache once (not measured)
            shutil.rmtree(caches[name], ignore_errors=True)
            caches[name].mkdir(parents=True)
            start_in(trees[name], corpus, manifest_path, str(caches[name]), timeout)
        for r in range(rounds):
            order = ("base", "head") if r % 2 == 0 else ("head", "base")  # neither always goes first
            for kind in ("cold", "restart"):
                for name in order:
                    res = start_in(trees[name], corpus, manifest_path, "" if kind == "cold" else str(caches[name]),
                                   timeout)
                    if res.get("t_all_s") is None:
                        raise RuntimeError(f"{name} {kind}: not every session served: {res}")
                    runs[name][kind].append(res)
            print(f"[cold start] round {r + 1}/{rounds}: "
                  + ", ".join(f"{n} {k} {runs[n][k][-1]['t_all_s']} s" for k in ("cold", "restart") for n in order),
                  file=sys.stderr)
    finally:
        manifest_path.unlink(missing_ok=True)
    cpu: dict[str, list] = {name: [] for name in trees}
    for r in range(rounds):
        for name in (("base", "head") if r % 2 == 0 else ("head", "base")):
            cpu[name].append(in_process(trees[name], corpus, timeout))
    summary = {}
    summary["in_process_cpu"] = {
        f"{name}_min_s": {k: min(x[k] for x in cpu[name]) for k in ("scan_cpu_s", "sessions_cpu_s", "usage_cpu_s",
                                                                     "total_cpu_s")} for name in trees}
    summary["in_process_cpu"]["ratio_of_min"] = round(summary["in_process_cpu"]["head_min_s"]["total_cpu_s"]
                                                      / summary["in_process_cpu"]["base_min_s"]["total_cpu_s"], 3)
    for kind in ("cold", "restart"):
        med = {name: statistics.median(r["t_all_s"] for r in runs[name][kind]) for name in trees}
        rss = {name: max(r["peak_rss_sampled_mb"] for r in runs[name][kind]) for name in trees}
        low = {name: min(r["t_all_s"] for r in runs[name][kind]) for name in trees}
        summary[kind] = {"base_median_s": med["base"], "head_median_s": med["head"],
                         "ratio": round(med["head"] / med["base"], 3),
                         "base_min_s": low["base"], "head_min_s": low["head"],
                         "ratio_of_min": round(low["head"] / low["base"], 3),
                         "base_peak_rss_mb": rss["base"], "head_peak_rss_mb": rss["head"],
                         "base_each_s": [r["t_all_s"] for r in runs["base"][kind]],
                         "head_each_s": [r["t_all_s"] for r in runs["head"][kind]]}
    return {"rounds": rounds, "summary": summary, "runs": runs, "in_process": cpu}


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 20 MB history, few calls, one round (a smoke test)")
    ap.add_argument("--size", type=parse_size, help="history size (default 1GB; quick 20MB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calls", type=int, help="measured calls per query (default 50; quick 10)")
    ap.add_argument("--rounds", type=int, help="cold-start rounds, base and this tree each (default 7; quick 1)")
    ap.add_argument("--base-rev", default=BASE_REV, help=f"the commit to compare with (default {BASE_REV})")
    ap.add_argument("--no-base", action="store_true", help="skip the cold-start comparison")
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args(argv)
    raise_nofile()
    size = a.size or parse_size("20MB" if a.quick else "1GB")
    calls = a.calls or (10 if a.quick else 50)
    rounds = a.rounds or (1 if a.quick else 7)
    label = f"{size / 1e6:.0f}MB" if size < 1e9 else f"{size / 1e9:g}GB"
    corpus = WORK / f"corpus-{label}-s{a.seed}"  # the one bench/cold_start.py uses
    manifest = ensure_corpus(corpus, size, a.seed)
    info = {k: manifest[k] for k in ("main_transcripts", "subagent_transcripts", "transcript_bytes", "projects")}
    today = max(date.today(), CORPUS_END)
    t0 = time.monotonic()
    out = {"quick": a.quick, "corpus": {"label": label, **info}, "today": today.isoformat()}

    sys.path.insert(0, str(REPO / "bench"))
    from cold_start import compile_package
    compile_package()
    out["queries"] = queries(corpus, manifest, calls, today)
    if not a.no_base:
        base = unpack_base(a.base_rev)
        out["base_rev"] = (base / ".complete").read_text().strip()
        out["cold_start"] = cold_starts(corpus, manifest, base, rounds, a.timeout)
    out["seconds"] = round(time.monotonic() - t0, 1)

    q = out["queries"]["runs"]
    out["counted"] = bool(q["none"]["total_tokens"])
    if not out["counted"]:
        print("WARNING: /api/usage counted no tokens over this history: these query times are those of an "
              "empty index", file=sys.stderr)
    out["targets"] = {"query_p95_ms": QUERY_TARGET_MS, "cold_ratio": COLD_TARGET,
                      "query_met": all(r["p95_ms"] <= QUERY_TARGET_MS for r in q.values())}
    print(f"history: {label}, {info['main_transcripts']} sessions ({info['subagent_transcripts']} subagent "
          f"transcripts) in {info['projects']} projects; server ready in {out['queries']['ready_s']} s")
    print(table(["/api/usage, a year by day, tz " + TZ, "p50 ms", "p95 ms", "max ms", "KB", "buckets", "groups",
                 "tokens", "messages"],
                [[f"by={by}", r["p50_ms"], r["p95_ms"], r["max_ms"], round(r["bytes"] / 1024, 1), r["buckets"],
                  r["groups"], r["total_tokens"], r["messages"]] for by, r in q.items()]))
    if "cold_start" in out:
        s = out["cold_start"]["summary"]
        out["targets"]["cold_met"] = s["cold"]["ratio"] <= COLD_TARGET
        print()
        print(table([f"start ({rounds} rounds)", f"base {out['base_rev'][:7]} median s", "this tree median s",
                     "ratio", "base min s", "this tree min s", "ratio of min", "base peak RSS MB",
                     "this tree peak RSS MB"],
                    [[kind, v["base_median_s"], v["head_median_s"], v["ratio"], v["base_min_s"], v["head_min_s"],
                      v["ratio_of_min"], v["base_peak_rss_mb"], v["head_peak_rss_mb"]]
                     for kind, v in s.items() if kind != "in_process_cpu"]))
        c = s["in_process_cpu"]
        print()
        print(table(["in one process, CPU s (min)", "scan", "build sessions", "usage facts", "total"],
                    [[name, *c[f"{name}_min_s"].values()] for name in ("base", "head")]
                    + [["ratio (total)", "", "", "", c["ratio_of_min"]]]))
    p = write_results("usage", out)
    print(f"\ntargets: query p95 <= {QUERY_TARGET_MS} ms: {'met' if out['targets']['query_met'] else 'MISSED'}"
          + (f"; cold start <= +{COLD_TARGET * 100 - 100:.0f} %: "
             f"{'met' if out['targets']['cold_met'] else 'MISSED'}" if "cold_met" in out["targets"] else ""))
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
