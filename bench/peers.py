"""The fastest peer, run over the same corpus in the same run: ccusage's native binary.

ccusage (npm ``ccusage``) reads Claude Code's JSONL history and reports usage
per session; since version 20 its npm package wraps a Rust binary shipped in
a per-platform package (``@ccusage/ccusage-linux-x64``). It is installed once
with npm under $HELM_BENCH_DIR (never into the repository) and the binary is
run directly, so that node's start-up is not counted against it.

    ccusage claude session --json --offline     (CLAUDE_CONFIG_DIR=<corpus>)

``--offline`` uses the prices bundled with it (this machine reaches no
pricing API); the report is checked to name the corpus's sessions.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import time
from pathlib import Path

from common import WORK

# 20.0.26 was published without its linux-x64 binary package; 20.0.24 has it.
CCUSAGE_VERSION = "20.0.24"


def _platform_package() -> str | None:
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    return f"@ccusage/ccusage-linux-{arch}" if arch and platform.system() == "Linux" else None


def ensure_ccusage(version: str = CCUSAGE_VERSION) -> tuple[Path | None, str]:
    """The native ccusage binary (installed if missing), or None and why not."""
    package = _platform_package()
    if package is None:
        return None, f"no ccusage binary for {platform.system()} {platform.machine()}"
    prefix = WORK / f"ccusage-{version}"
    binary = prefix / "node_modules" / package / "bin" / "ccusage"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            return None, "npm is not installed"
        prefix.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                               f"ccusage@{version}", f"{package}@{version}"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not binary.exists():
            return None, f"npm install ccusage@{version} failed: {(proc.stderr or proc.stdout)[-400:]}"
    # npm unpacks it without its executable bit (the package's node wrapper sets it at first run).
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary, ""


def ccusage_version(binary: Path) -> str:
    try:
        return subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_ccusage(binary: Path, corpus: Path, expected_ids: set[str]) -> dict:
    """One session report over ``corpus``: wall time from exec to exit, peak RSS, sessions named."""
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(corpus), NO_COLOR="1")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(binary), "claude", "session", "--json", "--offline"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    res = {"wall_s": round(wall, 3), "exit": proc.returncode, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}
    try:
        report = json.loads(out)
        ids = {s.get("sessionId") for s in report.get("sessions", [])}
        res["sessions_reported"] = len(ids)
        res["corpus_sessions_reported"] = len(expected_ids & ids)
    except (ValueError, AttributeError):
        res["error"] = out[-400:].decode("utf-8", "replace")
    return res
