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
from helm_monitor.sources.claude import Catalog
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
    w = Watcher(Catalog(claude.root).watches(), rec)
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


# Both exhaust uid 65534's inotify instances or watches: never at the same time.
@pytest.mark.exclusive("uid-65534-inotify")
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
from helm_monitor.sources.claude import Catalog
root = sys.argv[1]
os.makedirs(os.path.join(root, "projects", "-p"))
got = threading.Event()
def notify(path, is_dir):
    if path.endswith("s.jsonl"):
        got.set()
w = Watcher(Catalog(root).watches(), notify)
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
    w = Watcher(Catalog(claude.root).watches(), rec)
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


# As in the server's worker: every thread a greenlet (the observer, the pump, the fallback).
PATCH_ALL = {"threads": "", "gevent": "import gevent.monkey; gevent.monkey.patch_all()\n"}
LATE_EXHAUSTION = r"""
import ctypes, errno, json, os, sys, tempfile, time
import helm_monitor.live.watcher as watcher_mod
watcher_mod.RECOVER_INTERVAL_S = 1.0
from helm_monitor.live.service import LiveService

root = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]

def session_line(sid, prompt):
    return json.dumps({"type": "user", "sessionId": sid, "cwd": "/w", "version": "2.1.330",
                       "timestamp": "2026-11-23T20:00:00.000Z", "uuid": sid + "-u",
                       "message": {"role": "user", "content": prompt}}) + "\n"

def write(project, sid, prompt):
    os.makedirs(os.path.join(root, "projects", project), exist_ok=True)
    with open(os.path.join(root, "projects", project, sid + ".jsonl"), "a") as f:
        f.write(session_line(sid, prompt))

def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            print("TIMEOUT", what, json.dumps(svc.health()["watcher"]), flush=True)
            sys.exit(3)
        time.sleep(0.05)

write("-p", "s1", "before")
svc = LiveService(claude_dir=root, host="h", debounce_s=0.1, cache_dir=None)
svc.start()
wait(lambda: svc.store.get("h:claude-code:s1"), 5, "the first session")
print("START", svc.health()["watcher"]["mode"], flush=True)

# Take every inotify watch this uid has left: many instances watching many files.
limit = int(open("/proc/sys/fs/inotify/max_user_watches").read())
spare = tempfile.mkdtemp()
files = [os.path.join(spare, str(i)).encode() for i in range(limit // 100 + 2)]
for f in files:
    open(f, "w").close()
held, full = [], False
while not full:
    fd = libc.inotify_init()
    assert fd >= 0, ctypes.get_errno()
    held.append(fd)
    for f in files:
        if libc.inotify_add_watch(fd, f, 0x2) < 0:
            assert ctypes.get_errno() == errno.ENOSPC, ctypes.get_errno()
            full = True
            break
print("HELD", len(held), flush=True)

# A new project directory now cannot be watched: its sessions must still show up.
write("-q", "s2", "in a directory inotify could not watch")
wait(lambda: svc.store.get("h:claude-code:s2"), 10, "the session in the unwatched directory")
time.sleep(0.3)  # the directory's own scan is over: only watching can see what follows
write("-q", "s2", "polled")
wait(lambda: svc.store.get("h:claude-code:s2")["lastPrompt"] == "polled", 10, "an append while polling")
h = svc.health()["watcher"]
print("FALLBACK", h["mode"], h.get("inotifyExhausted"), h.get("fallbacks"), "|", h["error"], flush=True)

for fd in held:
    os.close(fd)
wait(lambda: svc.health()["watcher"]["mode"] == "inotify", 15, "the return to inotify")
t0 = time.monotonic()
write("-q", "s2", "after recovery")
wait(lambda: svc.store.get("h:claude-code:s2")["lastPrompt"] == "after recovery", 5, "an append after recovery")
h = svc.health()["watcher"]
print("RECOVERED", h["mode"], h["inotifyExhausted"], h["error"], round(time.monotonic() - t0, 3), flush=True)
svc.stop()
"""


@pytest.mark.exclusive("uid-65534-inotify")
@pytest.mark.parametrize("runtime", ["threads", "gevent"])
def test_watches_exhausted_after_start_fall_back_to_polling_and_recover(runtime):
    """A real exhaustion of inotify watches after start, as a throwaway uid: a new
    project directory cannot be watched (watchdog swallows that); its sessions still
    show up, /healthz says why, and inotify comes back once watches are free."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the check as a throwaway uid")
    root = tempfile.mkdtemp(prefix="helm-inotify-late-")
    try:
        os.chmod(root, 0o777)
        env = {**os.environ, "PYTHONPATH": REPO}
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-c", PATCH_ALL[runtime] + LATE_EXHAUSTION, root], capture_output=True, text=True,
                              timeout=100, env=env,
                              cwd="/")
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr[-3000:]
        assert "START inotify" in out, out
        assert "FALLBACK polling True 1 |" in out and "while watching new directory" in out, out
        assert "RECOVERED inotify False None" in out, out
        assert "falls back to polling" in proc.stderr and "back to inotify" in proc.stderr, proc.stderr[-3000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
