#!/usr/bin/env python3
"""Incremental cost: update latency after an append to a 1 MB versus a 200 MB transcript.

    .venv/bin/python bench/incremental.py [--quick] [--big 200MB] [--trials 20]

Alternating appends (one O_APPEND write of a user+assistant turn) to the small and the
big transcript, spaced more than the debounce window apart; latency to the event at a
stream client. Besides latency (which the debounce scheduling dominates) it reports, per
update, the server's CPU time and the bytes it read (rchar from /proc/<pid>/io of the
tree): reading only the appended bytes gives a ratio of about 1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid

from common import (WORK, Server, append_turn, raise_nofile, summarize, table, tree_cpu, tree_pids,
                    write_results)
from make_corpus import make_corpus, parse_size, turn_bytes, write_single_session
from sseload import LoadClient

DEBOUNCE_MS = 500


def tree_rchar(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                for line in f:
                    if line.startswith("rchar:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--small", default="1MB")
    ap.add_argument("--big", help="default 200MB; quick 20MB")
    ap.add_argument("--trials", type=int, help="appends per file (default 20; quick 5)")
    a = ap.parse_args(argv)
    raise_nofile()
    trials = a.trials or (5 if a.quick else 20)
    small_b, big_b = parse_size(a.small), parse_size(a.big or ("20MB" if a.quick else "200MB"))
    corpus = WORK / "incremental-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    make_corpus(corpus, parse_size("2MB"), seed=31, log=None)   # a few other sessions around
    cwd = "/home/alice/code/incremental"
    pdir = corpus / "projects" / "-home-alice-code-incremental"
    files = {}
    t = time.monotonic()
    for label, size, seed in (("small", small_b, 32), ("big", big_b, 33)):
        sid = str(uuid.UUID(int=seed, version=4))
        info = write_single_session(pdir / f"{sid}.jsonl", size, seed=seed, cwd=cwd, session_id=sid)
        files[label] = {"id": sid, "path": pdir / f"{sid}.jsonl", "bytes": info["bytes"]}
    print(f"  wrote transcripts of {files['small']['bytes'] / 1e6:.1f} and {files['big']['bytes'] / 1e6:.1f} MB "
          f"in {time.monotonic() - t:.1f}s", file=sys.stderr)

    srv = Server(corpus, debounce_ms=DEBOUNCE_MS)
    srv.start()
    lc = None
    data = {k: {"lat": [], "cpu": [], "rchar": []} for k in files}
    missed = 0
    try:
        srv.wait_ready(300)
        lc = LoadClient(port=srv.port).start_thread()
        lc.add(1)
        if not lc.wait_all_init(30):
            raise RuntimeError(f"client not ready: {lc.summary()}")
        time.sleep(1.0)
        spacing = DEBOUNCE_MS / 1000 + 0.3
        for i in range(trials):
            for label in ("small", "big"):
                f = files[label]
                marker = f"incr-{uuid.uuid4().hex[:12]}"
                lc.add_watch(marker)
                cpu0, rc0 = tree_cpu(srv.pid), tree_rchar(srv.pid)
                t0 = append_turn(f["path"], turn_bytes(f["id"], cwd, f"{marker} append to the {label} transcript"))
                arr = lc.wait_watch(marker, 10, min_clients=1)
                if arr:
                    data[label]["lat"].append(min(arr.values()) - t0)
                else:
                    missed += 1
                time.sleep(max(0.0, t0 + spacing - time.monotonic()))
                data[label]["cpu"].append(tree_cpu(srv.pid) - cpu0)
                data[label]["rchar"].append(tree_rchar(srv.pid) - rc0)
    finally:
        if lc:
            lc.stop()
        srv.stop()

    out = {"quick": a.quick, "debounce_ms": DEBOUNCE_MS, "trials": trials, "missed": missed, "files": {}}
    rows = []
    for label in ("small", "big"):
        d = data[label]
        s = summarize(d["lat"])
        s.update(bytes=files[label]["bytes"], cpu_ms_mean=round(statistics.fmean(d["cpu"]) * 1000, 1),
                 read_bytes_mean=round(statistics.fmean(d["rchar"])))
        out["files"][label] = s
        rows.append([label, round(files[label]["bytes"] / 1e6, 1), s["n"], s["p50_ms"], s["p99_ms"], s["mean_ms"],
                     s["cpu_ms_mean"], s["read_bytes_mean"]])
    sm, bg = out["files"]["small"], out["files"]["big"]
    out["ratio_p50"] = round(bg["p50_ms"] / sm["p50_ms"], 2) if sm.get("p50_ms") and bg.get("p50_ms") else None
    out["ratio_mean"] = round(bg["mean_ms"] / sm["mean_ms"], 2) if sm.get("mean_ms") and bg.get("mean_ms") else None
    out["ratio_read_bytes"] = round(bg["read_bytes_mean"] / max(1, sm["read_bytes_mean"]), 2)
    print(table(["transcript", "MB", "samples", "p50 ms", "p99 ms", "mean ms", "server CPU ms/update",
                 "bytes read/update"], rows))
    print(f"\nratio big/small: p50 {out['ratio_p50']}, mean {out['ratio_mean']}, bytes read {out['ratio_read_bytes']}")
    p = write_results("incremental", out)
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
