"""REST: the same data as the stream, for scripts and as the page's fallback.

``/api/sessions/*`` answers for every source, naming a session by its
``key``; ``/api/claude-sessions/*`` keeps its exact first-version behaviour
for Claude Code sessions, named by their own id (SPEC 3). ``/api/hosts`` lists the
hosts that publish (one, without a shared engine).

The service behind them is this host's (LiveService) or the team web tier's
(TeamWebService): both offer ``store``, ``wait_ready``, ``conversation``,
``subagent_conversation`` and ``hosts``, and a ``monitor`` whose ``refresh()`` rescans (or
re-reads the engine).
"""

from __future__ import annotations

import re

import orjson
from flask import Blueprint, Response, current_app, request

from helm_monitor.sources.claude.conversation import is_valid_agent_id
from helm_monitor.sources.claude.layout import is_valid_session_id
from helm_monitor.web.errors import json_error
from helm_monitor.web.state import service_of

bp = Blueprint("api", __name__, url_prefix="/api/sessions")
claude_bp = Blueprint("claude_api", __name__, url_prefix="/api/claude-sessions")
hosts_bp = Blueprint("hosts_api", __name__)

CLAUDE = "claude-code"
# How long /all waits for the first scan of a big history before answering with what it has.
READY_WAIT_S = 60.0
DEFAULT_LIMIT = 100
_END = 2**62  # an offset past every conversation's end: a page of none, with the total
MAX_LIMIT = 500
# <host>:<source>:<id>, each part of the characters hosts, sources and agents' ids use.
_KEY_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}:[a-z0-9-]{1,32}:[A-Za-z0-9_.-]{1,128}")


def json_response(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


@bp.get("/all")
def all_sessions():
    """Every session of every source, newest activity first."""
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    return json_response(svc.store.snapshot())


@claude_bp.get("/all")
def all_claude_sessions():
    """Every Claude Code session, newest activity first."""
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    return json_response(svc.store.snapshot(CLAUDE))


@bp.post("/refresh")
@claude_bp.post("/refresh")
def refresh():
    """Rescan everything; connected clients receive a refresh event."""
    svc = service_of(current_app)
    monitor = getattr(svc, "monitor", None)
    if monitor is None:
        return json_error(503, "not started yet; try again", headers={"Retry-After": "1"})
    count = monitor.refresh()
    if request.blueprint == claude_bp.name:
        count = len(svc.store.snapshot(CLAUDE))
    return json_response({"sessions": count})


@hosts_bp.get("/api/hosts")
def hosts():
    """Every host that has published, with its state (SPEC 3, 9)."""
    return json_response(service_of(current_app).hosts())


@bp.get("/<key>")
def session_detail(key: str):
    """One session (by key) and a page of its conversation."""
    if not _KEY_RE.fullmatch(key):
        return json_error(400, "malformed session key")
    return _detail(lambda svc: svc.store.get(key))


@claude_bp.get("/<session_id>")
def claude_session_detail(session_id: str):
    """One Claude Code session (by its own id) and a page of its conversation."""
    if not is_valid_session_id(session_id):
        return json_error(400, "malformed session id")
    return _detail(lambda svc: svc.store.find(CLAUDE, session_id))


@bp.get("/<key>/subagents/<agent_id>")
def subagent_detail(key: str, agent_id: str):
    """A page of the conversation of one of a session's subagents, named by the ``agentId`` its
    tool result carries: ``{"agentId", "messages", "nextOffset", "total"}``."""
    if not _KEY_RE.fullmatch(key):
        return json_error(400, "malformed session key")
    if not is_valid_agent_id(agent_id):
        return json_error(400, "malformed agent id")
    paging = _paging()
    if isinstance(paging, Response):
        return paging
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    if svc.store.get(key) is None:
        return json_error(404, "no such session")
    page = svc.subagent_conversation(key, agent_id, *paging)
    if page is None:
        return json_error(404, "no such subagent")
    return json_response({"agentId": agent_id, **page})


def _paging() -> tuple[int, int] | Response:
    """``(offset, limit)`` of the request, or the 400 answer."""
    try:
        offset = int(request.args.get("offset", 0))
        limit = int(request.args.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return json_error(400, "offset and limit must be whole numbers")
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        return json_error(400, f"offset must be >= 0 and limit 1-{MAX_LIMIT}")
    return offset, limit


def _detail(lookup):
    paging = _paging()
    if isinstance(paging, Response):
        return paging
    offset, limit = paging
    svc = service_of(current_app)
    svc.wait_ready(READY_WAIT_S)
    session = lookup(svc)
    if session is None:
        return json_error(404, "no such session")
    if request.args.get("tail") in ("1", "true"):
        # The last ``limit`` messages, in one request (the view opens at its tail): where the
        # tail starts is known once the conversation is indexed, which an empty page does.
        head = svc.conversation(session["key"], _END, 1)
        if head is None:
            return json_error(404, "no such session")
        offset = max(0, int(head.get("total") or 0) - limit)
    page = svc.conversation(session["key"], offset, limit)
    if page is None:
        return json_error(404, "no such session")
    return json_response({"session": session, **page})
