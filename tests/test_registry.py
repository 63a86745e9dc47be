"""The live-process registry (sessions/<pid>.json): parsing what Claude Code writes,
including what a reader catches mid-rewrite, and telling a live pid from a dead or
reused one through /proc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from helm_monitor.sources.claude.registry import (
    MAX_REGISTRY_BYTES, Incomplete, RegistryEntry, is_alive, process_start_time, read_entry,
)
from tests.support.claude import proc_start

SID = "9d2ae2de-0093-442a-adf0-da57dd454d42"
REAL = {"pid": 27246, "sessionId": SID, "cwd": "/home/alice/code/webapp", "startedAt": 1795464495646,
        "procStart": "221199", "version": "2.1.330", "peerProtocol": 1, "kind": "interactive",
        "entrypoint": "sdk-cli", "name": "webapp-58", "status": "busy", "updatedAt": 1795464495390,
        "statusUpdatedAt": 1795464495391}


def write(tmp_path, data, name="27246.json"):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(p)


def test_reads_a_real_entry(tmp_path):
    e = read_entry(write(tmp_path, REAL), 27246)
    assert e == RegistryEntry(pid=27246, session_id=SID, status="busy", proc_start="221199", version="2.1.330",
                              cwd="/home/alice/code/webapp", updated_at=1795464495391)
    assert e.effective_status == "busy"


@pytest.mark.parametrize("status, effective", [
    ("busy", "busy"), ("waiting", "waiting"), ("idle", "idle"), ("shell", "idle"),
    (None, "idle"), ("something-new", "idle"), (3, "idle"), (["busy"], "idle"),
])
def test_effective_status(tmp_path, status, effective):
    data = dict(REAL)
    if status is None:
        del data["status"]  # versions before ~2.1.167 write none
    else:
        data["status"] = status
    e = read_entry(write(tmp_path, data), 27246)
    assert e.effective_status == effective


@pytest.mark.parametrize("data", [
    b"", b"   \n", b"{", b'{"pid": 27246, "sessionId": "9d2a', json.dumps(REAL).encode()[:-1],
    b"[]", b'"x"', b"null", b"\xff\xfe",
    json.dumps(dict(REAL, sessionId="")).encode(), json.dumps(dict(REAL, sessionId=5)).encode(),
    json.dumps({k: v for k, v in REAL.items() if k != "sessionId"}).encode(),
    json.dumps(dict(REAL, pid=True)).encode(), json.dumps(dict(REAL, pid="27246")).encode(),
    json.dumps(dict(REAL, pid=-1)).encode(),
], ids=lambda d: repr(d[:24]))
def test_incomplete_or_foreign_content_raises_incomplete(tmp_path, data):
    with pytest.raises(Incomplete):
        read_entry(write(tmp_path, data), 27246)


def test_every_prefix_of_a_real_file_is_incomplete_or_whole(tmp_path):
    """What a reader can catch while the file is rewritten in place."""
    full = json.dumps(REAL).encode()
    for n in range(len(full)):
        with pytest.raises(Incomplete):
            read_entry(write(tmp_path, full[:n]), 27246)
    assert read_entry(write(tmp_path, full), 27246).session_id == SID


def test_oversized_file_is_not_read_whole(tmp_path):
    p = write(tmp_path, b" " * (MAX_REGISTRY_BYTES + 10) + json.dumps(REAL).encode())
    with pytest.raises(Incomplete):
        read_entry(p, 27246)


def test_field_types_tolerated(tmp_path):
    data = dict(REAL, procStart=221199, version=2, cwd=None, statusUpdatedAt="soon", updatedAt=True)
    e = read_entry(write(tmp_path, data), 27246)
    assert e.proc_start == "221199"
    assert e.version is None and e.cwd is None and e.updated_at == 0
    no_pid = {k: v for k, v in REAL.items() if k != "pid"}
    assert read_entry(write(tmp_path, no_pid), 27246).pid == 27246  # from the file name


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_entry(str(tmp_path / "1.json"), 1)


# ----------------------------------------------------------------------------- /proc

def entry(pid: int, proc_start_value: str | None) -> RegistryEntry:
    return RegistryEntry(pid=pid, session_id=SID, status="busy", proc_start=proc_start_value, version="2.1.330",
                         cwd=None, updated_at=0)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_own_process_start_time_matches_proc_stat():
    me = os.getpid()
    assert process_start_time(me) == proc_start(me)
    assert process_start_time(me).isdigit()


def test_live_pid_with_matching_start_is_alive():
    me = os.getpid()
    assert is_alive(entry(me, proc_start(me)))
    assert is_alive(entry(me, None))  # files without procStart: the pid alone decides


def test_reused_pid_is_not_alive():
    me = os.getpid()
    assert not is_alive(entry(me, str(int(proc_start(me)) + 1)))
    assert not is_alive(entry(me, "not-a-number"))


def test_dead_pid_is_not_alive():
    pid = dead_pid()
    assert process_start_time(pid) is None
    assert not is_alive(entry(pid, None))


def test_zombie_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while True:  # exited but not yet reaped: a zombie
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rindex(b")") + 2:].startswith(b"Z"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not is_alive(entry(child.pid, None))
    finally:
        child.wait()


def test_command_name_with_parentheses_and_spaces(tmp_path):
    """Field 2 of /proc/<pid>/stat is the command name in parentheses and may hold
    ') (' and spaces: field 22 must be counted from the LAST ')'."""
    sleep = shutil.which("sleep")
    odd = tmp_path / "a) (b c) d"
    odd.symlink_to(sleep)
    child = subprocess.Popen([str(odd), "30"])
    try:
        for _ in range(200):
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                stat = f.read()
            if b"(a) (b c) d)" in stat:
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"the child never showed its odd name: {stat!r}")
        started = process_start_time(child.pid)
        assert started is not None and started.isdigit()
        # It started after this test process.
        assert int(started) >= int(proc_start(os.getpid()))
        assert is_alive(entry(child.pid, started))
    finally:
        child.kill()
        child.wait()
    assert not is_alive(entry(child.pid, started))


def test_without_proc_the_kernel_is_asked(tmp_path):
    """Not Linux (no /proc/self): os.kill(pid, 0) decides; no start time to compare."""
    fake_proc = str(tmp_path)  # an empty directory: no "self" in it
    me = os.getpid()
    assert is_alive(entry(me, "1"), proc_root=fake_proc)
    assert not is_alive(entry(dead_pid(), None), proc_root=fake_proc)
