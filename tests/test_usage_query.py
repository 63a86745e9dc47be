"""GET /api/usage's grouping (helm_monitor.usage.query via live.usage.UsageIndex): time zones
across daylight-saving changes and quarter-hour offsets, buckets, groups, cost bases."""

from __future__ import annotations

import pytest

from helm_monitor.live.usage import UsageIndex
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts, ms_of, tier_of
from helm_monitor.usage.query import QueryError

NOW = ms_of("2026-12-01T12:00:00Z") / 1000


def session(key, project="/home/alice/code/webapp", source="claude-code", host="h1", model="claude-opus-5-5",
            title=None, status="ended"):
    return {"key": key, "projectPath": project, "source": source, "host": host, "model": model,
            "title": title or key, "status": status}


def facts_at(*stamps, model="claude-opus-5-5", tokens=(10, 20, 30, 40, 0)):
    f = UsageFacts()
    for ts in stamps:
        f.add(ms_of(ts), model, tokens)
    return f


def index_with(*stamps, **kw):
    idx = UsageIndex(clock=lambda: NOW)
    idx.update("h1:claude-code:a", session("h1:claude-code:a"), facts_at(*stamps, **kw))
    return idx


def by_start(answer):
    return {b["start"]: b["messages"] for b in answer["buckets"]}


def test_berlin_day_boundaries_across_march_and_october_changes():
    # Hand computation: 2026-03-29 is 23 hours long in Berlin (from 2026-03-28T23:00Z to 22:00Z),
    # 2026-10-25 is 25 hours long (from 2026-10-24T22:00Z to 2026-10-25T23:00Z).
    stamps = ["2026-03-28T22:59:00Z", "2026-03-28T23:00:00Z", "2026-03-29T21:59:00Z", "2026-03-29T22:00:00Z",
              "2026-10-24T21:59:00Z", "2026-10-24T22:00:00Z", "2026-10-25T22:59:00Z", "2026-10-25T23:00:00Z"]
    idx = index_with(*stamps)
    march = idx.query(start="2026-03-28", end="2026-03-31", tz="Europe/Berlin")
    assert march["starts"] == ["2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00",
                               "2026-03-30T00:00:00+02:00"]
    assert by_start(march) == {"2026-03-28T00:00:00+01:00": 1, "2026-03-29T00:00:00+01:00": 2,
                               "2026-03-30T00:00:00+02:00": 1}
    october = idx.query(start="2026-10-24", end="2026-10-27", tz="Europe/Berlin")
    assert by_start(october) == {"2026-10-24T00:00:00+02:00": 1, "2026-10-25T00:00:00+02:00": 2,
                                 "2026-10-26T00:00:00+01:00": 1}
    # The same messages in UTC: every one on its own UTC date.
    utc = idx.query(start="2026-03-28", end="2026-03-31", tz="UTC")
    assert by_start(utc) == {"2026-03-28T00:00:00+00:00": 2, "2026-03-29T00:00:00+00:00": 2}
    utc = idx.query(start="2026-10-24", end="2026-10-27", tz="UTC")
    assert by_start(utc) == {"2026-10-24T00:00:00+00:00": 2, "2026-10-25T00:00:00+00:00": 2}


def test_berlin_repeated_hour_in_october_is_two_buckets():
    idx = index_with("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T01:40:00Z")
    answer = idx.query(start="2026-10-25", end="2026-10-26", tz="Europe/Berlin", bucket="hour")
    assert len(answer["starts"]) == 25
    assert by_start(answer) == {"2026-10-25T02:00:00+02:00": 1, "2026-10-25T02:00:00+01:00": 2}
    spring = index_with("2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z")
    answer = spring.query(start="2026-03-29", end="2026-03-30", tz="Europe/Berlin", bucket="hour")
    assert len(answer["starts"]) == 23
    assert by_start(answer) == {"2026-03-29T01:00:00+01:00": 1, "2026-03-29T03:00:00+02:00": 1}


def test_kathmandu_quarter_hour_offset():
    # Asia/Kathmandu is +05:45: 2026-11-23 begins at 2026-11-22T18:15Z.
    idx = index_with("2026-11-22T18:14:59Z", "2026-11-22T18:15:00Z", "2026-11-23T18:14:00Z", "2026-11-23T18:16:00Z")
    answer = idx.query(start="2026-11-22", end="2026-11-25", tz="Asia/Kathmandu")
    assert by_start(answer) == {"2026-11-22T00:00:00+05:45": 1, "2026-11-23T00:00:00+05:45": 2,
                                "2026-11-24T00:00:00+05:45": 1}
    hours = idx.query(start="2026-11-22T23:00:00", end="2026-11-23T01:00:00", tz="Asia/Kathmandu", bucket="hour")
    assert hours["starts"] == ["2026-11-22T23:00:00+05:45", "2026-11-23T00:00:00+05:45"]
    assert by_start(hours) == {"2026-11-22T23:00:00+05:45": 1, "2026-11-23T00:00:00+05:45": 1}


