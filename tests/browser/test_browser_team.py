"""Many hosts, one dashboard, in a real Chromium (SPEC sections 4, 7 and 9; design/TEAM_SCALE.md 6.8,
6.9, 9.5): the host chips and the host filter once more than one host is known, each host's state
(``[data-host-status]``), stale rows of a host gone silent, and the banner (``[data-feed-status]``)
while the web tier cannot reach the engine. Every part is real:
one redis-server, ``helm-monitor web`` reading it, hosts that write the agent's wire format
(tests/support/team.py: their heartbeats under the test's control) and, for the remote session
view, a real ``helm-monitor agent`` watching its own Claude Code directory.

And the other side: this host's own dashboard (no engine) looks as it always did: no host chip,
no host filter, one host online (its element hidden), no banner.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, keyed_row
from tests.browser.tabs_helpers import open_tabs, the_holder
from tests.support.claude import ClaudeDir
from tests.support.redis import RedisServer
from tests.support.server import wait_until
from tests.support.team import SimHost

pytestmark = pytest.mark.browser

# Heartbeats every 0.2 s, offline after 0.6 s of silence (the engine's clock).
FAST = {"HELM_TEAM_HEARTBEAT_S": "0.2", "HELM_TEAM_OFFLINE_S": "0.6"}
SHARED_ID = "0a1b2c3d-0000-4000-8000-00000000beef"


def host_pill(page, host: str):
    return page.locator(f'[data-host-status="{host}"]')


def visible_rows(page):
    return page.locator("[data-session-key]:visible")


# -- this host alone ---------------------------------------------------------------------------

def test_one_host_shows_no_host_column_no_filter_and_no_banner(page, claude, server_factory):
    server = server_factory(claude.root, env={"HELM_HOST_NAME": "desk"})
    page.goto(dashboard_url(server))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    # No session yet: the host is known from the host-status message alone.
    expect(host_pill(page, "desk")).to_have_attribute("data-state", "online")
    session = claude.session(cwd="/home/alice/code/webapp")
    session.turn("a session of this host", "ok")
    row = keyed_row(page, f"desk:claude-code:{session.id}")
    expect(row).to_be_visible()
    expect(page.locator("[data-host-status]")).to_have_count(1)
    expect(host_pill(page, "desk")).to_have_attribute("data-state", "online")
    expect(page.locator("#hosts")).to_be_hidden()  # the single dashboard's look is unchanged
    expect(row.locator('[data-field="host"]')).to_be_hidden()
    expect(page.locator("#host-filter")).to_be_hidden()
    feed = page.locator("[data-feed-status]")
    expect(feed).to_be_hidden()
    expect(feed).to_have_attribute("data-state", "ok")
    assert row.get_attribute("title") is None and "row-stale" not in (row.get_attribute("class") or "")


def test_while_polling_the_hosts_come_from_the_hosts_route(page, console, claude, server_factory):
    console.allow(r"EventSource|net::ERR_FAILED|Failed to load resource|WebSocket")
    server = server_factory(claude.root, env={"HELM_HOST_NAME": "desk"})
    # Neither the event stream nor the WebSocket gets through (a proxy in the way): the page polls.
    page.route("**/api/sessions/stream*", lambda route: route.abort())
    page.route_web_socket("**/api/sessions/ws*", lambda ws: ws.close())
    page.goto(dashboard_url(server, backoff=20, poll=200))
    expect(page.locator("[data-connection-status]")).to_have_text("Polling", timeout=10_000)
    # No session to name the host: /api/hosts does.
    expect(host_pill(page, "desk")).to_have_attribute("data-state", "online")
    expect(page.locator("#hosts")).to_be_hidden()


# -- a team ---------------------------------------------------------------------------------

@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def web_tier(server_factory, tmp_path, redis):
    """``helm-monitor web``: reads no files, only the engine."""
    return server_factory(tmp_path / "web" / ".claude", role="web",
                          args=["--redis-url", redis.url, "--host-name", "web"], env=FAST)


@pytest.fixture
def team(tmp_path, redis, server_factory):
    """Two hosts publishing in the real wire format (tests/support/team.py), heartbeating faster
    than the web tier's offline time: the same session id on both, and one more on the laptop."""
    laptop, runner = SimHost(redis.url, "laptop"), SimHost(redis.url, "ci-runner-1")
    try:
        laptop.new(SHARED_ID, title="on the laptop", projectPath="/home/alice/code/app")
        runner.new(SHARED_ID, title="on the runner", projectPath="/builds/app")
        other = laptop.new(title="only on the laptop", projectPath="/home/alice/code/api")
        for host in (laptop, runner):
            host.beat(0.1)
        srv = web_tier(server_factory, tmp_path, redis)
        keys = {f"laptop:claude-code:{SHARED_ID}", f"ci-runner-1:claude-code:{SHARED_ID}", other["key"]}
        wait_until(lambda: {s["key"] for s in srv.get_json("/api/sessions/all")} == keys, 15,
                   message="both hosts' sessions on the web tier")
        yield {"web": srv, "redis": redis, "laptop": laptop, "runner": runner, "keys": keys}
    finally:
        laptop.close()
        runner.close()


