"""``helm-monitor hosts``: the team engine's users, one per host plus the web tier's.

Each host authenticates as its own engine user ``h-<name>``. That user can write only its
own keys, so a leaked or hostile host token can do no harm beyond its own keys
(design/TEAM_SCALE.md 5.6, 6.11). The web tier's user reads everything and writes only the
epoch (``HSETNX hm:meta``). The ACL rules are built here from keys.HOST_COMMANDS and
keys.WEB_COMMANDS alone, so what a role may run and what it runs cannot drift apart.

Run as an admin user of the engine (``--admin-url`` / HELM_REDIS_ADMIN_URL):

``hosts add NAME [--rotate]``   create (or re-key) a host's user; print its HELM_REDIS_URL once
``hosts remove NAME``           delete the user, drop its connections, delete its keys
``hosts list``                  every host: user, sessions, stream length, age of its last entry
``hosts web-user [NAME]``       create (or re-key) the web tier's read-only user; print its URL

The one line a host or the web tier needs (``HELM_REDIS_URL=...``) is all that goes to stdout,
so ``helm-monitor hosts add laptop > laptop.env`` works. Everything else goes to stderr. The
password is not stored anywhere but in that line: the engine gets only its SHA-256 (``#``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
from urllib.parse import quote, urlsplit, urlunsplit

from helm_monitor.team import keys

PROG = "helm-monitor hosts"
DEFAULT_WEB_USER = "web"
PASSWORD_BYTES = 32  # 64 hex characters: 256 bits, as ACL GENPASS
SCAN_COUNT = 1000
LOOPBACK = ("127.0.0.1", "::1", "localhost")
WEB_KEYS = "%R~hm:*"  # read every key of the team mode, write none (but the selector's)


class AdminError(Exception):
    """What went wrong, in one line for the admin; exit status 2."""


# -- the ACL rules -------------------------------------------------------------------

def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def host_rules(host: str, password: str) -> list[str]:
    """``ACL SETUSER h-<host>`` arguments: its own keys, no channels, HOST_COMMANDS only."""
    return ["reset", "on", "#" + password_hash(password), "resetkeys", "~" + keys.host_keys(host),
            "resetchannels", "-@all", *("+" + c for c in keys.HOST_COMMANDS)]


def web_rules(password: str) -> list[str]:
    """The web tier: read every ``hm:*`` key (``%R~``), WEB_COMMANDS only, and a selector that
    allows the one write it makes, ``HSETNX hm:meta`` (the epoch, design 6.4)."""
    return ["reset", "on", "#" + password_hash(password), "resetkeys", WEB_KEYS,
            "resetchannels", "-@all", *("+" + c for c in keys.WEB_COMMANDS),
            f"(~{keys.META} resetchannels -@all +hsetnx)"]


def new_password() -> str:
    return secrets.token_hex(PASSWORD_BYTES)


# -- URLs ----------------------------------------------------------------------------

def user_url(public_url: str, user: str, password: str) -> str:
    """``public_url`` (scheme, host, port, database) with ``user:password`` in it."""
    parts = urlsplit(public_url)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    if parts.scheme == "unix":
        return urlunsplit(("unix", auth, parts.path, parts.query or "db=0", ""))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = auth + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path if parts.path not in ("", "/") else "/0", "", ""))


def check_public_url(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise AdminError(f"--public-url must start with redis://, rediss:// or unix://, got {url!r}")
    try:
        parts.port
    except ValueError:
        raise AdminError(f"--public-url has a bad port: {url!r}") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise AdminError(f"--public-url names no host: {url!r}")
    return url


def loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "unix" or (parts.hostname or "") in LOOPBACK


# -- the engine ----------------------------------------------------------------------

def key_rules(r, user: str) -> list[str] | None:
    """The key patterns of ``user``; None if there is no such user."""
    found = r.acl_getuser(user)
    return None if found is None else list(found.get("keys") or [])


def save_acl(r, user: str) -> None:
    """ACL SAVE into the engine's aclfile. Without one the change still holds, until the engine
    restarts: say so, and how to keep it, but do not fail (the user is made)."""
    import redis

    try:
        r.execute_command("ACL", "SAVE")
    except redis.ResponseError as exc:
        if "not configured to use an ACL file" not in str(exc):
            raise
        warn(f"warning: the engine has no aclfile: the change to {user} is lost when it restarts, unless "
             "you run CONFIG REWRITE (it needs a config file); better, set aclfile (docs/team/redis.conf)")


def kill_connections(r, user: str) -> int:
    """Drop every connection authenticated as ``user``: a new password or a deleted user does
    not end the connections the old one opened (Redis 7.0 keeps them after SETUSER)."""
    import redis

    try:
        return int(r.execute_command("CLIENT", "KILL", "USER", user) or 0)
    except redis.ResponseError as exc:
        if "No such user" in str(exc):
            return 0
        raise


def host_key_names(r, host: str) -> list[bytes]:
    return list(r.scan_iter(match=keys.host_keys(host), count=SCAN_COUNT))


def make_user(r, user: str, rules, *, keys_pattern: str, rotate: bool, what: str) -> str:
    """Create ``user`` with ``rules(password)``, or give it a new password (``rotate``); the
    password. A user of the same name that is not of this kind (the admin, say) is left alone."""
    existing = key_rules(r, user)
    if existing is not None and not rotate:
        raise AdminError(f"{what} already exists (user {user}); --rotate gives it a new password")
    if existing is not None and existing != [keys_pattern]:
        raise AdminError(f"user {user} exists but is not {what}'s (its keys: {' '.join(existing) or 'none'}): "
                         "left as it is")
    password = new_password()
    r.execute_command("ACL", "SETUSER", user, *rules(password))
    if existing is not None:
        dropped = kill_connections(r, user)
        warn(f"{user}: new password; {dropped} connection(s) with the old one dropped")
    save_acl(r, user)
    return password


def add_host(r, host: str, *, rotate: bool) -> str:
    return make_user(r, keys.user_of(host), lambda password: host_rules(host, password),
                     keys_pattern="~" + keys.host_keys(host), rotate=rotate, what=f"host {host}")


def add_web_user(r, name: str, *, rotate: bool) -> str:
    return make_user(r, name, web_rules, keys_pattern=WEB_KEYS, rotate=rotate, what=f"web user {name}")


def remove_host(r, host: str) -> tuple[bool, int]:
    """Delete the user first (its connections close with it, and nothing can write the keys
    again), then every key of the host. (user existed, keys deleted)."""
    user = keys.user_of(host)
    had_user = key_rules(r, user) is not None
    if had_user:
        kill_connections(r, user)  # DELUSER closes them too on Redis 7; this on any engine
        r.execute_command("ACL", "DELUSER", user)
    deleted = 0
    for _ in range(3):  # SCAN may miss keys written while it ran; with the user gone, none are
        batch = host_key_names(r, host)
        if not batch:
            break
        for i in range(0, len(batch), SCAN_COUNT):
            deleted += r.unlink(*batch[i:i + SCAN_COUNT])
    if not had_user and not deleted:
        raise AdminError(f"no host {host}: no user {user} and no keys {keys.host_keys(host)}")
    if had_user:
        save_acl(r, user)
    return had_user, deleted


def host_names(r) -> tuple[set[str], set[str]]:
    """(hosts with a user, hosts with keys)."""
    users = set()
    for name in r.execute_command("ACL", "USERS"):
        name = name.decode() if isinstance(name, bytes) else name
        if name.startswith("h-") and keys.valid_host(name[2:]):
            users.add(name[2:])
    with_keys = set()
    for key in r.scan_iter(match="hm:h:*", count=SCAN_COUNT):
        parts = key.decode("utf-8", "replace").split(":")
        if len(parts) >= 4 and keys.valid_host(parts[2]):
            with_keys.add(parts[2])
    return users, with_keys


def list_hosts(r) -> list[dict]:
    users, with_keys = host_names(r)
    now_s, now_us = r.time()
    now_ms = now_s * 1000 + now_us // 1000
    rows = []
    for host in sorted(users | with_keys):
        last = r.xrevrange(keys.stream_key(host), count=1) if host in with_keys else []
        pos = keys.parse_id(last[0][0]) if last else None
        rows.append({"host": host, "user": host in users,
                     "sessions": r.hlen(keys.snapshot_key(host)) if host in with_keys else 0,
                     "entries": r.xlen(keys.stream_key(host)) if last else 0,
                     "last_s": max(0.0, (now_ms - pos[0]) / 1000) if pos else None})
    return rows


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def format_rows(rows: list[dict]) -> str:
    table = [("HOST", "USER", "SESSIONS", "ENTRIES", "LAST ENTRY")]
    table += [(row["host"], f"h-{row['host']}" if row["user"] else "(none)", str(row["sessions"]),
               str(row["entries"]), format_age(row["last_s"])) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


# -- the command ---------------------------------------------------------------------

def warn(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def add_engine_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The engine options, before or after the action. After it they default to nothing, so
    they never overwrite what was given before it (argparse copies a subparser's defaults)."""
    def default(var: str):
        return os.environ.get(var) if defaults else argparse.SUPPRESS

    p.add_argument("--admin-url", default=default("HELM_REDIS_ADMIN_URL"),
                   help="an admin user's URL of the engine, redis[s]://admin:PASS@host:port/0 [HELM_REDIS_ADMIN_URL]")
    p.add_argument("--public-url", default=default("HELM_REDIS_PUBLIC_URL"),
                   help="how hosts reach the engine, e.g. rediss://hub.example:6380/0, put into the printed URL "
                        "[HELM_REDIS_PUBLIC_URL; default: the admin URL's host and port]")
    p.add_argument("--redis-ca-file", default=default("HELM_REDIS_CA_FILE"),
                   help="CA bundle of a rediss:// engine [HELM_REDIS_CA_FILE]")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Manage the team engine's users: one per host, and the "
                                "web tier's. Only the URL a host needs goes to stdout.")
    add_engine_options(p, defaults=True)
    sub = p.add_subparsers(dest="action", required=True, metavar="add|remove|list|web-user")
    add = sub.add_parser("add", help="create a host's user and print its HELM_REDIS_URL once")
    add.add_argument("name", help="the host's name: 1-63 of a-z, 0-9 and '-' (its HELM_HOST_NAME)")
    add.add_argument("--rotate", action="store_true", help="the host exists: give it a new password")
    remove = sub.add_parser("remove", help="delete a host's user, drop its connections, delete its keys")
    remove.add_argument("name")
    listing = sub.add_parser("list", help="every host, its keys and the age of its last entry")
    web = sub.add_parser("web-user", help="create the web tier's read-only user and print its URL once")
    web.add_argument("name", nargs="?", default=DEFAULT_WEB_USER, help=f"[default {DEFAULT_WEB_USER}]")
    web.add_argument("--rotate", action="store_true", help="the user exists: give it a new password")
    for action in (add, remove, listing, web):
        add_engine_options(action, defaults=False)
    return p


