"""A picture of the dashboard with several sessions of all four agents, for the README.

Saved to tests/artifacts/ on every run (with a session view, dark mode and phone
variants beside it) and copied to docs/screenshot.png, which the README shows.
"""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, row
from tests.support.codex import CodexHome
from tests.support.gemini import Clock, GeminiHome, tokens as gemini_tokens
from tests.support.opencode import OpenCodeDB

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


def iso(ago: dt.timedelta) -> str:
    return (dt.datetime.now(dt.timezone.utc) - ago).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def conversation(writer, turns, *, ended_ago=dt.timedelta(0), model="claude-opus-5-5", tokens=1):
    """Write ``turns`` (prompt, reply) pairs whose last record is ``ended_ago`` old."""
    records = []
    step = dt.timedelta(minutes=2)
    for i, (prompt, reply) in enumerate(turns):
        at = iso(ended_ago + step * (len(turns) - i))
        rec = writer.prompt_record(prompt)
        rec["timestamp"] = at
        records.append(rec)
        usage = {"input_tokens": 900 * tokens, "output_tokens": 450 * tokens,
                 "cache_creation_input_tokens": 2000 * tokens, "cache_read_input_tokens": 9000 * tokens}
        for rec in writer.assistant_records(reply, model=model, usage=usage):
            rec["timestamp"] = iso(ended_ago + step * (len(turns) - i) - dt.timedelta(seconds=40))
            records.append(rec)
    writer.write(*records)


def build(claude, live_pids):
    pids = iter(live_pids(3))
    busy = claude.session(cwd="/home/alice/code/webapp", git_branch="feat/dark-mode")
    conversation(busy, [("Add a dark mode toggle to the settings page",
                         "I'll add a toggle that follows the system setting by default."),
                        ("Make it remember the choice per user", "Stored in the profile; the toggle reads it on load.")],
                 tokens=3)
    busy.prompt("Run the test suite and fix anything that fails")
    busy.write(busy.assistant_records("Running the tests first.", tool_use={
        "id": "toolu_pytest", "name": "Bash", "input": {"command": "pytest -q tests/settings", "description": "Run tests"}}))
    busy.write(busy.tool_result_record("toolu_pytest", "......F.\nFAILED tests/settings/test_theme.py::test_default_follows_system\n1 failed, 7 passed in 0.84s"))
    busy.write(busy.assistant_records("One failure: the default ignores the system setting. Fixing `theme.py`:",
                                      tool_use={"id": "toolu_edit", "name": "Edit", "input": {
                                          "file_path": "webapp/settings/theme.py",
                                          "old_string": "return 'light'", "new_string": "return system_preference()"}}))
    busy.write(busy.tool_result_record("toolu_edit", "The file webapp/settings/theme.py has been updated."))
    busy.subagent()
    busy.subagent()
    claude.register(next(pids), busy.id, status="busy", cwd=busy.cwd)

    waiting = claude.session(cwd="/home/alice/code/api-server", git_branch="feat/rate-limit")
    conversation(waiting, [("Add rate limiting to the public API", "A token bucket per API key, 100 requests a minute."),
                           ("Should limits be configurable per plan?", "Yes: I need your approval to change the schema.")],
                 model="claude-sonnet-5-1", tokens=2)
    waiting.title("Rate limiting for the public API")
    claude.register(next(pids), waiting.id, status="waiting", cwd=waiting.cwd)

    idle = claude.session(cwd="/home/alice/code/infra", git_branch="main")
    conversation(idle, [("Migrate CI to the new runners", "Done: all jobs run on the new pool."),
                        ("Pin the runner image", "Pinned to the digest of today's image.")],
                 ended_ago=dt.timedelta(minutes=14), tokens=2)
    claude.register(next(pids), idle.id, status="idle", cwd=idle.cwd)

    docs = claude.session(cwd="/home/alice/code/docs-site", git_branch="main")
    conversation(docs, [("Update the getting started guide for the new installer",
                         "Rewrote the install section and the first-run steps.")],
                 ended_ago=dt.timedelta(days=3, hours=4), model="claude-haiku-5-0")
    return busy


