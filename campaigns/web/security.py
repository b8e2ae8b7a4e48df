"""What a signed-in user may do, and what guards every page: roles, CSRF, headers.

Roles rank viewer < marketer < approver < admin. ``require_role`` states the least role a view
needs; ``check_write_roles`` refuses to start the app if a console, API or login
view that accepts a POST does not state one, so a view that changes something is
never open to viewers by omission. Forms carry a CSRF token; the API (bearer
tokens, never cookies) and the public routes (their own proof) are exempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Flask, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect

from campaigns.errors import MeridianError
from campaigns.people.staff import ROLES
from campaigns.web.auth import OPEN_ENDPOINTS, current_staff

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_GUARDED_BLUEPRINTS = ("console", "api", "auth")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADERS = {
    # Inline styles are allowed for the e-mail preview's srcdoc frame; scripts are not.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class RoleError(MeridianError, RuntimeError):
    """A view names no role, or one that does not exist: the app refuses to start."""


def require_role(role: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (403) a signed-in user whose role ranks below ``role``."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            staff = current_staff()
            if staff is None:
                abort(401)
            if not staff.can(role):
                abort(403)
            return view(*args, **kwargs)

        guarded.meridian_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def signed_in_as(role: str) -> bool:
    """Whether this request's staff member holds ``role`` (or one above it)."""
    staff = current_staff()
    return staff is not None and staff.can(role)


def role_of(view: Callable[..., Any]) -> str | None:
    """The least role ``require_role`` set on a view, if any."""
    role: str | None = getattr(view, "meridian_role", None)
    return role


def check_write_roles(app: Flask) -> None:
    """Refuse to start when a console, API or login view that accepts writes states no role."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in _GUARDED_BLUEPRINTS:
            continue
        open_ = rule.endpoint in OPEN_ENDPOINTS
        writes = bool(rule.methods and rule.methods & _WRITES)
        if writes and not open_ and role_of(app.view_functions[rule.endpoint]) is None:
            raise RoleError(f"{rule.endpoint} accepts writes without @require_role")


def install(app: Flask, *, csrf_exempt: Iterable[Blueprint], hsts: bool = False) -> None:
    """CSRF protection (but for ``csrf_exempt``), security headers (HSTS on every reply
    when ``hsts``: production), and the role check.

    Call once every blueprint is registered.
    """
    csrf = CSRFProtect(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.after_request(_harden)
    if hsts:
        app.after_request(_strict_transport)
    check_write_roles(app)


def _harden(response: Response) -> Response:
    if request.blueprint in _GUARDED_BLUEPRINTS:
        response.headers.update(_HEADERS)
        # Pages show patients' names and contacts: keep them out of shared caches.
        response.headers["Cache-Control"] = "no-store"
    return response


def _strict_transport(response: Response) -> Response:
    response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response


def _csrf_refused(error: CSRFError) -> ResponseReturnValue:
    log.info("refused a form post without a valid CSRF token: %s", error.description)
    page = render_template(
        "console/error.html",
        title="Form expired",
        message="The form was stale or not sent by this site. Go back, reload it and try again.",
    )
    return page, 400
