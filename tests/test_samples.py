"""Every Session field of every session in the real samples (tests/fixtures/), checked
against values worked out by hand from the JSONL files and SPEC.md section 5.

The expected values below are literal constants read off the files, never recomputed
from them. Notes on how each was derived sit next to them.

Readings chosen where SPEC section 5 leaves room (also listed in the final report):

* createdAt / updatedAt: the top-level ``timestamp`` of the first / last record that has
  one, in FILE order (not min / max), as written. Records without a top-level timestamp
  (``summary``, ``last-prompt``, ``cost-state``, ``file-history-snapshot`` whose only
  timestamp is nested in ``snapshot``) are skipped. This matters in three sessions:
  - 52f4eb7e (2.1.29): the last record (.274Z) is older than an earlier one (.276Z);
    file order gives .274Z, which is also what Claude Code's own index says ("modified").
  - 82ae9970 (2.1.330): an attachment written after the first prompt has an earlier
    stamp (.661Z) than the prompt (.665Z); file order gives .665Z.
  - 1dd2bc9b (2.1.29): a ``summary`` line (no timestamp) was appended last; updatedAt
    stays at the last timestamped record.
* tokens: summed over the MAIN transcript only (subagent transcripts are separate
  transcripts; the SPEC does not say to fold them in). The ``cost-state`` records of
  71d75e02 include the subagent's usage (60 / 210 input / output), ours does not (36 / 126).
  Usage and cost (SPEC 10) do include subagents: ``cost`` is the last cost-state's
  ``totalCostUSD`` where there is one, else the list price (tests/test_usage_claude.py).
* firstPrompt / lastPrompt "at most 200 characters": accepted as the 200-character
  prefix or a 199-character prefix plus an ellipsis; title "at most 120 characters"
  likewise.
* 71d75e02 (2.1.330-subagents) record 30 is a background-task notification
  (``origin.kind == "task-notification"``, ``promptSource == "system"``) whose text the
  sampler replaced with "lorem ipsum" filler (in the real CLI it starts with
  ``<task-notification>``). SPEC 5 (v2) says it is not a prompt; it is told by its
  ``origin`` as well as by its text, so lastPrompt stays "use a subagent ..." (as the
  CLI's own ``last-prompt`` record says) and messageCount is 1 + 3 = 4.
* messages(): ``index`` is the message's position in the whole conversation (0-based,
  so page offset + position); user records that are not real prompts and not tool
  results (isMeta, ``<command-name>``, ``<local-command-stdout>``) are kind ``meta``;
  ``model`` and ``messageId`` are null on user messages.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helm_monitor.sources.claude.catalog import Catalog

# A clock far from the records' own timestamps (2026-11-23T20:0x, about 1795464500):
# anything that judged "recently written" by record timestamps instead of file mtimes
# would get the status tests wrong.
NOW = 1_800_000_000.0
OLD = NOW - 3600

SPEC_FIELDS = {
    "id", "source", "projectPath", "projectDir", "title", "firstPrompt", "lastPrompt",
    "messageCount", "createdAt", "updatedAt", "gitBranch", "model", "tokens", "status",
    "pid", "subagentCount", "sizeBytes", "version", "cost",
}

# Session cost (SPEC 5, 10). 2.1.330: the last cost-state's totalCostUSD of each transcript
# (--continue / --resume carry one process's running totals on). 2.1.29 writes no cost-state:
# Sonnet 4.5's list price (3 / 15 / 0.30 / 3.75 USD per million input / output / cache-read /
# 5-minute cache-write tokens) over every distinct message, the subagents' included (52f4eb7e).
COSTS = {
    "79a3bb72-fd99-4d90-8588-85c351d684ad": ("ledger", 0.0737978),
    "82ae9970-35a9-4565-a76c-3565290ad217": ("ledger", 0.089050975),
    "9d2ae2de-0093-442a-adf0-da57dd454d42": ("ledger", 0.0688392),
    "bee639db-7efd-4095-8f5d-449e25ef1d16": ("ledger", 0.0693992),
    "71d75e02-8f29-4d6d-b979-ef7446a966d3": ("ledger", 0.08844),
    "0aa9b345-eaea-4196-9d21-b5f18b516cee": ("list-price", 0.07519635),
    "ea3b2304-996d-4b23-878c-00320dd47e87": ("list-price", 0.0755439),
    "1dd2bc9b-d402-49c2-9be4-ee9283428f04": ("list-price", 0.0821643),
    "52f4eb7e-5a5b-4d67-a1d1-c14d46097080": ("list-price", 0.09878955),
    "69cdd700-601e-480f-b660-c96bf04c7d88": ("list-price", 0.068472),
    "bda32ea5-79ae-4d80-8e30-59991969331a": ("list-price", 0.068475),
}


class OneOf:
    """An expected value that may take one of a few literal forms (SPEC leaves room)."""

    def __init__(self, *values):
        self.values = values

    def __eq__(self, other):
        return other in self.values

    def __repr__(self):
        return "OneOf" + repr(self.values)


def cut(text: str, n: int) -> OneOf:
    """'at most n characters': a plain n-char prefix, or n-1 chars plus an ellipsis."""
    assert len(text) > n
    return OneOf(text[:n], text[: n - 1] + "\u2026", text[: n - 1].rstrip() + "\u2026")


# --------------------------------------------------------------------------- 2.1.29
# No registry, no ai-title. sessions-index.json lags: bda32ea5 is not in it at all;
# ea3b2304's entry says messageCount 2 (the --continue turn came later: really 4);
# 52f4eb7e's entry says messageCount 2 and firstPrompt "No prompt" (really 5 and a
# real prompt). 0aa9b345 (3), 1dd2bc9b (5), 69cdd700 (2) agree with the index.
V29 = "claude-code-2.1.29"
S29_COMMON = {
    "source": "claude-code",
    "gitBranch": "main",
    "version": "2.1.29",
    "model": "claude-sonnet-4-5-20250929",
    "pid": None,
}
EXPECTED_29 = {
    # queue-op, prompt, assistant(text)+assistant(tool_use) same id, tool_result, assistant.
    # 1 prompt + 2 ids = 3 (index: 3). tokens: msg_01Rr (12/1/0/18247) + msg_018d (12/1/18152/326)
    "0aa9b345-eaea-4196-9d21-b5f18b516cee": {
        "projectPath": "/home/bob/code/legacy-app",
        "projectDir": "-home-bob-code-legacy-app",
        "title": "@tool Session 1 in legacy-app: check that the shell works",
        "firstPrompt": "@tool Session 1 in legacy-app: check that the shell works",
        "lastPrompt": "@tool Session 1 in legacy-app: check that the shell works",
        "messageCount": 3,
        "createdAt": "2026-11-23T20:09:02.827Z",
        "updatedAt": "2026-11-23T20:09:03.314Z",
        "tokens": {"input": 24, "output": 2, "cacheRead": 18152, "cacheCreation": 18573},
        "subagentCount": 0,
        "sizeBytes": 3777,
    },
    # two prompts (second by --continue), two ids: 4 (index says 2: stale).
    # tokens: msg_01la (4/1/0/18256) + msg_01tt (8/1/18143/420)
    "ea3b2304-996d-4b23-878c-00320dd47e87": {
        "projectPath": "/home/bob/code/legacy-app",
        "projectDir": "-home-bob-code-legacy-app",
        "title": "Session 3 in legacy-app: say hello and summarise the README",
        "firstPrompt": "Session 3 in legacy-app: say hello and summarise the README",
        "lastPrompt": "Follow-up sent with --continue",
        "messageCount": 4,
        "createdAt": "2026-11-23T20:09:09.585Z",
        "updatedAt": "2026-11-23T20:09:15.527Z",
        "tokens": {"input": 12, "output": 2, "cacheRead": 18143, "cacheCreation": 18676},
        "subagentCount": 0,
        "sizeBytes": 2986,
    },
    # summary line appended last (no timestamp): title from it (the index has it too).
    # 2 prompts + 3 ids (msg_019c twice) = 5 (index: 5).
    # tokens: msg_019c (11/1/0/18246) + msg_01nU (5/1/18157/385) + msg_01R5 (12/1/18219/335)
    "1dd2bc9b-d402-49c2-9be4-ee9283428f04": {
        "projectPath": "/home/bob/code/tools",
        "projectDir": "-home-bob-code-tools",
        "title": "Session 2 in tools check that",
        "firstPrompt": "@tool Session 2 in tools: check that the shell works",
        "lastPrompt": "Follow-up sent with --resume",
        "messageCount": 5,
        "createdAt": "2026-11-23T20:09:06.195Z",
        "updatedAt": "2026-11-23T20:09:17.335Z",
        "tokens": {"input": 28, "output": 3, "cacheRead": 36376, "cacheCreation": 18966},
        "subagentCount": 0,
        "sizeBytes": 5325,
    },
    # interactive: 3 real prompts; then an isMeta caveat, "<command-name>/exit..." and
    # "<local-command-stdout>Goodbye!..." which are not prompts. 2 ids (msg_01d4, msg_01DL
    # twice) -> 5 (index: 2, "No prompt": stale). First record is a file-history-snapshot
    # without a top-level timestamp. Two prompt-suggestion subagents.
    # tokens: msg_01d4 (12/1/0/17417) + msg_01DL (9/1/17309/417)
    "52f4eb7e-5a5b-4d67-a1d1-c14d46097080": {
        "projectPath": "/home/bob/code/tools",
        "projectDir": "-home-bob-code-tools",
        "title": "@slow Interactive session in tools: hello (the reply streams slowly)",
        "firstPrompt": "@slow Interactive session in tools: hello (the reply streams slowly)",
        "lastPrompt": "Interactive: last prompt before exit",
        "messageCount": 5,
        "createdAt": "2026-11-23T20:09:21.049Z",
        "updatedAt": "2026-11-23T20:09:52.274Z",
        "tokens": {"input": 21, "output": 2, "cacheRead": 17309, "cacheCreation": 17834},
        "subagentCount": 2,
        "sizeBytes": 7156,
    },
    # summary line after the reply; 1 prompt + 1 id = 2 (index: 2)
    "69cdd700-601e-480f-b660-c96bf04c7d88": {
        "projectPath": "/home/bob/code/tools",
        "projectDir": "-home-bob-code-tools",
        "title": "Session 4 in tools say hello",
        "firstPrompt": "Session 4 in tools: say hello and summarise the README",
        "lastPrompt": "Session 4 in tools: say hello and summarise the README",
        "messageCount": 2,
        "createdAt": "2026-11-23T20:09:12.453Z",
        "updatedAt": "2026-11-23T20:09:12.688Z",
        "tokens": {"input": 9, "output": 1, "cacheRead": 0, "cacheCreation": 18248},
        "subagentCount": 0,
        "sizeBytes": 1595,
    },
    # not in sessions-index.json at all: must be listed anyway
    "bda32ea5-79ae-4d80-8e30-59991969331a": {
        "projectPath": "/home/bob/code/tools",
        "projectDir": "-home-bob-code-tools",
        "title": "Session 1 in tools: say hello and summarise the README",
        "firstPrompt": "Session 1 in tools: say hello and summarise the README",
        "lastPrompt": "Session 1 in tools: say hello and summarise the README",
        "messageCount": 2,
        "createdAt": "2026-11-23T20:11:23.919Z",
        "updatedAt": "2026-11-23T20:11:24.180Z",
        "tokens": {"input": 5, "output": 1, "cacheRead": 0, "cacheCreation": 18252},
        "subagentCount": 0,
        "sizeBytes": 1485,
    },
}
for _sid, _exp in EXPECTED_29.items():
    _exp.update(S29_COMMON, id=_sid)

# -------------------------------------------------------------------------- 2.1.330
# All timestamps from records; bookkeeping records (api-request, attachment, ...) carry
# timestamps and count for createdAt/updatedAt; queue-operation is usually first.
V330 = "claude-code-2.1.330"
S330_COMMON = {
    "source": "claude-code",
    "gitBranch": "main",
    "version": "2.1.330",
    "model": "claude-opus-5-5",
    "subagentCount": 0,
}
EXPECTED_330 = {
    # claude -p with a Bash tool, then --resume. 2 prompts + 3 ids = 5.
    # tokens: msg_01Ry (4/63/0/12454) + msg_01ow (4/41/12349/306) + msg_013v (10/64/12405/323);
    # the cost-state running totals agree (input 18, output 168).
    # Last timestamped record: the assistant at 23.795Z (last-prompt, mode, cost-state have none).
    "79a3bb72-fd99-4d90-8588-85c351d684ad": {
        "projectPath": "/home/alice/code/api-server",
        "projectDir": "-home-alice-code-api-server",
        "title": "@tool Session 2 in api-server: check that the shell works",
        "firstPrompt": "@tool Session 2 in api-server: check that the shell works",
        "lastPrompt": "Follow-up sent with --resume",
        "messageCount": 5,
        "createdAt": "2026-11-23T20:08:18.014Z",
        "updatedAt": "2026-11-23T20:08:23.795Z",
        "tokens": {"input": 18, "output": 168, "cacheRead": 24754, "cacheCreation": 13083},
        "sizeBytes": 151875,
    },
    # interactive, ai-title (three times, same text). 3 prompts + 4 ids
    # (msg_01nO, msg_01p5 x2, msg_011m, msg_01Bo) = 7. The /exit left no user record.
    # tokens: (9/77/0/13985) + (3/62/13872/481) + (5/46/13965/314) + (10/54/14024/352).
    # First timestamped record is the prompt (26.665Z); last is a system turn_duration.
    "82ae9970-35a9-4565-a76c-3565290ad217": {
        "projectPath": "/home/alice/code/api-server",
        "projectDir": "-home-alice-code-api-server",
        "title": "Interactive session in api server hello",
        "firstPrompt": "@slow Interactive session in api-server: hello (the reply streams slowly)",
        "lastPrompt": "Interactive: last prompt before exit",
        "messageCount": 7,
        "createdAt": "2026-11-23T20:08:26.665Z",
        "updatedAt": "2026-11-23T20:08:47.590Z",
        "tokens": {"input": 27, "output": 239, "cacheRead": 41861, "cacheCreation": 15132},
        "sizeBytes": 174373,
    },
    # the session named by sessions/27246.json. 1 prompt + 2 ids = 3.
    # tokens: msg_01it (10/71/0/12445) + msg_01vC (9/45/12341/350)
    "9d2ae2de-0093-442a-adf0-da57dd454d42": {
        "projectPath": "/home/alice/code/webapp",
        "projectDir": "-home-alice-code-webapp",
        "title": "@tool Session 1 in webapp: check that the shell works",
        "firstPrompt": "@tool Session 1 in webapp: check that the shell works",
        "lastPrompt": "@tool Session 1 in webapp: check that the shell works",
        "messageCount": 3,
        "createdAt": "2026-11-23T20:08:15.391Z",
        "updatedAt": "2026-11-23T20:08:16.397Z",
        "tokens": {"input": 19, "output": 116, "cacheRead": 12341, "cacheCreation": 12795},
        "sizeBytes": 147163,
    },
    # claude -p then --continue. 2 prompts + 2 ids = 4.
    # tokens: msg_01ki (12/75/0/12444) + msg_01vU (8/62/12321/379)
    "bee639db-7efd-4095-8f5d-449e25ef1d16": {
        "projectPath": "/home/alice/code/webapp",
        "projectDir": "-home-alice-code-webapp",
        "title": "Session 3 in webapp: say hello and summarise the README",
        "firstPrompt": "Session 3 in webapp: say hello and summarise the README",
        "lastPrompt": "Follow-up sent with --continue",
        "messageCount": 4,
        "createdAt": "2026-11-23T20:08:20.142Z",
        "updatedAt": "2026-11-23T20:08:22.462Z",
        "tokens": {"input": 20, "output": 137, "cacheRead": 12321, "cacheCreation": 12823},
        "sizeBytes": 146682,
    },
}
for _sid, _exp in EXPECTED_330.items():
    _exp.update(S330_COMMON, id=_sid)

# ---------------------------------------------------------------- 2.1.330-subagents
VSUB = "claude-code-2.1.330-subagents"
SUB_ID = "71d75e02-8f29-4d6d-b979-ef7446a966d3"
EXPECTED_SUB = {
    SUB_ID: {
        "id": SUB_ID,
        "source": "claude-code",
        # cwd has '.' and '_': the folder key '-home-user-my-proj-dir' must not be decoded
        "projectPath": "/home/user/my.proj_dir",
        "projectDir": "-home-user-my-proj-dir",
        "title": "use a subagent to list the files here",
        "firstPrompt": "use a subagent to list the files here",
        # record 30 is the task notification (see module docstring), 29 is isMeta
        "lastPrompt": "use a subagent to list the files here",
        # prompts: record 2 + ids msg_mock8ab4 (x2), msg_mock02be, msg_mock0007 = 1 + 3
        "messageCount": 4,
        "createdAt": "2026-11-23T20:04:02.964Z",
        "updatedAt": "2026-11-23T20:04:03.378Z",
        "gitBranch": "main",
        "model": "claude-opus-5-5",
        # three ids of 12/42/9000/3000 each; the subagent's two ids are not included
        "tokens": {"input": 36, "output": 126, "cacheRead": 27000, "cacheCreation": 9000},
        "status": "ended",
        "pid": None,
        # agent-afa49ed9a952d16e0.jsonl; its .meta.json is not a transcript
        "subagentCount": 1,
        "sizeBytes": 51575,
        "version": "2.1.330",
    },
}


# ------------------------------------------------------------------------- helpers
def set_mtimes(root: Path, when: float, only: dict[str, float] | None = None) -> None:
    """Every transcript under projects/ gets mtime ``when``; ``only`` overrides by id."""
    for p in (root / "projects").rglob("*.jsonl"):
        t = (only or {}).get(p.stem, when)
        os.utime(p, (t, t))


def scan(root: Path, now: float = NOW) -> Catalog:
    cat = Catalog(root, clock=lambda: now)
    cat.full_scan()
    return cat


def diff(got: dict, expected: dict) -> dict:
    """{field: (expected, got)} for every field that differs (expected on the left of ==)."""
    return {k: (v, got.get(k, "<missing>")) for k, v in expected.items() if not (v == got.get(k, "<missing>"))}


def proc_start(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2:].split()[19]


def transcript(root: Path, sid: str) -> Path:
    (path,) = [p for p in (root / "projects").glob(f"*/{sid}.jsonl")]
    return path


def append_records(path: Path, *records: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


# ---------------------------------------------------------------- listing & fields
@pytest.mark.parametrize("sample, expected", [
    (V29, EXPECTED_29), (V330, EXPECTED_330), (VSUB, EXPECTED_SUB),
], ids=["2.1.29", "2.1.330", "2.1.330-subagents"])
def test_exactly_the_main_transcripts_are_listed(sample_dir, sample, expected):
    root = sample_dir(sample)
    set_mtimes(root, OLD)
    cat = scan(root)
    # no subagent transcript, no .meta.json, no index-only entry
    assert sorted(cat.sessions()) == sorted(expected)


def _all_cases():
    for sample, table in ((V29, EXPECTED_29), (V330, EXPECTED_330), (VSUB, EXPECTED_SUB)):
        for sid in table:
            yield pytest.param(sample, sid, table[sid], id=f"{sample[12:]}-{sid[:8]}")


@pytest.mark.parametrize("sample, sid, expected", list(_all_cases()))
def test_every_field_of_every_session(sample_dir, sample, sid, expected):
    root = sample_dir(sample)
    # transcripts an hour old: 2.1.29 sessions are ended (not busy); 2.1.330 ones are ended
    # because sessions/27246.json names a pid that is not running here
    set_mtimes(root, OLD)
    cat = scan(root)
    got = cat.sessions()[sid]
    missing = SPEC_FIELDS - set(got)
    assert not missing, f"fields must never disappear: {missing}"
    want = dict(expected, status="ended", pid=None)
    bad = diff(got, want)
    assert not bad, "field: (expected, got)\n" + "\n".join(f"  {k}: {v!r}" for k, v in bad.items())
    assert cat.session(sid) == got
    json.dumps(got)  # plain JSON


@pytest.mark.parametrize("sample, sid, _expected", list(_all_cases()))
def test_cost_of_every_session(sample_dir, sample, sid, _expected):
    basis, usd = COSTS[sid]
    got = scan(sample_dir(sample)).session(sid)["cost"]
    assert got == {"usd": pytest.approx(usd, rel=1e-9), "basis": basis, "unpricedModels": []}


def test_session_lookup_unknown_id(sample_dir):
    cat = scan(sample_dir(V29))
    assert cat.session("00000000-0000-4000-8000-000000000000") is None
    # a subagent transcript's name is not a session id
    assert cat.session("agent-aprompt_suggestion-1ff45b") is None


def test_2_1_29_index_lags_and_counts_are_recomputed(sample_dir):
    """The index's messageCount is stale for two sessions and missing for one."""
    root = sample_dir(V29)
    idx = json.loads((root / "projects/-home-bob-code-tools/sessions-index.json").read_text())
    by_id = {e["sessionId"]: e for e in idx["entries"]}
    assert by_id["52f4eb7e-5a5b-4d67-a1d1-c14d46097080"]["messageCount"] == 2  # the stale hint
    assert "bda32ea5-79ae-4d80-8e30-59991969331a" not in by_id
    s = scan(root).sessions()
    assert s["52f4eb7e-5a5b-4d67-a1d1-c14d46097080"]["messageCount"] == 5
    assert s["52f4eb7e-5a5b-4d67-a1d1-c14d46097080"]["firstPrompt"] != "No prompt"
    assert s["ea3b2304-996d-4b23-878c-00320dd47e87"]["messageCount"] == 4
    assert s["bda32ea5-79ae-4d80-8e30-59991969331a"]["messageCount"] == 2


