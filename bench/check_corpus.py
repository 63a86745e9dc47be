#!/usr/bin/env python3
"""Sanity-check a corpus made by make_corpus.py: every line parses as one JSON object,
the record mix by bytes, the size distribution, and the manifest's counts.

    python bench/check_corpus.py /tmp/helm-bench/corpus-100MB
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path


def main(root: str) -> int:
    root = Path(root)
    man = json.loads((root / "corpus-manifest.json").read_text())
    by_type_n, by_type_b = collections.Counter(), collections.Counter()
    mains, subs, sizes, errors = 0, 0, [], 0
    max_line = big = 0
    first_keys_ok = True
    for p in sorted((root / "projects").rglob("*.jsonl")):
        rel = p.relative_to(root / "projects").parts
        is_main = len(rel) == 2 and not rel[1].startswith("agent-")
        if p.name == "journal.jsonl":
            continue
        mains += is_main
        subs += not is_main
        data = p.read_bytes()
        if is_main:
            sizes.append(len(data))
        if data and not data.endswith(b"\n"):
            print("no trailing newline:", p)
            errors += 1
        for line in data.splitlines():
            max_line = max(max_line, len(line))
            big += len(line) > 1_000_000
            try:
                r = json.loads(line)
            except ValueError as exc:
                print("bad line in", p, exc)
                errors += 1
                continue
            if not isinstance(r, dict):
                errors += 1
                continue
            t = r.get("type", "?")
            by_type_n[t] += 1
            by_type_b[t] += len(line) + 1
            if t == "attachment" and list(r)[:3] != ["parentUuid", "isSidechain", "attachment"] and "agentId" not in r:
                first_keys_ok = False
    total = sum(by_type_b.values())
    print(f"{'type':24} {'records':>9} {'MB':>9} {'share':>6}")
    for t, b in by_type_b.most_common():
        print(f"{t:24} {by_type_n[t]:9} {b / 1e6:9.2f} {100 * b / total:5.1f}%")
    sizes.sort()
    q = lambda f: sizes[min(len(sizes) - 1, int(f * len(sizes)))]
    print(f"\nmain transcripts {mains} (manifest {man['main_transcripts']}), other transcripts {subs}, "
          f"projects {len(list((root / 'projects').iterdir()))}")
    print(f"sizes: p10 {q(.1) / 1e3:.0f} KB, median {q(.5) / 1e3:.0f} KB, p90 {q(.9) / 1e3:.0f} KB, "
          f"max {sizes[-1] / 1e6:.1f} MB; empty {sum(1 for s in sizes if s == 0)}; longest line {max_line / 1e6:.2f} MB; "
          f"lines > 1 MB: {big}")
    print(f"total JSONL {total / 1e6:.1f} MB (manifest {man['transcript_bytes'] / 1e6:.1f} MB); "
          f"attachment first keys ok: {first_keys_ok}; parse errors: {errors}")
    ok = errors == 0 and mains == man["main_transcripts"] and first_keys_ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