def test_two_hosts_are_named_filtered_and_marked_offline(new_page, console, team):
    srv = team["web"]
    pages = open_tabs(new_page, console, dashboard_url(srv), 2)  # a holder and a follower (relayed)
    holder = the_holder(pages)
    for page in pages:
        expect(page.locator("[data-connection-status]")).to_have_text("Live")
        # One row per key: the same id on two hosts is two rows, each naming its host.
        expect(page.locator("[data-session-key]")).to_have_count(3)
        expect(page.locator(f'[data-session-id="{SHARED_ID}"]')).to_have_count(2)
        for key in team["keys"]:
            chip = keyed_row(page, key).locator('[data-field="host"]')
            expect(chip).to_be_visible()
            expect(chip).to_have_text(key.split(":")[0])
        expect(page.locator("#hosts")).to_be_visible()
        expect(host_pill(page, "laptop")).to_have_attribute("data-state", "online")
        expect(host_pill(page, "ci-runner-1")).to_have_attribute("data-state", "online")
        expect(page.locator("[data-feed-status]")).to_be_hidden()

    page = holder
    select = page.locator("#host-filter")
    expect(select).to_be_visible()
    assert select.locator("option").evaluate_all("els => els.map(o => o.value)") == ["", "ci-runner-1", "laptop"]
    select.select_option("laptop")
    expect(visible_rows(page)).to_have_count(2)
    assert set(visible_rows(page).evaluate_all("els => els.map(e => e.dataset.sessionKey.split(':')[0])")) == {"laptop"}
    assert "host=laptop" in page.url
    select.select_option("ci-runner-1")
    expect(visible_rows(page)).to_have_count(1)
    expect(visible_rows(page)).to_have_attribute("data-session-key", f"ci-runner-1:claude-code:{SHARED_ID}")
    select.select_option("")
    expect(visible_rows(page)).to_have_count(3)

    # The runner goes silent (no more heartbeats): offline, its row stale, the laptop's not.
    team["runner"].quiet()
    runner_row = f"ci-runner-1:claude-code:{SHARED_ID}"
    for page in pages:
        pill = host_pill(page, "ci-runner-1")
        expect(pill).to_have_attribute("data-state", "offline", timeout=10_000)
        expect(pill).to_contain_text(re.compile(r"offline since \S"))
        expect(host_pill(page, "laptop")).to_have_attribute("data-state", "online")
        expect(keyed_row(page, runner_row)).to_have_class(re.compile(r"\brow-stale\b"))
        expect(keyed_row(page, runner_row)).to_have_attribute("title", re.compile("ci-runner-1 is offline"))
        expect(keyed_row(page, f"laptop:claude-code:{SHARED_ID}")).not_to_have_class(re.compile(r"\brow-stale\b"))
        # Still listed: an offline host's sessions stay, as last heard.
        expect(page.locator("[data-session-key]")).to_have_count(3)
    # The server says so too, in the session itself (SPEC 5 ``stale``).
    wait_until(lambda: next(s for s in srv.get_json("/api/sessions/all") if s["key"] == runner_row)["stale"], 5,
               message="the runner's session stale on the web tier")

    # It beats again: online, its row no longer stale.
    team["runner"].beat(0.1)
    for page in pages:
        expect(host_pill(page, "ci-runner-1")).to_have_attribute("data-state", "online", timeout=10_000)
        expect(keyed_row(page, runner_row)).not_to_have_class(re.compile(r"\brow-stale\b"))


