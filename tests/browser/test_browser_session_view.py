"""The session view: the conversation, paged, following new messages, secrets masked."""

import pytest
from playwright.sync_api import expect

from tests.support.server import wait_until
from tests.browser.helpers import dashboard_url, key_of, keyed_row, row, session_url

pytestmark = pytest.mark.browser

FAKE_KEY = "sk-ant-api03-" + "Zq7" * 14
FAKE_GITHUB = "ghp_" + "a1B2c3D4e5" * 4


def open_view(page, server, session):
    page.goto(dashboard_url(server))
    row(page, session.id).locator("a").click()
    expect(page.locator("#detail")).to_be_visible()
    return page.locator("#messages")


def test_shows_the_conversation_and_follows_new_messages(page, server, claude):
    session = claude.session(cwd="/home/alice/code/webapp")
    session.prompt("List the files")
    session.write(session.assistant_records("Let me look.", tool_use={"id": "toolu_ls", "name": "Bash",
                                                                      "input": {"command": "ls -la"}}))
    session.write(session.tool_result_record("toolu_ls", "README.md\nsetup.cfg"))
    session.reply("There are two files.")

    messages = open_view(page, server, session)
    # v2: the address names the session by its key (<host>:claude-code:<id>).
    key = key_of(page, session.id)
    assert key.endswith(f":claude-code:{session.id}")
    expect(page).to_have_url(session_url(server, key))
    expect(page.locator("#detail-title")).to_have_text("List the files")
    expect(messages.locator(".msg-prompt .msg-body")).to_have_text("List the files")
    # A reply split over two records (text, then tool call) is one bubble; the result sits with its call.
    tool = messages.locator(".tool", has_text="Bash")
    expect(tool.locator(".tool-input")).to_contain_text("ls -la")
    expect(tool.locator(".tool-result")).to_contain_text("README.md")
    expect(messages.locator(".msg-reply").first).to_contain_text("Let me look.")
    expect(messages.locator(".msg-reply").last).to_contain_text("There are two files.")

    session.turn("And the hidden ones?", "There are none.")
    expect(messages.locator(".msg-prompt").last).to_contain_text("And the hidden ones?", timeout=3000)
    expect(messages.locator(".msg-reply").last).to_contain_text("There are none.", timeout=3000)
    # Each message is shown once, even when the stream sends several updates.
    expect(messages.locator(".msg-prompt")).to_have_count(2)

    # Back in the browser closes the view (it is a history entry); Esc too.
    page.go_back()
    expect(page.locator("#detail")).to_be_hidden()
    page.go_forward()
    expect(page.locator("#detail")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page).to_have_url(f"{server.url}/")


def test_loads_the_tail_then_earlier_pages(page, server, claude):
    session = claude.session()
    records = []
    for i in range(130):  # 260 messages: a prompt and a reply each
        records.append(session.prompt_record(f"prompt number {i}"))
        records.extend(session.assistant_records(f"reply number {i}"))
    session.write(*records)
    messages = open_view(page, server, session)
    expect(messages.locator(".msg")).to_have_count(40)  # the tail: static/view.js TAIL_SIZE
    expect(messages.locator(".msg").first).to_have_attribute("data-index", "220")
    expect(messages.locator(".msg").last).to_contain_text("reply number 129")

    earlier = page.locator("#load-earlier")
    expect(earlier).to_contain_text("220 more")
    # The button, pressed where it is (scrolled into view it loads by itself as well: scrolling
    # up is in test_browser_transcript.py).
    earlier.dispatch_event("click")  # then pages of 100
    expect(messages.locator(".msg")).to_have_count(140)
    expect(messages.locator(".msg").first).to_have_attribute("data-index", "120")
    earlier.dispatch_event("click")
    expect(messages.locator(".msg")).to_have_count(240)
    expect(messages.locator(".msg").first).to_have_attribute("data-index", "20")
    earlier.dispatch_event("click")
    expect(messages.locator(".msg")).to_have_count(260)
    expect(messages.locator(".msg").first).to_contain_text("prompt number 0")
    expect(earlier).to_be_hidden()


def test_opens_from_a_bookmark(page, server, claude):
    """A first-version bookmark names the session by its bare Claude Code id: it still opens,
    and the address is rewritten to the key (without a new history entry)."""
    session = claude.session()
    session.turn("bookmarked question", "bookmarked answer")
    key_of_api(server, session.id)  # listed: a bookmark names a session that exists
    page.goto(dashboard_url(server, q="bookmarked", session=session.id))
    expect(page.locator("#messages .msg-reply")).to_contain_text("bookmarked answer")
    expect(row(page, session.id)).to_have_class("row row-selected")
    key = key_of(page, session.id)
    expect(page).to_have_url(session_url(server, key, q="bookmarked"))
    expect(page.locator("#messages .msg-reply .msg-who")).to_have_text("Claude")
    page.go_back()  # replaced, not pushed: no entry with the bare id is left behind
    assert page.url == "about:blank"


def test_opens_from_a_bookmark_before_the_list_arrives(page, console, server, claude):
    """The bare id is resolved through /api/claude-sessions/<id> when the list is not there yet."""
    console.allow(r"net::ERR_|Failed to load resource|EventSource")
    session = claude.session()
    session.turn("early question", "early answer")
    key = key_of_api(server, session.id)
    page.route("**/api/sessions/stream", lambda route: route.abort())  # no list from the stream
    page.route("**/api/sessions/all", lambda route: route.abort())  # nor from polling
    resolved = []
    page.on("request", lambda r: "/api/claude-sessions/" in r.url and resolved.append(r.url))
    page.goto(dashboard_url(server, session=session.id, backoff=60_000))
    expect(page.locator("#messages .msg-reply")).to_contain_text("early answer")
    expect(page).to_have_url(dashboard_url(server, session=key, backoff=60_000))
    expect(page.locator("#detail-title")).to_have_text("early question")
    assert resolved and resolved[0].split("?")[0].endswith(f"/api/claude-sessions/{session.id}")


