"""Usage facts and cost of the Codex, OpenCode and Gemini CLI sources (SPEC 10, issue 13).

Over the real samples (tests/fixtures/codex-0.171.0, opencode-1.18.33, gemini-0.61.0), every
session's facts are checked against sums worked out by hand from the raw files; list prices
against genai-prices' own ``calc_price`` of each request; and, on files written as each agent
writes them: each request counted once (a repeated count, a re-written message, a fork's copied
history, a reply held by two files), an unknown model unpriced, an append moving the facts by
exactly its request, a restart from saved state identical without reading.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest

from helm_monitor.live.usage import UsageIndex

from helm_monitor.sources.codex import CodexSource
from helm_monitor.sources.gemini import GeminiSource
from helm_monitor.sources.opencode import OpenCodeSource
from helm_monitor.usage.facts import UsageFacts, bucket_of, ms_of
from tests.support.codex import CodexHome, uuid7
from tests.support.gemini import GeminiHome, tokens
from tests.support.opencode import OpenCodeDB

# Every sample was written between 06:15 and 06:30 UTC on 2026-12-01: one 15-minute bucket.
SAMPLE_BUCKET = ms_of("2026-12-01T06:15:00.000Z")
NOW = 1796105908.0


def calc(model: str, provider: str, when_ms: int, *, prompt: int, cache_read: int = 0, cache_write: int = 0,
         output: int = 0) -> float:
    """genai-prices' own price of one request (``prompt``: the whole prompt, cache parts included)."""
    from genai_prices import Usage, calc_price
    usage = Usage(input_tokens=prompt, cache_read_tokens=cache_read, cache_write_tokens=cache_write,
                  output_tokens=output)
    when = _dt.datetime.fromtimestamp(when_ms / 1000, _dt.timezone.utc)
    return float(calc_price(usage, model_ref=model, provider_id=provider, genai_request_timestamp=when).total_price)


def rows(facts: UsageFacts) -> dict:
    return {k: list(v) for k, v in facts.rows.items()}


