"""Usage facts and cost of Claude Code sessions (SPEC 10): what each transcript, subagent and
ledger record adds, counted once, kept incrementally and across restarts.

Real CLI samples (tests/fixtures/) where they show the case; otherwise files written the way
Claude Code writes them (tests/support/claude.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helm_monitor.sources.claude.catalog import Catalog
from helm_monitor.sources.claude.transcript import TranscriptReader
from helm_monitor.sources.claude import usage as claude_usage
from helm_monitor.usage import pricing
from helm_monitor.usage.facts import BUCKET_MS, UsageFacts, bucket_of, ms_of, tier_of
from tests.support.claude import append

# every reader test with the C triage of lines and without it (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("triage")

FIXTURES = Path(__file__).parent / "fixtures"
OPUS = "claude-opus-5-5"
SONNET = "claude-sonnet-4-5-20250929"
T0 = "2026-11-20T10:00:00.000Z"
T0_BUCKET = ms_of(T0)  # 10:00 is a bucket start
USAGE = {"input_tokens": 12, "output_tokens": 75, "cache_read_input_tokens": 100,
         "cache_creation_input_tokens": 1000,
         "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0}}


def usage(i=12, o=75, read=100, write=1000, hour=0, **extra) -> dict:
    return {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
            "cache_creation": {"ephemeral_5m_input_tokens": write - hour, "ephemeral_1h_input_tokens": hour},
            **extra}


def at(minutes: float) -> str:
    """T0 plus ``minutes``, as Claude Code writes timestamps."""
    ms = T0_BUCKET + int(minutes * 60_000)
    from helm_monitor.sources.text import iso_from_ms
    return iso_from_ms(ms)


def scan(root) -> Catalog:
    c = Catalog(root)
    c.full_scan()
    return c


def rows(facts: UsageFacts) -> dict:
    return {k: list(v) for k, v in facts.rows.items()}


def all_bytes_read(c: Catalog) -> int:
    n = sum(t.reader.bytes_read for t in c._transcripts.values())
    n += sum(r.follower.bytes_read for rs in c._subagents.values() for r in rs.values())
    return n + sum(r.follower.bytes_read for r in c._legacy_readers.values())


def last_cost_state_total(path: Path) -> float | None:
    last = None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "cost-state":
            last = rec["totalCostUSD"]
    return last


def copy_sample(tmp_path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


# --------------------------------------------------------------------------- real samples
@pytest.mark.parametrize("name", ["claude-code-2.1.330", "claude-code-2.1.330-subagents"])
def test_every_sample_session_costs_its_last_ledger_total(tmp_path, name):
    root = copy_sample(tmp_path, name)
    c = scan(root)
    checked = 0
    for path in root.glob("projects/*/*.jsonl"):
        total = last_cost_state_total(path)
        assert total is not None
        cost = c.session(path.stem)["cost"]
        assert cost == {"usd": round(total, 9), "basis": "ledger", "unpricedModels": []}
        assert sum(c.usage(path.stem).ledger.values()) == pytest.approx(total, abs=1e-12)
        checked += 1
    assert checked == (4 if name == "claude-code-2.1.330" else 1)


def test_resumed_samples_carry_one_process_ledger_on(tmp_path):
    """79a3bb72 (--continue) and bee639db (--resume): two cost-states with one startTime, the
    second's totals cumulative. The differences add, dated by the last dated record before each."""
    root = copy_sample(tmp_path, "claude-code-2.1.330")
    c = scan(root)
    f = c.usage("79a3bb72-fd99-4d90-8588-85c351d684ad")
    # Both cost-states follow records of 20:08 (18.543Z and 23.795Z): the 20:00 bucket.
    assert f.ledger == {(ms_of("2026-11-23T20:00:00Z"), OPUS): pytest.approx(0.0737978)}
    f = c.usage("bee639db-7efd-4095-8f5d-449e25ef1d16")
    assert sum(f.ledger.values()) == pytest.approx(0.0693992)
    # 82ae9970 charged a model no assistant record names (claude-haiku-5-5): the ledger has it.
    f = c.usage("82ae9970-35a9-4565-a76c-3565290ad217")
    assert {m for _b, m in f.ledger} == {OPUS, "claude-haiku-5-5"}
    assert not f.ledger_models_unknown


