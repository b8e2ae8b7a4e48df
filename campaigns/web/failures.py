"""What every web request shares at its edges: a request id, and one catch-all.

The request id (a sane ``X-Request-ID`` from the proxy, or a new one) is on every
log line the request writes (campaigns.logs) and in the reply's header. An
exception no view handled becomes an error id: the log gets its scrubbed
traceback, the reply a message without parameters (JSON under /api, the error
page elsewhere), never the exception's text.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from campaigns import logs

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _start() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    logs.request_id.set(given if _SANE_ID.fullmatch(given) else secrets.token_hex(8))


def _stamp(response: Response) -> Response:
    if (rid := logs.request_id.get()) is not None:
        response.headers[REQUEST_ID_HEADER] = rid
    return response


def _unexpected(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, HTTPException):
        return exc
    error_id = logs.report_unexpected(log, exc, f"{request.method} {request.url_rule or '?'}")
    message = logs.unexpected_message(error_id)
    if request.path == "/api" or request.path.startswith("/api/"):
        response = jsonify(error=message, error_id=error_id, problems=[])
        response.status_code = 500
        return response
    page = render_template("console/error.html", title="Something went wrong", message=message)
    return page, 500


def install(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_stamp)
    app.register_error_handler(Exception, _unexpected)
