"""helm-monitor's daily token totals against ccusage's, over one generated Claude Code history.

ccusage (npm, installed into .tools/ccusage/ by scripts/install-ccusage.sh) is the tool users
check their numbers with (USAGE_TRANSCRIPTS_SEARCH.md 1.4: "daily token sums must equal
``ccusage daily --json --offline -z UTC``"). Both read the same directory:

- ccusage: ``ccusage claude daily --json --offline -z <zone>`` with ``CLAUDE_CONFIG_DIR`` set to
  it (and ``HOME`` an empty folder, so nothing of this machine is read);
- helm-monitor: a real server (gunicorn + gevent worker) watching it, asked
  ``GET /api/usage?tz=<zone>&bucket=day&from=&to=``: what the usage view shows.

On a history without the cases where tools may apply different rules, every day agrees exactly,
in UTC and in zones with summer time and quarter-hour offsets. With those cases
(tests/support/usage_history.py EDGE_CASES), each side must equal its own rule applied to the
same facts, and every difference between them is one of those rules (see RULES). When
helm-monitor's numbers are wrong, the failure says which change of its rules gives them
(VARIANTS).
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import json
import os
import platform
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.server import REPO, HelmServer
from tests.support.usage_history import EDGE_CASES, TOKEN_FIELDS, History, write_history

pytestmark = pytest.mark.timeout(180)

TOOLS = REPO / ".tools" / "ccusage"
INSTALL = REPO / "scripts" / "install-ccusage.sh"
ZONES = ["UTC", "Europe/Berlin", "Asia/Kathmandu", "America/Los_Angeles"]

# (ccusage's rule, helm-monitor's rule) for each case where tools may differ, as History.counted
# implements them: only zero-breakdown makes the two count differently (test_each_difference_is_a_rule);
# ccusage's rule for forked copies is a fix of ccusage 20 (ccusage/ccusage#1765: copies of a
# transcript share message.id and requestId; Claude Code writes them on --resume / --fork-session
# and /branch, anthropics/claude-code#28463).
RULES = {
    "zero-breakdown": ("cache creation is the cache_creation breakdown (5m + 1h) whenever that object "
                       "exists, so 0 when it is all zeros", "the breakdown, or cache_creation_input_tokens "
                       "when the breakdown sums to 0 (the total is what the API billed)"),
    "midnight-split": ("a message streamed over several records is dated by the record it keeps: of "
                       "equal ones the first", "dated by its first record, with its latest record's usage"),
    "forked-copy": ("one count per message.id + requestId over all files", "the same: one count per "
                    "distinct API message, whichever session's file holds a copy"),
}
assert set(RULES) == set(EDGE_CASES)


# ------------------------------------------------------------------ ccusage
def _native_binary() -> Path | None:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if system and cpu:
        binary = TOOLS / "node_modules" / "@ccusage" / f"ccusage-{system}-{cpu}" / "bin" / "ccusage"
        if binary.is_file():
            # npm unpacks it without its executable bit (the package's node wrapper sets it at first run)
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return binary
    return None


@pytest.fixture(scope="session")
def ccusage() -> tuple[Path, str]:
    """The pinned ccusage's native binary and its version; installed now if scripts/test.sh did not."""
    binary = _native_binary()
    why = ""
    if binary is None:
        TOOLS.parent.mkdir(parents=True, exist_ok=True)
        with open(TOOLS.parent / "ccusage.lock", "a") as lock:  # pytest-xdist workers install once
            fcntl.flock(lock, fcntl.LOCK_EX)
            binary = _native_binary()
            if binary is None:
                proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=300)
                said = [l for l in (proc.stderr + proc.stdout).splitlines() if l.startswith("install-ccusage:")]
                why = " ".join(said) or (proc.stderr or proc.stdout).strip()[-400:]
                binary = _native_binary()
    if binary is None:
        pytest.skip(f"ccusage could not be installed by {INSTALL.relative_to(REPO)}: {why or 'no binary'}")
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return binary, version


def ccusage_daily(binary: Path, root: Path, tz: str, home: Path) -> dict[str, dict[str, int]]:
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "CLAUDE_CONFIG_DIR": str(root),
           "NO_COLOR": "1", "LANG": "C.UTF-8"}
    proc = subprocess.run([str(binary), "claude", "daily", "--json", "--offline", "-z", tz], env=env,
                          capture_output=True, text=True, timeout=120, cwd=str(home))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    out = {}
    for day in report["daily"]:
        tokens = {"input": day["inputTokens"], "output": day["outputTokens"],
                  "cacheCreation": day["cacheCreationTokens"], "cacheRead": day["cacheReadTokens"]}
        if any(tokens.values()):
            out[day["date"]] = tokens
    return out