def test_ledger_of_the_subagent_sample_includes_the_subagent_and_so_do_the_facts(tmp_path):
    """71d75e02: three main-chain messages and two of a subagent, 12/42/9000/3000 each. The
    cost-state's modelUsage counts all five (60/210/45000/15000), and so do the facts; the
    session's tokens (SPEC 5) stay the main chain's."""
    root = copy_sample(tmp_path, "claude-code-2.1.330-subagents")
    sid = "71d75e02-8f29-4d6d-b979-ef7446a966d3"
    cs = [json.loads(x) for x in next(root.glob(f"projects/*/{sid}.jsonl")).read_text().splitlines()
          if '"cost-state"' in x][-1]
    mu = cs["modelUsage"][OPUS]
    c = scan(root)
    f = c.usage(sid)
    # The breakdown of every request is zeros under a total of 3000: 5-minute writes.
    assert f.totals() == [mu["inputTokens"], mu["outputTokens"], mu["cacheReadInputTokens"],
                          mu["cacheCreationInputTokens"], 0, 5] == [60, 210, 45000, 15000, 0, 5]
    assert c.session(sid)["tokens"] == {"input": 36, "output": 126, "cacheRead": 27000, "cacheCreation": 9000}
    assert c.session(sid)["cost"] == {"usd": 0.08844, "basis": "ledger", "unpricedModels": []}


# Sonnet 4.5 list prices (genai-prices 0.2.x, anthropic.yml), USD per million tokens.
SONNET_IN, SONNET_OUT, SONNET_READ, SONNET_WRITE_5M = 3.0, 15.0, 0.30, 3.75
# The 2.1.29 samples' distinct messages (input, output, cache read, cache write), as test_samples.
SAMPLES_29 = {
    "0aa9b345-eaea-4196-9d21-b5f18b516cee": (24, 2, 18152, 18573),
    "ea3b2304-996d-4b23-878c-00320dd47e87": (12, 2, 18143, 18676),
    "1dd2bc9b-d402-49c2-9be4-ee9283428f04": (28, 3, 36376, 18966),
    # main chain 21/2/17309/17834 plus the two prompt-suggestion subagents' four messages
    "52f4eb7e-5a5b-4d67-a1d1-c14d46097080": (21 + 8 + 7 + 5 + 4, 2 + 4, 17309 + 17405 + 17751 + 17472 + 17824,
                                             17834 + 453 + 286 + 307 + 383),
    "69cdd700-601e-480f-b660-c96bf04c7d88": (9, 1, 0, 18248),
    "bda32ea5-79ae-4d80-8e30-59991969331a": (5, 1, 0, 18252),
}


@pytest.mark.parametrize("sid", sorted(SAMPLES_29))
def test_2_1_29_sessions_without_a_ledger_get_the_list_price(tmp_path, sid):
    root = copy_sample(tmp_path, "claude-code-2.1.29")
    c = scan(root)
    i, o, read, write = SAMPLES_29[sid]
    assert c.usage(sid).totals()[:5] == [i, o, read, write, 0]
    want = (i * SONNET_IN + o * SONNET_OUT + read * SONNET_READ + write * SONNET_WRITE_5M) / 1e6
    cost = c.session(sid)["cost"]
    assert cost["basis"] == "list-price" and cost["unpricedModels"] == []
    assert cost["usd"] == pytest.approx(want, rel=1e-9)


def test_the_hand_computed_prices_are_genai_prices_own(tmp_path):
    from genai_prices import Usage, calc_price
    got = calc_price(Usage(input_tokens=24 + 18152 + 18573, output_tokens=2, cache_read_tokens=18152,
                           cache_write_tokens=18573), SONNET, provider_id="anthropic")
    want = (24 * SONNET_IN + 2 * SONNET_OUT + 18152 * SONNET_READ + 18573 * SONNET_WRITE_5M) / 1e6
    assert float(got.total_price) == pytest.approx(want, rel=1e-9)


# --------------------------------------------------------------------------- counting
def test_an_unknown_model_is_unpriced_never_a_neighbours_price(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("ok", model="claude-opus-5-6", usage=USAGE,
                                                                     timestamp=T0))
    c = scan(claude.root)
    assert c.session(s.id)["cost"] == {"usd": None, "basis": "unpriced", "unpricedModels": ["claude-opus-5-6"]}
    assert c.usage(s.id).totals() == [12, 75, 100, 1000, 0, 1]
    # With a priced model beside it, the priced part is shown and the other named.
    s.write(s.assistant_records("ok", model=OPUS, usage=USAGE, timestamp=T0))
    c.apply(str(s.path))
    cost = c.session(s.id)["cost"]
    assert cost["basis"] == "list-price" and cost["usd"] > 0 and cost["unpricedModels"] == ["claude-opus-5-6"]


