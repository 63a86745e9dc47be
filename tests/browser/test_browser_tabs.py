"""One stream per browser (issue 11, SPEC section 7): the tabs of one Chromium elect one holder
of the stream (Web Locks) and relay to the others (BroadcastChannel), so 8 tabs on one origin
stay Live over HTTP/1.1, which allows 6 connections per host.

Times are measured from the write on disk to the row appearing in each tab (noted in the page);
the server's debounce is 150 ms in these tests.
"""

import time

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row
from tests.browser.tabs_helpers import (
    FAKE_RELAY, arrival_ms, connection, expect_all, expect_stream_clients, frames_flowing, inits_sent, now_ms,
    open_tabs, roles, the_holder, watch_row,
)
from tests.support.server import wait_until

pytestmark = pytest.mark.browser

TABS = 8
# Network errors of the holder while the server is away are expected.
SERVER_AWAY = r"net::ERR_|Failed to load resource|EventSource"


def write_and_time(claude, pages, prompt: str, cwd: str = "/home/alice/code/webapp", within_ms: float = 1000):
    """Write a new session and return (session, ms until its row is in every tab); at most ``within_ms``."""
    frames_flowing(pages)  # see frames_flowing: a browser artefact, not the feed's
    session = claude.session(cwd=cwd)
    watch_row(pages, session.id)
    written = now_ms()
    session.turn(prompt, "Done.")
    return session, arrival_ms(pages, session.id, written, within_ms)


def test_eight_tabs_share_one_stream_and_survive_the_holder_closing(new_page, console, server, claude):
    before = claude.session(cwd="/home/alice/code/api")
    before.turn("already there")
    pages = open_tabs(new_page, console, dashboard_url(server), TABS)
    expect_all(pages, "Live")
    for page in pages:
        expect(row(page, before.id)).to_be_visible()  # each tab got the whole list on joining
    holder = the_holder(pages)
    assert sorted(roles(pages)) == ["follower"] * (TABS - 1) + ["holder"]
    expect_stream_clients(server, 1)
    assert all(connection(p)["transport"] == "sse" for p in pages)

    session, times = write_and_time(claude, pages, "Add a health check endpoint")
    print(f"\nnew session in {TABS} tabs: {max(times):.0f} ms after the write (each: {[round(t) for t in times]})")
    for page in pages:
        expect(field(page, session.id, "messageCount")).to_have_text("2")

    # The holder goes away: another tab takes the stream over, resuming where it stood.
    inits = inits_sent(server)
    closed_at = time.monotonic()
    holder.close()
    rest = [p for p in pages if p is not holder]
    new_holder = the_holder(rest, timeout=1.0)
    expect_all(rest, "Live", timeout=1000)
    takeover = time.monotonic() - closed_at
    print(f"takeover after the holder closed: {takeover * 1000:.0f} ms")
    assert new_holder is not holder
    expect_stream_clients(server, 1)
    assert inits_sent(server) == inits  # resumed (?lastEventId=), not started over with init

    second, times = write_and_time(claude, rest, "Now document it")
    print(f"new session in {len(rest)} tabs after the takeover: {max(times):.0f} ms after the write "
          f"(each: {[round(t) for t in times]})")
    session.turn("and one more", "Sure.")
    for page in rest:
        expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=1000)
    expect_stream_clients(server, 1)


def test_eight_tabs_come_back_after_a_server_restart(new_page, console, claude, server_factory):
    console.allow(SERVER_AWAY)
    srv = server_factory(claude.root)
    session = claude.session()
    session.turn("before the restart")
    pages = open_tabs(new_page, console, dashboard_url(srv, backoff=50, poll=200), TABS)
    expect_all(pages, "Live")
    expect_stream_clients(srv, 1)

    srv.stop()
    for page in pages:  # the holder's state, relayed: nobody claims Live while the server is away
        expect(page.locator("[data-connection-status]")).not_to_have_text("Live", timeout=5000)
    srv.start()
    expect_all(pages, "Live", timeout=10_000)
    the_holder(pages)

    session.turn("after the restart")
    for page in pages:
        expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)
    _, times = write_and_time(claude, pages, "a session started after the restart", within_ms=2000)
    print(f"\nnew session in {TABS} tabs after the restart: {max(times):.0f} ms after the write "
          f"(each: {[round(t) for t in times]})")
    expect_stream_clients(srv, 1)