def test_index_entry_without_transcript_is_not_listed(sample_dir):
    root = sample_dir(V29)
    transcript(root, "69cdd700-601e-480f-b660-c96bf04c7d88").unlink()
    ids = set(scan(root).sessions())
    assert "69cdd700-601e-480f-b660-c96bf04c7d88" not in ids
    assert len(ids) == 5


# ------------------------------------------------------------------ subagent counting
def test_nested_subagents_count_and_are_not_listed(sample_dir):
    root = sample_dir(VSUB)
    sub = root / "projects/-home-user-my-proj-dir" / SUB_ID / "subagents"
    nested = sub / "workflows" / "run-1"
    nested.mkdir(parents=True)
    shutil.copy(sub / "agent-afa49ed9a952d16e0.jsonl", nested / "agent-a0000000000000001.jsonl")
    shutil.copy(sub / "agent-afa49ed9a952d16e0.meta.json", nested / "agent-a0000000000000001.meta.json")
    (nested / "journal.jsonl").write_text("{}\n")  # not agent-*.jsonl: not a subagent transcript
    s = scan(root).sessions()
    assert list(s) == [SUB_ID]
    assert s[SUB_ID]["subagentCount"] == 2


def test_legacy_top_level_agent_file_counts_for_parent(sample_dir):
    """A legacy projects/<key>/agent-*.jsonl names its parent in sessionId."""
    root = sample_dir(V29)
    proj = root / "projects/-home-bob-code-tools"
    shutil.copy(proj / "52f4eb7e-5a5b-4d67-a1d1-c14d46097080/subagents/agent-aprompt_suggestion-1ff45b.jsonl",
                proj / "agent-a1b2c3d4.jsonl")
    s = scan(root).sessions()
    assert sorted(s) == sorted(EXPECTED_29)
    assert s["52f4eb7e-5a5b-4d67-a1d1-c14d46097080"]["subagentCount"] == 3
    assert s["1dd2bc9b-d402-49c2-9be4-ee9283428f04"]["subagentCount"] == 0