def test_synthetic_replies_are_not_usage(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("No response requested.", model="<synthetic>",
                                                                     usage=usage(0, 0, 0, 0), timestamp=T0))
    c = scan(claude.root)
    assert c.usage(s.id) == UsageFacts()
    assert c.session(s.id)["cost"]["basis"] == "unpriced"


def test_a_streamed_message_counts_once_latest_usage_first_records_bucket(claude):
    """2.1.29 writes the stream's start (output_tokens 1) on the first record; the last one wins.
    The message stays in the bucket of its first record even when a later one is in the next."""
    s = claude.session()
    mid = "msg_01streamedacrossbuckets00"
    first = s.assistant_records("thinking...", usage=usage(o=1), message_id=mid, timestamp=at(14.99))
    later = s.assistant_records(None, tool_use={"name": "Bash"}, usage=usage(o=480), message_id=mid,
                                timestamp=at(15.01))
    s.write(s.prompt_record("go", timestamp=at(14.9)), first)
    c = scan(claude.root)
    assert c.usage(s.id).totals() == [12, 1, 100, 1000, 0, 1]
    s.write(later)
    c.apply(str(s.path))
    f = c.usage(s.id)
    assert rows(f) == {(T0_BUCKET, OPUS, 0, ""): [12, 480, 100, 1000, 0, 1]}
    assert c.session(s.id)["tokens"]["output"] == 480  # SPEC 5's tokens agree
    # Read in one go, the same.
    assert rows(scan(claude.root).usage(s.id)) == rows(f)


