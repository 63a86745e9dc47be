#!/usr/bin/env python3
"""Live latency: from the end of an append (one O_APPEND write of a user+assistant turn)
to an existing transcript, to the arrival of the event carrying it at a stream client.

    .venv/bin/python bench/live_latency.py [--quick] [--clients 1,100,1000] [--trials 50]

Scenarios, for each number of connected clients:
  isolated    appends to one session spaced more than the debounce window apart;
  continuous  the same, while another session is written every 50 ms.
Latency is measured on up to 3 clients in this process (a background selectors loop,
stamping arrival right after recv); the other clients are held by a child load process
(bench/sseload.py) and read every event too. Each append's prompt carries a unique
marker; an event "arrives" when its data contains the marker (the session's lastPrompt).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid

from common import (WORK, Server, append_turn, raise_nofile, summarize, table, write_results)
from make_corpus import make_corpus, turn_bytes
from sseload import ChildPool, LoadClient

DEBOUNCE_MS = 500


def pick_sessions(manifest: dict):
    new = [s for s in manifest["sessions"] if s["kind"] == "v330i" and 50_000 < s["bytes"] < 5_000_000]
    new.sort(key=lambda s: s["bytes"])
    return new[len(new) // 2], new[len(new) // 2 - 1]


class Writer(threading.Thread):
    """Appends a turn to a session every interval (continuous writing)."""

    def __init__(self, path, sid, cwd, interval=0.05):
        super().__init__(daemon=True)
        self.path, self.sid, self.cwd, self.interval = path, sid, cwd, interval
        self.stop_ev = threading.Event()
        self.writes = 0

    def run(self):
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            append_turn(self.path, turn_bytes(self.sid, self.cwd, f"background write {self.writes} keep going"))
            self.writes += 1
            nxt += self.interval
            self.stop_ev.wait(max(0.0, nxt - time.monotonic()))


def run_trials(lc: LoadClient, target, corpus, trials: int, spacing: float, timeout: float = 5.0) -> dict:
    path = corpus / target["path"]
    lat, missed = [], 0
    per_trial_min = []
    m = len(lc.open_conns())
    for i in range(trials):
        marker = f"bench-{uuid.uuid4().hex[:12]}"
        lc.add_watch(marker)
        t0 = append_turn(path, turn_bytes(target["id"], target["cwd"], f"{marker} measure the latency of this prompt"))
        arr = lc.wait_watch(marker, timeout, min_clients=m)
        if len(arr) < m:
            missed += m - len(arr)
        ls = [t - t0 for t in arr.values()]
        lat.extend(ls)
        if ls:
            per_trial_min.append(min(ls))
        # next append more than one debounce window after this one, with jitter
        time.sleep(max(0.0, t0 + spacing + random.random() * 0.1 - time.monotonic()))
    res = summarize(lat)
    res["missed"] = missed
    res["measured_clients"] = m
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", help="comma-separated client counts (default 1,100,1000; quick 1,20)")
    ap.add_argument("--trials", type=int, help="appends per scenario (default 50; quick 5)")
    ap.add_argument("--corpus-size", default=None, help="background corpus (default 20MB; quick 3MB)")
    a = ap.parse_args(argv)
    raise_nofile()
    counts = [int(x) for x in (a.clients or ("1,20" if a.quick else "1,100,1000")).split(",")]
    trials = a.trials or (5 if a.quick else 50)
    from make_corpus import parse_size
    size = parse_size(a.corpus_size or ("3MB" if a.quick else "20MB"))
    corpus = WORK / "live-corpus"
    import shutil
    shutil.rmtree(corpus, ignore_errors=True)
    manifest = make_corpus(corpus, size, seed=11, log=None)
    target, other = pick_sessions(manifest)
    spacing = DEBOUNCE_MS / 1000 + 0.25

    srv = Server(corpus, debounce_ms=DEBOUNCE_MS, max_clients=max(counts) + 100)
    srv.start()
    results = {"quick": a.quick, "debounce_ms": DEBOUNCE_MS, "spacing_s": spacing, "trials": trials,
               "corpus_sessions": manifest["main_transcripts"], "target_bytes": target["bytes"], "scenarios": []}
    rows = []
    pools = []
    lc = None
    try:
        srv.wait_ready(120)
        held = 0
        measuring = 0
        for n in counts:
            m = min(3, n)
            if lc is None:
                lc = LoadClient(port=srv.port).start_thread()
            if m > measuring:
                # the measuring clients count towards n: add the ones this round needs
                lc.add(m - measuring)
                measuring = m
                if not lc.wait_all_init(30):
                    raise RuntimeError(f"measuring clients not ready: {lc.summary()}")
            passive = n - m
            if passive > held:
                pool = ChildPool(srv.port, passive - held, procs=1)
                pools.append(pool)
                held += pool.connected
                print(f"  {held + m} clients connected ({pool.ready})", file=sys.stderr)
            time.sleep(1.0)
            h = srv.health() or {}
            for scenario in ("isolated", "continuous"):
                writer = None
                if scenario == "continuous":
                    writer = Writer(corpus / other["path"], other["id"], other["cwd"])
                    writer.start()
                    time.sleep(0.5)
                r = run_trials(lc, target, corpus, trials, spacing)
                if writer:
                    writer.stop_ev.set()
                    writer.join(2)
                    r["background_writes"] = writer.writes
                    time.sleep(spacing)
                r.update(clients=n, connected=held + m, server_clients=h.get("clients"), scenario=scenario)
                results["scenarios"].append(r)
                rows.append([n, h.get("clients"), scenario, r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"],
                             r["max_ms"], r["missed"]])
                print(f"  clients={n} {scenario}: p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms", file=sys.stderr)
    finally:
        if lc:
            lc.stop()
        for p in pools:
            p.close()
        srv.stop()
    print(table(["clients", "server sees", "scenario", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms", "missed"],
                rows))
    p = write_results("live_latency", results)
    print(f"\nwrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
