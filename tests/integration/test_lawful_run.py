"""A scheduled campaign run on a shifted clock (MERIDIAN_CLOCK_SHIFT_S) by real Celery
workers: each delivery goes when ``meridian campaigns when`` said it would.

The occurrence is Sunday 2027-10-17 at 10:00 on each patient's clock. The patients'
predictions lie hours apart (14:00, 17:00, 19:00 and 20:00 UTC), so the workers
are started once per predicted instant with Meridian's clock a few seconds before
it: everything due then goes, nothing due later goes early, and the Rhode Island
patient (no texts on Sunday) is skipped with the reason the command gave.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from campaigns.clock.lawful import when_to_send
from campaigns.clock.whereabouts import locate
from campaigns.content.catalogue import apply_campaign
from campaigns.domain.states import RunState
from campaigns.people.patients import import_patients
from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.store.tables import deliveries, patients
from tests.conftest import ROOT
from tests.support.waiting import wait_until
from tests.support.workers import Workers

NAME = "sunday-lawful"
OCCURRENCE = "2027-10-17"
# external_id: (timezone, state, phone); the comment is what the table says.
PATIENTS = {
    "NY1": ("America/New_York", "NY", "+12125550142"),  # 10:00 EDT = 14:00Z
    "CA1": ("", "CA", "+12125550143"),  # CA or NY: 10:00 PDT = 17:00Z
    "TX1": ("America/Chicago", "TX", "+15125550142"),  # TX Sunday opens at noon: 17:00Z
    "AK1": ("", "", "+19075550142"),  # Anchorage or Adak: 10:00 HDT = 19:00Z
    "NONE": ("", "", "+18005550142"),  # no evidence: Honolulu's 10:00 = 20:00Z
    "RI1": ("America/New_York", "RI", "+14015550142"),  # no texts on Sunday: skipped
}
HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source,preferred_channel"
)
# Meridian's clock starts this far before each predicted instant.
LEAD = timedelta(seconds=8)
# A worker that started late still sends long before the next prediction (hours off).
SLACK = timedelta(minutes=5)


def _write_patients(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, HEADER.split(","))
        out.writeheader()
        for external_id, (zone, state, phone) in PATIENTS.items():
            out.writerow(
                {
                    "external_id": external_id,
                    "first_name": "Ana",
                    "phone": phone,
                    "timezone": zone,
                    "state": state,
                    "tags": "active",
                    "sms_consent": "yes",
                    "sms_consent_at": "2026-01-05T10:00:00-05:00",
                    "sms_consent_source": "intake-form",
                }
            )


def _write_campaign(path: Path) -> None:
    shipped = yaml.safe_load(
        (ROOT / "examples/campaigns/cold-and-flu-season.yaml").read_text(encoding="utf-8")
    )
    definition = {
        **shipped,
        "name": NAME,
        "channels": ["sms"],
        "audience": {"tags_any": ["active"]},
        "schedule": {"once": OCCURRENCE, "send_time": "10:00", "grace_hours": 6},
    }
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")


def _predict(env: dict[str, str], external_id: str) -> dict[str, Any]:
    """What the installed ``meridian campaigns when`` says, in its own process."""
    script = Path(sys.executable).with_name("meridian")
    args = [str(script), "campaigns", "when", NAME, "--patient", external_id]
    done = subprocess.run(
        [*args, "--occurrence", OCCURRENCE, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)["channels"]["sms"]
    return answer


def _ledger(svc: Services) -> dict[str, dict[str, Any]]:
    """Each patient's delivery row, by external_id."""
    query = select(
        patients.c.external_id,
        deliveries.c.state,
        deliveries.c.skip_reason,
        deliveries.c.due_at,
        deliveries.c.sent_at,
    ).join(patients, patients.c.id == deliveries.c.patient_id)
    with svc.db.connect() as conn:
        return {str(r["external_id"]): dict(r) for r in conn.execute(query).mappings()}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_each_delivery_goes_when_campaigns_when_said_it_would(
    svc: Services, env: dict[str, str], tmp_path: Path
) -> None:
    _write_patients(tmp_path / "patients.csv")
    _write_campaign(tmp_path / "campaign.yaml")
    import_patients(tmp_path / "patients.csv", svc.patients, region="US", actor="test")
    apply_campaign(svc, tmp_path / "campaign.yaml", actor="test", approve=True)
    predicted = {external_id: _predict(env, external_id) for external_id in PATIENTS}
    at = {p: datetime.fromisoformat(a["at"]) if a["at"] else None for p, a in predicted.items()}
    assert at["RI1"] is None and predicted["RI1"]["skip_reason"] == "no_lawful_time"
    assert at["NY1"] == datetime(2027, 10, 17, 14, tzinfo=UTC)  # the table's own figures
    assert at["AK1"] == datetime(2027, 10, 17, 19, tzinfo=UTC)
    assert at["NONE"] == datetime(2027, 10, 17, 20, tzinfo=UTC)
    control.schedule(svc, NAME, actor="test")

    instants = sorted({a for a in at.values() if a is not None})
    assert len(instants) == 4
    for phase, instant in enumerate(instants):
        shift = (instant - LEAD - datetime.now(UTC)).total_seconds()
        logdir = tmp_path / f"phase-{phase}"
        logdir.mkdir()
        workers = Workers({**env, "MERIDIAN_CLOCK_SHIFT_S": f"{shift:.3f}"}, logdir)
        try:
            workers.start()
            due_now = [p for p, a in at.items() if a == instant]

            def sent(due: list[str] = due_now) -> bool:
                rows = _ledger(svc)
                return all(p in rows and rows[p]["state"] == "sent" for p in due)

            wait_until(sent, 120, f"the deliveries due at {instant:%H:%M} UTC", workers.logs)
            if phase == len(instants) - 1:
                # The last send task records its outcomes, then marks the run finished:
                # stop the workers only after that.
                wait_until(
                    lambda: bool(svc.runs.ids_with_status(RunState.FINISHED)),
                    60,
                    "the run to be marked finished",
                    workers.logs,
                )
        finally:
            workers.stop()
        rows = _ledger(svc)
        # Fan-out planned each message for the instant the command predicted.
        assert {p: _utc(r["due_at"]) for p, r in rows.items() if p != "RI1"} == {
            p: a for p, a in at.items() if a is not None
        }
        for patient, predicted_at in at.items():
            row = rows[patient]
            if predicted_at is None:
                assert (row["state"], row["skip_reason"]) == ("skipped", "no_lawful_time")
            elif predicted_at <= instant:
                sent_at = _utc(row["sent_at"])
                assert sent_at is not None
                assert predicted_at <= sent_at < predicted_at + SLACK, (patient, sent_at)
                # ... and the instant it went was lawful everywhere the patient might be.
                zone, state, phone = PATIENTS[patient]
                check = when_to_send(
                    locate(zone, state, phone, year=2026),
                    "sms",
                    occurrence=OCCURRENCE,
                    send_time=time(10),
                    grace=timedelta(hours=6),
                    now=sent_at,
                )
                assert check.at == sent_at, (patient, check.decided_by)
            else:
                # Due later: still waiting, never sent early.
                assert (row["state"], row["sent_at"]) == ("pending", None), patient

    run_id = svc.runs.ids_with_status(RunState.FINISHED)[0]
    assert runs.run_status(svc, run_id)["by_state"] == {"sent": 5, "skipped": 1}
