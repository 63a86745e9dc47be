"""redis-py clients for the team mode, made in one place with the settings that matter.

redis-py 8 defaults to a 5 s socket timeout and 10 retries. A blocking ``XREAD BLOCK 5000``
under those defaults can be cut and silently retried for a minute (design/TEAM_SCALE.md 3.3),
so every client here sets its timeouts explicitly and retries nothing: each loop that uses
one (the agent's publisher, the web tier's feed) sees every error itself and reconnects with
:func:`backoff`. The feed's client waits longer than its block; a test holds that rule.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from helm_monitor.team import keys

CONNECT_TIMEOUT_S = 5.0
# Commands other than the blocking read answer within this long or the engine counts as down.
COMMAND_TIMEOUT_S = 5.0
# Connections per web worker besides its feed: snapshot, replay, transcript reads.
POOL_SIZE = 4
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


class TeamConfigError(ValueError):
    """The engine's URL or its TLS settings are unusable."""


def check_url(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise TeamConfigError(f"the engine URL must start with redis://, rediss:// or unix://, got {parts.scheme!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise TeamConfigError("the engine URL names no host")
    return url


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _options(url: str, ca_file: str | None, socket_timeout: float, name: str) -> dict:
    options = dict(socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT_S,
                   retry=Retry(NoBackoff(), 0), health_check_interval=0,
                   client_name=name)
    if urlsplit(url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        if ca_file:
            options["ssl_ca_certs"] = ca_file
    elif ca_file:
        raise TeamConfigError("a CA file is given but the engine URL is not rediss://")
    return options


def connect(url: str, *, ca_file: str | None = None, name: str = "helm") -> redis.Redis:
    """A client for ordinary commands: a small blocking pool, no retries, 5 s per command."""
    check_url(url)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=COMMAND_TIMEOUT_S,
        **_options(url, ca_file, COMMAND_TIMEOUT_S, name))
    return redis.Redis.from_pool(pool)  # owns the pool: close() closes its connections


def connect_feed(url: str, *, ca_file: str | None = None, name: str = "helm-feed",
                 block_ms: int = keys.BLOCK_MS) -> redis.Redis:
    """The client of one blocking ``XREAD``: one connection, its socket timeout above the block."""
    check_url(url)
    timeout = feed_socket_timeout(block_ms)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=1, timeout=timeout, **_options(url, ca_file, timeout, name))
    return redis.Redis.from_pool(pool)  # owns the pool: close() closes its connections


def feed_socket_timeout(block_ms: int) -> float:
    return max(keys.FEED_SOCKET_TIMEOUT_S, block_ms / 1000.0 + 10.0)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0, 1, ...): 0.5 s doubling to
    10 s, with full jitter over its upper half so that many hosts do not come back at once."""
    rng = rng or random
    ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2 ** min(attempt, 10)))
    return ceiling / 2 + rng.random() * ceiling / 2


def engine_errors() -> tuple[type[BaseException], ...]:
    """What losing the engine looks like: connection, timeout and socket errors."""
    return (redis.ConnectionError, redis.TimeoutError, OSError)
