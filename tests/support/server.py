"""Run the real ``helm-monitor`` (gunicorn, one gevent worker) on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may raise until it holds
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


class HelmServer:
    """``python -m helm_monitor`` as a child process; logs go to ``log_path``."""

    def __init__(self, claude_dir: Path, *, port: int | None = None, args: list[str] | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 debounce_ms: int = 150, keepalive_s: float | None = None, role: str | None = None):
        self.claude_dir = Path(claude_dir)
        self.role = role  # "agent" or "web": the subcommand (team mode, SPEC 9)
        self.port = port or free_port()
        self.args = list(args or [])
        self.extra_env = dict(env or {})
        self.debounce_ms = debounce_ms
        self.keepalive_s = keepalive_s
        self.log_path = log_path or (self.claude_dir.parent / f"helm-{self.port}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "helm_monitor", *([self.role] if self.role else []),
               "--claude-dir", str(self.claude_dir),
               "--host", "127.0.0.1", "--port", str(self.port), "--debounce-ms", str(self.debounce_ms)]
        if self.keepalive_s is not None:
            cmd += ["--keepalive-s", str(self.keepalive_s)]
        return cmd + self.args

    def start(self, wait: bool = True) -> "HelmServer":
        env = dict(os.environ)
        env.setdefault("HELM_CACHE_DIR", "")  # no persistent cache unless a test asks for one
        env.pop("HELM_TOKEN", None)
        # Every source is read, but never this machine's own agents' data: the others' directories
        # are absent unless a test gives them.
        absent = self.claude_dir.parent / "absent"
        env.setdefault("HELM_CODEX_DIR", str(absent / "codex"))
        env.setdefault("HELM_OPENCODE_DB", str(absent / "opencode" / "opencode.db"))
        env.setdefault("HELM_GEMINI_DIR", str(absent / "gemini"))
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self.log_path.parent), start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            health = self.get_json("/healthz")
            return health if health.get("scan") == "complete" else None
        try:
            return wait_until(ready, timeout, 0.05, "the server to be ready")
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None

    def get_json(self, path: str, headers: dict | None = None, timeout: float = 5.0):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, headers: dict | None = None, timeout: float = 10.0):
        req = urllib.request.Request(self.url + path, data=b"", method="POST", headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """Stop at once (SIGKILL to its process group): for teardown, where nothing is checked
        of the shutdown and a graceful one would cost gunicorn's second-long worker tick."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any scan processes too
            self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
