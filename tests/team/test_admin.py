"""``helm-monitor hosts`` (team/admin.py) against a real redis-server: the URL it prints works
as that host and nothing else, once; ``--rotate`` and ``remove`` revoke (open connections too);
ACL SAVE outlives a restart; every failure is one line and status 2; and over TLS, a CA file
is what makes ``rediss://`` work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import redis

from helm_monitor.team import admin, client, keys
from tests.support.redis import RedisServer
from tests.support.server import REPO, free_port

URL_LINE = re.compile(r"HELM_REDIS_URL=(rediss?)://([a-z0-9-]+):([0-9a-f]{64})@([^/]+)/0")


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def url(self) -> str:
        assert self.code == 0, self.err
        line, = self.out.splitlines()  # nothing else on stdout
        assert URL_LINE.fullmatch(line), line
        return line.split("=", 1)[1]

    def one_error(self, *fragments: str) -> str:
        assert self.code == 2 and self.out == "", self
        line, = self.err.splitlines()
        assert line.startswith("helm-monitor hosts: error: "), line
        for fragment in fragments:
            assert fragment in line, line
        return line


def hosts(admin_url: str | None, *argv: str) -> Result:
    """``helm-monitor hosts ...`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = admin.main([*(["--admin-url", admin_url] if admin_url else []), *argv])
    return Result(code, out.getvalue(), err.getvalue())


def hosts_cli(*argv: str, env: dict | None = None) -> Result:
    """``python -m helm_monitor hosts ...``: the CLI's dispatch, in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "helm_monitor", "hosts", *argv], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, **(env or {})})
    return Result(done.returncode, done.stdout, done.stderr)


def password_of(url: str) -> str:
    return urlsplit(url).password


def works_as(url: str, host: str, **kw) -> bool:
    """The URL authenticates, and writes what that host may write."""
    c = client.connect(url, **kw)
    try:
        return bool(c.xadd(keys.stream_key(host), {"t": "hb", "b": "test", "v": keys.WIRE_VERSION}))
    finally:
        c.close()


def authenticates(url: str, **kw) -> bool:
    c = client.connect(url, **kw)
    try:
        return bool(c.ping())
    except redis.AuthenticationError:
        return False
    finally:
        c.close()


@pytest.fixture
def admin_client(redis_server):
    c = redis_server.client()
    yield c
    c.close()


@pytest.fixture
def acl_server(redis_factory, tmp_path):
    """A server with an aclfile, so that ACL SAVE has somewhere to write."""
    acl = tmp_path / "users.acl"
    acl.write_text("")
    server = redis_factory(args=["--aclfile", str(acl)])
    server.acl_path = acl
    return server


# -- add ---------------------------------------------------------------------------

def test_add_prints_a_url_that_connects_as_the_host(redis_server, admin_client):
    done = hosts(redis_server.url, "add", "laptop")
    url = done.url()
    parts = urlsplit(url)
    assert (parts.scheme, parts.username, parts.hostname, parts.port) == ("redis", "h-laptop", "127.0.0.1",
                                                                          redis_server.port)
    assert "HELM_HOST_NAME=laptop" in done.err and password_of(url) not in done.err
    assert works_as(url, "laptop")
    assert admin_client.xlen(keys.stream_key("laptop")) == 1
    c = client.connect(url)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.xadd(keys.stream_key("vm1"), {"t": "hb"})
    finally:
        c.close()


@pytest.mark.parametrize("public, expected", [
    ("rediss://hub.example:6380/0", "rediss://h-laptop:{pw}@hub.example:6380/0"),
    ("rediss://hub.example:6380", "rediss://h-laptop:{pw}@hub.example:6380/0"),
    ("redis://someone:secret@[2001:db8::1]:6379/0", "redis://h-laptop:{pw}@[2001:db8::1]:6379/0"),
    ("unix:///run/redis/redis.sock", "unix://h-laptop:{pw}@/run/redis/redis.sock?db=0"),
])
def test_public_url_names_where_hosts_reach_the_engine(redis_server, public, expected):
    done = hosts(redis_server.url, "add", "laptop", "--public-url", public)
    assert done.code == 0, done.err
    line, = done.out.splitlines()
    url = line.split("=", 1)[1]
    assert url == expected.format(pw=password_of(url)) and re.fullmatch(r"[0-9a-f]{64}", password_of(url))
    assert "loopback" not in done.err or public.startswith("unix")


def test_passwords_are_new_every_time_and_the_engine_keeps_only_their_hash(acl_server):
    a = hosts(acl_server.url, "add", "laptop").url()
    b = hosts(acl_server.url, "add", "vm1").url()
    c = hosts(acl_server.url, "add", "laptop", "--rotate").url()
    d = hosts(acl_server.url, "add", "laptop", "--rotate").url()
    w = hosts(acl_server.url, "web-user").url()
    passwords = [password_of(u) for u in (a, b, c, d, w)]
    assert len(set(passwords)) == 5
    adm = acl_server.client()
    try:
        assert adm.acl_getuser("h-laptop")["passwords"] == [hashlib.sha256(password_of(d).encode()).hexdigest()]
        listing = " ".join(adm.acl_list())
    finally:
        adm.close()
    saved = acl_server.acl_path.read_text()
    for pw in passwords:
        assert pw not in listing and pw not in saved


def test_add_twice_fails_unless_rotate_and_rotate_revokes_the_old_password(redis_server, admin_client):
    old = hosts(redis_server.url, "add", "laptop").url()
    hosts(redis_server.url, "add", "laptop").one_error("already exists", "--rotate")
    assert works_as(old, "laptop")  # the failed add changed nothing
    agent = client.connect(old)  # the host's agent, connected with the old password
    try:
        assert agent.ping()
        new = hosts(redis_server.url, "add", "laptop", "--rotate").url()
        assert password_of(new) != password_of(old)
        assert works_as(new, "laptop")
        assert not authenticates(old)
        with pytest.raises(redis.ConnectionError):  # its open connection was dropped
            agent.ping()
    finally:
        agent.close()
    assert [c for c in admin_client.client_list() if c["user"] == "h-laptop"] == []


# -- remove ------------------------------------------------------------------------

def test_remove_revokes_the_user_its_connections_and_every_key(redis_server, admin_client):
    url = hosts(redis_server.url, "add", "laptop").url()
    other = hosts(redis_server.url, "add", "vm1").url()
    agent = client.connect(url)
    try:
        with agent.pipeline(transaction=True) as tx:
            tx.hset(keys.snapshot_key("laptop"), "laptop:claude-code:s1", "{}")
            tx.xadd(keys.stream_key("laptop"), {"t": "created", "k": "laptop:claude-code:s1"})
            tx.execute()
        with agent.pipeline(transaction=False) as p:  # more keys than one SCAN batch
            for n in range(2500):
                p.set(keys.transcript_key("laptop", f"laptop:claude-code:{n}"), "[]", ex=600)
            p.execute()
        assert works_as(other, "vm1")
        admin_client.set("hm:h:laptopx:s", "a look-alike host's key stays")

        done = hosts(redis_server.url, "remove", "laptop")
        assert done.code == 0 and done.out == "", done.err
        assert "2502 key(s) deleted" in done.err
        with pytest.raises(redis.ConnectionError):  # its open connection is gone
            agent.ping()
    finally:
        agent.close()
    assert not authenticates(url)
    assert list(admin_client.scan_iter(match=keys.host_keys("laptop"))) == []
    assert admin_client.xlen(keys.stream_key("vm1")) == 1 and admin_client.exists("hm:h:laptopx:s")
    assert "h-laptop" not in admin_client.acl_users() and works_as(other, "vm1")
    hosts(redis_server.url, "remove", "laptop").one_error("no host laptop")


def test_remove_deletes_keys_left_without_a_user(redis_server, admin_client):
    admin_client.xadd(keys.stream_key("gone"), {"t": "hb"})
    done = hosts(redis_server.url, "remove", "gone")
    assert done.code == 0 and "1 key(s) deleted" in done.err
    assert not admin_client.exists(keys.stream_key("gone"))


# -- persistence of the users ------------------------------------------------------

def test_acl_save_keeps_the_users_across_a_restart(acl_server):
    laptop = hosts(acl_server.url, "add", "laptop").url()
    web = hosts(acl_server.url, "web-user").url()
    vm1 = hosts(acl_server.url, "add", "vm1").url()
    assert hosts(acl_server.url, "remove", "vm1").code == 0
    saved = acl_server.acl_path.read_text()
    assert "user h-laptop " in saved and "user web " in saved and "h-vm1" not in saved
    acl_server.restart()  # kill -9: nothing but the aclfile carries the users over
    assert works_as(laptop, "laptop")
    c = client.connect(web)
    try:
        assert len(c.xrange(keys.stream_key("laptop"))) == 1
    finally:
        c.close()
    assert not authenticates(vm1)


def test_without_an_aclfile_the_user_works_until_a_restart_and_the_admin_is_told(redis_server):
    done = hosts(redis_server.url, "add", "laptop")
    url = done.url()
    assert "warning: the engine has no aclfile" in done.err and "CONFIG REWRITE" in done.err
    assert works_as(url, "laptop")
    redis_server.restart()
    assert not authenticates(url)


# -- list and web-user -------------------------------------------------------------

def test_list_shows_each_host_its_keys_and_the_age_of_its_last_entry(redis_server, admin_client):
    assert hosts(redis_server.url, "list").out == "no hosts\n"
    hosts(redis_server.url, "add", "laptop").url()
    hosts(redis_server.url, "add", "vm1").url()
    now_ms = int(admin_client.time()[0]) * 1000
    admin_client.hset(keys.snapshot_key("laptop"), mapping={"a": "{}", "b": "{}"})
    for n in range(3):
        admin_client.xadd(keys.stream_key("laptop"), {"t": "hb"}, id=f"{now_ms - 120_000}-{n}")
    admin_client.xadd(keys.stream_key("old"), {"t": "hb"}, id=f"{now_ms - 3 * 86_400_000}-0")
    done = hosts(redis_server.url, "list")
    assert done.code == 0, done.err
    rows = [line.split(None, 4) for line in done.out.splitlines()]
    assert rows == [["HOST", "USER", "SESSIONS", "ENTRIES", "LAST ENTRY"],
                    ["laptop", "h-laptop", "2", "3", "2 min ago"],
                    ["old", "(none)", "0", "1", "3 d ago"],
                    ["vm1", "h-vm1", "0", "0", "never"]]


def test_web_user_reads_and_writes_only_the_epoch(redis_server):
    laptop = hosts(redis_server.url, "add", "laptop").url()
    works_as(laptop, "laptop")
    done = hosts(redis_server.url, "web-user")
    url = done.url()
    assert urlsplit(url).username == "web"
    hosts(redis_server.url, "web-user").one_error("already exists")
    c = client.connect(url)
    try:
        assert len(c.xrange(keys.stream_key("laptop"))) == 1
        assert c.hsetnx(keys.META, keys.EPOCH_FIELD, "0a1b2c3d") == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.xadd(keys.stream_key("laptop"), {"t": "hb"})
    finally:
        c.close()
    other = hosts(redis_server.url, "web-user", "web2").url()
    assert urlsplit(other).username == "web2" and password_of(other) != password_of(url)
    rotated = hosts(redis_server.url, "web-user", "--rotate").url()
    assert not authenticates(url) and authenticates(rotated)


def test_rotate_leaves_a_user_of_another_kind_alone(redis_server, admin_client):
    admin_client.execute_command("ACL", "SETUSER", "admin", "on", ">admin-pass", "~*", "&*", "+@all")
    admin_url = redis_server.url_for("admin", "admin-pass")
    hosts(admin_url, "web-user", "admin", "--rotate").one_error("user admin exists but is not web user admin's")
    admin_client.execute_command("ACL", "SETUSER", "h-vm1", "on", ">pw", "~*", "+@all")  # not made by hosts add
    hosts(admin_url, "add", "vm1", "--rotate").one_error("user h-vm1 exists but is not host vm1's")
    assert authenticates(admin_url) and authenticates(redis_server.url_for("h-vm1", "pw"))
    assert admin_client.acl_getuser("admin")["keys"] == ["~*"]
    web = hosts(admin_url, "web-user").url()  # a web user, rotated: that is its kind
    assert authenticates(hosts(admin_url, "web-user", "--rotate").url()) and not authenticates(web)


# -- failures: one line, status 2 --------------------------------------------------

@pytest.mark.parametrize("name", ["Laptop", "-laptop", "lap_top", "a" * 64, "", "lap top", "laptop:1", "lap*",
                                  "x/../y", "läptop"])
@pytest.mark.parametrize("action", ["add", "remove"])
def test_bad_host_names_are_refused(redis_server, admin_client, action, name):
    hosts(redis_server.url, action, "--", name).one_error("bad host name")  # "--": "-laptop" is no option
    assert admin_client.acl_users() == ["default"]


@pytest.mark.parametrize("name", ["default", "h-laptop", "Web", "we b"])
def test_bad_web_user_names_are_refused(redis_server, admin_client, name):
    hosts(redis_server.url, "web-user", name).one_error("bad user name")
    assert admin_client.acl_users() == ["default"]


def test_an_unreachable_engine_is_one_line_without_the_password():
    url = f"redis://admin:s3cret-pass@127.0.0.1:{free_port()}/0"
    line = hosts(url, "add", "laptop").one_error("cannot reach the engine at redis://admin:***@127.0.0.1:")
    assert "s3cret-pass" not in line
    hosts(url, "list").one_error("cannot reach the engine")


def test_not_an_admin_wrong_password_and_no_url(redis_server):
    host_url = hosts(redis_server.url, "add", "laptop").url()
    hosts(host_url, "add", "vm1").one_error("may not manage users", "admin user")
    hosts(host_url, "list").one_error("may not manage users")
    wrong = re.sub(r":[0-9a-f]{64}@", ":" + "0" * 64 + "@", host_url)
    hosts(wrong, "list").one_error("refuses the admin URL's user or password")
    hosts(None, "list").one_error("--admin-url or HELM_REDIS_ADMIN_URL")
    hosts("http://127.0.0.1:1/", "list").one_error("redis://")
    hosts(redis_server.url, "list", "--redis-ca-file", "/etc/hostname").one_error("not rediss://")
    hosts(redis_server.url, "add", "vm1", "--public-url", "hub.example:6380").one_error("--public-url")


def test_the_cli_dispatches_hosts(redis_server):
    env = {"HELM_REDIS_ADMIN_URL": redis_server.url}
    url = hosts_cli("add", "laptop", env=env).url()
    assert works_as(url, "laptop")
    hosts_cli("add", "laptop", env=env).one_error("already exists")
    hosts_cli("add", "Bad_Name", env=env).one_error("bad host name")
    listing = hosts_cli("list", env=env)
    assert listing.code == 0 and listing.out.splitlines()[1].split()[:4] == ["laptop", "h-laptop", "0", "1"]
    gone = {"HELM_REDIS_ADMIN_URL": f"redis://127.0.0.1:{free_port()}/0"}
    hosts_cli("add", "vm1", env=gone).one_error("cannot reach the engine")
    # the options after the action, too
    done = hosts_cli("remove", "laptop", "--admin-url", redis_server.url, env={"HELM_REDIS_ADMIN_URL": ""})
    assert done.code == 0 and done.out == "", done.err


# -- TLS ---------------------------------------------------------------------------

def make_certs(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost, signed by it (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    crt, key, csr, ext = directory / "redis.crt", directory / "redis.key", directory / "redis.csr", directory / "ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=helm test CA")
    openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "2", "-extfile", str(ext))
    for path in (key, ca_key):
        path.chmod(0o600)
    return {"ca": ca, "cert": crt, "key": key}


class TlsRedisServer(RedisServer):
    """redis-server with TLS on its port and the plain port closed (port 0)."""

    def __init__(self, directory: Path, certs: dict[str, Path], **kw):
        super().__init__(directory, **kw)
        self.certs = certs
        self.args = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(certs["cert"]),
                     "--tls-key-file", str(certs["key"]), "--tls-ca-cert-file", str(certs["ca"]),
                     "--tls-auth-clients", "no", *self.args]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited {self.proc.returncode}: {self.log()[-2000:]}")
        context = ssl.create_default_context(cafile=str(self.certs["ca"]))
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # (the default user may be off)


def tls_redis(directory: Path) -> TlsRedisServer:
    try:
        certs = make_certs(directory / "certs")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make test certificates: {exc}")
    server = TlsRedisServer(directory / "redis", certs)
    try:
        return server.start()
    except (RuntimeError, AssertionError) as exc:
        server.stop()
        if "TLS" in server.log() or "tls" in str(exc):
            pytest.skip(f"this redis-server has no TLS: {server.log()[-300:]}")
        raise


@pytest.fixture
def tls_server(tmp_path):
    server = tls_redis(tmp_path)
    yield server
    server.stop()


def test_rediss_with_the_ca_file_and_not_without(tls_server):
    ca = str(tls_server.certs["ca"])
    c = client.connect(tls_server.url, ca_file=ca)
    try:
        assert c.ping()
    finally:
        c.close()
    c = client.connect(tls_server.url)  # the system's CAs do not know this one
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            c.ping()
    finally:
        c.close()
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=2) as plain:  # no plain text spoken
        plain.sendall(b"PING\r\n")
        plain.settimeout(2)
        try:
            reply = plain.recv(64)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        assert not reply.startswith(b"+PONG")


def test_hosts_add_over_tls(tls_server):
    ca = str(tls_server.certs["ca"])
    done = hosts(tls_server.url, "add", "laptop", "--redis-ca-file", ca)
    url = done.url()
    assert url.startswith("rediss://h-laptop:") and "HELM_REDIS_CA_FILE" in done.err
    assert works_as(url, "laptop", ca_file=ca)
    hosts(tls_server.url, "list").one_error("cannot reach the engine", "certificate verify failed")
