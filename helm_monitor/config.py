"""Configuration: defaults, environment variables and their validation.

Every option of SPEC section 2 has one name here. The command line
(``helm_monitor.cli``) and the WSGI entry (``helm_monitor.wsgi``) both build a
:class:`Config`; the Flask app reads it from ``app.config["HELM"]``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
from pathlib import Path

from helm_monitor import sources

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5003
DEFAULT_DEBOUNCE_MS = 500
DEFAULT_KEEPALIVE_S = 30.0
DEFAULT_MAX_CLIENTS = 1000
# Events a stream client may fall behind before it is sent a refresh instead.
DEFAULT_CLIENT_QUEUE = 256
# What the process is (SPEC 9): "local" (this host's dashboard), "agent" (the same, also
# publishing to the shared engine) or "web" (the team's dashboard, reading the engine only).
ROLES = ("local", "agent", "web")
DEFAULT_TEAM_HEARTBEAT_S = 15.0
DEFAULT_TEAM_OFFLINE_S = 45.0


class ConfigError(ValueError):
    """A configuration value is missing, malformed or unsafe."""


def default_claude_dir(environ: dict[str, str] | None = None) -> Path:
    """`$CLAUDE_CONFIG_DIR` if set, else `~/.claude` (Claude Code's own rule)."""
    return Path(sources.default_root("claude-code", environ))


def default_host_name() -> str:
    """The machine's host name, lower-cased, `[a-z0-9-]` only (SPEC 2)."""
    return clean_host_name(socket.gethostname().split(".")[0]) or "localhost"


def clean_host_name(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.strip().lower()).strip("-")[:63]


# Per-source data directory overrides (SPEC 8): source -> (environment variable, option).
SOURCE_DIR_ENV = {"claude-code": "HELM_CLAUDE_DIR", "codex": "HELM_CODEX_DIR", "opencode": "HELM_OPENCODE_DB",
                  "gemini": "HELM_GEMINI_DIR"}


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
    # The agents read (SPEC 8); all of them by default: one whose data directory does not
    # exist costs a stat every few seconds and shows up when it is created.
    sources: list[str] = dataclasses.field(default_factory=lambda: list(sources.NAMES))
    # Data directories (OpenCode: its database file) of the other agents; None: the agent's own rule.
    codex_dir: Path | None = None
    opencode_db: Path | None = None
    gemini_dir: Path | None = None
    host_name: str = dataclasses.field(default_factory=default_host_name)
    # Processes the first scan of a big history is shared out over; None: one per core, 1: none.
    scan_workers: int | None = None
    # Full-text search (SPEC 11): an indexer process keeps search.db in the cache directory.
    search: bool = True
    role: str = "local"
    # The shared engine (team mode): redis:// or rediss:// with the user's name and password.
    redis_url: str | None = None
    # The CA bundle a rediss:// engine's certificate is checked against (else the system's).
    redis_ca_file: str | None = None
    # Heartbeat period of an agent, and the silence after which a host is offline (3 heartbeats).
    team_heartbeat_s: float = DEFAULT_TEAM_HEARTBEAT_S
    team_offline_s: float = DEFAULT_TEAM_OFFLINE_S
    # host_name came from the environment or the command line (not the machine's name).
    host_name_given: bool = dataclasses.field(default=False, repr=False, compare=False)
    # gunicorn workers: 1 for a host's own dashboard (one watcher); the web tier may run several.
    workers: int = 1
    # The environment the agents' own rules are read from (CODEX_HOME, XDG_DATA_HOME, ...).
    environ: dict[str, str] | None = dataclasses.field(default=None, repr=False, compare=False)

    def source_options(self) -> dict[str, dict]:
        """Each source read: the keyword arguments of ``helm_monitor.sources.build``."""
        env = os.environ if self.environ is None else self.environ
        out: dict[str, dict] = {}
        for name in self.sources:
            if name == "claude-code":
                out[name] = {"root": str(self.claude_dir)}
            elif name == "opencode" and self.opencode_db is not None:
                db = self.opencode_db
                out[name] = {"root": str(db.parent), "db_path": str(db)}
            else:
                override = {"codex": self.codex_dir, "gemini": self.gemini_dir}.get(name)
                out[name] = {"root": str(override) if override is not None else sources.default_root(name, env)}
        return out

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        cfg = cls(claude_dir=default_claude_dir(env), cache_dir=default_cache_dir(env), environ=dict(env))
        if env.get("HELM_CLAUDE_DIR"):
            cfg.claude_dir = Path(env["HELM_CLAUDE_DIR"]).expanduser()
        if env.get("HELM_CODEX_DIR"):
            cfg.codex_dir = Path(env["HELM_CODEX_DIR"]).expanduser()
        if env.get("HELM_OPENCODE_DB"):
            cfg.opencode_db = Path(env["HELM_OPENCODE_DB"]).expanduser()
        if env.get("HELM_GEMINI_DIR"):
            cfg.gemini_dir = Path(env["HELM_GEMINI_DIR"]).expanduser()
        if env.get("HELM_SOURCES"):
            cfg.sources = parse_sources(env["HELM_SOURCES"])
        if env.get("HELM_HOST_NAME"):
            cfg.host_name = env["HELM_HOST_NAME"]
            cfg.host_name_given = True
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
        if env.get("HELM_SEARCH", "").lower() in ("0", "false", "no", "off"):
            cfg.search = False
        if env.get("HELM_SCAN_WORKERS"):
            cfg.scan_workers = _int("HELM_SCAN_WORKERS", env["HELM_SCAN_WORKERS"])
        if env.get("HELM_REDIS_URL"):
            cfg.redis_url = env["HELM_REDIS_URL"]
        if env.get("HELM_REDIS_CA_FILE"):
            cfg.redis_ca_file = env["HELM_REDIS_CA_FILE"]
        if env.get("HELM_ROLE"):
            cfg.role = env["HELM_ROLE"]
        if env.get("HELM_TEAM_HEARTBEAT_S"):
            cfg.team_heartbeat_s = _float("HELM_TEAM_HEARTBEAT_S", env["HELM_TEAM_HEARTBEAT_S"])
        if env.get("HELM_TEAM_OFFLINE_S"):
            cfg.team_offline_s = _float("HELM_TEAM_OFFLINE_S", env["HELM_TEAM_OFFLINE_S"])
        if env.get("HELM_WORKERS"):
            cfg.workers = _int("HELM_WORKERS", env["HELM_WORKERS"])
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
        if self.scan_workers is not None and not 1 <= self.scan_workers <= 64:
            raise ConfigError(f"scan workers must be 1-64, got {self.scan_workers}")
        if self.client_queue < 2:
            raise ConfigError("client queue must hold at least 2 events")
        if self.watcher not in ("auto", "inotify", "polling"):
            raise ConfigError(f"watcher must be auto, inotify or polling, got {self.watcher!r}")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the token is empty")
        unknown = [s for s in self.sources if s not in sources.NAMES]
        if unknown or not self.sources:
            raise ConfigError(f"sources must be some of {', '.join(sources.NAMES)}, got {', '.join(self.sources) or 'none'}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.host_name or ""):
            raise ConfigError(f"host name must be 1-63 of a-z, 0-9 and '-', got {self.host_name!r}")
        self._validate_team()
        return self

    @property
    def team(self) -> bool:
        """Talks to the shared engine (``agent`` or ``web``)."""
        return self.role != "local"

    def _validate_team(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers must be 1-64, got {self.workers}")
        if self.workers > 1 and self.role != "web":
            raise ConfigError("only the web tier runs several workers: a host's dashboard watches its files in one")
        if self.team and not self.redis_url:
            raise ConfigError(f"helm-monitor {self.role} needs the shared engine's URL (HELM_REDIS_URL or --redis-url)")
        if self.redis_url:
            scheme = self.redis_url.split("://", 1)[0] if "://" in self.redis_url else ""
            if scheme not in ("redis", "rediss", "unix"):
                raise ConfigError("the engine URL must start with redis://, rediss:// or unix://")
        if self.role == "agent":
            self._host_from_engine_user()
        if self.redis_ca_file and not Path(self.redis_ca_file).is_file():
            raise ConfigError(f"the engine's CA file {self.redis_ca_file} does not exist")
        if not 0.05 <= self.team_heartbeat_s <= 3600:
            raise ConfigError(f"heartbeat must be 0.05-3600 s, got {self.team_heartbeat_s}")
        if self.team_offline_s < 2 * self.team_heartbeat_s:
            raise ConfigError("a host must be silent for at least two heartbeats before it counts as offline")


    def _host_from_engine_user(self) -> None:
        """An agent publishes as the engine user ``h-NAME``, which may write host NAME's keys only:
        without a host name of its own it is NAME; with another one every write would be refused."""
        from urllib.parse import unquote, urlsplit
        user = unquote(urlsplit(self.redis_url).username or "")
        if not user.startswith("h-"):
            return
        name = user[2:]
        if not self.host_name_given:
            self.host_name = name
        elif self.host_name != name:
            raise ConfigError(f"the engine user {user} may publish host {name!r} only, but the host name is "
                              f"{self.host_name!r}: drop HELM_HOST_NAME / --host-name or make them agree")


def parse_sources(value: str) -> list[str]:
    """``claude-code,codex``: the sources to read, in that order, each once (``claude`` means claude-code)."""
    out = []
    for name in value.split(","):
        name = name.strip().lower()
        name = "claude-code" if name == "claude" else name
        if name and name not in out:
            out.append(name)
    return out


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


# -- bind (here, not in web.security: the command checks it before it imports Flask) --

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback_bind(host: str) -> bool:
    """True when listening on ``host`` is reachable only from this machine."""
    host = host.strip()
    if host.startswith("unix:"):
        return True
    name = host.lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_bind(host: str, token: str | None, behind_auth_proxy: bool) -> None:
    """Refuse (ConfigError) to listen beyond loopback with nobody checking who connects."""
    if is_loopback_bind(host) or (token and token.strip()) or behind_auth_proxy:
        return
    raise ConfigError(
        f"refusing to listen on {host or 'every address'!r}: it is not a loopback address and no "
        "access token is set, so anyone who can reach it could read every transcript. "
        "Set a token (--token-file, HELM_TOKEN_FILE, --token or HELM_TOKEN), bind 127.0.0.1 "
        "behind a reverse proxy, or pass --behind-auth-proxy if a proxy that authenticates "
        "users stands in front."
    )