def test_weeks_start_on_monday_and_months_on_the_first():
    idx = index_with("2026-11-29T12:00:00Z", "2026-11-30T12:00:00Z", "2026-12-01T01:00:00Z")
    weeks = idx.query(start="2026-11-23", end="2026-12-07", tz="UTC", bucket="week")
    assert weeks["starts"] == ["2026-11-23T00:00:00+00:00", "2026-11-30T00:00:00+00:00"]
    assert by_start(weeks) == {"2026-11-23T00:00:00+00:00": 1, "2026-11-30T00:00:00+00:00": 2}
    months = idx.query(start="2026-11-01", end="2027-01-01", tz="America/Los_Angeles", bucket="month")
    # 2026-12-01T01:00Z is still 30 November in Los Angeles.
    assert by_start(months) == {"2026-11-01T00:00:00-07:00": 3}
    assert months["starts"] == ["2026-11-01T00:00:00-07:00", "2026-12-01T00:00:00-08:00"]


def test_groups_and_totals_add_up():
    idx = UsageIndex(clock=lambda: NOW)
    idx.update("h1:claude-code:a", session("h1:claude-code:a", project="/p/one"),
               facts_at("2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z"))
    idx.update("h1:codex:b", session("h1:codex:b", project="/p/two", source="codex", model="gpt-5.5"),
               facts_at("2026-11-20T11:00:00Z", model="gpt-5.5", tokens=(100, 5, 0, 0, 0)))
    for by in ("project", "model", "source", "host", "session"):
        answer = idx.query(start="2026-11-01", end="2026-12-01", tz="UTC", by=by)
        assert sum(g["messages"] for g in answer["groups"]) == answer["totals"]["messages"] == 3
        assert sum(b["tokens"]["total"] for b in answer["buckets"]) == answer["totals"]["tokens"]["total"]
        assert answer["totals"]["sessions"] == 2
    answer = idx.query(start="2026-11-01", end="2026-12-01", tz="UTC", by="source")
    assert {g["group"]: g["tokens"]["input"] for g in answer["groups"]} == {"claude-code": 20, "codex": 100}
    session_groups = idx.query(start="2026-11-01", end="2026-12-01", tz="UTC", by="session")["groups"]
    assert {g["label"] for g in session_groups} == {"h1:claude-code:a", "h1:codex:b"}
    idx.update("h1:codex:b", None, None)
    assert idx.query(start="2026-11-01", end="2026-12-01", tz="UTC")["totals"]["messages"] == 2


def test_cost_bases_ledger_list_price_mixed_unpriced():
    idx = UsageIndex(clock=lambda: NOW)
    listed = facts_at("2026-11-20T10:00:00Z", tokens=(12, 75, 0, 12444, 0))
    idx.update("h1:claude-code:l", session("h1:claude-code:l"), listed)
    day = idx.query(start="2026-11-20", end="2026-11-21", tz="UTC")
    assert day["totals"]["cost"]["basis"] == "list-price"
    assert day["totals"]["cost"]["usd"] == pytest.approx(0.063768)
    ledger = facts_at("2026-11-20T10:05:00Z")
    ledger.add_ledger(ms_of("2026-11-20T10:05:00Z"), "claude-opus-5-5", 0.5)
    idx.update("h1:claude-code:g", session("h1:claude-code:g"), ledger)
    day = idx.query(start="2026-11-20", end="2026-11-21", tz="UTC", by="session")
    assert day["totals"]["cost"]["basis"] == "mixed"
    assert day["totals"]["cost"]["usd"] == pytest.approx(0.563768)
    assert {g["group"]: g["cost"]["basis"] for g in day["groups"]} == {"h1:claude-code:l": "list-price",
                                                                       "h1:claude-code:g": "ledger"}
    unknown = facts_at("2026-11-20T11:00:00Z", model="claude-opus-5-6")
    idx.update("h1:claude-code:u", session("h1:claude-code:u", model="claude-opus-5-6"), unknown)
    day = idx.query(start="2026-11-20", end="2026-11-21", tz="UTC", by="model")
    groups = {g["group"]: g["cost"] for g in day["groups"]}
    assert groups["claude-opus-5-6"]["usd"] is None and groups["claude-opus-5-6"]["basis"] == "unpriced"
    assert groups["claude-opus-5-6"]["unpricedTokens"] == 100
    assert day["unpricedModels"] == ["claude-opus-5-6"]
    assert "claude-opus-5-6" in pricing.unpriced_models()


