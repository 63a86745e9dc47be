"""Every agent on one page: the real samples of Claude Code, Codex, OpenCode and Gemini CLI listed
side by side, filtered, searched and opened, and live changes of each shown without a reload."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, keyed_row, session_url
from tests.support.codex import CodexHome, Rollout
from tests.support.gemini import GeminiHome, tokens
from tests.support.opencode import WriterProcess

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOST = "testhost"
LABELS = {"claude-code": "Claude", "codex": "Codex", "opencode": "OpenCode", "gemini": "Gemini"}
# The samples: 4 Claude Code transcripts, 5 Codex rollouts, 5 OpenCode sessions, 5 Gemini CLI chats.
COUNTS = {"claude-code": 4, "codex": 5, "opencode": 5, "gemini": 5}
# One session of each agent that ran the shell tool, then was resumed with a follow-up prompt.
TOOL_SESSIONS = {
    "claude-code": ("79a3bb72-fd99-4d90-8588-85c351d684ad", "Session 2 in api-server", "Bash"),
    "codex": ("01a23041-3909-7322-bdeb-f1b242c53929", "Session 2 in beta", "exec_command"),
    "opencode": ("ses_dcfc012fbffemoZuyiVAimVWCV", "Session 2 in beta", "bash"),
    # (resumed: the CLI rewrote the call as a functionCall part, which names the tool, not its display name)
    "gemini": ("ace2799a-977a-4ba4-aed3-33b94d17d73c", "Session 2 in beta", "run_shell_command"),
}
FAKE_KEY = "sk-proj-" + "Q9x" * 12


def key(source: str, session_id: str) -> str:
    return f"{HOST}:{source}:{session_id}"


@pytest.fixture
def homes(tmp_path, sample_dir):
    """Copies of the real samples of all four agents."""
    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(FIXTURES / name, dest)
        return dest
    return {
        "claude": sample_dir("claude-code-2.1.330"),
        "codex": copy("codex-0.171.0") / "home" / ".codex",
        "opencode": copy("opencode-1.18.33") / "home" / ".local" / "share" / "opencode" / "opencode.db",
        "gemini": copy("gemini-0.61.0") / "home" / ".gemini",
    }


@pytest.fixture
def agents(homes, server_factory):
    """A server reading every agent's sample."""
    return server_factory(homes["claude"], env={
        "HELM_CODEX_DIR": str(homes["codex"]), "HELM_OPENCODE_DB": str(homes["opencode"]),
        "HELM_GEMINI_DIR": str(homes["gemini"]), "HELM_HOST_NAME": HOST})


def load(page, server, **params):
    page.goto(dashboard_url(server, **params))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    expect(page.locator("[data-session-key]")).to_have_count(sum(COUNTS.values()))


def visible_sources(page) -> list[str]:
    return page.locator("[data-session-key]:visible [data-field='source']").evaluate_all(
        "els => els.map(el => el.dataset.source)")


def test_every_row_shows_its_agent(page, agents):
    load(page, agents)
    rows = page.locator("[data-session-key]").evaluate_all("""els => els.map(el => ({
        key: el.dataset.sessionKey, id: el.dataset.sessionId,
        source: el.querySelector('[data-field="source"]').dataset.source,
        label: el.querySelector('[data-field="source"]').textContent,
        host: el.querySelector('[data-field="host"]').hidden}))""")
    seen: dict[str, int] = {}
    for r in rows:
        assert r["key"] == key(r["source"], r["id"]), r
        assert r["label"] == LABELS[r["source"]], r
        assert r["host"] is True, r  # one host: no host chip
        seen[r["source"]] = seen.get(r["source"], 0) + 1
    assert seen == COUNTS
    # Labels are shown as written (the chip's case is a style), in an accessible name too.
    chip = keyed_row(page, key("codex", TOOL_SESSIONS["codex"][0])).locator("[data-field='source']")
    expect(chip).to_be_visible()
    expect(keyed_row(page, key("gemini", TOOL_SESSIONS["gemini"][0])).locator("a")).to_have_attribute(
        "aria-label", re.compile(r", Gemini, ended, "))