def test_token_mapping_cache_tiers_and_speed(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0),
            # 1-hour writes are the breakdown's part; the rest of the total is 5-minute writes
            s.assistant_records("a", usage=usage(10, 5, 0, 900, hour=300), timestamp=T0),
            # a breakdown of zeros under a total: the total is 5-minute writes
            s.assistant_records("b", usage={**usage(10, 5, 0, 0), "cache_creation_input_tokens": 700,
                                            "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                               "ephemeral_1h_input_tokens": 0}}, timestamp=T0),
            # fast mode, and a prompt over 200k tokens (the long-context tier), decided per request
            s.assistant_records("c", usage=usage(1000, 5, 199_500, 0, speed="fast"), timestamp=T0),
            # no breakdown at all (older versions)
            s.assistant_records("d", usage={"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 3,
                                            "cache_creation_input_tokens": 4}, timestamp=T0))
    f = scan(claude.root).usage(s.id)
    assert rows(f) == {(T0_BUCKET, OPUS, 0, ""): [10 + 10 + 1, 5 + 5 + 2, 3, 600 + 700 + 4, 300, 3],
                       (T0_BUCKET, OPUS, tier_of(200_500), "fast"): [1000, 5, 199_500, 0, 0, 1]}
    assert tier_of(200_500) == 200_000


def test_sidechain_records_of_the_main_file_count_in_usage_not_in_tokens(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("main", usage=usage(1, 2, 3, 4), timestamp=T0),
            [dict(r, isSidechain=True) for r in s.assistant_records("side", usage=usage(10, 20, 30, 40),
                                                                     timestamp=T0)])
    c = scan(claude.root)
    assert c.session(s.id)["tokens"] == {"input": 1, "output": 2, "cacheRead": 3, "cacheCreation": 4}
    assert c.usage(s.id).totals() == [11, 22, 33, 44, 0, 2]


def test_subagent_messages_are_included_once(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("main", usage=usage(1, 2, 3, 4), timestamp=T0))
    sub = s.subagent()
    nested = s.subagent(nested="workflows/run-1")
    mid = "msg_01subagentstreamed000000"
    s.subagent_reply(sub, "a", usage=usage(10, 1, 0, 0), message_id=mid, timestamp=at(1))
    s.subagent_reply(sub, "b", usage=usage(10, 20, 0, 0), message_id=mid, timestamp=at(1))  # streamed: latest wins
    s.subagent_reply(nested, "c", usage=usage(100, 200, 0, 0), timestamp=at(20))
    c = scan(claude.root)
    assert c.session(s.id)["subagentCount"] == 2
    assert c.session(s.id)["tokens"]["input"] == 1  # SPEC 5: the main chain only
    f = c.usage(s.id)
    assert rows(f) == {(T0_BUCKET, OPUS, 0, ""): [11, 22, 3, 4, 0, 2],
                       (T0_BUCKET + BUCKET_MS, OPUS, 0, ""): [100, 200, 0, 0, 0, 1]}
    assert c.session(s.id)["cost"]["basis"] == "list-price"


def test_a_message_in_the_main_file_and_a_subagent_file_counts_once(claude):
    """The transcript's copy counts; a copy in a subagent file (a forked context) does not, nor
    a second subagent's copy of the first one's message."""
    s = claude.session()
    shared = "msg_01sharedbetweenfiles0000"
    s.write(s.prompt_record("go", timestamp=T0),
            s.assistant_records("main", usage=usage(1, 2, 3, 4), message_id=shared, timestamp=T0))
    a, b = s.subagent("0000000000000001"), s.subagent("0000000000000002")
    s.subagent_reply(a, "copy", usage=usage(1, 2, 3, 4), message_id=shared, timestamp=T0)
    s.subagent_reply(a, "own", usage=usage(10, 20, 30, 40), message_id="msg_01subagentown00000000000",
                     timestamp=at(1))
    s.subagent_reply(b, "copy of a's", usage=usage(10, 20, 30, 40), message_id="msg_01subagentown00000000000",
                     timestamp=at(1))
    s.subagent_reply(b, "b's own", usage=usage(100, 200, 300, 400), timestamp=at(2))
    c = scan(claude.root)
    assert c.usage(s.id).totals() == [111, 222, 333, 444, 0, 3]
    # The files themselves keep their own copies: a change to the transcript is taken into account.
    assert sum(r.facts.totals()[5] for r in c._subagents[s.id].values()) == 4


def test_legacy_top_level_sidechains_count_for_their_parent(claude):
    s = claude.session(version="2.0.76")
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("main", usage=usage(1, 2, 3, 4), timestamp=T0))
    legacy = s.project_dir / "agent-a1b2c3d4.jsonl"
    s.write_to(legacy, s.assistant_records("side", usage=usage(10, 20, 30, 40), timestamp=at(3), agent_id="a1b2c3d4"))
    c = scan(claude.root)
    assert c.session(s.id)["subagentCount"] == 1
    assert c.usage(s.id).totals() == [11, 22, 33, 44, 0, 2]
    os.unlink(legacy)
    c.apply(str(legacy))
    assert c.usage(s.id).totals() == [1, 2, 3, 4, 0, 1]


# --------------------------------------------------------------------------- the ledger
def test_ledger_segments_across_processes_and_resets(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("a", usage=USAGE, timestamp=T0))
    s.cost_state({OPUS: 0.10}, start_time=1000)
    s.write(s.assistant_records("b", usage=USAGE, timestamp=at(20)))
    s.cost_state({OPUS: 0.25, "claude-haiku-5-5": 0.01}, start_time=1000)  # same process: +0.15, +0.01
    s.write(s.assistant_records("c", usage=USAGE, timestamp=at(40)))
    s.cost_state({OPUS: 0.05}, start_time=2000)  # another process: its totals add
    s.write(s.assistant_records("d", usage=USAGE, timestamp=at(50)))
    s.cost_state({OPUS: 0.02}, start_time=2000)  # fell within one process: started again, +0.02
    s.cost_state({OPUS: 0.02}, start_time=2000, unknown=True)  # written again unchanged: nothing
    c = scan(claude.root)
    f = c.usage(s.id)
    assert f.ledger == pytest.approx({(T0_BUCKET, OPUS): 0.10, (T0_BUCKET + BUCKET_MS, OPUS): 0.15,
                                      (T0_BUCKET + BUCKET_MS, "claude-haiku-5-5"): 0.01,
                                      (T0_BUCKET + 2 * BUCKET_MS, OPUS): 0.05, (T0_BUCKET + 3 * BUCKET_MS, OPUS): 0.02})
    assert f.ledger_models_unknown
    assert c.session(s.id)["cost"] == {"usd": pytest.approx(0.33), "basis": "ledger", "unpricedModels": []}
    # Appended one by one, the same.
    lines = s.path.read_bytes().splitlines(keepends=True)
    os.unlink(s.path)
    r = TranscriptReader(str(s.path))
    for line in lines:
        append(s.path, line)
        r.update()
    assert r.stats.usage.facts == f


