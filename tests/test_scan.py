"""The first scan shared out over processes (helm_monitor/live/scan.py).

Whatever the scan processes do (hand back every file, die, hang, send
nonsense), the sessions listed are exactly those one process reading alone
lists; the processes never outlive the scan.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from helm_monitor.live import scan
from helm_monitor.live.monitor import Monitor
from helm_monitor.live.service import LiveService
from helm_monitor.live.sources import SourceSet
from helm_monitor.sources.claude.catalog import Catalog
from tests.support.claude import ClaudeDir
from tests.support.server import wait_until

FIXTURES = Path(__file__).parent / "fixtures"


def build_history(root: Path, sessions: int = 24, turns: int = 6, padding: int = 3000) -> ClaudeDir:
    """Real CLI samples (2.1.330, 2.1.29, subagents) plus written sessions with titles, tool use and bookkeeping."""
    claude = ClaudeDir(root)
    for name in ("claude-code-2.1.330", "claude-code-2.1.29", "claude-code-2.1.330-subagents"):
        shutil.copytree(FIXTURES / name / "projects", claude.projects, dirs_exist_ok=True)
    for i in range(sessions):
        s = claude.session(cwd=f"/home/dev/project-{i % 5}", git_branch=f"branch-{i}")
        for t in range(turns):
            s.turn(f"prompt {t} of session {i}", f"reply {t}", usage={
                "input_tokens": i + t, "output_tokens": 2 * t + 1, "cache_creation_input_tokens": i,
                "cache_read_input_tokens": 7})
            s.bookkeeping(padding * (1 + i % 4))
            s.write(s.tool_result_record("toolu_1", "output " * (50 + i)))
        if i % 3 == 0:
            s.title(f"title {i}")
        if i % 4 == 0:
            s.subagent()
        # Same message written again (a streamed reply's second block): counted once.
        s.reply("again", message_id=f"msg_{i:024d}")
        s.reply("again", message_id=f"msg_{i:024d}")
    return claude


def scan_with(root: Path, workers: int, *, monkeypatch=None) -> tuple[dict, Monitor]:
    svc = LiveService(claude_dir=root, scan_workers=workers, cache_dir=None, host="h")
    monitor = Monitor(svc.catalog, svc.store, scan_workers=workers)
    monitor._initial_scan()
    return {s["key"]: s for s in svc.store.snapshot()}, monitor


@pytest.fixture
def history(tmp_path) -> Path:
    return build_history(tmp_path / "claude").root


@pytest.fixture
def shared_out(monkeypatch):
    """Share out even a small history."""
    monkeypatch.setattr(scan, "MIN_PARALLEL_BYTES", 0)


def children_gone(pids) -> bool:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_shared_out_scan_lists_what_one_process_lists(history, shared_out):
    alone, m1 = scan_with(history, 1)
    shared, m2 = scan_with(history, 2)
    assert m1.scan_stats is None  # one worker: nothing forked
    assert m2.scan_stats["processes"] == 2
    assert m2.scan_stats["delivered"] == m2.scan_stats["files"] > 20
    assert m2.scan_stats["readHere"] == 0
    assert len(alone) > 25
    assert shared == alone
    some = next(s for s in shared.values() if s["title"] == "title 3")
    assert some["gitBranch"] == "branch-3" and some["messageCount"] == 6 + 6 + 1
    assert some["tokens"]["output"] == sum(2 * t + 1 for t in range(6)) + 20


def test_small_history_is_read_in_one_process(history):
    _sessions, monitor = scan_with(history, 2)
    assert monitor.scan_stats is None  # below MIN_PARALLEL_BYTES: forking costs more than it saves


def test_dead_scan_process_costs_a_read_not_a_session(history, shared_out, monkeypatch):
    alone, _ = scan_with(history, 1)
    victim = sorted(p for p in alone)[0]
    real_export = Catalog.export_state
    calls = []

    def dying_export(self, paths=None):
        calls.append(paths)
        if paths is not None and len(calls) == 3:
            os._exit(7)  # in a scan process: it dies half way through its share
        return real_export(self, paths)

    monkeypatch.setattr(Catalog, "export_state", dying_export)
    shared, monitor = scan_with(history, 2)
    assert monitor.scan_stats["readHere"] > 0
    assert monitor.scan_stats["delivered"] + monitor.scan_stats["readHere"] == monitor.scan_stats["files"]
    assert shared == alone
    assert victim in shared


def test_nonsense_from_a_scan_process_is_checked_not_believed(history, shared_out, monkeypatch):
    alone, _ = scan_with(history, 1)

    real_export = Catalog.export_state

    def lying_export(self, paths=None):
        # Well-formed states that lie: a wrong inode, another file's offset, made-up counts and
        # text. Checked against the file, they are read again.
        state = real_export(self, paths)
        assert state["readers"] or state["sidechains"]
        for _project, _sid, data in state["readers"].values():
            data.update(inode=1, size=10, offset=10, tail="", prompts=999, tokens=[9, 9, 9, 9],
                        **{k: "lie" for k in ("first_ts", "last_ts", "cwd", "git_branch", "version", "model",
                                              "custom_title", "ai_title", "summary", "first_prompt",
                                              "last_prompt", "session_id")})
        for data in state["sidechains"].values():
            data["follower"]["inode"] = 1
        return state

    monkeypatch.setattr(Catalog, "export_state", lying_export)
    shared, monitor = scan_with(history, 2)
    assert monitor.scan_stats["delivered"] == monitor.scan_stats["files"]
    assert shared == alone


def test_hung_scan_process_is_killed_and_its_files_read_here(history, shared_out, monkeypatch):
    alone, _ = scan_with(history, 1)
    monkeypatch.setattr(scan, "STALL_S", 0.5)
    real_export = Catalog.export_state

    def hanging_export(self, paths=None):
        if paths is not None and os.getpid() != parent:
            time.sleep(60)
        return real_export(self, paths)

    parent = os.getpid()
    monkeypatch.setattr(Catalog, "export_state", hanging_export)
    started = time.monotonic()
    shared, monitor = scan_with(history, 2)
    assert time.monotonic() - started < 20
    assert monitor.scan_stats["readHere"] == monitor.scan_stats["files"]
    assert shared == alone


def test_stopping_during_the_scan_ends_the_scan_processes(history, shared_out, monkeypatch):
    real_export = Catalog.export_state
    parent = os.getpid()

    def slow_export(self, paths=None):
        if os.getpid() != parent:
            time.sleep(0.5)
        return real_export(self, paths)

    monkeypatch.setattr(Catalog, "export_state", slow_export)
    svc = LiveService(claude_dir=history, scan_workers=2, cache_dir=None, host="h")
    svc.start()
    try:
        wait_until(lambda: svc.monitor.scan_pids, 10, message="scan processes started")
        pids = list(svc.monitor.scan_pids)
    finally:
        svc.stop()
    assert not svc.monitor.alive
    wait_until(lambda: children_gone(pids), 5, message="scan processes gone")


def test_scan_processes_under_a_real_gevent_worker(tmp_path, server_factory):
    """Forked by gunicorn's arbiter before it listens, taken over by the gevent worker: the same
    sessions as one process reading alone; a reloaded worker scans anew; nothing is left running."""
    root = build_history(tmp_path / "big", sessions=40, turns=8, padding=45_000).root
    total = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
    assert total > scan.MIN_PARALLEL_BYTES
    one = server_factory(root, env={"HELM_SCAN_WORKERS": "1"})
    many = server_factory(root, env={"HELM_SCAN_WORKERS": "2"})
    alone = {s["key"]: s for s in one.get_json("/api/sessions/all")}
    shared = {s["key"]: s for s in many.get_json("/api/sessions/all")}
    assert len(alone) > 40
    assert shared == alone
    log = many.log()
    assert log.count("read by 2 processes") == 1, log
    assert "taking over the 2 scan processes started before this worker" in log, log
    assert "read by" not in one.log()
    wait_until(lambda: _family(many) == {"workers": 1, "others": 0}, 5, message="only the worker left")

    # A reload: the new worker reads everything itself (its own scan processes), and lists the same.
    many.signal(signal.SIGHUP)
    wait_until(lambda: many.log().count("read by 2 processes") == 2, 20, message="the new worker's scan")
    wait_until(lambda: many.get_json("/healthz")["scan"] == "complete", 20, message="the new worker's scan done")
    assert {s["key"]: s for s in many.get_json("/api/sessions/all")} == alone
    wait_until(lambda: _family(many) == {"workers": 1, "others": 0}, 10, message="only the new worker left")


def _family(srv) -> dict:
    """The arbiter's workers, and every other process below it (scan processes)."""
    arbiter = srv.proc.pid
    children = {int(p.name) for p in Path("/proc").glob("[0-9]*") if _ppid(p) == arbiter}
    below = {int(p.name) for p in Path("/proc").glob("[0-9]*") if _ppid(p) in children}
    workers = {pid for pid in children if "helm-monitor: worker" in _cmdline(pid) or _is_gunicorn_worker(pid)}
    return {"workers": len(workers), "others": len(children - workers) + len(below)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_gunicorn_worker(pid: int) -> bool:
    # Without setproctitle a worker keeps the arbiter's command line; it has threads (the gevent hub's pool).
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir())) > 1
    except OSError:
        return False


