"""The session view: the conversation, paged, following new messages, secrets masked."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, row

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
    expect(page).to_have_url(f"{server.url}/?session={session.id}")
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
    expect(messages.locator(".msg")).to_have_count(100)
    expect(messages.locator(".msg").first).to_have_attribute("data-index", "160")
    expect(messages.locator(".msg").last).to_contain_text("reply number 129")

    earlier = page.locator("#load-earlier")
    expect(earlier).to_contain_text("160 more")
    earlier.click()
    expect(messages.locator(".msg")).to_have_count(200)
    expect(messages.locator(".msg").first).to_have_attribute("data-index", "60")
    earlier.click()
    expect(messages.locator(".msg")).to_have_count(260)
    expect(messages.locator(".msg").first).to_contain_text("prompt number 0")
    expect(earlier).to_be_hidden()


def test_opens_from_a_bookmark(page, server, claude):
    session = claude.session()
    session.turn("bookmarked question", "bookmarked answer")
    page.goto(dashboard_url(server, session=session.id))
    expect(page.locator("#messages .msg-reply")).to_contain_text("bookmarked answer")
    expect(row(page, session.id)).to_have_class("row row-selected")


def test_unknown_session_is_explained(page, console, server):
    console.allow(r"404")
    page.goto(dashboard_url(server, session="00000000-0000-0000-0000-000000000000"))
    expect(page.locator("#conversation-state")).to_have_text("This session no longer exists.")


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