def test_a_cost_state_is_dated_by_the_last_dated_record_even_a_skipped_one(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("a", usage=USAGE, timestamp=T0))
    # a system record (skipped by the session list) at 10:16, then the ledger
    s.write({"parentUuid": None, "isSidechain": False, "type": "system", "subtype": "turn_duration",
             "durationMs": 1000, "timestamp": at(16), "uuid": "u-system", "sessionId": s.id},
            {"type": "last-prompt", "lastPrompt": "go", "sessionId": s.id})
    s.cost_state({OPUS: 0.5})
    f = scan(claude.root).usage(s.id)
    assert f.ledger == {(T0_BUCKET + BUCKET_MS, OPUS): 0.5}


def test_a_cost_state_caught_half_written_counts_once_when_complete(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("a", usage=USAGE, timestamp=T0))
    line = json.dumps(s.cost_state_record({OPUS: 0.5, "claude-haiku-5-5": 0.25}),
                      separators=(",", ":")).encode() + b"\n"
    assert len(line) > 700  # longer than the first bytes the reader looks at to skip a line
    r = TranscriptReader(str(s.path))
    r.update()
    s.write_raw(line[:700])
    r.update()
    assert not r.stats.usage.facts.ledger
    s.write_raw(line[700:])
    r.update()
    assert r.stats.usage.facts.ledger == {(T0_BUCKET, OPUS): 0.5, (T0_BUCKET, "claude-haiku-5-5"): 0.25}


# --------------------------------------------------------------------------- incremental
def test_appending_moves_the_facts_by_exactly_that_message(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("a", usage=USAGE, timestamp=T0))
    sub = s.subagent()
    s.subagent_reply(sub, "x", usage=usage(5, 5, 5, 5), timestamp=T0)
    for i in range(30):
        s.bookkeeping(20_000)
        s.write(s.prompt_record(f"p{i}", timestamp=at(i)), s.assistant_records("b", usage=USAGE, timestamp=at(i)))
    c = scan(claude.root)
    before = c.usage(s.id)
    kept = before.copy()
    assert c.usage(s.id) is before  # nothing changed: the same facts
    read = all_bytes_read(c)

    size = s.path.stat().st_size
    s.write(s.assistant_records("c", usage=usage(1, 2, 3, 4, hour=1), timestamp=at(61)))
    appended = s.path.stat().st_size - size
    assert c.apply(str(s.path)) == {s.id}
    after = c.usage(s.id)
    assert after is not before and before == kept  # the caller's copy is never altered
    delta = after.copy()
    for key, row in before.rows.items():
        delta.add(key[0], key[1], row[:5], tier=key[2], speed=key[3], messages=row[5], sign=-1)
    assert rows(delta) == {(T0_BUCKET + 4 * BUCKET_MS, OPUS, 0, ""): [1, 2, 3, 3, 1, 1]}

    sub_size = sub.stat().st_size
    s.subagent_reply(sub, "y", usage=usage(7, 7, 7, 7), timestamp=at(62))
    sub_appended = sub.stat().st_size - sub_size
    assert c.apply(str(sub)) == {s.id}
    assert c.usage(s.id).totals()[:5] == [a + b for a, b in zip(after.totals()[:5], [7, 7, 7, 7, 0])]
    assert all_bytes_read(c) - read == appended + sub_appended
    # A subagent append that adds no usage (a user record) changes nothing.
    s.write_to(sub, {"parentUuid": None, "isSidechain": True, "type": "user", "timestamp": at(63),
                     "message": {"role": "user", "content": "more"}, "sessionId": s.id})
    assert c.apply(str(sub)) == set()


def test_a_shrunk_subagent_file_is_read_again(claude):
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0))
    sub = s.subagent()
    s.subagent_reply(sub, "x", usage=usage(5, 5, 5, 5), timestamp=T0)
    s.subagent_reply(sub, "y", usage=usage(7, 7, 7, 7), timestamp=T0)
    c = scan(claude.root)
    assert c.usage(s.id).totals()[0] == 12
    lines = sub.read_bytes().splitlines(keepends=True)
    sub.write_bytes(b"".join(lines[:-1]))
    c.apply(str(sub))
    assert c.usage(s.id).totals()[0] == 5


