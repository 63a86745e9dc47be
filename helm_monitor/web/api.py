"""REST: the same data as the stream, for scripts and as the page's fallback."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, request

from helm_monitor.claude.layout import is_valid_session_id
from helm_monitor.web.errors import json_error
from helm_monitor.web.state import service_of

bp = Blueprint("api", __name__, url_prefix="/api/claude-sessions")

# How long /all waits for the first scan of a big history before answering with what it has.
READY_WAIT_S = 60.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def json_response(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


@bp.get("/all")
def all_sessions():
    """Every session, newest activity first."""
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    return json_response(svc.store.snapshot())


@bp.post("/refresh")
def refresh():
    """Rescan everything; connected clients receive a refresh event."""
    count = service_of(current_app).monitor.refresh()
    return json_response({"sessions": count})


@bp.get("/<session_id>")
def session_detail(session_id: str):
    """One session and a page of its conversation."""
    if not is_valid_session_id(session_id):
        return json_error(400, "malformed session id")
    try:
        offset = int(request.args.get("offset", 0))
        limit = int(request.args.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return json_error(400, "offset and limit must be whole numbers")
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        return json_error(400, f"offset must be >= 0 and limit 1-{MAX_LIMIT}")
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    session = svc.store.get(session_id)
    if session is None:
        return json_error(404, "no such session")
    page = svc.conversation(session_id, offset, limit)
    if page is None:
        return json_error(404, "no such session")
    return json_response({"session": session, **page})
