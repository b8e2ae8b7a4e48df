"""The inbox over the JSON API: threads, a thread, replies, done, restore; the reply
is read back from the outbox's own log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.people import staff as accounts
from campaigns.people.inbound import InboundSms, handle_inbound
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
PHONE, OTHER = "+16175550100", "+16175550101"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def svc(tmp_path: Path, database_url: str) -> Iterator[Services]:
    services = Services(make_settings(tmp_path, database_url=database_url))
    services.db.upgrade()
    accounts.add_user(services, "mara", PASSWORD, "marketer")
    accounts.add_user(services, "vic", PASSWORD, "viewer")
    facts = (ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),)
    record = PatientRecord(
        "P1", "Robin", "Example", None, PHONE, "America/New_York", "MA",
        ("active",), None, None, "sms", facts,
    )  # fmt: skip
    services.patients.import_batches([[record]], dry_run=False, actor="test")
    yield services
    services.close()


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    return create_app(svc).test_client()


def bearer(client: FlaskClient, username: str) -> dict[str, str]:
    reply = client.post("/api/token", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.json
    return {"Authorization": f"Bearer {reply.json['token']}"}  # type: ignore[index]


def test_threads_a_thread_a_reply_and_done_over_the_api(client: FlaskClient, svc: Services) -> None:
    handle_inbound(svc, InboundSms("SM1", PHONE, "I can't stop sneezing"))
    booking = handle_inbound(svc, InboundSms("SM2", OTHER, "Can I book Tuesday at 3?"))
    viewer, marketer = bearer(client, "vic"), bearer(client, "mara")

    listed = client.get("/api/inbox?view=booking", headers=viewer).json
    assert listed is not None and listed["open_total"] == 2
    assert [t["from_phone"] for t in listed["threads"]] == [OTHER]
    everything = client.get("/api/inbox?view=all", headers=viewer).json
    assert everything is not None
    robin = next(t for t in everything["threads"] if t["from_phone"] == PHONE)
    assert robin["patients"][0]["external_id"] == "P1"
    assert (robin["last_kind"], robin["last_actions"]) == ("unclear", "consent kept flagged")

    assert client.post(f"/api/inbox/{booking.inbound_id}/reply", headers=viewer).status_code == 403
    sent = client.post(
        f"/api/inbox/{booking.inbound_id}/reply", headers=marketer, json={"body": "Yes, 3pm."}
    )
    assert sent.status_code == 201 and sent.json is not None and sent.json["state"] == "sent"
    log = (svc.settings.outbox_dir / "outbox.jsonl").read_text().splitlines()
    assert [(m["to"], m["body"]) for m in map(json.loads, log)] == [(OTHER, "Yes, 3pm.")]

    thread = client.get(f"/api/inbox/{booking.inbound_id}", headers=viewer).json
    assert thread is not None
    assert [(m["direction"], m["needs_review"]) for m in thread["messages"]] == [
        ("in", False),
        ("out", False),
    ]
    done = client.post(f"/api/inbox/{robin['message_id']}/done", headers=marketer).json
    assert done == {"marked": 1}
    assert client.get("/api/inbox", headers=viewer).json["threads"] == []  # type: ignore[index]


def test_a_refused_reply_and_a_bad_restore_answer_422_naming_why(
    client: FlaskClient, svc: Services
) -> None:
    stop = handle_inbound(svc, InboundSms("SM1", PHONE, "STOP please"))
    marketer = bearer(client, "mara")
    refused = client.post(
        f"/api/inbox/{stop.inbound_id}/reply", headers=marketer, json={"body": "hi"}
    )
    assert refused.status_code == 422
    assert "suppression list" in refused.json["error"]  # type: ignore[index]

    found = svc.patients.find("P1")
    assert found is not None
    url = f"/api/patients/{found.patient_id}/consent/restore"
    bad = client.post(url, headers=marketer, json={"channel": "fax", "reason": "misread"})
    assert bad.status_code == 422 and bad.json["problems"][0]["where"] == "channel"  # type: ignore[index]
    restored = client.post(url, headers=marketer, json={"channel": "sms", "reason": "misread it"})
    assert restored.status_code == 200
    assert restored.json == {
        "patient_id": found.patient_id,
        "sms_opt_in": True,
        "email_opt_in": None,
    }
    assert client.get("/api/inbox/999", headers=marketer).status_code == 404


def test_staff_suppress_a_number_over_the_api_with_a_reason(
    client: FlaskClient, svc: Services
) -> None:
    message = handle_inbound(svc, InboundSms("SM1", OTHER, "who is this?"))
    marketer = bearer(client, "mara")
    url = f"/api/inbox/{message.inbound_id}/suppress"
    assert client.post(url, headers=marketer, json={}).status_code == 422
    assert client.post(url, headers=marketer, json={"reason": "asked us to"}).json == {
        "added": True
    }
    assert client.post(url, headers=marketer, json={"reason": "again"}).json == {"added": False}
    row = svc.suppressions.current("sms", OTHER)
    assert row is not None and (row.reason, row.actor, row.evidence) == (
        "staff",
        "api:mara",
        "asked us to",
    )