# ------------------------------------------------------------------ title precedence
T29_RESUMED = "1dd2bc9b-d402-49c2-9be4-ee9283428f04"  # has a summary (file + index)
T29_SUMMARY = "69cdd700-601e-480f-b660-c96bf04c7d88"  # has a summary (file + index)


def test_title_ai_title_beats_summary(sample_dir):
    root = sample_dir(V29)
    append_records(transcript(root, T29_RESUMED),
                   {"type": "ai-title", "aiTitle": "AI made this", "sessionId": T29_RESUMED})
    assert scan(root).session(T29_RESUMED)["title"] == "AI made this"


def test_title_latest_custom_title_or_agent_name_wins(sample_dir):
    root = sample_dir(V29)
    path = transcript(root, T29_RESUMED)
    append_records(path,
                   {"type": "custom-title", "customTitle": "first name", "sessionId": T29_RESUMED},
                   {"type": "agent-name", "agentName": "second name", "sessionId": T29_RESUMED},
                   {"type": "ai-title", "aiTitle": "AI made this", "sessionId": T29_RESUMED},
                   {"type": "summary", "summary": "later summary", "leafUuid": "x"})
    assert scan(root).session(T29_RESUMED)["title"] == "second name"
    append_records(path, {"type": "custom-title", "customTitle": "third name", "sessionId": T29_RESUMED})
    assert scan(root).session(T29_RESUMED)["title"] == "third name"


