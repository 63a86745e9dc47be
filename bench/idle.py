#!/usr/bin/env python3
"""Idle cost: server CPU (utime+stime of the whole process tree) with 100 idle stream
clients over 60 s, and with none for comparison.

    .venv/bin/python bench/idle.py [--quick] [--seconds 60] [--clients 100]

Nothing is written to the Claude data directory during the measurement; the server's
keepalive interval is its default (30 s).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from common import (WORK, Server, raise_nofile, table, tree_cpu, tree_rss, write_results)
from make_corpus import make_corpus, parse_size
from sseload import ChildPool


def measure(srv: Server, seconds: float) -> dict:
    c0, t0 = tree_cpu(srv.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = tree_cpu(srv.pid), time.monotonic()
    return {"seconds": round(t1 - t0, 2), "cpu_s": round(c1 - c0, 3),
            "cpu_pct_of_core": round(100 * (c1 - c0) / (t1 - t0), 3), "rss_mb": round(tree_rss(srv.pid) / 1e6, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, help="default 60; quick 5")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--corpus-size", help="default 100MB (the cold-start corpus if present); quick 5MB")
    a = ap.parse_args(argv)
    raise_nofile()
    seconds = a.seconds or (5.0 if a.quick else 60.0)
    size = parse_size(a.corpus_size or ("5MB" if a.quick else "20MB"))
    corpus = WORK / "idle-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    manifest = make_corpus(corpus, size, seed=41, log=None)
    srv = Server(corpus)
    srv.start()
    pool = None
    out = {"quick": a.quick, "corpus_sessions": manifest["main_transcripts"], "runs": []}
    rows = []
    try:
        srv.wait_ready(120)
        time.sleep(2.0)  # let startup work (first registry check, GC) finish
        r0 = measure(srv, seconds)
        r0["clients"] = 0
        pool = ChildPool(srv.port, a.clients)
        time.sleep(2.0)
        r1 = measure(srv, seconds)
        r1["clients"] = pool.connected
        r1["server_clients"] = (srv.health() or {}).get("clients")
        stats = pool.ask("stats")
        r1["client_events"] = sum(s["stats"]["events"] for s in stats)
        for r in (r0, r1):
            out["runs"].append(r)
            rows.append([r["clients"], r["seconds"], r["cpu_s"], r["cpu_pct_of_core"], r["rss_mb"]])
    finally:
        if pool:
            pool.close()
        srv.stop()
    print(table(["idle clients", "seconds", "server CPU s", "% of one core", "RSS MB"], rows))
    p = write_results("idle", out)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
