"""Shared helpers for the benchmarks: run the server, measure its process tree, report."""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
WORK = Path(os.environ.get("HELM_BENCH_DIR", "/tmp/helm-bench"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

sys.path.insert(0, str(BENCH))
from sseload import raise_nofile  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ process tree

def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        todo.extend(int(x) for x in f.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Sum of RSS (bytes) over the tree."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def tree_hwm(pid: int) -> int:
    """Sum of VmHWM (peak RSS, bytes) over the tree's live processes."""
    return sum(_status_kb(p, "VmHWM:") for p in tree_pids(pid)) * 1024


def tree_cpu(pid: int) -> float:
    """utime + stime (seconds) summed over the tree."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


class RssSampler(threading.Thread):
    """Samples the tree's summed RSS every interval; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.samples += 1
            self._stop_ev.wait(self.interval)

    def stop(self) -> int:
        self._stop_ev.set()
        self.join(2)
        return self.peak


# ------------------------------------------------------------------ server

class Server:
    """``python -m helm_monitor`` (gunicorn arbiter + one gevent worker) as a child process."""

    def __init__(self, claude_dir: Path, *, debounce_ms: int = 500, cache_dir: str | None = "",
                 max_clients: int | None = None, keepalive_s: float | None = None,
                 env: dict | None = None, log: Path | None = None, port: int | None = None):
        self.claude_dir = Path(claude_dir)
        self.port = port or free_port()
        self.debounce_ms = debounce_ms
        self.env = dict(os.environ)
        self.env.pop("HELM_TOKEN", None)
        self.env["HELM_CACHE_DIR"] = cache_dir if cache_dir is not None else ""
        # The search indexer starts once the first scan is served and reads the history again
        # (bench/search.py measures it): left out here, so that a start's time, CPU and peak
        # memory are the server's own.
        self.env["HELM_SEARCH"] = "0"
        if max_clients:
            self.env["HELM_MAX_CLIENTS"] = str(max_clients)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.update(env or {})
        self.keepalive_s = keepalive_s
        WORK.mkdir(parents=True, exist_ok=True)
        self.log_path = log or (WORK / f"server-{self.port}.log")
        self.proc: subprocess.Popen | None = None
        self.t_start = None

    def start(self) -> "Server":
        cmd = [sys.executable, "-m", "helm_monitor", "--claude-dir", str(self.claude_dir),
               "--host", "127.0.0.1", "--port", str(self.port), "--debounce-ms", str(self.debounce_ms)]
        if self.keepalive_s is not None:
            cmd += ["--keepalive-s", str(self.keepalive_s)]
        self._log = open(self.log_path, "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(REPO), start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The arbiter's children, newest first: the worker (the first scan's processes, forked
        before it by ``helm-monitor``, are older; they end when the scan does)."""
        children = []
        for pid in tree_pids(self.pid)[1:]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid:
                    children.append((int(fields[19]), pid))  # start time, in clock ticks since boot
            except (OSError, ValueError, IndexError):
                pass
        return [pid for _start, pid in sorted(children, reverse=True)]

    def request(self, method: str, path: str, timeout: float = 10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers={"Host": f"127.0.0.1:{self.port}"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get_json(self, path: str, timeout: float = 10.0):
        status, body = self.request("GET", path, timeout)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    def health(self) -> dict | None:
        try:
            return self.get_json("/healthz", timeout=2.0)
        except (OSError, RuntimeError, ValueError, http.client.HTTPException):
            return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0, sessions: int | None = None) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            h = self.health()
            if h and h.get("scan") == "complete" and (sessions is None or h.get("sessions", 0) >= sessions):
                return h
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout}s; last health {self.health()}; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
                self.proc.wait(5)
        self._log.close()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------------ stats / output

def pct(values, p: float):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ms(x):
    return None if x is None else round(x * 1000, 1)


def fmt(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if abs(x) < 10:
            return f"{x:.2f}{unit}"
        return f"{x:.1f}{unit}" if abs(x) < 1000 else f"{x:.0f}{unit}"
    return f"{x}{unit}"


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in cells[1:]])


def write_results(name: str, data: dict) -> Path:
    """bench/results/<name>.json (<name>-quick.json for --quick, so smoke runs never overwrite real numbers)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if data.get("quick"):
        name += "-quick"
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), **data}
    p = RESULTS / f"{name}.json"
    data["benchmark"] = name.replace("-quick", "")
    p.write_text(json.dumps(data, indent=2))
    return p


def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _status_meminfo()
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem / 1e6, 1) if mem else None,
            "kernel": platform.release(), "python": platform.python_version(), **versions()}


def _status_meminfo() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1])  # kB
    except OSError:
        pass
    return 0


def versions() -> dict:
    from importlib import metadata
    out = {}
    for pkg in ("gunicorn", "gevent", "flask", "watchdog", "orjson", "helm-monitor"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def append_turn(path: Path, data: bytes) -> float:
    """One O_APPEND write, as Claude Code flushes; returns time.monotonic() at the end of the write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
        t = time.monotonic()
    finally:
        os.close(fd)
    return t


def summarize(lat: list[float]) -> dict:
    return {"n": len(lat), "p50_ms": ms(pct(lat, 50)), "p90_ms": ms(pct(lat, 90)), "p99_ms": ms(pct(lat, 99)),
            "max_ms": ms(max(lat)) if lat else None, "mean_ms": ms(statistics.fmean(lat)) if lat else None}


# ------------------------------------------------------------------ team mode (bench/team.py)


def proc_cpu(pid: int) -> float | None:
    """utime + stime (seconds) of one process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def proc_rss(pid: int) -> int:
    """RSS (bytes) of one process; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def child_pids(pid: int) -> list[int]:
    """pid's direct children, oldest first."""
    out = []
    for p in tree_pids(pid)[1:]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append((int(fields[19]), p))
        except (OSError, ValueError, IndexError):
            pass
    return [p for _start, p in sorted(out)]


def socket_owners(pids: list[int], server_port: int) -> dict[int, int]:
    """Which of ``pids`` holds the server end of each TCP connection to ``server_port`` on loopback:
    {client's local port: pid}. From /proc/net/tcp (inode of each connection) and /proc/<pid>/fd
    (the inodes each process holds): with gunicorn's workers sharing one listening socket, the kernel
    decides which worker accepts a connection, and this is how a benchmark learns which one did."""
    inode_pid = {}
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode_pid[int(target[8:-1])] = pid
    out = {}
    want = f"{server_port:04X}"
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table_path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, inode = parts[1], parts[2], int(parts[9])
                    if local.rsplit(":", 1)[1] == want and inode in inode_pid:
                        out[int(remote.rsplit(":", 1)[1], 16)] = inode_pid[inode]
        except OSError:
            pass
    return out


def system_cpu() -> dict[str, float]:
    """Machine-wide CPU seconds by kind (the first line of /proc/stat): what no process's own
    utime/stime shows, e.g. loopback packets handled in softirq or time a VM's host took (steal)."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:1 + len(names)]
        return {n: int(v) / CLK_TCK for n, v in zip(names, fields)}
    except (OSError, ValueError):
        return {}


def system_cpu_pct(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Between two system_cpu() readings: each kind as % of one core, and ``busy`` (all but idle, iowait)."""
    span = sum(after.values()) - sum(before.values())
    if span <= 0:
        return {}
    cores = os.cpu_count() or 1
    out = {k: round(100 * cores * (after[k] - before[k]) / span, 1) for k in after}
    out["busy"] = round(sum(v for k, v in out.items() if k not in ("idle", "iowait")), 1)
    return out
