"""The console shows where a patient might be and when their messages go: the patient
page's evidence and the preview's send time, from the same clock as fan-out."""

from __future__ import annotations

import csv
from pathlib import Path

from flask.testing import FlaskClient

from campaigns.content import catalogue
from campaigns.people.patients import import_patients
from campaigns.services import Services
from tests.support.factories import EXAMPLE_CAMPAIGN as CAMPAIGN
from tests.web.test_console import (  # noqa: F401 - fixtures
    app,
    client,
    csrf_token,
    settings_overrides,
    sign_in,
    staff,
)

HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source,preferred_channel"
)


def load(svc: Services, tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    rows = [
        ("CA212", "", "CA", "+12125550142"),
        ("NY305", "America/New_York", "NY", "+13055550142"),
        ("NOBODY", "", "", ""),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, HEADER.split(","))
        out.writeheader()
        for external_id, zone, state, phone in rows:
            out.writerow(
                {
                    "external_id": external_id,
                    "first_name": "Ana",
                    "email": f"{external_id.lower()}@example.org",
                    "phone": phone,
                    "timezone": zone,
                    "state": state,
                    "tags": "active",
                    "sms_consent": "yes" if phone else "",
                    "sms_consent_at": "2026-01-05T10:00:00-05:00" if phone else "",
                    "sms_consent_source": "intake-form" if phone else "",
                    "email_consent": "yes",
                    "email_consent_at": "2026-01-05T10:00:00-05:00",
                    "email_consent_source": "intake-form",
                }
            )
    import_patients(path, svc.patients, region="US", actor="test")
    catalogue.apply_campaign(svc, CAMPAIGN, actor="test", approve=True)


def _patient_page(client: FlaskClient, svc: Services, external_id: str) -> str:  # noqa: F811
    found = svc.patients.find(external_id)
    assert found is not None
    return client.get(f"/patients/{found.patient_id}").get_data(as_text=True)


def test_the_patient_page_shows_every_candidate_and_the_evidence(
    client: FlaskClient,  # noqa: F811
    svc: Services,
    tmp_path: Path,
) -> None:
    load(svc, tmp_path)
    sign_in(client, "vic")
    page = _patient_page(client, svc, "CA212")
    assert "Where this patient might be" in page
    assert "Address state CA and area code 212 (NY) disagree: lawful in both" in page
    assert "<td>America/Los_Angeles</td><td>CA</td>" in page
    assert "<td>America/New_York</td><td>NY</td>" in page
    assert "area code 212: America/New_York; state NY" in page
    florida = _patient_page(client, svc, "NY305")
    assert "FL presumes a resident from a local area code" in florida
    assert "At most 3 texts per 24 hours (FL's cap" in florida
    nobody = _patient_page(client, svc, "NOBODY")
    assert "every zone the clinic serves" in nobody
    assert "<td>Pacific/Honolulu</td><td>— (federal rules)</td>" in nobody


def test_the_preview_shows_when_each_channel_goes_and_which_rule_decided(
    client: FlaskClient,  # noqa: F811
    svc: Services,
    tmp_path: Path,
) -> None:
    load(svc, tmp_path)
    sign_in(client, "vic")
    token = csrf_token(client, "/campaigns")
    reply = client.post(
        "/campaigns/preview",
        data={"csrf_token": token, "definition": CAMPAIGN.read_text(), "patient": "CA212"},
        headers={"HX-Request": "true"},
    )
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    # Friday 2027-10-15, 10:00 in Los Angeles (the later of the two clocks).
    assert page.count("Sends at 2027-10-15 17:00:00 UTC") == 2  # SMS and email
    assert "<td>Fri 2027-10-15 10:00 PDT</td><td>America/Los_Angeles</td>" in page
    assert "<td>Fri 2027-10-15 13:00 EDT</td><td>America/New_York</td>" in page
    assert "Decided by: the send time is lawful in every candidate" in page
    assert "47 CFR 64.1200(c)(1)" in page