def test_long_context_tier_is_decided_per_request():
    # Sonnet 4.5, one request of 10k uncached + 240k cache-read tokens: the whole request at the
    # long-context rate ($0.204, as genai-prices' calc_price gives). Two short requests summing to
    # the same tokens stay at the base rate.
    one = UsageFacts()
    one.add(ms_of("2026-11-20T10:00:00Z"), "claude-sonnet-4-5-20250929", (10_000, 0, 240_000, 0, 0),
            tier=tier_of(250_000))
    assert pricing.session_cost(one, "claude-code")["usd"] == pytest.approx(0.204)
    two = UsageFacts()
    for _ in range(2):
        two.add(ms_of("2026-11-20T10:00:00Z"), "claude-sonnet-4-5-20250929", (5_000, 0, 120_000, 0, 0),
                tier=tier_of(125_000))
    assert pricing.session_cost(two, "claude-code")["usd"] == pytest.approx(10_000 * 3e-6 + 240_000 * 0.3e-6)  # 0.102


def test_waiting_time_observed_from_status_changes():
    clock = [ms_of("2026-11-20T10:10:00Z") / 1000]
    idx = UsageIndex(clock=lambda: clock[0])
    s = session("h1:claude-code:a", status="busy")
    idx.update(s["key"], s, facts_at("2026-11-20T10:00:00Z"))
    idx.store_listener("session-updated", [dict(s, status="waiting")])
    clock[0] += 600  # waits 10 minutes, across the 10:15 bucket boundary
    idx.store_listener("session-updated", [dict(s, status="busy")])
    answer = idx.query(start="2026-11-20", end="2026-11-21", tz="UTC", bucket="hour")
    assert answer["totals"]["waitingSeconds"] == 600
    assert [b["waitingSeconds"] for b in answer["buckets"]] == [600]
    idx.store_listener("session-updated", [dict(s, status="waiting")])
    clock[0] += 30  # still waiting: counted up to now
    assert idx.query(start="2026-11-20", end="2026-11-21", tz="UTC")["totals"]["waitingSeconds"] == 630


def test_waiting_time_survives_a_restart(tmp_path):
    clock = [ms_of("2026-11-20T10:00:00Z") / 1000]
    idx = UsageIndex(cache_dir=tmp_path, clock=lambda: clock[0])
    s = session("h1:claude-code:a", status="waiting")
    idx.store_listener("session-created", [s])
    clock[0] += 120
    idx.store_listener("session-deleted", [s])
    assert idx.save()
    again = UsageIndex(cache_dir=tmp_path, clock=lambda: clock[0])
    assert again.query(start="2026-11-20", end="2026-11-21", tz="UTC")["totals"]["waitingSeconds"] == 120
    (tmp_path / "usage-waiting.json").write_text("{not json")
    assert UsageIndex(cache_dir=tmp_path).query(tz="UTC")["totals"]["waitingSeconds"] == 0


@pytest.mark.parametrize("kw, message", [
    ({"tz": "Mars/Olympus"}, "unknown time zone"),
    ({"bucket": "minute"}, "bucket must be one of"),
    ({"by": "colour"}, "by must be one of"),
    ({"start": "2026-13-01"}, "is not a date"),
    ({"start": "2026-11-02", "end": "2026-11-01"}, "'from' must be before 'to'"),
    ({"start": "2000-01-01", "end": "2026-01-01", "bucket": "hour"}, "years"),
    ({"start": "2020-01-01", "end": "2026-01-01", "bucket": "hour"}, "buckets"),
])
def test_bad_queries_say_why(kw, message):
    with pytest.raises(QueryError, match=message):
        UsageIndex(clock=lambda: NOW).query(**kw)


def test_default_range_is_the_last_30_local_days():
    answer = UsageIndex(clock=lambda: NOW).query(tz="Pacific/Auckland")
    # 2026-12-01T12:00Z is already 2 December in Auckland: 30 days up to and including it.
    assert len(answer["starts"]) == 30
    assert (answer["from"], answer["to"]) == ("2026-11-03T00:00:00+13:00", "2026-12-03T00:00:00+13:00")


