"""Patients: search by external id or last name, import a CSV, one patient's record."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.utils import secure_filename

from campaigns.clock.quiet_hours import strictest_cap
from campaigns.clock.whereabouts import Whereabouts, locate
from campaigns.domain.states import Channel
from campaigns.errors import InputError, NotFound
from campaigns.people import inbox
from campaigns.people.patients import import_patients
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.common import saved_upload
from campaigns.web.views.console import actor, bp, fragment, problems


@bp.get("/patients")
@require_role("viewer")
def patients() -> ResponseReturnValue:
    return render_template("console/patients.html", count=services().patients.count())


@bp.post("/patients/search")
@require_role("viewer")
def patient_search() -> ResponseReturnValue:
    query = request.form.get("q", "")
    found = services().reports.search_patients(query)
    # What was searched for may be a name: the audit keeps what was shown, by id.
    services().reports.record_access(
        actor(), "patient.search", None, found=len(found), ids=[p["id"] for p in found]
    )
    if fragment():
        return render_template("console/_patient_rows.html", found=found, query=query)
    count = services().patients.count()
    return render_template("console/patients.html", count=count, found=found, query=query)


@bp.post("/patients/import")
@require_role("marketer")
def patient_import() -> ResponseReturnValue:
    svc = services()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to import.", "error")
        return redirect(url_for("console.patients"))
    name = secure_filename(upload.filename) or "patients.csv"
    dry_run = request.form.get("dry_run") == "on"
    skip_invalid = request.form.get("skip_invalid") == "on"
    with saved_upload(upload.stream, name) as path:
        try:
            report = import_patients(
                path,
                svc.patients,
                region=svc.settings.default_region,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                actor=actor(),
            )
        except InputError as exc:
            page = render_template(
                "console/patients.html",
                count=svc.patients.count(),
                refused=exc.message.replace(str(path), name),
                problems=problems(exc),
            )
            return page, 422
    return render_template(
        "console/patients.html", count=svc.patients.count(), report=report, filename=name
    )


@bp.get("/patients/<int:patient_id>")
@require_role("viewer")
def patient(patient_id: int) -> ResponseReturnValue:
    svc = services()
    found = svc.reports.patient(patient_id)
    if found is None:
        raise NotFound(f"no patient with id {patient_id}")
    history = svc.consent.history(patient_id)
    where, where_problem = _whereabouts(svc.settings.clinic_service_zones, found, svc.now().year)
    phone, email = found.get("phone"), found.get("email")
    contacts: tuple[tuple[Channel, str | None], ...] = (("sms", phone), ("email", email))
    suppressed = [
        row
        for channel, address in contacts
        if address and (row := svc.suppressions.current(channel, address)) and row.suppressed
    ]
    restorable: list[Channel] = [
        ch
        for ch in ("sms", "email")
        if found[f"{ch}_opt_in"] is False and inbox.why_not_restorable(svc, patient_id, ch) is None
    ]
    svc.reports.record_access(actor(), "patient.view", patient_id)
    return render_template(
        "console/patient.html",
        patient=found,
        history=history,
        where=where,
        where_problem=where_problem,
        cap=strictest_cap(where.states) if where else None,
        restorable=restorable,
        suppressed=suppressed,
        messages=svc.inbound.thread_messages(phone) if phone else [],
        sent=svc.inbound.sent_to_patient(patient_id),
    )


def _whereabouts(
    service_zones: tuple[str, ...], found: dict[str, Any], year: int
) -> tuple[Whereabouts | None, str | None]:
    """Where the patient might be, with the evidence; or why their stored values say nothing."""
    try:
        where = locate(found["timezone"], found["state"], found["phone"], service_zones, year=year)
    except InputError as exc:
        return None, exc.message
    return where, None