def test_the_agent_filter_lists_the_four_and_filters(page, agents):
    load(page, agents)
    select = page.locator("#agent-filter")
    expect(select).to_be_visible()
    options = select.locator("option").evaluate_all("els => els.map(o => [o.value, o.textContent])")
    assert options == [["", "All agents"], ["claude-code", "Claude"], ["codex", "Codex"], ["gemini", "Gemini"],
                       ["opencode", "OpenCode"]]
    for source, count in COUNTS.items():
        select.select_option(source)
        expect(page.locator("[data-session-key]:visible")).to_have_count(count)
        assert set(visible_sources(page)) == {source}
        assert f"agent={source}" in page.url
    select.select_option("")
    expect(page.locator("[data-session-key]:visible")).to_have_count(sum(COUNTS.values()))
    assert "agent=" not in page.url
    # Back goes to the previous filter (a history entry each).
    page.go_back()
    expect(select).to_have_value("gemini")
    expect(page.locator("[data-session-key]:visible")).to_have_count(COUNTS["gemini"])


def test_the_agent_filter_from_the_address(page, agents):
    load(page, agents, agent="codex")
    expect(page.locator("#agent-filter")).to_have_value("codex")
    expect(page.locator("[data-session-key]:visible")).to_have_count(COUNTS["codex"])
    assert set(visible_sources(page)) == {"codex"}
    # With a search on top, the empty state says which agent it looked at.
    page.locator("input[type='search']").fill("api-server")
    expect(page.locator("#empty-title")).to_have_text("No sessions match")
    expect(page.locator("#empty-text")).to_have_text("Nothing matches “api-server” of Codex.")


def test_search_matches_other_agents_prompts(page, agents):
    load(page, agents)
    search = page.locator("input[type='search']")
    # Every term must match: the beta sessions that ran the shell, one each of Codex, OpenCode, Gemini CLI.
    search.fill("beta shell")
    expect(page.locator("[data-session-key]:visible")).to_have_count(3)
    assert sorted(visible_sources(page)) == ["codex", "gemini", "opencode"]
    # A prompt only the Gemini CLI session holds (its title is the model's summary, not the prompt).
    gemini = page.request.get(f"{agents.url}/api/sessions/{key('gemini', '557652b1-9c2b-406b-8e43-c2ca5129b4fd')}").json()
    prompt = gemini["session"]["lastPrompt"] or gemini["session"]["firstPrompt"]
    assert prompt
    search.fill(prompt[:40])
    expect(page.locator("[data-session-key]:visible [data-field='source'][data-source='gemini']")).to_have_count(1)
    # The agent's name is searchable too.
    search.fill("opencode beta")
    expect(page.locator("[data-session-key]:visible")).to_have_count(2)
    assert set(visible_sources(page)) == {"opencode"}


def test_the_project_filter_covers_every_agent(page, agents):
    load(page, agents)
    project = page.locator("#project-filter")
    values = project.locator("option").evaluate_all("els => els.map(o => o.value)")
    assert values == ["", "/home/user/code/alpha", "/home/alice/code/api-server", "/home/user/code/beta",
                      "/home/alice/code/webapp"]
    project.select_option("/home/user/code/alpha")
    expect(page.locator("[data-session-key]:visible")).to_have_count(9)
    assert sorted(set(visible_sources(page))) == ["codex", "gemini", "opencode"]
    page.locator("#agent-filter").select_option("gemini")
    expect(page.locator("[data-session-key]:visible")).to_have_count(3)
    assert "project=" in page.url and "agent=gemini" in page.url


@pytest.mark.parametrize("source", list(TOOL_SESSIONS))
def test_the_session_view_of_each_agent(page, agents, source):
    session_id, prompt, tool_name = TOOL_SESSIONS[source]
    load(page, agents)
    k = key(source, session_id)
    keyed_row(page, k).locator("a").click()
    expect(page).to_have_url(session_url(agents, k))
    messages = page.locator("#messages")
    expect(messages.locator(".msg-prompt").first).to_contain_text(prompt)
    expect(messages.locator(".msg-prompt").last).to_contain_text("Follow-up sent with")
    # Replies carry the agent's name; the tool call shows its input and, on its card, its result.
    expect(messages.locator(".msg-reply .msg-who").first).to_have_text(LABELS[source])
    assert set(messages.locator(".msg-reply .msg-who").all_text_contents()) == {LABELS[source]}
    tool = messages.locator(".tool")
    expect(tool).to_have_count(1)
    expect(tool.locator(".tool-name")).to_have_text(tool_name)
    expect(tool.locator(".tool-input")).to_contain_text("echo hi")
    expect(tool.locator(".tool-result")).to_have_count(1)  # Gemini CLI writes the result twice: shown once
    expect(tool.locator(".tool-result .result-text")).to_contain_text("hi")
    expect(messages.locator(".msg-tool-result")).to_have_count(0)  # no result without its call
    expect(messages.locator(".msg-reply").last).to_contain_text("Nothing was changed on disk.")
    expect(page.locator("#detail-meta")).to_contain_text(LABELS[source])
    if source == "gemini":
        # The CLI's injected context is a quiet, folded note, not a prompt.
        meta = messages.locator(".msg-meta")
        expect(meta).to_have_count(1)
        expect(meta.locator("summary")).to_contain_text("<session_context>")
        assert meta.locator("details").get_attribute("open") is None
    else:
        expect(messages.locator(".msg-meta")).to_have_count(0)