def build_other_agents(root: Path) -> dict:
    """A Codex, a Gemini CLI and an OpenCode session beside the Claude Code ones; the server options."""
    codex = CodexHome(root / "codex")
    r = codex.rollout()
    at = lambda ago: iso(ago)  # noqa: E731
    r.meta(cwd="/home/alice/code/webapp", branch="fix/flaky-login", ts=at(dt.timedelta(hours=2, minutes=30)))
    r.turn_started(model="gpt-5.1-codex", ts=at(dt.timedelta(hours=2, minutes=30)))
    r.user("Why does the login test fail one time in ten?", ts=at(dt.timedelta(hours=2, minutes=29)))
    r.tool("pytest -q tests/test_login.py --count 20", "2 failed, 18 passed", ts=at(dt.timedelta(hours=2, minutes=20)))
    r.agent("It waits on a real timer; it now waits for the session cookie instead.",
            ts=at(dt.timedelta(hours=2, minutes=10)))
    r.tokens(48_000, 31_000, 2_400, ts=at(dt.timedelta(hours=2, minutes=10)))
    r.turn_complete(ts=at(dt.timedelta(hours=2, minutes=5)))
    codex.name_thread(r.id, "Fix the flaky login test")

    gemini = GeminiHome(root / "gemini")
    gemini.clock = Clock(start=iso(dt.timedelta(hours=5, minutes=5)))
    chat = gemini.project("/home/alice/code/api-server").session()
    chat.prompt("Investigate slow /search queries")
    chat.tool_turn("psql -c 'EXPLAIN ANALYZE SELECT ...'", gemini_tokens(14_000, 60, cached=9_000))
    chat.reply("The trigram index was missing on `title`.", gemini_tokens(16_000, 900, cached=12_000))

    db_path = root / "opencode" / "opencode.db"
    db_path.parent.mkdir(parents=True)
    start = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=3)).timestamp() * 1000)
    ticks = iter(range(start, start + 10**9, 1500))
    db = OpenCodeDB(db_path, clock_ms=lambda: next(ticks))
    sid = db.session("/home/alice/code/infra", "Add alerts for the disk usage of the runners")
    db.exchange(sid, "Add alerts for the disk usage of the runners", "An alert at 85 % full, paging at 95 %.",
                tokens=(12_000, 800, 30_000, 0), tool=("edit", {"filePath": "alerts/runners.yaml"}, "Edited."))
    db.exchange(sid, "Also for the build cache volume", "Added: the same thresholds on /var/cache/build.",
                tokens=(14_000, 300, 42_000, 0))
    db.close()
    return {"HELM_CODEX_DIR": str(codex.root), "HELM_GEMINI_DIR": str(gemini.root),
            "HELM_OPENCODE_DB": str(db_path), "HELM_HOST_NAME": "alice-laptop"}
    return busy


def test_dashboard_screenshot(new_page, claude, server_factory, live_pids, artifacts, tmp_path):
    busy = build(claude, live_pids)
    server = server_factory(claude.root, env=build_other_agents(tmp_path / "agents"))
    page = new_page()
    page.goto(dashboard_url(server))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    expect(page.locator("[data-session-key]")).to_have_count(7)
    sources = page.locator("[data-field='source']").evaluate_all("els => els.map(el => el.dataset.source)")
    assert sorted(set(sources)) == ["claude-code", "codex", "gemini", "opencode"]
    expect(page.locator("#agent-filter")).to_be_visible()
    expect(page.locator("[data-active-count]")).to_have_text("3")
    shot = artifacts / "dashboard.png"
    page.screenshot(path=str(shot), animations="disabled")
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, DOCS_SCREENSHOT)

    row(page, busy.id).locator("a").click()
    expect(page.locator("#messages .tool")).to_have_count(2)
    page.screenshot(path=str(artifacts / "dashboard-session.png"), animations="disabled")

    dark = new_page(color_scheme="dark")
    dark.goto(dashboard_url(server, session=busy.id))  # a first-version bookmark: the bare Claude id
    expect(dark.locator("#messages .tool")).to_have_count(2)
    dark.screenshot(path=str(artifacts / "dashboard-dark.png"), animations="disabled")
    assert shot.stat().st_size > 10_000 and DOCS_SCREENSHOT.read_bytes() == shot.read_bytes()