# ------------------------------------------------------------------ helm-monitor
def helm_daily(server: HelmServer, tz: str, start: str = "2026-10-01", end: str = "2026-12-01") -> dict:
    query = urlencode({"tz": tz, "bucket": "day", "from": start, "to": end})
    answer = server.get_json(f"/api/usage?{query}", timeout=30)
    assert answer["tz"] == tz and answer["bucket"] == "day", answer
    out: dict[str, dict[str, int]] = {}
    for bucket in answer["buckets"]:
        day = bucket["start"][:10]  # the local midnight, with its offset: "2026-10-25T00:00:00+02:00"
        assert bucket["group"] is None
        tokens = {k: bucket["tokens"][k] for k in TOKEN_FIELDS}
        assert day not in out, f"two buckets for {day}: {answer['buckets']}"
        if any(tokens.values()):
            out[day] = tokens
    return out


# helm-monitor's rules one at a time changed (History.counted's variants): what a wrong count did.
VARIANTS = {
    ("dedupe", "session"): "a message copied into a forked session's file is counted again there",
    ("date_by", "last"): "a streamed message is dated by its last record, not its first",
    ("creation", "breakdown"): "cache creation is the 5m + 1h breakdown even where it sums to 0",
    ("subagents", False): "subagent transcripts are not counted",
}


def diagnose(history: History, ours: dict, tz: str) -> str:
    """Which change of helm-monitor's rules (VARIANTS, alone or together) gives exactly its numbers."""
    options = list(VARIANTS)
    for n in range(1, len(options) + 1):
        for combo in itertools.combinations(options, n):
            if differences(ours, history.daily(tz, "helm", **dict(combo))) == {}:
                return "helm-monitor counted exactly as if " + "; and ".join(VARIANTS[c] for c in combo)
    return "no change of the rules in VARIANTS explains the difference"


def check_helm(history: History, ours: dict, tz: str) -> None:
    diff = differences(ours, history.daily(tz, "helm"))
    if diff:
        pytest.fail(f"helm-monitor's days (left) against its rules (right), tz {tz}: {diff}\n"
                    f"{diagnose(history, ours, tz)}", pytrace=False)


def differences(a: dict, b: dict) -> dict:
    """Every day and field where ``a`` and ``b`` differ: day -> {field: (a, b)}."""
    out = {}
    for day in sorted(set(a) | set(b)):
        x, y = a.get(day, dict.fromkeys(TOKEN_FIELDS, 0)), b.get(day, dict.fromkeys(TOKEN_FIELDS, 0))
        diff = {k: (x[k], y[k]) for k in TOKEN_FIELDS if x[k] != y[k]}
        if diff:
            out[day] = diff
    return out


def start_server(root: Path, tmp: Path, sessions: int) -> HelmServer:
    server = HelmServer(root, log_path=tmp / "server.log").start()
    # Every session listed (subagents folded into theirs): the history was read whole.
    listed = server.get_json("/api/claude-sessions/all", timeout=30)
    assert len(listed) == sessions, f"{len(listed)} sessions listed of {sessions}"
    return server


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A history without EDGE_CASES, and a server over it."""
    tmp = tmp_path_factory.mktemp("usage-plain")
    history = write_history(tmp / "claude", seed=13, sessions=30)
    server = start_server(history.root, tmp, len(history.sessions))
    yield history, server, tmp
    server.kill()


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """A history with the edge cases of one file (zero breakdowns, messages split at midnight)."""
    tmp = tmp_path_factory.mktemp("usage-edge")
    history = write_history(tmp / "claude", seed=29, sessions=30, edge_cases={"zero-breakdown", "midnight-split"})
    server = start_server(history.root, tmp, len(history.sessions))
    yield history, server, tmp
    server.kill()


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    """A history with forked sessions whose files begin with a copy of their parent's conversation."""
    tmp = tmp_path_factory.mktemp("usage-forked")
    history = write_history(tmp / "claude", seed=31, sessions=30, edge_cases={"forked-copy"})
    server = start_server(history.root, tmp, len(history.sessions))
    yield history, server, tmp
    server.kill()