def test_title_latest_ai_title_wins(sample_dir):
    root = sample_dir(V330)
    sid = "82ae9970-35a9-4565-a76c-3565290ad217"
    append_records(transcript(root, sid), {"type": "ai-title", "aiTitle": "Renamed by AI", "sessionId": sid})
    assert scan(root).session(sid)["title"] == "Renamed by AI"


def test_title_latest_summary_wins(sample_dir):
    root = sample_dir(V29)
    append_records(transcript(root, T29_SUMMARY), {"type": "summary", "summary": "Newer summary", "leafUuid": "y"})
    assert scan(root).session(T29_SUMMARY)["title"] == "Newer summary"


def _drop_summary_lines(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(l for l in lines if json.loads(l).get("type") != "summary"), encoding="utf-8")


def test_title_from_index_summary_when_transcript_has_none(sample_dir):
    root = sample_dir(V29)
    _drop_summary_lines(transcript(root, T29_SUMMARY))
    # sessions-index.json still says "summary": "Session 4 in tools say hello"
    assert scan(root).session(T29_SUMMARY)["title"] == "Session 4 in tools say hello"


def test_title_falls_back_to_first_prompt_without_any_summary(sample_dir):
    root = sample_dir(V29)
    _drop_summary_lines(transcript(root, T29_SUMMARY))
    idx_path = root / "projects/-home-bob-code-tools/sessions-index.json"
    idx = json.loads(idx_path.read_text())
    for e in idx["entries"]:
        e.pop("summary", None)
    idx_path.write_text(json.dumps(idx))
    assert scan(root).session(T29_SUMMARY)["title"] == "Session 4 in tools: say hello and summarise the README"


