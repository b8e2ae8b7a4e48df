"""What staff review: the audit log (the inbox of patient replies is views/inbox.py)."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import bp


@bp.get("/audit")
@require_role("viewer")
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    who = request.args.get("actor") or None
    action = request.args.get("action") or None
    events = services().reports.audit_page(before_id=before, actor=who, action_prefix=action)
    return render_template("console/audit.html", events=events, actor=who, action=action)
