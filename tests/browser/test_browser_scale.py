"""The list at scale (issue 11): a few thousand sessions, of which only the rows near the
viewport exist in the DOM, while the whole list stays reachable, searchable, navigable by
keyboard and live.

The corpus, written before the server starts: SESSIONS Claude Code sessions over PROJECTS
projects; session ``i`` (0 is the newest) is in project ``i % PROJECTS`` and was last
written ``i + 1`` minutes ago, so the page's order is known: the projects 0, 1, 2, ...
(each group's newest session is session ``p``), and within a project the sessions by
age. Every third session has a title of its own, so that rows of both heights (with and
without a prompt line) alternate.
"""

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row
from tests.support.server import wait_until

pytestmark = pytest.mark.browser

SESSIONS = 2500
PROJECTS = 50
# sessions whose prompt holds a word no other holds, in four projects, all far off screen
NEEDLES = (777, 1313, 1999, 2468)
# the DOM holds the rows near the viewport only: far fewer than the sessions
WINDOWED = 200


def iso(ago: dt.timedelta) -> str:
    return (dt.datetime.now(dt.timezone.utc) - ago).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cwd_of(project: int) -> str:
    return f"/home/alice/scale/project-{project:02d}"


def exchange(writer, prompt: str, ago: dt.timedelta) -> None:
    """A prompt and its reply in one flush, the reply ``ago`` old."""
    prompt_rec = writer.prompt_record(prompt)
    prompt_rec["timestamp"] = iso(ago + dt.timedelta(seconds=20))
    replies = writer.assistant_records("Done.")
    for rec in replies:
        rec["timestamp"] = iso(ago)
    writer.write(prompt_rec, replies)


class Corpus:
    def __init__(self, claude):
        self.writers = []
        for i in range(SESSIONS):
            w = claude.session(cwd=cwd_of(i % PROJECTS))
            word = " needle" if i in NEEDLES else ""
            exchange(w, f"Scale session {i:04d}: tidy module {i}{word}", self.age(i))
            if i % 3 == 0:
                w.title(f"Scale session {i:04d}, titled")
            self.writers.append(w)
        # the page's order: groups by their newest session, each group newest first
        self.order = [self.writers[i].id for p in range(PROJECTS) for i in range(p, SESSIONS, PROJECTS)]

    @staticmethod
    def age(i: int) -> dt.timedelta:
        return dt.timedelta(minutes=i + 1)

    def index(self, session_id: str) -> int:
        return self.order.index(session_id)


@pytest.fixture
def corpus(claude):
    """The sessions (tests ask for it before ``server``: the server starts on the whole corpus)."""
    return Corpus(claude)


def load(page, server):
    page.goto(dashboard_url(server))
    # 2,500 sessions in the init: on a loaded machine (the suite's browsers) more than 5 s
    expect(page.locator("[data-connection-status]")).to_have_text("Live", timeout=15_000)
    expect(page.locator("#total-count")).to_have_text(f"{SESSIONS} sessions", timeout=15_000)
    page.wait_for_function("() => document.querySelector('[data-session-id]') !== null", timeout=10_000)


def rendered_ids(page) -> list[str]:
    """The ids of the rows in the DOM and displayed, in document order."""
    return page.eval_on_selector_all(
        "[data-session-id]", "els => els.filter(e => e.getClientRects().length).map(e => e.dataset.sessionId)")


def in_dom(page, session_id: str) -> bool:
    return page.evaluate("id => document.querySelector(`[data-session-id=\"${id}\"]`) !== null", session_id)


IN_VIEW = """id => {
  const el = document.querySelector(`[data-session-id="${id}"]`);
  if (!el || !el.getClientRects().length) return false;
  const r = el.getBoundingClientRect();
  return r.top >= 0 && r.bottom <= innerHeight;
}"""


def focused_id(page):
    return page.evaluate("() => { const r = document.activeElement && document.activeElement.closest('[data-session-id]');"
                         " return r ? r.dataset.sessionId : null; }")


def row_count(page) -> int:
    return page.evaluate("() => document.querySelectorAll('[data-session-id]').length")


def assert_windowed(page):
    n = row_count(page)
    assert 0 < n < WINDOWED, f"{n} rows in the DOM for {SESSIONS} sessions: the list is not windowed"


def scroll_until_in_view(page, session_id: str, step: int = 600, steps: int = 80) -> None:
    """Scroll down a screen at a time until the row is in view (a deadline of ``steps`` screens)."""
    for _ in range(steps):
        if page.evaluate(IN_VIEW, session_id):
            return
        page.evaluate("dy => new Promise(done => { window.scrollBy(0, dy); "
                      "requestAnimationFrame(() => requestAnimationFrame(done)); })", step)
    raise AssertionError(f"the row of {session_id} never scrolled into view")


