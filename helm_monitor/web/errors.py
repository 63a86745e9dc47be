"""Every error is JSON ``{"error": "..."}`` with the right status; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

import orjson

log = logging.getLogger(__name__)


def json_error(status: int, message: str, headers: dict | None = None) -> Response:
    resp = Response(orjson.dumps({"error": message}), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return json_error(exc.code or 500, exc.description or exc.name, headers=allow)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return json_error(500, "internal error")
