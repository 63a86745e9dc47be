"""SPEC section 6: who may talk to helm-monitor, and what every answer carries.

Transcripts hold secrets, and a dashboard on loopback is still reachable by any web
page the user opens: through DNS rebinding (a hostile name that resolves to 127.0.0.1)
or through cross-site requests. So, before any view runs, in this order:

1. ``Host`` must be a loopback name (``localhost``, ``127.0.0.0/8``, ``[::1]``; any port;
   a trailing dot and any case are ignored), the address helm-monitor was told to bind,
   or a name from ``allowed_hosts``. A configured name without a port allows any port;
   ``name:port`` allows only that port. No wildcards. Otherwise 403.
2. ``Origin``, when sent, must be this app's own (``scheme://Host``); ``Origin: null`` is
   refused. A browser's ``Sec-Fetch-Site: cross-site`` / ``same-site`` is refused too,
   except for a plain top-level navigation (a link someone clicked), which cannot read
   the answer. Otherwise 403. No CORS headers are ever sent.
3. With a token configured, every route but ``/healthz`` needs it: ``?token=`` once
   (answered with a cookie and a redirect to the same URL without it; a WebSocket
   handshake, which cannot follow a redirect, is let through instead), the cookie, or
   ``Authorization: Bearer``. Otherwise 401.

The cookie does not hold the token: it holds HMAC-SHA256(token, COOKIE_CONTEXT), so the
browser's cookie jar never stores the secret itself and changing the token logs every
browser out.

Nothing here imports gevent: the module is plain Flask and is tested on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from flask import Flask, Response, jsonify, redirect, request

from helm_monitor.config import LOOPBACK_NAMES, Config, ConfigError
from helm_monitor.config import check_bind, is_loopback_bind  # noqa: F401 (where they were)

TOKEN_PARAM = "token"
TOKEN_COOKIE = "helm_token"
# Browsers cap cookies at 400 days; a month keeps a bookmarked dashboard logged in.
TOKEN_COOKIE_MAX_AGE_S = 30 * 24 * 3600
COOKIE_CONTEXT = b"helm-monitor session cookie v1"

# Pages a person opens in a browser (told in plain text how to log in).
PAGE_PATHS = frozenset({"/", "/usage"})
# Routes any caller may reach once Host and Origin are fine (monitoring probes).
PUBLIC_PATHS = frozenset({"/healthz"})
# Answers that must never be stored by a browser or a proxy.
NO_STORE_PATHS = frozenset({"/healthz", "/metrics"})
NO_STORE_PREFIX = "/api/"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# Only features browsers recognise: an unknown name is logged as a console error.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media",
    "fullscreen", "geolocation", "gyroscope", "hid", "idle-detection", "magnetometer",
    "microphone", "midi", "payment", "picture-in-picture", "publickey-credentials-get",
    "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}

DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name or IPv4 address as it may appear in a Host header (no userinfo, no path).
_NAME_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


# -- Host ---------------------------------------------------------------------

def parse_host(value: str) -> tuple[str, int | None] | None:
    """Split a Host header (``name``, ``name:port``, ``[v6]:port``) into a normalised
    (lower-case, no trailing dot, IPv6 bracketed and compressed) name and its port.

    None when it is not a well-formed host.
    """
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        literal, rest = value[1:end], value[end + 1:]
        try:
            name = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            return None
    else:
        if value.count(":") > 1:  # an IPv6 address must be bracketed in a Host header
            return None
        name, sep, port_text = value.partition(":")
        rest = sep + port_text
        if name.endswith("."):
            name = name[:-1]
        if not _NAME_RE.match(name) or ".." in name:
            return None
    if rest:
        if not rest.startswith(":") or not _PORT_RE.match(rest[1:]):
            return None
        port = int(rest[1:])
        if not 0 < port <= 65535:
            return None
    return name, port


def is_loopback_name(name: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]`` (``name`` as parse_host gives it)."""
    if name in LOOPBACK_NAMES:
        return True
    literal = name[1:-1] if name.startswith("[") else name
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def parse_allowed_hosts(entries: Iterable[str]) -> list[tuple[str, int | None]]:
    """Validate configured names (``name`` or ``name:port``); raise ConfigError on a bad one."""
    parsed = []
    for entry in entries:
        host = parse_host(entry) if entry.strip() else None
        if host is None:
            raise ConfigError(f"allowed host {entry!r} is not a host name, IP address or name:port "
                              "(no scheme, path or wildcard)")
        parsed.append(host)
    return parsed


def host_allowed(host_header: str | None, allowed: Iterable[tuple[str, int | None]]) -> bool:
    """True when the Host header names this server: loopback or an allowed (name, port)."""
    if not host_header:
        return False
    host = parse_host(host_header)
    if host is None:
        return False
    name, port = host
    if is_loopback_name(name):
        return True
    return any(name == a_name and (a_port is None or a_port == port) for a_name, a_port in allowed)


def _bind_address_entry(bind_host: str) -> list[tuple[str, int | None]]:
    """The address helm-monitor listens on, when it is one concrete IP literal.

    An IP literal in Host cannot come from DNS rebinding, and someone who binds
    192.168.1.5 will browse to http://192.168.1.5:port/.
    """
    literal = bind_host.strip("[]")
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return []
    if address.is_unspecified:
        return []
    name = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return [(name, None)]


# -- Origin -------------------------------------------------------------------

def _effective_port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else DEFAULT_PORTS.get(scheme)