def test_the_banner_shows_while_the_engine_is_down_and_goes_when_it_is_back(new_page, console, team):
    srv, redis = team["web"], team["redis"]
    pages = open_tabs(new_page, console, dashboard_url(srv), 2)
    the_holder(pages)
    for page in pages:
        expect(page.locator("[data-session-key]")).to_have_count(3)
        expect(page.locator("[data-feed-status]")).to_be_hidden()

    redis.kill9()
    for page in pages:
        banner = page.locator('[data-feed-status][data-state="down"]')
        expect(banner).to_be_visible(timeout=15_000)
        expect(banner).to_contain_text(re.compile(r"Live updates paused — data as of \d"))
        # The web tier keeps serving what it had, and the page keeps showing it.
        expect(page.locator("[data-session-key]")).to_have_count(3)
        expect(page.locator("[data-connection-status]")).to_have_text("Live")

    # A tab opened meanwhile learns it from its first messages (or from the holder's snapshot).
    late = pages[0].context.new_page()
    console.watch(late)
    late.goto(dashboard_url(srv))
    expect(late.locator('[data-feed-status][data-state="down"]')).to_be_visible()
    expect(late.locator("[data-session-key]")).to_have_count(3)
    pages.append(late)

    redis.start()  # empty (no persistence): each host publishes its whole state again, as an agent does
    for host in (team["laptop"], team["runner"]):
        wait_until(host.resync, 10, message=f"{host.name} resynced")
    for page in pages:
        expect(page.locator("[data-feed-status]")).to_be_hidden(timeout=20_000)
        expect(page.locator("[data-feed-status]")).to_have_attribute("data-state", "ok")
        expect(page.locator("[data-session-key]")).to_have_count(3, timeout=15_000)
        expect(host_pill(page, "laptop")).to_have_attribute("data-state", "online", timeout=10_000)


# -- the session view of a remote session ------------------------------------------------------

def test_a_remote_session_s_view_says_where_its_transcript_is(page, tmp_path, redis, server_factory):
    """A real ``helm-monitor agent`` publishes the session and its latest messages."""
    claude = ClaudeDir(tmp_path / "laptop" / ".claude")
    server_factory(claude.root, role="agent", args=["--redis-url", redis.url, "--host-name", "laptop"], env=FAST)
    session = claude.session(cwd="/home/alice/code/api")
    session.turn("only on the laptop", "a reply kept on the laptop")
    srv = web_tier(server_factory, tmp_path, redis)
    key = f"laptop:claude-code:{session.id}"
    page.goto(dashboard_url(srv))
    keyed_row(page, key).locator("a").click()
    note = page.locator("#remote-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text(re.compile("full transcript stays on its host laptop", re.I))
    answer = page.request.get(f"{srv.url}/api/sessions/{key}").json()
    assert answer.get("remote") is True
    expect(page.locator("#messages")).to_contain_text("a reply kept on the laptop", timeout=10_000)
    expect(page.locator("#messages")).to_contain_text("only on the laptop")
    expect(page.locator("#detail-meta")).to_contain_text("laptop")
    expect(page.locator("#load-earlier")).to_be_hidden()
