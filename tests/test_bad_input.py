"""Issue 2, "Bad input": none of these stops the catalog or hides a valid neighbour,
and each is logged once, not once per event.

Every case builds a real Claude data directory on disk with a valid neighbour
session beside the bad input, runs several rounds of what the live layer does
(``full_scan``, ``apply`` of the paths an event would name, ``retry_incomplete``,
``check_liveness``) while the neighbour keeps growing, and then checks the
neighbour, the bad input's own outcome, and the log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helm_monitor.sources.claude.catalog import VANISHED_GRACE_S, Catalog, iso_from_epoch
from helm_monitor.sources.claude.transcript import TranscriptReader
from tests.support.claude import proc_start

# every reader test with the C triage of lines and without it (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("triage")

CWD = "/home/alice/code/webapp"
ROUNDS = 4


def logged(caplog, needle: str, level: int = logging.INFO) -> list[str]:
    """Messages at ``level`` or above from helm_monitor that mention ``needle``."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= level and r.name.startswith("helm_monitor") and needle in r.getMessage()]


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("helm_monitor")]


class Scene:
    """A Claude directory with a valid neighbour session that keeps growing."""

    def __init__(self, claude, caplog, cwd: str = CWD):
        caplog.set_level(logging.DEBUG, logger="helm_monitor")
        self.claude = claude
        self.neighbour = claude.session(cwd=cwd)
        self.neighbour.turn("the neighbour's first prompt", "Sure.")
        self.turns = 1
        self.catalog = Catalog(claude.root)

    def rounds(self, *paths, n: int = ROUNDS) -> None:
        """What the live layer does on events, several times over; the neighbour grows each round."""
        cat = self.catalog
        cat.full_scan()
        for i in range(n):
            self.neighbour.turn(f"neighbour prompt {i}", "Ok.")
            self.turns += 1
            for p in paths:
                cat.apply(str(p))
            cat.apply(str(self.neighbour.path))
            cat.retry_incomplete()
            cat.check_liveness()
            cat.sessions()
            if i % 2:
                cat.full_scan()

    def assert_neighbour_ok(self) -> None:
        got = self.catalog.session(self.neighbour.id)
        assert got is not None, "the valid neighbour was hidden"
        assert got["messageCount"] == 2 * self.turns
        assert got["firstPrompt"] == "the neighbour's first prompt"
        assert got["projectPath"] == CWD
        assert self.neighbour.id in self.catalog.sessions()
        page = self.catalog.messages(self.neighbour.id)
        assert page["total"] == 2 * self.turns


# --------------------------------------------------------------------------- transcript lines

