"""Configuration of the team mode (SPEC 9): roles, the engine's URL, workers; and that the
single-host app stays exactly as it was, importing no engine client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helm_monitor.cli import build_parser, config_from_args
from helm_monitor.config import Config, ConfigError

REPO = Path(__file__).resolve().parent.parent


def _run(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "helm_monitor", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env=env)


def test_roles_read_the_engine_url_and_timings_from_the_environment(tmp_path):
    env = {"HOME": str(tmp_path), "HELM_REDIS_URL": "rediss://h-laptop:pw@hub:6380/0", "HELM_ROLE": "agent",
           "HELM_TEAM_HEARTBEAT_S": "0.2", "HELM_TEAM_OFFLINE_S": "0.6", "HELM_HOST_NAME": "laptop"}
    cfg = Config.from_env(env).validate()
    assert (cfg.role, cfg.redis_url, cfg.team_heartbeat_s, cfg.team_offline_s) == \
        ("agent", "rediss://h-laptop:pw@hub:6380/0", 0.2, 0.6)
    assert cfg.team and not Config.from_env({"HOME": str(tmp_path)}).validate().team


def test_the_web_tier_may_run_several_workers_a_host_dashboard_may_not(tmp_path):
    args = build_parser("web").parse_args(["--redis-url", "redis://127.0.0.1:6379/0", "--workers", "4"])
    args.role = "web"
    assert config_from_args(args, {"HOME": str(tmp_path)}).workers == 4
    args = build_parser().parse_args(["--workers", "2"])
    with pytest.raises(ConfigError, match="only the web tier runs several workers"):
        config_from_args(args, {"HOME": str(tmp_path)})


@pytest.mark.parametrize("url, message", [
    (None, "needs the shared engine's URL"),
    ("http://hub:6379", "must start with redis://"),
])
def test_a_team_role_without_a_usable_engine_url_is_refused(tmp_path, url, message):
    cfg = Config.from_env({"HOME": str(tmp_path)})
    cfg.role, cfg.redis_url = "web", url
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_offline_needs_at_least_two_heartbeats_of_silence(tmp_path):
    cfg = Config.from_env({"HOME": str(tmp_path), "HELM_TEAM_HEARTBEAT_S": "10", "HELM_TEAM_OFFLINE_S": "15"})
    with pytest.raises(ConfigError, match="two heartbeats"):
        cfg.validate()


def test_the_commands_refuse_a_missing_engine_in_one_line(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for role in ("agent", "web"):
        proc = _run(role, env=env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"helm-monitor: error: helm-monitor {role} needs the shared engine's URL (HELM_REDIS_URL or --redis-url)"]


def test_the_single_host_app_imports_no_engine_client(tmp_path):
    code = ("import sys; from helm_monitor.config import Config; from helm_monitor.web.app import create_app; "
            f"cfg = Config.from_env({{'HOME': {str(tmp_path)!r}}}); cfg.cache_dir = None; app = create_app(cfg); "
            "app.test_client().get('/healthz'); "
            "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'hiredis') "
            "or m.startswith('helm_monitor.team')); print(leaked); assert not leaked, leaked")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_agent_takes_its_host_name_from_its_engine_user_and_refuses_another(tmp_path):
    env = {"HOME": str(tmp_path), "HELM_ROLE": "agent", "HELM_REDIS_URL": "redis://h-ci-runner-7:pw@hub:6379/0"}
    assert Config.from_env(env).validate().host_name == "ci-runner-7"
    with pytest.raises(ConfigError, match="may publish host 'ci-runner-7' only, but the host name is 'laptop'"):
        Config.from_env({**env, "HELM_HOST_NAME": "laptop"}).validate()
    args = build_parser("agent").parse_args(["--host-name", "ci-runner-7"])
    args.role = "agent"
    assert config_from_args(args, env).host_name == "ci-runner-7"
    # Another user (an admin, a test's default user) names no host: the host name stands.
    plain = {**env, "HELM_REDIS_URL": "redis://127.0.0.1:6379/0", "HELM_HOST_NAME": "laptop"}
    assert Config.from_env(plain).validate().host_name == "laptop"