# --------------------------------------------------------------------------- saved state
def _history(claude):
    sessions = []
    for i in range(3):
        s = claude.session(f"/home/u/p{i}")
        for j in range(10):
            s.bookkeeping(3000)
            s.write(s.prompt_record(f"p{j}", timestamp=at(j * 7)),
                    s.assistant_records("r", usage=usage(i, j, 3, 4, hour=1), timestamp=at(j * 7)))
        s.cost_state({OPUS: 0.1 * (i + 1)})
        sub = s.subagent()
        s.subagent_reply(sub, "x", usage=usage(5, 5, 5, 5), timestamp=at(3))
        sessions.append(s)
    legacy = sessions[0].project_dir / "agent-a9.jsonl"
    sessions[0].write_to(legacy, sessions[0].assistant_records("l", usage=usage(9, 9, 9, 9), timestamp=at(5),
                                                                agent_id="a9"))
    return sessions


def _restarted(claude, state) -> Catalog:
    c = Catalog(claude.root)
    c.restore_state(json.loads(json.dumps(state)))
    c.full_scan()
    c.drop_restored()
    return c


def test_restart_from_saved_state_gives_identical_usage_without_reading(claude):
    sessions = _history(claude)
    first = scan(claude.root)
    state = first.export_state()
    assert len(state["sidechains"]) == 4
    second = _restarted(claude, state)
    assert all_bytes_read(second) == 0
    for s in sessions:
        assert second.usage(s.id) == first.usage(s.id) and second.usage(s.id)
        assert second.session(s.id) == first.session(s.id)
    # and it carries on: streamed records of a message written before the save still replace it
    s = sessions[1]
    last = json.loads(s.path.read_bytes().splitlines()[-2])
    mid = last["message"]["id"]
    s.write(s.assistant_records("more", usage=usage(1, 999, 3, 4, hour=1), message_id=mid, timestamp=at(99)))
    for c in (first, second):
        c.apply(str(s.path))
    assert second.usage(s.id) == first.usage(s.id) == scan(claude.root).usage(s.id)
    # so do a subagent's
    sub = next(iter(second._subagents[s.id]))
    mid = json.loads(Path(sub).read_bytes().splitlines()[-1])["message"]["id"]
    output = second.usage(s.id).totals()[1]
    s.subagent_reply(Path(sub), "more", usage=usage(5, 500, 5, 5), message_id=mid, timestamp=at(99))
    for c in (first, second):
        c.apply(sub)
    assert second.usage(s.id) == first.usage(s.id) == scan(claude.root).usage(s.id)
    assert second.usage(s.id).totals()[5] == 10 + 1  # the message replaced, not added
    assert second.usage(s.id).totals()[1] == output - 5 + 500


def _handed_over(claude) -> Catalog:
    """What the first scan's processes do: each reads one file and exports it, the pump takes it in."""
    pump = Catalog(claude.root)
    for path in pump.iter_paths():
        child = Catalog(claude.root)
        child.apply(path)
        pump.restore_state(json.loads(json.dumps(child.export_state([path]))))
    pump.full_scan()
    return pump


def test_state_handed_over_per_file_equals_reading_here(claude):
    """What the first scan's processes do: read one file, export it, the pump takes it in."""
    sessions = _history(claude)
    alone = scan(claude.root)
    pump = _handed_over(claude)
    assert all_bytes_read(pump) == 0
    for s in sessions:
        assert pump.usage(s.id) == alone.usage(s.id)
        assert pump.session(s.id) == alone.session(s.id)


