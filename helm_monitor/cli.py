"""``helm-monitor``: serve the dashboard with gunicorn and gevent.

``helm-monitor [options]``        this host's dashboard (one worker, watching the agents' files)
``helm-monitor agent [options]``  the same, also publishing every change to the team's engine
``helm-monitor web [options]``    the team's dashboard: every host's sessions, read from the engine
``helm-monitor hosts add|remove|list NAME``  (admin) one engine user per host (team/admin.py)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from helm_monitor import __version__
from helm_monitor.config import Config, ConfigError, read_token_file

LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


ROLE_COMMANDS = ("agent", "web")


def build_parser(role: str = "local") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="helm-monitor" if role == "local" else f"helm-monitor {role}",
        epilog="Team mode (many hosts, one dashboard): 'helm-monitor agent' on each host, 'helm-monitor web' "
               "for the dashboard, 'helm-monitor hosts add NAME' to provision a host.",
        description="Watch coding agents' sessions (Claude Code, Codex, OpenCode, Gemini CLI) live in a browser. "
                    "Read-only: never writes into an agent's data. Every option also has an environment variable "
                    "(shown in brackets).",
    )
    p.add_argument("--claude-dir", type=Path, help="Claude data directory holding projects/ and sessions/ "
                   "[HELM_CLAUDE_DIR; default $CLAUDE_CONFIG_DIR or ~/.claude]")
    p.add_argument("--sources", help="agents to read, comma-separated: claude-code, codex, opencode, gemini "
                   "[HELM_SOURCES; default all: one that is not installed costs nothing]")
    p.add_argument("--codex-dir", type=Path, help="Codex home holding sessions/ [HELM_CODEX_DIR; default "
                   "$CODEX_HOME or ~/.codex]")
    p.add_argument("--opencode-db", type=Path, help="OpenCode database, read-only [HELM_OPENCODE_DB; default "
                   "$OPENCODE_DB or $XDG_DATA_HOME/opencode/opencode.db]")
    p.add_argument("--gemini-dir", type=Path, help="Gemini CLI directory holding tmp/ [HELM_GEMINI_DIR; default "
                   "$GEMINI_CLI_HOME/.gemini or ~/.gemini]")
    p.add_argument("--host-name", help="this host's name on the dashboard and in session keys "
                   "[HELM_HOST_NAME; default the machine's host name]")
    p.add_argument("--host", help="address to listen on [HOST; default 127.0.0.1]")
    p.add_argument("--port", type=int, help="port to listen on [PORT; default 5003]")
    p.add_argument("--debounce-ms", type=int, help="coalescing window per session in ms [HELM_DEBOUNCE_MS; default 500]")
    p.add_argument("--keepalive-s", type=float, help="seconds between keepalive events on an idle stream "
                   "[HELM_KEEPALIVE_S; default 30]")
    p.add_argument("--token", help="access token required by every route but /healthz [HELM_TOKEN]. "
                   "Prefer --token-file: a command line is visible to other users")
    p.add_argument("--token-file", help="read the access token from this file [HELM_TOKEN_FILE; systemd: "
                   "LoadCredential=helm-token:...]")
    p.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                   help="extra Host name to accept besides loopback names, e.g. the name nginx serves; repeatable "
                        "[HELM_ALLOWED_HOSTS, comma-separated]")
    p.add_argument("--max-clients", type=int, help="most stream clients at once [HELM_MAX_CLIENTS; default 1000]")
    p.add_argument("--behind-auth-proxy", action="store_true", default=None,
                   help="an authenticating proxy stands in front: allow a non-loopback bind without a token "
                        "[HELM_BEHIND_AUTH_PROXY=1]")
    p.add_argument("--watcher", choices=["auto", "inotify", "polling"],
                   help="how to watch files [HELM_WATCHER; default auto: inotify, falling back to polling]")
    p.add_argument("--cache-dir", help="where to keep parse state between restarts; '' disables "
                   "[HELM_CACHE_DIR; default $CACHE_DIRECTORY or ~/.cache/helm-monitor]")
    p.add_argument("--scan-workers", type=int, help="processes the first scan of a big history is shared out over; "
                   "1 reads it in the server alone [HELM_SCAN_WORKERS; default one per core]")
    p.add_argument("--redis-url", help="the team's shared engine, redis:// or rediss://user:password@host:port/0 "
                   "(agent and web) [HELM_REDIS_URL]")
    p.add_argument("--redis-ca-file", help="CA bundle for a rediss:// engine [HELM_REDIS_CA_FILE]")
    p.add_argument("--workers", type=int, help="gunicorn workers (web only; e.g. 4) [HELM_WORKERS; default 1]")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[HELM_LOG_LEVEL; default info]")
    p.add_argument("--print-static-dir", action="store_true",
                   help="print the directory of the page's static files (for nginx) and exit")
    p.add_argument("--version", action="version", version=f"helm-monitor {__version__}")
    return p


def config_from_args(args: argparse.Namespace, environ=None) -> Config:
    cfg = Config.from_env(environ)
    if args.claude_dir is not None:
        cfg.claude_dir = args.claude_dir.expanduser()
    if args.sources is not None:
        from helm_monitor.config import parse_sources
        cfg.sources = parse_sources(args.sources)
    for name in ("codex_dir", "opencode_db", "gemini_dir"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name).expanduser())
    for name in ("host", "port", "debounce_ms", "keepalive_s", "max_clients", "watcher", "log_level", "host_name",
                 "scan_workers", "redis_url", "redis_ca_file", "workers"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.host_name is not None:
        cfg.host_name_given = True
    if args.token_file:
        cfg.token = read_token_file(args.token_file)
    if args.token is not None:
        cfg.token = args.token
    if args.allowed_host:
        cfg.allowed_hosts = cfg.allowed_hosts + [h for h in args.allowed_host if h]
    if args.behind_auth_proxy:
        cfg.behind_auth_proxy = True
    if args.cache_dir is not None:
        cfg.cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else None
    if getattr(args, "role", "local") != "local":
        cfg.role = args.role
    return cfg.validate()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    role = "local"
    if argv and argv[0] == "hosts":
        from helm_monitor.team.admin import main as hosts_main
        return hosts_main(argv[1:])
    if argv and argv[0] in ROLE_COMMANDS:
        role = argv.pop(0)
    args = build_parser(role).parse_args(argv)
    args.role = role
    if args.print_static_dir:
        from helm_monitor.web.app import static_dir
        print(static_dir())
        return 0
    try:
        cfg = config_from_args(args)
        from helm_monitor.config import check_bind
        check_bind(cfg.host, cfg.token, cfg.behind_auth_proxy)
    except ConfigError as exc:
        print(f"helm-monitor: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    if cfg.role != "web":
        # A big history's first scan starts now, while gunicorn and the worker start (helm_monitor.live.scan).
        from helm_monitor.server.runtime import start_early_scan_for
        start_early_scan_for(cfg)
    from helm_monitor.server.app import serve
    return serve(cfg)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
