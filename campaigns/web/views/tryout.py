"""Try a saved campaign before it goes: pick a patient by name or external id, see
every channel's message for them with the instant it would reach them (local time,
UTC and why, from ``meridian campaigns when``'s answer), and send a test to your own
phone or email.

The picker's search is a POST (names stay out of URLs and access logs), answers
JSON to scripts and the page, at most ten patients, and logs nothing; the audit
keeps which patient ids were shown, as the patients page's search does.
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from campaigns.content import catalogue, compliance_rules
from campaigns.content.preview import preview_channels
from campaigns.errors import BrokerUnavailable, InputError, Problem
from campaigns.sending import timing
from campaigns.sending.test_send import send_test
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.common import BROKER_DOWN
from campaigns.web.views.console import actor, bp, problems

PICK_LIMIT = 10


def _pick(query: str) -> list[dict[str, Any]]:
    svc = services()
    found = svc.reports.pick_patients(query[:100], limit=PICK_LIMIT)
    if found:
        svc.reports.record_access(
            actor(), "patient.search", None, found=len(found), ids=[p["id"] for p in found]
        )
    return [
        {
            "external_id": p["external_id"],
            "name": " ".join(x for x in (p["first_name"], p["last_name"]) if x) or "(no name)",
            "state": p["state"],
        }
        for p in found
    ]


@bp.post("/patients/pick")
@require_role("viewer")
def patient_pick() -> ResponseReturnValue:
    """JSON: ``{"q": "mar"}`` (or a form field q) -> up to ten patients."""
    body = request.get_json(silent=True) if request.is_json else None
    query = str((body or {}).get("q", "")) if body is not None else request.form.get("q", "")
    return jsonify({"patients": _pick(query), "limit": PICK_LIMIT})


@bp.route("/campaigns/<name>/try", methods=["GET", "POST"])
@require_role("viewer")
def campaign_try(name: str) -> ResponseReturnValue:
    svc = services()
    row, definition = catalogue.load_campaign(svc, name)
    query = request.form.get("q", "").strip()
    chosen = request.form.get("patient", "").strip()
    context: dict[str, Any] = {
        "campaign": row,
        "definition": definition,
        "query": query,
        "patient": chosen,
        "found": _pick(query) if query and request.method == "POST" else None,
        "mine": svc.staff.get(actor()) or {},
        "rules": len(compliance_rules.load_rules().rules),
    }
    if chosen:
        recipient = svc.patients.find(chosen)
        if recipient is None:
            context["problems"] = [Problem("patient", "no patient with that external id")]
            return render_template("console/campaign_try.html", **context), 422
        context["channels"] = preview_channels(svc, definition, recipient)
        # Picked by name: the page names them so, with the id to tell namesakes apart.
        full_name = " ".join(n for n in (recipient.first_name, recipient.last_name) if n)
        context["patient_label"] = f"{full_name} ({chosen})" if full_name else chosen
        svc.reports.record_access(
            actor(), "patient.preview", recipient.patient_id, campaign=definition.name
        )
        try:
            day = timing.next_occurrence(svc, definition)
            context["timing"] = timing.send_times(svc, definition, recipient, day)
        except InputError as exc:
            context["timing_problem"] = exc.message
        try:  # linted now, as schedule and run will judge it
            context["findings"] = catalogue.mark_acknowledged(
                definition, catalogue.lint_definition(svc, definition)
            )
        except InputError as exc:
            context["problems"] = problems(exc)
    return render_template("console/campaign_try.html", **context)


@bp.post("/campaigns/<name>/test-send")
@require_role("marketer")
def campaign_test_send(name: str) -> ResponseReturnValue:
    svc = services()
    try:
        said = send_test(
            svc,
            name,
            username=actor(),
            channel=request.form.get("channel", ""),
            external_id=request.form.get("patient", "").strip() or None,
        )
    except InputError as exc:
        flash(f"Test not sent: {exc.message}", "error")
        for p in exc.problems:  # where and what to do, when the refusal names a field
            flash(f"{p.where}: {p.reason}", "error")
    except BrokerUnavailable:
        flash(f"Test not sent: {BROKER_DOWN}", "error")
    else:
        flash(said, "ok")
    return campaign_try(name)