def test_a_range_starting_inside_a_week_or_month_keeps_that_partial_bucket():
    idx = index_with("2026-11-03T10:00:00Z", "2026-11-20T10:00:00Z", "2026-12-01T10:00:00Z")
    for bucket in ("day", "week", "month"):
        answer = idx.query(start="2026-11-02", end="2026-12-02", tz="UTC", bucket=bucket)
        assert answer["totals"]["messages"] == 3, bucket
    months = idx.query(start="2026-11-02", end="2026-12-02", tz="UTC", bucket="month")
    assert by_start(months) == {"2026-11-01T00:00:00+00:00": 2, "2026-12-01T00:00:00+00:00": 1}
    # a message before the range, in the same month, is not counted
    idx = index_with("2026-11-01T10:00:00Z", "2026-11-03T10:00:00Z")
    assert idx.query(start="2026-11-02", end="2026-12-01", tz="UTC", bucket="month")["totals"]["messages"] == 1


# ------------------------------------------------------------------ unit prices saved for a restart
_PRICE_RUN = r"""
import json, sys
from helm_monitor.live.usage import UsageIndex
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import UsageFacts, ms_of
facts = UsageFacts()
for ts, model in [("2026-11-30T10:00:00Z", "claude-opus-5-5"), ("2026-12-01T09:00:00Z", "claude-sonnet-5"),
                  ("2026-12-01T09:30:00Z", "claude-unknown-9")]:
    facts.add(ms_of(ts), model, (1000, 2000, 3000, 400, 50))
idx = UsageIndex(cache_dir=sys.argv[1])
taken = idx.load_prices()
cost = pricing.session_cost(facts, "claude-code")
saved = idx.save()
print(json.dumps({"taken": taken, "cost": cost, "imported": "genai_prices.data" in sys.modules, "saved": saved,
                  "unpriced": sorted(pricing.unpriced_models())}))
"""


def _price_run(cache_dir) -> dict:
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _PRICE_RUN, str(cache_dir)], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_saved_unit_prices_price_a_restart_without_the_table(tmp_path):
    first = _price_run(tmp_path)
    assert first["taken"] == 0 and first["imported"] and first["saved"]
    assert first["cost"]["basis"] == "list-price" and first["cost"]["usd"] > 0
    assert first["cost"]["unpricedModels"] == ["claude-unknown-9"] == first["unpriced"]
    saved = (tmp_path / "usage-prices.json").read_bytes()
    # A restart over the same history: the same cost, the unknown model still unpriced, no import.
    again = _price_run(tmp_path)
    assert again["taken"] >= 3 and not again["imported"]
    assert again["cost"] == first["cost"] and again["unpriced"] == first["unpriced"]
    assert (tmp_path / "usage-prices.json").read_bytes() == saved  # nothing new: not written again
    # Saved by another price table (a genai-prices upgrade): worked out again from the table.
    import json
    doc = json.loads(saved)
    doc["table"] = "another table"
    (tmp_path / "usage-prices.json").write_text(json.dumps(doc))
    other = _price_run(tmp_path)
    assert other["taken"] == 0 and other["imported"] and other["cost"] == first["cost"]


_LEAN_RUN = r"""
import json, sys
from datetime import datetime, timezone
from helm_monitor.usage import pricing
at = int(datetime(2026, 11, 30, 10, tzinfo=timezone.utc).timestamp() * 1000)
units = {tier: pricing.units("claude-sonnet-4-5", "claude-code", at, tier) for tier in (0, 200_000)}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("genai_prices", "httpx", "httpx2", "pydantic"))
import genai_prices  # anyone's import afterwards: the real package, with the modules already loaded
from genai_prices import Usage, calc_price
when = datetime(2026, 11, 30, 10, tzinfo=timezone.utc)
direct = {}
for tier in (0, 200_000):
    p = tier + 1
    price = lambda **u: float(calc_price(Usage(**u), "claude-sonnet-4-5", provider_id="anthropic",
                                         genai_request_timestamp=when).total_price)
    base = price(input_tokens=p)
    direct[tier] = [base / p, (price(input_tokens=p, output_tokens=1000) - base) / 1000,
                    price(input_tokens=p, cache_read_tokens=p) / p, price(input_tokens=p, cache_write_tokens=p) / p]
print(json.dumps({"units": units, "direct": direct, "loaded": loaded,
                  "same_types": sys.modules["genai_prices.types"] is genai_prices.types}))
"""


def test_the_price_table_is_loaded_without_what_fetches_prices():
    """pricing loads genai-prices' table and arithmetic alone (not httpx, not pydantic, not the package's
    __init__), and prices exactly as the package's own calc_price; importing the package afterwards works."""
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _LEAN_RUN], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "genai_prices.data" in got["loaded"] and "genai_prices" not in got["loaded"]
    assert not [m for m in got["loaded"] if m.startswith(("httpx", "pydantic", "genai_prices.update_prices"))]
    assert got["same_types"]
    for tier in ("0", "200000"):
        assert got["units"][tier][:4] == pytest.approx(got["direct"][tier], rel=1e-12)
    assert got["units"]["200000"][0] > got["units"]["0"][0]  # the long-context tier is priced as such


