"""What staff review: the audit log, and inbound texts flagged for a person to read."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, bp


@bp.get("/audit")
@require_role("viewer")
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    who = request.args.get("actor") or None
    action = request.args.get("action") or None
    events = services().reports.audit_page(before_id=before, actor=who, action_prefix=action)
    return render_template("console/audit.html", events=events, actor=who, action=action)


@bp.get("/inbound")
@require_role("viewer")
def inbound() -> ResponseReturnValue:
    reviewed = request.args.get("reviewed") == "1"
    messages = services().reports.flagged_inbound(include_reviewed=reviewed)
    return render_template("console/inbound.html", messages=messages, reviewed=reviewed)


@bp.post("/inbound/<int:message_id>/reviewed")
@require_role("marketer")
def inbound_reviewed(message_id: int) -> ResponseReturnValue:
    if services().reports.mark_reviewed(message_id, actor=actor()):
        flash("Marked as reviewed.", "ok")
    else:
        abort(404)
    return redirect(url_for("console.inbound"))
