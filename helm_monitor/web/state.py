"""Where the web layer finds the service of its app."""

from __future__ import annotations

from typing import Any

from flask import Flask


def service_of(app: Flask) -> Any:
    """This host's LiveService, or the team web tier's TeamWebService: the same surface
    (store, channels, wait_ready, conversation, hosts, feed_status, health, monitor)."""
    return app.extensions["helm"]
