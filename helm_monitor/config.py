"""Configuration: defaults, environment variables and their validation.

Every option of SPEC section 2 has one name here. The command line
(``helm_monitor.cli``) and the WSGI entry (``helm_monitor.wsgi``) both build a
:class:`Config`; the Flask app reads it from ``app.config["HELM"]``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5003
DEFAULT_DEBOUNCE_MS = 500
DEFAULT_KEEPALIVE_S = 30.0
DEFAULT_MAX_CLIENTS = 1000
# Events a stream client may fall behind before it is sent a refresh instead.
DEFAULT_CLIENT_QUEUE = 256


class ConfigError(ValueError):
    """A configuration value is missing, malformed or unsafe."""


def default_claude_dir(environ: dict[str, str] | None = None) -> Path:
    """`$CLAUDE_CONFIG_DIR` if set, else `~/.claude` (Claude Code's own rule)."""
    env = os.environ if environ is None else environ
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]).expanduser()
    return Path("~/.claude").expanduser()


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CACHE_DIRECTORY"):  # systemd's CacheDirectory=
        return Path(env["CACHE_DIRECTORY"].split(":")[0])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "helm-monitor"
    return Path("~/.cache/helm-monitor").expanduser()


@dataclasses.dataclass
class Config:
    claude_dir: Path = dataclasses.field(default_factory=default_claude_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    token: str | None = None
    allowed_hosts: list[str] = dataclasses.field(default_factory=list)
    max_clients: int = DEFAULT_MAX_CLIENTS
    client_queue: int = DEFAULT_CLIENT_QUEUE
    # "auto" (inotify, falling back to polling), "inotify" or "polling"
    watcher: str = "auto"
    # An authenticating proxy stands in front: allows a non-loopback bind without a token.
    behind_auth_proxy: bool = False
    # Persistent per-file parse state, outside the Claude data directory; None disables it.
    cache_dir: Path | None = dataclasses.field(default_factory=default_cache_dir)
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        cfg = cls(claude_dir=default_claude_dir(env), cache_dir=default_cache_dir(env))
        if env.get("HELM_CLAUDE_DIR"):
            cfg.claude_dir = Path(env["HELM_CLAUDE_DIR"]).expanduser()
        if env.get("HOST"):
            cfg.host = env["HOST"]
        if env.get("PORT"):
            cfg.port = _int("PORT", env["PORT"])
        if env.get("HELM_DEBOUNCE_MS"):
            cfg.debounce_ms = _int("HELM_DEBOUNCE_MS", env["HELM_DEBOUNCE_MS"])
        if env.get("HELM_KEEPALIVE_S"):
            cfg.keepalive_s = _float("HELM_KEEPALIVE_S", env["HELM_KEEPALIVE_S"])
        if env.get("HELM_TOKEN_FILE"):
            cfg.token = read_token_file(env["HELM_TOKEN_FILE"])
        if env.get("HELM_TOKEN"):
            cfg.token = env["HELM_TOKEN"]
        if env.get("CREDENTIALS_DIRECTORY") and not cfg.token:
            # systemd LoadCredential=helm-token:/path
            cred = Path(env["CREDENTIALS_DIRECTORY"]) / "helm-token"
            if cred.exists():
                cfg.token = read_token_file(str(cred))
        if env.get("HELM_ALLOWED_HOSTS"):
            cfg.allowed_hosts = [h.strip() for h in env["HELM_ALLOWED_HOSTS"].split(",") if h.strip()]
        if env.get("HELM_MAX_CLIENTS"):
            cfg.max_clients = _int("HELM_MAX_CLIENTS", env["HELM_MAX_CLIENTS"])
        if env.get("HELM_CLIENT_QUEUE"):
            cfg.client_queue = _int("HELM_CLIENT_QUEUE", env["HELM_CLIENT_QUEUE"])
        if env.get("HELM_WATCHER"):
            cfg.watcher = env["HELM_WATCHER"]
        if env.get("HELM_BEHIND_AUTH_PROXY", "").lower() in ("1", "true", "yes"):
            cfg.behind_auth_proxy = True
        if "HELM_CACHE_DIR" in env:
            cfg.cache_dir = Path(env["HELM_CACHE_DIR"]).expanduser() if env["HELM_CACHE_DIR"] else None
        if env.get("HELM_LOG_LEVEL"):
            cfg.log_level = env["HELM_LOG_LEVEL"]
        return cfg

    def validate(self) -> "Config":
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be 1-65535, got {self.port}")
        if not 10 <= self.debounce_ms <= 60_000:
            raise ConfigError(f"debounce must be 10-60000 ms, got {self.debounce_ms}")
        if not 0.5 <= self.keepalive_s <= 3600:
            raise ConfigError(f"keepalive must be 0.5-3600 s, got {self.keepalive_s}")
        if self.max_clients < 1:
            raise ConfigError("max clients must be at least 1")
        if self.client_queue < 2:
            raise ConfigError("client queue must hold at least 2 events")
        if self.watcher not in ("auto", "inotify", "polling"):
            raise ConfigError(f"watcher must be auto, inotify or polling, got {self.watcher!r}")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the token is empty")
        return self


def read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
