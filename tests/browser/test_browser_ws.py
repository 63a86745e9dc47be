"""The WebSocket fallback (SPEC section 12): where the event stream does not get through (here
Playwright aborts or holds back every /api/sessions/stream request) and the WebSocket does, the
page is Live over /api/sessions/ws; it keeps trying the event stream and moves back to it once
it gets through. Where both fail it polls (test_browser_fallback.py, with the server stopped).

``backoff=50`` makes the page give up on the event stream in about a second.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row
from tests.browser.tabs_helpers import (
    arrival_ms, connection, expect_all, expect_stream_clients, frames_flowing, now_ms, watch_row,
)

pytestmark = pytest.mark.browser

STREAM = "**/api/sessions/stream*"
# The blocked event stream's requests fail, as they would behind such a proxy.
BLOCKED = r"net::ERR_FAILED|Failed to load resource|EventSource"


def new_session_time(claude, pages, prompt: str):
    frames_flowing(pages)
    session = claude.session(cwd="/home/alice/code/webapp")
    watch_row(pages, session.id)
    written = now_ms()
    session.turn(prompt, "Done.")
    return session, max(arrival_ms(pages, session.id, written, 1000))


def test_live_over_the_websocket_while_the_event_stream_is_blocked(page, console, server, claude):
    console.allow(BLOCKED)
    before = claude.session()
    before.turn("already there")
    page.route(STREAM, lambda route: route.abort())
    page.goto(dashboard_url(server, backoff=50, poll=200))
    status = page.locator("[data-connection-status]")
    expect(status).to_have_text("Live", timeout=5000)
    expect(status).to_have_attribute("title", re.compile(r"^Receiving live updates over WebSocket"))
    info = connection(page)
    assert info["transport"] == "ws" and info["polling"] is False and info["attempts"] >= 5, info
    expect(row(page, before.id)).to_be_visible()
    expect_stream_clients(server, 1)

    session, ms = new_session_time(claude, [page], "over the WebSocket")
    print(f"\nnew session over the WebSocket: {ms:.0f} ms after the write")
    session.turn("more", "ok")
    expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=1000)

    # The event stream gets through again: the page moves back to it (and closes the WebSocket).
    page.unroute(STREAM)
    page.wait_for_function("() => helmMonitor.connection().transport === 'sse'", timeout=5000)
    expect(status).to_have_text("Live")
    expect(status).to_have_attribute("title", "Receiving live updates")
    expect_stream_clients(server, 1)
    session.turn("back on the event stream", "ok")
    expect(field(page, session.id, "messageCount")).to_have_text("6", timeout=1000)
    assert connection(page)["attempts"] == 0


def test_a_stream_that_never_opens_falls_back_to_the_websocket(page, console, server, claude):
    """A proxy that holds the stream's answer back: the EventSource neither opens nor fails."""
    console.allow(BLOCKED)
    held = []
    opened = []  # what the page opened, in order: "stream" or "ws"
    page.route(STREAM, lambda route: (held.append(route), opened.append("stream")))  # never answered
    page.on("websocket", lambda ws: opened.append("ws"))
    page.goto(dashboard_url(server, backoff=50, poll=200))
    # One attempt that hangs past its timeout (1 s here) is enough when the stream never opened.
    expect(page.locator("[data-connection-status]")).to_have_text("Live", timeout=4000)
    assert connection(page)["transport"] == "ws"
    # (The stream is tried again 0.4-0.8 s after that attempt, WebSocket or not: count up to the
    # WebSocket, not up to whenever this line runs.)
    assert opened[:opened.index("ws")] == ["stream"], opened
    session, ms = new_session_time(claude, [page], "behind a buffering proxy")
    print(f"\nnew session over the WebSocket (stream held back): {ms:.0f} ms after the write")


def test_tabs_share_the_websocket(new_page, console, server, claude):
    console.allow(BLOCKED)
    first = new_page()
    first.context.route(STREAM, lambda route: route.abort())
    pages = [first] + [first.context.new_page() for _ in range(2)]
    for p in pages[1:]:
        console.watch(p)
    for p in pages:
        p.goto(dashboard_url(server, backoff=50, poll=200))
    expect_all(pages, "Live", timeout=6000)
    assert sorted(connection(p)["transport"] for p in pages) == ["ws"] * 3  # the followers say so too
    assert sorted(connection(p)["role"] for p in pages) == ["follower", "follower", "holder"]
    expect_stream_clients(server, 1)
    session, ms = new_session_time(claude, pages, "three tabs, one WebSocket")
    print(f"\nnew session in 3 tabs over one WebSocket: {ms:.0f} ms after the write")
