"""systemd/: the units verify, and the server does what the units count on.

systemd itself is not running here, so what the units rely on is shown on the real
server directly: READY=1 from the main process (Type=notify, NotifyAccess=main), HUP
reloads, TERM stops well within TimeoutStopSec with a stream open, and the server runs
with W+X memory refused (MemoryDenyWriteExecute=).
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, systemd_analyze
from tests.support.server import HelmServer, wait_until
from tests.support.sse import SSEClient

SYSTEM_UNIT = REPO / "systemd" / "system" / "helm-monitor@.service"
USER_UNIT = REPO / "systemd" / "user" / "helm-monitor.service"
SHIPPED_EXEC = {SYSTEM_UNIT: "/opt/helm-monitor/bin/helm-monitor", USER_UNIT: "%h/.local/bin/helm-monitor"}


def directives(unit: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, repeated keys kept."""
    found, section = [], ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(unit: Path, key: str) -> list[str]:
    return [v for _, k, v in directives(unit) if k == key]


def installed_copy(unit: Path, dest: Path) -> Path:
    """The unit as installed: ExecStart pointing at this checkout's helm-monitor."""
    entry = Path(sys.executable).with_name("helm-monitor")
    assert entry.exists(), f"{entry} is missing: pip install -e . provides it"
    text = unit.read_text()
    assert text.count(f"ExecStart={SHIPPED_EXEC[unit]}\n") == 1, "ExecStart changed: update this test"
    dest.write_text(text.replace(f"ExecStart={SHIPPED_EXEC[unit]}\n", f"ExecStart={entry}\n"))
    return dest


def verify(args: list[str], unit: Path, env: dict | None = None) -> None:
    done = subprocess.run([systemd_analyze(), *args, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})
    # verify exits 0 on unknown keys and bad values; it only says so on stderr
    complaints = [line for line in done.stderr.splitlines() if unit.name in line or "Unknown" in line
                  or "Failed" in line or "ignoring" in line]
    assert done.returncode == 0 and not complaints, done.stderr


def test_system_unit_verifies(tmp_path):
    # an instance for a user that exists here, as `systemctl enable helm-monitor@alice` makes
    verify([], installed_copy(SYSTEM_UNIT, tmp_path / f"helm-monitor@{getpass.getuser()}.service"))