def test_truncated_last_line_then_completed(claude, caplog):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("complete turn", "Yes.")
    rec = json.dumps(s.prompt_record("the half-written prompt")).encode() + b"\n"
    s.write_raw(rec[: len(rec) // 2])
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 2 and got["lastPrompt"] == "complete turn"
    s.write_raw(rec[len(rec) // 2:])
    sc.rounds(s.path)
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 3 and got["lastPrompt"] == "the half-written prompt"
    # A write caught half done is normal, not an error.
    assert warnings(caplog) == []


@pytest.mark.parametrize("bad", [
    b"this is not json at all\n",
    b"{\"type\":\"user\",\"message\":{\"content\":\"unterminated\n",
    b"}}}}\n",
    b"\x00\x00\x00\x00\n",
], ids=["prose", "broken-object", "braces", "nul-bytes"])
def test_garbage_line(claude, caplog, bad):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("before", "A.")
    s.write_raw(bad)
    s.turn("after", "B.")
    sc.rounds(s.path)
    s.write_raw(bad)  # a second bad line later in the same file: counted, not logged again
    s.turn("later", "C.")
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 6 and got["lastPrompt"] == "later"
    assert len(logged(caplog, str(s.path), logging.WARNING)) == 1
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize("bad", [
    b'{"type":"user","message":{"role":"user","content":"caf\xe9"},"sessionId":"x"}\n',  # latin-1
    b"\xff\xfe\xfd\xfc garbage \xc3\x28\n",
    b'{"type":"user","message":{"role":"user","content":"\xed\xa0\x80"}}\n',  # a lone surrogate
], ids=["latin1", "invalid-bytes", "surrogate"])
def test_non_utf8_bytes(claude, caplog, bad):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("before", "A.")
    s.write_raw(bad)
    s.turn("after", "B.")
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 4 and got["lastPrompt"] == "after"
    assert [m["blocks"][0]["text"] for m in sc.catalog.messages(s.id)["messages"]] == ["before", "A.", "after", "B."]
    assert len(logged(caplog, str(s.path), logging.WARNING)) == 1
    assert len(warnings(caplog)) == 1


def test_json_lines_that_are_not_objects(claude, caplog):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("before", "A.")
    s.write_raw(b'[1,2]\n"str"\n42\nnull\ntrue\n[{"type":"user"}]\n')
    s.turn("after", "B.")
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 4
    assert sc.catalog.messages(s.id)["total"] == 4
    assert len(logged(caplog, str(s.path), logging.WARNING)) == 1
    assert len(warnings(caplog)) == 1


def test_zero_byte_transcript(claude, caplog):
    now = time.time()
    sc = Scene(claude, caplog)
    sc.catalog.clock = lambda: now
    s = claude.session(cwd=CWD)
    s.project_dir.mkdir(parents=True, exist_ok=True)
    s.path.touch()
    written = now - 3600.5
    os.utime(s.path, (written, written))
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["title"] == "Untitled session"
    assert got["messageCount"] == 0
    assert got["firstPrompt"] is None and got["lastPrompt"] is None
    assert got["createdAt"] == got["updatedAt"] == iso_from_epoch(written)
    assert got["sizeBytes"] == 0
    assert got["status"] == "ended"
    assert got["tokens"] == {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0}
    assert got["projectPath"] == CWD  # no record gives cwd: decoded from the folder name
    assert sc.catalog.messages(s.id) == {"messages": [], "nextOffset": None, "total": 0}
    assert warnings(caplog) == []
    # 2.1.29 creates it empty at start: the first prompt then counts.
    s.turn("now it starts", "Hi.")
    sc.catalog.apply(str(s.path))
    assert sc.catalog.session(s.id)["messageCount"] == 2


FIFTY_MB = 50 * 1024 * 1024


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1]) * 1024
    raise AssertionError(field)


def reset_peak_rss() -> int:
    """Reset this process's peak resident size (VmHWM); return the current resident size.

    tracemalloc is no meter here: orjson reserves about 14x a document's size as
    virtual memory it never touches; resident memory is what a user pays.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak resident size here ({exc}): memory not measured")
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    return _status_bytes("VmHWM")


def _big_bookkeeping(sid: str) -> bytes:
    head = b'{"type":"file-history-snapshot","messageId":"m1","snapshot":{"trackedFileBackups":{"big.bin":"'
    tail = b'"},"timestamp":"2026-11-23T20:08:16.049Z"},"isSnapshotUpdate":false}\n'
    return head + b"A" * (FIFTY_MB - len(head) - len(tail)) + tail


def _big_tool_result(s) -> bytes:
    rec = s.tool_result_record("toolu_big", "")
    raw = json.dumps(rec, separators=(",", ":")).encode()
    i = raw.index(b'"content":""') + len(b'"content":"')
    return raw[:i] + b"B" * (FIFTY_MB - len(raw) - 1) + raw[i:] + b"\n"


@pytest.mark.parametrize("kind", ["bookkeeping", "tool_result"])
def test_single_50mb_line(claude, caplog, kind):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("before the big line", "A.")
    big = _big_bookkeeping(s.id) if kind == "bookkeeping" else _big_tool_result(s)
    assert len(big) == FIFTY_MB
    s.write_raw(big)
    del big
    s.turn("after the big line", "B.")
    base = reset_peak_rss()
    sc.rounds(s.path, n=2)
    grew = peak_rss() - base
    # Skippable: never held. A needed record: held while parsed, not many times over.
    limit = 24 * 2**20 if kind == "bookkeeping" else 4 * FIFTY_MB
    assert grew < limit, f"peak memory grew by {grew / 2**20:.0f} MiB while reading a 50 MiB line"
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    assert got["messageCount"] == 4
    assert got["lastPrompt"] == "after the big line"
    assert got["sizeBytes"] == s.path.stat().st_size
    s.turn("later still", "C.")
    sc.catalog.apply(str(s.path))
    assert sc.catalog.session(s.id)["messageCount"] == 6
    assert warnings(caplog) == []


def test_single_50mb_line_arriving_in_pieces(claude):
    """The big line is caught half written several times before it ends."""
    s = claude.session(cwd=CWD)
    s.turn("before", "A.")
    big = _big_tool_result(s)
    r = TranscriptReader(str(s.path))
    r.update()
    step = len(big) // 5 + 1
    for i in range(0, len(big), step):
        s.write_raw(big[i:i + step])
        r.update()
    s.turn("after", "B.")
    r.update()
    assert r.stats.message_count == 4 and r.stats.last_prompt == "after"
    assert r.bytes_read == s.path.stat().st_size
    assert r.stats.bad_lines == 0


def test_records_with_wrong_field_types(claude, caplog):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("a good prompt", "A good reply.")
    good = s.prompt_record("x")
    weird = [
        dict(good, message={"role": "user", "content": 42}),                     # content a number
        dict(good, message={"role": "user", "content": [1, "two", None, {"type": 3}]}),
        dict(good, message=["not", "a", "dict"]),                                  # message a list
        dict(good, message="a string"),
        dict(good, timestamp=1795464495390),                                      # timestamp a number
        dict(good, cwd={"path": "/x"}, gitBranch=["main"], version=2.1, sessionId=7),  # cwd a dict ...
        dict(good, type=["user"]),
        dict(good, type=None),
        dict(good, isMeta="yes", isSidechain="no", message={"role": "user", "content": {"text": "hi"}}),
        {"type": "assistant", "message": {"id": "msg_w1", "model": ["m"], "content": 5, "usage": "lots"}},  # usage a string
        {"type": "assistant", "message": {"id": {"x": 1}, "usage": {"input_tokens": "5", "output_tokens": -3,
                                                                   "cache_read_input_tokens": 1e30,
                                                                   "cache_creation_input_tokens": True}}},
        {"type": "assistant", "message": {"id": "msg_w2", "usage": {"input_tokens": "5", "output_tokens": None,
                                                                    "cache_read_input_tokens": [1],
                                                                    "cache_creation_input_tokens": {"a": 1}},
                                          "content": [{"type": "tool_use", "input": None, "name": 5}]}},
        {"type": "assistant", "message": None},
        {"type": "summary", "summary": ["no"]},
        {"type": "ai-title", "aiTitle": 12},
        {"type": "custom-title", "customTitle": {"t": 1}},
        {"type": "agent-name", "agentName": False},
        {"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "content": 99}]}},
        {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": ["a"]}]}},
    ]
    s.write_raw(b"".join(json.dumps(w, separators=(",", ":")).encode() + b"\n" for w in weird))
    s.turn("the last good prompt", "Fine.")
    sc.rounds(s.path)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(s.id)
    # 2 good prompts, 2 prompts "x" (timestamp a number / cwd a dict: still prompts), 2 good
    # replies, and the two assistant messages with string ids (msg_w1, msg_w2).
    assert got["messageCount"] == 8
    assert got["title"] == "a good prompt"
    assert got["lastPrompt"] == "the last good prompt"
    assert got["projectPath"] == CWD
    assert got["gitBranch"] == "main"
    assert got["version"] == "2.1.330"
    assert got["model"] == "claude-opus-5-5"
    assert got["tokens"] == {"input": 20, "output": 40, "cacheRead": 80, "cacheCreation": 60}
    assert got["createdAt"] <= got["updatedAt"] and got["updatedAt"].endswith("Z")
    # The conversation view copes with every shape too.
    page = sc.catalog.messages(s.id, 0, 500)
    assert page["messages"][0]["blocks"] == [{"type": "text", "text": "a good prompt"}]
    assert page["messages"][-1]["blocks"] == [{"type": "text", "text": "Fine."}]
    assert len(warnings(caplog)) <= 1


# --------------------------------------------------------------------------- files and directories

CHILD = textwrap.dedent("""
    import json, logging, sys
    from helm_monitor.sources.claude.catalog import Catalog
    root, rounds, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    records = []
    class H(logging.Handler):
        def emit(self, r):
            records.append([r.levelno, r.getMessage()])
    logging.getLogger("helm_monitor").addHandler(H())
    logging.getLogger("helm_monitor").setLevel(logging.DEBUG)
    cat = Catalog(root)
    for i in range(rounds):
        cat.full_scan()
        for p in paths:
            cat.apply(p)
            cat.apply_dir(p) if not p.endswith(".jsonl") else None
    try:
        open(paths[0], "rb").close()
        readable = True
    except OSError:
        readable = False
    print(json.dumps({"sessions": {k: v["messageCount"] for k, v in cat.sessions().items()},
                      "log": records, "readable": readable}))
""")


def run_unprivileged(root: Path, *paths) -> dict:
    """Run the catalog in a child process for which permission bits are binding.

    As root, ``chmod 000`` stops nothing (CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH), so
    the child runs with those two capabilities removed from its bounding set
    (``setpriv``): still uid 0, still the owner of the files, but the owner's mode
    bits (000) are then enforced by the kernel exactly as for an ordinary user.
    """
    cmd = [sys.executable, "-c", CHILD, str(root), str(ROUNDS), *map(str, paths)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is missing: cannot make a file unreadable to root")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(cmd, capture_output=True, timeout=60, env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_unreadable_file(claude):
    neighbour = claude.session(cwd=CWD)
    neighbour.turn("neighbour", "ok")
    s = claude.session(cwd=CWD)
    s.turn("secret work", "ok")
    s.path.chmod(0)
    try:
        result = run_unprivileged(claude.root, s.path)
    finally:
        s.path.chmod(0o600)
    assert result["readable"] is False, "the child could read a mode-000 file: the test proves nothing"
    assert result["sessions"] == {neighbour.id: 2}
    about = [m for lvl, m in result["log"] if lvl >= logging.WARNING and str(s.path) in m]
    assert len(about) == 1, result["log"]
    assert "Permission denied" in about[0]
    assert len([1 for lvl, _ in result["log"] if lvl >= logging.WARNING]) == 1


def test_unreadable_project_directory(claude):
    neighbour = claude.session(cwd=CWD)
    neighbour.turn("neighbour", "ok")
    hidden = claude.session(cwd="/home/alice/code/private")
    hidden.turn("private", "ok")
    hidden.project_dir.chmod(0)
    try:
        result = run_unprivileged(claude.root, hidden.project_dir, hidden.path)
    finally:
        hidden.project_dir.chmod(0o700)
    assert result["readable"] is False, "the child could list a mode-000 directory: the test proves nothing"
    assert result["sessions"] == {neighbour.id: 2}
    warned = [m for lvl, m in result["log"] if lvl >= logging.WARNING]
    assert len([m for m in warned if str(hidden.project_dir) in m]) >= 1
    # once per path: the directory, and the transcript an event named inside it
    assert len(warned) == len(set(warned)) <= 2, warned


def test_unreadable_file_as_this_user_in_process(claude, caplog):
    """The same in-process, when permission bits bind this user (not root)."""
    if os.geteuid() == 0:
        pytest.skip("root reads mode-000 files; covered by test_unreadable_file in a child without the capabilities")
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD)
    s.turn("x", "y")
    s.path.chmod(0)
    try:
        sc.rounds(s.path)
    finally:
        s.path.chmod(0o600)
    sc.assert_neighbour_ok()
    assert s.id not in sc.catalog.sessions()
    assert len(logged(caplog, str(s.path), logging.WARNING)) == 1


def test_dangling_symlink_named_like_a_transcript(claude, caplog):
    sc = Scene(claude, caplog)
    link = sc.neighbour.project_dir / "0b6d6c4e-0000-4000-8000-000000000001.jsonl"
    link.symlink_to(sc.neighbour.project_dir / "gone.jsonl")
    sc.rounds(link)
    sc.assert_neighbour_ok()
    assert set(sc.catalog.sessions()) == {sc.neighbour.id}
    assert len(logged(caplog, str(link))) == 1
    assert len(warnings(caplog)) <= 1


def test_fifo_named_like_a_transcript(claude, caplog):
    """A non-regular file is not a transcript: never read (a FIFO would block a reader), never listed."""
    sc = Scene(claude, caplog)
    fifo = sc.neighbour.project_dir / "0b6d6c4e-0000-4000-8000-000000000002.jsonl"
    os.mkfifo(fifo)
    sc.rounds(fifo)
    sc.assert_neighbour_ok()
    assert set(sc.catalog.sessions()) == {sc.neighbour.id}
    assert len(logged(caplog, str(fifo), logging.WARNING)) == 1


def test_directory_named_like_a_transcript(claude, caplog):
    sc = Scene(claude, caplog)
    d = sc.neighbour.project_dir / "0b6d6c4e-0000-4000-8000-000000000003.jsonl"
    d.mkdir()
    (d / "inner.jsonl").write_text("{}\n")
    sc.rounds(d)
    sc.assert_neighbour_ok()
    assert set(sc.catalog.sessions()) == {sc.neighbour.id}
    assert len(logged(caplog, str(d), logging.WARNING)) <= 1


# --------------------------------------------------------------------------- sessions-index.json

def _index(s, extra_entries=()) -> dict:
    return {"version": 1, "originalPath": CWD, "entries": [
        {"sessionId": s.id, "fullPath": str(s.path), "fileMtime": 1795463516728, "firstPrompt": "x",
         "summary": "Index summary", "messageCount": 2, "projectPath": CWD, "isSidechain": False},
        *extra_entries]}


def test_sessions_index_truncated(claude, caplog):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD, version="2.1.29")
    s.turn("indexed prompt", "ok")
    index = s.project_dir / "sessions-index.json"
    full = json.dumps(_index(s)).encode()
    index.write_bytes(full[: len(full) // 2])
    sc.rounds(index)
    sc.assert_neighbour_ok()
    assert sc.catalog.session(s.id)["title"] == "indexed prompt"
    assert len(logged(caplog, str(index), logging.WARNING)) == 1
    assert len(warnings(caplog)) == 1
    # Written whole (Claude Code writes a .tmp and renames it): now used.
    tmp = index.with_name("sessions-index.json.tmp")
    tmp.write_bytes(full)
    os.replace(tmp, index)
    sc.catalog.apply(str(index))
    assert sc.catalog.session(s.id)["title"] == "Index summary"
    sc.rounds(index)
    assert len(warnings(caplog)) == 1


def test_sessions_index_lists_missing_files(claude, caplog):
    sc = Scene(claude, caplog)
    s = claude.session(cwd=CWD, version="2.1.29")
    s.turn("indexed prompt", "ok")
    ghosts = [{"sessionId": f"0b6d6c4e-0000-4000-8000-00000000001{i}", "fullPath": f"/nowhere/{i}.jsonl",
               "summary": "ghost", "messageCount": 9, "projectPath": CWD} for i in range(3)]
    index = s.project_dir / "sessions-index.json"
    index.write_text(json.dumps(_index(s, ghosts)))
    sc.rounds(index)
    sc.assert_neighbour_ok()
    assert set(sc.catalog.sessions()) == {sc.neighbour.id, s.id}
    for g in ghosts:
        assert sc.catalog.session(g["sessionId"]) is None
        assert sc.catalog.messages(g["sessionId"]) is None
    assert sc.catalog.session(s.id)["title"] == "Index summary"
    assert warnings(caplog) == []


# --------------------------------------------------------------------------- registry

def _registry_path(claude, pid: int) -> Path:
    return claude.root / "sessions" / f"{pid}.json"


def test_registry_empty_then_written(claude, caplog):
    sc = Scene(claude, caplog)
    pid = os.getpid()
    reg = _registry_path(claude, pid)
    reg.write_bytes(b"")
    sc.rounds(reg)
    sc.assert_neighbour_ok()
    assert sc.catalog.session(sc.neighbour.id)["status"] == "ended"
    assert str(reg) in sc.catalog.incomplete_registry
    assert len(logged(caplog, str(reg))) == 1
    assert warnings(caplog) == []
    claude.register(pid, sc.neighbour.id, status="waiting")
    assert sc.catalog.retry_incomplete() == {sc.neighbour.id}
    got = sc.catalog.session(sc.neighbour.id)
    assert (got["status"], got["pid"]) == ("waiting", pid)
    assert not sc.catalog.incomplete_registry


def test_registry_half_written_then_completed(claude, caplog):
    sc = Scene(claude, caplog)
    pid = os.getpid()
    reg = claude.register(pid, sc.neighbour.id, status="busy")
    full = reg.read_bytes()
    reg.write_bytes(full[: len(full) // 2])
    sc.rounds(reg)
    sc.assert_neighbour_ok()
    assert str(reg) in sc.catalog.incomplete_registry
    assert len(logged(caplog, str(reg))) == 1
    reg.write_bytes(full)
    assert sc.catalog.retry_incomplete() == {sc.neighbour.id}
    got = sc.catalog.session(sc.neighbour.id)
    assert (got["status"], got["pid"]) == ("busy", pid)
    assert not sc.catalog.incomplete_registry
    # Caught half written again during an in-place rewrite: what we knew stands meanwhile.
    claude.register(pid, sc.neighbour.id, status="idle")
    rewritten = reg.read_bytes()
    reg.write_bytes(rewritten[:10])
    sc.catalog.apply(str(reg))
    assert sc.catalog.session(sc.neighbour.id)["status"] == "busy"
    reg.write_bytes(rewritten)
    sc.catalog.retry_incomplete()
    assert sc.catalog.session(sc.neighbour.id)["status"] == "idle"
    assert warnings(caplog) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_registry_names_a_dead_pid(claude, caplog):
    sc = Scene(claude, caplog)
    pid = _dead_pid()
    reg = claude.register(pid, sc.neighbour.id, status="busy", proc_start_value="12345")
    other = claude.session(cwd=CWD)
    other.turn("live one", "ok")
    claude.register(os.getpid(), other.id, status="busy")
    sc.rounds(reg)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(sc.neighbour.id)
    assert (got["status"], got["pid"]) == ("ended", None)
    assert sc.catalog.session(other.id)["status"] == "busy"
    assert len(logged(caplog, str(reg))) == 1
    assert warnings(caplog) == []


def test_registry_names_a_reused_pid(claude, caplog):
    sc = Scene(claude, caplog)
    pid = os.getpid()  # alive, but started at another time than the file says
    real = proc_start(pid)
    reg = claude.register(pid, sc.neighbour.id, status="busy", proc_start_value=str(int(real) + 1))
    sc.rounds(reg)
    sc.assert_neighbour_ok()
    got = sc.catalog.session(sc.neighbour.id)
    assert (got["status"], got["pid"]) == ("ended", None)
    assert len(logged(caplog, str(reg))) == 1
    assert warnings(caplog) == []


# --------------------------------------------------------------------------- projects/

def test_missing_projects_directory_then_created(tmp_path, caplog):
    from tests.support.claude import ClaudeDir
    caplog.set_level(logging.DEBUG, logger="helm_monitor")
    claude = ClaudeDir(tmp_path / "claude", create_projects=False)
    clock = [0.0]
    cat = Catalog(claude.root, monotonic=lambda: clock[0])
    assert cat.full_scan() == set()
    assert cat.sessions() == {}
    assert cat.apply(str(claude.projects)) == set()
    assert cat.retry_incomplete() == set() and cat.check_liveness() == set()
    s = claude.session(cwd=CWD)
    s.turn("first", "ok")  # creates projects/<key>/<id>.jsonl
    # The watcher reports the new projects/ directory: everything below it is picked up.
    assert cat.apply(str(claude.projects), is_dir=True) == {s.id}
    assert cat.session(s.id)["messageCount"] == 2
    s2 = claude.session(cwd="/srv/other")
    s2.turn("second", "ok")
    assert cat.apply_dir(str(s2.project_dir)) == {s2.id}
    assert set(cat.sessions()) == {s.id, s2.id}
    # And a full rescan agrees; removing projects/ empties the list again.
    assert set(Catalog(claude.root).sessions()) == set()
    fresh = Catalog(claude.root)
    fresh.full_scan()
    assert set(fresh.sessions()) == {s.id, s2.id}
    # Held for a grace period (it may have been moved and be linked back), then dropped.
    shutil.rmtree(claude.projects)
    assert cat.apply(str(claude.projects), is_dir=True) == set()
    assert set(cat.sessions()) == {s.id, s2.id}
    clock[0] += VANISHED_GRACE_S
    assert cat.retry() == {s.id, s2.id}
    assert cat.sessions() == {}
    assert warnings(caplog) == []


def test_missing_claude_directory(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="helm_monitor")
    cat = Catalog(tmp_path / "does-not-exist")
    assert cat.full_scan() == set()
    assert cat.sessions() == {}
    assert warnings(caplog) == []