def test_bucket_of_a_timestamp_from_the_hour_cache_equals_parsing_it():
    rng = random.Random(7)
    stamps = ["2026-03-29T01:59:59.999Z", "2026-03-29T02:00:00Z", "2026-10-25T00:44:59Z", "2026-12-31T23:45:01.5Z",
              "2026-02-30T10:00:00Z", "2026-01-01T10:7x:00Z", "2026-01-01T10:60:00Z", "2026-01-01T24:00:00Z",
              "2026-01-01T10:1\u00b2:00Z", "2026-01-01T10:15:00+02:00", "2026-01-01T10:15:00", "garbage-but-long-enoughZ"]
    for _ in range(2000):
        ms = rng.randrange(1_600_000_000_000, 1_900_000_000_000)
        stamps.append(datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    claude_usage._BUCKETS.clear()
    claude_usage._HOURS.clear()
    for _ in range(2):  # parsed, then cached
        for ts in stamps:
            ms = ms_of(ts)  # the reference: a whole parse
            assert claude_usage.bucket_at(ts) == (None if ms is None else bucket_of(ms)), ts


@pytest.mark.parametrize("spoil", ["usage", "side", "ledger", "sidechain", "sidechain-log", "order", "recent"])
def test_odd_saved_usage_is_read_again_never_a_crash(claude, spoil):
    sessions = _history(claude)
    fresh = scan(claude.root)
    state = json.loads(json.dumps(fresh.export_state()))
    readers = state["readers"]
    path = sorted(readers)[0]
    side = sorted(state["sidechains"])[0]
    if spoil == "usage":
        readers[path][2]["usage"]["facts"]["rows"][0][4] = "many"
    elif spoil == "side":
        readers[path][2]["side"] = ["x"]
    elif spoil == "ledger":
        readers[path][2]["ledger"] = {"start": "yesterday", "total": 1, "models": {}}
    elif spoil == "sidechain":
        state["sidechains"][side]["usage"]["recent"] = [[1, 2, 3]]
    elif spoil == "sidechain-log":
        state["sidechains"][side]["usage"]["log"] = "AAAA"
    elif spoil == "order":
        state["sidechains"][side]["usage"]["order"] = "middle"
    else:  # a latest message that is none of the file's messages
        recent = next(r[2]["recent"] for r in readers.values() if r[2]["recent"])
        recent[0] = 12345
        path = next(p for p, r in readers.items() if r[2]["recent"] is recent)
    c = _restarted(claude, state)
    for s in sessions:
        assert c.usage(s.id) == fresh.usage(s.id)
        assert c.session(s.id) == fresh.session(s.id)
    assert 0 < all_bytes_read(c) <= os.stat(path).st_size + os.stat(side).st_size


@pytest.mark.parametrize("cut_kind", ["assistant", "cost-state"])
def test_a_cost_state_behind_a_record_cut_mid_write_is_still_read(claude, cut_kind):
    """A crash cut a record; --resume appended behind it on the same line."""
    s = claude.session()
    s.write(s.prompt_record("go", timestamp=T0), s.assistant_records("a", usage=USAGE, timestamp=T0))
    cut = (s.assistant_records("cut", usage=USAGE, timestamp=T0)[0] if cut_kind == "assistant"
           else s.cost_state_record({OPUS: 0.1}))
    cut_bytes = json.dumps(cut, separators=(",", ":")).encode()
    s.write_raw(cut_bytes[: len(cut_bytes) // 2])
    s.cost_state({OPUS: 0.3})
    r = TranscriptReader(str(s.path))
    r.update()
    assert r.stats.usage.facts.ledger == {(T0_BUCKET, OPUS): pytest.approx(0.3)}
    assert r.stats.usage.facts.totals() == [12, 75, 100, 1000, 0, 1]
    assert r.stats.bad_lines == 1


# --------------------------------------------------------------------------- forked sessions
def _fork(claude, origin, session_id: str):
    """--resume --fork-session: a new transcript that begins with a copy of the origin's records
    (message ids, request ids and times kept; the session id is the fork's)."""
    fork = claude.session(origin.cwd, session_id=session_id)
    lines = [json.loads(line) for line in origin.path.read_text().splitlines()]
    fork.write(*[dict(rec, sessionId=fork.id) for rec in lines])
    return fork


def _forked_history(claude):
    origin = claude.session("/srv/app", session_id="b0000000-0000-4000-8000-000000000000")
    origin.write(origin.prompt_record("one", timestamp=at(0)),
                 origin.assistant_records("a", usage=usage(1, 10, 100, 1000), timestamp=at(1)),
                 origin.prompt_record("two", timestamp=at(2)),
                 origin.assistant_records("b", usage=usage(2, 20, 200, 2000), timestamp=at(3)))
    # The fork's id sorts before the origin's: it ties on its first record, the id decides.
    fork = _fork(claude, origin, "a0000000-0000-4000-8000-000000000000")
    fork.write(fork.prompt_record("fork's own", timestamp=at(60)),
               fork.assistant_records("c", usage=usage(4, 40, 400, 4000), timestamp=at(61)))
    origin.write(origin.prompt_record("origin goes on", timestamp=at(90)),
                 origin.assistant_records("d", usage=usage(8, 80, 800, 8000), timestamp=at(91)))
    return origin, fork


def test_a_forked_sessions_copied_messages_count_once(claude):
    origin, fork = _forked_history(claude)
    c = scan(claude.root)
    # The copies count in the earliest of the two (they tie on the first record: the smaller id).
    assert c.usage(fork.id).totals() == [1 + 2 + 4, 10 + 20 + 40, 100 + 200 + 400, 7000, 0, 3]
    assert c.usage(origin.id).totals() == [8, 80, 800, 8000, 0, 1]
    # Over both: every distinct API message once.
    together = UsageFacts()
    together.merge(c.usage(fork.id))
    together.merge(c.usage(origin.id))
    assert together.totals() == [15, 150, 1500, 15000, 0, 4]
    # Each transcript still says what it holds (SPEC 5 tokens), and the cost follows the usage.
    assert c.session(origin.id)["tokens"]["output"] == 10 + 20 + 80
    for sid in (origin.id, fork.id):
        cost = pricing.session_cost(c.usage(sid), "claude-code")
        assert c.session(sid)["cost"] == cost and cost["usd"] > 0 and cost["basis"] == "list-price"
    # The later of the two goes on: its copies are not read again for that.
    kept = c._forks._copies[str(origin.path)]
    origin.write(origin.assistant_records("e", usage=usage(16, 160, 1600, 16000), timestamp=at(120)))
    assert c.apply(str(origin.path)) == {origin.id, fork.id}
    assert c.usage(origin.id).totals() == [24, 240, 2400, 24000, 0, 2]
    assert c._forks._copies[str(origin.path)] is kept
    assert c.usage(origin.id) == scan(claude.root).usage(origin.id)


def test_a_fork_that_goes_leaves_its_copies_counted_in_the_origin(claude):
    origin, fork = _forked_history(claude)
    c = scan(claude.root)
    fork.path.unlink()
    assert c.apply(str(fork.path)) == {fork.id, origin.id}
    assert c.usage(fork.id) is None
    assert c.usage(origin.id).totals() == [11, 110, 1100, 11000, 0, 3]
    assert c.usage(origin.id) == scan(claude.root).usage(origin.id)


def test_forks_read_in_any_order_restarted_or_handed_over_count_the_same(claude):
    origin, fork = _forked_history(claude)
    second = _fork(claude, fork, "c0000000-0000-4000-8000-000000000000")  # a fork of the fork
    second.write(second.assistant_records("e", usage=usage(16, 160, 1600, 16000), timestamp=at(120)))
    ids = (origin.id, fork.id, second.id)
    want = {sid: scan(claude.root).usage(sid) for sid in ids}
    assert want[second.id].totals() == [16, 160, 1600, 16000, 0, 1]
    # Read one at a time, newest first, each change applied as it comes
    c = Catalog(claude.root)
    for path in sorted(map(str, (origin.path, fork.path, second.path)), key=os.path.getmtime, reverse=True):
        c.apply(path)
    assert {sid: c.usage(sid) for sid in ids} == want
    # Restarted from saved state
    state = scan(claude.root).export_state()
    restarted = _restarted(claude, state)
    assert all_bytes_read(restarted) == 0
    assert {sid: restarted.usage(sid) for sid in ids} == want
    # One file per scan process, handed over
    pump = _handed_over(claude)
    assert {sid: pump.usage(sid) for sid in ids} == want
    # A later record of a copied message, written in the origin only, moves the origin's count:
    # its copy in the fork is taken out as it stands.
    first = json.loads(fork.path.read_text().splitlines()[1])["message"]["id"]
    origin.write(origin.assistant_records("again", usage=usage(1, 999, 100, 1000), message_id=first,
                                          timestamp=at(1)))
    changed = restarted.apply(str(origin.path))
    assert changed == set(ids)
    assert {sid: restarted.usage(sid) for sid in ids} == {sid: scan(claude.root).usage(sid) for sid in ids}