def test_user_unit_verifies(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify(["--user"], installed_copy(USER_UNIT, tmp_path / "helm-monitor.service"),
           env={"XDG_RUNTIME_DIR": str(runtime)})


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_units_fit_the_server(unit):
    from helm_monitor.server import gunicorn_conf

    assert values(unit, "Type") == ["notify"]
    assert values(unit, "NotifyAccess") == ["main"]  # gunicorn's arbiter is the main process
    assert values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert values(unit, "KillMode") == ["mixed"]
    stop_s = int(values(unit, "TimeoutStopSec")[0])
    assert stop_s >= gunicorn_conf.graceful_timeout + 5
    assert values(unit, "MemoryDenyWriteExecute") == ["yes"]
    assert values(unit, "NoNewPrivileges") == ["yes"]
    assert "@system-service" in values(unit, "SystemCallFilter")


def test_system_unit_sandbox():
    assert values(SYSTEM_UNIT, "User") == ["%i"]
    assert values(SYSTEM_UNIT, "ProtectSystem") == ["strict"]
    assert values(SYSTEM_UNIT, "ProtectHome") == ["tmpfs"]
    # Claude Code's directory always; the other agents' where they exist ("-"), each read-only.
    assert values(SYSTEM_UNIT, "BindReadOnlyPaths") == [
        "/home/%i/.claude", "-/home/%i/.codex", "-/home/%i/.local/share/opencode", "-/home/%i/.gemini"]
    env = values(SYSTEM_UNIT, "Environment")
    for setting in ("HELM_CLAUDE_DIR=/home/%i/.claude", "HELM_CODEX_DIR=/home/%i/.codex",
                    "HELM_OPENCODE_DB=/home/%i/.local/share/opencode/opencode.db", "HELM_GEMINI_DIR=/home/%i/.gemini"):
        assert setting in env
    assert values(SYSTEM_UNIT, "LoadCredential") == ["helm-token:/etc/helm-monitor/%i.token"]
    assert values(SYSTEM_UNIT, "CapabilityBoundingSet") == [""]
    assert values(SYSTEM_UNIT, "RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert values(SYSTEM_UNIT, "CacheDirectory") == ["helm-monitor/%i"]
    # liveness reads /proc/<pid>/stat of the user's real Claude Code processes
    for hiding in ("ProcSubset", "PrivatePIDs", "PrivateUsers", "PrivateNetwork"):
        assert not values(SYSTEM_UNIT, hiding), hiding
    assert values(SYSTEM_UNIT, "ProtectProc") == ["invisible"]  # others' processes only: it runs as %i


# -- what the units count on, shown on the real server ------------------------------

def test_ready_notification_comes_from_the_main_process(claude, server_factory, tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.settimeout(20)
    try:
        srv = server_factory(claude.root, env={"NOTIFY_SOCKET": str(tmp_path / "notify")}, wait=False)
        creds_size = struct.calcsize("3i")
        message, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(creds_size))
        senders = [struct.unpack("3i", data[:creds_size])[0] for level, kind, data in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    finally:
        notify.close()
    assert b"READY=1" in message.split(b"\n")
    assert senders == [srv.proc.pid]
    srv.wait_ready()


def test_hup_reloads_and_term_stops_within_the_unit_timeout(claude, server, tmp_path):
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("Hello", "Hi")
    with SSEClient(server.url) as sse:
        sse.wait_for(lambda e: e.type == "init", 5)
        server.signal(signal.SIGHUP)
        wait_until(lambda: _stream_closed(sse), 10, message="the old worker to close its stream")
    # For up to a second the old worker may still accept a connection and close it at
    # once; a browser's EventSource just reconnects, and so does this.
    sse = wait_until(lambda: _stream_with_init(server.url, session.id), 10, message="a stream from the new worker")
    with sse:
        stop_s = int(values(SYSTEM_UNIT, "TimeoutStopSec")[0])
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        server.proc.wait(stop_s)
        assert time.monotonic() - started < stop_s / 2
    assert server.proc.returncode == 0


def _stream_with_init(url: str, session_id: str) -> SSEClient | None:
    sse = SSEClient(url)
    try:
        if sse.wait_for(lambda e: e.type == "init", 5).session(session_id):
            return sse
    except ConnectionError:
        pass
    sse.close()
    return None


def _stream_closed(sse: SSEClient) -> bool:
    try:
        while True:
            sse.next_event(0.2)
    except ConnectionError:
        return True
    except TimeoutError:
        return False


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# Turn on the kernel's memory-deny-write-execute for this process and its children,
# then become the server: what MemoryDenyWriteExecute= does (by seccomp before systemd 253).
MDWE_EXEC = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0):
    sys.exit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


class MdweServer(HelmServer):
    def command(self) -> list[str]:
        return [sys.executable, "-c", MDWE_EXEC, *super().command()[1:]]


def mdwe_supported() -> bool:
    probe = subprocess.run([sys.executable, "-c", MDWE_EXEC, "-c", """
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    raise SystemExit(0)
raise SystemExit("W+X memory was allowed")
"""], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0


def test_server_runs_with_write_execute_memory_refused(claude, tmp_path):
    if not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("Hello", "Hi")
    srv = MdweServer(claude.root, log_path=tmp_path / "mdwe.log")
    try:
        srv.start()
        with SSEClient(srv.url) as sse:
            assert sse.wait_for(lambda e: e.type == "init", 5).session(session.id)
            session.turn("Again", "Sure")
            sse.wait_for(lambda e: e.type == "session-updated" and e.session(session.id), 5)
        assert srv.get_json("/api/claude-sessions/all")[0]["id"] == session.id
        srv.signal(signal.SIGHUP)  # a new worker forks and patches under the same rule
        wait_until(lambda: _stream_with_init(srv.url, session.id), 10, message="a stream from the new worker").close()
    finally:
        assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log() and "Permission denied" not in srv.log(), srv.log()
