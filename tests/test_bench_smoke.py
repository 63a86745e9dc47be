"""Each benchmark runs end to end on tiny sizes, so bench/ cannot rot.

Benchmarks report numbers; they are not timed tests. Only that each runs and
writes its results is checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["cold_start", "live_latency", "fanout", "incremental", "idle", "soak", "page_load"])
def test_benchmark_quick_run(name, tmp_path):
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick"], capture_output=True, text=True,
                          timeout=280, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = BENCH / "results" / f"{name}-quick.json"
    assert results.is_file()
    assert json.loads(results.read_text())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_agents_quick_run_reports_every_source(tmp_path):
    """bench/agents.py --quick: every agent's sessions listed at start, every source's changes seen live."""
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "agents.py"), "--quick"], capture_output=True, text=True,
                          timeout=100, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "agents-quick.json").read_text())
    sources = {"claude-code", "codex", "opencode", "gemini"}
    assert {r["kind"] for r in res["starts"]} == {"cold", "cold+cache", "warm"}
    for start in res["starts"]:
        assert start["t_all_s"] is not None, start
        assert {s: start["served"].get(s, 0) >= n for s, n in res["corpus"]["counts"].items()} == dict.fromkeys(sources, True)
        assert start["peak_worker_rss_mb"] > 0
    live = res["live"]["sources"]
    assert set(live) == sources
    for src, r in live.items():
        assert r["n"] == res["live"]["reps"] and r["missed"] == 0, (src, r)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_page_scale_quick_run_reports_every_metric(tmp_path):
    """bench/page_scale.py --quick: the page in Chromium with 300 sessions; every metric measured and sane."""
    chromium = os.environ.get("HELM_CHROMIUM", "/usr/lib/chromium/chromium")
    if not os.path.exists(chromium):
        pytest.skip(f"no Chromium at {chromium}")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "page_scale.py"), "--quick"], capture_output=True, text=True,
                          timeout=280, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "page_scale-quick.json").read_text())
    assert res["quick"] and res["debounce_ms"] > 0
    (run,) = res["runs"]
    n = run["sessions"]
    assert run["served"] == n and run["served_active"] >= 1
    ld = run["load"]
    assert 0 < ld["first_row_dom_ms"] <= ld["first_row_ms"] < 60_000
    assert ld["first_row_dom_ms"] <= ld["complete_dom_ms"] <= ld["complete_ms"] < 60_000
    assert str(n) in ld["total_text"].replace(",", "").replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    mem = run["memory"]
    assert 0.1 < mem["js_heap_used_mb"] < 500 and 0.1 < mem["cdp_js_heap_used_after_gc_mb"] < 500
    assert 0 < mem["rows_in_dom"] <= mem["dom_elements"] and mem["dom_nodes"] > 0
    ks = run["keystrokes"]
    assert ks["n"] == sum(len(q) + 1 for q in res["queries"])
    assert 0 < ks["p50_ms"] <= ks["p95_ms"] <= ks["max_ms"] < 10_000
    assert ks["unexpected_rows"] == 0, ks["checks"]
    by_query = {c["query"]: c for c in ks["checks"]}
    assert by_query["zqx"]["shown"] == 0 and 0 < by_query["#4821"]["shown"] <= 3 < by_query["fix"]["shown"]
    for phase in ("update", "new_session"):
        lv = run["live"][phase]
        assert lv["missed"] == 0 and lv["n"] == res["reps"], (phase, lv)
        assert 0 < lv["p50_ms"] <= lv["p95_ms"] < 5_000, (phase, lv)
    assert run["live"]["update"]["count_ok"]
    assert abs(run["live"]["clock_offset_ms"]) < 1000
    for phase in ("load", "keystrokes"):
        assert run["profile"][phase]["top_self"], phase
    assert not run["page_errors"], run["page_errors"]


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_team_quick_run_converges_and_resumes_without_loss(tmp_path):
    """bench/team.py --quick: simulated agents, a real redis-server, 4 web workers, a worker killed;
    every client ends at the truth and every cut client resumes by replay with nothing lost."""
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "team.py"), "--quick"], capture_output=True, text=True,
                          timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "team-quick.json").read_text())
    assert res["quick"] and res["verdicts"]["state_equals_truth"], res["state"]
    assert res["resume"]["resumed"] == res["resume"]["cut"] > 0


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_wire_floor_quick_run_delivers_every_block(tmp_path):
    """bench/wire_floor.py --quick: every block sent to every client arrives, and is timed."""
    proc = subprocess.run([sys.executable, str(BENCH / "wire_floor.py"), "--quick"], capture_output=True, text=True,
                          timeout=50, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "wire_floor-quick.json").read_text())
    # 40 batches in 2 s when the machine keeps up; fewer when the senders fall behind (the suite's load)
    assert res["quick"] and 0 < res["expected_blocks"] <= 100 * 40, res
    assert res["delivered_blocks"] == res["expected_blocks"], res
    assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p99"] <= res["latency_ms"]["max"], res


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_usage_quick_run_measures_queries_and_both_cold_starts(tmp_path):
    """bench/usage.py --quick: /api/usage a year by day (three groupings) over a history that has usage,
    and cold starts of this tree and of the commit before issue 13."""
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "usage.py"), "--quick"], capture_output=True, text=True,
                          timeout=280, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "usage-quick.json").read_text())
    assert res["quick"] and res["counted"], res["queries"]
    runs = res["queries"]["runs"]
    assert set(runs) == {"none", "model", "project"}
    for by, r in runs.items():
        assert r["n"] == 10 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"], (by, r)
        assert r["days"] >= 365 and r["buckets"] > 0 and r["total_tokens"] > 0, (by, r)
    assert runs["model"]["groups"] > 1 and runs["project"]["groups"] > 1
    for kind in ("cold", "restart"):
        s = res["cold_start"]["summary"][kind]
        assert s["base_median_s"] > 0 and s["head_median_s"] > 0, s


def test_search_quick_run_builds_queries_and_follows_appends(tmp_path):
    """bench/search.py --quick: the real indexer over a 20 MB history, queries, appends searchable."""
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "search.py"), "--quick"], capture_output=True, text=True,
                          timeout=200, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "search-quick.json").read_text())
    b = res["build"]
    assert res["quick"] and b["seconds"] > 0 and b["documents"] > 100 and b["sessions"] > 10 and b["indexMB"] > 0
    assert res["queries"]["common word"]["total"] > 0 and res["queries"]["prefix"]["total"] > 0
    for label, q in res["queries"].items():
        assert 0 < q["p50ms"] <= q["p95ms"], (label, q)
    assert res["append"]["n"] == 10 and 0 < res["append"]["p50s"] <= res["append"]["maxs"] < 30


def test_transcript_open_quick_run_shows_the_tail(tmp_path):
    """bench/transcript_open.py --quick: a 5 MB transcript opened through REST and in Chromium."""
    env = {**os.environ, "HELM_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(BENCH / "transcript_open.py"), "--quick"], capture_output=True,
                          text=True, timeout=200, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((BENCH / "results" / "transcript_open-quick.json").read_text())
    rest, page = res["rest"], res["page"]
    assert res["quick"] and rest["total"] > 100 and rest["cold_open"]["p50_ms"] > 0
    # The tail was asked for, and it is what the page shows: the last tail_size messages.
    assert rest["cold"][0]["tail_first_index"] == rest["total"] - res["tail_size"]
    assert page["tail_shown"] and not page["page_errors"]
    assert page["cold"]["max_index"] == rest["total"] - 1 and 0 < page["cold"]["first_ms"] <= page["cold"]["tail_ms"]
