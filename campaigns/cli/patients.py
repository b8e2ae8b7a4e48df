"""``meridian patients``: import patients, record and show their consent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.startup import ACTOR, JsonOpt, handled, out, print_json, services
from campaigns.collector import collecting_less
from campaigns.domain.states import channel_of
from campaigns.errors import InputError, NotFound
from campaigns.people.patients import import_patients

app = typer.Typer(no_args_is_help=True, help="Patients and their consent.")


@app.command("import")
@handled
def patients_import(
    file: Path,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count; write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the good rows, list the bad.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import (or update by external_id) patients from a CSV file. All or nothing."""
    svc = services()
    with collecting_less():  # one pass over the file (campaigns.collector)
        report = import_patients(
            file,
            svc.patients,
            region=svc.settings.default_region,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            actor=ACTOR,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(report.summary(), highlight=False)


def _consent(external_id: str, channel: str, granted: bool, text: str | None, actor: str) -> int:
    from campaigns.people import consent

    if channel not in ("sms", "email"):
        raise InputError(f"--channel: {channel!r} is not sms or email")
    if not 0 < len(actor.strip()) <= 64:
        raise InputError("--by: give who records it, in 1 to 64 characters")
    svc = services()
    patient = svc.patients.find(external_id)
    if patient is None:
        raise NotFound(f"--patient: no patient with external_id {external_id!r}")
    return consent.record(
        svc,
        [patient.patient_id],
        channel_of(channel),
        granted,
        source="staff",
        actor=actor,
        text=text,
    )


@app.command("grant")
@handled
def patients_grant(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    channel: Annotated[str, typer.Option("--channel", help="sms or email.")],
    text: Annotated[str, typer.Option("--text", help="The words the patient agreed to.")],
    by: Annotated[str, typer.Option("--by", help="Who records it (for the audit log).")] = ACTOR,
) -> None:
    """Record a patient's consent to a channel, with the words they agreed to."""
    _consent(patient, channel, True, text, by)
    out.print(f"consent to {channel} recorded for {patient}")


@app.command("revoke")
@handled
def patients_revoke(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    channel: Annotated[str, typer.Option("--channel", help="sms or email.")],
    text: Annotated[str | None, typer.Option("--text", help="How the patient said it.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who records it (for the audit log).")] = ACTOR,
) -> None:
    """Record an opt-out; it stops every later message on that channel at once."""
    _consent(patient, channel, False, text, by)
    out.print(f"opt-out from {channel} recorded for {patient}")


@app.command("consent")
@handled
def patients_consent(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    as_json: JsonOpt = False,
) -> None:
    """A patient's consent history, oldest first, and where each channel stands."""
    svc = services()
    found = svc.patients.find(patient)
    if found is None:
        raise NotFound(f"--patient: no patient with external_id {patient!r}")
    history = svc.consent.history(found.patient_id)
    svc.reports.record_access(ACTOR, "patient.view", found.patient_id, what="consent")
    data = {
        "patient": patient,
        "current": svc.consent.current(found.patient_id),
        "history": [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in h.items()
                if k != "patient_id"
            }
            for h in history
        ],
    }
    if as_json:
        print_json(data)
        return
    table = Table("at", "channel", "granted", "source", "recorded by")
    for h in history:
        table.add_row(
            h["at"].isoformat(),
            h["channel"],
            "yes" if h["granted"] else "no",
            h["source"],
            h["recorded_by"],
        )
    out.print(table)
