"""Full-text search on the page (SPEC 7, 11): hits under the list, each opening the session
view at its message, hostile text shown as text."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url

pytestmark = pytest.mark.browser


@pytest.fixture
def indexed_server(tmp_path, claude, server_factory):
    return server_factory(claude.root, env={"HELM_CACHE_DIR": str(tmp_path / "cache")})


def test_a_hit_opens_the_session_at_its_message(page, console, indexed_server, claude):
    session = claude.session(cwd="/home/alice/code/webapp")
    records = []
    for i in range(130):  # 260 messages: the hit (message 40) lies well before the tail page
        word = " the ocelot migration" if i == 20 else ""
        records.append(session.prompt_record(f"prompt number {i}{word}"))
        records.extend(session.assistant_records(f"reply number {i}"))
    records.append(session.prompt_record('<img src=x onerror="alert(1)"> <script>alert(2)</script> [x](javascript:alert(3))'))
    session.write(*records)
    other = claude.session(cwd="/home/alice/code/api")
    other.turn("nothing to see", "indeed")

    page.goto(dashboard_url(indexed_server))
    page.locator('input[type="search"]').fill("ocelot migr")
    hits = page.locator("[data-search-results] [data-hit]")
    expect(hits).to_have_count(1, timeout=15000)
    hit = hits.first
    assert hit.get_attribute("data-session-key").endswith(f":claude-code:{session.id}")
    assert hit.get_attribute("data-message-index") == "40"
    expect(hit.locator("mark")).to_have_text(["ocelot", "migration"])
    hit.locator("button").click()

    expect(page.locator("#detail")).to_be_visible()
    marked = page.locator("#messages .msg-hit")
    expect(marked).to_have_count(1)
    expect(marked).to_have_attribute("data-index", "40")
    expect(marked).to_contain_text("prompt number 20 the ocelot migration")
    expect(marked).to_be_in_viewport()
    # Everything after it is loaded too: the view follows the session from there.
    expect(page.locator("#messages .msg").last).to_contain_text("javascript:alert(3)", timeout=10000)

    # Hostile text in a hit is text: no element, no handler, no dialog (console watches dialogs).
    page.locator('input[type="search"]').fill("onerror")
    expect(hits).to_have_count(1, timeout=10000)
    expect(hits.first.locator(".hit-snippet")).to_contain_text('<img src=x onerror="alert(1)">')
    assert hits.first.locator("img, script, a").count() == 0

    # Fewer than two characters: no transcript search.
    page.locator('input[type="search"]').fill("o")
    expect(page.locator("[data-search-results]")).to_be_hidden()