def test_a_joining_tab_gets_the_list_at_once_and_then_every_delta(new_page, console, server, claude):
    sessions = [claude.session(cwd=f"/home/alice/code/p{i}") for i in range(5)]
    for s in sessions:
        s.turn("hello")
    pages = open_tabs(new_page, console, dashboard_url(server), 2)
    expect_all(pages, "Live")
    busy = sessions[0]
    # Tabs join while one session keeps growing: each shows every session, then the same count.
    for i in range(4):
        busy.turn(f"turn {i}", "ok")
        page = pages[0].context.new_page()
        console.watch(page)
        page.goto(dashboard_url(server))
        pages.append(page)
        expect(page.locator("[data-session-id]")).to_have_count(5, timeout=1000)
        assert connection(page)["role"] == "follower"
    busy.turn("last", "ok")
    count = str(2 + 2 * 5)
    for page in pages:
        expect(field(page, busy.id, "messageCount")).to_have_text(count, timeout=2000)
    expect_all(pages, "Live")
    expect_stream_clients(server, 1)


def test_a_follower_applies_the_relay_in_order(new_page, server, claude):
    """The relay's sequence numbers, against a holder played by the test: deltas apply in
    order; after a gap the follower asks for a snapshot and holds what comes until it has
    it; a new holder that starts where the follower stands needs none."""
    sessions = []
    for i in range(4):
        s = claude.session(cwd=f"/home/alice/code/p{i}")
        s.turn(f"prompt {i}")
        sessions.append(s)
    ids = {s.id for s in sessions}

    def listed():
        found = {s["id"]: s for s in server.get_json("/api/sessions/all")}
        return found if ids <= found.keys() else None
    full = wait_until(listed, 5, 0.05, "the four sessions to be listed")
    a, b, c, d = (full[s.id] for s in sessions)
    page = new_page()
    page.context.add_init_script(FAKE_RELAY)
    page.goto(dashboard_url(server))
    live = {"word": "Live", "hint": "Receiving live updates", "attempts": 0, "polling": False,
            "transport": "sse", "alert": None}

    def deliver(**message):
        page.evaluate("(m) => window.__helmRelay.deliver(m)", message)

    def asked_for_snapshots():
        return page.evaluate("() => window.__helmRelay.posted.filter(m => m.kind === 'sync').length")

    def shown():
        return sorted(page.eval_on_selector_all("[data-session-id]", "els => els.map(e => e.dataset.sessionId)"))

    def msg(seq, type_, items, term=5, holder="holder-a"):
        deliver(kind="msg", term=term, id=holder, seq=seq, type=type_,
                data={"type": type_, "sessions": items}, eventId=f"e-{seq}")

    deliver(kind="hello", term=5, id="holder-a", seq=0, base=None, state=live)
    msg(1, "init", [a])  # a whole list: in step from here
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    assert shown() == [a["id"]]
    msg(2, "session-created", [b])
    expect(row(page, b["id"])).to_be_visible()
    asked = asked_for_snapshots()

    msg(4, "session-created", [d])  # seq 3 never came: hold it, ask for a snapshot
    page.wait_for_function("(n) => window.__helmRelay.posted.filter(m => m.kind === 'sync').length > n", arg=asked)
    expect(page.locator("[data-connection-status]")).to_have_text("Connecting")  # catching up: not Live
    assert shown() == sorted([a["id"], b["id"]])
    deliver(kind="snapshot", term=5, id="holder-a", seq=3, to="x", eventId="e-3", state=live,
            sessions=[a, b, c], extras=[])
    expect(row(page, d["id"])).to_be_visible()  # the snapshot (a, b, c), then the held seq 4 (d)
    assert shown() == sorted([a["id"], b["id"], c["id"], d["id"]])
    expect(page.locator("[data-connection-status]")).to_have_text("Live")

    # A new holder that resumes where this follower stands (seq 4 of holder-a): no snapshot.
    asked = asked_for_snapshots()
    deliver(kind="hello", term=6, id="holder-b", seq=0, base={"term": 5, "id": "holder-a", "seq": 4}, state=live)
    msg(1, "session-deleted", [{"id": a["id"], "key": a.get("key"), "projectPath": a["projectPath"]}],
        term=6, holder="holder-b")
    expect(row(page, a["id"])).to_have_count(0)
    msg(5, "session-deleted", [b], term=5, holder="holder-a")  # the former holder, late: ignored
    msg(2, "session-updated", [dict(c, title="renamed")], term=6, holder="holder-b")
    expect(field(page, c["id"], "title")).to_have_text("renamed")
    expect(row(page, b["id"])).to_be_visible()
    assert asked_for_snapshots() == asked


