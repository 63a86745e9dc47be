"""SPEC section 6: Host allow-list, Origin check, token login, headers, bind refusal.

The first half drives ``helm_monitor.web.security`` on a tiny Flask app of its own, so
every rule is pinned down without the rest of helm-monitor. The second half checks the
same promises on the real server (gunicorn + gevent) that users run.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time

import pytest
from flask import Flask, Response, jsonify, stream_with_context

from helm_monitor.config import Config, ConfigError
from helm_monitor.web import security
from helm_monitor.web.security import check_bind, init_app
from tests.support.server import free_port, wait_until
from tests.support.sse import SSEClient

TOKEN = "s3cret-Token_0123456789"
EXPECTED_HEADERS = {
    "Content-Security-Policy": security.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# -- a tiny app ---------------------------------------------------------------

class Calls:
    def __init__(self):
        self.views: list[str] = []
        self.stream_started = 0


@pytest.fixture
def make_app(tmp_path):
    """Build a Flask app with a page, an API, a stream, static files and init_app."""
    static = tmp_path / "static"
    static.mkdir(exist_ok=True)
    (static / "app.js").write_text("console.log('hi');\n")

    def make(**config) -> tuple[Flask, Calls]:
        calls = Calls()
        app = Flask("helm_test", static_folder=str(static))
        app.config["HELM"] = Config(cache_dir=None, **config)
        app.config["PROPAGATE_EXCEPTIONS"] = False

        @app.get("/")
        def page():
            calls.views.append("/")
            return "<!doctype html><title>helm</title>"

        @app.route("/api/x", methods=["GET", "POST"])
        def api():
            calls.views.append("/api/x")
            return jsonify(ok=True)

        @app.get("/api/cors")
        def leaky():
            return jsonify(ok=True), 200, {"Access-Control-Allow-Origin": "*"}

        @app.get("/api/stream")
        def stream():
            def events():
                calls.stream_started += 1
                yield "event: init\ndata: {}\n\n"
            return Response(stream_with_context(events()), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        @app.get("/healthz")
        def healthz():
            return jsonify(status="ok")

        @app.get("/metrics")
        def metrics():
            return "up 1\n", 200, {"Content-Type": "text/plain; version=0.0.4"}

        @app.get("/boom")
        def boom():
            raise RuntimeError("a secret stack frame")

        init_app(app)
        return app, calls

    return make


@pytest.fixture
def app_calls(make_app):
    return make_app()


@pytest.fixture
def client(app_calls):
    return app_calls[0].test_client()


def get(client, path, host="127.0.0.1:5003", **headers):
    response = client.get(path, headers={"Host": host, **headers})
    response.get_data()  # buffer it, so that a file or stream behind it is closed
    response.close()
    return response


# -- Host ---------------------------------------------------------------------

@pytest.mark.parametrize("host", [
    "localhost", "localhost:5003", "LOCALHOST", "LocalHost.:8080", "localhost.",
    "127.0.0.1", "127.0.0.1:5003", "127.8.9.10:1", "127.0.0.1.",
    "[::1]", "[::1]:5003", "[0:0:0:0:0:0:0:1]:80", "[::ffff:127.0.0.1]:5003",
])
def test_loopback_hosts_are_allowed(client, host):
    assert get(client, "/api/x", host=host).status_code == 200


@pytest.mark.parametrize("host", [
    "attacker.example", "attacker.example:5003", "localhost.attacker.example",
    "127.0.0.1.nip.io", "localhost:abc", "localhost:99999", "localhost:", "localhost..",
    "[::2]", "::1", "[::1", "[::1]x", "local host", "localhost@attacker.example",
    "attacker.example#@localhost", "0.0.0.0:5003", "127.1", "0x7f.0.0.1", "192.168.1.10",
    "localhost/", "",
])
def test_other_hosts_are_refused(app_calls, host):
    app, calls = app_calls
    response = get(app.test_client(), "/api/x", host=host)
    assert response.status_code == 403
    assert response.is_json and "Host" in response.get_json()["error"]
    assert calls.views == []


def test_a_request_without_host_is_refused(app_calls):
    app, calls = app_calls

    def drop_host(wsgi):
        def middleware(environ, start_response):
            environ.pop("HTTP_HOST", None)
            return wsgi(environ, start_response)
        return middleware

    app.wsgi_app = drop_host(app.wsgi_app)
    assert app.test_client().get("/api/x").status_code == 403
    assert calls.views == []


def test_refused_before_any_work_even_the_stream(app_calls):
    app, calls = app_calls
    client = app.test_client()
    for path in ("/", "/api/x", "/api/stream", "/healthz", "/metrics", "/static/app.js", "/nowhere"):
        response = get(client, path, host="attacker.example")
        assert response.status_code == 403, path
        assert response.is_json, path
    assert client.post("/api/x", headers={"Host": "attacker.example"}).status_code == 403
    assert calls.views == [] and calls.stream_started == 0


def test_configured_names(make_app):
    app, _ = make_app(allowed_hosts=["Dash.Example.COM", "other.example:8443", "[2001:db8::1]"])
    client = app.test_client()
    assert get(client, "/api/x", host="dash.example.com").status_code == 200
    assert get(client, "/api/x", host="dash.example.com:9999").status_code == 200  # no port: any port
    assert get(client, "/api/x", host="DASH.example.com.").status_code == 200
    assert get(client, "/api/x", host="other.example:8443").status_code == 200
    assert get(client, "/api/x", host="other.example").status_code == 403  # a port: only that one
    assert get(client, "/api/x", host="other.example:443").status_code == 403
    assert get(client, "/api/x", host="[2001:db8:0::1]:5003").status_code == 200
    assert get(client, "/api/x", host="sub.dash.example.com").status_code == 403


@pytest.mark.parametrize("entry", ["http://dash.example.com", "*.example.com", "dash.example.com/x",
                                   "dash.example.com:0", "", "a b"])
def test_malformed_allowed_hosts_fail_at_start(make_app, entry):
    with pytest.raises(ConfigError, match="allowed host"):
        make_app(allowed_hosts=[entry])


def test_the_bind_address_is_allowed_when_it_is_an_ip(make_app):
    client = make_app(host="192.0.2.7", token=TOKEN)[0].test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert get(client, "/api/x", host="192.0.2.7:5003", **auth).status_code == 200
    assert get(client, "/api/x", host="192.0.2.8:5003", **auth).status_code == 403
    wildcard = make_app(host="0.0.0.0", token=TOKEN)[0].test_client()
    assert get(wildcard, "/api/x", host="0.0.0.0:5003", **auth).status_code == 403


# -- Origin and fetch metadata ----------------------------------------------------

@pytest.mark.parametrize("host, origin", [
    ("127.0.0.1:5003", "http://127.0.0.1:5003"),
    ("localhost:5003", "http://LOCALHOST:5003"),
    ("localhost", "http://localhost"),
    ("localhost", "http://localhost:80"),
    ("localhost:80", "http://localhost"),
])
def test_own_origin_is_allowed(client, host, origin):
    assert client.post("/api/x", headers={"Host": host, "Origin": origin}).status_code == 200


@pytest.mark.parametrize("origin", [
    "http://attacker.example", "null", "NULL", "http://127.0.0.1:5004", "http://localhost:5003",
    "https://127.0.0.1:5003", "file://", "http://127.0.0.1:5003/path", "garbage", "",
    "http://user@127.0.0.1:5003", "chrome-extension://abcdef",
])
def test_foreign_origin_is_refused(app_calls, origin):
    app, calls = app_calls
    client = app.test_client()
    headers = {"Host": "127.0.0.1:5003", "Origin": origin}
    assert client.post("/api/x", headers=headers).status_code == 403
    response = client.get("/api/stream", headers=headers)
    assert response.status_code == 403 and response.is_json
    assert calls.views == [] and calls.stream_started == 0


def test_https_origin_behind_a_tls_proxy():
    headers = {"Host": "dash.example.com", "Origin": "https://dash.example.com"}
    app = Flask("proxy")
    app.config["HELM"] = Config(cache_dir=None, allowed_hosts=["dash.example.com"])
    app.post("/api/x")(lambda: jsonify(ok=True))
    init_app(app)
    proxied = app.test_client()
    assert proxied.post("/api/x", headers=headers).status_code == 403
    assert proxied.post("/api/x", headers={**headers, "X-Forwarded-Proto": "https"}).status_code == 200
    assert proxied.post("/api/x", base_url="https://dash.example.com", headers=headers).status_code == 200


@pytest.mark.parametrize("site, mode, dest, method, status", [
    ("same-origin", "cors", "empty", "POST", 200),
    ("none", "navigate", "document", "GET", 200),  # typed into the address bar
    ("cross-site", "navigate", "document", "GET", 200),  # a link someone clicked
    ("cross-site", "cors", "empty", "GET", 403),
    ("cross-site", "no-cors", "script", "GET", 403),
    ("cross-site", "navigate", "iframe", "GET", 403),
    ("cross-site", "navigate", "document", "POST", 403),
    ("same-site", "cors", "empty", "GET", 403),
])
def test_fetch_metadata(client, site, mode, dest, method, status):
    headers = {"Host": "localhost:5003", "Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode,
               "Sec-Fetch-Dest": dest}
    assert client.open("/api/x", method=method, headers=headers).status_code == status


# -- token --------------------------------------------------------------------

@pytest.fixture
def locked(make_app):
    app, calls = make_app(token=TOKEN)
    return app.test_client(), calls


@pytest.mark.parametrize("path", ["/", "/api/x", "/api/stream", "/metrics", "/static/app.js", "/nowhere"])
def test_without_the_token_every_route_but_healthz_is_refused(locked, path):
    client, calls = locked
    response = get(client, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.get_data(as_text=True)
    if path == "/":
        assert response.mimetype == "text/plain" and "?token=" in response.get_data(as_text=True)
    else:
        assert response.is_json and response.get_json()["error"]
    assert calls.views == [] and calls.stream_started == 0
    assert get(client, "/healthz").status_code == 200


def test_token_in_the_query_becomes_a_cookie_and_leaves_the_url(locked):
    client, calls = locked
    response = get(client, f"/api/x?b=2&token={TOKEN}&a=x%20y&a=z&empty=")
    assert response.status_code in (302, 303)
    assert response.headers["Location"] == "/api/x?b=2&a=x+y&a=z&empty="
    assert calls.views == []
    cookie = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= attributes and "secure" not in attributes
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie holds a value derived from the token
    # the test client keeps the cookie, as a browser would
    assert get(client, "/api/x").status_code == 200
    assert get(client, "/").status_code == 200
    assert get(client, "/static/app.js").status_code == 200
    assert get(client, "/api/stream").status_code == 200


def test_login_redirect_keeps_the_path_and_stays_on_this_site(locked):
    client, _ = locked
    assert get(client, f"/?token={TOKEN}").headers["Location"] == "/"
    assert get(client, f"/static/app.js?token={TOKEN}").headers["Location"] == "/static/app.js"
    assert get(client, f"/a%20b/%C3%A9?token={TOKEN}").headers["Location"] == "/a%20b/%C3%A9"
    # "//host" in a Location is another site: an open redirect
    response = client.get("/", headers={"Host": "localhost"}, environ_overrides={
        "PATH_INFO": "//attacker.example/x", "QUERY_STRING": f"token={TOKEN}"})
    assert response.headers["Location"] == "/attacker.example/x"


def test_cookie_is_secure_behind_tls(locked):
    client, _ = locked
    forwarded = get(client, f"/?token={TOKEN}", **{"X-Forwarded-Proto": "https"})
    assert "; Secure" in forwarded.headers["Set-Cookie"]
    direct = client.get(f"/?token={TOKEN}", base_url="https://localhost")
    assert "; Secure" in direct.headers["Set-Cookie"]


def test_wrong_credentials_are_refused(locked):
    client, calls = locked
    assert get(client, "/api/x?token=wrong").status_code == 401
    assert get(client, f"/api/x?token={TOKEN}x").status_code == 401
    assert get(client, "/api/x", Authorization="Bearer wrong").status_code == 401
    assert get(client, "/api/x", Authorization=f"Basic {TOKEN}").status_code == 401
    assert get(client, "/api/x", Authorization="Bearer").status_code == 401
    client.set_cookie(security.TOKEN_COOKIE, TOKEN, domain="127.0.0.1")  # the raw token is not the cookie
    assert get(client, "/api/x").status_code == 401
    client.set_cookie(security.TOKEN_COOKIE, security.cookie_value("an-old-token"), domain="127.0.0.1")
    assert get(client, "/api/x").status_code == 401
    assert calls.views == []


def test_bearer_and_cookie_are_accepted(locked):
    client, calls = locked
    assert get(client, "/api/x", Authorization=f"Bearer {TOKEN}").status_code == 200
    assert get(client, "/api/x", Authorization=f"bearer  {TOKEN} ").status_code == 200
    client.set_cookie(security.TOKEN_COOKIE, security.cookie_value(TOKEN), domain="127.0.0.1")
    assert get(client, "/api/stream").status_code == 200
    assert calls.views == ["/api/x", "/api/x"] and calls.stream_started == 1


def test_token_in_the_query_of_a_post_is_used_without_a_redirect(locked):
    client, calls = locked
    response = client.post(f"/api/x?token={TOKEN}", headers={"Host": "localhost"})
    assert response.status_code == 200 and calls.views == ["/api/x"]


def test_non_ascii_token(make_app):
    client = make_app(token="jeton-été")[0].test_client()
    assert get(client, "/api/x", Authorization="Bearer jeton-été".encode().decode("latin-1")).status_code == 200
    assert get(client, "/api/x?token=jeton-%C3%A9t%C3%A9").status_code == 303


def test_token_comparison_is_constant_time(monkeypatch, locked):
    client, _ = locked
    compared = []
    real = security.hmac.compare_digest

    def spy(a, b):
        compared.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    get(client, "/api/x", Authorization=f"Bearer {TOKEN}")
    get(client, "/api/x?token=nope")
    assert compared == [(bytes, bytes), (bytes, bytes)]


# -- headers ------------------------------------------------------------------

def assert_security_headers(response):
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]


@pytest.mark.parametrize("path, status", [
    ("/", 200), ("/api/x", 200), ("/healthz", 200), ("/metrics", 200), ("/static/app.js", 200),
    ("/nowhere", 404), ("/boom", 500), ("/api/cors", 200),
])
def test_every_answer_carries_the_headers(client, path, status):
    response = get(client, path)
    assert response.status_code == status
    assert_security_headers(response)
    if status == 500:
        assert "secret stack frame" not in response.get_data(as_text=True)


def test_refusals_carry_the_headers(locked, client):
    assert_security_headers(get(client, "/", host="attacker.example"))
    assert_security_headers(get(client, "/", Origin="http://attacker.example"))
    locked_client, _ = locked
    assert_security_headers(get(locked_client, "/api/x"))
    assert_security_headers(get(locked_client, f"/?token={TOKEN}"))
    assert get(locked_client, "/api/x").headers["Cache-Control"] == "no-store"


def test_cache_control(client):
    for path in ("/api/x", "/healthz", "/metrics"):
        assert get(client, path).headers["Cache-Control"] == "no-store", path
    assert get(client, "/api/stream").headers["Cache-Control"] == "no-cache"  # the view's own
    assert "no-store" not in get(client, "/static/app.js").headers.get("Cache-Control", "")


# -- bind -----------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST.", "::1", "[::1]",
                                  "unix:/run/helm-monitor.sock"])
def test_loopback_bind_needs_nothing(host):
    check_bind(host, None, False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "", "192.168.1.10", "10.0.0.1", "fe80::1",
                                  "monitor.example.com", "localhost.attacker.example"])
def test_open_bind_without_token_is_refused(host):
    with pytest.raises(ConfigError, match="token") as info:
        check_bind(host, None, False)
    assert "--behind-auth-proxy" in str(info.value)
    with pytest.raises(ConfigError):
        check_bind(host, "   ", False)
    check_bind(host, TOKEN, False)
    check_bind(host, None, True)


# == the real server ============================================================

def raw_request(server, path: str, *, method: str = "GET", headers: dict | None = None,
                timeout: float = 5.0):
    """One request with the path sent byte for byte (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        for name, value in hdrs.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


REST_PATHS = ["/", "/api/claude-sessions/all", "/healthz", "/metrics"]


def make_session(claude):
    s = claude.session(cwd="/home/alice/code/webapp")
    s.turn("Hello there", "Hi")
    return s


def test_real_server_refuses_foreign_host_before_the_stream_opens(claude, server):
    paths = [f"/api/claude-sessions/{make_session(claude).id}"]
    wait_until(lambda: server.get_json("/api/claude-sessions/all"), 5, message="the session to be listed")
    for path in REST_PATHS + paths:
        status, headers, body = raw_request(server, path, headers={"Host": "attacker.example"})
        assert status == 403, path
        assert headers["content-type"].startswith("application/json") and json.loads(body)["error"]
        assert headers["x-content-type-options"] == "nosniff"
    status, _, _ = raw_request(server, "/api/claude-sessions/refresh", method="POST",
                               headers={"Host": "attacker.example:80"})
    assert status == 403
    started = time.monotonic()
    with SSEClient(server.url, headers={"Host": "attacker.example"}, connect_timeout=2) as sse:
        assert sse.status == 403
        assert not sse.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - started < 1.0
        assert server.get_json("/healthz")["clients"] == 0  # no stream was opened
    with SSEClient(server.url) as sse:  # while the app's own name gets one
        assert sse.status == 200
        wait_until(lambda: server.get_json("/healthz")["clients"] == 1, 5, message="the stream to count")
    # the page itself still works under its own name
    assert raw_request(server, "/", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_real_server_refuses_foreign_origin(server):
    foreign = {"Origin": "http://attacker.example"}
    assert raw_request(server, "/api/claude-sessions/all", headers=foreign)[0] == 403
    assert raw_request(server, "/api/claude-sessions/refresh", method="POST", headers=foreign)[0] == 403
    assert raw_request(server, "/api/claude-sessions/all", headers={"Origin": "null"})[0] == 403
    with SSEClient(server.url, headers=foreign, connect_timeout=2) as sse:
        assert sse.status == 403
    own = {"Origin": f"http://127.0.0.1:{server.port}"}
    assert raw_request(server, "/api/claude-sessions/refresh", method="POST", headers=own)[0] == 200
    status, headers, _ = raw_request(server, "/api/claude-sessions/all", headers=own)
    assert status == 200 and not [h for h in headers if h.startswith("access-control-")]


def test_real_server_allows_configured_host(claude, server_factory):
    srv = server_factory(claude.root, args=["--allowed-host", "dash.example.com"])
    assert raw_request(srv, "/api/claude-sessions/all", headers={"Host": "dash.example.com"})[0] == 200
    assert raw_request(srv, "/api/claude-sessions/all", headers={"Host": "evil.example.com"})[0] == 403


def _token_routes(claude) -> list[tuple[str, str]]:
    paths = [f"/api/claude-sessions/{make_session(claude).id}"]
    return [("GET", p) for p in ["/", "/api/claude-sessions/all", "/metrics", *paths]] + [
        ("POST", "/api/claude-sessions/refresh")]


def test_real_server_token_login(claude, server_factory):
    routes = _token_routes(claude)
    srv = server_factory(claude.root, args=["--token", TOKEN])
    for method, path in routes:
        status, headers, body = raw_request(srv, path, method=method)
        assert status == 401, (method, path)
        assert TOKEN.encode() not in body
    with SSEClient(srv.url, connect_timeout=2) as sse:
        assert sse.status == 401
    assert raw_request(srv, "/healthz")[0] == 200

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in routes:
        assert raw_request(srv, path, method=method, headers=bearer)[0] == 200, (method, path)
    with SSEClient(srv.url, headers=bearer) as sse:
        assert sse.status == 200
        assert sse.next_event(5).type == "init"

    status, headers, _ = raw_request(srv, f"/api/claude-sessions/all?token={TOKEN}")
    assert status in (302, 303)
    assert headers["location"].endswith("/api/claude-sessions/all")
    cookie_header = headers["set-cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=Strict" in cookie_header and TOKEN not in cookie_header
    cookie = {"Cookie": cookie_header.split(";")[0]}
    for method, path in routes:
        assert raw_request(srv, path, method=method, headers=cookie)[0] == 200, (method, path)
    with SSEClient(srv.url, headers=cookie) as sse:
        assert sse.status == 200
        assert sse.next_event(5).type == "init"
    assert raw_request(srv, "/api/claude-sessions/all", headers={"Authorization": "Bearer nope"})[0] == 401


@pytest.mark.parametrize("how", ["token-file", "HELM_TOKEN_FILE", "CREDENTIALS_DIRECTORY"])
def test_real_server_reads_the_token_from_a_file(claude, server_factory, tmp_path, how):
    creds = tmp_path / "creds"
    creds.mkdir()
    token_file = creds / "helm-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    args, env = {
        "token-file": (["--token-file", str(token_file)], {}),
        "HELM_TOKEN_FILE": ([], {"HELM_TOKEN_FILE": str(token_file)}),
        "CREDENTIALS_DIRECTORY": ([], {"CREDENTIALS_DIRECTORY": str(creds)}),
    }[how]
    srv = server_factory(claude.root, args=args, env=env)
    assert raw_request(srv, "/api/claude-sessions/all")[0] == 401
    assert raw_request(srv, "/api/claude-sessions/all", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_real_server_headers(claude, server):
    paths = [f"/api/claude-sessions/{make_session(claude).id}"]
    wait_until(lambda: server.get_json("/api/claude-sessions/all"), 5, message="the session to be listed")
    for path in REST_PATHS + paths + ["/no/such/page"]:
        status, headers, _ = raw_request(server, path)
        assert status in (200, 404), path
        assert headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY", path
        if path.startswith("/api/") or path in ("/healthz", "/metrics"):
            assert headers["cache-control"] == "no-store", path
    page = raw_request(server, "/")[2].decode()
    static = [part.split('"')[0] for part in page.split('src="')[1:]] + \
             [part.split('"')[0] for part in page.split('href="')[1:] if "/static/" in part.split('"')[0]]
    assert static, "the page references no static file"
    for url in static:
        status, headers, _ = raw_request(server, url)
        assert status == 200, url
        assert headers["x-content-type-options"] == "nosniff", url
        assert headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY, url
    with SSEClient(server.url) as sse:
        assert sse.status == 200
        assert sse.headers["cache-control"] == "no-cache"
        assert sse.headers["x-accel-buffering"] == "no"
        assert sse.headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY


TRICKS = [
    "..", "%2e%2e", "%2E%2E", ".%2e", "..%2F..%2Fetc%2Fpasswd", "..%2f..%2f..%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd", "%2fetc%2fpasswd", "..%5C..%5Cetc%5Cpasswd", "%00", "x%00y",
    "..%2Foutside", "..%2F..%2Foutside", "%2E%2E%2F%2E%2E%2Foutside", "~", "%7E%2F.ssh",
    "a" * 1000, "*", "%2A", ".jsonl", "%20",
]


def test_session_endpoint_refuses_path_tricks(claude, server):
    s = make_session(claude)
    # a transcript outside projects/: no id may reach it
    (claude.root / "outside.jsonl").write_bytes(s.path.read_bytes())
    (claude.root.parent / "outside.jsonl").write_bytes(s.path.read_bytes())
    wait_until(lambda: server.get_json("/api/claude-sessions/all"), 5, message="the session to be listed")
    assert raw_request(server, f"/api/claude-sessions/{s.id}")[0] == 200  # the endpoint itself works
    answers = {trick: raw_request(server, f"/api/claude-sessions/{trick}") for trick in TRICKS}
    wrong = {trick: (status, body[:100]) for trick, (status, headers, body) in answers.items()
             if status not in (400, 404) or not headers["content-type"].startswith("application/json")
             or not json.loads(body).get("error") or b"Hello there" in body or b"root:" in body}
    assert not wrong


@pytest.mark.parametrize("path", ["/api/claude-sessions//etc/passwd", "/api/claude-sessions/../../etc/passwd",
                                  "/api/claude-sessions/%2F..%2F..%2Fetc%2Fpasswd/x"])
def test_session_endpoint_refuses_absolute_and_nested_paths(server, path):
    status, _, body = raw_request(server, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body


def test_open_bind_without_token_exits_with_a_clear_message(claude, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HELM_TOKEN", "HELM_TOKEN_FILE", "CREDENTIALS_DIRECTORY", "HELM_BEHIND_AUTH_PROXY")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "helm_monitor", "--host", "0.0.0.0", "--port", str(free_port()),
         "--claude-dir", str(claude.root)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 10
    assert "token" in done.stderr and "0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr
