"""Run the shipped deployment files for real: nginx in front of helm-monitor, and the
systemd units through ``systemd-analyze verify``.

The files under nginx/ and systemd/ are used as shipped; only ports and install paths
are substituted, and each substitution must hit, so the tests follow the files.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
NGINX = Path("/usr/sbin/nginx")
NGINX_SITE = REPO / "nginx" / "helm-monitor.conf"
PUBLIC_NAME = "monitor.example.com"


def substitute(text: str, pattern: str, replacement: str, *, flags: int = re.MULTILINE) -> str:
    """re.sub that insists on exactly one match: the shipped file must still have it."""
    new, count = re.subn(pattern, lambda _: replacement, text, flags=flags)
    assert count == 1, f"expected one {pattern!r} in the shipped file, found {count}"
    return new


def site_for_test(*, listen_port: int, upstream_port: int, static_dir: Path) -> str:
    """nginx/helm-monitor.conf with the test's ports and the installed static directory."""
    site = NGINX_SITE.read_text()
    site = substitute(site, r"^    listen 80;$", f"    listen 127.0.0.1:{listen_port};")
    site = substitute(site, r"^    listen \[::\]:80;\n", "")
    site = substitute(site, r"^    server 127\.0\.0\.1:5003;$", f"    server 127.0.0.1:{upstream_port};")
    site = substitute(site, r"^        alias /opt/helm-monitor/static/;$", f"        alias {static_dir}/;")
    site = substitute(site, r"^        alias /opt/helm-monitor/static/\$1;$", f"        alias {static_dir}/$1;")
    return site


def installed_static_dir() -> Path:
    done = subprocess.run([sys.executable, "-m", "helm_monitor", "--print-static-dir"],
                          capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.returncode == 0, f"helm-monitor --print-static-dir failed:\n{done.stderr}"
    path = Path(done.stdout.strip())
    assert path.is_dir(), f"--print-static-dir printed {path}, not a directory"
    return path


class Nginx:
    """/usr/sbin/nginx in the foreground, everything it writes under ``prefix``."""

    def __init__(self, prefix: Path, site: str, port: int):
        self.prefix = prefix
        self.port = port
        self.site = site
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def main_conf(self) -> str:
        p = self.prefix
        # Started as root, nginx's workers would run as nobody, which can't enter the
        # test's directories; the shipped site file has no user directive of its own.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temps = "".join(f"    {kind}_temp_path {p / kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"{user}worker_processes 1;\nerror_log {self.error_log} info;\npid {p / 'nginx.pid'};\n"
                "events { worker_connections 256; }\n"
                "http {\n"
                "    include /etc/nginx/mime.types;\n"
                "    default_type application/octet-stream;\n"
                f"    access_log {p / 'access.log'};\n{temps}"
                f"    include {p / 'helm-monitor.conf'};\n"
                "}\n")

    def start(self) -> "Nginx":
        self.prefix.mkdir(parents=True, exist_ok=True)
        (self.prefix / "helm-monitor.conf").write_text(self.site)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.main_conf())
        self.proc = subprocess.Popen(
            [str(NGINX), "-p", str(self.prefix), "-e", str(self.error_log), "-c", str(conf),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            import socket
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        try:
            wait_until(listening, 10, 0.05, "nginx to listen")
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture
def nginx_factory(tmp_path, request):
    """Start nginx with the shipped site in front of a helm-monitor on ``upstream_port``."""
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is not installed (Debian: apt-get install nginx-light)")
    started: list[Nginx] = []

    def start(upstream_port: int) -> Nginx:
        port = free_port()
        site = site_for_test(listen_port=port, upstream_port=upstream_port, static_dir=installed_static_dir())
        proxy = Nginx(tmp_path / f"nginx-{len(started)}", site, port)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for proxy in started:
            print(f"--- nginx error log ---\n{proxy.log()}")


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return found
