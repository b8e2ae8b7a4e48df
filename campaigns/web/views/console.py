"""The staff console's blueprint: its error pages, template filters and page helpers.

The console's routes are grouped by what staff look at: dashboard, patients,
campaigns, runs, review (audit log and flagged texts); each group's module adds
its views to ``bp``. Patient data stays out of URLs (patients are addressed by
their internal id and searched with a POST), because URLs end up in access logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, render_template, request
from flask.typing import ResponseReturnValue

from campaigns.errors import BrokerUnavailable, InputError, NotFound, Problem
from campaigns.people.staff import Staff
from campaigns.web.auth import current_staff
from campaigns.web.context import services
from campaigns.web.views.common import BROKER_DOWN

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__)

T = TypeVar("T")


def actor() -> str:
    """The signed-in user, as the audit log names them."""
    staff = current_staff()
    return staff.username if staff else "unknown"


def fragment() -> bool:
    """True for an htmx request, which wants a piece of a page, not a whole one."""
    return request.headers.get("HX-Request") == "true"


def problems(exc: InputError) -> list[Problem]:
    return exc.problems or [Problem("input", exc.message)]


def attempt(what: str, call: Callable[[], T]) -> tuple[bool, T | None]:
    """(done?, answer) of a control call; a refusal or an unreachable broker is flashed."""
    try:
        return True, call()
    except InputError as exc:
        flash(str(exc), "error")
    except BrokerUnavailable:
        log.exception("%s: the broker could not be reached", what)
        flash(f"{what}: {BROKER_DOWN}", "error")
    return False, None


@bp.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    return render_template("console/error.html", title="Not found", message=str(error)), 404


@bp.errorhandler(403)
def _forbidden(_: Exception) -> ResponseReturnValue:
    message = "Your role can read this page but not change anything."
    return render_template("console/error.html", title="Not allowed", message=message), 403


# what the templates use (every blueprint's: the login page is the auth blueprint's) ---


@bp.app_template_global("staff")
def _staff() -> Staff | None:
    return current_staff()


@bp.app_template_filter("yesno")
def _yesno(value: bool | None) -> str:
    return "no record" if value is None else ("yes" if value else "no")


@bp.app_template_filter("when")
def _format_when(value: datetime | date | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:  # the ISO 8601 instants run_status hands over
            instant = datetime.fromisoformat(value)
        except ValueError:
            return value
        return _format_when(instant)
    if isinstance(value, datetime):
        zone = ZoneInfo(services().settings.clinic_timezone)
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    return value.isoformat()


@bp.app_template_filter("wall")
def _format_wall(value: datetime) -> str:
    """A send time as the wall clock reads it; each patient gets it in their own zone."""
    return value.strftime("%a %Y-%m-%d %H:%M")
