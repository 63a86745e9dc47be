"""The team mode's shipped deployment files, run for real: the agent and web units verify with
``systemd-analyze`` and fit the real config; nginx/helm-monitor-team.conf passes ``nginx -t``
and streams unbuffered from two upstreams, with the other taking over when one stops; and a
real redis-server runs docs/team/redis.conf (with docs/team/users.acl.example) as it says:
append-only every second, noeviction, the default user off, users saved to the aclfile, and
the commented TLS section working once uncommented.
"""

from __future__ import annotations

import getpass
import hashlib
import http.client
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from helm_monitor.team import client, keys
from tests.deploy.conftest import NGINX, PUBLIC_NAME, REPO, Nginx, installed_static_dir, substitute
from tests.deploy.test_systemd import SYSTEM_UNIT, values, verify
from tests.support.redis import REDIS_SERVER, RedisServer
from tests.support.server import HelmServer, free_port, wait_until
from tests.support.sse import SSEClient
from tests.support.team import SimHost
from tests.team.test_admin import TlsRedisServer, make_certs

AGENT_UNIT = REPO / "systemd" / "system" / "helm-monitor-agent@.service"
WEB_UNIT = REPO / "systemd" / "system" / "helm-monitor-web.service"
USER_AGENT_UNIT = REPO / "systemd" / "user" / "helm-monitor-agent.service"
SHIPPED_EXEC = {AGENT_UNIT: "/opt/helm-monitor/bin/helm-monitor agent",
                WEB_UNIT: "/opt/helm-monitor/bin/helm-monitor web",
                USER_AGENT_UNIT: "%h/.local/bin/helm-monitor agent"}
TEAM_SITE = REPO / "nginx" / "helm-monitor-team.conf"
REDIS_CONF = REPO / "docs" / "team" / "redis.conf"
USERS_ACL = REPO / "docs" / "team" / "users.acl.example"
ADMIN_PASSWORD = "admin-" + "5" * 40


# -- systemd -----------------------------------------------------------------------

def installed_copy(unit: Path, dest: Path) -> Path:
    """The unit as installed: ExecStart runs this checkout's helm-monitor."""
    entry = Path(sys.executable).with_name("helm-monitor")
    assert entry.exists(), f"{entry} is missing: pip install -e . provides it"
    text = unit.read_text()
    shipped = SHIPPED_EXEC[unit]
    assert text.count(f"ExecStart={shipped}\n") == 1, "ExecStart changed: update this test"
    dest.write_text(text.replace(f"ExecStart={shipped}\n", f"ExecStart={entry} {shipped.rsplit(' ', 1)[1]}\n"))
    return dest


def test_agent_unit_verifies(tmp_path):
    verify([], installed_copy(AGENT_UNIT, tmp_path / f"helm-monitor-agent@{getpass.getuser()}.service"))


def test_web_unit_verifies(tmp_path):
    verify([], installed_copy(WEB_UNIT, tmp_path / "helm-monitor-web.service"))


