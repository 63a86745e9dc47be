"""Helpers for the browser tests of one stream per browser (tabs) and the WebSocket fallback.

Several tabs of one Chromium context (one origin: they share Web Locks and BroadcastChannel);
``helmMonitor.connection()`` says each tab's role and transport; arrival times of a row are
taken in the page itself (a MutationObserver notes ``Date.now()`` when the row appears), so
they are measured from the write, not from when the test happened to look.
"""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.support.server import wait_until


def open_tabs(new_page, console, url: str, n: int):
    """``n`` tabs of the dashboard in ONE browser context, each loaded and watched for problems."""
    first = new_page()
    pages = [first]
    for _ in range(n - 1):
        page = first.context.new_page()
        console.watch(page)
        pages.append(page)
    for i, page in enumerate(pages):
        try:
            page.goto(url)
        except Exception:
            # A tab that cannot even load (no connection left for it: issue 11) is closed, so that
            # the teardown's look at every page does not wait on its navigation.
            for stuck in pages[i:]:
                stuck.close()
            raise
    return pages


def connection(page) -> dict:
    return page.evaluate("helmMonitor.connection()")


def roles(pages) -> list[str]:
    return [connection(p)["role"] for p in pages]


def expect_all(pages, word: str, timeout: float = 10_000) -> None:
    """Every tab's indicator reads ``word`` (the deadline is shared by all tabs)."""
    deadline = time.monotonic() + timeout / 1000
    for page in pages:
        remaining = max(1.0, (deadline - time.monotonic()) * 1000)
        expect(page.locator("[data-connection-status]")).to_have_text(word, timeout=remaining)


def the_holder(pages, timeout: float = 5.0):
    """The one tab that holds the stream, once exactly one does."""
    def one():
        found = [p for p, r in zip(pages, roles(pages)) if r == "holder"]
        return found[0] if len(found) == 1 else None
    return wait_until(one, timeout, 0.02, "exactly one tab to hold the stream")


def stream_clients(server) -> int:
    """Event-stream (and WebSocket) clients the server has now."""
    return server.get_json("/healthz")["clients"]


def expect_stream_clients(server, n: int, timeout: float = 5.0) -> None:
    wait_until(lambda: stream_clients(server) == n, timeout, 0.05, f"the server to have {n} stream client(s)")


def inits_sent(server) -> float:
    """How many ``init`` messages the server has sent (its /metrics): a resumed stream sends none."""
    import urllib.request
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith('helm_events_sent_total{type="init"}'):
            return float(line.split()[-1])
    return 0.0


WATCH_ROW = """(id) => {
  const seen = window.__helmSeen = window.__helmSeen || {};
  const selector = `[data-session-id="${id}"]`;
  const check = () => {
    if (seen[id] === undefined && document.querySelector(selector)) {
      seen[id] = Date.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  check();
}"""


def watch_row(pages, session_id: str) -> None:
    """From now on each tab notes the time ``session_id``'s row appears."""
    for page in pages:
        page.evaluate(WATCH_ROW, session_id)


# Resolves with the time the row appeared, or null at the deadline (checked on a timer: a tab
# that gets few frames still runs its timers, and Playwright's own waits poll on frames).
ARRIVAL = """([id, deadline]) => new Promise((resolve) => {
  const check = () => {
    const seen = window.__helmSeen && window.__helmSeen[id];
    if (seen !== undefined || Date.now() >= deadline) resolve(seen === undefined ? null : seen);
    else setTimeout(check, 10);
  };
  check();
})"""


def arrival_ms(pages, session_id: str, since_ms: float, timeout_ms: float) -> list[float]:
    """How long after ``since_ms`` (epoch ms) the row appeared in each tab; fails at the deadline
    (``since_ms + timeout_ms``) for a tab that has not shown it by then."""
    out = []
    for i, page in enumerate(pages):
        seen = page.evaluate(ARRIVAL, [session_id, since_ms + timeout_ms])
        assert seen is not None, f"tab {i} did not show {session_id} within {timeout_ms:.0f} ms of the write"
        out.append(seen - since_ms)
    return out


def frames_flowing(pages, timeout: float = 3000) -> None:
    """Each tab paints again. Headless Chromium gives a tab that fell behind (a busy machine: 8
    renderers on few cores, another tab closing) one frame a second for a while, whatever the
    page runs; the list renders in requestAnimationFrame, so it would show late what its store
    already holds. Measure arrival times once every tab paints again."""
    for page in pages:
        page.evaluate("window.__helmPainted = false; "
                      "requestAnimationFrame(() => requestAnimationFrame(() => { window.__helmPainted = true; }))")
    for page in pages:
        page.wait_for_function("() => window.__helmPainted === true", timeout=timeout)


def now_ms() -> float:
    return time.time() * 1000


# A follower whose only holder is the test: BroadcastChannel is replaced by one the test
# speaks through (``__helmRelay.deliver``; what the page posts is in ``__helmRelay.posted``),
# and the stream's lock is never granted (the takeover lock never available), so the page
# never holds the stream itself. Installed before the page's own scripts.
FAKE_RELAY = """
(() => {
  const channels = [];
  // The holder the test plays (the newest term it spoke for): alive, as a real one is, it answers
  // a follower's ping with a beat where it stands, so a slow test run never looks like a dead holder.
  let holder = null;
  const send = (data) => {
    for (const ch of channels) ch.dispatchEvent(new MessageEvent('message', {data: structuredClone(data)}));
  };
  window.__helmRelay = {
    posted: [],
    deliver(data) {
      if (data && typeof data.term === 'number' && data.id && (!holder || data.term >= holder.term)) {
        if (!holder || data.term > holder.term || data.id !== holder.id) holder = {term: data.term, id: data.id, seq: 0};
        if (typeof data.seq === 'number') holder.seq = Math.max(holder.seq, data.seq);
        if ('state' in data) holder.state = data.state;
      }
      send(data);
    },
  };
  class FakeChannel extends EventTarget {
    constructor(name) { super(); this.name = name; channels.push(this); }
    postMessage(data) {
      window.__helmRelay.posted.push(structuredClone(data));
      if (data && data.kind === 'ping' && holder) {
        setTimeout(() => send({kind: 'beat', term: holder.term, id: holder.id, seq: holder.seq,
                               ...(holder.state ? {state: holder.state} : {})}), 0);
      }
    }
    close() {}
  }
  window.BroadcastChannel = FakeChannel;
  const never = () => new Promise(() => {});
  const locks = {
    request(name, options, callback) {
      if (typeof options === 'function') { callback = options; options = {}; }
      if (options && options.ifAvailable) return Promise.resolve(callback(null));
      return never();
    },
    query() { return Promise.resolve({held: [], pending: []}); },
  };
  Object.defineProperty(navigator, 'locks', {value: locks, configurable: true});
})();
"""