def origin_allowed(origin: str, host_header: str, schemes: Iterable[str]) -> bool:
    """True when ``origin`` is ``scheme://Host`` of this request for one of ``schemes``."""
    if origin.strip().lower() == "null":
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment or parts.username:
        return False
    theirs, ours = parse_host(parts.netloc), parse_host(host_header)
    if theirs is None or ours is None or theirs[0] != ours[0]:
        return False
    return any(
        scheme == own and _effective_port(scheme, theirs[1]) == _effective_port(own, ours[1])
        for own in schemes
    )


def _request_schemes() -> set[str]:
    """The schemes this request may have come in with.

    ``request.scheme`` is https behind a TLS proxy only if gunicorn trusts that proxy
    (``forwarded_allow_ips``). A browser cannot forge X-Forwarded-Proto on a
    cross-origin request without a preflight, which the Origin check refuses, so the
    header is safe to take as a second opinion here.
    """
    schemes = {request.scheme}
    forwarded = _forwarded_proto()
    if forwarded in DEFAULT_PORTS:
        schemes.add(forwarded)
    return schemes


def _forwarded_proto() -> str:
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()


def _cross_site_fetch() -> bool:
    """A browser says another site made this request, and it is not a user's link click."""
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site not in ("cross-site", "same-site"):
        return False
    navigation = (request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
                  and request.headers.get("Sec-Fetch-Dest", "").lower() == "document"
                  and request.method in ("GET", "HEAD"))
    return not navigation


# -- token --------------------------------------------------------------------

def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def cookie_value(token: str) -> str:
    """What the login cookie holds: derived from the token, not the token."""
    return hmac.new(_utf8(token), COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(_utf8(given), _utf8(expected))


def _bearer(header: str) -> str | None:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    # WSGI hands headers over as latin-1; get the bytes the client sent back as UTF-8.
    raw = credentials.strip().encode("latin-1", "replace")
    return raw.decode("utf-8", "surrogateescape")


def _url_without_token() -> str:
    """This request's path and query, minus ``token``; always a same-origin relative URL."""
    path = quote(request.script_root + request.path, safe="/:@!$&'()*+,;=-._~")
    # "//evil.example" would be a network-path reference: an open redirect.
    path = "/" + path.lstrip("/")
    query = [(k, v) for k, v in parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
             if k != TOKEN_PARAM]
    return path + ("?" + urlencode(query) if query else "")


def _websocket_handshake() -> bool:
    """This request asks to become a WebSocket (``Upgrade: websocket``, ``Connection: upgrade``)."""
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == "websocket"


# -- answers ------------------------------------------------------------------

def _error(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _unauthorized(message: str) -> Response:
    if request.path in PAGE_PATHS and request.method in ("GET", "HEAD"):
        # Someone opened the dashboard in a browser: tell them what to do, in plain text.
        response = Response(
            f"401 Unauthorized: {message}.\n\n"
            "This helm-monitor needs its access token. Open this page once as\n"
            "    /?token=<your token>\n"
            "and the browser keeps a login cookie (the token leaves the address bar).\n",
            status=401, mimetype="text/plain",
        )
        response.headers["Cache-Control"] = "no-store"
    else:
        response = _error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="helm-monitor"'
    return response


def _is_api(path: str) -> bool:
    return path.startswith(NO_STORE_PREFIX) or path in NO_STORE_PATHS


# -- wiring -------------------------------------------------------------------

def init_app(app: Flask) -> None:
    """Install the Host, Origin and token checks and the security headers on ``app``.

    Reads ``app.config["HELM"]`` (a Config) once; raises ConfigError on a malformed
    allowed host.
    """
    cfg: Config = app.config["HELM"]
    allowed = parse_allowed_hosts(cfg.allowed_hosts) + _bind_address_entry(cfg.host)
    token = cfg.token if cfg.token and cfg.token.strip() else None
    expected_cookie = cookie_value(token) if token else None

    @app.before_request
    def check_request():
        host = request.headers.get("Host")
        if not host_allowed(host, allowed):
            return _error(403, "this Host is not allowed; add it with --allowed-host or HELM_ALLOWED_HOSTS")
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, host, _request_schemes()):
            return _error(403, "cross-origin requests are not allowed")
        if _cross_site_fetch():
            return _error(403, "cross-site requests are not allowed")
        if token is None or request.path in PUBLIC_PATHS:
            return None
        return _check_token(token, expected_cookie)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name in [h for h in response.headers.keys() if h.lower().startswith("access-control-")]:
            del response.headers[name]
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        # The stream sets its own "no-cache"; whatever a view chose is kept.
        if _is_api(request.path) and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response


def _check_token(token: str, expected_cookie: str) -> Response | None:
    """None when the request carries the token; else the 401 (or the login redirect)."""
    if TOKEN_PARAM in request.args:
        if not _same(request.args[TOKEN_PARAM], token):
            return _unauthorized("the token is wrong")
        if request.method not in ("GET", "HEAD") or _websocket_handshake():
            # Good for this request: a redirect would turn a POST into a GET, and a
            # WebSocket handshake cannot follow one.
            return None
        response = redirect(_url_without_token(), code=303)
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            TOKEN_COOKIE, expected_cookie, max_age=TOKEN_COOKIE_MAX_AGE_S, path="/",
            httponly=True, samesite="Strict",
            # Secure only costs a client that lied about https; never weakens anything.
            secure=request.is_secure or _forwarded_proto() == "https",
        )
        return response
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        given = _bearer(authorization)
        if given is None or not _same(given, token):
            return _unauthorized("the bearer token is wrong")
        return None
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie is not None and _same(cookie, expected_cookie):
        return None
    return _unauthorized("an access token is required" if cookie is None else "the login cookie is stale")
