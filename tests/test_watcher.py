"""The watcher on its own: what it reports, and its fallback when inotify runs out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

from helm_monitor.live.watcher import Watcher
from tests.support.claude import ClaudeDir
from tests.support.server import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, bool | None]] = []
        self.lock = threading.Lock()

    def __call__(self, path, is_dir):
        with self.lock:
            self.events.append((path, is_dir))

    def paths(self):
        with self.lock:
            return [p for p, _ in self.events]


def test_reads_make_no_events_and_writes_do(claude):
    s = claude.session("/w/reads")
    s.prompt("x")
    rec = Recorder()
    w = Watcher(str(claude.root), rec)
    w.start()
    try:
        assert w.mode == "inotify"
        assert set(w.watching) == {str(claude.root), str(claude.projects), str(claude.root / "sessions")}
        before = len(rec.paths())
        for _ in range(20):
            with open(s.path, "rb") as f:
                f.read()
        s.reply("written")
        wait_until(lambda: str(s.path) in rec.paths()[before:], 2, message="the write's event")
        # Opening and reading produced nothing; the project directory's own
        # "modified" event (one per write in it) is filtered out.
        assert set(rec.paths()[before:]) == {str(s.path)}
    finally:
        w.stop()


def test_falls_back_to_polling_when_inotify_instances_run_out():
    """A real exhaustion of inotify instances, as another uid so nothing else on the machine is starved."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the check as a throwaway uid")
    root = tempfile.mkdtemp(prefix="helm-inotify-")
    try:
        os.chmod(root, 0o777)
        code = r"""
import ctypes, errno, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
held = []
while True:
    fd = libc.inotify_init()
    if fd < 0:
        assert ctypes.get_errno() == errno.EMFILE, ctypes.get_errno()
        break
    held.append(fd)
from helm_monitor.live.watcher import Watcher
root = sys.argv[1]
os.makedirs(os.path.join(root, "projects", "-p"))
got = threading.Event()
def notify(path, is_dir):
    if path.endswith("s.jsonl"):
        got.set()
w = Watcher(root, notify)
w.start()
print("MODE", w.mode, "ERROR", w.error, "HELD", len(held))
with open(os.path.join(root, "projects", "-p", "s.jsonl"), "a") as f:
    f.write("{}\n")
print("EVENT", got.wait(5))
w.stop()
"""
        env = {**os.environ, "PYTHONPATH": REPO}
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-c", code, root], capture_output=True, text=True, timeout=60, env=env, cwd="/")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "MODE polling" in proc.stdout, proc.stdout
        assert "EVENT True" in proc.stdout, proc.stdout
        assert "falls back to polling" in proc.stderr or "uses polling" in proc.stderr, proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_projects_directory_replaced_is_watched_again(claude):
    rec = Recorder()
    w = Watcher(str(claude.root), rec)
    w.start()
    try:
        shutil.rmtree(claude.projects)
        wait_until(lambda: str(claude.projects) not in w.watching, 3, message="the dead watch dropped")
        s = ClaudeDir(claude.root).session("/w/again")
        s.prompt("in a new projects/")
        wait_until(lambda: str(s.path) in rec.paths() or str(claude.projects) in w.watching, 3)
        wait_until(lambda: str(claude.projects) in w.watching, 3, message="a watch on the new projects/")
    finally:
        w.stop()
