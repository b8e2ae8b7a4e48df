"""Provider reports over HTTP: Mailgun's signed bounce and complaint webhook, and
Twilio status callbacks whose error code means the number is dead or opted out."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from campaigns.domain.sms_errors import error_words
from campaigns.sending.results import run_results
from campaigns.services import Services
from campaigns.store.tables import deliveries, delivery_reports
from campaigns.web.app import create_app
from tests.support.factories import (
    PHONE,
    add_patient,
    add_sent_delivery,
    add_staff,
    delivery_state,
)
from tests.web.test_console import bearer
from tests.web.test_public import AUTH_TOKEN, PUBLIC_URL, status

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
EMAIL = "robin@example.org"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "twilio_auth_token": AUTH_TOKEN,
        "public_url": PUBLIC_URL,
        "mailgun_webhook_key": MAILGUN_KEY,
    }


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    app = create_app(svc)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def patient(svc: Services) -> int:
    return add_patient(svc, "P1", email=EMAIL, consent={"sms": True, "email": True})


def mailgun_event(
    event: str,
    message_id: str,
    *,
    severity: str = "permanent",
    key: str = MAILGUN_KEY,
    age_s: int = 0,
) -> dict[str, Any]:
    timestamp, token = str(int(time.time()) - age_s), f"tok-{event}-{severity}-{message_id}"
    signed = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signed},
        "event-data": {
            "event": event,
            "id": f"ev-{token}",
            "severity": severity,
            "recipient": EMAIL,
            "delivery-status": {"code": 550, "enhanced-code": "5.1.1"},
            "message": {"headers": {"message-id": message_id.strip("<>")}},
        },
    }


def post(client: FlaskClient, body: dict[str, Any]) -> TestResponse:
    return client.post("/webhooks/mailgun", json=body)


def reports(svc: Services) -> list[tuple[str, str, str]]:
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(delivery_reports.c.source, delivery_reports.c.kind, delivery_reports.c.decision)
        ).all()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_a_signed_mailgun_bounce_suppresses_the_address_once(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    add_sent_delivery(svc, patient, "<meridian.1.1@clinic.example>", channel="email")
    body = mailgun_event("failed", "<meridian.1.1@clinic.example>")

    response = post(client, body)

    assert response.status_code == 200
    assert response.get_json() == {"kind": "hard", "decision": "suppressed"}
    row = svc.suppressions.current("email", EMAIL)
    assert row is not None and row.suppressed and row.reason == "bounce"
    assert post(client, body).get_json() == {"kind": "hard", "decision": "duplicate"}
    assert reports(svc) == [("mailgun", "hard", "suppressed")]


def test_a_signed_mailgun_complaint_suppresses_the_address(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    add_sent_delivery(svc, patient, "<meridian.2.2@clinic.example>", channel="email")
    response = post(client, mailgun_event("complained", "<meridian.2.2@clinic.example>"))
    assert response.get_json() == {"kind": "complaint", "decision": "suppressed"}
    row = svc.suppressions.current("email", EMAIL)
    assert row is not None and row.reason == "complaint"


@pytest.mark.parametrize(
    "tamper", ["wrong-signature", "stale-timestamp", "no-signature", "another-key"]
)
def test_a_bad_mailgun_signature_is_refused_and_recorded(
    client: FlaskClient, svc: Services, patient: int, tamper: str
) -> None:
    add_sent_delivery(svc, patient, "<meridian.3.3@clinic.example>", channel="email")
    key = "key-someone-else" if tamper == "another-key" else MAILGUN_KEY
    age_s = 3600 if tamper == "stale-timestamp" else 0  # rightly signed, an hour ago
    body = mailgun_event("failed", "<meridian.3.3@clinic.example>", key=key, age_s=age_s)
    if tamper == "wrong-signature":
        body["signature"]["signature"] = "0" * 64
    elif tamper == "no-signature":
        del body["signature"]

    response = post(client, body)

    assert response.status_code == 403
    assert svc.suppressions.current("email", EMAIL) is None
    assert reports(svc) == [("mailgun", "bad-signature", "refused")]


@pytest.mark.parametrize("code", ["30005", "21211", "21614", "30006"])
def test_an_sms_error_meaning_a_dead_number_suppresses_it(
    client: FlaskClient, svc: Services, patient: int, code: str
) -> None:
    did = add_sent_delivery(svc, patient, "SMdead0001")

    assert status(client, "SMdead0001", "undelivered", code).status_code == 204

    assert delivery_state(svc, did) == ("undelivered", code)
    row = svc.suppressions.current("sms", PHONE)
    assert row is not None and row.suppressed and row.reason == "sms-error"
    assert code in (row.evidence or "")
    assert reports(svc) == [("twilio", "sms-error", "suppressed")]


def test_an_unreachable_phone_is_not_suppressed_and_the_run_page_says_why(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMoff0001")

    status(client, "SMoff0001", "undelivered", "30003")

    assert svc.suppressions.current("sms", PHONE) is None
    with svc.db.connect() as conn:
        run_id = conn.execute(select(deliveries.c.run_id).where(deliveries.c.id == did)).scalar()
    (failure,) = run_results(svc, int(run_id))["failures"]
    assert failure["code"] == "30003"
    assert failure["meaning"] == error_words("30003")
    assert "unreachable" in failure["meaning"]


def test_the_api_gives_a_runs_failures_in_plain_words_and_its_reports(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMgone0001")
    status(client, "SMgone0001", "undelivered", "30005")
    with svc.db.connect() as conn:
        run_id = conn.execute(select(deliveries.c.run_id).where(deliveries.c.id == did)).scalar()
    add_staff(svc, vic="viewer")

    reply = client.get(f"/api/runs/{run_id}/failures", headers=bearer(client, "vic"))
    assert reply.status_code == 200, reply.json
    found = reply.json

    assert found is not None
    (failure,) = found["failures"]
    assert (failure["code"], failure["state"]) == ("30005", "undelivered")
    assert "no longer in service" in failure["meaning"]
    (kept,) = found["reports"]
    assert (kept["kind"], kept["decision"], kept["delivery_id"]) == ("sms-error", "suppressed", did)
