#!/usr/bin/env python3
"""Full-text search (issue 14, SPEC 11): building the index, querying it, following an append.

    .venv/bin/python bench/search.py [--quick] [--size 1GB] [--queries 50]

(a) Build: the real indexer process (``python -m helm_monitor.search.indexer``, as the server
    starts it) over a generated history (bench/make_corpus.py) with an empty cache directory,
    from its start until search.db says ``ready``. Reported: seconds, the index's size on disk
    (search.db with its WAL) and the indexer's peak RSS. Targets: <= 60 s, <= 120 MB.
(b) Queries: ``helm_monitor.search.query.search`` (what ``GET /api/search`` runs in the
    worker's thread pool) for common words, rare words, phrases, prefixes and filters,
    ``--queries`` times each after 3 unmeasured. Target: p95 <= 50 ms.
(c) Append: with the indexer following the history, a prompt with a new word is appended to
    a transcript (one O_APPEND write, as Claude Code writes) and searched for every 10 ms
    until found; 10 times. Target: searchable within 2 s.

--quick: a 20 MB history and 10 queries each (a smoke test). Results: bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import append_turn, fmt, pct, table, write_results  # noqa: E402
from make_corpus import ensure_corpus, parse_size  # noqa: E402

from helm_monitor.search import db, query  # noqa: E402

BUILD_TARGET_S = 60.0
SIZE_TARGET_MB = 120.0
QUERY_TARGET_MS = 50.0
APPEND_TARGET_S = 2.0
HOST = "bench"
QUERIES = [("common word", "the", {}), ("common word, by recency", "file", {"sort": "recent"}),
           ("two words", "error handling", {}), ("phrase", '"unit tests"', {}), ("prefix", "refact", {}),
           ("rare word", "idempotent", {}), ("with tool results", "return", {"results": True}),
           ("agent filter", "test", {"source": "claude-code"})]


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_indexer(corpus: Path, cache: Path) -> subprocess.Popen:
    sources = {"claude-code": {"root": str(corpus)}}
    return subprocess.Popen([sys.executable, "-m", "helm_monitor.search.indexer", "--cache-dir", str(cache),
                             "--host", HOST, "--sources", json.dumps(sources), "--log-level", "warning"],
                            stdin=subprocess.PIPE)


def state(path: str) -> dict:
    try:
        conn = db.open_reader(path)
    except db.IndexUnavailable:
        return {}
    try:
        return db.meta(conn)
    finally:
        conn.close()


def size_mb(path: str) -> float:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s)) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", default="1GB")
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    size = parse_size("20MB" if args.quick else args.size)
    calls = 10 if args.quick else args.queries
    work = Path(os.environ.get("HELM_BENCH_DIR", "/tmp/helm-bench"))
    corpus = work / f"corpus-{size // 1_000_000}MB-s1"
    manifest = ensure_corpus(corpus, size)
    cache = Path(tempfile.mkdtemp(prefix="search-", dir=work))
    path = db.path_in(cache)
    out: dict = {"quick": args.quick, "corpusBytes": manifest.get("total_bytes") or size,
                 "sessions": manifest.get("sessions")}
    proc = start_indexer(corpus, cache)
    try:
        began = time.monotonic()
        hwm = 0
        while state(path).get("state") != "ready":
            if proc.poll() is not None:
                raise SystemExit(f"the indexer exited with {proc.returncode}")
            hwm = max(hwm, _hwm_kb(proc.pid))
            time.sleep(0.1)
        build_s = time.monotonic() - began
        hwm = max(hwm, _hwm_kb(proc.pid))
        info = state(path)
        out["build"] = {"seconds": round(build_s, 2), "indexMB": round(size_mb(path), 1),
                        "documents": int(info.get("documents") or 0), "sessions": int(info.get("sessions") or 0),
                        "indexerPeakRssMB": round(hwm / 1024, 1)}

        out["queries"] = {}
        for label, q, kw in QUERIES:
            times, total = [], 0
            for n in range(calls + 3):
                t = time.perf_counter()
                answer = query.search(path, q, limit=20, **kw)
                if n >= 3:
                    times.append((time.perf_counter() - t) * 1000)
                total = answer["total"]
            out["queries"][label] = {"q": q, **{k: str(v) for k, v in kw.items()}, "total": total,
                                     "p50ms": round(statistics.median(times), 2), "p95ms": round(pct(times, 95), 2)}

        # The newest main transcripts (not the legacy agent-*.jsonl subagent files beside them).
        files = sorted((p for p in corpus.glob("projects/*/*.jsonl") if not p.name.startswith("agent-")),
                       key=lambda p: p.stat().st_mtime)[-10:]
        lags = []
        sizes = {f: f.stat().st_size for f in files}  # the corpus is put back as it was afterwards
        nonce = time.time_ns()
        for n, f in enumerate(files):
            word = f"zyzzyva{nonce}n{n}"
            first = next(json.loads(line) for line in f.open() if '"type":"user"' in line)
            first.update(uuid=f"bench-append-{nonce}-{n}", message={"role": "user", "content": f"{word} bench"})
            written = append_turn(f, (json.dumps(first) + "\n").encode())
            while not query.search(path, word)["hits"]:
                if time.monotonic() - written > 30:
                    raise SystemExit("an append was not searchable within 30 s")
                time.sleep(0.01)
            lags.append(time.monotonic() - written)
        out["append"] = {"p50s": round(statistics.median(lags), 3), "maxs": round(max(lags), 3), "n": len(lags),
                         "each": [round(x, 3) for x in lags]}
    finally:
        for f, original in locals().get("sizes", {}).items():
            os.truncate(f, original)
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(cache, ignore_errors=True)
    p = write_results("search", out)
    b = out["build"]
    print(f"index build over {out['corpusBytes'] / 1e6:.0f} MB ({b['sessions']} sessions, {b['documents']} messages): "
          f"{b['seconds']} s (target <= {BUILD_TARGET_S:.0f}), {b['indexMB']} MB on disk (target <= {SIZE_TARGET_MB:.0f}), "
          f"indexer peak RSS {b['indexerPeakRssMB']} MB")
    print(table(["query", "q", "hits", "p50 ms", "p95 ms"],
                [[k, v["q"], v["total"], fmt(v["p50ms"]), fmt(v["p95ms"])] for k, v in out["queries"].items()]))
    print(f"append searchable: p50 {out['append']['p50s']} s, max {out['append']['maxs']} s (target <= {APPEND_TARGET_S})")
    print(f"results: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