def test_messages_of_a_former_holder_are_ignored(new_page, console, server, claude):
    """A holder that wakes late (frozen, hung) may still relay what it had queued: the others
    follow the newest holder only (ranked by term), so a stale list changes nothing."""
    session = claude.session()
    session.turn("hello")
    pages = open_tabs(new_page, console, dashboard_url(server), 2)
    expect_all(pages, "Live")
    for page in pages:
        expect(row(page, session.id)).to_be_visible()
    # Another page of the origin speaks as a holder of an older term: an empty whole list.
    stale = pages[0].context.new_page()
    console.watch(stale)
    stale.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    stale.goto(f"{server.url}/healthz")
    stale.evaluate("""() => new BroadcastChannel('helm-monitor stream v1 /').postMessage({
        kind: 'msg', term: 0, id: 'a-former-holder', seq: 1000000, type: 'init',
        data: {type: 'init', sessions: []}, eventId: null})""")
    session.turn("more")  # posted after the stale message: once it shows, the stale one was heard
    for page in pages:
        expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)
        expect(row(page, session.id)).to_be_visible()
    expect(pages[0].locator("[data-session-id]")).to_have_count(1)
    expect(pages[1].locator("[data-session-id]")).to_have_count(1)


def test_refresh_and_reconnect_work_in_a_follower(new_page, console, server, claude):
    session = claude.session()
    session.turn("hello")
    pages = open_tabs(new_page, console, dashboard_url(server), 2)
    expect_all(pages, "Live")
    holder = the_holder(pages)
    follower = next(p for p in pages if p is not holder)
    assert follower.evaluate("() => helmMonitor.connection().state") == "Live"
    lists = []
    follower.on("request", lambda r: "/api/sessions/all" in r.url and lists.append(r.url))
    with follower.expect_response(lambda r: r.url.endswith("/api/sessions/refresh")) as answer:
        follower.get_by_role("button", name="Refresh").click()
    assert answer.value.status == 200
    expect(follower.locator("#refresh")).to_have_attribute("aria-busy", "false")
    assert lists == []  # it is Live through the holder: the refresh event comes that way
    # The browser is back online: a follower's 'online' reaches the holder; nothing breaks.
    follower.evaluate("() => window.dispatchEvent(new Event('online'))")
    session.turn("more")
    for page in pages:
        expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)
    expect_stream_clients(server, 1)


class Freezer:
    """Stops and restarts one tab's script through CDP, as a freeze does.

    ``Page.setWebLifecycleState`` is sent as well, but headless Chromium ignores it for a
    visible page, and headless pages are never hidden; so the page's script is stopped with
    the debugger (``Debugger.pause``): no timer, no message, no lock callback runs in it,
    which is what the other tabs see of a frozen tab. ``notice=True`` first dispatches the
    ``freeze`` event a browser sends a page it freezes (and ``resume`` when it thaws it).
    """

    def __init__(self, page):
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Debugger.enable")
        self.frozen = False

    def freeze(self, notice: bool) -> None:
        if notice:
            self.page.evaluate("document.dispatchEvent(new Event('freeze'))")
        self.cdp.send("Debugger.pause")
        self.cdp.send("Page.setWebLifecycleState", {"state": "frozen"})
        self.frozen = True

    def thaw(self, notice: bool) -> None:
        self.frozen = False
        self.cdp.send("Page.setWebLifecycleState", {"state": "active"})
        self.cdp.send("Debugger.resume")
        if notice:
            self.page.evaluate("document.dispatchEvent(new Event('resume'))")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # A test that failed while the page was stopped: let it run, or nothing can look at it.
        if self.frozen:
            self.thaw(False)


