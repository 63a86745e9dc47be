"""Finding things on the dashboard: search, project filter, bookmarkable URLs, keyboard,
phone width, dark mode, notifications."""

import pytest
from urllib.parse import parse_qs, urlsplit
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row

pytestmark = pytest.mark.browser

# Stands in for the browser's Notification API: records what the page would show.
FAKE_NOTIFICATIONS = """
window.__notes = [];
window.Notification = class {
  constructor(title, options) { window.__notes.push({title, body: (options || {}).body}); }
  addEventListener() {}
  close() {}
  static get permission() { return 'granted'; }
  static requestPermission() { return Promise.resolve('granted'); }
};
"""


@pytest.fixture
def three(claude):
    web = claude.session(cwd="/home/alice/code/webapp")
    web.turn("Fix the flaky login test", "Fixed: it waited on a timer.")
    docs = claude.session(cwd="/home/alice/code/webapp")
    docs.turn("Write the deployment guide", "Written.")
    api = claude.session(cwd="/home/alice/code/api-server", git_branch="feat/rate-limit")
    api.turn("Add rate limiting to the API", "Added a token bucket.")
    return web, docs, api


def visible_ids(page):
    return page.eval_on_selector_all(
        "[data-session-id]", "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.sessionId)")


def test_search_filters_rows_as_you_type_and_is_bookmarkable(page, server, three):
    web, docs, api = three
    page.goto(dashboard_url(server))
    expect(page.locator("[data-session-id]")).to_have_count(3)
    search = page.locator('input[type="search"]')

    search.press_sequentially("login")
    expect(row(page, web.id)).to_be_visible()
    expect(row(page, docs.id)).to_be_hidden()
    expect(row(page, api.id)).to_be_hidden()
    expect(page).to_have_url(f"{server.url}/?q=login")

    search.fill("api-server")  # the project path matches too
    expect(row(page, api.id)).to_be_visible()
    expect(row(page, web.id)).to_be_hidden()

    search.fill("rate limit")  # every word must match, in any field
    assert visible_ids(page) == [api.id]

    search.fill("nothing matches this")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No sessions match")

    page.goto(dashboard_url(server, q="deployment"))
    expect(search).to_have_value("deployment")
    expect(row(page, docs.id)).to_be_visible()
    expect(row(page, web.id)).to_be_hidden()

    search.fill("")
    expect(page.locator("[data-session-id]:visible")).to_have_count(3)
    expect(page).to_have_url(f"{server.url}/")


def test_project_filter_is_reflected_in_the_url(page, server, three):
    web, docs, api = three
    page.goto(dashboard_url(server))
    select = page.locator("#project-filter")
    expect(select.locator("option")).to_have_count(3)  # all, api-server, webapp
    select.select_option("/home/alice/code/webapp")
    expect(row(page, api.id)).to_be_hidden()
    expect(row(page, web.id)).to_be_visible()
    expect(row(page, docs.id)).to_be_visible()
    expect(page).to_have_url(f"{server.url}/?project=%2Fhome%2Falice%2Fcode%2Fwebapp")

    page.reload()
    expect(select).to_have_value("/home/alice/code/webapp")
    expect(row(page, api.id)).to_be_hidden()
    expect(row(page, web.id)).to_be_visible()


def test_keyboard_only(page, server, three):
    page.goto(dashboard_url(server))
    expect(page.locator("[data-session-id]")).to_have_count(3)
    page.keyboard.press("/")
    expect(page.locator('input[type="search"]')).to_be_focused()
    page.keyboard.press("ArrowDown")
    first = page.locator("[data-session-id] a").first
    expect(first).to_be_focused()
    page.keyboard.press("ArrowDown")
    second = page.locator("[data-session-id] a").nth(1)
    expect(second).to_be_focused()
    second_key = page.locator("[data-session-id]").nth(1).get_attribute("data-session-key")

    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#messages .msg").first).to_be_visible()
    expect(page.locator("#conversation")).to_be_focused()
    assert parse_qs(urlsplit(page.url).query)["session"] == [second_key]

    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(second).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(first).to_be_focused()