def test_a_codex_rollout_grows_live(page, agents, homes):
    codex = CodexHome(homes["codex"])
    r = codex.rollout()
    r.meta(cwd="/home/user/code/gamma").turn_started().user("a live codex prompt")
    load_extra = sum(COUNTS.values()) + 1
    page.goto(dashboard_url(agents))
    expect(page.locator("[data-session-key]")).to_have_count(load_extra)
    row = keyed_row(page, key("codex", r.id))
    expect(row.locator("[data-field='source']")).to_have_text("Codex")
    expect(row.locator("[data-field='messageCount']")).to_have_text("1")
    page.evaluate("document.querySelector('[data-session-key]').__kept = true")
    row.locator("a").click()
    messages = page.locator("#messages")
    expect(messages.locator(".msg-prompt")).to_contain_text("a live codex prompt")

    # Reasoning, a tool call and its result, then the reply: one bubble, the result on its card.
    r.record("response_item", {"type": "reasoning", "id": "rs_live", "summary": [
        {"type": "summary_text", "text": "Looking at the files first"}], "content": None, "encrypted_content": "x"})
    r.tool("ls -la", "total 0\nREADME.md")
    r.agent("There is a README.").tokens(1000, 200, 40).turn_complete()
    expect(row.locator("[data-field='messageCount']")).to_have_text("2", timeout=3000)
    reply = messages.locator(".msg-reply")
    expect(reply).to_have_count(1, timeout=3000)
    expect(reply).to_contain_text("There is a README.")
    expect(reply.locator(".msg-who")).to_have_text("Codex")
    expect(reply.locator(".thinking summary")).to_have_text("Thinking")
    expect(reply.locator(".thinking")).to_contain_text("Looking at the files first")
    expect(reply.locator(".tool .tool-input")).to_contain_text("ls -la")
    expect(reply.locator(".tool .tool-result")).to_contain_text("README.md")
    expect(messages.locator(".msg-tool-result")).to_have_count(0)
    # Patched in place: no reload, the other rows' nodes survived.
    assert page.evaluate("document.querySelector('[data-session-key]').__kept === true")

    # A secret in another agent's tool output never reaches the page.
    r.turn_started().user("print the key")
    r.tool("env", f"OPENAI_API_KEY={FAKE_KEY}\n")
    expect(messages.locator(".tool")).to_have_count(2, timeout=3000)
    expect(messages.locator(".tool").last.locator(".result-text")).to_contain_text("OPENAI_API_KEY=")
    assert FAKE_KEY not in page.locator("body").inner_text() and FAKE_KEY not in page.content()


def test_a_codex_session_without_messages(page, agents, homes):
    r = CodexHome(homes["codex"]).rollout()
    r.meta(cwd="/home/user/code/gamma")
    page.goto(dashboard_url(agents))
    row = keyed_row(page, key("codex", r.id))
    expect(row.locator("[data-field='messageCount']")).to_have_text("0")
    row.locator("a").click()
    expect(page.locator("#conversation-state")).to_have_text("No messages yet.")
    expect(page.locator("#messages .msg")).to_have_count(0)
    # Its first prompt arrives: shown without a reload.
    r.turn_started().user("finally a prompt")
    expect(page.locator("#messages .msg-prompt")).to_contain_text("finally a prompt", timeout=3000)
    expect(page.locator("#conversation-state")).to_have_text("")


