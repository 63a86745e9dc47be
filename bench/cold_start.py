#!/usr/bin/env python3
"""Cold start and restart: time from process start until /api/claude-sessions/all answers
with every session, peak RSS of the server's process tree, throughput; and the fastest
peer over the same corpus in the same run (ccusage's native binary, bench/peers.py).

    .venv/bin/python bench/cold_start.py [--quick] [--sizes 400MB,1GB] [--repeat N] [--no-peer]

Per corpus size, three kinds of start:
  cold        persistent cache disabled (HELM_CACHE_DIR=""): a full scan;
  cold+cache  an empty cache directory: a full scan that also writes the cache;
  restart     the same cache directory again, corpus unchanged (target: <= 1 s).
Each cold start is followed by one ccusage session report over the same files (alternating,
so that both see the same machine); the ratio is ccusage's median time over helm-monitor's
median cold start (target: >= 1.0, helm-monitor at least as fast).
Corpora are generated once under $HELM_BENCH_DIR (default /tmp/helm-bench) and reused;
the page cache is warm (they were just written or read), which is the usual restart case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from common import (REPO, WORK, RssSampler, Server, fmt, raise_nofile, table, tree_hwm, tree_rss,
                    write_results)
from make_corpus import ensure_corpus, parse_size
from peers import ccusage_version, ensure_ccusage, run_ccusage


def one_start(corpus, manifest: dict, cache_dir: str, timeout: float) -> dict:
    expected = manifest["main_transcripts"]
    ids = {s["id"] for s in manifest["sessions"]}
    srv = Server(corpus, cache_dir=cache_dir)
    t0 = time.monotonic()
    srv.start()
    sampler = RssSampler(srv.pid, 0.05)
    sampler.start()
    res = {"cache_dir": cache_dir or None, "expected_sessions": expected}
    t_listen = t_scan = t_all = None
    last_count = None
    polls = 0
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
            if h.get("scan") == "complete" and t_scan is None:
                t_scan = now
            if h.get("sessions", 0) >= expected or h.get("scan") == "complete":
                status, body = srv.request("GET", "/api/claude-sessions/all", timeout=60)
                polls += 1
                if status == 200:
                    sessions = json.loads(body)
                    last_count = len(sessions)
                    got = {s.get("id") for s in sessions}
                    if ids <= got:
                        t_all = time.monotonic()
                        res["extra_sessions"] = len(got - ids)
                        res["all_bytes"] = len(body)
                        break
                    res["missing_example"] = sorted(ids - got)[:3]
                if h.get("scan") == "complete" and polls > 50:
                    break
            time.sleep(0.01)
        time.sleep(0.3)  # let the sampler see the settled state
        res.update({
            "t_listen_s": None if t_listen is None else round(t_listen - t0, 3),
            "t_scan_complete_s": None if t_scan is None else round(t_scan - t0, 3),
            "t_all_s": None if t_all is None else round(t_all - t0, 3),
            "sessions_served": last_count,
            "peak_rss_sampled_mb": round(sampler.stop() / 1e6, 1),
            "peak_rss_hwm_sum_mb": round(tree_hwm(srv.pid) / 1e6, 1),
            "rss_after_mb": round(tree_rss(srv.pid) / 1e6, 1),
            "rss_samples": sampler.samples,
        })
    finally:
        sampler.stop()
        srv.stop()
    if t_all is not None:
        mb = manifest["transcript_bytes"] / 1e6
        res["throughput_mb_s"] = round(mb / (t_all - t0), 1)
        res["scan_throughput_mb_s"] = round(mb / max(1e-3, t_all - (t_listen or t0)), 1)
    return res


def compile_package() -> None:
    """Byte-compile helm_monitor, as installing it does: with PYTHONDONTWRITEBYTECODE set (as on this
    machine) an editable checkout would otherwise be compiled from source at every start, in the
    arbiter and again in the worker, which no installed service does."""
    import compileall
    compileall.compile_dir(str(REPO / "helm_monitor"), quiet=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny corpora (seconds), a smoke test")
    ap.add_argument("--sizes", help="comma-separated corpus sizes (default 100MB,1GB; quick 5MB,20MB)")
    ap.add_argument("--repeat", type=int, help="cold starts per size (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--no-peer", action="store_true", help="do not run ccusage (default in --quick)")
    ap.add_argument("--scan-workers", type=int, help="HELM_SCAN_WORKERS for the server (default: one per core)")
    a = ap.parse_args(argv)
    raise_nofile()
    compile_package()
    if a.scan_workers:
        os.environ["HELM_SCAN_WORKERS"] = str(a.scan_workers)
    sizes = [parse_size(s) for s in (a.sizes or ("5MB,20MB" if a.quick else "400MB,1GB")).split(",")]
    repeat = a.repeat or (1 if a.quick else 3)
    out = {"quick": a.quick, "runs": [], "peer_runs": []}
    peer = None
    if not (a.quick or a.no_peer):
        peer, why = ensure_ccusage()
        if peer is None:
            print(f"ccusage not run: {why}", file=sys.stderr)
            out["peer_error"] = why
        else:
            out["peer"] = ccusage_version(peer)
    rows = []
    for size in sizes:
        label = f"{size / 1e6:.0f}MB" if size < 1e9 else f"{size / 1e9:g}GB"
        corpus = WORK / f"corpus-{label}-s{a.seed}"
        manifest = ensure_corpus(corpus, size, a.seed)
        info = {k: manifest[k] for k in ("main_transcripts", "transcript_bytes", "main_bytes",
                                         "subagent_transcripts", "projects", "largest_transcript")}
        cache = WORK / f"cache-{label}"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        runs = []
        ids = {x["id"] for x in manifest["sessions"]}
        for i in range(repeat):
            runs.append(("cold", one_start(corpus, manifest, "", a.timeout)))
            if peer is not None:
                r = run_ccusage(peer, corpus, ids)
                r.update(corpus=label)
                out["peer_runs"].append(r)
        runs.append(("cold+cache", one_start(corpus, manifest, str(cache), a.timeout)))
        for i in range(max(1, repeat - 1)):
            runs.append(("restart", one_start(corpus, manifest, str(cache), a.timeout)))
        for kind, r in runs:
            r.update(kind=kind, corpus=label, **info)
            out["runs"].append(r)
            rows.append([label, kind, info["main_transcripts"], round(info["transcript_bytes"] / 1e6),
                         r.get("t_listen_s"), r.get("t_all_s"), r.get("throughput_mb_s"),
                         r.get("peak_rss_sampled_mb"), r.get("peak_rss_hwm_sum_mb"), r.get("sessions_served")])
        print(f"[{label}] done", file=sys.stderr)

    # summary per size: median cold, median restart
    summary = {}
    for size in sizes:
        label = f"{size / 1e6:.0f}MB" if size < 1e9 else f"{size / 1e9:g}GB"
        for kind in ("cold", "cold+cache", "restart"):
            rs = [r for r in out["runs"] if r["corpus"] == label and r["kind"] == kind and r.get("t_all_s")]
            if rs:
                rs.sort(key=lambda r: r["t_all_s"])
                med = rs[len(rs) // 2]
                summary[f"{label}/{kind}"] = {"t_all_s": med["t_all_s"], "throughput_mb_s": med.get("throughput_mb_s"),
                                              "peak_rss_mb": max(r["peak_rss_sampled_mb"] for r in rs),
                                              "peak_rss_hwm_sum_mb": max(r["peak_rss_hwm_sum_mb"] for r in rs)}
        peers = sorted((r for r in out["peer_runs"] if r["corpus"] == label and r["exit"] == 0),
                       key=lambda r: r["wall_s"])
        cold = summary.get(f"{label}/cold")
        if peers:
            med = peers[len(peers) // 2]
            summary[f"{label}/ccusage"] = {"wall_s": med["wall_s"], "peak_rss_mb": max(r["peak_rss_mb"] for r in peers),
                                           "cpu_s": med["cpu_s"], "runs": len(peers),
                                           "sessions_reported": med.get("sessions_reported")}
            if cold:
                summary[f"{label}/ratio"] = round(med["wall_s"] / cold["t_all_s"], 2)
    out["summary"] = summary
    print(table(["corpus", "start", "sessions", "MB", "listen s", "all served s", "MB/s", "peak RSS MB",
                 "sum VmHWM MB", "served"], rows))
    if out["peer_runs"]:
        print()
        print(table(["corpus", "ccusage s (each run)", "ccusage median s", "helm-monitor cold median s",
                     "ratio (ccusage / helm)", "ccusage peak RSS MB", "ccusage CPU s"],
                    [[lab, " ".join(str(r["wall_s"]) for r in out["peer_runs"] if r["corpus"] == lab),
                      summary.get(f"{lab}/ccusage", {}).get("wall_s"), summary.get(f"{lab}/cold", {}).get("t_all_s"),
                      summary.get(f"{lab}/ratio"), summary.get(f"{lab}/ccusage", {}).get("peak_rss_mb"),
                      summary.get(f"{lab}/ccusage", {}).get("cpu_s")]
                     for lab in dict.fromkeys(r["corpus"] for r in out["peer_runs"])]))
    p = write_results("cold_start", out)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
