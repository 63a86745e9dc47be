"""A picture of the dashboard with several sessions, for the README.

Saved to tests/artifacts/ on every run (with a session view, dark mode and phone
variants beside it) and copied to docs/screenshot.png, which the README shows.
"""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, row

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

    flaky = claude.session(cwd="/home/alice/code/webapp", git_branch="fix/flaky-login")
    conversation(flaky, [("Why does the login test fail one time in ten?", "It waits on a real timer."),
                         ("Fix it without sleeping", "It now waits for the session cookie instead.")] * 3,
                 ended_ago=dt.timedelta(hours=2, minutes=5))
    flaky.rename("Fix the flaky login test")

    search = claude.session(cwd="/home/alice/code/api-server", git_branch="main")
    conversation(search, [("Investigate slow /search queries", "The trigram index was missing on `title`.")] * 4,
                 ended_ago=dt.timedelta(days=3, hours=4), model="claude-haiku-5-0")

    docs = claude.session(cwd="/home/alice/code/docs-site", git_branch="main")
    conversation(docs, [("Update the getting started guide for the new installer",
                         "Rewrote the install section and the first-run steps.")],
                 ended_ago=dt.timedelta(days=1, hours=1), model="claude-sonnet-5-1")
    return busy


def test_dashboard_screenshot(new_page, claude, server_factory, live_pids, artifacts):
    busy = build(claude, live_pids)
    server = server_factory(claude.root)
    page = new_page()
    page.goto(dashboard_url(server))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    expect(page.locator("[data-session-id]")).to_have_count(6)
    expect(page.locator("[data-active-count]")).to_have_text("3")
    shot = artifacts / "dashboard.png"
    page.screenshot(path=str(shot), animations="disabled")
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, DOCS_SCREENSHOT)

    row(page, busy.id).locator("a").click()
    expect(page.locator("#messages .tool")).to_have_count(2)
    page.screenshot(path=str(artifacts / "dashboard-session.png"), animations="disabled")

    dark = new_page(color_scheme="dark")
    dark.goto(dashboard_url(server, session=busy.id))
    expect(dark.locator("#messages .tool")).to_have_count(2)
    dark.screenshot(path=str(artifacts / "dashboard-dark.png"), animations="disabled")
    assert shot.stat().st_size > 10_000 and DOCS_SCREENSHOT.read_bytes() == shot.read_bytes()
