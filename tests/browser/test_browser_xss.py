"""Transcript text is shown as text, never as HTML (SPEC section 6).

Run twice: with the server's Content-Security-Policy, and with the CSP bypassed, so the
test proves the page itself never turns text into markup (the CSP alone would also stop
an inline onerror handler).
"""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import dashboard_url, field, row

pytestmark = pytest.mark.browser

PAYLOAD = ('<img src=x onerror="window.__pwned=1;alert(1)"> '
           '<script>window.__pwned=2;alert(2)</script> <b>bold</b>')


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "csp-bypassed"])
def test_markup_in_a_transcript_is_shown_as_text_and_runs_nothing(new_page, server, claude, bypass_csp):
    page = new_page(bypass_csp=bypass_csp)
    session = claude.session(cwd="/home/mallory/<svg onload=alert(3)>")
    session.prompt(PAYLOAD)
    session.write(session.assistant_records(f"You wrote: {PAYLOAD}",
                                            tool_use={"id": "toolu_x", "name": "<img src=x onerror=alert(4)>",
                                                      "input": {"command": PAYLOAD}}))
    session.write(session.tool_result_record("toolu_x", PAYLOAD))
    session.rename('"><img src=x onerror=alert(5)>')

    page.goto(dashboard_url(server))
    expect(field(page, session.id, "title")).to_have_text('"><img src=x onerror=alert(5)>')
    expect(field(page, session.id, "lastPrompt")).to_have_text(PAYLOAD)
    row(page, session.id).locator("a").click()
    messages = page.locator("#messages")
    expect(messages.locator(".msg-prompt .msg-body")).to_have_text(PAYLOAD)
    expect(messages.locator(".tool-result .result-text")).to_have_text(PAYLOAD)
    expect(messages.locator(".tool-name")).to_have_text("<img src=x onerror=alert(4)>")

    # Nothing became an element, nothing ran (a dialog would also fail the test at teardown).
    for selector in ("#groups img", "#groups script", "#groups b", "#groups svg",
                     "#detail img", "#detail script", "#detail b"):
        expect(page.locator(selector)).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    # Give an image error handler the time it would need, then look again.
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__pwned") is None
