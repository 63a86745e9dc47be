#!/usr/bin/env python3
"""Fan-out: with N stream clients connected, one append; time from the first client's
arrival of the event to the last client's; server RSS per connection.

    .venv/bin/python bench/fanout.py [--quick] [--clients 100,1000,5000] [--trials 5]

A fresh server per N (HELM_MAX_CLIENTS above N). Clients are held by child load
processes (bench/sseload.py: one epoll loop each, arrival stamped right after recv).
RSS per connection = (tree RSS with N clients after init - tree RSS before) / N.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import uuid

from common import (WORK, Server, append_turn, ms, pct, raise_nofile, table, tree_rss, write_results)
from make_corpus import make_corpus, parse_size, turn_bytes
from sseload import ChildPool

DEBOUNCE_MS = 500


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", help="comma-separated N (default 100,1000,5000; quick 10,50)")
    ap.add_argument("--trials", type=int, help="events per N (default 5; quick 2)")
    ap.add_argument("--corpus-size", help="corpus (default 5MB: a small init event per client)")
    a = ap.parse_args(argv)
    raise_nofile()
    counts = [int(x) for x in (a.clients or ("10,50" if a.quick else "100,1000,5000")).split(",")]
    trials = a.trials or (2 if a.quick else 5)
    corpus = WORK / "fanout-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    manifest = make_corpus(corpus, parse_size(a.corpus_size or ("2MB" if a.quick else "5MB")), seed=21, log=None)
    target = next(s for s in manifest["sessions"] if s["kind"].startswith("v330") and s["bytes"] > 50_000)
    path = corpus / target["path"]
    results = {"quick": a.quick, "debounce_ms": DEBOUNCE_MS, "corpus_sessions": manifest["main_transcripts"],
               "runs": []}
    rows = []
    for n in counts:
        srv = Server(corpus, debounce_ms=DEBOUNCE_MS, max_clients=max(n + 100, 1000))
        srv.start()
        pool = None
        try:
            srv.wait_ready(60)
            time.sleep(1.0)
            rss0 = tree_rss(srv.pid)
            t_c = time.monotonic()
            pool = ChildPool(srv.port, n, procs=1 if n <= 1000 else 2, connect_timeout=180)
            t_connected = time.monotonic() - t_c
            connected = pool.connected
            time.sleep(1.0)
            rss1 = tree_rss(srv.pid)
            h = srv.health() or {}
            spreads, firsts, lasts, got = [], [], [], []
            for i in range(trials):
                marker = f"fanout-{uuid.uuid4().hex[:12]}"
                pool.ask(f"watch {marker}")
                t0 = append_turn(path, turn_bytes(target["id"], target["cwd"], f"{marker} fan this out"))
                pool.send(f"collect {marker} 20")
                arr = sorted(t for r in pool.replies() for t in r.get("arrivals", []))
                got.append(len(arr))
                if arr:
                    spreads.append(arr[-1] - arr[0])
                    firsts.append(arr[0] - t0)
                    lasts.append(arr[-1] - t0)
                time.sleep(DEBOUNCE_MS / 1000 + 0.3)
            rss2 = tree_rss(srv.pid)
            stats = pool.ask("stats")
            r = {"clients": n, "connected": connected, "server_clients": h.get("clients"),
                 "connect_all_s": round(t_connected, 2), "received_min": min(got) if got else 0,
                 "spread_ms_median": ms(pct(spreads, 50)), "spread_ms_max": ms(max(spreads)) if spreads else None,
                 "first_ms_median": ms(pct(firsts, 50)), "last_ms_median": ms(pct(lasts, 50)),
                 "last_ms_max": ms(max(lasts)) if lasts else None,
                 "rss_before_mb": round(rss0 / 1e6, 1), "rss_connected_mb": round(rss1 / 1e6, 1),
                 "rss_after_events_mb": round(rss2 / 1e6, 1),
                 "rss_per_conn_kb": round((max(rss1, rss2) - rss0) / max(1, connected) / 1024, 1),
                 "init_bytes": max((x.get("init_bytes", 0) for x in pool.ready), default=0),
                 "client_errors": [s["stats"]["errors"] for s in stats], "spreads_ms": [ms(s) for s in spreads]}
        except Exception as exc:  # report and go on with the next N
            r = {"clients": n, "error": repr(exc), "server_log": srv.log_tail(1500)}
            print(f"  N={n}: {exc!r}", file=sys.stderr)
        finally:
            if pool:
                pool.close()
            srv.stop()
        results["runs"].append(r)
        rows.append([n, r.get("connected"), r.get("server_clients"), r.get("received_min"), r.get("first_ms_median"),
                     r.get("last_ms_median"), r.get("spread_ms_median"), r.get("spread_ms_max"),
                     r.get("rss_before_mb"), r.get("rss_connected_mb"), r.get("rss_per_conn_kb"), r.get("connect_all_s")])
        print(f"  N={n}: spread {r.get('spread_ms_median')} ms, {r.get('rss_per_conn_kb')} KB/conn", file=sys.stderr)
    print(table(["N", "connected", "server sees", "got event (min)", "first ms", "last ms", "first->last ms",
                 "first->last max", "RSS before MB", "RSS with N MB", "KB/conn", "connect s"], rows))
    p = write_results("fanout", results)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
