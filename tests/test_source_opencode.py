"""The OpenCode source: the real 1.18.33 sample, live writes by another process, bad input, costs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from helm_monitor.sources.opencode import OpenCodeSource, default_db, default_root
from tests.support.opencode import OpenCodeDB, WriterProcess
from tests.support.server import wait_until

SAMPLE = "opencode-1.18.33"
S1, S2, S3 = "ses_dcfc02a38ffe4uA6GBTA16Loi3", "ses_dcfc012fbffemoZuyiVAimVWCV", "ses_dcfbffc47ffepBcmJY5k6BADhA"
S4, S5 = "ses_dcfbfc19affeOIVZIO6x1MAgLE", "ses_dcfbf451cffe5ybBpqq0UWKfya"
LOG = "helm_monitor.sources.opencode.source"


@pytest.fixture
def proc_root(tmp_path):
    """An empty /proc: no opencode process runs (status is decided by the data alone)."""
    d = tmp_path / "proc"
    d.mkdir()
    return str(d)


@pytest.fixture
def sample(sample_dir, proc_root):
    root = sample_dir(SAMPLE) / "home/.local/share/opencode"
    src = OpenCodeSource(str(root), proc_root=proc_root)
    for p in src.iter_paths():
        src.apply(p)
    return src


def warnings_about(caplog, text: str) -> list:
    return [r for r in caplog.records if text in r.getMessage()]


def make_source(tmp_path, **kw) -> OpenCodeSource:
    kw.setdefault("proc_root", str(tmp_path / "proc"))
    os.makedirs(kw["proc_root"], exist_ok=True)
    return OpenCodeSource(str(tmp_path / "opencode"), **kw)


def new_db(tmp_path, journal="wal") -> OpenCodeDB:
    (tmp_path / "opencode").mkdir(exist_ok=True)
    return OpenCodeDB(tmp_path / "opencode/opencode.db", journal)


# ---------------------------------------------------------------- the real sample
def common(**fields):
    base = {"source": "opencode", "projectDir": None, "gitBranch": None, "pid": None, "status": "ended",
            "subagentCount": 0, "version": "1.18.33", "model": "mock-model"}
    base.update(fields)
    return base


# Worked out from the sample's rows (sqlite3 .dump of the session, message and part tables):
# - title: session.title (none is a "New session - ..." placeholder any more);
# - first/lastPrompt: the text part of the first/last user message; `opencode run` stored them in
#   double quotes ("\"@tool Session 1 ...\""), stripped since those sessions deny "question" (run);
#   S5 is the TUI session (permission NULL): its prompt is stored as typed;
# - messageCount: user messages with text + assistant rows;
# - createdAt/updatedAt: session.time_created / time_updated (ms), e.g. 1796105819592 = 06:16:59.592Z;
# - tokens: session.tokens_input, tokens_output + tokens_reasoning, tokens_cache_read, tokens_cache_write;
# - cost: the sum of its assistant messages' data.cost (= session.cost), OpenCode's ledger; sizeBytes: sum(length(data)) over the session's message and part rows;
# - status ended: no opencode process (empty proc root); gitBranch, pid, projectDir: not stored.
EXPECTED = {
    S1: common(id=S1, projectPath="/home/user/code/alpha", title="Session 1 in alpha check that",
               firstPrompt="@tool Session 1 in alpha: check that the shell works",
               lastPrompt="@tool Session 1 in alpha: check that the shell works",
               messageCount=3,  # 1 user + 2 assistant steps (tool-calls, stop)
               createdAt="2026-12-01T06:16:59.592Z", updatedAt="2026-12-01T06:17:02.497Z",
               tokens={"input": 7770, "output": 95, "cacheRead": 7259, "cacheCreation": 0},  # 7476+294, 62+33
               sizeBytes=2119, cost={"usd": 0.0086859, "basis": "ledger", "unpricedModels": []}),
    S2: common(id=S2, projectPath="/home/user/code/beta", title="Session 2 in beta check that",
               firstPrompt="@tool Session 2 in beta: check that the shell works",
               lastPrompt="Follow-up sent with resume",  # the --session resume prompt
               messageCount=5,  # 2 user + 3 assistant
               createdAt="2026-12-01T06:17:05.541Z", updatedAt="2026-12-01T06:17:24.156Z",
               tokens={"input": 634, "output": 180, "cacheRead": 21994, "cacheCreation": 0},  # 122+250+262, 68+49+63
               sizeBytes=3198, cost={"usd": 0.0031934, "basis": "ledger", "unpricedModels": []}),
    S3: common(id=S3, projectPath="/home/user/code/alpha", title="Session 3 in alpha say hello",
               firstPrompt="Session 3 in alpha: say hello and summarise the README",
               lastPrompt="Follow-up sent with continue",  # the --continue prompt
               messageCount=4, createdAt="2026-12-01T06:17:11.352Z", updatedAt="2026-12-01T06:17:19.580Z",
               tokens={"input": 237, "output": 131, "cacheRead": 14783, "cacheCreation": 0},
               sizeBytes=2212, cost={"usd": 0.0019773, "basis": "ledger", "unpricedModels": []}),
    S4: common(id=S4, projectPath="/home/user/code/beta", title="Live session the reply streams slowly",
               firstPrompt="@hang Live session: the reply streams slowly",
               lastPrompt="@hang Live session: the reply streams slowly",
               messageCount=2, createdAt="2026-12-01T06:17:26.373Z", updatedAt="2026-12-01T06:17:48.636Z",
               tokens={"input": 208, "output": 45, "cacheRead": 7266, "cacheCreation": 0},
               sizeBytes=1110, cost={"usd": 0.0010246, "basis": "ledger", "unpricedModels": []}),
    S5: common(id=S5, projectPath="/home/user/code/alpha", title="Interactive second prompt streams slowly",
               firstPrompt="@slow Interactive: second prompt, streams slowly",
               lastPrompt="@slow Interactive: second prompt, streams slowly",
               messageCount=2, createdAt="2026-12-01T06:17:58.243Z", updatedAt="2026-12-01T06:18:08.606Z",
               # updatedAt: its user message row's time_updated (…888606) is later than the session row's (…888563)
               tokens={"input": 7869, "output": 53, "cacheRead": 0, "cacheCreation": 0},
               sizeBytes=1106, cost={"usd": 0.007975, "basis": "ledger", "unpricedModels": []}),
}


def test_sample_every_field(sample):
    assert sample.session_ids() == set(EXPECTED)
    for sid, want in EXPECTED.items():
        assert sample.session(sid) == want, sid


def test_sample_read_leaves_the_directory_alone(sample_dir, proc_root):
    # The sample is a rollback-journal file: no -wal/-shm/-journal must appear next to it.
    root = sample_dir(SAMPLE) / "home/.local/share/opencode"
    before = sorted(os.listdir(root))
    src = OpenCodeSource(str(root), proc_root=proc_root)
    assert src.full_scan() == set(EXPECTED)
    assert src.full_scan() == set()  # nothing changed: nothing reported
    assert sorted(os.listdir(root)) == before == ["opencode.db"]


def test_sample_conversation(sample):
    page = sample.conversation(S1).page(0, 100)
    assert page["total"] == 3 and page["nextOffset"] is None
    user, step1, step2 = page["messages"]
    assert (user["kind"], user["role"], user["uuid"]) == ("prompt", "user", "msg_2303fd622001hnbcb0dZ7WCk16")
    assert user["blocks"] == [{"type": "text", "text": '"@tool Session 1 in alpha: check that the shell works"'}]
    assert user["timestamp"] == "2026-12-01T06:16:59.683Z"
    assert (step1["kind"], step1["model"], step1["messageId"]) == ("reply", "mock-model", "msg_2303fda10001AmIU3jr6rqYgdM")
    call = "call_gmhOBWoL3Ro7dEgDZNvTouP4"
    assert step1["blocks"] == [
        {"type": "text", "text": "I'll run a harmless command first."},
        {"type": "tool_use", "id": call, "name": "bash", "input": '{"command": "echo hi"}'},
        {"type": "tool_result", "toolUseId": call, "text": "hi\n", "isError": False, "truncated": False},
    ]
    assert step2["blocks"][0]["text"].startswith("The command finished.")
    second = sample.conversation(S2).page(1, 2)
    assert [m["index"] for m in second["messages"]] == [1, 2] and second["nextOffset"] == 3 and second["total"] == 5
    assert sample.conversation("ses_unknown") is None


def test_defaults():
    assert default_root({"HOME": "/home/u"}) == "/home/u/.local/share/opencode"
    assert default_root({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}) == "/data/opencode"
    assert default_root({"HOME": "/home/u", "XDG_DATA_HOME": "rel"}) == "/home/u/.local/share/opencode"
    assert default_db({"HOME": "/home/u"}) == "/home/u/.local/share/opencode/opencode.db"
    assert default_db({"HOME": "/home/u", "OPENCODE_DB": "/x/y.db"}) == "/x/y.db"
    assert default_db({"HOME": "/home/u", "OPENCODE_DB": "other.db"}) == "/home/u/.local/share/opencode/other.db"
    assert default_db({"HOME": "/home/u", "OPENCODE_DB": "a.db", "HELM_OPENCODE_DB": "/h.db"}) == "/h.db"


# ---------------------------------------------------------------- live writes
@pytest.fixture
def writer(tmp_path):
    (tmp_path / "opencode").mkdir()
    w = WriterProcess(tmp_path / "opencode/opencode.db")
    yield w
    w.stop()


def fake_opencode(cwd: Path) -> subprocess.Popen:
    """A real process whose argv[0] is ``opencode``, working in ``cwd``."""
    return subprocess.Popen(["opencode", "-c", "import time; time.sleep(120)"], executable=sys.executable,
                            cwd=str(cwd))


def test_live_session_from_another_process(tmp_path, writer):
    proj = tmp_path / "proj"
    proj.mkdir()
    src = make_source(tmp_path, proc_root="/proc", proc_scan_interval_s=0)
    wal = src.db_path + "-wal"
    assert src.full_scan() == set()
    sid = writer.session(str(proj))
    assert src.apply(wal) == {sid}
    s = src.session(sid)
    assert (s["title"], s["messageCount"], s["status"]) == ("Untitled session", 0, "ended")  # placeholder title
    u = writer.user(sid, '"fix the flaky test please"')
    assert src.apply(wal) == {sid}
    s = src.session(sid)
    # the placeholder title gives way to the first prompt; run's quotes are stripped
    assert (s["title"], s["firstPrompt"], s["messageCount"]) == ("fix the flaky test please",) * 2 + (1,)
    agent = fake_opencode(proj)
    try:
        wait_until(lambda: src.check_liveness() == {sid} or src.session(sid)["status"] == "idle", 10,
                   message="the opencode process is seen")
        a = writer.assistant_start(sid, u)
        assert src.apply(wal) == {sid}
        assert src.session(sid)["status"] == "busy"  # no time.completed yet
        writer.set_title(sid, "Fix the flaky test")
        writer.assistant_finish(sid, a, "Done.", tokens=[120, 30, 60, 5], cost=0.25)
        assert src.apply(wal) == {sid}
        s = src.session(sid)
        assert (s["status"], s["title"], s["messageCount"]) == ("idle", "Fix the flaky test", 2)
        assert s["tokens"] == {"input": 120, "output": 30, "cacheRead": 60, "cacheCreation": 0}
        assert s["cost"] == {"usd": 0.25, "basis": "ledger", "unpricedModels": []}
        assert src.apply(wal) == set()  # nothing new
    finally:
        agent.kill()
        agent.wait()
    wait_until(lambda: src.check_liveness() == {sid}, 10, message="the process is gone")
    assert src.session(sid)["status"] == "ended"
    # A checkpoint rewrites the WAL from its start (same size): the next write is still seen.
    writer.execute("PRAGMA wal_checkpoint(RESTART)")
    writer.exchange(sid, "second prompt", "second reply")
    assert src.apply(wal) == {sid}
    assert (src.session(sid)["lastPrompt"], src.session(sid)["messageCount"]) == ("second prompt", 4)
    # A sub-agent session is counted in its parent, not listed.
    child = writer.session(str(proj), "Child task", parent_id=sid)
    assert src.apply(wal) == {sid}
    assert src.session_ids() == {sid} and src.session(sid)["subagentCount"] == 1 and src.session(child) is None
    # Archived: still listed (OpenCode hides it from its picker, but it is a session on this machine).
    writer.archive(sid)
    assert src.apply(wal) == {sid} and src.session(sid) is not None
    writer.delete_session(child)
    assert src.apply(wal) == {sid} and src.session(sid)["subagentCount"] == 0
    writer.delete_session(sid)
    assert src.apply(wal) == {sid}
    assert src.session_ids() == set() and src.session(sid) is None and src.conversation(sid) is None


def test_database_removed_forgets_everything(tmp_path):
    db = new_db(tmp_path)
    sid = db.session("/p", "A title")
    db.close()
    src = make_source(tmp_path)
    assert src.full_scan() == {sid}
    conv = src.conversation(sid)
    os.remove(src.db_path)
    assert src.apply(src.db_path) == {sid}
    assert src.session_ids() == set()
    with pytest.raises(FileNotFoundError):
        conv.page()


def test_cost_of_one_change_among_1000_sessions(tmp_path):
    db = new_db(tmp_path)
    with db.tx():
        ids = [db.session(f"/p/{i}", f"Session {i}") for i in range(1000)]
        for sid in ids:
            db.exchange(sid, "a prompt", "a reply")
    src = make_source(tmp_path)
    assert len(src.full_scan()) == 1000
    cold = src.rows_read
    assert cold >= 1000 * 5  # session + 2 messages + >= 3 parts each
    db.exchange(ids[500], "one more", "and its reply")
    before = src.rows_read
    assert src.apply(src.db_path + "-wal") == {ids[500]}
    read = src.rows_read - before
    # the changed session's id, its row, and its rows updated in the last seconds: not 1000 sessions' rows
    assert 3 <= read <= 20, read
    assert src.session(ids[500])["messageCount"] == 4
    # A look with nothing new reads no rows at all.
    before = src.rows_read
    assert src.apply(src.db_path + "-wal") == set()
    assert src.rows_read == before


def test_placeholder_title_and_tui_quotes(tmp_path):
    db = new_db(tmp_path)
    tui = db.session("/p", run=False)
    db.user(tui, '"quoted on purpose"')
    empty = db.session("/p")
    db.close()
    src = make_source(tmp_path)
    src.full_scan()
    assert src.session(tui)["title"] == '"quoted on purpose"'  # typed in the TUI: as typed
    assert src.session(empty)["title"] == "Untitled session"


def test_secrets_are_masked(tmp_path):
    db = new_db(tmp_path)
    sid = db.session("/p")
    key = "sk-ant-api03-" + "A" * 40
    u = db.user(sid, f"use the key {key} now")
    a = db.assistant_start(sid, u)
    db.assistant_finish(sid, a, f"I used {key}", tool=("bash", {"command": f"echo {key}"}, f"out {key}"))
    db.close()
    src = make_source(tmp_path)
    src.full_scan()
    s = src.session(sid)
    assert key not in s["title"] and key not in s["firstPrompt"] and "sk-ant-api03-" in s["firstPrompt"]
    page = json.dumps(src.conversation(sid).page())
    assert key not in page and page.count("sk-ant-api03-") == 4


# ---------------------------------------------------------------- bad input
def test_garbage_json_non_utf8_and_unknown_types(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    db = new_db(tmp_path)
    good = db.session("/good", "Good")
    db.exchange(good, "fine prompt", "fine reply")
    bad = db.session("/bad", "Bad")
    db.exchange(bad, "ok prompt", "ok reply")
    with db.tx():
        db.conn.execute("INSERT INTO message VALUES ('msg_garbage', ?, 1, 1, '{\"role\":\"assistant\",')", (bad,))
        db.conn.execute("INSERT INTO message VALUES ('msg_latin', ?, 2, 2, '{\"role\":\"user\"}')", (bad,))
        db.conn.execute("INSERT INTO part VALUES ('prt_latin', 'msg_latin', ?, 2, 2, "
                        "CAST(x'7b2274797065223a2274657874222c2274657874223a22636166e920626172227d' AS TEXT))",
                        (bad,))
        db.conn.execute("INSERT INTO part VALUES ('prt_future', 'msg_latin', ?, 3, 3, "
                        "'{\"type\":\"hologram\",\"beam\":1}')", (bad,))
        db.conn.execute("INSERT INTO message VALUES ('msg_robot', ?, 4, 4, '{\"role\":\"robot\"}')", (bad,))
        db.conn.execute("ALTER TABLE session ADD COLUMN future_field TEXT")
        db._touch_session(bad)
    src = make_source(tmp_path)
    assert src.full_scan() == {good, bad}
    for _ in range(2):
        src.full_scan()
        src.apply(src.db_path)
    assert len(warnings_about(caplog, "msg_garbage")) == 1
    assert len(warnings_about(caplog, "hologram")) == 1
    assert len(warnings_about(caplog, "robot")) == 1
    g = src.session(good)
    assert (g["firstPrompt"], g["messageCount"]) == ("fine prompt", 2)
    b = src.session(bad)
    # its sound rows count (ok prompt + reply + the Latin-1 prompt, created at ms 2 so first); the
    # Latin-1 byte reads as a replacement character
    assert b["messageCount"] == 3 and b["firstPrompt"] == "caf\ufffd bar" and b["lastPrompt"] == "ok prompt"
    page = src.conversation(bad).page()
    # the part of an unknown type is shown as raw JSON (helm_monitor.sources.blocks), in part order
    assert page["total"] == 5 and any(m["blocks"] == [{"type": "unknown", "kind": "hologram",
                                                       "raw": '{\n  "type": "hologram",\n  "beam": 1\n}'},
                                                      {"type": "text", "text": "caf\ufffd bar"}]
                                      for m in page["messages"])


def test_corrupt_database_then_fixed(tmp_path, caplog):
    (tmp_path / "opencode").mkdir()
    path = tmp_path / "opencode/opencode.db"
    path.write_bytes(os.urandom(8192))
    src = make_source(tmp_path)
    for _ in range(3):
        assert src.apply(str(path)) == set()
    assert len(warnings_about(caplog, "not a usable SQLite database")) == 1
    assert src.session_ids() == set() and not src.needs_retry
    path.unlink()
    db = OpenCodeDB(path)
    sid = db.session("/p", "Back")
    assert src.apply(str(path) + "-wal") == {sid}


def test_unknown_schema(tmp_path, caplog):
    (tmp_path / "opencode").mkdir()
    conn = sqlite3.connect(tmp_path / "opencode/opencode.db")
    conn.executescript("CREATE TABLE session (id TEXT PRIMARY KEY, title TEXT); "
                       "INSERT INTO session VALUES ('ses_1', 'old'); CREATE TABLE message (id TEXT);")
    conn.commit()
    src = make_source(tmp_path)
    for _ in range(3):
        assert src.full_scan() == set()
    found = warnings_about(caplog, "unknown schema")
    assert len(found) == 1 and "session.directory" in found[0].getMessage() and "part" in found[0].getMessage()
    assert src.session_ids() == set()


def test_no_event_table_reads_by_time_updated(tmp_path):
    db = new_db(tmp_path)
    sid = db.session("/p", "Titled")
    db.user(sid, "first")
    with db.tx():
        db.conn.execute("DROP TABLE event")
    src = make_source(tmp_path)
    assert src.full_scan() == {sid}
    with db.tx():  # writes as a version before the event log (no event rows)
        db.conn.execute("INSERT INTO message VALUES ('msg_zz', ?, ?, ?, '{\"role\":\"user\"}')", (sid, db.now(), db.now()))
        db.conn.execute("INSERT INTO part VALUES ('prt_zz', 'msg_zz', ?, ?, ?, '{\"type\":\"text\",\"text\":\"again\"}')",
                        (sid, db.now(), db.now()))
    assert src.apply(src.db_path + "-wal") == {sid}
    assert src.session(sid)["lastPrompt"] == "again"
    other = "ses_other"
    with db.tx():
        db.conn.execute("INSERT INTO session (id, project_id, slug, directory, title, version, time_created, "
                        "time_updated) SELECT ?, project_id, 's', '/q', 'Other', '1.2.0', ?, ? FROM session",
                        (other, db.now(), db.now()))
    assert src.apply(src.db_path + "-wal") == {other}


def test_wal_locked_exclusive_still_reads(tmp_path, writer):
    sid = writer.session("/p", "Committed")
    src = make_source(tmp_path)
    assert src.full_scan() == {sid}
    writer.begin_exclusive()
    try:
        writer.set_title(sid, "Uncommitted")  # inside the exclusive transaction
        assert src.apply(src.db_path + "-wal") == set()  # the writer's lock does not stop a WAL reader
        assert src.session(sid)["title"] == "Committed" and not src.needs_retry
    finally:
        writer.commit()
    assert src.apply(src.db_path + "-wal") == {sid}
    assert src.session(sid)["title"] == "Uncommitted"


def test_rollback_journal_locked_is_retried(tmp_path, caplog):
    (tmp_path / "opencode").mkdir()
    w = WriterProcess(tmp_path / "opencode/opencode.db", journal="delete")
    try:
        first = w.session("/p", "First")
        src = make_source(tmp_path, busy_timeout_s=0.05, monotonic=lambda: clock[0])
        clock = [0.0]
        assert src.full_scan() == {first}
        w.begin_exclusive("INSERT INTO session (id, project_id, slug, directory, title, version, time_created, "
                          "time_updated) SELECT 'ses_second', project_id, 's', '/q', 'Second', '1.18.33', 1, 1 "
                          "FROM session")
        try:
            for _ in range(3):
                assert src.apply(src.db_path) == set()
                clock[0] += 5
                assert src.needs_retry and src.retry() == set()
            assert len(warnings_about(caplog, "retried until it works")) == 1
            assert src.session_ids() == {first} and src.session(first)["title"] == "First"
        finally:
            w.commit()
        clock[0] += 5
        assert src.retry() == {"ses_second"} and not src.needs_retry
    finally:
        w.stop()


def test_missing_wal_and_missing_shm(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    db = new_db(tmp_path)
    sid = db.session("/p", "Closed cleanly")
    db.close()  # a clean close checkpoints and removes -wal and -shm
    d = tmp_path / "opencode"
    assert sorted(os.listdir(d)) == ["opencode.db"]
    src = make_source(tmp_path)
    assert src.full_scan() == {sid}
    assert sorted(os.listdir(d)) == ["opencode.db"]  # mode=ro alone would have created -wal and -shm
    # A -wal without its -shm (a crash, then the -shm removed): not read, nothing created, known kept.
    code = textwrap.dedent(f"""
        import os, sqlite3
        c = sqlite3.connect({str(d / 'opencode.db')!r}, isolation_level=None)
        c.execute("PRAGMA wal_autocheckpoint = 0")
        c.execute("UPDATE session SET title = 'Crashed', time_updated = time_updated + 1")
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    os.remove(d / "opencode.db-shm")
    for _ in range(2):
        assert src.apply(str(d / "opencode.db-wal")) == set()
    assert sorted(os.listdir(d)) == ["opencode.db", "opencode.db-wal"]
    assert len(warnings_about(caplog, "no -shm")) == 1
    assert src.session(sid)["title"] == "Closed cleanly"