# ------------------------------------------------------------------ tests
@pytest.mark.slow
@pytest.mark.parametrize("tz", ZONES)
def test_every_day_agrees_with_ccusage(ccusage, plain, tz):
    """Every local day's input, output, cache-creation and cache-read tokens are ccusage's, exactly."""
    binary, version = ccusage
    history, server, tmp = plain
    theirs = ccusage_daily(binary, history.root, tz, tmp / "home")
    ours = helm_daily(server, tz)
    assert ours, ("helm-monitor's /api/usage counted no tokens at all over this history "
                  "(does the Claude source's usage() return its UsageFacts?)")
    truth = history.daily(tz, "helm")
    assert truth == history.daily(tz, "ccusage")  # nothing here that the two rules tell apart
    assert len(truth) >= 10
    assert differences(theirs, truth) == {}, f"{version} against the history's own numbers"
    check_helm(history, ours, tz)
    assert differences(ours, theirs) == {}, f"helm-monitor (left) against {version} (right), tz {tz}"


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kathmandu"])
def test_each_difference_is_a_rule(ccusage, edge, tz):
    """With the cases the two count differently, ccusage is ccusage's rules and helm-monitor is its
    own, on the same facts; so each day's difference is explained by RULES, message by message."""
    binary, version = ccusage
    history, server, tmp = edge
    kinds = history.kinds()
    assert kinds.get("zero-breakdown") and kinds.get("midnight-split"), kinds
    theirs = ccusage_daily(binary, history.root, tz, tmp / "home")
    ours = helm_daily(server, tz)
    assert differences(theirs, history.daily(tz, "ccusage")) == {}, f"{version} does not apply the rules RULES names"
    check_helm(history, ours, tz)
    by_kind = explain(history, tz)
    assert "rest" not in by_kind, f"messages of no edge case are counted differently: {by_kind['rest']}"
    explained: dict[str, dict[str, int]] = {}
    for days in by_kind.values():
        for day, delta in days.items():
            acc = explained.setdefault(day, dict.fromkeys(TOKEN_FIELDS, 0))
            for k in TOKEN_FIELDS:
                acc[k] += delta[k]
    observed = {day: {k: ours_k - theirs_k for k, (ours_k, theirs_k) in diff.items()}
                for day, diff in differences(ours, theirs).items()}
    assert observed == {day: {k: v for k, v in d.items() if v} for day, d in explained.items() if any(d.values())}
    assert set(by_kind) == {"zero-breakdown"}, by_kind  # both date a streamed message by its first record
    print(f"\nhelm-monitor minus {version}, tz {tz}, per rule:")
    for kind, days in by_kind.items():
        for day, delta in days.items():
            print(f"  {kind:15} {day} " + " ".join(f"{k} {v:+d}" for k, v in delta.items() if v))


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["UTC"])
def test_a_forked_sessions_copy_counts_once(ccusage, forked, tz):
    """A session forked from another (``--resume --fork-session``) begins with a copy of the earlier
    conversation: the same API messages (message.id, requestId), used and billed once. ccusage counts
    them once over all files; so must helm-monitor (SPEC 10: once per distinct API message), and
    then every day agrees."""
    binary, version = ccusage
    history, server, tmp = forked
    assert history.kinds().get("forked-copy"), history.kinds()
    assert any(s["forkedFrom"] for s in history.sessions.values())
    theirs = ccusage_daily(binary, history.root, tz, tmp / "home")
    assert differences(theirs, history.daily(tz, "ccusage")) == {}, version
    ours = helm_daily(server, tz)
    check_helm(history, ours, tz)
    assert differences(ours, theirs) == {}, f"helm-monitor (left) against {version} (right), tz {tz}"


def explain(history: History, tz: str) -> dict[str, dict[str, dict[str, int]]]:
    """helm-monitor's rules minus ccusage's, per edge case, day and field (only what is not 0).

    Each message is put with its original's edge case, else with "forked-copy" if it was copied,
    else with "rest" (where the two rules must agree)."""
    kind_of: dict[tuple, str] = {}
    for m in history.messages:
        key = (m.message_id, m.request_id)
        if key not in kind_of:
            kind_of[key] = m.kind if m.kind in EDGE_CASES else "rest"
        elif m.kind == "forked-copy" and kind_of[key] == "rest":
            kind_of[key] = "forked-copy"
    out = {}
    for kind in [*EDGE_CASES, "rest"]:
        part = dataclasses.replace(history, messages=[m for m in history.messages
                                                      if kind_of[(m.message_id, m.request_id)] == kind])
        ours, theirs = part.daily(tz, "helm"), part.daily(tz, "ccusage")
        days = {}
        for day in sorted(set(ours) | set(theirs)):
            zero = dict.fromkeys(TOKEN_FIELDS, 0)
            delta = {k: ours.get(day, zero)[k] - theirs.get(day, zero)[k] for k in TOKEN_FIELDS}
            if any(delta.values()):
                days[day] = delta
        if days:
            out[kind] = days
    return out