def test_phone_width(new_page, server, three, artifacts):
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    web = three[0]
    page.goto(dashboard_url(server))
    expect(page.locator("[data-session-id]")).to_have_count(3)
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    expect(field(page, web.id, "status")).to_be_visible()
    expect(field(page, web.id, "messageCount")).to_be_visible()
    page.screenshot(path=str(artifacts / "dashboard-phone.png"))

    row(page, web.id).locator("a").tap()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    box = detail.bounding_box()
    assert box["width"] == 390  # the conversation takes the whole screen
    expect(page.locator("#messages .msg-reply")).to_contain_text("Fixed")
    page.locator("#detail-close").tap()
    expect(detail).to_be_hidden()


def test_follows_the_system_dark_mode(new_page, server, three):
    backgrounds = {}
    for scheme in ("light", "dark"):
        page = new_page(color_scheme=scheme)
        page.goto(dashboard_url(server))
        expect(page.locator("[data-session-id]")).to_have_count(3)
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert backgrounds["light"] != backgrounds["dark"]
    dark = [int(c) for c in backgrounds["dark"][4:-1].split(",")]
    assert sum(dark) < 3 * 64


def test_notifications_are_opt_in(new_page, server, claude, live_pids):
    page = new_page()
    page.add_init_script(FAKE_NOTIFICATIONS)
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("Deploy to staging")
    (pid,) = live_pids(1)
    claude.register(pid, session.id, status="busy", cwd=session.cwd)
    page.goto(dashboard_url(server))
    expect(field(page, session.id, "status")).to_have_text("busy")

    # Off until asked for: a status change notifies nobody.
    claude.register(pid, session.id, status="idle", cwd=session.cwd)
    expect(field(page, session.id, "status")).to_have_text("idle", timeout=2000)
    assert page.evaluate("window.__notes") == []

    button = page.get_by_role("button", name="Notify")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")

    claude.register(pid, session.id, status="waiting", cwd=session.cwd)
    expect(field(page, session.id, "status")).to_have_text("waiting", timeout=2000)
    claude.register(pid, session.id, status="busy", cwd=session.cwd)
    expect(field(page, session.id, "status")).to_have_text("busy", timeout=2000)
    claude.register(pid, session.id, status="idle", cwd=session.cwd)
    expect(field(page, session.id, "status")).to_have_text("idle", timeout=2000)
    notes = page.evaluate("window.__notes")
    assert [n["title"] for n in notes] == ["webapp is waiting for you", "webapp finished its turn"]
    assert notes[0]["body"] == "Deploy to staging"

    # The choice is remembered.
    page.reload()
    expect(page.get_by_role("button", name="Notify")).to_have_attribute("aria-pressed", "true")


@pytest.mark.parametrize("path", ["/", "/usage"])
def test_every_module_a_page_loads_is_asked_for_at_once(page, server, path):
    """Each page names every module of its import graph as modulepreload (web/page.py module_imports):
    the browser fetches them together instead of one import level after another, and no module
    it loads is missing from the list (an import form the list does not see would be)."""
    page.goto(server.url + path)
    page.wait_for_load_state("load")
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    assets = page.evaluate("""() => {
        const ok = (u) => new URL(u).pathname.includes('/assets/');
        const loaded = performance.getEntriesByType('resource').filter(e => ok(e.name) && e.name.endsWith('.js'))
            .map(e => new URL(e.name).pathname);
        const preloaded = [...document.querySelectorAll('link[rel=modulepreload]')].map(l => new URL(l.href).pathname);
        const entry = [...document.querySelectorAll('script[type=module]')].map(s => new URL(s.src).pathname);
        const classic = [...document.querySelectorAll('script:not([type=module])')].map(s => new URL(s.src).pathname);
        return {loaded, preloaded, entry, classic};
    }""")
    modules = [p for p in assets["loaded"] if p not in assets["entry"] and p not in assets["classic"]]
    assert len(modules) >= 15
    assert sorted(set(modules)) == sorted(set(assets["preloaded"]))
