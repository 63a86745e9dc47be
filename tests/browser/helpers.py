"""Small helpers shared by the browser tests."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def dashboard_url(server, **params) -> str:
    """The page's URL with query parameters (``q``, ``project``, ``agent``, ``session``, ``backoff``, ``poll``)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{server.url}/" + (f"?{query}" if query else "")


def row(page, session_id: str):
    """One session's row (SPEC section 7 hook)."""
    return page.locator(f'[data-session-id="{session_id}"]')


def field(page, session_id: str, name: str):
    return row(page, session_id).locator(f'[data-field="{name}"]')


def keyed_row(page, key: str):
    """One session's row by its key (SPEC section 7 v2 hook)."""
    return page.locator(f'[data-session-key="{key}"]')


def key_of(page, session_id: str) -> str:
    """The key (``<host>:<source>:<id>``) of the row listing ``session_id``, once it is listed."""
    return row(page, session_id).get_attribute("data-session-key")


def session_url(server, key: str, **params) -> str:
    """The address of the page with ``key``'s session view open, as the page writes it."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{server.url}/?" + (f"{query}&" if query else "") + "session=" + quote(key, safe="")