def test_a_long_tool_input_is_folded(page, agents, homes):
    r = CodexHome(homes["codex"]).rollout()
    script = "\n".join(f"echo line {i}" for i in range(80))
    r.meta(cwd="/home/user/code/gamma").turn_started().user("run the long script")
    r.tool(script, "\n".join(f"line {i}" for i in range(80)))
    page.goto(session_url(agents, key("codex", r.id)))
    tool = page.locator("#messages .tool")
    expect(tool.locator(".tool-input")).to_have_class(re.compile(r"\bfolded\b"))
    unfold = tool.locator(".tool-input .unfold")
    expect(unfold).to_have_text("Show more")
    unfold.click()
    expect(tool.locator(".tool-input")).not_to_have_class(re.compile(r"\bfolded\b"))
    # A long result is folded as well once opened.
    tool.locator(".tool-result summary").click()
    expect(tool.locator(".result-text")).to_have_class(re.compile(r"\bfolded\b"))


def test_a_gemini_chat_grows_live(page, agents, homes):
    gemini = GeminiHome(homes["gemini"])
    chat = gemini.project("/home/user/code/gamma").session()
    chat.prompt("a live gemini prompt")
    page.goto(dashboard_url(agents))
    row = keyed_row(page, key("gemini", chat.id))
    expect(row.locator("[data-field='source']")).to_have_text("Gemini")
    row.locator("a").click()
    messages = page.locator("#messages")
    expect(messages.locator(".msg-prompt")).to_contain_text("a live gemini prompt")

    # Gemini CLI writes a tool reply three times: empty, again under its id with the call, then the result.
    chat.tool_turn("echo live", tokens(1000, 10))
    tool = messages.locator(".tool")
    expect(tool).to_have_count(1, timeout=3000)
    expect(tool.locator(".tool-name")).to_have_text("Shell")
    expect(tool.locator(".tool-result")).to_have_count(1, timeout=3000)
    expect(tool.locator(".tool-result")).to_contain_text("Output: echo live")
    chat.reply("The shell said: live.", tokens(1100, 20, cached=900))
    expect(messages.locator(".msg-reply")).to_have_count(1, timeout=3000)
    expect(messages.locator(".msg-reply")).to_contain_text("The shell said: live.")
    expect(messages.locator(".msg-reply .msg-who")).to_have_text("Gemini")
    # A notice of the CLI is a note, not a reply.
    chat.append({"id": "notice-1", "timestamp": chat.now(), "type": "info", "content": "Request cancelled."})
    chat.touch()
    expect(messages.locator(".msg-meta").last).to_contain_text("Request cancelled.", timeout=3000)
    expect(messages.locator(".msg-reply")).to_have_count(1)
    expect(row.locator("[data-field='messageCount']")).to_have_text("3")  # a prompt and two replies


def test_an_opencode_reply_filled_in_place(page, agents, homes):
    """OpenCode writes a reply's message first and its parts (text, tool calls) into it later."""
    writer = WriterProcess(homes["opencode"])
    try:
        sid = writer.session("/home/user/code/gamma", "A live OpenCode session")
        user = writer.user(sid, "a live opencode prompt")
        page.goto(dashboard_url(agents))
        row = keyed_row(page, key("opencode", sid))
        expect(row.locator("[data-field='source']")).to_have_text("OpenCode")
        row.locator("a").click()
        messages = page.locator("#messages")
        expect(messages.locator(".msg-prompt")).to_contain_text("a live opencode prompt")
        mid = writer.assistant_start(sid, user)
        expect(row.locator("[data-field='status']")).to_have_text(re.compile("busy|ended|idle"))
        writer.assistant_finish(sid, mid, "Listed them.", tool=("bash", {"command": "ls"}, "a.txt\nb.txt"))
        reply = messages.locator(".msg-reply")
        expect(reply).to_have_count(1, timeout=3000)
        expect(reply).to_contain_text("Listed them.", timeout=3000)
        expect(reply.locator(".msg-who")).to_have_text("OpenCode")
        expect(reply.locator(".tool .tool-result")).to_contain_text("b.txt", timeout=3000)
        expect(messages.locator(".msg-prompt")).to_have_count(1)
    finally:
        writer.stop()


def test_claude_rows_keep_their_id_hook(page, agents):
    load(page, agents)
    data = page.request.get(f"{agents.url}/api/sessions/all").json()
    claude = [s for s in data if s["source"] == "claude-code"]
    for s in claude:
        expect(page.locator(f'[data-session-id="{s["id"]}"]')).to_have_attribute("data-session-key", s["key"])
    # An old bookmark of a Claude Code session opens it among all the others.
    page.goto(dashboard_url(agents, session=claude[0]["id"]))
    expect(page).to_have_url(session_url(agents, claude[0]["key"]))
    expect(page.locator("#messages .msg-reply .msg-who").first).to_have_text("Claude")
    assert json.dumps(claude[0]["key"]).count(":") == 2
