"""The session view as a transcript worth reading (issue 14): Markdown rendered safely, code
highlighted, tool calls as cards with status, duration and diffs, subagents opened in place,
content of an unknown kind as raw JSON; hostile Markdown inert; the real samples of every
agent render with no console error and no CSP violation (the page fixture fails the test on
either)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, key_of, keyed_row, row, session_url
from tests.support.codex import CodexHome

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

MARKDOWN = """## Plan

1. read the **config**
2. fix `load()` — see [the docs](https://example.com/docs)

| name | size |
|:-----|-----:|
| a.py | 10 |

> quoted

```python
def load(path):
    return open(path).read()
```
"""


def open_view(page, server, session):
    page.goto(dashboard_url(server))
    expect(row(page, session.id)).to_be_visible()
    row(page, session.id).locator("a").click()
    expect(page.locator("#messages .msg").first).to_be_visible()
    return page.locator("#messages")


def no_markup_escaped(page) -> dict:
    """What the sanitiser must have removed: elements, handlers, styles and links of other schemes."""
    return page.evaluate("""() => {
        const root = document.querySelector('#messages');
        const all = [...root.querySelectorAll('*')];
        return {
          tags: [...new Set(all.filter(e =>
            ['script', 'img', 'svg', 'math', 'style', 'iframe', 'form', 'input', 'button', 'object', 'embed', 'link', 'meta']
              .includes(e.localName) && !e.matches('button.unfold, button.subagent-open, button.subagent-more'))
            .map(e => e.localName))],
          handlers: all.flatMap(e => [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.localName + '@' + a.name)),
          styled: all.filter(e => e.hasAttribute('style')).map(e => e.localName),
          hrefs: [...root.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
          ids: all.filter(e => e.id).map(e => e.id),
          pwned: window.__pwned === undefined ? null : window.__pwned,
        };
    }""")


def test_markdown_renders_with_highlighted_code_and_no_inline_style(page, server, claude):
    s = claude.session("/home/u/md")
    s.prompt("format **this** please")
    s.write(s._base("assistant", message={"id": "msg_md", "role": "assistant", "model": "claude-opus-5-5",
                                          "content": [{"type": "thinking", "thinking": "read it *carefully*",
                                                       "signature": "x"}],
                                          "usage": {"input_tokens": 1, "output_tokens": 1}}))
    s.write(s.assistant_records(MARKDOWN, message_id="msg_md"))
    messages = open_view(page, server, s)
    reply = messages.locator(".msg-reply .md-content")
    expect(reply.locator("h2")).to_have_text("Plan")
    expect(reply.locator("ol > li")).to_have_count(2)
    expect(reply.locator("strong")).to_have_text("config")
    expect(reply.locator("li code")).to_have_text("load()")
    link = reply.locator("a")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b.*\bnoreferrer\b"))
    # Table alignment as classes: the CSP allows no style attribute.
    expect(reply.locator("th.align-left")).to_have_text("name")
    expect(reply.locator("td.align-right")).to_have_text("10")
    expect(reply.locator("blockquote")).to_contain_text("quoted")
    code = reply.locator("pre > code.language-python")
    expect(code).to_have_class(re.compile(r"\bhljs\b"))  # highlighted once in view
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(messages.locator(".msg-prompt strong")).to_have_text("this")
    thinking = messages.locator(".thinking")
    assert thinking.get_attribute("open") is None  # folded
    thinking.locator("summary").click()
    expect(thinking.locator(".md-content em")).to_have_text("carefully")
    found = no_markup_escaped(page)
    assert found["styled"] == [] and found["handlers"] == [] and found["tags"] == [], found



def test_the_markdown_libraries_load_on_first_use_and_once(page, server, claude):
    """The dashboard's load fetches none of them; markdown-it and DOMPurify come when the page is
    idle or the first session opens, highlight.js with the first fenced code; each once."""
    plain = claude.session("/home/u/plain")
    plain.prompt("no code here")
    plain.reply("just **words**")
    coded = claude.session("/home/u/coded")
    coded.prompt("show code")
    coded.write(coded.assistant_records(MARKDOWN, message_id="msg_coded"))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url.rsplit("/", 1)[1]) if "/vendor/" in r.url and r.url.endswith(".js") else None)
    page.goto(dashboard_url(server))
    expect(row(page, plain.id)).to_be_visible()
    assert "highlight.min.js" not in asked, asked  # the list itself needs none of them
    row(page, plain.id).locator("a").click()
    messages = page.locator("#messages")
    expect(messages.locator(".msg-reply .md-content strong")).to_have_text("words")  # rendered, not text
    page.wait_for_timeout(300)
    assert "highlight.min.js" not in asked, asked  # no fenced code yet
    row(page, coded.id).locator("a").click()
    code = messages.locator(".msg-reply pre > code.language-python")
    expect(code).to_have_class(re.compile(r"\bhljs\b"))
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    row(page, plain.id).locator("a").click()
    expect(messages.locator(".msg-reply .md-content strong")).to_have_text("words")
    assert sorted(asked) == ["highlight.min.js", "markdown-it.umd.min.js", "purify.min.js"], asked


HOSTILE = [
    "<script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "[click](javascript:window.__pwned='js-link')",
    "[mixed](JaVaScRiPt:window.__pwned='mixed')",
    "[entity](&#106;avascript:window.__pwned='entity')",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[vb](vbscript:msgbox(1))",
    "![tracker](http://127.0.0.1:9/track.png)",
    "![x](x\" onerror=\"window.__pwned='alt')",
    "<svg onload=\"window.__pwned='svg'\"><circle r=5></circle></svg>",
    "<style>body{display:none}</style>",
    "<a href=\"javascript:window.__pwned='a'\">a link</a>",
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>",
    "<form action=\"https://evil.example\"><button>go</button></form>",
    "<div id=\"messages\" name=\"API\">clobber</div>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "`<img src=x onerror=alert(1)>` and ```\n<script>alert(1)</script>\n```",
    "<details open ontoggle=\"window.__pwned='toggle'\">x</details>",
    "[link](https://ok.example \"title\\\" onmouseover=\\\"window.__pwned='title'\")",
]


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "csp-bypassed"])
def test_hostile_markdown_stays_inert(new_page, server, claude, bypass_csp):
    """The page itself makes nothing of markup (the CSP, bypassed in one run, is the backstop)."""
    page = new_page(bypass_csp=bypass_csp)
    s = claude.session("/home/mallory/md")
    text = "\n\n".join(HOSTILE)
    s.prompt(text)
    s.write(s.assistant_records(text, tool_use={"id": "toolu_h", "name": "Bash", "input": {"command": text}}))
    s.write(s.tool_result_record("toolu_h", text))
    s.write(s.assistant_records("<b>thinking?</b>"))
    s.write(s._base("assistant", message={"id": "msg_think", "role": "assistant", "model": "claude-opus-5-5",
                                          "content": [{"type": "thinking", "thinking": text, "signature": "x"}],
                                          "usage": {"input_tokens": 1, "output_tokens": 1}}))
    messages = open_view(page, server, s)
    expect(messages.locator(".msg-reply")).to_have_count(3)
    messages.locator(".thinking summary").first.click()
    page.wait_for_load_state("networkidle")
    found = no_markup_escaped(page)
    assert found["tags"] == [], found
    assert found["handlers"] == [] and found["styled"] == [] and found["ids"] == [], found
    assert all(re.match(r"^(https?:|mailto:)", h) for h in found["hrefs"]), found["hrefs"]
    assert found["pwned"] is None
    # The markup is still there to read, as text.
    expect(messages.locator(".msg-prompt")).to_contain_text("<script>window.__pwned='script'</script>")
    expect(messages.locator(".tool .result-text")).to_contain_text("<svg onload=")
    expect(messages.locator(".msg-reply .md-image").first).to_contain_text("[image: tracker] http://127.0.0.1:9/track.png")
    # The page works on: no element of the page was clobbered or hidden.
    expect(page.locator("#detail-title")).to_be_visible()
    page.locator("#detail-close").click()
    expect(page.locator("#detail")).to_be_hidden()


def test_a_huge_line_and_deep_nesting_leave_the_page_responsive(page, server, claude):
    s = claude.session("/home/u/huge")
    nested_list = "\n".join("  " * i + "- level " + str(i) for i in range(3000))
    quotes = ">" * 20000 + " deep"
    s.turn("one 5 MB line follows", "x" * 5_000_000)
    s.turn("a deep list", nested_list)
    s.turn("deep quotes", quotes)
    s.turn("still there?", "**yes**")
    messages = open_view(page, server, s)
    expect(messages.locator(".msg-reply").last.locator("strong")).to_have_text("yes")
    # The server clipped the line; the page folded it and answers at once.
    replies = messages.locator(".msg-reply")
    expect(replies).to_have_count(4)
    big = replies.nth(0)
    expect(big.locator(".unfold")).to_have_text("Show more")
    big.locator(".unfold").click()
    expect(big.locator(".unfold")).to_have_text("Show less")
    page.locator('input[type="search"]').fill("huge")
    expect(row(page, s.id)).to_be_visible()
    assert page.evaluate("1 + 1") == 2


def _edit_records(s, path: str, big_original: str):
    use_id = "toolu_edit1"
    call = s.assistant_records("Changing the port.", tool_use={
        "id": use_id, "name": "Edit",
        "input": {"file_path": path, "old_string": "PORT = 8000\n", "new_string": "PORT = 8080\n"}},
        timestamp="2026-12-02T10:00:00.000Z")
    result = s.tool_result_record(use_id, f"The file {path} has been updated.")
    result["timestamp"] = "2026-12-02T10:00:01.500Z"
    result["toolUseResult"] = {
        "filePath": path, "oldString": "PORT = 8000\n", "newString": "PORT = 8080\n",
        "originalFile": big_original, "userModified": False, "replaceAll": False,
        "structuredPatch": [{"oldStart": 41, "oldLines": 3, "newStart": 41, "newLines": 3,
                             "lines": [" HOST = 'localhost'", "-PORT = 8000", "+PORT = 8080", " DEBUG = False"]}]}
    return call, result


def test_an_edit_is_a_card_with_its_diff_status_and_duration(page, server, claude):
    s = claude.session("/home/u/edit")
    s.prompt("use port 8080")
    marker = "ORIGINAL-FILE-BODY-"
    call, result = _edit_records(s, "/home/u/edit/settings.py", marker + "y" * 2_000_000)
    s.write(call)
    messages = open_view(page, server, s)
    card = messages.locator(".tool[data-tool='Edit']")
    expect(card.locator(".tool-summary")).to_have_text("/home/u/edit/settings.py")
    expect(card.locator("[data-tool-status]")).to_have_attribute("data-tool-status", "waiting")
    # Before its result: the server's diff of the call's strings.
    expect(card.locator(".diff-wrap:visible .diff-del .diff-line")).to_have_text("-PORT = 8000")
    s.write(result)
    expect(card.locator("[data-tool-status]")).to_have_attribute("data-tool-status", "done", timeout=5000)
    expect(card.locator(".tool-duration")).to_have_text("1.5 s")
    diff = card.locator(".diff-wrap:visible")
    expect(diff).to_have_count(1)
    expect(diff.locator(".diff-path")).to_have_text("/home/u/edit/settings.py")
    # The file's own line numbers, from Claude Code's structuredPatch.
    expect(diff.locator(".diff-del .diff-no").first).to_have_text("42")
    expect(diff.locator(".diff-add .diff-no").nth(1)).to_have_text("42")
    expect(diff.locator(".diff-add .diff-line")).to_have_text("+PORT = 8080")
    expect(diff.locator(".diff-ctx")).to_have_count(2)
    expect(card.locator(".tool-result")).to_contain_text("has been updated")
    # The 2 MB file the CLI keeps beside the patch never reaches the browser.
    assert marker not in page.content()


def test_a_failed_tool_says_so(page, server, claude):
    s = claude.session("/home/u/fail")
    s.prompt("run it")
    s.write(s.assistant_records(None, tool_use={"id": "toolu_f", "name": "Bash", "input": {"command": "false"}}))
    s.write(s.tool_result_record("toolu_f", "exit code 1", is_error=True))
    messages = open_view(page, server, s)
    card = messages.locator(".tool")
    expect(card.locator("[data-tool-status]")).to_have_attribute("data-tool-status", "error")
    expect(card.locator(".tool-summary")).to_have_text("false")
    expect(card.locator(".tool-error .result-text")).to_have_text("exit code 1")


def test_a_codex_patch_is_shown_as_a_diff(page, tmp_path, claude, server_factory):
    codex = CodexHome(tmp_path / "codex")
    r = codex.rollout()
    r.meta(cwd="/home/user/code/gamma").turn_started().user("rename the function")
    patch = "*** Begin Patch\n*** Update File: app.py\n@@\n-def old():\n+def new():\n     pass\n*** End Patch\n"
    r.record("response_item", {"type": "custom_tool_call", "status": "completed", "call_id": "call_p1",
                               "name": "apply_patch", "input": patch})
    r.record("response_item", {"type": "custom_tool_call_output", "call_id": "call_p1",
                               "output": json.dumps({"output": "Success. Updated the following files:\nM app.py\n",
                                                     "metadata": {"exit_code": 0, "duration_seconds": 0.1}})})
    srv = server_factory(claude.root, env={"HELM_CODEX_DIR": str(codex.root), "HELM_HOST_NAME": "testhost"})
    page.goto(session_url(srv, f"testhost:codex:{r.id}"))
    card = page.locator("#messages .tool")
    expect(card.locator(".tool-name")).to_have_text("apply_patch")
    expect(card.locator(".diff-file", has_text="*** Update File: app.py")).to_have_count(1)
    expect(card.locator(".diff-del")).to_have_text("-def old():")
    expect(card.locator(".diff-add")).to_have_text("+def new():")
    expect(card.locator("[data-tool-status]")).to_have_attribute("data-tool-status", "done")


def test_a_subagent_transcript_opens_in_place(page, sample_dir, server_factory):
    home = sample_dir("claude-code-2.1.330-subagents")
    srv = server_factory(home)
    session_id = "71d75e02-8f29-4d6d-b979-ef7446a966d3"
    page.goto(dashboard_url(srv))
    row(page, session_id).locator("a").click()
    card = page.locator("#messages .tool[data-tool='Agent']")
    expect(card.locator(".tool-summary")).to_have_text("List project files")
    opener = card.locator(".subagent-open")
    expect(opener).to_have_attribute("data-subagent", "afa49ed9a952d16e0")
    opener.click()
    thread = card.locator("[data-subagent-thread]")
    expect(thread).to_be_visible()
    expect(thread.locator(".msg-prompt").first).to_contain_text("List the files in the current directory")
    expect(thread.locator(".msg-reply").first).to_be_visible()
    expect(thread.locator(".tool").first.locator(".tool-name")).to_have_text("Bash")
    opener.click()
    expect(thread).to_be_hidden()


def test_content_of_an_unknown_kind_is_shown_as_raw_json(page, server, claude):
    s = claude.session("/home/u/unknown")
    s.prompt("what is this")
    s.write(s._base("assistant", message={
        "id": "msg_future", "role": "assistant", "model": "claude-opus-5-5",
        "content": [{"type": "text", "text": "Before."},
                    {"type": "hologram", "frames": 3, "label": "<b>not markup</b>"}],
        "usage": {"input_tokens": 1, "output_tokens": 1}}))
    messages = open_view(page, server, s)
    unknown = messages.locator("[data-block='unknown']")
    expect(unknown.locator("summary")).to_contain_text("hologram")
    unknown.locator("summary").click()
    expect(unknown.locator(".raw-json")).to_contain_text('"frames": 3')
    expect(unknown.locator(".raw-json")).to_contain_text("<b>not markup</b>")
    expect(messages.locator(".msg-reply")).to_contain_text("Before.")


# ------------------------------------------------------------------ every agent's real samples

@pytest.fixture
def all_agents(tmp_path, sample_dir, server_factory):
    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(FIXTURES / name, dest)
        return dest
    claude = sample_dir("claude-code-2.1.330")
    return server_factory(claude, env={
        "HELM_CODEX_DIR": str(copy("codex-0.171.0") / "home" / ".codex"),
        "HELM_OPENCODE_DB": str(copy("opencode-1.18.33") / "home" / ".local" / "share" / "opencode" / "opencode.db"),
        "HELM_GEMINI_DIR": str(copy("gemini-0.61.0") / "home" / ".gemini"), "HELM_HOST_NAME": "testhost"})


def test_every_session_of_every_agent_renders(page, all_agents):
    """Each sample session opens and shows what it holds; no console error, no CSP violation."""
    page.goto(dashboard_url(all_agents))
    expect(page.locator("[data-connection-status]")).to_have_text("Live")
    rows = page.locator("[data-session-key]")
    expect(rows).to_have_count(19)
    keys = rows.evaluate_all("els => els.map(el => el.dataset.sessionKey)")
    seen: dict[str, set[str]] = {}
    for k in keys:
        keyed_row(page, k).locator("a").click()
        expect(page.locator("#conversation-state")).not_to_have_text("Loading conversation…")
        count = all_agents.get_json(f"/api/sessions/{k}?limit=1")["total"]
        if count:
            expect(page.locator("#messages [data-index]").first).to_be_attached()
        kinds = page.evaluate("""() => {
            const m = document.querySelector('#messages');
            const has = (s) => m.querySelector(s) !== null;
            return Object.entries({
              prompt: '.msg-prompt', reply: '.msg-reply', markdown: '.md-content', thinking: '.thinking',
              tool: '.tool', result: '.tool .tool-result', done: '[data-tool-status="done"]', meta: '.msg-meta',
            }).filter(([, s]) => has(s)).map(([k]) => k);
        }""")
        seen.setdefault(k.split(":")[1], set()).update(kinds)
        page.locator("#detail-close").click()
    for source in ("claude-code", "codex", "opencode", "gemini"):
        assert {"prompt", "reply", "markdown", "tool", "result", "done"} <= seen[source], (source, seen[source])
    assert "meta" in seen["gemini"]  # its injected context (thinking: none of the samples shows any)


def test_scrolling_up_loads_earlier_messages_without_a_jump(page, server, claude):
    s = claude.session("/home/u/long")
    records = []
    for i in range(130):  # 260 messages: the view opens at the last 40, older ones come 100 at a time
        records.append(s.prompt_record(f"prompt number {i}"))
        records.extend(s.assistant_records(f"reply number {i}\n\n- a list item\n- another"))
    s.write(*records)
    messages = open_view(page, server, s)
    expect(messages.locator(".msg")).to_have_count(40)
    first = messages.locator(".msg[data-index='220']")
    page.locator("#conversation").evaluate("el => { el.scrollTop = 0; }")
    expect(messages.locator(".msg")).to_have_count(140)
    # What was at the top is where it was: the older page went in above it.
    top = page.evaluate("""() => {
        const s = document.querySelector('#conversation').getBoundingClientRect();
        const m = document.querySelector("#messages .msg[data-index='220']").getBoundingClientRect();
        return m.top - s.top;
    }""")
    assert 0 <= top < 400, top
    expect(first).to_be_in_viewport()
