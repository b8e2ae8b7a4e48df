"""The API's side of results: a run's message log as CSV, and a patient's next
appointment set (a new future date is a booking, attributed to a run)."""

from __future__ import annotations

from flask import Response, abort, stream_with_context
from flask.typing import ResponseReturnValue

from campaigns.sending.export import message_log_csv, results_csv
from campaigns.sending.runs import run_status
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views import schemas as s
from campaigns.web.views.api import _actor, _asked, _body, _reply, bp


def csv_download(run_id: int, actor: str, where: str) -> Response:
    """The run's message log as a streamed CSV download, audited as an export."""
    svc = services()
    run_status(svc, run_id)  # 404 first
    svc.engagement.audit_export(svc.now(), actor, run_id, where)
    return Response(
        stream_with_context(message_log_csv(svc, run_id)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}-messages.csv"',
            "Cache-Control": "no-store",
        },
    )


def results_download(run_id: int, actor: str, where: str) -> Response:
    """The run's results (the figures its page shows) as a CSV download, audited."""
    svc = services()
    text = results_csv(svc, run_id)  # 404 first
    svc.engagement.audit_export(svc.now(), actor, run_id, f"{where}: results")
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}-results.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/runs/<int:run_id>/export.csv")
@require_role("viewer")
def run_export(run_id: int) -> ResponseReturnValue:
    return csv_download(run_id, _actor(), "api")


@bp.get("/runs/<int:run_id>/results.csv")
@require_role("viewer")
def run_results_export(run_id: int) -> ResponseReturnValue:
    return results_download(run_id, _actor(), "api")


@bp.patch("/patients/<int:patient_id>")
@require_role("marketer")
def patient_patch(patient_id: int) -> ResponseReturnValue:
    asked = _asked(s.AppointmentChange, _body())
    svc = services()
    if not svc.bookings.set_next_appointment(patient_id, asked.next_appointment, _actor()):
        abort(404)
    return _reply(s.PatientPatched(patient_id=patient_id, next_appointment=asked.next_appointment))