def test_title_first_prompt_collapsed_and_cut_at_120(sample_dir):
    root = sample_dir(V29)
    sid = "bda32ea5-79ae-4d80-8e30-59991969331a"
    path = transcript(root, sid)
    recs = [json.loads(l) for l in path.read_text().splitlines()]
    long_prompt = "Please   review\n\tthe following:  " + "word " * 60  # 35 + 300 chars
    recs[1]["message"]["content"] = long_prompt
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = scan(root).session(sid)
    collapsed = "Please review the following: " + "word " * 60
    assert s["title"] == cut(collapsed.strip(), 120)
    assert len(s["firstPrompt"]) <= 200


def test_title_untitled_when_nothing(sample_dir):
    """A transcript with no prompt and no title records (e.g. only a queue-operation)."""
    root = sample_dir(V29)
    sid = "11111111-2222-4333-8444-555555555555"
    (root / "projects/-home-bob-code-tools" / f"{sid}.jsonl").write_text(
        json.dumps({"type": "queue-operation", "operation": "dequeue",
                    "timestamp": "2026-11-23T20:12:00.000Z", "sessionId": sid}) + "\n")
    s = scan(root).session(sid)
    assert s["title"] == "Untitled session"
    assert s["firstPrompt"] is None and s["lastPrompt"] is None
    assert s["messageCount"] == 0
    assert s["model"] is None
    assert s["tokens"] == {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0}
    assert s["createdAt"] == s["updatedAt"] == "2026-11-23T20:12:00.000Z"
    assert s["gitBranch"] is None and s["version"] is None
    assert s["projectPath"] == "/home/bob/code/tools"  # no cwd in the file: from the index's originalPath


# ---------------------------------------------------------------------- status rules
# 2.1.29 keeps no registry and is older than 2.1.75: busy iff the transcript was written
# within the last 60 seconds (file mtime vs clock).
@pytest.mark.parametrize("age, status", [(0, "busy"), (30, "busy"), (59, "busy"),
                                         (61, "ended"), (600, "ended"), (86400, "ended")])
def test_2_1_29_busy_within_60_seconds(sample_dir, age, status):
    root = sample_dir(V29)
    sid = "ea3b2304-996d-4b23-878c-00320dd47e87"
    set_mtimes(root, OLD, only={sid: NOW - age})
    s = scan(root).sessions()
    assert s[sid]["status"] == status
    assert s[sid]["pid"] is None
    for other in set(EXPECTED_29) - {sid}:
        assert s[other]["status"] == "ended", other


def test_2_1_29_fresh_files_all_busy_old_files_all_ended(sample_dir):
    root = sample_dir(V29)
    set_mtimes(root, NOW - 5)
    assert {v["status"] for v in scan(root).sessions().values()} == {"busy"}
    set_mtimes(root, NOW - 3600)
    assert {v["status"] for v in scan(root).sessions().values()} == {"ended"}