def _run_as_nobody(root: str) -> dict:
    code = textwrap.dedent("""
        import json, logging, os, sys
        from helm_monitor.sources.opencode import OpenCodeSource
        records = []
        class H(logging.Handler):
            def emit(self, r): records.append(r.getMessage())
        logging.getLogger("helm_monitor").addHandler(H())
        logging.getLogger("helm_monitor").setLevel(logging.INFO)
        os.setgid(65534); os.setuid(65534)
        src = OpenCodeSource(sys.argv[1], proc_root="/nonexistent")
        for _ in range(3):
            src.full_scan(); src.apply(src.db_path); src.apply(src.db_path + "-wal")
        print(json.dumps({"ids": sorted(src.session_ids()), "logs": records,
                          "titles": [src.session(i)["title"] for i in sorted(src.session_ids())]}))
    """)
    out = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[1]), check=True)
    return json.loads(out.stdout)


@pytest.fixture
def open_dir():
    """A directory uid 65534 can reach (pytest's tmp_path sits below a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="helm-opencode-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to switch to uid 65534")
def test_unreadable_directory(open_dir):
    d = open_dir / "opencode"
    d.mkdir()
    writer = WriterProcess(d / "opencode.db")
    try:
        sid = writer.session("/p", "Hidden")
        d.chmod(0o000)
        try:
            got = _run_as_nobody(str(d))
        finally:
            d.chmod(0o755)
        assert got["ids"] == []
        assert len([m for m in got["logs"] if "Permission denied" in m]) == 1, got["logs"]
        # readable, not writable (another user's OpenCode, running: -wal and -shm present): read through a
        # read-only -shm
        for p in d.iterdir():
            p.chmod(0o644)
        got = _run_as_nobody(str(d))
        assert got["ids"] == [sid] and got["titles"] == ["Hidden"], got
    finally:
        writer.stop()



def test_its_own_reads_do_not_make_it_read_again(tmp_path):
    """Opening the database makes an event of its own (as root SQLite fchown()s the WAL: an
    inotify ATTRIB, reported as a modification). Watched for real, an idle database is not read
    once per window forever, and that echo does not make the next real commit wait a window."""
    from helm_monitor.live.broadcaster import Broadcaster
    from helm_monitor.live.monitor import Monitor
    from helm_monitor.live.sources import SourceSet
    from helm_monitor.live.store import SessionStore
    from helm_monitor.live.watcher import Watcher

    db = new_db(tmp_path)
    sid = db.session("/home/user/code/alpha")
    db.user(sid, "first")
    source = make_source(tmp_path)
    store = SessionStore(Broadcaster())
    window = 1.0
    monitor = Monitor(SourceSet([source], "h"), store, debounce_s=window)
    watcher = Watcher(source.watches(), monitor.notify)
    watcher.start()
    monitor.start()
    key = f"h:opencode:{sid}"
    try:
        assert monitor.ready.wait(10)
        time.sleep(window + 0.2)  # the first scan's window ends
        db.user(sid, "second")
        wait_until(lambda: (store.get(key) or {}).get("lastPrompt") == "second", 0.5, message="the commit")
        settled = source.looks
        time.sleep(1.5 * window)  # nothing to wait for: a look per window (or per echo) would show here
        # At most one more: files written within 50 ms of a look are looked at again at their next event.
        assert source.looks <= settled + 1, f"{source.looks - settled} reads of an idle database"
        t0 = time.monotonic()
        db.user(sid, "third")
        wait_until(lambda: store.get(key)["lastPrompt"] == "third", 0.4, message="the next commit, at once")
        assert time.monotonic() - t0 < 0.4
    finally:
        watcher.stop()
        monitor.stop()
        db.close()
