"""nginx/helm-monitor.conf, run by a real nginx in front of a real helm-monitor."""

from __future__ import annotations

import http.client
import time

import pytest

from tests.deploy.conftest import PUBLIC_NAME, installed_static_dir
from tests.support.sse import SSEClient

pytestmark = pytest.mark.nginx

TOKEN = "nginx-test-token-0123456789"


def fetch(proxy, path: str, *, method: str = "GET", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request(method, path, headers={"Host": f"{PUBLIC_NAME}:{proxy.port}", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def behind_nginx(claude, server_factory, nginx_factory):
    """helm-monitor, told nginx's public name, and nginx in front of it."""
    srv = server_factory(claude.root, args=["--allowed-host", PUBLIC_NAME])
    return srv, nginx_factory(srv.port)


@pytest.mark.parametrize("path", ["/api/sessions/stream", "/api/claude-sessions/stream"])
def test_init_and_updates_arrive_through_nginx_within_a_second(claude, behind_nginx, path):
    srv, proxy = behind_nginx
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("First question", "First answer")

    started = time.monotonic()
    with SSEClient(proxy.url, headers={"Host": f"{PUBLIC_NAME}:{proxy.port}"}, path=path) as sse:
        assert sse.status == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        init = sse.wait_for(lambda e: e.type == "init", timeout=1.0)
        assert time.monotonic() - started < 1.0
        # the transcript may have been picked up just before or after the snapshot
        if init.session(session.id) is None:
            sse.wait_for(lambda e: e.session(session.id) is not None, timeout=1.0)

        for n in range(2):  # a later update, and another: nothing waits in a buffer
            session.turn(f"Follow-up {n}", "Sure")
            written = time.monotonic()
            update = sse.wait_for(lambda e: e.type == "session-updated" and e.session(session.id), timeout=1.0)
            assert update.received_at - written < 1.0
            assert len(update.sessions) == 1


def test_nginx_serves_the_static_files_itself(behind_nginx):
    srv, proxy = behind_nginx
    static_dir = installed_static_dir()
    files = sorted(p for p in static_dir.iterdir() if p.is_file())
    assert files, f"{static_dir} holds no files"
    sample = next((p for p in files if p.suffix == ".js"), files[0])

    status, headers, body = fetch(proxy, f"/static/{sample.name}")
    assert status == 200 and body == sample.read_bytes()
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]

    srv.stop()  # with helm-monitor gone, nginx still answers for the static files...
    assert fetch(proxy, "/api/claude-sessions/all")[0] == 502
    status, _, body = fetch(proxy, f"/static/{sample.name}")
    assert status == 200 and body == sample.read_bytes()
    assert fetch(proxy, "/static/no-such-file.js")[0] == 404
    # The versioned addresses the page uses are nginx's too, cached for good.
    status, headers, body = fetch(proxy, f"/assets/0123456789ab/{sample.name}")
    assert status == 200 and body == sample.read_bytes()
    assert headers["cache-control"] == "max-age=315360000"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert fetch(proxy, "/assets/0123456789ab/no-such-file.js")[0] == 404
    for trick in ("..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E/%2E%2E/%2E%2E/etc/passwd"):
        status, _, body = fetch(proxy, f"/assets/0123456789ab/{trick}")
        assert status != 200 and b"root:" not in body, trick


def test_host_and_origin_pass_through_nginx(behind_nginx):
    _, proxy = behind_nginx
    assert fetch(proxy, "/api/claude-sessions/all")[0] == 200
    # nginx hands the browser's Host over: DNS rebinding is still refused behind it
    assert fetch(proxy, "/api/claude-sessions/all", headers={"Host": "attacker.example"})[0] == 403
    with SSEClient(proxy.url, headers={"Host": "attacker.example"}, connect_timeout=2) as sse:
        assert sse.status == 403
    # the page's own origin, port included, matches what helm-monitor sees
    own = {"Origin": f"http://{PUBLIC_NAME}:{proxy.port}"}
    assert fetch(proxy, "/api/claude-sessions/refresh", method="POST", headers=own)[0] == 200
    foreign = {"Origin": "http://attacker.example"}
    assert fetch(proxy, "/api/claude-sessions/refresh", method="POST", headers=foreign)[0] == 403
    status, headers, _ = fetch(proxy, "/api/claude-sessions/all")
    assert headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_token_login_through_nginx(claude, server_factory, nginx_factory):
    srv = server_factory(claude.root, args=["--allowed-host", PUBLIC_NAME, "--token", TOKEN])
    proxy = nginx_factory(srv.port)
    assert fetch(proxy, "/api/claude-sessions/all")[0] == 401
    status, headers, _ = fetch(proxy, f"/?token={TOKEN}")
    assert status in (302, 303)
    assert headers["location"] in ("/", f"http://{PUBLIC_NAME}:{proxy.port}/")
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    login = {"Cookie": cookie.split(";")[0]}
    assert fetch(proxy, "/api/claude-sessions/all", headers=login)[0] == 200
    with SSEClient(proxy.url, headers={"Host": f"{PUBLIC_NAME}:{proxy.port}", **login}) as sse:
        assert sse.status == 200
        assert sse.wait_for(lambda e: e.type == "init", timeout=1.0)
    # X-Forwarded-Proto is nginx's to say ($scheme), not the client's
    status, headers, _ = fetch(proxy, f"/?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
    assert status in (302, 303) and "Secure" not in headers["set-cookie"]
