"""Where the web layer finds the live service of its app."""

from __future__ import annotations

from flask import Flask

from helm_monitor.live.service import LiveService


def service_of(app: Flask) -> LiveService:
    return app.extensions["helm"]
