"""The catalog on real Claude-Code-style directories: status rules, layout
(what is a transcript, a subagent, a legacy sidechain, a secret), and that
changes applied path by path agree with a full scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from helm_monitor.sources.claude.catalog import RECENT_WRITE_S, Catalog
from helm_monitor.sources.claude.layout import Kind, Layout
from tests.support.claude import append, proc_start

# ----------------------------------------------------------------------------- file opens
# An audit hook sees every open() / os.open() this process makes: a real witness
# that a file was never read, not a mock of the file system.
_OPENED: list | None = None


def _audit(event, args):
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes)):
        _OPENED.append(os.path.abspath(os.fsdecode(args[0])))


sys.addaudithook(_audit)


@contextmanager
def opens():
    global _OPENED
    _OPENED = seen = []
    try:
        yield seen
    finally:
        _OPENED = None


# ----------------------------------------------------------------------------- status

NOW = 1_900_000_000.0


def catalog(claude, now: float | None = None) -> Catalog:
    cat = Catalog(claude.root, clock=(lambda: now) if now is not None else time.time)
    cat.full_scan()
    return cat


@pytest.mark.parametrize("written, expected", [
    ("busy", "busy"), ("waiting", "waiting"), ("idle", "idle"),
    ("shell", "idle"), (None, "idle"), ("compacting", "idle"), (42, "idle"),
])
def test_live_registry_gives_status_and_pid(claude, written, expected):
    s = claude.session()
    s.turn("hello", "hi")
    pid = os.getpid()
    reg = claude.register(pid, s.id, status=None if written == 42 else written)
    if written == 42:
        data = json.loads(reg.read_text())
        reg.write_text(json.dumps(dict(data, status=42)))
    got = catalog(claude).session(s.id)
    assert (got["status"], got["pid"]) == (expected, pid)


def test_registry_status_changes_are_applied(claude):
    s = claude.session()
    s.turn("hello", "hi")
    pid = os.getpid()
    reg = claude.register(pid, s.id, status="busy")
    cat = catalog(claude)
    for status in ("waiting", "idle", "busy"):
        claude.register(pid, s.id, status=status)
        assert cat.apply(str(reg)) == {s.id}
        assert cat.session(s.id)["status"] == status
    assert cat.apply(str(reg)) == set()  # unchanged file: nothing to report
    claude.unregister(pid)
    assert cat.apply(str(reg)) == {s.id}
    assert (cat.session(s.id)["status"], cat.session(s.id)["pid"]) == ("ended", None)


def test_process_exit_without_removing_its_file_turns_ended(claude):
    s = claude.session()
    s.turn("hello", "hi")
    child = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(100):  # until exec has replaced the forked interpreter
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                if b"(sleep)" in f.read():
                    break
            time.sleep(0.01)
        claude.register(child.pid, s.id, status="busy")
        cat = catalog(claude)
        assert (cat.session(s.id)["status"], cat.session(s.id)["pid"]) == ("busy", child.pid)
        assert cat.check_liveness() == set()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert cat.check_liveness() == {s.id}
    assert (cat.session(s.id)["status"], cat.session(s.id)["pid"]) == ("ended", None)
    assert cat.check_liveness() == set()


def test_dead_and_reused_pids_are_ended(claude):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    s1, s2 = claude.session(), claude.session()
    s1.turn("a", "b")
    s2.turn("c", "d")
    claude.register(dead.pid, s1.id, status="busy", proc_start_value="1")
    me = os.getpid()
    claude.register(me, s2.id, status="busy", proc_start_value=str(int(proc_start(me)) + 7))
    cat = catalog(claude)
    for sid in (s1.id, s2.id):
        assert (cat.session(sid)["status"], cat.session(sid)["pid"]) == ("ended", None)


def test_two_registry_files_for_one_session_latest_live_wins(claude):
    """--resume: a dead earlier process left its file; the live one decides."""
    s = claude.session()
    s.turn("a", "b")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claude.register(dead.pid, s.id, status="busy", proc_start_value="1")
    claude.register(os.getpid(), s.id, status="waiting")
    got = catalog(claude).session(s.id)
    assert (got["status"], got["pid"]) == ("waiting", os.getpid())


@pytest.mark.parametrize("version", ["2.1.29", "2.1.74", "2.0.5", None])
@pytest.mark.parametrize("age, expected", [(0, "busy"), (59, "busy"), (61, "ended"), (3600, "ended")])
def test_versions_without_registry_busy_within_60_seconds(claude, version, age, expected):
    s = claude.session(version=version or "x")
    if version is None:  # records without a version field
        rec = s.prompt_record("p")
        del rec["version"]
        s.write(rec)
    else:
        s.turn("p", "r")
    os.utime(s.path, (NOW - age, NOW - age))
    got = catalog(claude, NOW).session(s.id)
    assert got["version"] == version
    assert (got["status"], got["pid"]) == (expected, None)


@pytest.mark.parametrize("version", ["2.1.75", "2.1.330", "3.0.0"])
def test_versions_with_registry_are_ended_without_one_even_if_just_written(claude, version):
    s = claude.session(version=version)
    s.turn("p", "r")
    os.utime(s.path, (NOW, NOW))
    got = catalog(claude, NOW).session(s.id)
    assert (got["status"], got["pid"]) == ("ended", None)


def test_recent_write_rule_follows_the_clock(claude):
    s = claude.session(version="2.1.29")
    s.turn("p", "r")
    os.utime(s.path, (NOW, NOW))
    clock = [NOW + 10]
    # Wall and monotonic clocks tick together here (no step; see the clock-step tests).
    cat = Catalog(claude.root, clock=lambda: clock[0], monotonic=lambda: clock[0] - NOW)
    cat.full_scan()
    assert cat.session(s.id)["status"] == "busy"
    assert cat.status_deadline() == pytest.approx(RECENT_WRITE_S)
    clock[0] = NOW + RECENT_WRITE_S + 0.5
    assert cat.session(s.id)["status"] == "ended"
    assert cat.status_deadline() is None
    # Written again: busy again.
    s.turn("again", "r")
    os.utime(s.path, (clock[0], clock[0]))
    cat.apply(str(s.path))
    assert cat.session(s.id)["status"] == "busy"


# ----------------------------------------------------------------------------- layout

def test_nested_subagents_count_other_files_do_not(claude):
    s = claude.session()
    s.turn("use agents", "ok")
    a1 = s.subagent("1", nested="x/y")
    a2 = s.subagent("2")
    sub = s.project_dir / s.id / "subagents"
    (sub / "x" / "agent-a1.meta.json").write_text('{"agentType": "Explore"}')
    (sub / "x" / "journal.jsonl").write_text('{"type":"user","sessionId":"%s"}\n' % s.id)
    tr = s.project_dir / s.id / "tool-results"
    tr.mkdir()
    (tr / "toolu_1.txt").write_text("big output")
    (tr / "agent-afake.jsonl").write_text("{}\n")  # not under subagents/: not a subagent
    (s.project_dir / s.id / "agent-aloose.jsonl").write_text("{}\n")  # directly in the session folder
    (s.project_dir / s.id / "custom-title.json").write_text('{"customTitle": "x"}')
    cat = Catalog(claude.root)
    with opens() as opened:
        cat.full_scan()
    assert set(cat.sessions()) == {s.id}
    assert cat.session(s.id)["subagentCount"] == 2
    never_read = [tr / "toolu_1.txt", tr / "agent-afake.jsonl", sub / "x" / "agent-a1.meta.json",
                  sub / "x" / "journal.jsonl"]
    assert not {str(p) for p in never_read} & set(opened)
    # Events, path by path.
    for p in never_read:
        assert cat.apply(str(p)) == set()
    a3 = s.subagent("3", nested="x/y/z")
    assert cat.apply(str(a3)) == {s.id}
    assert cat.session(s.id)["subagentCount"] == 3
    assert cat.apply(str(a3)) == set()
    a1.unlink()
    assert cat.apply(str(a1)) == {s.id}
    assert cat.session(s.id)["subagentCount"] == 2
    # A whole folder of agents appears at once (the watcher may name only the folder).
    deep = sub / "w"
    deep.mkdir()
    for i in range(5):
        append(deep / f"agent-aw{i}.jsonl", b'{"isSidechain":true}\n')
    assert cat.apply(str(deep), is_dir=True) == {s.id}
    assert cat.session(s.id)["subagentCount"] == 7
    assert set(cat.sessions()) == {s.id}
    fresh = Catalog(claude.root)
    fresh.full_scan()
    assert fresh.session(s.id) == cat.session(s.id)
    del a2


def test_a_subagent_link_counts_but_is_not_followed_for_its_usage(claude, tmp_path, caplog):
    s = claude.session()
    s.turn("use agents", "ok", usage={"input_tokens": 1, "output_tokens": 2})
    outside = tmp_path / "elsewhere.jsonl"
    s.write_to(outside, s.assistant_records("linked", agent_id="alink", usage={"input_tokens": 50}))
    sub = s.project_dir / s.id / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-alink.jsonl").symlink_to(outside)
    cat = catalog(claude)
    assert cat.session(s.id)["subagentCount"] == 1
    assert cat.usage(s.id).totals()[:2] == [1, 2]
    assert "symbolic link" in caplog.text
    assert cat.usage("no-such-session") is None


def test_legacy_top_level_sidechains_count_in_parent_and_are_never_listed(claude):
    parent = claude.session()
    parent.turn("main work", "ok")
    other = claude.session()
    other.turn("other work", "ok")
    legacy = []
    for i in range(2):
        p = parent.project_dir / f"agent-{i:08x}.jsonl"
        append(p, ('{"parentUuid":null,"isSidechain":true,"userType":"external","cwd":"/x","sessionId":"%s",'
                   '"version":"2.0.50","agentId":"%08x","type":"user","message":{"role":"user","content":"Warmup"}}\n'
                   % (parent.id, i)).encode())
        legacy.append(p)
    orphan = parent.project_dir / "agent-ffffffff.jsonl"
    append(orphan, b'{"type":"user","message":{"content":"no session id"}}\n')
    cat = catalog(claude)
    assert set(cat.sessions()) == {parent.id, other.id}
    assert cat.session(parent.id)["subagentCount"] == 2
    assert cat.session(other.id)["subagentCount"] == 0
    assert cat.session(parent.id)["messageCount"] == 2  # the sidechain's prompt is not the parent's
    legacy[0].unlink()
    assert cat.apply(str(legacy[0])) == {parent.id}
    assert cat.session(parent.id)["subagentCount"] == 1
    assert cat.apply(str(orphan)) == set()
    assert set(cat.sessions()) == {parent.id, other.id}


def test_secrets_are_never_opened(claude):
    s = claude.session()
    s.turn("hello", "hi")
    pid = os.getpid()
    claude.register(pid, s.id, status="busy")
    sessions = claude.root / "sessions"
    key = sessions / f"{pid}.3f9a2c.key"
    os.mkfifo(key)  # a reader that opened it would block: nothing may even try
    (sessions / "12345.json.key").write_bytes(b"x" * 100)
    ide = claude.root / "ide"
    ide.mkdir()
    lock = ide / "4242.lock"
    lock.write_text('{"authToken": "secret-token-abcdef"}')
    layout = Layout(claude.root)
    for p in (key, sessions / "12345.json.key", lock, ide):
        assert layout.classify(str(p)).kind is Kind.OTHER
        assert layout.classify(str(p), is_dir=False).kind is Kind.OTHER
    cat = Catalog(claude.root)
    with opens() as opened:
        cat.full_scan()
        for p in (key, lock, ide, sessions, claude.root / "sessions"):
            cat.apply(str(p))
        cat.apply_dir(str(sessions))
        cat.apply(str(claude.root))  # the root: a full rescan
        cat.retry_incomplete()
        cat.check_liveness()
        cat.sessions()
    assert str(sessions / f"{pid}.json") in opened  # the registry itself is read
    assert not {str(key), str(sessions / "12345.json.key"), str(lock)} & set(opened), opened
    assert cat.session(s.id)["status"] == "busy"


@pytest.mark.parametrize("path, kind", [
    ("projects/-p/0b6d6c4e-0000-4000-8000-000000000001.jsonl", Kind.TRANSCRIPT),
    ("projects/-p/agent-abc.jsonl", Kind.LEGACY_SIDECHAIN),
    ("projects/-p/sessions-index.json", Kind.INDEX),
    ("projects/-p/sessions-index.json.tmp", Kind.OTHER),
    ("projects/-p/s1/subagents/agent-a1.jsonl", Kind.SUBAGENT),
    ("projects/-p/s1/subagents/a/b/c/agent-a1.jsonl", Kind.SUBAGENT),
    ("projects/-p/s1/subagents/a/journal.jsonl", Kind.OTHER),
    ("projects/-p/s1/subagents/a/agent-a1.meta.json", Kind.OTHER),
    ("projects/-p/s1/tool-results/agent-a1.jsonl", Kind.OTHER),
    ("projects/-p/s1/tool-results/x.txt", Kind.OTHER),
    ("projects/-p/s1/agent-a1.jsonl", Kind.OTHER),
    ("projects/-p/memory/notes.jsonl", Kind.OTHER),
    ("projects/-p/../../etc/passwd.jsonl", Kind.OTHER),
    ("projects/-p/.hidden.jsonl", Kind.OTHER),
    ("sessions/123.json", Kind.REGISTRY),
    ("sessions/123.abc.key", Kind.OTHER),
    ("sessions/abc.json", Kind.OTHER),
    ("history.jsonl", Kind.OTHER),
    ("todos/x.jsonl", Kind.OTHER),
])
def test_classify_files(tmp_path, path, kind):
    layout = Layout(tmp_path)
    assert layout.classify(os.path.join(str(tmp_path), path), is_dir=False).kind is kind


def test_same_session_id_in_two_projects_listed_once(claude):
    sid = "0b6d6c4e-0000-4000-8000-0000000000aa"
    a = claude.session(cwd="/srv/a", session_id=sid)
    b = claude.session(cwd="/srv/b", session_id=sid)
    a.turn("in a", "ok")
    b.turn("in b", "ok")
    os.utime(a.path, (NOW, NOW))
    os.utime(b.path, (NOW - 100, NOW - 100))
    cat = catalog(claude)
    assert list(cat.sessions()) == [sid]
    assert cat.session(sid)["projectPath"] == "/srv/a"
    a.path.unlink()
    assert cat.apply(str(a.path)) == {sid}
    assert cat.session(sid)["projectPath"] == "/srv/b"


def test_deleted_transcript_and_project_are_forgotten(claude):
    s1 = claude.session(cwd="/srv/one")
    s2 = claude.session(cwd="/srv/two")
    s1.turn("a", "b")
    s2.turn("c", "d")
    cat = catalog(claude)
    s1.path.unlink()
    assert cat.apply(str(s1.path)) == {s1.id}
    assert set(cat.sessions()) == {s2.id}
    assert cat.messages(s1.id) is None
    import shutil
    shutil.rmtree(s2.project_dir)
    assert cat.apply(str(s2.project_dir)) == {s2.id}
    assert cat.sessions() == {}


def test_a_registry_file_that_stays_malformed_is_not_read_forever(claude):
    from helm_monitor.sources.claude.catalog import REGISTRY_RETRIES, Catalog
    s = claude.session("/w/reg")
    s.prompt("x")
    path = claude.root / "sessions" / "4242.json"
    path.write_text('{"pid": 4242, "sessionId": ')
    cat = Catalog(claude.root)
    cat.full_scan()
    assert str(path) in cat.incomplete_registry
    for _ in range(REGISTRY_RETRIES + 1):
        cat.retry_incomplete()
    assert not cat.incomplete_registry
    claude.register(os.getpid(), s.id, status="busy")  # a new write brings it back
    path.write_text('{"pid": 4242, "sessionId": ')
    cat.apply(str(path))
    assert str(path) in cat.incomplete_registry
