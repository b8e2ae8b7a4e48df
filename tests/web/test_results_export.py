"""Bookings and the message log's CSV (campaigns.store.bookings, .engagement,
campaigns.sending.export) through the ways staff reach them: a patient CSV re-import,
PATCH /api/patients/{id}, the run page's download and GET /api/runs/{id}/export.csv;
on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaigns.domain.models import Outcome
from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.domain.words import skip_words
from campaigns.people.patients import import_patients
from campaigns.services import Services
from campaigns.store.tables import audit_events, bookings, deliveries
from campaigns.web.app import create_app
from tests.support.factories import (
    STAFF_PASSWORD,
    add_campaign,
    add_deliveries,
    add_patients,
    add_run,
    add_staff,
    claim,
    patient_record,
)

HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source,preferred_channel"
)


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    app = create_app(svc)
    app.config["TESTING"] = True
    add_staff(svc, mara="marketer", vic="viewer")
    return app.test_client()


def bearer(client: FlaskClient, username: str) -> dict[str, str]:
    reply = client.post("/api/token", json={"username": username, "password": STAFF_PASSWORD})
    assert reply.status_code == 200, reply.json
    return {"Authorization": f"Bearer {reply.json['token']}"}  # type: ignore[index]


def _sent(svc: Services, run_id: int, pids: list[int], days_ago: float) -> list[int]:
    at = svc.now() - timedelta(days=days_ago)
    ids = add_deliveries(svc, run_id, pids, due_at=at - timedelta(minutes=1))
    claim(svc, ids, at)
    svc.deliveries.record([Outcome(i, DeliveryState.SENT) for i in ids], at)
    return ids


def _bookings(svc: Services) -> list[dict[str, object]]:
    with svc.db.connect() as conn:
        return [dict(r) for r in conn.execute(select(bookings).order_by(bookings.c.id)).mappings()]


def _csv_line(ext: str, appointment: date | None) -> str:
    return (
        f"{ext},Robin,Example,,(617) 555-0100,America/New_York,MA,active,,"
        f"{appointment or ''},yes,2024-03-01T10:00:00-05:00,web-form,,,,"
    )


def test_a_csv_reimport_with_appointments_books_them_to_the_latest_run_in_the_window(
    svc: Services, tmp_path: Path
) -> None:
    pids = add_patients(svc, [patient_record(f"B{i}") for i in range(5)])
    old_run = add_run(svc, add_campaign(svc, "spring"), occurrence="2027-03-01")
    new_run = add_run(svc, add_campaign(svc, "autumn"), occurrence="2027-10-15")
    _sent(svc, old_run, pids, days_ago=10)
    _sent(svc, new_run, pids[:3], days_ago=2)
    later = svc.now().date() + timedelta(days=20)
    soon = svc.now().date() + timedelta(days=3)
    past = svc.now().date() - timedelta(days=3)
    file = tmp_path / "again.csv"
    rows = [
        _csv_line("B0", later),  # both runs within the window: the latest, autumn
        _csv_line("B1", soon),
        _csv_line("B2", None),  # no appointment: no booking
        _csv_line("B3", later),  # only spring's message: spring's
        _csv_line("B4", past),  # a date gone by is not a booking
    ]
    file.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    import_patients(file, svc.patients, region="US", actor="test")
    found = {int(b["patient_id"]): b for b in _bookings(svc)}  # type: ignore[call-overload]
    assert set(found) == {pids[0], pids[1], pids[3]}
    assert found[pids[0]]["run_id"] == new_run and found[pids[0]]["appointment"] == later
    assert found[pids[1]]["run_id"] == new_run
    assert found[pids[3]]["run_id"] == old_run
    assert {b["source"] for b in found.values()} == {"csv-import"}
    figures = svc.engagement.engagement([old_run, new_run])
    assert figures[new_run]["booked"] == 2 and figures[old_run]["booked"] == 1
    # The same file again changes no appointment: no new booking.
    import_patients(file, svc.patients, region="US", actor="test")
    assert len(_bookings(svc)) == 3
    # The audience filter still reads the appointments the import wrote.
    audience = {"no_appointment_within_days": 14}
    today = svc.now().date()
    remaining = {r.patient_id for c in svc.patients.stream_audience(audience, today) for r in c}
    assert remaining == {pids[0], pids[2], pids[3], pids[4]}  # B1 is booked within 14 days


def test_patch_sets_the_appointment_and_books_it_only_inside_the_window(
    svc: Services, client: FlaskClient
) -> None:
    inside, outside, never = add_patients(svc, [patient_record(f"P{i}") for i in range(3)])
    run_id = add_run(svc, add_campaign(svc))
    _sent(svc, run_id, [inside], days_ago=13)
    other = add_run(svc, add_campaign(svc, "old"), occurrence="2026-01-01")
    _sent(svc, other, [outside], days_ago=15)  # the window is 14 days
    auth = bearer(client, "mara")
    when = (svc.now().date() + timedelta(days=30)).isoformat()
    for pid in (inside, outside, never):
        reply = client.patch(f"/api/patients/{pid}", json={"next_appointment": when}, headers=auth)
        assert reply.status_code == 200, reply.json
        assert reply.json == {"patient_id": pid, "next_appointment": when}
    by_patient = {b["patient_id"]: b for b in _bookings(svc)}
    assert by_patient[inside]["run_id"] == run_id
    assert by_patient[outside]["run_id"] is None and by_patient[never]["run_id"] is None
    assert {b["source"] for b in by_patient.values()} == {"api"}
    # Setting the same date again is no new booking; clearing it neither.
    client.patch(f"/api/patients/{inside}", json={"next_appointment": when}, headers=auth)
    client.patch(f"/api/patients/{inside}", json={"next_appointment": None}, headers=auth)
    assert len(_bookings(svc)) == 3


def test_patch_refuses_a_bad_date_naming_the_field_and_an_unknown_patient(
    svc: Services, client: FlaskClient
) -> None:
    (pid,) = add_patients(svc, [patient_record("Q1")])
    auth = bearer(client, "mara")
    reply = client.patch(f"/api/patients/{pid}", json={"next_appointment": "31/12"}, headers=auth)
    assert reply.status_code == 422
    assert "next_appointment" in str(reply.json)
    assert (
        client.patch(
            "/api/patients/9999", json={"next_appointment": None}, headers=auth
        ).status_code
        == 404
    )
    viewer = bearer(client, "vic")
    assert (
        client.patch(
            f"/api/patients/{pid}", json={"next_appointment": None}, headers=viewer
        ).status_code
        == 403
    )


def test_the_message_log_csv_is_formula_safe_and_has_no_bodies(
    svc: Services, client: FlaskClient
) -> None:
    evil = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tTAB", "plain"]
    pids = add_patients(svc, [patient_record(ext, first_name="=cmd|' /C calc'!A0") for ext in evil])
    run_id = add_run(svc, add_campaign(svc))
    sent = _sent(svc, run_id, pids[:3], days_ago=1)
    add_deliveries(
        svc, run_id, pids[3:], state=DeliveryState.SKIPPED, skip_reason=SkipReason.NO_CONSENT
    )
    svc.engagement.record_click(
        sent[0], svc.engagement.link_id("https://example.org", svc.now()), svc.now()
    )
    svc.bookings.set_next_appointment(pids[1], svc.now().date() + timedelta(days=9), "test")
    reply = client.get(f"/api/runs/{run_id}/export.csv", headers=bearer(client, "vic"))
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    text = reply.get_data(as_text=True)
    assert "calc" not in text and "Robin" not in text and PHONE_DIGITS not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["patient_external_id"] for r in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tTAB",
        "plain",
    ]
    assert [r["clicked"] for r in rows] == ["yes", "no", "no", "no", "no", "no"]
    assert [r["booked"] for r in rows] == ["no", "yes", "no", "no", "no", "no"]
    assert [r["state"] for r in rows] == ["sent"] * 3 + ["skipped"] * 3
    assert rows[3]["skip_reason"] == "no_consent" and rows[0]["sent_at"]
    for row in rows:
        assert not any(cell[:1] in "=+-@\t\r" for cell in row.values() if cell)
    with svc.db.connect() as conn:
        actions = conn.execute(
            select(audit_events.c.actor, audit_events.c.action).where(
                audit_events.c.action == "run.export"
            )
        ).all()
    assert actions == [("api:vic", "run.export")]
    assert client.get("/api/runs/9999/export.csv", headers=bearer(client, "vic")).status_code == 404


PHONE_DIGITS = "5550100"


def test_the_results_csv_has_the_figures_the_ledger_has(svc: Services, client: FlaskClient) -> None:
    pids = add_patients(svc, [patient_record(f"R{n}") for n in range(6)])
    run_id = add_run(svc, add_campaign(svc))
    sent = _sent(svc, run_id, pids[:3], days_ago=1)
    add_deliveries(
        svc, run_id, pids[3:5], state=DeliveryState.SKIPPED, skip_reason=SkipReason.NO_CONSENT
    )
    add_deliveries(
        svc, run_id, pids[5:], state=DeliveryState.SKIPPED, skip_reason=SkipReason.SUPPRESSED
    )
    link = svc.engagement.link_id("https://example.org", svc.now())
    svc.engagement.record_click(sent[0], link, svc.now())
    svc.engagement.record_click(sent[0], link, svc.now())  # the same click: counted once
    svc.bookings.set_next_appointment(pids[1], svc.now().date() + timedelta(days=9), "test")

    reply = client.get(f"/api/runs/{run_id}/results.csv", headers=bearer(client, "vic"))
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    figures = {(r["section"], r["channel"], r["item"]): r["count"] for r in rows}
    with svc.db.connect() as conn:
        counted = conn.execute(
            select(deliveries.c.state, func.count())
            .where(deliveries.c.run_id == run_id)
            .group_by(deliveries.c.state)
        ).all()
    for state, n in counted:
        assert figures[("deliveries", "all", state)] == str(n)
    assert figures[("skipped", "all", "no_consent")] == "2"
    assert figures[("skipped", "all", "suppressed")] == "1"
    words = {r["item"]: r["words"] for r in rows if r["section"] == "skipped"}
    assert words["no_consent"] == skip_words("no_consent")
    assert figures[("engagement", "all", "clicked")] == "1"
    assert figures[("engagement", "all", "booked")] == "1"
    assert (
        client.get("/api/runs/9999/results.csv", headers=bearer(client, "vic")).status_code == 404
    )
