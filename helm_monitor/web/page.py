"""GET /: the dashboard, and its assets under a versioned path.

The page is a set of ES modules that import each other by relative URL. Served from
``/assets/<digest>/``, where the digest covers every file in static/, all of them
change URL together when any of them changes: a browser can cache them for a year
and never mixes modules of two versions. An address with another digest (a page
loaded before an upgrade) is still answered, but not cached.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

from helm_monitor import __version__

bp = Blueprint("page", __name__)

YEAR_S = 365 * 24 * 3600


@lru_cache(maxsize=1)
def asset_digest() -> str:
    """A short digest of everything in static/ (read once per process)."""
    from helm_monitor.web.app import static_dir

    digest = hashlib.sha256()
    root = Path(static_dir())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@bp.get("/")
def index():
    """The live dashboard page."""
    # Transcript search is offered only where an index is kept (not without a cache directory,
    # not on the team's web tier): the page never asks a server that would answer 501.
    search = getattr(current_app.extensions["helm"], "search_index", None) is not None
    return render_template("index.html", version=__version__, assets=f"assets/{asset_digest()}",
                           search="on" if search else "off")


@bp.get("/assets/<digest>/<path:filename>")
def asset(digest: str, filename: str):
    """A static file under the digest of the current assets."""
    from helm_monitor.web.app import static_dir

    if not digest.isalnum() or len(digest) > 64:
        abort(404)
    current = digest == asset_digest()
    return send_from_directory(static_dir(), filename, max_age=YEAR_S if current else 0)