def _ppid(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None




def test_every_agent_that_keeps_files_is_shared_out(tmp_path, shared_out):
    """Codex rollouts and Gemini chat files go to the scan processes too (OpenCode is one database)."""
    codex = tmp_path / "codex"
    gemini = tmp_path / "gemini"
    shutil.copytree(FIXTURES / "codex-0.171.0" / "home" / ".codex", codex)
    shutil.copytree(FIXTURES / "gemini-0.61.0" / "home" / ".gemini", gemini)
    claude = build_history(tmp_path / "claude", sessions=4).root
    options = {"claude-code": {"root": str(claude)}, "codex": {"root": str(codex)}, "gemini": {"root": str(gemini)}}

    def run(workers):
        svc = LiveService(sources=options, scan_workers=workers, cache_dir=None, host="h")
        monitor = Monitor(svc.catalog, svc.store, scan_workers=workers)
        monitor._initial_scan()
        return {s["key"]: s for s in svc.store.snapshot()}, monitor

    alone, _ = run(1)
    shared, monitor = run(2)
    kinds = {key.split(":")[1] for key in alone}
    assert kinds == {"claude-code", "codex", "gemini"}
    heavy = monitor.scan_stats["files"]
    codex_files = sum(1 for _ in codex.rglob("rollout-*.jsonl*"))
    gemini_files = sum(1 for p in gemini.rglob("session-*") if p.parent.name == "chats")
    assert codex_files and gemini_files
    assert heavy >= codex_files + gemini_files + 4
    assert monitor.scan_stats["readHere"] == 0
    assert shared == alone


def test_precomputed_shares_when_the_queue_does_not_fit(history, shared_out, monkeypatch):
    """More files than a pipe holds numbers for: each process reads a share of equal bytes."""
    alone, _ = scan_with(history, 1)
    monkeypatch.setattr(scan.ParallelScan, "_work_queue", lambda self: None)
    shared, monitor = scan_with(history, 2)
    assert monitor.scan_stats["delivered"] == monitor.scan_stats["files"]
    assert shared == alone


def test_scan_processes_hold_nothing_of_the_worker(history, shared_out, monkeypatch, tmp_path):
    """A stream's socket the worker closes must close on the wire: the processes keep no copy."""
    import socket
    mine, _peer = socket.socketpair()
    seen = tmp_path / "seen"
    seen.mkdir()
    real_export = Catalog.export_state
    parent = os.getpid()

    def spying_export(self, paths=None):
        if os.getpid() != parent:
            try:
                os.fstat(mine.fileno())
                held = "open"
            except OSError:
                held = "closed"
            (seen / str(os.getpid())).write_text(held)
        return real_export(self, paths)

    monkeypatch.setattr(Catalog, "export_state", spying_export)
    try:
        scan_with(history, 2)
    finally:
        mine.close()
        _peer.close()
    found = {p.read_text() for p in seen.iterdir()}
    assert found == {"closed"}, found


def test_what_only_adds_to_sessions_is_read_last(history, shared_out):
    """Subagent transcripts make no session of their own: every session is listed before they are read."""
    catalog = Catalog(history)
    plan = scan.ParallelScan.plan(SourceSet([catalog], "h"), scan.listing(catalog), 2, lambda path: set())
    late = [catalog.scan_late(p) for p in plan.paths]
    assert any(late) and not all(late)
    assert late == sorted(late), "a subagent transcript is read before a session's transcript"
    mains = [p for p in plan.paths if not catalog.scan_late(p)]
    mtimes = [os.stat(p).st_mtime for p in mains]
    assert mtimes == sorted(mtimes, reverse=True)  # newest first


def test_the_list_is_published_once_every_session_is_in_not_a_step_later(history, shared_out, monkeypatch):
    """A step returns as soon as the last file that makes a session is taken in: the list is whole
    then, and goes out while the scan processes still read what only adds to sessions."""
    catalog = Catalog(history)
    read = catalog.apply

    def slow_late(path):  # in the scan processes: subagent transcripts take seconds
        if catalog.scan_late(path):
            time.sleep(3)
        return read(path)
    monkeypatch.setattr(catalog, "apply", slow_late)
    plan = scan.ParallelScan.plan(SourceSet([catalog], "h"), scan.listing(catalog), 2, lambda path: {path})
    mains = {p for p in plan.paths if not catalog.scan_late(p)}
    assert plan.first_late == len(mains) < len(plan.paths)
    plan.start()
    try:
        taken: set[str] = set()
        started = time.monotonic()
        while not plan.sessions_done:
            taken |= plan.step(budget_s=30)
            assert time.monotonic() - started < 10
        assert time.monotonic() - started < 2.5  # not held for the subagents' 3 s
        assert taken == mains and not plan.done
        while not plan.done:
            taken |= plan.step(budget_s=30)
        assert taken == set(plan.paths) and plan.stats()["readHere"] == 0
    finally:
        plan.close()


@pytest.fixture
def mapped(monkeypatch):
    """Scan processes map every transcript (not only those of a megabyte and more), in small windows,
    so that windows, the bytes before the first boundary and lines across windows all occur."""
    from helm_monitor.sources import jsonl
    from helm_monitor.sources.claude import transcript
    monkeypatch.setattr(jsonl, "MAP_MIN_BYTES", 0)
    monkeypatch.setattr(transcript, "READ_CHUNK_BYTES", 3 * 4096)
    yield
    jsonl.map_reads(False)


def test_mapped_reading_gives_what_reading_gives(history, mapped):
    from helm_monitor.sources import jsonl
    read = Catalog(str(history))
    read.full_scan()
    jsonl.map_reads(True)
    mapped_ = Catalog(str(history))
    mapped_.full_scan()
    assert mapped_.export_state() == read.export_state()
    assert mapped_.sessions() == read.sessions()
    # Appended to (the read goes on from an offset between boundaries), each reads on alike.
    claude = ClaudeDir(history)
    path = max((history / "projects").rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    s = claude.session(session_id=path.stem, cwd="/home/dev/project-0")
    s.path = path
    s.turn("appended prompt " + "x" * 20_000, "appended reply")
    for catalog in (read, mapped_):
        catalog.apply(str(path))
    assert mapped_.export_state() == read.export_state()
    assert mapped_.sessions() == read.sessions()


def test_a_transcript_truncated_under_a_scan_process_mapping_it_costs_a_read(history, shared_out, mapped,
                                                                             monkeypatch):
    """A mapped file cut shorter kills the process that looks past its new end (SIGBUS): the
    pump reads what that process did not hand back, and lists what one process reading alone lists."""
    from helm_monitor.sources.claude import transcript
    victim = str(max((history / "projects").rglob("*.jsonl"), key=lambda p: p.stat().st_size))
    real_windows = transcript.windows

    def truncating(fd, offset, size, window_bytes):
        for n, window in enumerate(real_windows(fd, offset, size, window_bytes)):
            if n == 1 and os.readlink(f"/proc/self/fd/{fd}") == victim and os.path.getsize(victim) == size:
                # Claude Code rewriting the file, after this window was mapped: all of it past the end now.
                os.truncate(victim, 4096)
            yield window

    monkeypatch.setattr(transcript, "windows", truncating)
    shared, monitor = scan_with(history, 2)
    assert monitor.scan_stats["readHere"] > 0
    assert monitor.scan_stats["delivered"] + monitor.scan_stats["readHere"] == monitor.scan_stats["files"]
    assert os.path.getsize(victim) == 4096
    alone, _ = scan_with(history, 1)
    assert shared == alone