def check_args(args: argparse.Namespace) -> None:
    if not args.admin_url:
        raise AdminError("give an admin user's URL: --admin-url or HELM_REDIS_ADMIN_URL")
    if args.action in ("add", "remove") and not keys.valid_host(args.name):
        raise AdminError(f"bad host name {args.name!r}: 1-63 of a-z, 0-9 and '-', starting with a letter or digit")
    if args.action == "web-user" and (not keys.valid_host(args.name) or args.name.startswith("h-")
                                      or args.name == "default"):
        raise AdminError(f"bad user name {args.name!r}: 1-63 of a-z, 0-9 and '-', not default, not h-...")
    args.public_url = check_public_url(args.public_url or args.admin_url)


def run(args: argparse.Namespace, r) -> None:
    if args.action == "add":
        password = add_host(r, args.name, rotate=args.rotate)
        print(f"HELM_REDIS_URL={user_url(args.public_url, keys.user_of(args.name), password)}", flush=True)
        warn(f"host {args.name}: put that line and HELM_HOST_NAME={args.name} in the agent's environment file"
             + ("; it is not shown again" if not args.rotate else ""))
    elif args.action == "web-user":
        password = add_web_user(r, args.name, rotate=args.rotate)
        print(f"HELM_REDIS_URL={user_url(args.public_url, args.name, password)}", flush=True)
        warn(f"user {args.name}: put that line in the web tier's environment file; it is not shown again")
    elif args.action == "remove":
        had_user, deleted = remove_host(r, args.name)
        warn(f"host {args.name}: " + ("user deleted, " if had_user else "") + f"{deleted} key(s) deleted")
        return
    else:
        rows = list_hosts(r)
        print(format_rows(rows) if rows else "no hosts")
        return
    if args.public_url.startswith("rediss://") and args.redis_ca_file:
        warn("the engine's certificate is checked against a CA file: give the host HELM_REDIS_CA_FILE too")
    elif loopback(args.public_url):
        warn("the URL names this machine (loopback): hosts elsewhere need --public-url")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        from helm_monitor.team import client  # imports redis: only once the arguments are fine

        r = client.connect(args.admin_url, ca_file=args.redis_ca_file, name="helm-admin")
        try:
            run(args, r)
        finally:
            r.close()
    except Exception as exc:  # each ends in one line and status 2; anything else is a bug
        message = explain(exc, args.admin_url)
        if message is None:
            raise
        warn(f"error: {message}")
        return 2
    return 0


def explain(exc: BaseException, admin_url: str | None) -> str | None:
    """One line for each way the command can fail; None for a bug."""
    if isinstance(exc, AdminError):
        return str(exc)
    import redis

    from helm_monitor.team import client

    where = client.redacted(admin_url or "")
    if isinstance(exc, client.TeamConfigError):
        return str(exc)
    if isinstance(exc, redis.AuthenticationError):
        return f"the engine at {where} refuses the admin URL's user or password ({one_line(exc)})"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return (f"the user of {where} may not manage users ({one_line(exc)}): --admin-url must name an admin user "
                "(ACL, SCAN, UNLINK, CLIENT KILL on every key)")
    if isinstance(exc, client.engine_errors()):
        return f"cannot reach the engine at {where}: {one_line(exc)}"
    if isinstance(exc, redis.ResponseError):
        return f"the engine at {where} refused: {one_line(exc)}"
    return None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
