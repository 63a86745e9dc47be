"""GET /api/usage and /usage of a real server (gunicorn + gevent worker) over real transcripts:
numbers, live updates, refusals (SPEC 6 holds for the new routes), /metrics counters."""

from __future__ import annotations

import json
import time

import pytest

from helm_monitor.usage.facts import ms_of
from tests.support.server import wait_until
from tests.test_api import request

TOKEN = "usage-token-4f1d"
RANGE = "from=2026-11-01&to=2026-12-01&tz=UTC"
USAGE = {"input_tokens": 12, "output_tokens": 75, "cache_read_input_tokens": 0,
         "cache_creation_input_tokens": 12444,
         "cache_creation": {"ephemeral_5m_input_tokens": 12444, "ephemeral_1h_input_tokens": 0}}


def turn(s, when: str, mid: str, usage=None, model="claude-opus-5-5"):
    s.write(s.prompt_record("go", timestamp=when),
            [dict(r, timestamp=when) for r in s.assistant_records("ok", usage=usage or USAGE, message_id=mid,
                                                                  model=model)])


def test_usage_counts_transcripts_and_moves_when_one_is_appended_to(claude, server_factory):
    s = claude.session("/home/alice/code/webapp")
    turn(s, "2026-11-20T10:00:00.000Z", "msg_usage_a1")
    server = server_factory(claude.root)
    answer = server.get_json(f"/api/usage?{RANGE}&by=model")
    totals = answer["totals"]
    assert totals["messages"] == 1 and totals["sessions"] == 1
    assert totals["tokens"] == {"input": 12, "output": 75, "cacheRead": 0, "cacheCreation": 12444, "total": 12531}
    # No cost-state ledger in this transcript: the list price of claude-opus-5-5 (genai-prices).
    assert totals["cost"]["basis"] == "list-price"
    assert totals["cost"]["usd"] == pytest.approx(12 * 4e-6 + 75 * 20e-6 + 12444 * 5e-6)
    assert [b["start"] for b in answer["buckets"]] == ["2026-11-20T00:00:00+00:00"]
    assert answer["groups"][0]["group"] == "claude-opus-5-5"
    listed = server.get_json("/api/sessions/all")[0]
    assert listed["cost"]["usd"] == pytest.approx(totals["cost"]["usd"]) and listed["cost"]["basis"] == "list-price"

    started = time.monotonic()
    turn(s, "2026-11-21T09:00:00.000Z", "msg_usage_a2")
    moved = wait_until(lambda: (a := server.get_json(f"/api/usage?{RANGE}"))["totals"]["messages"] == 2 and a,
                       timeout=5, message="the appended message counted")
    assert time.monotonic() - started < 2.0  # debounce window (0.15 s here) + a read
    assert [b["start"][:10] for b in moved["buckets"]] == ["2026-11-20", "2026-11-21"]
    assert moved["totals"]["tokens"]["output"] == 150


def test_usage_of_the_real_samples_is_their_ledger(sample_dir, server_factory):
    root = sample_dir("claude-code-2.1.330")
    server = server_factory(root)
    sessions = server.get_json("/api/sessions/all")
    answer = server.get_json("/api/usage?from=2026-11-01&to=2026-12-01&tz=UTC&by=session")
    ledger = {}
    for path in root.glob("projects/*/*.jsonl"):
        last = None
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "cost-state":
                last = rec["totalCostUSD"]
        if last is not None:
            ledger[path.stem] = last
    assert ledger
    groups = {g["group"].split(":")[-1]: g for g in answer["groups"]}
    for sid, usd in ledger.items():
        assert groups[sid]["cost"]["basis"] == "ledger"
        assert groups[sid]["cost"]["usd"] == pytest.approx(usd)
    assert {s["id"]: s["cost"]["usd"] for s in sessions if s["id"] in ledger} == pytest.approx(ledger)
    assert answer["totals"]["cost"]["usd"] == pytest.approx(sum(ledger.values()))


def test_bad_queries_are_refused_with_a_reason(claude, server_factory):
    server = server_factory(claude.root)
    for query, words in [("tz=Not/AZone", "unknown time zone"), ("bucket=fortnight", "bucket must be"),
                         ("by=colour", "by must be"), ("from=yesterday", "is not a date"),
                         ("tz=" + "x" * 80, "at most 64")]:
        status, headers, body = request(server, "/api/usage?" + query)
        assert status == 400, query
        assert words in json.loads(body)["error"]
        assert headers["Cache-Control"] == "no-store"


def test_usage_routes_need_the_token_and_the_right_host(claude, server_factory):
    server = server_factory(claude.root, args=["--token", TOKEN])
    status, headers, body = request(server, "/api/usage")
    assert status == 401 and "error" in json.loads(body) and TOKEN not in body.decode()
    status, headers, body = request(server, "/usage")
    assert status == 401 and headers["Content-Type"].startswith("text/plain") and b"?token=" in body
    status, _, body = request(server, "/api/usage", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "totals" in json.loads(body)
    status, _, _ = request(server, "/api/usage", headers={"Authorization": f"Bearer {TOKEN}",
                                                           "Host": "attacker.example"})
    assert status in (400, 403, 421)
    status, _, _ = request(server, "/api/usage", headers={"Authorization": f"Bearer {TOKEN}",
                                                           "Origin": "http://attacker.example"})
    assert status == 403


def test_metrics_count_tokens_and_dollars_by_model(claude, server_factory):
    s = claude.session("/home/alice/code/webapp")
    turn(s, "2026-11-20T10:00:00.000Z", "msg_metrics_1")
    turn(s, "2026-11-20T10:01:00.000Z", "msg_metrics_2", model="claude-opus-5-6")  # no list price
    server = server_factory(claude.root)
    wait_until(lambda: server.get_json(f"/api/usage?{RANGE}")["totals"]["messages"] == 2, timeout=5)
    status, _, body = request(server, "/metrics")
    text = body.decode()
    assert 'helm_usage_tokens_total{kind="output",model="claude-opus-5-5"} 75.0' in text
    assert 'helm_usage_messages_total{model="claude-opus-5-6"} 1.0' in text
    line = next(x for x in text.splitlines()
                if x.startswith('helm_usage_cost_usd_total{basis="list-price",model="claude-opus-5-5"}'))
    assert float(line.split()[-1]) == pytest.approx(12 * 4e-6 + 75 * 20e-6 + 12444 * 5e-6)
    assert 'helm_usage_unpriced_tokens_total{model="claude-opus-5-6"} 12531.0' in text
    assert not [x for x in text.splitlines() if x.startswith("helm_usage_cost_usd_total") and "opus-5-6" in x]
    health = server.get_json("/healthz")
    assert "claude-opus-5-6" in health["unpricedModels"]
    assert ms_of("2026-11-20T10:00:00Z")  # (the facts' clock is the records' own)