def test_2_1_330_recent_write_without_live_process_is_ended(sample_dir):
    """2.1.330 keeps a registry: a fresh mtime alone never makes it busy."""
    for sample in (V330, VSUB):
        root = sample_dir(sample)
        set_mtimes(root, NOW - 1)
        for sid, s in scan(root).sessions().items():
            assert (s["status"], s["pid"]) == ("ended", None), sid


def test_2_1_330_registry_of_dead_pid_is_ended(sample_dir):
    root = sample_dir(V330)  # sessions/27246.json: pid 27246, procStart 221199: not this process
    set_mtimes(root, OLD)
    s = scan(root).sessions()
    assert {(v["status"], v["pid"]) for v in s.values()} == {("ended", None)}


def _registry(root: Path, pid: int, **override) -> dict:
    reg = json.loads((root / "sessions/27246.json").read_text())
    (root / "sessions/27246.json").unlink()
    reg.update(pid=pid, **override)
    reg = {k: v for k, v in reg.items() if v is not _DROP}
    (root / "sessions" / f"{pid}.json").write_text(json.dumps(reg))
    return reg


_DROP = object()
LIVE_SID = "9d2ae2de-0093-442a-adf0-da57dd454d42"


@pytest.mark.parametrize("file_status, expected", [
    ("busy", "busy"), ("waiting", "waiting"), ("idle", "idle"),
    ("shell", "idle"), (_DROP, "idle"), ("compacting-or-whatever", "idle"),
], ids=["busy", "waiting", "idle", "shell", "missing", "unknown"])
def test_2_1_330_live_registry_gives_status_and_pid(sample_dir, file_status, expected):
    root = sample_dir(V330)
    set_mtimes(root, OLD)
    me = os.getpid()
    _registry(root, me, procStart=proc_start(me), status=file_status)
    s = scan(root).sessions()
    assert (s[LIVE_SID]["status"], s[LIVE_SID]["pid"]) == (expected, me)
    for other in set(EXPECTED_330) - {LIVE_SID}:
        assert (s[other]["status"], s[other]["pid"]) == ("ended", None), other
    # every other field is unchanged by the process being live
    want = dict(EXPECTED_330[LIVE_SID], status=expected, pid=me)
    assert not diff(s[LIVE_SID], want)


def test_2_1_330_reused_pid_is_ended(sample_dir):
    """The pid is alive but its start time is not the recorded one: another process."""
    root = sample_dir(V330)
    set_mtimes(root, OLD)
    me = os.getpid()
    _registry(root, me, procStart=str(int(proc_start(me)) + 1), status="busy")
    s = scan(root).sessions()
    assert (s[LIVE_SID]["status"], s[LIVE_SID]["pid"]) == ("ended", None)


def test_2_1_330_registry_without_proc_start_trusts_live_pid(sample_dir):
    root = sample_dir(V330)
    set_mtimes(root, OLD)
    me = os.getpid()
    _registry(root, me, procStart=_DROP, status="waiting")
    s = scan(root).sessions()
    assert (s[LIVE_SID]["status"], s[LIVE_SID]["pid"]) == ("waiting", me)


# --------------------------------------------------------------------------- messages
# tool_use "input": the file holds an object. The message shape does not say whether
# "input" is that object or its JSON text (clipped and credential-masked for display);
# both are accepted, as literal constants.
ECHO_HI_INPUT = OneOf(
    {"command": "echo hi", "description": "Print hi to check the shell works"},
    '{"command": "echo hi", "description": "Print hi to check the shell works"}',
)
# 0aa9b345 (2.1.29): queue-operation (not a message), then five user/assistant records.
MESSAGES_0AA9 = [
    {"index": 0, "uuid": "0072adfe-aea3-4e0a-8eaf-e3062e653f2a", "role": "user", "kind": "prompt",
     "timestamp": "2026-11-23T20:09:02.901Z", "model": None, "messageId": None,
     "blocks": [{"type": "text", "text": "@tool Session 1 in legacy-app: check that the shell works"}]},
    {"index": 1, "uuid": "8044acb0-a7c7-4665-b60e-46638f6d76d0", "role": "assistant", "kind": "reply",
     "timestamp": "2026-11-23T20:09:02.991Z", "model": "claude-sonnet-4-5-20250929",
     "messageId": "msg_01RrLiaSMmbYuApTIO6j54xykd",
     "blocks": [{"type": "text", "text": "I'll run a harmless command first."}]},
    {"index": 2, "uuid": "cd56d281-5f49-4ec2-abcc-6e35c02e6444", "role": "assistant", "kind": "reply",
     "timestamp": "2026-11-23T20:09:03.093Z", "model": "claude-sonnet-4-5-20250929",
     "messageId": "msg_01RrLiaSMmbYuApTIO6j54xykd",
     "blocks": [{"type": "tool_use", "id": "toolu_01uhEH3LtenwW1FgEx5KEyt13N", "name": "Bash",
                 "input": ECHO_HI_INPUT}]},
    {"index": 3, "uuid": "fab878f9-bf33-4134-814e-ab454bb3fe89", "role": "user", "kind": "tool-result",
     "timestamp": "2026-11-23T20:09:03.188Z", "model": None, "messageId": None,
     "blocks": [{"type": "tool_result", "toolUseId": "toolu_01uhEH3LtenwW1FgEx5KEyt13N", "text": "hi",
                 "isError": False, "truncated": False}]},
    {"index": 4, "uuid": "9afe9dce-e10e-45ce-b953-4643e5dab096", "role": "assistant", "kind": "reply",
     "timestamp": "2026-11-23T20:09:03.314Z", "model": "claude-sonnet-4-5-20250929",
     "messageId": "msg_018dWdoExTDdCK2mBPipHH24mi",
     "blocks": [{"type": "text", "text": "The command finished. Its output was:\n\n```\nhi\n```\n\n"
                                         "That is all the mock model had to do."}]},
]