def test_user_agent_unit_verifies(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify(["--user"], installed_copy(USER_AGENT_UNIT, tmp_path / "helm-monitor-agent.service"),
           env={"XDG_RUNTIME_DIR": str(runtime)})


def unit_environment(unit: Path) -> dict[str, str]:
    env = {}
    for value in values(unit, "Environment"):
        for assignment in shlex.split(value):
            name, _, v = assignment.partition("=")
            env[name] = v
    return env


def config_of(unit: Path, extra: dict[str, str]):
    """What the real CLI makes of the unit's environment plus its environment file."""
    from helm_monitor.cli import build_parser, config_from_args

    role = values(unit, "ExecStart")[0].rsplit(" ", 1)[1]
    args = build_parser(role).parse_args([])
    args.role = role
    return config_from_args(args, environ={**unit_environment(unit), **extra})


@pytest.mark.parametrize("unit", [AGENT_UNIT, WEB_UNIT, USER_AGENT_UNIT], ids=["agent", "web", "user-agent"])
def test_team_units_fit_the_server(unit):
    from helm_monitor.server import gunicorn_conf

    assert values(unit, "Type") == ["notify"] and values(unit, "NotifyAccess") == ["main"]
    assert values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"] and values(unit, "KillMode") == ["mixed"]
    assert int(values(unit, "TimeoutStopSec")[0]) >= gunicorn_conf.graceful_timeout + 5
    assert values(unit, "MemoryDenyWriteExecute") == ["yes"] and values(unit, "NoNewPrivileges") == ["yes"]
    assert "@system-service" in values(unit, "SystemCallFilter")
    # the engine URL holds a password: from a file that must exist, never from the unit itself
    required = [f for f in values(unit, "EnvironmentFile") if not f.startswith("-")]
    assert len(required) == 1 and not any("REDIS" in v for v in values(unit, "Environment"))


def test_agent_unit_is_the_local_unit_plus_the_engine():
    assert values(AGENT_UNIT, "ExecStart") == ["/opt/helm-monitor/bin/helm-monitor agent"]
    assert values(AGENT_UNIT, "Conflicts") == ["helm-monitor@%i.service"]
    assert "/etc/helm-monitor/%i.agent.env" in values(AGENT_UNIT, "EnvironmentFile")
    # the same sandbox as helm-monitor@.service, but IP traffic beyond localhost (the engine)
    sandbox = {"ProtectSystem", "ProtectHome", "BindReadOnlyPaths", "PrivateTmp", "PrivateDevices", "ProtectProc",
               "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallFilter", "User", "LoadCredential",
               "CacheDirectory", "Environment", "RestrictNamespaces", "LockPersonality", "ProtectKernelTunables"}
    for key in sandbox:
        assert values(AGENT_UNIT, key) == values(SYSTEM_UNIT, key), key
    assert values(SYSTEM_UNIT, "IPAddressDeny") == ["any"] and not values(AGENT_UNIT, "IPAddressDeny")
    cfg = config_of(AGENT_UNIT, {"HELM_REDIS_URL": "rediss://h-vm1:pw@hub.example:6380/0", "HELM_HOST_NAME": "vm1"})
    assert (cfg.role, cfg.workers, cfg.host_name, cfg.port) == ("agent", 1, "vm1", 5003)
    assert values(USER_AGENT_UNIT, "Conflicts") == ["helm-monitor.service"]


def test_web_unit_reads_no_agent_files_and_runs_four_workers():
    assert values(WEB_UNIT, "ExecStart") == ["/opt/helm-monitor/bin/helm-monitor web"]
    assert values(WEB_UNIT, "DynamicUser") == ["yes"] and not values(WEB_UNIT, "User")
    assert values(WEB_UNIT, "ProtectHome") == ["yes"] and not values(WEB_UNIT, "BindReadOnlyPaths")
    assert not any(k.startswith("HELM_") and k.endswith("_DIR") for k in unit_environment(WEB_UNIT))
    assert values(WEB_UNIT, "LoadCredential") == ["helm-token:/etc/helm-monitor/web.token"]
    assert values(WEB_UNIT, "EnvironmentFile") == ["/etc/helm-monitor/web.env"]
    assert values(WEB_UNIT, "CapabilityBoundingSet") == [""]
    cfg = config_of(WEB_UNIT, {"HELM_REDIS_URL": "rediss://web:pw@hub.example:6380/0",
                               "HELM_ALLOWED_HOSTS": PUBLIC_NAME})
    assert (cfg.role, cfg.workers, cfg.host, cfg.port) == ("web", 4, "127.0.0.1", 5003)


# -- nginx -------------------------------------------------------------------------

def team_site_for_test(*, listen_port: int, upstream_ports: list[int], static_dir: Path) -> str:
    site = TEAM_SITE.read_text()
    site = substitute(site, r"^    listen 80;$", f"    listen 127.0.0.1:{listen_port};")
    site = substitute(site, r"^    listen \[::\]:80;\n", "")
    site = substitute(site, r"^    server 127\.0\.0\.1:5003;$",
                      "\n".join(f"    server 127.0.0.1:{port};" for port in upstream_ports))
    site = substitute(site, r"^        alias /opt/helm-monitor/static/;$", f"        alias {static_dir}/;")
    site = substitute(site, r"^        alias /opt/helm-monitor/static/\$1;$", f"        alias {static_dir}/$1;")
    return site


def nginx_or_skip() -> None:
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is not installed (Debian: apt-get install nginx-light)")


@pytest.fixture
def team_nginx(tmp_path):
    nginx_or_skip()
    started: list[Nginx] = []

    def start(upstream_ports: list[int]) -> Nginx:
        port = free_port()
        site = team_site_for_test(listen_port=port, upstream_ports=upstream_ports, static_dir=installed_static_dir())
        proxy = Nginx(tmp_path / f"nginx-{len(started)}", site, port)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


def test_nginx_accepts_the_team_site(tmp_path):
    nginx_or_skip()
    site = team_site_for_test(listen_port=free_port(), upstream_ports=[free_port(), free_port()],
                              static_dir=installed_static_dir())
    proxy = Nginx(tmp_path / "nginx", site, 0)
    proxy.prefix.mkdir(parents=True)
    (proxy.prefix / "helm-monitor.conf").write_text(site)
    (proxy.prefix / "nginx.conf").write_text(proxy.main_conf())
    done = subprocess.run([str(NGINX), "-t", "-p", str(proxy.prefix), "-e", str(proxy.error_log),
                           "-c", str(proxy.prefix / "nginx.conf")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr
    # what makes streams work behind several upstreams, in the file as shipped
    shipped = TEAM_SITE.read_text()
    upstream = block(shipped, "upstream helm_monitor_team {")
    for directive in ("least_conn;", "keepalive 32;", "server 127.0.0.1:5003;"):
        assert directive in upstream, directive
    for directive in ("proxy_http_version 1.1;", 'proxy_set_header Connection "";', "proxy_set_header Host $http_host;",
                      "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_next_upstream error timeout"):
        assert directive in shipped, directive
    # helm-monitor's X-Accel-Buffering: no already unbuffers its streams; the site says it too
    stream = block(shipped, "location ~ ^/api/(sessions|claude-sessions)/stream$ {")
    for directive in ("proxy_pass http://helm_monitor_team;", "proxy_buffering off;", "proxy_cache off;", "gzip off;",
                      "proxy_read_timeout 1h;"):
        assert directive in stream, directive
    assert "proxy_buffering off;" in block(shipped, "location = /api/sessions/ws {")
    assert block(shipped, "location /static/ {").count("add_header") == 7


def block(conf: str, opening: str) -> str:
    """The text of one ``{ ... }`` block of an nginx file (its braces balanced)."""
    start = conf.index(opening) + len(opening)
    depth, pos = 1, start
    while depth:
        pos += 1
        depth += {"{": 1, "}": -1}.get(conf[pos], 0)
    return conf[start:pos]


def fetch(proxy: Nginx, path: str, *, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"{PUBLIC_NAME}:{proxy.port}", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.nginx
def test_nginx_streams_unbuffered_from_two_upstreams_and_fails_over(claude, server_factory, team_nginx):
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("First question", "First answer")
    # Two helm-monitor servers on the same files stand in for two web machines.
    upstreams = [server_factory(claude.root, args=["--allowed-host", PUBLIC_NAME]) for _ in range(2)]
    proxy = team_nginx([srv.port for srv in upstreams])
    host = {"Host": f"{PUBLIC_NAME}:{proxy.port}"}

    streams = []
    try:
        for _ in range(2):
            started = time.monotonic()
            sse = SSEClient(proxy.url, headers=host)
            streams.append(sse)
            assert sse.status == 200 and sse.headers["content-type"].startswith("text/event-stream")
            assert sse.wait_for(lambda e: e.type == "init", timeout=1.0).session(session.id)
            assert time.monotonic() - started < 1.0
        # least_conn: one stream on each upstream
        wait_until(lambda: [srv.get_json("/healthz")["clients"] for srv in upstreams] == [1, 1], 5,
                   message="one stream on each upstream")
        for n in range(2):  # an update, and another: nothing waits in a buffer, on either upstream
            session.turn(f"Follow-up {n}", "Sure")
            written = time.monotonic()
            for sse in streams:
                update = sse.wait_for(lambda e: e.type == "session-updated" and e.session(session.id), timeout=1.0)
                assert update.received_at - written < 1.0
    finally:
        for sse in streams:
            sse.close()

    # one web machine stops: nginx sends every new request and stream to the other
    upstreams[0].stop()
    for _ in range(4):
        status, headers, _ = fetch(proxy, "/api/claude-sessions/all")
        assert status == 200 and headers["cache-control"] == "no-store"
    with SSEClient(proxy.url, headers=host) as sse:
        assert sse.status == 200
        assert sse.wait_for(lambda e: e.type == "init", timeout=2.0).session(session.id)
    # the single-host site's rules hold here too: Host passes through, headers on static files
    assert fetch(proxy, "/api/claude-sessions/all", headers={"Host": "attacker.example"})[0] == 403
    sample = next(p for p in sorted(installed_static_dir().iterdir()) if p.suffix == ".js")
    status, headers, body = fetch(proxy, f"/assets/0123456789ab/{sample.name}")
    assert status == 200 and body == sample.read_bytes()
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"


@pytest.mark.nginx
@pytest.mark.slow
def test_the_whole_team_deployment_streams_through_nginx(tmp_path, claude, team_nginx):
    """Everything shipped, in one chain: redis-server with docs/team/redis.conf and the example
    users file; the host's and the web tier's users made by `helm-monitor hosts`; two web
    machines (`helm-monitor web --workers 2` each) behind nginx/helm-monitor-team.conf; a host
    publishing as its agent does. Updates reach streams on both machines unbuffered, and a
    browser whose machine stops resumes on the other by Last-Event-ID."""
    engine = ShippedRedis(tmp_path / "engine", REDIS_CONF)
    users_acl_from_example(engine.acl_path)
    web_servers: list[HelmServer] = []
    try:
        engine.start()
        host_url = hosts_cli("add", "laptop", "--admin-url", engine.admin_url)
        web_url = hosts_cli("web-user", "--admin-url", engine.admin_url)
        with SimHost(host_url, "laptop") as host:
            session = host.new(title="before nginx")
            for n in range(2):
                web_servers.append(HelmServer(claude.root, role="web", log_path=tmp_path / f"web-{n}.log",
                                              args=["--allowed-host", PUBLIC_NAME, "--workers", "2"],
                                              env={"HELM_REDIS_URL": web_url}).start())
            proxy = team_nginx([srv.port for srv in web_servers])
            headers = {"Host": f"{PUBLIC_NAME}:{proxy.port}"}
            streams = [SSEClient(proxy.url, headers=headers) for _ in range(2)]
            try:
                for sse in streams:
                    init = sse.wait_for(lambda e: e.type == "init", timeout=2.0)
                    assert [s["key"] for s in init.sessions] == [session["key"]]
                wait_until(lambda: [srv.get_json("/healthz")["clients"] for srv in web_servers] == [1, 1], 5,
                           message="one stream on each web machine")
                for n in range(2):
                    host.update(session["key"], title=f"through nginx {n}")
                    written = time.monotonic()
                    for sse in streams:
                        update = sse.wait_for(lambda e: e.type == "session-updated"
                                              and e.sessions[0]["title"] == f"through nginx {n}", timeout=2.0)
                        assert update.received_at - written < 1.0 and update.id
                last_id = update.id  # the second stream's: it is on the machine that stays
            finally:
                for sse in streams:
                    sse.close()
            # the machine that held the first stream stops; meanwhile the host writes again
            web_servers[0].stop()
            host.update(session["key"], title="while a machine was down")
            with SSEClient(proxy.url, headers={**headers, "Last-Event-ID": last_id}) as sse:
                seen = []  # a replay (from a little before last_id: the overlap), never an init
                sse.wait_for(lambda e: seen.append(e) or (e.type == "session-updated"
                                                         and e.sessions[0]["title"] == "while a machine was down"),
                             timeout=3.0)
                assert {e.type for e in seen} <= {"session-created", "session-updated"}, [e.type for e in seen]
    finally:
        for srv in web_servers:
            srv.kill()
        engine.stop()


def hosts_cli(*argv: str) -> str:
    """``helm-monitor hosts ...`` as an admin runs it; the URL it prints."""
    done = subprocess.run([sys.executable, "-m", "helm_monitor", "hosts", *argv], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0 and "no aclfile" not in done.stderr, done.stderr
    return done.stdout.strip().split("=", 1)[1]


# -- redis.conf and users.acl.example ----------------------------------------------

class ShippedRedis(RedisServer):
    """redis-server docs/team/redis.conf, with only the port and the paths overridden."""

    def __init__(self, directory: Path, conf: Path, *, overrides: list[str] | None = None, **kw):
        super().__init__(directory, **kw)
        self.conf = conf
        self.acl_path = self.dir / "users.acl"
        self.overrides = overrides

    def command(self) -> list[str]:
        port = ["--port", str(self.port)] if self.overrides is None else self.overrides
        return [REDIS_SERVER, str(self.conf), *port, "--dir", str(self.dir), "--logfile", str(self.log_path),
                "--pidfile", str(self.dir / "redis.pid"), "--aclfile", str(self.acl_path)]

    @property
    def admin_url(self) -> str:
        return self.url_for("admin", ADMIN_PASSWORD)


def users_acl_from_example(dest: Path) -> None:
    """As docs/team.md says: the example with the admin password's SHA-256 filled in."""
    digest = hashlib.sha256(ADMIN_PASSWORD.encode()).hexdigest()
    example = USERS_ACL.read_text()
    assert example.count("ADMIN_PASSWORD_SHA256") == 1
    dest.write_text(example.replace("ADMIN_PASSWORD_SHA256", digest))


@pytest.fixture
def shipped_redis(tmp_path):
    server = ShippedRedis(tmp_path / "redis", REDIS_CONF)
    users_acl_from_example(server.acl_path)
    try:
        yield server.start()
    finally:
        server.stop()


def test_redis_runs_the_shipped_config(shipped_redis):
    adm = client.connect(shipped_redis.admin_url)
    try:
        settings = {k: v for name in ("appendonly", "appendfsync", "maxmemory-policy", "maxmemory", "protected-mode",
                                      "bind", "save", "aclfile", "tls-port")
                    for k, v in adm.config_get(name).items() if k == name}
        assert settings == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction",
                            "maxmemory": str(512 * 1024 * 1024), "protected-mode": "yes", "bind": "127.0.0.1 -::1",
                            "save": "", "aclfile": str(shipped_redis.acl_path), "tls-port": "0"}
    finally:
        adm.close()
    anonymous = shipped_redis.client()  # the default user is off
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


def test_hosts_saved_to_the_aclfile_and_entries_survive_kill9(shipped_redis):
    url = hosts_cli("add", "laptop", "--admin-url", shipped_redis.admin_url)
    assert "user h-laptop " in shipped_redis.acl_path.read_text()
    host = client.connect(url)
    try:
        ids = [host.xadd(keys.stream_key("laptop"), {"t": "hb", "n": str(n)}) for n in range(500)]
    finally:
        host.close()
    # everysec may hold writes back while a slow fsync runs (a loaded disk): what a process
    # crash cannot take is what reached the file, so wait until nothing is held back.
    with client.connect(shipped_redis.admin_url) as adm:
        wait_until(lambda: adm.info("persistence")["aof_buffer_length"] == 0, 10, message="the AOF written")
    shipped_redis.restart()  # kill -9: the append-only file (and the aclfile) carry everything over
    host = client.connect(url)
    adm = client.connect(shipped_redis.admin_url)
    try:
        assert host.ping()
        assert [entry_id for entry_id, _ in adm.xrange(keys.stream_key("laptop"))] == ids
    finally:
        host.close()
        adm.close()


class ShippedTlsRedis(ShippedRedis):
    """The shipped config with its TLS section on: the port is in the file, answers over TLS."""

    def __init__(self, directory: Path, conf: Path, *, certs: dict[str, Path], port: int):
        super().__init__(directory, conf, overrides=[], port=port)
        self.certs = certs

    _answers = TlsRedisServer._answers


def test_the_commented_tls_section_works_uncommented(tmp_path):
    certs = make_certs(tmp_path / "certs")
    text = REDIS_CONF.read_text()
    text, count = re.subn(r"^# (port 0|tls-[a-z-]+ .*)$", r"\1", text, flags=re.MULTILINE)
    assert count == 7, "the TLS section changed: update this test"
    text, count = re.subn(r"^(tls-[a-z-]+-file) /etc/redis/tls/", rf"\1 {certs['cert'].parent}/", text,
                          flags=re.MULTILINE)
    assert count == 3, "the TLS section's files changed: update this test"
    port = free_port()
    text = substitute(text, r"^tls-port 6380$", f"tls-port {port}")
    conf = tmp_path / "redis-tls.conf"
    conf.write_text(text)

    server = ShippedTlsRedis(tmp_path / "redis", conf, certs=certs, port=port)
    users_acl_from_example(server.acl_path)
    try:
        server.start()
        adm = client.connect(f"rediss://admin:{ADMIN_PASSWORD}@127.0.0.1:{port}/0", ca_file=str(certs["ca"]))
        try:
            assert adm.config_get("port") == {"port": "0"}  # the plain port is closed
            assert adm.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}  # passwords, not client certs
        finally:
            adm.close()
    finally:
        server.stop()
