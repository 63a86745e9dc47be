"""GET /usage (the usage view) and GET /api/usage (SPEC 10): usage and cost over time."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from helm_monitor import __version__
from helm_monitor.usage.query import QueryError
from helm_monitor.web.api import READY_WAIT_S, json_response
from helm_monitor.web.errors import json_error
from helm_monitor.web.page import asset_digest, module_imports
from helm_monitor.web.state import service_of

bp = Blueprint("usage", __name__)

# Query arguments are short; anything longer is a mistake, refused before parsing.
_MAX_ARG = 64


@bp.get("/usage")
def usage_page():
    """The usage view: spend and tokens over time, by model, project, agent and host."""
    return render_template("usage.html", version=__version__, assets=f"assets/{asset_digest()}",
                           preload=module_imports("usage/usage.js"))


@bp.get("/api/usage")
def usage():
    """Tokens, cost, sessions and messages per time bucket of any zone, grouped as asked."""
    args = {name: request.args.get(name) or None for name in ("from", "to", "tz", "bucket", "by")}
    if any(v is not None and len(v) > _MAX_ARG for v in args.values()):
        return json_error(400, "query arguments are at most 64 characters")
    svc = service_of(current_app)
    index = getattr(svc, "usage", None)
    if index is None:
        return json_error(501, "usage is counted by each host's own helm-monitor; this web tier has none yet")
    svc.wait_ready(READY_WAIT_S)
    try:
        answer = index.query(start=args["from"], end=args["to"], tz=args["tz"],
                             bucket=args["bucket"] or "day", by=args["by"])
    except QueryError as exc:
        return json_error(400, str(exc))
    return json_response(answer)
