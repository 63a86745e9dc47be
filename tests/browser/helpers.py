"""Small helpers shared by the browser tests."""

from __future__ import annotations

from urllib.parse import urlencode


def dashboard_url(server, **params) -> str:
    """The page's URL with query parameters (``q``, ``project``, ``session``, ``backoff``, ``poll``)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{server.url}/" + (f"?{query}" if query else "")


def row(page, session_id: str):
    """One session's row (SPEC section 7 hook)."""
    return page.locator(f'[data-session-id="{session_id}"]')


def field(page, session_id: str, name: str):
    return row(page, session_id).locator(f'[data-field="{name}"]')