@pytest.mark.parametrize("notice", [True, False], ids=["freeze-event", "no-notice"])
def test_a_frozen_holder_is_replaced_and_follows_when_it_thaws(new_page, console, server, claude, notice):
    """With the freeze event the holder gives the lock up at once; without it (or a tab that
    hangs) the others hear no heartbeat, get no answer, and steal the lock within about a second."""
    pages = open_tabs(new_page, console, dashboard_url(server), 4)
    expect_all(pages, "Live")
    holder = the_holder(pages)
    rest = [p for p in pages if p is not holder]
    with Freezer(holder) as freezer:
        frozen_at = time.monotonic()
        freezer.freeze(notice)
        new_holder = the_holder(rest, timeout=2.0)
        expect_all(rest, "Live", timeout=2000)
        print(f"\ntakeover from a frozen holder ({'freeze event' if notice else 'no notice'}): "
              f"{(time.monotonic() - frozen_at) * 1000:.0f} ms")
        # Given notice, the holder closed its stream; without, its connection stays until it thaws.
        expect_stream_clients(server, 1 if notice else 2)
        session, times = write_and_time(claude, rest, "while the holder is frozen")
        print(f"new session in {len(rest)} tabs: {max(times):.0f} ms after the write")
        freezer.thaw(notice)

    # It follows: no two holders, its own stream closed, and it catches up with the others.
    holder.wait_for_function("() => helmMonitor.connection().role === 'follower'", timeout=2000)
    assert the_holder(pages) is new_holder
    expect(row(holder, session.id)).to_be_visible(timeout=2000)
    expect(holder.locator("[data-connection-status]")).to_have_text("Live", timeout=2000)
    expect_stream_clients(server, 1)
    frames_flowing(pages)  # a thawed tab may paint once a second for a while (frames_flowing)
    session.turn("after the thaw", "ok")
    for page in pages:
        expect(field(page, session.id, "messageCount")).to_have_text("4", timeout=2000)
    assert the_holder(pages) is new_holder


def test_a_silent_holder_is_not_vouched_for(new_page, console, server, claude):
    """The holder stops answering and, for a while, nobody can take over (another page of the
    origin holds the takeover lock): the followers say Connecting, not the holder's last
    word; then one steals the stream anyway and all are Live again."""
    pages = open_tabs(new_page, console, dashboard_url(server), 3)
    expect_all(pages, "Live")
    holder = the_holder(pages)
    rest = [p for p in pages if p is not holder]
    blocker = pages[0].context.new_page()
    console.watch(blocker)
    blocker.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    blocker.goto(f"{server.url}/healthz")
    blocker.evaluate("() => { navigator.locks.request('helm-monitor stream v1 / takeover', "
                     "() => new Promise(() => {})); }")
    with Freezer(holder) as freezer:
        frozen_at = time.monotonic()
        freezer.freeze(notice=False)
        for page in rest:
            expect(page.locator("[data-connection-status]")).to_have_text("Connecting", timeout=2000)
        assert all(connection(p)["role"] == "follower" for p in rest)
        print(f"\nfollowers stop vouching for a silent holder after {(time.monotonic() - frozen_at) * 1000:.0f} ms")
        the_holder(rest, timeout=4.0)  # stolen without the takeover lock, later
        expect_all(rest, "Live", timeout=2000)
        print(f"stolen without the takeover lock after {(time.monotonic() - frozen_at) * 1000:.0f} ms")
        session, times = write_and_time(claude, rest, "after a silent holder")
        freezer.thaw(notice=False)
    holder.wait_for_function("() => helmMonitor.connection().role === 'follower'", timeout=2000)
    expect(row(holder, session.id)).to_be_visible(timeout=2000)
    expect_stream_clients(server, 1)


# Counts the notifications a page raises (before its own scripts run).
COUNT_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__helmNotes = 0;
  class Counting extends Real {
    constructor(title, options) {
      window.__helmNotes += 1;
      super(title, options);
    }
  }
  window.Notification = Counting;
})();
"""


def test_only_the_holder_notifies(new_page, console, server, claude, live_pids):
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("Refactor the router")
    first = new_page()
    context = first.context
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(COUNT_NOTIFICATIONS)
    context.add_init_script("localStorage.setItem('helm-monitor.notify', 'on')")
    pages = [first] + [context.new_page() for _ in range(3)]
    for page in pages[1:]:
        console.watch(page)
    for page in pages:
        page.goto(dashboard_url(server))
    expect_all(pages, "Live")
    assert all(p.evaluate("Notification.permission") == "granted" for p in pages)

    (pid,) = live_pids(1)
    claude.register(pid, session.id, status="busy", cwd=session.cwd)
    for page in pages:
        expect(field(page, session.id, "status")).to_have_text("busy", timeout=2000)
    claude.register(pid, session.id, status="waiting", cwd=session.cwd)
    for page in pages:  # every tab's store saw the transition...
        expect(field(page, session.id, "status")).to_have_text("waiting", timeout=2000)
    # ...and the browser raised one notification for it, from the holder.
    notes = [p.evaluate("window.__helmNotes") for p in pages]
    assert sum(notes) == 1, notes
    assert notes[pages.index(the_holder(pages))] == 1