def test_the_whole_list_is_reachable_in_order_and_windowed(corpus, server, page):
    load(page, server)
    ids = rendered_ids(page)
    assert ids == corpus.order[:len(ids)]  # the top of the list, in order
    assert_windowed(page)
    heights = page.eval_on_selector_all("[data-session-id]", "els => [...new Set(els.map(e => e.offsetHeight))]")
    assert len(heights) == 2, heights  # rows with a prompt line and rows without
    # The container is as tall as the whole list: the scrollbar is true.
    height = page.evaluate("() => document.scrollingElement.scrollHeight")
    assert height > SESSIONS * 50, height

    # Half-way down: the rows there, in order.
    page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight / 2)")
    page.wait_for_function("first => !document.querySelector(`[data-session-id=\"${first}\"]`)",
                           arg=corpus.order[0], timeout=5000)
    ids = rendered_ids(page)
    start = corpus.index(ids[0])
    assert 0 < start and ids == corpus.order[start:start + len(ids)]
    assert_windowed(page)

    # The bottom: the oldest session of the last project, last.
    page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
    page.wait_for_function(IN_VIEW, arg=corpus.order[-1], timeout=5000)
    ids = rendered_ids(page)
    assert ids == corpus.order[-len(ids):]
    assert_windowed(page)


def test_keyboard_walks_past_the_rendered_window(corpus, server, page):
    load(page, server)
    steps = PROJECTS + 15  # into the second group
    target = corpus.order[steps]
    assert not in_dom(page, target), "the row to walk to is rendered already: nothing to walk past"
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    assert focused_id(page) == corpus.order[0]
    for i in range(1, steps + 1):
        page.keyboard.press("j" if i % 2 else "ArrowDown")
        assert focused_id(page) == corpus.order[i], f"step {i}"
    assert page.evaluate(IN_VIEW, target)
    assert_windowed(page)
    for i in range(steps - 1, steps - 4, -1):
        page.keyboard.press("k" if i % 2 else "ArrowUp")
        assert focused_id(page) == corpus.order[i]
    # Enter opens the focused row's session, and it stays marked.
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_visible()
    expect(row(page, corpus.order[steps - 3])).to_have_class("row row-selected")
    expect(page.locator("#detail-title")).to_contain_text("Scale session")
    assert page.evaluate(IN_VIEW, corpus.order[steps - 3])  # beside the conversation, in the list pane
    # Escape closes it; the focus is back on its row, in view.
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    assert focused_id(page) == corpus.order[steps - 3]
    assert page.evaluate(IN_VIEW, corpus.order[steps - 3])
    assert_windowed(page)


def test_search_filters_across_every_session(corpus, server, page):
    load(page, server)
    needles = [corpus.writers[i].id for i in NEEDLES]
    assert not any(in_dom(page, n) for n in needles), "the sessions to find are rendered already"
    search = page.locator('input[type="search"]')
    search.press_sequentially("needle")
    expect(page.locator("[data-session-id]")).to_have_count(len(needles))
    want = sorted(needles, key=corpus.index)
    assert rendered_ids(page) == want
    # A row's link keeps the search (a new tab opens the session with it); so does the address.
    href = row(page, want[0]).locator("a").get_attribute("href")
    assert "q=needle" in href and "session=" in href, href
    expect(page).to_have_url(f"{server.url}/?q=needle")
    expect(page.locator("#empty")).to_be_hidden()
    group = page.locator(f'.group[data-project="{cwd_of(1313 % PROJECTS)}"]')
    expect(group.locator(".group-counts")).to_have_text("1 session")
    # A session's id finds it too; every word must match.
    search.fill(f"{corpus.writers[1999].id[:13]} needle")
    expect(page.locator("[data-session-id]")).to_have_count(1)
    expect(row(page, corpus.writers[1999].id)).to_be_visible()
    search.fill("needle nothing-like-this")
    expect(page.locator("#empty")).to_be_visible()
    search.fill("")
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", corpus.order[0])
    assert not any(in_dom(page, n) for n in needles)
    assert_windowed(page)


