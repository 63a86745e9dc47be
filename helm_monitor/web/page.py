"""GET /: the dashboard, and its assets under a versioned path.

The page is a set of ES modules that import each other by relative URL. Served from
``/assets/<digest>/``, where the digest covers every file in static/, all of them
change URL together when any of them changes: a browser can cache them for a year
and never mixes modules of two versions. An address with another digest (a page
loaded before an upgrade) is still answered, but not cached.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
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


# A static import of an ES module by relative URL: ``import ... from './x.js'``, ``export ... from``,
# ``import './x.js'`` (never ``import('./x.js')``: what a page loads when it needs it is not preloaded).
_IMPORT = re.compile(r"""(?:\bfrom|^[ \t]*import)[ \t]*['"](\.{1,2}/[^'"\s]+\.js)['"]""", re.M)


@lru_cache(maxsize=8)
def module_imports(entry: str) -> tuple[str, ...]:
    """Every module that ``entry`` (a path under static/) imports, directly or through others,
    breadth first: the page names them all as ``modulepreload`` so that the browser asks for them
    at once, not one import level after another (read once per process, as the digest is)."""
    from helm_monitor.web.app import static_dir

    root = Path(static_dir())
    seen, order, todo = {entry}, [], [entry]
    while todo:
        current = todo.pop(0)
        try:
            text = (root / current).read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for rel in _IMPORT.findall(text):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(current), rel))
            if target.startswith("../") or target in seen:
                continue
            seen.add(target)
            order.append(target)
            todo.append(target)
    return tuple(order)


@bp.get("/")
def index():
    """The live dashboard page."""
    # Transcript search is offered only where an index is kept (not without a cache directory,
    # not on the team's web tier): the page never asks a server that would answer 501.
    search = getattr(current_app.extensions["helm"], "search_index", None) is not None
    return render_template("index.html", version=__version__, assets=f"assets/{asset_digest()}",
                           search="on" if search else "off", preload=module_imports("app.js"))


@bp.get("/assets/<digest>/<path:filename>")
def asset(digest: str, filename: str):
    """A static file under the digest of the current assets."""
    from helm_monitor.web.app import static_dir

    if not digest.isalnum() or len(digest) > 64:
        abort(404)
    current = digest == asset_digest()
    return send_from_directory(static_dir(), filename, max_age=YEAR_S if current else 0)
