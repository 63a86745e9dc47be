"""The dashboard follows the watched directory live (issue 4, first "Done when")."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row

pytestmark = pytest.mark.browser


def test_indicator_reads_live(page, server):
    page.goto(dashboard_url(server))
    status = page.locator("[data-connection-status]")
    expect(status).to_have_text("Live")
    expect(status).to_have_attribute("data-state", "live")


def test_a_session_appears_grows_and_disappears(page, server, claude):
    page.goto(dashboard_url(server))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    expect(page.locator("[data-session-id]")).to_have_count(0)

    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("Add a health check endpoint", "Added GET /healthz.")
    expect(row(page, session.id)).to_be_visible(timeout=2000)
    expect(field(page, session.id, "title")).to_have_text("Add a health check endpoint")
    expect(field(page, session.id, "messageCount")).to_have_text("2")

    session.turn("Now document it", "Documented in the README.")
    expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)

    session.title("Health check endpoint")
    expect(field(page, session.id, "title")).to_have_text("Health check endpoint", timeout=2000)

    session.path.unlink()
    expect(row(page, session.id)).to_have_count(0, timeout=2000)


def test_status_active_count_and_document_title(page, server, claude, live_pids):
    busy, other = claude.session(cwd="/home/alice/code/webapp"), claude.session(cwd="/home/alice/code/api")
    busy.turn("Refactor the router")
    other.turn("Old question")
    page.goto(dashboard_url(server))
    expect(field(page, busy.id, "status")).to_have_text("ended")
    expect(page.locator("[data-active-count]")).to_have_text("0")
    expect(page).to_have_title("helm-monitor")

    (pid,) = live_pids(1)
    claude.register(pid, busy.id, status="busy", cwd=busy.cwd)
    expect(field(page, busy.id, "status")).to_have_text("busy", timeout=2000)
    expect(page.locator("[data-active-count]")).to_have_text("1")
    expect(page).to_have_title("(1) helm-monitor")
    # Active sessions come first, whatever their project.
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", busy.id)

    claude.register(pid, busy.id, status="waiting", cwd=busy.cwd)
    expect(field(page, busy.id, "status")).to_have_text("waiting", timeout=2000)

    claude.unregister(pid)
    expect(field(page, busy.id, "status")).to_have_text("ended", timeout=2000)
    expect(page.locator("[data-active-count]")).to_have_text("0")


def test_rows_show_project_branch_model_tokens_and_subagents(page, server, claude):
    session = claude.session(cwd="/home/alice/code/webapp", git_branch="feat/login")
    session.turn("Write the login form", "Done.", model="claude-sonnet-5-1",
                 usage={"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0})
    session.subagent()
    session.subagent()
    page.goto(dashboard_url(server))
    r = row(page, session.id)
    expect(r.locator('[data-field="project"]')).to_have_text("webapp")
    expect(r.locator('[data-field="gitBranch"]')).to_have_text("feat/login")
    expect(r.locator('[data-field="model"]')).to_have_text("sonnet-5-1")
    expect(r.locator('[data-field="tokens"]')).to_have_text("1.5k")
    expect(r.locator('[data-field="subagentCount"]')).to_have_text("2")
    expect(r.locator('[data-field="updatedAt"]')).to_have_text("just now")
    expect(page.locator('.group[data-project="/home/alice/code/webapp"]')).to_have_count(1)


def test_a_delta_patches_rows_in_place_and_keeps_focus(page, server, claude):
    first, second = claude.session(cwd="/home/alice/code/a"), claude.session(cwd="/home/alice/code/b")
    first.turn("first session")
    second.turn("second session")
    page.goto(dashboard_url(server))
    expect(page.locator("[data-session-id]")).to_have_count(2)
    # Tag the DOM nodes: a full re-render would replace them.
    page.evaluate("document.querySelectorAll('[data-session-id]').forEach(el => el.__kept = true)")
    bottom = page.locator("[data-session-id]").last
    bottom_id = bottom.get_attribute("data-session-id")
    bottom.locator("a").focus()

    writer = first if bottom_id == first.id else second
    writer.turn("more work")  # newest activity: this row's group moves to the top
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", bottom_id, timeout=2000)
    assert page.evaluate("[...document.querySelectorAll('[data-session-id]')].every(el => el.__kept)")
    assert page.evaluate("document.activeElement.closest('[data-session-id]').dataset.sessionId") == bottom_id


def test_refresh_button_rescans(page, server, claude):
    session = claude.session()
    session.turn("hello")
    page.goto(dashboard_url(server))
    expect(row(page, session.id)).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/api/sessions/refresh")) as answer:
        page.get_by_role("button", name="Refresh").click()
    assert answer.value.status == 200
    expect(page.locator("#refresh")).to_have_attribute("aria-busy", "false")
    expect(row(page, session.id)).to_be_visible()


def test_relative_time_keeps_ticking(page, server, claude):
    import datetime as dt

    session = claude.session()
    record = session.prompt_record("an older prompt")
    record["timestamp"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=56)).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    session.write(record)
    page.goto(dashboard_url(server))
    when = field(page, session.id, "updatedAt")
    expect(when).to_have_text(re.compile(r"^5\d s ago$"))
    expect(when).to_have_text("1 min ago", timeout=8000)  # no event arrived: the page ticks by itself


def test_works_behind_the_access_token(page, claude, server_factory):
    token = "browser-test-token-0123456789"
    srv = server_factory(claude.root, args=["--token", token])
    session = claude.session()
    session.turn("a private session")
    page.goto(f"{srv.url}/?token={token}")
    expect(page).to_have_url(f"{srv.url}/")  # exchanged for a cookie, dropped from the address
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    expect(row(page, session.id)).to_be_visible()
    session.turn("more")
    expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)


def test_a_refused_api_is_explained(page, console, claude, server_factory):
    # Signed out, everything answers 401: so does a vendored script the page loads when idle
    # (the Markdown libraries), which the browser then refuses to run.
    console.allow(r"401|net::ERR_|Failed to load resource|EventSource|Refused to execute script")
    token = "browser-test-token-0123456789"
    srv = server_factory(claude.root, args=["--token", token])
    page.goto(dashboard_url(srv, token=token, backoff=50, poll=200))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    page.context.clear_cookies()  # signed out: every API call now answers 401
    srv.stop()
    srv.start()
    expect(page.locator("[data-connection-status]")).to_have_text("Polling", timeout=10_000)
    expect(page.locator("#banner")).to_contain_text("Not signed in", timeout=5000)
