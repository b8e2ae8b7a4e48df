"""A campaign's review: its copy with each lint finding at the sentence that raised
it, where its approval stands, and the steps (submit, approve, send back, acknowledge
one finding). The rules are campaigns.content.review's; this only asks and shows."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.content import catalogue, compliance_rules, review
from campaigns.content.annotate import annotate
from campaigns.content.approval import review_status
from campaigns.errors import InputError, NotFound, Problem
from campaigns.people.staff import Staff
from campaigns.web.auth import current_staff
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import bp, problems


@bp.get("/campaigns/<name>/review")
@require_role("viewer")
def campaign_review(name: str) -> ResponseReturnValue:
    return _page(name)


def _page(
    name: str, *, refused: str | None = None, found: list[Problem] | None = None, status: int = 200
) -> ResponseReturnValue:
    svc = services()
    row, definition = catalogue.load_campaign(svc, name)
    try:
        findings = catalogue.mark_acknowledged(
            definition, catalogue.lint_definition(svc, definition)
        )
        lint_problems: list[Problem] = []
    except InputError as exc:
        findings, lint_problems = [], problems(exc)
    for f in findings:
        f["token"] = review.finding_token(f) if f["severity"] == "claim" else None
    parts = annotate(svc, definition, findings) if not lint_problems else []
    standing = review_status(svc, int(row["id"]), definition)
    me = current_staff()
    # review.approve refuses an approver who changed it since it was submitted
    edited_by_me = (
        me is not None
        and standing.state == "submitted"
        and standing.latest is not None
        and standing.latest["fingerprint"] != standing.fingerprint
        and svc.reviews.edits_since_submission(int(row["id"]), me.username) > 0
    )
    page = render_template(
        "console/campaign_review.html",
        campaign=row,
        definition=definition,
        review=standing,
        edited_by_me=edited_by_me,
        history=svc.reviews.history(int(row["id"]))[:20],
        two_person=svc.settings.approval_two_person,
        findings=findings,
        open_claims=[f for f in findings if f["severity"] == "claim" and not f["acknowledged"]],
        parts=parts,
        lint_problems=lint_problems,
        rules=len(compliance_rules.load_rules().rules),
        refused=refused,
        problems=found or [],
        form=request.form,
    )
    return page, status


def _me() -> Staff:
    staff = current_staff()
    if staff is None:
        abort(401)
    return staff


@bp.post("/campaigns/<name>/submit")
@require_role("marketer")
def campaign_submit(name: str) -> ResponseReturnValue:
    try:
        review.submit(services(), name, staff=_me())
    except InputError as exc:
        flash(str(exc), "error")
    else:
        flash("Submitted for approval: a staff member with the approver role reviews it.", "ok")
    return redirect(url_for("console.campaign_review", name=name))


@bp.post("/campaigns/<name>/approve")
@require_role("approver")
def campaign_approve(name: str) -> ResponseReturnValue:
    try:
        review.approve(services(), name, staff=_me(), seen=request.form.get("fingerprint"))
    except InputError as exc:
        return _page(name, refused=exc.message, found=exc.problems, status=422)
    flash("Approved: this exact version may now be scheduled or run.", "ok")
    return redirect(url_for("console.campaign_review", name=name))


@bp.post("/campaigns/<name>/send-back")
@require_role("approver")
def campaign_send_back(name: str) -> ResponseReturnValue:
    try:
        review.send_back(services(), name, staff=_me(), comment=request.form.get("comment", ""))
    except InputError as exc:
        return _page(name, refused=exc.message, found=problems(exc), status=422)
    flash("Sent back to its author with your comment.", "ok")
    return redirect(url_for("console.campaign_review", name=name))


@bp.post("/campaigns/<name>/acknowledge")
@require_role("admin")
def campaign_acknowledge(name: str) -> ResponseReturnValue:
    try:
        applied = review.acknowledge(
            services(),
            name,
            staff=_me(),
            finding_key=request.form.get("finding", ""),
            reason=request.form.get("reason", ""),
        )
    except InputError as exc:
        return _page(name, refused=exc.message, found=problems(exc), status=422)
    except NotFound as exc:
        return _page(name, refused=str(exc), status=409)
    flash(f"Finding acknowledged; {len(applied.unacknowledged)} claim(s) still need one.", "ok")
    return redirect(url_for("console.campaign_review", name=name))