def iso(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ============================================================================== Codex
CODEX_SAMPLE = "codex-0.171.0"
# From each rollout's event_msg/token_count lines (line numbers count from 0), last_token_usage as
# (input_tokens, cached_input_tokens, output_tokens); cache writes and reasoning are 0 throughout.
# Facts: uncached = input - cached, output = output_tokens, cacheRead = cached, one message each.
CODEX_REQUESTS = {
    "01a23041-3185-7183-91d9-eb8805f6c9ca": [(10292, 0, 126), (10456, 10192, 98)],  # l.15, l.19
    "01a23041-3909-7322-bdeb-f1b242c53929": [(10291, 10125, 119), (10455, 10170, 108),  # l.15, l.19
                                             (10590, 10484, 83)],  # l.29: the `exec resume` turn
    "01a23041-401e-79a1-89e6-040c03fedf61": [(10293, 10172, 93), (10418, 10200, 93)],  # l.12, l.22
    "01a23041-4c09-7130-8a6c-4d410b693071": [(10290, 10178, 85)],  # l.12
    "01a23041-a780-7601-be49-4fe4c5f884ab": [(12589, 0, 126), (12752, 12489, 114), (12891, 12830, 92)],
}


def codex_scan(root) -> CodexSource:
    src = CodexSource(str(root))
    src.full_scan()
    return src


def test_codex_sample_facts_by_hand(sample_dir):
    src = codex_scan(sample_dir(CODEX_SAMPLE) / "home" / ".codex")
    assert src.session_ids() == set(CODEX_REQUESTS)
    for tid, requests in CODEX_REQUESTS.items():
        want = [sum(i - c for i, c, _ in requests), sum(o for _, _, o in requests), sum(c for _, c, _ in requests),
                0, 0, len(requests)]
        facts = src.usage(tid)
        # the model of every turn_context; prompts of ~10k tokens: no long-context tier
        assert rows(facts) == {(SAMPLE_BUCKET, "mock-model", 0, ""): want}, tid
        assert facts.ledger == {}  # Codex keeps no ledger
        s = src.session(tid)
        # the totals are those of the last total_token_usage (the Session's tokens)
        assert (want[0], want[1], want[2]) == (s["tokens"]["input"], s["tokens"]["output"], s["tokens"]["cacheRead"])
        # genai-prices has no mock-model: unpriced, never 0
        assert s["cost"] == {"usd": None, "basis": "unpriced", "unpricedModels": ["mock-model"]}


def test_codex_list_price_is_calc_price_of_each_request_with_cache_writes_and_long_context(tmp_path):
    home = CodexHome(tmp_path / "codex")
    src = CodexSource(str(home.root))
    model = "gpt-5.6-sol"  # tiered at 272k prompt tokens, bills cache writes
    r = home.rollout().meta(ts="2026-11-20T09:58:00.000Z")
    r.turn_started(model=model, ts="2026-11-20T09:58:00.100Z").user("a prompt", ts="2026-11-20T09:58:00.200Z")
    r.request(12_000, 8_000, 300, cache_write=2_000, reasoning=120, ts="2026-11-20T09:59:00.000Z")
    r.request(300_000, 250_000, 900, reasoning=400, ts="2026-11-20T10:01:00.000Z")  # over 272k: long context
    r.turn_complete(ts="2026-11-20T10:01:01.000Z")
    src.apply(str(r.path))
    facts = src.usage(r.id)
    b1, b2 = ms_of("2026-11-20T09:45:00.000Z"), ms_of("2026-11-20T10:00:00.000Z")
    # output_tokens already holds reasoning (OpenAI: total = input + output); the cache write is part of input
    assert rows(facts) == {(b1, model, 0, ""): [12_000 - 8_000 - 2_000, 300, 8_000, 2_000, 0, 1],
                           (b2, model, 272_000, ""): [300_000 - 250_000, 900, 250_000, 0, 0, 1]}
    want = (calc(model, "openai", ms_of("2026-11-20T09:59:00.000Z"), prompt=12_000, cache_read=8_000,
                 cache_write=2_000, output=300)
            + calc(model, "openai", ms_of("2026-11-20T10:01:00.000Z"), prompt=300_000, cache_read=250_000, output=900))
    cost = src.session(r.id)["cost"]
    assert cost["basis"] == "list-price" and cost["unpricedModels"] == []
    assert cost["usd"] == pytest.approx(want, rel=1e-9)


def test_codex_repeated_count_is_one_request_and_an_append_costs_its_request(tmp_path):
    home = CodexHome(tmp_path / "codex")
    src = CodexSource(str(home.root))
    r = home.rollout().meta().turn_started(model="gpt-5").user("first")
    r.request(1_000, 400, 50)
    r.count([1_000, 400, 0, 50, 0, 1_050], r.total)  # the same count again (a rate-limit update): no request
    r.turn_complete()
    src.apply(str(r.path))
    assert src.usage(r.id).totals() == [600, 50, 400, 0, 0, 1]
    before = src.usage(r.id).copy()
    read = src.bytes_read(r.id)
    size = r.path.stat().st_size
    r.turn_started(model="gpt-5", ts="2026-12-01T08:00:00.000Z").user("second", ts="2026-12-01T08:00:00.100Z")
    r.request(2_000, 1_500, 70, ts="2026-12-01T08:00:05.000Z").turn_complete(ts="2026-12-01T08:00:06.000Z")
    assert src.apply(str(r.path)) == {r.id}
    assert src.bytes_read(r.id) - read == r.path.stat().st_size - size  # the appended lines alone
    after = src.usage(r.id)
    moved = {k: [a - b for a, b in zip(v, before.rows.get(k, [0] * 6))] for k, v in after.rows.items()}
    assert {k: v for k, v in moved.items() if any(v)} == {
        (ms_of("2026-12-01T08:00:00.000Z"), "gpt-5", 0, ""): [500, 70, 1_500, 0, 0, 1]}


def test_codex_fork_counts_only_its_own_requests(tmp_path):
    """A forked rollout copies its parent's history, token_counts included (re-stamped), and continues
    the parent's totals; only the fork's own turns are its requests (ccusage#1370, CodexBar#627)."""
    home = CodexHome(tmp_path / "codex")
    src = CodexSource(str(home.root))
    base = int(NOW * 1000)
    parent = home.rollout(uuid7(base)).meta()
    parent.turn_started(model="gpt-5", turn_id=uuid7(base + 10)).user("parent prompt").request(5_000, 0, 100)
    parent.request(5_500, 5_000, 80).turn_complete()
    # `codex fork` (a new top-level session) and a sub-agent forked with the parent's context
    fork = home.fork(parent, uuid7(base + 1_000))
    fork.turn_started(model="gpt-5", turn_id=uuid7(base + 1_010)).user("fork prompt").request(6_000, 5_400, 60)
    fork.turn_complete()
    agent = home.fork(parent, uuid7(base + 2_000), subagent=True)
    agent.turn_started(model="gpt-5", turn_id=uuid7(base + 2_010)).user("delegated").request(6_100, 5_400, 40)
    src.full_scan()
    assert src.session_ids() == {parent.id, fork.id}
    # the parent: its two requests, and its sub-agent's own one (not the two it copied)
    assert src.usage(parent.id).totals() == [5_000 + 500 + 700, 100 + 80 + 40, 5_000 + 5_400, 0, 0, 3]
    # the fork: its own request alone, though its total_token_usage carries the parent's
    assert src.usage(fork.id).totals() == [600, 60, 5_400, 0, 0, 1]
    # a sub-agent's new request shows in its parent's session
    agent.request(6_200, 6_000, 30)
    assert src.apply(str(agent.path)) == {agent.id, parent.id}
    assert src.usage(parent.id).totals()[5] == 4


def test_codex_one_thread_over_two_files_counts_a_repeated_count_once(tmp_path):
    home = CodexHome(tmp_path / "codex")
    src = CodexSource(str(home.root))
    first = home.rollout(when=_dt.datetime(2026, 11, 30, 10, 0, 0)).meta(ts="2026-11-30T10:00:00.000Z")
    first.turn_started(model="gpt-5").user("old").request(1_000, 0, 10).turn_complete()
    # the thread continued in a second physical file, which begins by repeating the last count
    second = home.rollout(first.id, when=_dt.datetime(2026, 12, 1, 9, 0, 0), suffix="_01a23041-ffff")
    second.meta(ts="2026-11-30T10:00:00.000Z")
    second.count([1_000, 0, 0, 10, 0, 1_010], first.total)
    second.total = list(first.total)
    second.turn_started(model="gpt-5").user("new").request(1_200, 1_000, 20)
    src.full_scan()
    assert src.usage(first.id).totals() == [1_000 + 200, 30, 1_000, 0, 0, 2]


def test_codex_restart_from_saved_state_reads_nothing_and_odd_usage_is_read_again(sample_dir, tmp_path):
    from helm_monitor.live.cache import StateCache
    root = sample_dir(CODEX_SAMPLE) / "home" / ".codex"
    first = codex_scan(root)
    cache = StateCache(tmp_path / "cache", str(root), "codex")
    assert cache.save(first)
    src = CodexSource(str(root))
    assert cache.load_into(src) == 6
    src.full_scan()
    src.drop_restored()
    assert sum(src.bytes_read(t) for t in src.session_ids()) == 0
    for tid in CODEX_REQUESTS:
        assert src.usage(tid) == first.usage(tid) and src.session(tid) == first.session(tid)
    # an entry with odd usage data (edited, or another version): that rollout is read again, no crash
    state = json.loads(json.dumps(first.export_state()))
    plain, entry = sorted(state["rollouts"].items())[0]
    entry["usage"]["facts"]["rows"][0][4] = "many"
    again = CodexSource(str(root))
    assert again.restore_state(state) == 5
    again.full_scan()
    tid = again.session_for_path(plain)
    assert again.bytes_read(tid) == Path(plain).stat().st_size
    assert again.usage(tid) == first.usage(tid)


# ============================================================================== OpenCode
OPENCODE_SAMPLE = "opencode-1.18.33"
# From the sample's message rows (data.tokens {input, output, reasoning, cache{read, write}}, data.cost),
# per assistant message: (input, output, cache read, cost); reasoning and cache writes are all 0,
# providerID "mock", modelID "mock-model".
OPENCODE_MESSAGES = {
    "ses_dcfc02a38ffe4uA6GBTA16Loi3": [(7476, 62, 0, 0.0076), (294, 33, 7259, 0.0010859)],
    "ses_dcfc012fbffemoZuyiVAimVWCV": [(122, 68, 7353, 0.0009933), (250, 49, 7302, 0.0010782),
                                       (262, 63, 7339, 0.0011219)],
    "ses_dcfbffc47ffepBcmJY5k6BADhA": [(126, 70, 7351, 0.0010011), (111, 61, 7432, 0.0009762)],
    "ses_dcfbfc19affeOIVZIO6x1MAgLE": [(208, 45, 7266, 0.0010246)],
    "ses_dcfbf451cffe5ybBpqq0UWKfya": [(7869, 53, 0, 0.007975)],
}


@pytest.fixture
def no_proc(tmp_path):
    d = tmp_path / "noproc"
    d.mkdir()
    return str(d)


def opencode_db(tmp_path) -> OpenCodeDB:
    (tmp_path / "opencode").mkdir(exist_ok=True)
    return OpenCodeDB(tmp_path / "opencode/opencode.db")


def test_opencode_sample_facts_by_hand(sample_dir, no_proc):
    src = OpenCodeSource(str(sample_dir(OPENCODE_SAMPLE) / "home/.local/share/opencode"), proc_root=no_proc)
    src.full_scan()
    assert src.session_ids() == set(OPENCODE_MESSAGES)
    for sid, messages in OPENCODE_MESSAGES.items():
        facts = src.usage(sid)
        want = [sum(m[0] for m in messages), sum(m[1] for m in messages), sum(m[2] for m in messages), 0, 0,
                len(messages)]
        assert rows(facts) == {(SAMPLE_BUCKET, "mock/mock-model", 0, ""): want}, sid
        assert facts.ledger == pytest.approx({(SAMPLE_BUCKET, "mock/mock-model"): sum(m[3] for m in messages)})
        # the ledger first: the session's cost is OpenCode's own (= session.cost)
        assert src.session(sid)["cost"] == {"usd": round(sum(m[3] for m in messages), 9), "basis": "ledger",
                                            "unpricedModels": []}


def test_opencode_zero_cost_with_tokens_is_no_price(tmp_path, no_proc):
    """OpenCode stores cost 0 both for a free model and for one it cannot price: 0 beside tokens is
    not a ledger entry. Those tokens get genai-prices' list price, else they are unpriced."""
    db = opencode_db(tmp_path)
    known = db.session("/p", "A model OpenCode could not price")
    _, a1 = db.exchange(known, "q", "a", tokens=(1_000, 200, 4_000, 500), cost=0, model="claude-sonnet-4-5",
                        provider="anthropic", reasoning=50)
    local = db.session("/p", "A local model")
    db.exchange(local, "q", "a", tokens=(800, 40, 0, 0), cost=0, model="qwen3-coder", provider="ollama")
    mixed = db.session("/p", "Priced by OpenCode, and one step it stored as 0")
    db.exchange(mixed, "q", "a", tokens=(100, 10, 50, 0), cost=0.002)
    db.exchange(mixed, "q2", "a2", tokens=(100, 10, 50, 0), cost=0, model="qwen3-coder", provider="ollama")
    partly = db.session("/p", "Priced by OpenCode, and a model it could not price but genai-prices can")
    db.exchange(partly, "q", "a", tokens=(100, 10, 50, 0), cost=0.002)
    _, a2 = db.exchange(partly, "q2", "a2", tokens=(1_000, 200, 4_000, 500), cost=0, model="claude-sonnet-4-5",
                        provider="anthropic")
    empty = db.session("/p", "Nothing used")
    db.exchange(empty, "q", "a", tokens=(0, 0, 0, 0), cost=0)
    src = OpenCodeSource(str(tmp_path / "opencode"), proc_root=no_proc)
    src.full_scan()
    at = json.loads(db.execute("SELECT data FROM message WHERE id = ?", (a1,))[0][0])["time"]["completed"]
    model = "anthropic/claude-sonnet-4-5"
    assert rows(src.usage(known)) == {(bucket_of(at), model, 0, ""): [1_000, 250, 4_000, 500, 0, 1]}
    assert src.usage(known).ledger == {}
    want = calc("claude-sonnet-4-5", "anthropic", at, prompt=1_000 + 4_000 + 500, cache_read=4_000,
                cache_write=500, output=250)  # output plus reasoning
    cost = src.session(known)["cost"]
    assert cost["basis"] == "list-price" and cost["unpricedModels"] == []
    assert cost["usd"] == pytest.approx(want, rel=1e-9)
    # a model genai-prices lacks: unpriced, never 0 and never a neighbour's price
    assert src.session(local)["cost"] == {"usd": None, "basis": "unpriced", "unpricedModels": ["ollama/qwen3-coder"]}
    # OpenCode's ledger where it priced the session; the model it could not price is not priced at 0
    assert src.session(mixed)["cost"] == {"usd": 0.002, "basis": "ledger", "unpricedModels": ["ollama/qwen3-coder"]}
    assert src.usage(mixed).totals() == [200, 20, 100, 0, 0, 2]
    # ... and where genai-prices knows that model: OpenCode's charge plus the list price of the rest
    at2 = json.loads(db.execute("SELECT data FROM message WHERE id = ?", (a2,))[0][0])["time"]["completed"]
    rest = calc("claude-sonnet-4-5", "anthropic", at2, prompt=1_000 + 4_000 + 500, cache_read=4_000,
                cache_write=500, output=200)
    cost = src.session(partly)["cost"]
    assert cost["basis"] == "mixed" and cost["unpricedModels"] == []
    assert cost["usd"] == pytest.approx(0.002 + rest, rel=1e-9)
    idx = UsageIndex()
    idx.update("h:opencode:" + partly, src.session(partly), src.usage(partly))
    totals = idx.query(start="2020-01-01", end="2035-01-01", tz="UTC", bucket="month")["totals"]["cost"]
    assert totals["basis"] == "mixed" and totals["ledgerUsd"] == pytest.approx(0.002)
    assert totals["listPriceUsd"] == pytest.approx(rest, rel=1e-9)
    # no tokens, no cost: nothing at all
    assert not src.usage(empty)
    assert src.session(empty)["cost"] == {"usd": None, "basis": "unpriced", "unpricedModels": []}


def test_opencode_message_written_again_counts_once_and_children_count_in_the_parent(tmp_path, no_proc):
    db = opencode_db(tmp_path)
    sid = db.session("/p", "Parent")
    src = OpenCodeSource(str(tmp_path / "opencode"), proc_root=no_proc)
    src.full_scan()
    u = db.user(sid, "a prompt")
    a = db.assistant_start(sid, u)  # the row exists with tokens 0 while the reply streams
    assert src.apply(src.db_path + "-wal") == {sid}
    assert not src.usage(sid)
    db.assistant_finish(sid, a, "done", tokens=(120, 30, 60, 5), cost=0.25)  # the same row, written again
    assert src.apply(src.db_path + "-wal") == {sid}
    assert src.usage(sid).totals() == [120, 30, 60, 5, 0, 1]
    assert src.session(sid)["cost"] == {"usd": 0.25, "basis": "ledger", "unpricedModels": []}
    # the same message once more with other usage: replaced, not added
    created = json.loads(db.execute("SELECT data FROM message WHERE id = ?", (a,))[0][0])["time"]["created"]
    with db.tx():
        db._message(sid, a, db._assistant_data(u, created, db.now(), (200, 40, 60, 5), 0.3))
    src.apply(src.db_path + "-wal")
    assert src.usage(sid).totals() == [200, 40, 60, 5, 0, 1]
    assert src.session(sid)["cost"]["usd"] == pytest.approx(0.3)
    # a sub-agent session's usage and ledger are its parent's too (SPEC 10)
    child = db.session("/p", "Child", parent_id=sid)
    src.apply(src.db_path + "-wal")
    db.exchange(child, "delegated", "done", tokens=(10, 1, 0, 0), cost=0.01)
    assert src.apply(src.db_path + "-wal") == {sid}
    assert src.usage(sid).totals() == [210, 41, 60, 5, 0, 2]
    assert src.session(sid)["cost"]["usd"] == pytest.approx(0.31)
    db.delete_session(child)
    assert src.apply(src.db_path + "-wal") == {sid}
    assert src.usage(sid).totals() == [200, 40, 60, 5, 0, 1]
    assert src.session(sid)["cost"]["usd"] == pytest.approx(0.3)


def test_opencode_an_append_moves_the_facts_by_exactly_that_message(tmp_path, no_proc):
    db = opencode_db(tmp_path)
    sid = db.session("/p", "Growing")
    db.exchange(sid, "first", "one", tokens=(100, 10, 50, 0), cost=0.001)
    src = OpenCodeSource(str(tmp_path / "opencode"), proc_root=no_proc)
    src.full_scan()
    before = src.usage(sid).copy()
    _, a = db.exchange(sid, "second", "two", tokens=(300, 20, 150, 10), cost=0.004, reasoning=5)
    src.apply(src.db_path + "-wal")
    after = src.usage(sid)
    at = json.loads(db.execute("SELECT data FROM message WHERE id = ?", (a,))[0][0])["time"]["completed"]
    diff = UsageFacts()
    diff.merge(after)
    for k, v in before.rows.items():
        diff.add(k[0], k[1], v[:5], tier=k[2], speed=k[3], messages=v[5], sign=-1)
    assert rows(diff) == {(bucket_of(at), "mock/mock-model", 0, ""): [300, 25, 150, 10, 0, 1]}
    assert sum(after.ledger.values()) - sum(before.ledger.values()) == pytest.approx(0.004)
    # a fresh reader (OpenCode's state is its database: nothing is saved) finds the same
    fresh = OpenCodeSource(str(tmp_path / "opencode"), proc_root=no_proc)
    fresh.full_scan()
    assert fresh.usage(sid) == after


# ============================================================================== Gemini
GEMINI_SAMPLE = "gemini-0.61.0"
# From each chat file's gemini records, the last copy of each id that carries tokens, as
# (timestamp, input, output, cached); thoughts and tool are 0 throughout, model gemini-2.5-flash.
# Facts: uncached = input - cached, output = output + thoughts, cacheRead = cached.
GEMINI_REPLIES = {
    "817f3b0f-50e6-495a-aac1-c9cb99f079a9": [  # f7aae8ac (lines 5, 7: one id), 9822ba43 (line 10)
        ("2026-12-01T06:19:37.252Z", 12364, 17, 0), ("2026-12-01T06:19:37.503Z", 12474, 62, 12327)],
    "ace2799a-977a-4ba4-aed3-33b94d17d73c": [  # a90e5eee, eca186bc (their line-15 copies carry none), 6af50bcc
        ("2026-12-01T06:19:40.820Z", 12362, 11, 0), ("2026-12-01T06:19:41.059Z", 12473, 49, 12388),
        ("2026-12-01T06:19:49.334Z", 12581, 55, 12471)],
    "557652b1-9c2b-406b-8e43-c2ca5129b4fd": [  # 7aaad002 (line 10's copy carries none), 9b1b3eb4
        ("2026-12-01T06:19:44.297Z", 12364, 59, 12239), ("2026-12-01T06:19:47.478Z", 12432, 55, 12309)],
    "b0b299c8-f10b-4e42-ae3b-4f7081b57478": [("2026-12-01T06:20:10.994Z", 12361, 62, 12076)],
    "23999ab2-e18d-414d-8522-25c701f5cf9c": [  # 80c51263 (lines 5, 7), 1f9d3bfe, 368a67a3
        ("2026-12-01T06:20:15.919Z", 13065, 30, 0), ("2026-12-01T06:20:16.518Z", 13176, 64, 12987),
        ("2026-12-01T06:20:28.491Z", 13239, 44, 13134)],
}
FLASH = "gemini-2.5-flash"


def gemini_scan(root, no_proc) -> GeminiSource:
    src = GeminiSource(str(root), proc_root=no_proc, clock=lambda: NOW)
    src.full_scan()
    return src


def test_gemini_sample_facts_by_hand_and_list_price_is_calc_price(sample_dir, no_proc):
    src = gemini_scan(sample_dir(GEMINI_SAMPLE) / "home" / ".gemini", no_proc)
    assert src.session_ids() == set(GEMINI_REPLIES)
    for sid, replies in GEMINI_REPLIES.items():
        want = [sum(i - c for _, i, _, c in replies), sum(o for _, _, o, _ in replies),
                sum(c for _, _, _, c in replies), 0, 0, len(replies)]
        assert rows(src.usage(sid)) == {(SAMPLE_BUCKET, FLASH, 0, ""): want}, sid
        price = sum(calc(FLASH, "google", ms_of(ts), prompt=i, cache_read=c, output=o) for ts, i, o, c in replies)
        cost = src.session(sid)["cost"]
        assert cost["basis"] == "list-price" and cost["unpricedModels"] == []
        assert cost["usd"] == pytest.approx(price, rel=1e-9), sid


@pytest.fixture
def gemini_home(tmp_path) -> GeminiHome:
    return GeminiHome(tmp_path / "gemini-home" / ".gemini")


def test_gemini_thoughts_tool_tiers_and_an_unknown_model(gemini_home, no_proc):
    proj = gemini_home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("think hard")
    t1 = chat.now()
    chat.reply("ok", tokens(10_000, 200, cached=4_000, thoughts=300, tool=50), model="gemini-2.5-pro", ts=t1)
    t2 = chat.now()
    chat.reply("long", tokens(250_000, 100, cached=200_000), model="gemini-2.5-pro", ts=t2)  # over 200k
    other = proj.session()
    other.prompt("hello")
    other.reply("hi", tokens(100, 5), model="gemini-9-ultra")
    src = gemini_scan(gemini_home.root, no_proc)
    b = bucket_of(ms_of(t1))
    assert bucket_of(ms_of(t2)) == b
    # output = reply + thoughts; input = prompt - cached + the tool-use prompt
    assert rows(src.usage(chat.id)) == {(b, "gemini-2.5-pro", 0, ""): [6_050, 500, 4_000, 0, 0, 1],
                                        (b, "gemini-2.5-pro", 200_000, ""): [50_000, 100, 200_000, 0, 0, 1]}
    want = (calc("gemini-2.5-pro", "google", ms_of(t1), prompt=10_050, cache_read=4_000, output=500)
            + calc("gemini-2.5-pro", "google", ms_of(t2), prompt=250_000, cache_read=200_000, output=100))
    assert src.session(chat.id)["cost"]["usd"] == pytest.approx(want, rel=1e-9)
    assert src.session(other.id)["cost"] == {"usd": None, "basis": "unpriced", "unpricedModels": ["gemini-9-ultra"]}


def test_gemini_rewritten_reply_counts_once_rewinds_keep_what_was_spent(gemini_home, no_proc):
    proj = gemini_home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("run it")
    chat.tool_turn("echo hi", tokens(500, 10, cached=100))  # the reply written twice (its tool calls added)
    src = gemini_scan(gemini_home.root, no_proc)
    assert src.usage(chat.id).totals() == [400, 10, 100, 0, 0, 1]
    # the same id again with other usage replaces it
    p2 = chat.prompt("again")
    mid = chat.reply("first try", tokens(600, 20, cached=500))
    chat.reply("streamed on", tokens(600, 25, cached=500), mid=mid)
    src.apply(str(chat.path))
    assert src.usage(chat.id).totals() == [400 + 100, 10 + 25, 100 + 500, 0, 0, 2]
    # a rewind takes the replies out of the conversation, not out of what was spent
    chat.append({"$rewindTo": p2})
    src.apply(str(chat.path))
    assert src.session(chat.id)["messageCount"] == 2
    assert src.usage(chat.id).totals() == [500, 35, 600, 0, 0, 2]


def test_gemini_a_reply_in_two_files_of_a_session_counts_once(gemini_home, no_proc):
    proj = gemini_home.project("/work/alpha")
    chat = proj.session(minute="2026-12-01T06-19")
    chat.prompt("first")
    reply = {"id": "r-1", "timestamp": chat.now(), "type": "gemini", "content": "ok",
             "tokens": tokens(1_000, 10, cached=600), "model": FLASH}
    chat.append(reply)
    # a legacy file's conversion (or a resume) that holds the same reply, with its usage, in a checkpoint
    copy = chat.stub("2026-12-01T06-25")
    copy.append({"$set": {"messages": [reply]}})
    copy.prompt("more")
    copy.reply("and more", tokens(1_100, 20, cached=1_000))
    src = gemini_scan(gemini_home.root, no_proc)
    assert src.usage(chat.id).totals() == [400 + 100, 30, 1_600, 0, 0, 2]


def test_gemini_subagent_chats_count_in_the_parent(gemini_home, no_proc):
    proj = gemini_home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("delegate")
    chat.reply("on it", tokens(100, 10))
    agent = proj.subagent_chat(chat.id)
    agent.prompt("the sub-task")
    agent.reply("done", tokens(200, 20, cached=50))
    src = gemini_scan(gemini_home.root, no_proc)
    assert src.session_ids() == {chat.id}
    assert src.usage(chat.id).totals() == [100 + 150, 30, 50, 0, 0, 2]
    agent.reply("more", tokens(10, 1))
    assert src.apply(str(agent.path)) == {chat.id}
    assert src.usage(chat.id).totals() == [260, 31, 50, 0, 0, 3]
    agent.path.unlink()
    assert src.apply(str(agent.path)) == {chat.id}
    assert src.usage(chat.id).totals() == [100, 10, 0, 0, 0, 1]


def test_gemini_append_restart_and_odd_saved_usage(gemini_home, no_proc, tmp_path):
    from helm_monitor.live.cache import StateCache
    proj = gemini_home.project("/work/alpha")
    chat = proj.session()
    chat.prompt("first")
    chat.reply("one", tokens(100, 1))
    agent = proj.subagent_chat(chat.id)
    agent.reply("sub", tokens(40, 4))
    first = gemini_scan(gemini_home.root, no_proc)
    before = first.usage(chat.id).copy()
    size = chat.path.stat().st_size
    chat.prompt("second")
    t = chat.now()
    chat.reply("two", tokens(300, 3, cached=200, thoughts=2), ts=t)
    read = first.bytes_read
    first.apply(str(chat.path))
    assert first.bytes_read - read == chat.path.stat().st_size - size
    after = first.usage(chat.id)
    assert {k: [a - b for a, b in zip(v, before.rows.get(k, [0] * 6))] for k, v in after.rows.items()} == {
        (bucket_of(ms_of(t)), FLASH, 0, ""): [100, 5, 200, 0, 0, 1]}
    # a restart: nothing read (sub-agents' chats included), the same facts
    cache = StateCache(tmp_path / "cache", str(gemini_home.root), "gemini")
    assert cache.save(first)
    src = GeminiSource(str(gemini_home.root), proc_root=no_proc, clock=lambda: NOW)
    assert cache.load_into(src) == 2
    src.full_scan()
    src.drop_restored()
    assert src.bytes_read == 0
    assert src.usage(chat.id) == first.usage(chat.id) and src.sessions() == first.sessions()
    # odd saved usage: that file is read again, never a crash
    state = json.loads(json.dumps(first.export_state()))
    state["chats"][str(chat.path)]["state"]["usage"][0][3] = "noon"
    again = GeminiSource(str(gemini_home.root), proc_root=no_proc, clock=lambda: NOW)
    assert again.restore_state(state) == 1
    again.full_scan()
    assert again.bytes_read == chat.path.stat().st_size
    assert again.usage(chat.id) == first.usage(chat.id)