def test_messages_exact_2_1_29_tool_session(sample_dir):
    cat = scan(sample_dir(V29))
    page = cat.messages("0aa9b345-eaea-4196-9d21-b5f18b516cee", offset=0, limit=100)
    assert page["total"] == 5
    assert page["nextOffset"] is None
    got = page["messages"]
    assert len(got) == 5
    for g, want in zip(got, MESSAGES_0AA9):
        assert {k: g.get(k) for k in want} == want


# 52f4eb7e (2.1.29, interactive): ten user/assistant records, none a sidechain;
# its two subagent transcripts contribute nothing.
MESSAGES_52F4 = [
    # (uuid, role, kind, timestamp, messageId, block types)
    ("a18f150b-2de2-4193-8552-5da932fa212a", "user", "prompt", "2026-11-23T20:09:21.049Z", None, ["text"]),
    ("765f2a1c-4b48-4837-a716-17a0c4918e6f", "assistant", "reply", "2026-11-23T20:09:29.164Z",
     "msg_01d4kqHGNQOiOSNyw7qG1TNWAT", ["text"]),
    ("52f8e58e-fa6e-47d0-84b8-7f1afbbf5c5e", "user", "prompt", "2026-11-23T20:09:31.457Z", None, ["text"]),
    ("2cf5931e-47e0-4b48-a329-cb499fd75794", "assistant", "reply", "2026-11-23T20:09:31.586Z",
     "msg_01DLjC2GdDvGXZPCwGxsLKmnmL", ["text"]),
    ("4cf9f822-6241-424c-9d79-13a191fa253e", "assistant", "reply", "2026-11-23T20:09:31.688Z",
     "msg_01DLjC2GdDvGXZPCwGxsLKmnmL", ["tool_use"]),
    ("2daacfef-f447-4703-8926-c70a597b75f6", "user", "tool-result", "2026-11-23T20:09:31.874Z", None, ["tool_result"]),
    ("477200b0-e462-4ae2-a1aa-d693780a9a43", "user", "prompt", "2026-11-23T20:09:41.862Z", None, ["text"]),
    # isMeta caveat, then "<command-name>/exit..." and "<local-command-stdout>Goodbye!...":
    # none is a real prompt, so all three are "meta"
    ("73a08b8e-850c-4b68-87d7-e74183de12c9", "user", "meta", "2026-11-23T20:09:52.276Z", None, ["text"]),
    ("db8106f7-0459-4b27-bbf8-5479ce2fa620", "user", "meta", "2026-11-23T20:09:52.274Z", None, ["text"]),
    ("73802bce-b37c-4c13-8a48-20cb2ac98752", "user", "meta", "2026-11-23T20:09:52.274Z", None, ["text"]),
]
SID_52F4 = "52f4eb7e-5a5b-4d67-a1d1-c14d46097080"


def _summary(m):
    return (m["uuid"], m["role"], m["kind"], m["timestamp"], m["messageId"], [b["type"] for b in m["blocks"]])


