"""Fixtures for tests that drive the page in a real headless Chromium (Debian's ``chromium``)
through Playwright's Python API, against a real helm-monitor (gunicorn + gevent).

One browser per test session; one fresh context (cookies, storage, permissions) per test.
Every page is watched: a console error, an uncaught exception, a Content-Security-Policy
violation or a dialog (``alert``) fails the test at teardown, unless the test allowed it
with ``console.allow(pattern)``.

The page reads two query parameters that exist for these tests (see static/app.js):
``backoff=<ms>`` (first stream reconnect delay; doubles up to 16x) and ``poll=<ms>``
(the polling interval after 5 failed attempts); ``helpers.dashboard_url`` builds such URLs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HELM_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1280, "height": 800}

# Recorded in the page before any of its own scripts run (init scripts are not subject to the CSP).
WATCH_SCRIPT = """
window.__helmTest = {csp: []};
document.addEventListener('securitypolicyviolation', (e) => {
  window.__helmTest.csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


class Console:
    """What a page said that it should not have: console errors, exceptions, CSP violations, dialogs."""

    def __init__(self):
        self.problems: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.pages: list = []
        # Requests that failed (not problems in themselves: a stream cut on purpose fails too),
        # told beside the problems, since "Failed to load resource" names no address.
        self.failed_requests: list[str] = []

    def watch(self, page) -> None:
        self.pages.append(page)
        page.on("requestfailed", lambda req: self.failed_requests.append(
            f"{time.strftime('%H:%M:%S')} {req.method} {req.url}: {req.failure}"))
        page.on("console", lambda msg: msg.type in ("error", "warning") and
                self.problems.append(f"console {msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))

        def on_dialog(dialog):
            self.problems.append(f"dialog {dialog.type}: {dialog.message}")
            dialog.dismiss()
        page.on("dialog", on_dialog)

    def allow(self, pattern: str) -> None:
        """Accept problems matching ``pattern`` (e.g. connection errors while the server is down)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        found = list(self.problems)
        for page in self.pages:
            if page.is_closed():
                continue
            try:
                found += [f"CSP violation: {v}" for v in page.evaluate("window.__helmTest ? window.__helmTest.csp : []")]
            except Exception:  # the page may be mid-navigation at teardown
                pass
        return [p for p in found if not any(a.search(p) for a in self.allowed)]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium or set HELM_CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def new_page(browser, console, server_factory):
    """Open pages in fresh contexts (``new_page(**context_options)``); all are closed at teardown.

    It depends on ``server_factory`` so that its teardown (closing the pages, checking
    what they logged) runs before the servers stop: a page still open when its server
    goes away logs connection errors that belong to no test.
    """
    contexts = []

    def open_page(**options):
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        context.add_init_script(WATCH_SCRIPT)
        page = context.new_page()
        console.watch(page)
        return page

    yield open_page
    problems = console.unexpected()
    for context in contexts:
        context.close()
    assert not problems, ("the page reported problems:\n" + "\n".join(problems)
                          + "".join(f"\n  request failed: {r}" for r in console.failed_requests[-20:]))


@pytest.fixture
def page(new_page):
    """A desktop-sized page in a fresh context."""
    return new_page()


@pytest.fixture
def live_pids():
    """Start ``n`` idle processes, so registry files can name live pids; killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(n: int = 1) -> list[int]:
        new = [subprocess.Popen(["sleep", "600"]) for _ in range(n)]
        procs.extend(new)
        return [p.pid for p in new]

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
