"""The connection indicator: Live, then Polling after 5 failed attempts, then Live again
by itself once the server is back on the same port (SPEC section 7).

The page's backoff is shortened through its query string (``backoff=50``: reconnect after
50, 100, 200, 400 ms, with jitter, capped at 800 ms; ``poll=200``), so the test takes seconds.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row

pytestmark = pytest.mark.browser


def test_polling_after_retries_then_live_again(page, console, claude, server_factory):
    # The server is down on purpose: failed stream and poll requests are expected.
    console.allow(r"net::ERR_|Failed to load resource|EventSource")
    session = claude.session()
    session.turn("before the restart")
    srv = server_factory(claude.root)
    page.goto(dashboard_url(srv, backoff=50, poll=200))
    status = page.locator("[data-connection-status]")
    expect(status).to_have_text("Live")
    expect(row(page, session.id)).to_be_visible()

    srv.stop()
    expect(status).to_have_text("Polling", timeout=10_000)
    expect(status).to_have_attribute("data-state", "polling")
    attempts = page.evaluate("helmMonitor.connection().attempts")
    assert attempts >= 5
    # The last known state stays on screen while the server is away.
    expect(row(page, session.id)).to_be_visible()

    srv.start()
    expect(status).to_have_text("Live", timeout=10_000)
    expect(status).to_have_attribute("data-state", "live")

    # And it is really live again: a change arrives through the new stream.
    session.turn("after the restart")
    expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)
    assert page.evaluate("helmMonitor.connection().polling") is False


def test_connecting_while_retrying_before_polling(page, console, claude, server_factory):
    console.allow(r"net::ERR_|Failed to load resource|EventSource")
    srv = server_factory(claude.root)
    # Long delays: the page stays in its first retries long enough to be seen there.
    page.goto(dashboard_url(srv, backoff=2000))
    status = page.locator("[data-connection-status]")
    expect(status).to_have_text("Live")
    srv.stop()
    expect(status).to_have_text("Connecting", timeout=5000)
    expect(status).to_have_attribute("data-state", "connecting")