def test_messages_roles_and_kinds_interactive(sample_dir):
    cat = scan(sample_dir(V29))
    page = cat.messages(SID_52F4, offset=0, limit=100)
    assert page["total"] == 10
    assert page["nextOffset"] is None
    assert [_summary(m) for m in page["messages"]] == MESSAGES_52F4
    assert [m["index"] for m in page["messages"]] == list(range(10))
    msgs = page["messages"]
    assert msgs[0]["blocks"] == [{"type": "text", "text": "@slow Interactive session in tools: hello (the reply streams slowly)"}]
    assert msgs[5]["blocks"] == [{"type": "tool_result", "toolUseId": "toolu_01WeqK2HHo7oAWE4gxGkmcGbPs",
                                  "text": "hi", "isError": False, "truncated": False}]
    assert msgs[9]["blocks"] == [{"type": "text", "text": "<local-command-stdout>Goodbye!</local-command-stdout>"}]
    assert all(m["model"] == "claude-sonnet-4-5-20250929" for m in msgs if m["role"] == "assistant")
    assert all(m["model"] is None for m in msgs if m["role"] == "user")


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 10])
def test_messages_paging_is_consistent(sample_dir, limit):
    cat = scan(sample_dir(V29))
    whole = cat.messages(SID_52F4, offset=0, limit=100)["messages"]
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = cat.messages(SID_52F4, offset=offset, limit=limit)
        assert page["total"] == 10
        assert 0 < len(page["messages"]) <= limit
        assert [m["index"] for m in page["messages"]] == list(range(offset, offset + len(page["messages"])))
        seen += page["messages"]
        nxt = page["nextOffset"]
        if offset + len(page["messages"]) < 10:
            assert nxt == offset + len(page["messages"])
        else:
            assert nxt is None
        offset = nxt
        pages += 1
        assert pages <= 10
    assert seen == whole
    assert pages == -(-10 // limit)


def test_messages_offset_past_the_end(sample_dir):
    cat = scan(sample_dir(V29))
    page = cat.messages(SID_52F4, offset=10, limit=5)
    assert page["messages"] == [] and page["nextOffset"] is None and page["total"] == 10


def test_messages_2_1_330_excludes_bookkeeping_and_sidechains(sample_dir):
    cat = scan(sample_dir(VSUB))
    page = cat.messages(SUB_ID, offset=0, limit=100)
    # user: records 2, 20 (tool_result), 29 (isMeta), 30 (a task notification: not a
    # prompt); assistant: 18, 19, 25, 33. Nothing from the subagent transcript (its
    # records are sidechains).
    assert page["total"] == 8
    got = [(m["role"], m["kind"]) for m in page["messages"]]
    assert got == [("user", "prompt"), ("assistant", "reply"), ("assistant", "reply"), ("user", "tool-result"),
                   ("assistant", "reply"), ("user", "meta"), ("user", "meta"), ("assistant", "reply")]
    assert [m["messageId"] for m in page["messages"] if m["role"] == "assistant"] == [
        "msg_mock8ab4ccb714204823a57a", "msg_mock8ab4ccb714204823a57a",
        "msg_mock02be298928934f22b424", "msg_mock0007448934794956ac9f"]


def test_messages_2_1_330_resumed_session(sample_dir):
    cat = scan(sample_dir(V330))
    page = cat.messages("79a3bb72-fd99-4d90-8588-85c351d684ad", offset=0, limit=100)
    assert page["total"] == 7
    assert [(m["uuid"], m["kind"]) for m in page["messages"]] == [
        ("d06f04ab-9b6a-43ee-9319-2613372c3f3d", "prompt"),
        ("82fe042e-349e-42fe-8be8-2b4ba3a52761", "reply"),
        ("388ef2ef-d6ad-4dea-b3ae-d0fa0d980fd4", "reply"),
        ("c379585a-40d7-480b-a06a-52afef8e7a97", "tool-result"),
        ("0b76d979-3918-4557-b726-368e5b9bd9c9", "reply"),
        ("76892455-9816-458a-bd7f-92cf350b3613", "prompt"),
        ("bfa5497e-ddd8-4960-9ef0-b59623161e9b", "reply"),
    ]
    tool_use = page["messages"][2]["blocks"]
    assert tool_use == [{"type": "tool_use", "id": "toolu_01ehxY84yUwPbE6DfXYgoK9AiI", "name": "Bash",
                         "input": ECHO_HI_INPUT}]


# ------------------------------------------------------------- robustness on samples
def test_unknown_version_uses_60_second_rule(sample_dir):
    """No version anywhere in the transcript: treated as older than 2.1.75."""
    root = sample_dir(V330)
    sid = "22222222-3333-4444-8555-666666666666"
    path = root / "projects/-home-alice-code-webapp" / f"{sid}.jsonl"
    path.write_text(json.dumps({"type": "user", "uuid": "u1", "timestamp": "2026-11-23T20:12:00.000Z",
                                "cwd": "/home/alice/code/webapp", "sessionId": sid,
                                "message": {"role": "user", "content": "no version here"}}) + "\n")
    set_mtimes(root, OLD, only={sid: NOW - 5})
    s = scan(root).sessions()
    assert s[sid]["version"] is None
    assert (s[sid]["status"], s[sid]["pid"]) == ("busy", None)
    assert s[sid]["title"] == "no version here" and s[sid]["messageCount"] == 1
    set_mtimes(root, OLD)
    assert scan(root).session(sid)["status"] == "ended"


def test_empty_transcript_is_listed(sample_dir):
    """2.1.29 creates the transcript empty at session start."""
    root = sample_dir(V29)
    sid = "33333333-4444-4555-8666-777777777777"
    path = root / "projects/-home-bob-code-tools" / f"{sid}.jsonl"
    path.write_bytes(b"")
    set_mtimes(root, OLD, only={sid: NOW - 5})
    s = scan(root).session(sid)
    assert s is not None
    assert s["title"] == "Untitled session"
    assert (s["messageCount"], s["sizeBytes"], s["subagentCount"]) == (0, 0, 0)
    assert s["firstPrompt"] is None and s["lastPrompt"] is None and s["model"] is None
    assert s["projectPath"] == "/home/bob/code/tools"  # the index's originalPath
    assert s["projectDir"] == "-home-bob-code-tools"
    assert s["status"] == "busy"  # version unknown, written 5 s ago
    # "the file's times when records have none": both are ISO 8601 strings
    import datetime as dt
    upd = dt.datetime.fromisoformat(s["updatedAt"].replace("Z", "+00:00"))
    assert abs(upd.timestamp() - (NOW - 5)) < 1.5
    dt.datetime.fromisoformat(s["createdAt"].replace("Z", "+00:00"))


def test_corrupt_line_mid_file_is_skipped(sample_dir):
    root = sample_dir(V29)
    sid = "0aa9b345-eaea-4196-9d21-b5f18b516cee"
    path = transcript(root, sid)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + ['{"type": "user", "message": {not json\n'] + lines[3:]))
    set_mtimes(root, OLD)
    s = scan(root).session(sid)
    want = dict(EXPECTED_29[sid], status="ended", pid=None, sizeBytes=3777 + 38)  # the bad line is 38 bytes
    bad = diff(s, want)
    assert not bad, bad


def test_half_written_last_line_is_not_read_yet(sample_dir):
    root = sample_dir(V29)
    sid = "0aa9b345-eaea-4196-9d21-b5f18b516cee"
    path = transcript(root, sid)
    tail = '{"parentUuid": "x", "type": "user", "message": {"role": "user", "content": "half a pro'
    with open(path, "a") as f:
        f.write(tail)
    set_mtimes(root, OLD)
    s = scan(root).session(sid)
    assert s["messageCount"] == 3
    assert s["lastPrompt"] == "@tool Session 1 in legacy-app: check that the shell works"
    assert s["updatedAt"] == "2026-11-23T20:09:03.314Z"
    assert s["sizeBytes"] == 3777 + len(tail)  # size of the file, whatever was parsed


@pytest.mark.parametrize("content", ["", '{"pid": ', "not json at all"], ids=["empty", "half", "garbage"])
def test_unreadable_registry_file_is_ignored(sample_dir, content):
    root = sample_dir(V330)
    set_mtimes(root, OLD)
    (root / "sessions" / f"{os.getpid()}.json").write_text(content)
    s = scan(root).sessions()
    assert sorted(s) == sorted(EXPECTED_330)
    assert {(v["status"], v["pid"]) for v in s.values()} == {("ended", None)}


def test_registry_naming_a_session_without_transcript_lists_nothing_new(sample_dir):
    """A fresh process before its first prompt: the registry names an id with no transcript."""
    root = sample_dir(V330)
    set_mtimes(root, OLD)
    me = os.getpid()
    _registry(root, me, procStart=proc_start(me), status="idle",
              sessionId="44444444-5555-4666-8777-888888888888")
    s = scan(root).sessions()
    assert sorted(s) == sorted(EXPECTED_330)
    assert {(v["status"], v["pid"]) for v in s.values()} == {("ended", None)}