def test_a_live_update_off_screen_shows_once_scrolled_into_view(corpus, server, page):
    load(page, server)
    target_index = PROJECTS * 3 + 10  # the 11th session of the 4th project: far below the fold
    target = corpus.order[target_index]
    i = next(n for n, w in enumerate(corpus.writers) if w.id == target)
    writer = corpus.writers[i]
    assert not in_dom(page, target)
    # Two more messages and a new title, written as of its own time: its place does not change.
    exchange(writer, "One more thing for this old session", corpus.age(i) - dt.timedelta(seconds=5))
    writer.title("Renamed while off screen")

    def delivered():
        return next((s for s in server.get_json("/api/sessions/all") if s["id"] == target), {}).get("title")
    wait_until(lambda: delivered() == "Renamed while off screen", 10, 0.1, "the server to see the change")
    # A later change to the top row: once it shows, the page has the earlier one too.
    top = corpus.writers[0]
    exchange(top, "A fresh prompt on the top session", dt.timedelta(0))
    expect(field(page, top.id, "messageCount")).to_have_text("4", timeout=5000)
    assert not in_dom(page, target)

    scroll_until_in_view(page, target)
    expect(field(page, target, "title")).to_have_text("Renamed while off screen")
    expect(field(page, target, "messageCount")).to_have_text("4")
    ids = rendered_ids(page)
    start = corpus.index(ids[0])
    assert ids == corpus.order[start:start + len(ids)]  # still in its place, in order
    assert_windowed(page)


FIRST_IN_VIEW = """() => {
  for (const el of document.querySelectorAll('[data-session-id]')) {
    const r = el.getBoundingClientRect();
    if (r.height && r.top >= 0) return [el.dataset.sessionId, r.top];
  }
  return null;
}"""


def test_a_new_session_appears_at_the_top(corpus, server, claude, page):
    load(page, server)
    assert_windowed(page)
    # Scrolled down the list, what is on screen stays put while a session is added above.
    page.evaluate("() => window.scrollTo(0, 20000)")
    page.wait_for_function("first => !document.querySelector(`[data-session-id=\"${first}\"]`)",
                           arg=corpus.order[0], timeout=5000)
    before = page.evaluate(FIRST_IN_VIEW)
    fresh = claude.session(cwd="/home/alice/scale/brand-new")
    exchange(fresh, "A session that just started", dt.timedelta(0))
    expect(page.locator("#total-count")).to_have_text(f"{SESSIONS + 1} sessions", timeout=5000)
    page.wait_for_function("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
    after = page.evaluate(f"() => {{ const el = document.querySelector('[data-session-id=\"{before[0]}\"]');"
                          " return el ? el.getBoundingClientRect().top : null; }")
    assert after is not None and abs(after - before[1]) < 1, (before, after)

    page.evaluate("() => window.scrollTo(0, 0)")
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", fresh.id, timeout=5000)
    assert page.evaluate(IN_VIEW, fresh.id)
    expect(page.locator("#total-count")).to_have_text(f"{SESSIONS + 1} sessions")
    ids = rendered_ids(page)
    assert ids == [fresh.id] + corpus.order[:len(ids) - 1]
    assert_windowed(page)


def test_focus_is_kept_across_updates_and_scrolling(corpus, server, claude, page):
    load(page, server)
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("j")
    page.keyboard.press("j")
    focused = corpus.order[2]
    assert focused_id(page) == focused
    page.evaluate("() => document.querySelectorAll('[data-session-id]').forEach(el => el.__kept = true)")

    # A new session above it, then its own session moves (newest of its project now).
    fresh = claude.session(cwd="/home/alice/scale/brand-new")
    exchange(fresh, "A session that just started", dt.timedelta(seconds=30))
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", fresh.id, timeout=5000)
    i = next(n for n, w in enumerate(corpus.writers) if w.id == focused)
    exchange(corpus.writers[i], "Moving this one up", dt.timedelta(0))
    expect(page.locator("[data-session-id]").first).to_have_attribute("data-session-id", focused, timeout=5000)
    assert focused_id(page) == focused
    # Every row but the new one was on screen before: the same nodes.
    assert page.evaluate("""id => [...document.querySelectorAll('[data-session-id]')]
        .filter(el => el.dataset.sessionId !== id).every(el => el.__kept === true)""", fresh.id)
    assert page.evaluate("id => document.querySelector(`[data-session-id=\"${id}\"]`).__kept === true", focused)

    # Scrolled far away, the focused row stays focused; the next row is the one after it.
    page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
    page.wait_for_function(IN_VIEW, arg=corpus.order[-1], timeout=5000)
    assert focused_id(page) == focused
    assert_windowed(page)
    # Its project's group is first now: that group's old first row comes next.
    page.keyboard.press("j")
    assert focused_id(page) == corpus.order[0]
    page.wait_for_function(IN_VIEW, arg=corpus.order[0], timeout=5000)
    assert_windowed(page)
