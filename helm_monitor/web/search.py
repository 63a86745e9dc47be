"""GET /api/search (SPEC 11): full-text search over every transcript of this host.

The query runs in a thread of the hub's pool (sqlite3 releases the GIL while it steps),
against the index the indexer process writes; this worker only reads it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request

from helm_monitor.search import query
from helm_monitor.search.db import IndexUnavailable
from helm_monitor.web.api import json_response
from helm_monitor.web.errors import json_error
from helm_monitor.web.state import service_of

bp = Blueprint("search", __name__)

_MAX_ARG = 256
_FILTERS = {"source": "source", "project": "project", "host": "host", "from": "start", "to": "end", "sort": "sort"}


@bp.get("/api/search")
def search():
    """Messages whose prompt, reply, thinking or tool call holds every word of ``q``."""
    q = request.args.get("q", "")
    if not q.strip():
        return json_error(400, "q (the words to search for) is required")
    if len(q) > query.MAX_QUERY:
        return json_error(400, f"the query is longer than {query.MAX_QUERY} characters")
    kwargs = {}
    for arg, name in _FILTERS.items():
        value = request.args.get(arg) or None
        if value is not None and len(value) > _MAX_ARG:
            return json_error(400, f"{arg} is at most {_MAX_ARG} characters")
        if value is not None:
            kwargs[name] = value
    try:
        limit = int(request.args.get("limit", 20))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        return json_error(400, "limit and offset must be whole numbers")
    kwargs["results"] = request.args.get("results", "").lower() in ("1", "true", "yes")
    svc = service_of(current_app)
    path = getattr(svc, "search_index", None)
    if path is None:
        return json_error(501, "full-text search is off here (it needs a cache directory and HELM_SEARCH on, "
                               "and runs on each host, not on the team's web tier)")
    offload = getattr(svc, "request_offload", None) or (lambda fn: fn())

    def run():
        # Answers, not exceptions, come back from the pool (which would log each one as a failure).
        try:
            return query.search(path, q, limit=limit, offset=offset, **kwargs)
        except (query.QueryError, IndexUnavailable) as exc:
            return exc

    answer = offload(run)
    if isinstance(answer, query.QueryError):
        return json_error(400, str(answer))
    if isinstance(answer, IndexUnavailable):
        return json_error(503, "the search index is being built; try again shortly", headers={"Retry-After": "2"})
    return json_response(answer)
