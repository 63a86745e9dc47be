#!/usr/bin/env python3
"""The dashboard's load in a browser with an empty cache, this tree against a commit.

    .venv/bin/python bench/page_load.py [--quick] [--rounds 12] [--base-rev ae93c14]

Both servers (``python -m helm_monitor``, no parse cache) read the same copy of the real 2.1.330
sample sessions; each round opens, in a fresh Chromium context (nothing cached) and alternating
which server goes first:
  dashboard   ``/`` until the first ``[data-session-key]`` row is in the DOM (navigation start to
              Playwright seeing it), with the page's own domContentLoaded, and the vendored
              scripts the page asked for by then;
  deep link   ``/?session=<key>`` until the first message's Markdown is rendered (``.md-content``).
The base (ae93c14) loads markdown-it, DOMPurify and highlight.js with every page; this tree loads
them when a session's view first needs them (highlight.js: the first fenced code), or when idle.
Writes bench/results/page_load.json (--quick: two rounds, page_load-quick.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time

from common import REPO, WORK, fmt, table, write_results
from page_scale import AppServer, export_rev

SAMPLES = REPO / "tests" / "fixtures" / "claude-code-2.1.330"
CHROMIUM = "/usr/lib/chromium/chromium"


def one_load(browser, url: str, selector: str) -> dict:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        scripts: list[str] = []
        page.on("request", lambda r: scripts.append(r.url.rsplit("/", 1)[1])
                if "/vendor/" in r.url and r.url.endswith(".js") else None)
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector(selector, timeout=30_000)
        shown_ms = (time.monotonic() - t0) * 1000
        dcl = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                            " return n ? n.domContentLoadedEventEnd : null; }")
        return {"shown_ms": round(shown_ms, 1), "dom_content_loaded_ms": None if dcl is None else round(dcl, 1),
                "vendor_scripts_by_then": sorted(scripts)}
    finally:
        ctx.close()


def summary(runs: list[dict]) -> dict:
    shown = [r["shown_ms"] for r in runs]
    dcl = [r["dom_content_loaded_ms"] for r in runs if r["dom_content_loaded_ms"] is not None]
    return {"shown_median_ms": round(statistics.median(shown), 1), "shown_min_ms": min(shown),
            "dcl_median_ms": round(statistics.median(dcl), 1) if dcl else None,
            "vendor_scripts_by_then": runs[0]["vendor_scripts_by_then"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two rounds (the smoke test)")
    ap.add_argument("--rounds", type=int, help="(default 12; quick 2)")
    ap.add_argument("--base-rev", default="ae93c14", help="the commit to compare with (default ae93c14: "
                    "the vendored scripts loaded with the page)")
    a = ap.parse_args()
    a.rounds = a.rounds or (2 if a.quick else 12)
    from playwright.sync_api import sync_playwright

    corpus = WORK / "page-load-claude"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(SAMPLES, corpus)
    base_dir, base_sha = export_rev(a.base_rev)
    servers = {"base": AppServer(corpus, app_dir=base_dir), "tree": AppServer(corpus)}
    runs: dict[str, dict[str, list]] = {name: {"dashboard": [], "deep link": []} for name in servers}
    try:
        for srv in servers.values():
            srv.start()
        for srv in servers.values():
            deadline = time.monotonic() + 60
            while not ((h := srv.health()) and h.get("scan") == "complete"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready: {srv.log_tail()}")
                time.sleep(0.05)
        status, body = servers["tree"].request("GET", "/api/claude-sessions/all")
        key = max(json.loads(body), key=lambda s: s.get("messageCount") or 0)["key"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                for i in range(a.rounds):
                    order = list(servers) if i % 2 == 0 else list(servers)[::-1]
                    for name in order:
                        url = f"http://127.0.0.1:{servers[name].port}/"
                        runs[name]["dashboard"].append(one_load(browser, url, "[data-session-key]"))
                        runs[name]["deep link"].append(one_load(browser, f"{url}?session={key}",
                                                                "#messages .msg .md-content"))
                    print(f"round {i + 1}/{a.rounds}", flush=True)
            finally:
                browser.close()
    finally:
        for srv in servers.values():
            srv.stop()
    out = {"quick": a.quick, "base_rev": base_sha, "rounds": a.rounds, "session": key,
           "summary": {name: {kind: summary(r) for kind, r in kinds.items()} for name, kinds in runs.items()},
           "runs": runs}
    rows = []
    for kind in ("dashboard", "deep link"):
        b, t = out["summary"]["base"][kind], out["summary"]["tree"][kind]
        rows.append([kind, fmt(b["shown_median_ms"]), fmt(t["shown_median_ms"]), fmt(b["shown_min_ms"]),
                     fmt(t["shown_min_ms"]), fmt(b["dcl_median_ms"]), fmt(t["dcl_median_ms"]),
                     " ".join(b["vendor_scripts_by_then"]) or "-", " ".join(t["vendor_scripts_by_then"]) or "-"])
    print(table([f"empty cache, {a.rounds} rounds", f"base {base_sha[:7]} median ms", "this tree median ms",
                 "base min ms", "this tree min ms", "base DCL ms", "this tree DCL ms", "base: vendor scripts by then",
                 "this tree: by then"], rows))
    print(f"wrote {write_results('page_load', out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
