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
@pytest.mark.parametrize("name", ["cold_start", "live_latency", "fanout", "incremental", "idle", "soak"])
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
