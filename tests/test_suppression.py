"""The suppression list and the evidence tables: kept whoever has the number, applied at
import, lifted only by START or a recorded consent; consent and suppression rows can
be neither changed nor deleted, and outlive the patient they name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.people import consent
from campaigns.people.inbound import InboundSms, handle_inbound
from campaigns.people.patients import import_patients
from campaigns.people.status_callbacks import handle_status
from campaigns.services import Services
from campaigns.store.db import downgrade
from campaigns.store.tables import consents, patients, suppressions

PHONE = "+16175550100"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def record(external_id: str, phone: str | None = PHONE, email: str | None = None) -> PatientRecord:
    facts = (ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),)
    if email:
        facts += (ConsentFact("email", True, SIGNED_UP, "intake-form", "I agree to email"),)
    return PatientRecord(
        external_id, "Robin", "Example", email, phone, "America/New_York", "MA",
        ("active",), None, None, None, facts,
    )  # fmt: skip


HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source,preferred_channel\n"
)


def csv_row(external_id: str, phone: str) -> str:
    return f"{external_id},Robin,Example,,{phone},,,active,,,yes,2024-03-01,intake-form,,,,\n"


def sms(body: str, sid: str, phone: str = PHONE) -> InboundSms:
    return InboundSms(sid=sid, from_phone=phone, body=body)


def test_a_stop_from_an_unknown_number_is_kept_and_a_later_import_is_opted_out(
    svc: Services, tmp_path: Path
) -> None:
    outcome = handle_inbound(svc, sms("STOP please", "SM1"))
    assert outcome.patient_ids == () and "suppressed" in outcome.actions
    row = svc.suppressions.current("sms", PHONE)
    assert row is not None and (row.reason, row.actor, row.evidence) == (
        "stop", "patient", "STOP please",
    )  # fmt: skip

    csv = tmp_path / "patients.csv"
    csv.write_text(HEADER + csv_row("P1", "(617) 555-0100") + csv_row("P2", "(617) 555-0199"))
    report = import_patients(csv, svc.patients, actor="test")

    assert report.suppressed == 1
    assert "1 patient imported opted out" in report.summary()
    found = svc.patients.find("P1")
    assert found is not None and found.sms_opt_in is False
    last = svc.consent.history(found.patient_id)[-1]
    assert (last["granted"], last["source"], last["address"]) == (False, "suppression-list", PHONE)
    assert consent.skip_reason(found, "sms", suppressed=True) == "opted_out"
    other = svc.patients.find("P2")
    assert other is not None and other.sms_opt_in is True


def test_a_dry_run_import_counts_the_suppressed_and_writes_nothing(
    svc: Services, tmp_path: Path
) -> None:
    handle_inbound(svc, sms("stop", "SM1"))
    csv = tmp_path / "patients.csv"
    csv.write_text(HEADER + csv_row("P1", "6175550100"))
    report = import_patients(csv, svc.patients, dry_run=True, actor="test")
    assert report.suppressed == 1 and svc.patients.count() == 0


def test_start_lifts_the_suppression_and_restores_a_patient_who_had_consented(
    svc: Services,
) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    handle_inbound(svc, sms("STOP", "SM1"))
    assert svc.suppressions.suppressed("sms", [PHONE]) == {PHONE}

    outcome = handle_inbound(svc, sms("START", "SM2"))

    assert "unsuppressed" in outcome.actions and "resubscribed" in outcome.actions
    assert svc.suppressions.suppressed("sms", [PHONE]) == set()
    assert [r.reason for r in svc.suppressions.history("sms", PHONE)] == ["stop", "start"]


def test_a_reimport_with_consent_does_not_lift_a_suppression(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    handle_inbound(svc, sms("STOP", "SM1"))
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    assert svc.suppressions.suppressed("sms", [PHONE]) == {PHONE}


def test_a_consent_recorded_by_staff_lifts_the_suppression(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    handle_inbound(svc, sms("STOP", "SM1"))
    found = svc.patients.find("P1")
    assert found is not None
    consent.record(
        svc, [found.patient_id], "sms", True, source="staff", actor="mara", text="signed form"
    )
    assert svc.suppressions.suppressed("sms", [PHONE]) == set()
    lifted = svc.suppressions.current("sms", PHONE)
    assert lifted is not None and (lifted.reason, lifted.actor) == ("consent", "mara")


def test_wrong_number_suppresses_and_links_the_patient_without_revoking(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    found = svc.patients.find("P1")
    assert found is not None

    outcome = handle_inbound(svc, sms("wrong number", "SM1"))

    assert outcome.kind == "wrong_number" and outcome.flagged
    assert outcome.reply is not None and "removed" in outcome.reply
    row = svc.suppressions.current("sms", PHONE)
    assert row is not None and (row.reason, row.patient_id) == ("wrong-number", found.patient_id)
    assert svc.consent.current(found.patient_id)["sms"] is True


def test_error_21610_puts_the_number_on_the_list(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    found = svc.patients.find("P1")
    assert found is not None
    consent.record_provider_opt_out(svc, found.patient_id, "sms", "21610")
    row = svc.suppressions.current("sms", PHONE)
    assert row is not None and (row.reason, row.actor) == ("provider-21610", "provider")
    assert handle_status(svc, "SMunknown", "failed", "21610").delivery_id is None


def test_an_unknown_sender_missing_sender_and_odd_bodies_are_all_stored(svc: Services) -> None:
    bodies = ["", "x" * 1600, "🙂🙂 ok", "STOP"]
    for n, body in enumerate(bodies):
        handle_inbound(svc, InboundSms(sid=f"SM{n}", from_phone="", body=body, to_phone="+1999"))
    handle_inbound(svc, sms("hello", "SM9", phone="not-a-number"))
    stored = svc.inbound.thread_messages("")
    assert sorted(m["body"] for m in stored) == sorted(bodies)
    assert svc.suppressions.listing() == []  # nothing to suppress without a number


# evidence that cannot be rewritten ----------------------------------------------------


@pytest.mark.parametrize("table", [consents, suppressions])
def test_evidence_rows_refuse_update_and_delete(svc: Services, table: object) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    handle_inbound(svc, sms("STOP", "SM1"))
    column = consents.c.source if table is consents else suppressions.c.reason
    for statement in (
        update(table).values({column: "rewritten"}),  # type: ignore[arg-type]
        delete(table),  # type: ignore[arg-type]
    ):
        with pytest.raises(DBAPIError, match="append-only evidence"), svc.db.begin() as conn:
            conn.execute(statement)
    with svc.db.connect() as conn:
        assert "rewritten" not in set(conn.execute(select(column)).scalars())


def test_the_opt_in_cache_on_the_patient_row_stays_updatable(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    with svc.db.begin() as conn:
        conn.execute(update(patients).values(sms_opt_in=None))


def test_deleting_a_patient_keeps_its_evidence_without_who_it_was(svc: Services) -> None:
    svc.patients.import_batches([[record("P1")]], dry_run=False, actor="test")
    found = svc.patients.find("P1")
    assert found is not None
    handle_inbound(svc, sms("wrong number", "SM1"))
    before = len(svc.consent.history(found.patient_id))

    with svc.db.begin() as conn:
        conn.execute(text("DELETE FROM patients WHERE id = :id"), {"id": found.patient_id})

    with svc.db.connect() as conn:
        kept = conn.execute(select(consents.c.patient_id, consents.c.address)).all()
        listed = conn.execute(select(suppressions.c.patient_id, suppressions.c.address)).all()
    assert len(kept) == before and all(row == (None, None) for row in kept)
    # The number stays suppressed: a patient imported with it later is still protected.
    assert listed == [(None, PHONE)]


def test_migration_0003_ties_existing_consent_to_the_current_number(tmp_path: Path) -> None:

    from campaigns.store.db import Database, upgrade

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(database.engine, "0002")
    with database.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO patients (external_id, phone, email, tags, sms_opt_in, email_opt_in,"
                " created_at, updated_at) VALUES ('P1', :phone, NULL, ';', 1, NULL,"
                " '2024-03-01', '2024-03-01')"
            ),
            {"phone": PHONE},
        )
        conn.execute(
            text(
                "INSERT INTO consents (patient_id, channel, granted, at, source, recorded_by,"
                " recorded_at) VALUES (1, 'sms', 1, '2024-03-01', 'import', 'import', '2024-03-01')"
            )
        )
    database.upgrade()
    with database.connect() as conn:
        assert conn.execute(select(consents.c.address)).scalars().all() == [PHONE]
        assert conn.execute(
            select(patients.c.sms_consent_for, patients.c.email_consent_for)
        ).one() == (PHONE, None)
    downgrade(database.engine, "0002")
    database.upgrade()
    database.dispose()
