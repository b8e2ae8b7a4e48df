"""The sign-in pages: /login (open to all) and /logout. The flow is campaigns.web.auth's."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.web import auth
from campaigns.web.context import services
from campaigns.web.security import require_role

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    svc = services()
    try:
        staff = auth.authenticate(
            svc,
            request.form.get("username", ""),
            request.form.get("password", ""),
            request.remote_addr or "unknown",
        )
    except auth.TooManySignIns as exc:
        log.warning("a staff sign-in was refused: too many failures for that username or address")
        flash(
            f"Too many failed sign-ins for this username or from this address. Try again in "
            f"{-(-exc.retry_after_s // 60)} minutes.",
            "error",
        )
        page = render_template("console/login.html", next=request.form.get("next", ""))
        return page, 429, {"Retry-After": str(exc.retry_after_s)}
    if staff is None:
        log.info("a staff sign-in failed")
        flash("Wrong username or password.", "error")
        page = render_template("console/login.html", next=request.form.get("next", ""))
        return page, 401
    auth.open_session(svc, staff)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
@require_role("viewer")
def logout() -> ResponseReturnValue:
    auth.close_session(services())
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect).

    Browsers read a backslash as a slash and drop tabs and line breaks, so
    ``/\\evil.com`` and ``/<tab>/evil.com`` are ``//evil.com`` to them: another host.
    """
    if not target or not target.startswith("/") or not _plain_path(target):
        return url_for("console.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return url_for("console.dashboard")
    return target


def _plain_path(target: str) -> bool:
    return "\\" not in target and all(" " <= c != "\x7f" for c in target)