def test_a_bookmark_resolves_from_the_list(page, console, server, claude):
    """Without an answer from /api/claude-sessions/<id>, the list names the key of the bare id."""
    console.allow(r"net::ERR_|Failed to load resource")
    session = claude.session()
    session.turn("listed question", "listed answer")
    key = key_of_api(server, session.id)
    page.route("**/api/claude-sessions/**", lambda route: route.abort())
    page.goto(dashboard_url(server, session=session.id))
    expect(page.locator("#messages .msg-reply")).to_contain_text("listed answer")
    expect(keyed_row(page, key)).to_have_class("row row-selected")
    expect(page).to_have_url(session_url(server, key))


def key_of_api(server, session_id: str) -> str:
    """The key the server gives a Claude Code session, once it has noticed it."""
    def listed():
        return next((s["key"] for s in server.get_json("/api/sessions/all") if s["id"] == session_id), None)
    return wait_until(listed, 5, 0.05, f"the server to list {session_id}")


def test_opens_from_a_key_bookmark(page, server, claude):
    session = claude.session()
    session.turn("keyed question", "keyed answer")
    key = key_of_api(server, session.id)
    page.goto(session_url(server, key))
    expect(page.locator("#messages .msg-reply")).to_contain_text("keyed answer")
    expect(keyed_row(page, key)).to_have_class("row row-selected")
    expect(page).to_have_url(session_url(server, key))


def test_unknown_session_is_explained(page, console, server):
    console.allow(r"404")
    page.goto(dashboard_url(server, session="00000000-0000-0000-0000-000000000000"))
    expect(page.locator("#conversation-state")).to_have_text("This session no longer exists.")
    # The address keeps what was asked for: nothing to rewrite it to.
    expect(page).to_have_url(dashboard_url(server, session="00000000-0000-0000-0000-000000000000"))


def test_unknown_session_key_is_explained(page, console, server):
    console.allow(r"404")
    key = "elsewhere:codex:0000-gone"
    page.goto(session_url(server, key))
    expect(page.locator("#conversation-state")).to_have_text("This session no longer exists.")
    expect(page).to_have_url(session_url(server, key))


def test_a_fake_api_key_in_a_tool_result_is_masked(page, server, claude):
    session = claude.session()
    session.prompt("print the environment")
    session.write(session.assistant_records(None, tool_use={"id": "toolu_env", "name": "Bash",
                                                            "input": {"command": "env | grep KEY"}}))
    session.write(session.tool_result_record("toolu_env", f"ANTHROPIC_API_KEY={FAKE_KEY}\nGH={FAKE_GITHUB}\n"))
    messages = open_view(page, server, session)
    result = messages.locator(".tool-result")
    expect(result).to_contain_text("ANTHROPIC_API_KEY=")
    expect(result).to_contain_text("\u2022\u2022\u2022\u2022\u2022\u2022")
    text = page.locator("body").inner_text()
    assert FAKE_KEY not in text and FAKE_KEY[13:30] not in text
    assert FAKE_GITHUB not in text
    assert FAKE_KEY not in page.content()


def test_the_page_masks_secrets_itself(page, server):
    """Defence in depth: the page masks what the server might have missed."""
    page.goto(dashboard_url(server))
    cases = {
        f"key {FAKE_KEY} end": "key sk-ant-api03-\u2022\u2022\u2022\u2022\u2022\u2022 end",
        f"token {FAKE_GITHUB}": "token ghp_\u2022\u2022\u2022\u2022\u2022\u2022",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop": "github_pat_\u2022\u2022\u2022\u2022\u2022\u2022",
        "aws AKIAIOSFODNN7EXAMPLE": "aws AKIAIOSF\u2022\u2022\u2022\u2022\u2022\u2022",
        "slack xoxb-1234567890-abcdefghij": "slack xoxb-\u2022\u2022\u2022\u2022\u2022\u2022",
        "Authorization: Bearer abcdef0123456789abcdef": "Authorization: Bearer \u2022\u2022\u2022\u2022\u2022\u2022",
        "postgres://admin:hunter2hunter@db:5432/app": "postgres://admin:\u2022\u2022\u2022\u2022\u2022\u2022@db:5432/app",
        "password=correcthorse": "password=\u2022\u2022\u2022\u2022\u2022\u2022",
        "sk-openai-style sk-proj-abcdefghijklmnopqrstuv": "sk-openai-style sk-proj-\u2022\u2022\u2022\u2022\u2022\u2022",
        "curl -H 'Bearer Zx81kLmPq0RsTuVw'": "curl -H 'Bearer \u2022\u2022\u2022\u2022\u2022\u2022'",
        "redis://:hunter2hunter@cache:6379": "redis://:\u2022\u2022\u2022\u2022\u2022\u2022@cache:6379",
        "nothing secret here: ask-me-anything": "nothing secret here: ask-me-anything",
        "a basic understanding of token authentication": "a basic understanding of token authentication",
    }
    for raw, masked in cases.items():
        assert page.evaluate("s => helmMonitor.maskSecrets(s)", raw) == masked, raw