# Unit prices of every model of the three providers the agents' models name, on days either side of
# price changes, in every tier: by helm-monitor's lean loading (_EVERY_LEAN) and by the package
# imported as it is, pydantic and all (_EVERY_DIRECT), each in its own process.
_EVERY_MODEL = r"""
import json, sys
from datetime import datetime, timezone
DAYS = [datetime(2025, 6, 1, tzinfo=timezone.utc), datetime(2026, 11, 30, tzinfo=timezone.utc)]
SOURCES = {"anthropic": "claude-code", "openai": "codex", "google": "gemini"}
"""
_EVERY_LEAN = _EVERY_MODEL + r"""
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import TIER_STARTS
snap = pricing._get_snapshot()
out = {}
for provider in snap.providers:
    if provider.id in SOURCES:
        for model in provider.models:
            for day in DAYS:
                for tier in (0, *TIER_STARTS):
                    got = pricing.units(model.id, SOURCES[provider.id], int(day.timestamp() * 1000), tier)
                    out[f"{provider.id}|{model.id}|{day.date()}|{tier}"] = got and list(got)
print(json.dumps({"units": out, "pydantic": "pydantic" in sys.modules}))
"""
_EVERY_DIRECT = _EVERY_MODEL + r"""
import genai_prices
from genai_prices import Usage, calc_price
from helm_monitor.usage.facts import TIER_STARTS
out = {}
for provider in genai_prices.data_snapshot.get_snapshot().providers:
    if provider.id in SOURCES:
        for model in provider.models:
            for day in DAYS:
                for tier in (0, *TIER_STARTS):
                    p = tier + 1
                    def price(**u):
                        return float(calc_price(Usage(**u), model.id, provider_id=provider.id,
                                                genai_request_timestamp=day).total_price)
                    try:
                        base = price(input_tokens=p)
                        got = [base / p, (price(input_tokens=p, output_tokens=10**6) - base) / 10**6,
                               price(input_tokens=p, cache_read_tokens=p) / p,
                               price(input_tokens=p, cache_write_tokens=p) / p,
                               price(input_tokens=p, cache_write_tokens=p, cache_write_1h_tokens=p) / p]
                    except LookupError:
                        got = None
                    out[f"{provider.id}|{model.id}|{day.date()}|{tier}"] = got
print(json.dumps({"units": out, "pydantic": "pydantic" in sys.modules}))
"""


def test_every_model_is_priced_as_the_package_imported_as_it_is_prices_it():
    """The lean loading changes nothing about prices: for every Anthropic, OpenAI and Google model of
    the installed table, on two days and in every tier, the unit prices equal those of the package
    imported with pydantic in another process."""
    import json
    import subprocess
    import sys

    def run(code):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    lean, direct = run(_EVERY_LEAN), run(_EVERY_DIRECT)
    assert not lean["pydantic"] and direct["pydantic"]  # each was loaded the way it says
    assert lean["units"].keys() == direct["units"].keys() and len(lean["units"]) > 100
    priced = 0
    for key, want in direct["units"].items():
        got = lean["units"][key]
        if want is None:
            assert got is None, key
        else:
            assert got == pytest.approx(want, rel=1e-12), key
            priced += 1
    assert priced > 100


@pytest.mark.parametrize("spoil", [
    lambda d: d.update(format=99),
    lambda d: d["units"].append(["m", "claude-code", 86_400_000, 0, "", [1, 2, 3]]),
    lambda d: d["units"].append(["m", "claude-code", 1234, 0, "", None]),
    lambda d: d["units"].append(["m", "claude-code", 86_400_000, 0, "", [-1, 0, 0, 0, 0]]),
    lambda d: d["units"].append(["m", "claude-code", 86_400_000, "0", "", None]),
    lambda d: d.update(unpriced={"m": 3}),
    lambda d: d.update(units="all of them"),
])
def test_odd_saved_unit_prices_are_not_believed(spoil):
    doc = {"format": pricing.UNITS_FORMAT, "table": pricing.table_identity(),
           "units": [["claude-x", "claude-code", 86_400_000, 0, "", [1e-6, 2e-6, 3e-7, 4e-6, 5e-6]]], "unpriced": {}}
    spoil(doc)
    assert pricing.import_units(doc) == 0
    assert pricing.units("claude-x", "claude-code", 86_400_000 + 5) is None  # not taken in: no such model
