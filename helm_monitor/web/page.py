"""GET /: the dashboard."""

from __future__ import annotations

from flask import Blueprint, render_template

from helm_monitor import __version__

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    """The live dashboard page."""
    return render_template("index.html", version=__version__)
