"""Configuration of the sources read, their directories and this host's name (SPEC 2, 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helm_monitor.cli import build_parser, config_from_args
from helm_monitor.config import Config, ConfigError, clean_host_name, parse_sources


def test_every_source_is_read_by_default_each_from_its_agents_own_place(tmp_path):
    env = {"HOME": str(tmp_path), "CODEX_HOME": str(tmp_path / "cx"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "GEMINI_CLI_HOME": str(tmp_path / "g"), "CLAUDE_CONFIG_DIR": str(tmp_path / "cl")}
    cfg = Config.from_env(env).validate()
    assert cfg.sources == ["claude-code", "codex", "opencode", "gemini"]
    opts = cfg.source_options()
    assert opts["claude-code"]["root"] == str(tmp_path / "cl")
    assert opts["codex"]["root"] == str(tmp_path / "cx")
    assert opts["opencode"]["root"] == str(tmp_path / "xdg" / "opencode")
    assert opts["gemini"]["root"] == str(tmp_path / "g" / ".gemini")


def test_overrides_and_a_subset_of_sources(tmp_path):
    env = {"HOME": str(tmp_path), "HELM_SOURCES": " Codex, opencode,codex ", "HELM_CODEX_DIR": str(tmp_path / "c"),
           "HELM_OPENCODE_DB": str(tmp_path / "oc" / "my.db")}
    cfg = Config.from_env(env).validate()
    assert cfg.sources == ["codex", "opencode"]
    assert cfg.source_options() == {"codex": {"root": str(tmp_path / "c")},
                                    "opencode": {"root": str(tmp_path / "oc"), "db_path": str(tmp_path / "oc" / "my.db")}}


def test_command_line_wins_over_the_environment(tmp_path):
    args = build_parser().parse_args(["--sources", "claude,gemini", "--gemini-dir", str(tmp_path / "gm"),
                                      "--host-name", "build-box-2"])
    cfg = config_from_args(args, {"HOME": str(tmp_path), "HELM_SOURCES": "codex", "HELM_HOST_NAME": "other"})
    assert cfg.sources == ["claude-code", "gemini"]
    assert cfg.source_options()["gemini"] == {"root": str(tmp_path / "gm")}
    assert cfg.host_name == "build-box-2"


@pytest.mark.parametrize("value", ["codex,cursor", ",", "claude-code;codex"])
def test_an_unknown_source_is_refused_clearly(value):
    cfg = Config.from_env({"HOME": "/nonexistent", "HELM_SOURCES": value})
    with pytest.raises(ConfigError, match="sources must be some of claude-code, codex, opencode, gemini"):
        cfg.validate()


@pytest.mark.parametrize("name", ["Build_Box", "a" * 64, "-x", "", "host.example.com"])
def test_a_host_name_outside_the_key_alphabet_is_refused(name):
    with pytest.raises(ConfigError, match="host name"):
        Config.from_env({"HOME": "/nonexistent", "HELM_HOST_NAME": name or " "}).validate()


def test_the_default_host_name_is_cleaned():
    assert clean_host_name("My_Laptop.local") == "my-laptop-local"
    assert clean_host_name("  WORK-PC  ") == "work-pc"
    assert Config().host_name and Config().validate()


def test_parse_sources_keeps_order_once_each():
    assert parse_sources("gemini,claude,Gemini, codex") == ["gemini", "claude-code", "codex"]


def test_the_command_refuses_a_bad_source_before_serving():
    proc = subprocess.run([sys.executable, "-m", "helm_monitor", "--sources", "cursor"], capture_output=True,
                          text=True, timeout=30, cwd=str(Path(__file__).parent.parent))
    assert proc.returncode == 2
    assert "helm-monitor: error: sources must be some of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_command_forks_its_scan_and_workers_without_importing_flask():
    """gunicorn's arbiter never serves (preload_app is off): Flask (0.1 s) is the workers' to import,
    not in front of the first scan's processes and every worker's fork."""
    import subprocess
    import sys
    code = ("import sys; import helm_monitor.cli, helm_monitor.server.app, helm_monitor.server.runtime, "
            "helm_monitor.live.scan, helm_monitor.live.sources; from helm_monitor.config import check_bind; "
            "check_bind('127.0.0.1', None, False); print(sorted(m for m in ('flask', 'werkzeug', 'jinja2', "
            "'genai_prices', 'gevent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
