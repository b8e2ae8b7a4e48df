"""The public routes: Twilio's webhooks (signed) and unsubscribe links (signed tokens)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from campaigns.services import Services
from campaigns.store.tables import audit_events, inbound_messages
from campaigns.web.app import create_app
from tests.support.factories import PHONE, add_patient, add_sent_delivery, delivery_state

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://clinic.example"
EMAIL = "robin@example.org"
CLINIC_NAME = "Harbor Acupuncture &amp; Wellness"  # as it appears in HTML and TwiML


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Twilio's webhooks are signed with the auth token over the public URL."""
    return {"twilio_auth_token": AUTH_TOKEN, "public_url": PUBLIC_URL}


@pytest.fixture
def app(svc: Services) -> Flask:
    app = create_app(svc)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def patient(svc: Services) -> int:
    """A patient who consented to texts and emails."""
    return add_patient(svc, "P1", email=EMAIL, consent={"sms": True, "email": True})


def signature(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(PUBLIC_URL + path, params))


def inbound(
    client: FlaskClient,
    body: str,
    sid: str = "SM0001",
    *,
    sign: bool = True,
    sender: str = PHONE,
) -> TestResponse:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC0001",
        "From": sender,
        "To": "+16175550142",
        "Body": body,
        "NumMedia": "0",
    }
    headers = {"X-Twilio-Signature": signature("/twilio/inbound", params)} if sign else {}
    return client.post("/twilio/inbound", data=params, headers=headers)


def status(client: FlaskClient, sid: str, state: str, code: str | None = None) -> TestResponse:
    params = {"MessageSid": sid, "MessageStatus": state, "AccountSid": "AC0001", "To": PHONE}
    if code is not None:
        params["ErrorCode"] = code
    headers = {"X-Twilio-Signature": signature("/twilio/status", params)}
    return client.post("/twilio/status", data=params, headers=headers)


def message_of(response: TestResponse) -> str | None:
    """The text of the TwiML reply's one <Message>, or None for an empty <Response/>."""
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    xml = response.get_data(as_text=True)
    assert "<Response" in xml
    assert xml.count("<Message>") <= 1
    if "<Message>" not in xml:
        return None
    return xml.split("<Message>", 1)[1].split("</Message>", 1)[0]


def sms_opt_in(svc: Services, patient_id: int) -> bool | None:
    return svc.consent.current(patient_id)["sms"]


def stored(svc: Services) -> list[dict[str, Any]]:
    with svc.db.connect() as conn:
        rows = conn.execute(select(inbound_messages).order_by(inbound_messages.c.id)).mappings()
        return [dict(r) for r in rows]


def audits(svc: Services) -> list[dict[str, Any]]:
    with svc.db.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.id)).mappings()
        return [dict(r) for r in rows]


# POST /twilio/inbound -----------------------------------------------------------


def test_an_unsigned_inbound_post_is_refused_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    before = audits(svc)

    response = inbound(client, "STOP", sign=False)

    assert response.status_code == 403
    assert sms_opt_in(svc, patient) is True
    assert stored(svc) == [] and audits(svc) == before


def test_a_wrongly_signed_inbound_post_is_refused_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    params = {"MessageSid": "SM0001", "From": PHONE, "Body": "STOP"}
    forged = {"X-Twilio-Signature": signature("/twilio/inbound", params, token="not-ours")}

    response = client.post("/twilio/inbound", data=params, headers=forged)

    assert response.status_code == 403
    assert sms_opt_in(svc, patient) is True
    assert stored(svc) == []


def test_a_signature_over_other_words_is_refused(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    signed = {"MessageSid": "SM0001", "From": PHONE, "Body": "see you Tuesday"}
    sent = {**signed, "Body": "STOP"}
    headers = {"X-Twilio-Signature": signature("/twilio/inbound", signed)}

    response = client.post("/twilio/inbound", data=sent, headers=headers)

    assert response.status_code == 403
    assert sms_opt_in(svc, patient) is True


@pytest.mark.parametrize("settings_overrides", [{"public_url": PUBLIC_URL}])  # no auth token
def test_inbound_posts_are_refused_when_no_auth_token_is_configured(client: FlaskClient) -> None:
    response = inbound(client, "STOP")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body", ["STOP", " stop ", "Stop.", "opt out", "OPTOUT", "unsubscribe!", "Quit"]
)
def test_each_stop_word_revokes_sms_and_confirms(
    client: FlaskClient, svc: Services, patient: int, body: str
) -> None:
    reply = message_of(inbound(client, body))

    assert sms_opt_in(svc, patient) is False
    assert reply is not None
    assert reply.startswith(f"{CLINIC_NAME}: you're unsubscribed and will get no more texts.")
    evidence = svc.consent.history(patient)[-1]
    assert (evidence["channel"], evidence["granted"], evidence["source"]) == (
        "sms",
        False,
        "keyword",
    )
    assert evidence["text_shown"] == body
    assert any(
        a["action"] == "consent.revoke" and a["subject_id"] == str(patient) for a in audits(svc)
    )
    assert [m["kind"] for m in stored(svc)] == ["stop"]


def test_start_restores_sms(client: FlaskClient, svc: Services, patient: int) -> None:
    inbound(client, "STOP", sid="SM1")

    reply = message_of(inbound(client, "START", sid="SM2"))

    assert sms_opt_in(svc, patient) is True
    assert reply is not None and "resubscribed" in reply
    assert svc.consent.history(patient)[-1]["granted"] is True


def test_help_replies_with_the_clinic_name_phone_and_opt_out_words(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    reply = message_of(inbound(client, "HELP"))

    assert reply is not None
    assert CLINIC_NAME in reply and "(617) 555-0142" in reply
    assert all(word in reply for word in ("STOP", "QUIT", "END", "CANCEL", "UNSUBSCRIBE"))
    assert sms_opt_in(svc, patient) is True


def test_free_text_revocation_revokes_and_is_flagged_for_review(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    reply = message_of(inbound(client, "no more texts please"))

    assert sms_opt_in(svc, patient) is False
    assert reply is not None and "unsubscribed" in reply
    [row] = stored(svc)
    assert (row["kind"], row["flagged"], row["body"], row["patient_id"]) == (
        "revocation",
        True,
        "no more texts please",
        patient,
    )
    evidence = svc.consent.history(patient)[-1]
    assert (evidence["granted"], evidence["text_shown"]) == (False, "no more texts please")


def test_ordinary_text_is_stored_for_staff_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    facts = svc.consent.history(patient)

    reply = message_of(inbound(client, "see you Tuesday"))

    assert reply is None
    assert sms_opt_in(svc, patient) is True
    assert svc.consent.history(patient) == facts
    [row] = stored(svc)
    assert (row["kind"], row["flagged"], row["body"]) == ("other", True, "see you Tuesday")


def test_a_message_from_another_channels_address_is_stored_not_refused(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    reply = inbound(client, "hello", sender="whatsapp:+16175550100")

    assert reply.status_code == 200
    [row] = stored(svc)
    assert (row["from_phone"], row["patient_id"], row["kind"]) == (
        "whatsapp:+16175550100",
        None,
        "other",
    )
    assert sms_opt_in(svc, patient) is True


def test_a_redelivered_message_sid_changes_nothing_and_replies_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    first = message_of(inbound(client, "STOP"))
    facts, events = svc.consent.history(patient), audits(svc)

    again = message_of(inbound(client, "STOP"))

    assert first is not None and again is None
    assert svc.consent.history(patient) == facts
    assert audits(svc) == events
    assert len(stored(svc)) == 1


def test_a_second_stop_gets_no_second_confirmation(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    first = message_of(inbound(client, "STOP", sid="SM1"))

    second = message_of(inbound(client, "STOP", sid="SM2"))

    assert first is not None and second is None
    assert sms_opt_in(svc, patient) is False
    assert len(stored(svc)) == 2


def test_a_signed_post_without_a_message_sid_is_a_bad_request(
    client: FlaskClient, svc: Services
) -> None:
    params = {"From": PHONE, "Body": "STOP"}
    headers = {"X-Twilio-Signature": signature("/twilio/inbound", params)}

    response = client.post("/twilio/inbound", data=params, headers=headers)

    assert response.status_code == 400
    assert stored(svc) == []


# POST /twilio/status ----------------------------------------------------------------


def test_a_delivered_callback_updates_the_delivery(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMout0001")

    response = status(client, "SMout0001", "delivered")

    assert response.status_code == 204
    assert delivery_state(svc, did) == ("delivered", None)


def test_an_undelivered_callback_records_the_error_code(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMout0001")

    assert status(client, "SMout0001", "undelivered", "30003").status_code == 204

    assert delivery_state(svc, did) == ("undelivered", "30003")
    assert sms_opt_in(svc, patient) is True


def test_a_21610_callback_also_records_an_sms_opt_out(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMout0001")

    status(client, "SMout0001", "failed", "21610")

    assert delivery_state(svc, did) == ("undelivered", "21610")
    assert sms_opt_in(svc, patient) is False


def test_a_sent_callback_is_ignored(client: FlaskClient, svc: Services, patient: int) -> None:
    did = add_sent_delivery(svc, patient, "SMout0001")

    assert status(client, "SMout0001", "sent").status_code == 204

    assert delivery_state(svc, did) == ("sent", None)


def test_an_unsigned_status_callback_is_refused_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    did = add_sent_delivery(svc, patient, "SMout0001")

    response = client.post(
        "/twilio/status", data={"MessageSid": "SMout0001", "MessageStatus": "delivered"}
    )

    assert response.status_code == 403
    assert delivery_state(svc, did) == ("sent", None)


# /unsubscribe/<token> -------------------------------------------------------------


def unsubscribe_path(svc: Services, patient_id: int, delivery_id: int | None = 7) -> str:
    url = svc.unsubscribe_url(patient_id, delivery_id)
    assert url.startswith(PUBLIC_URL + "/unsubscribe/")
    return url.removeprefix(PUBLIC_URL)


def email_opt_in(svc: Services, patient_id: int) -> bool | None:
    return svc.consent.current(patient_id)["email"]


def test_the_unsubscribe_page_shows_one_button_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    events = audits(svc)

    response = client.get(unsubscribe_path(svc, patient))

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert CLINIC_NAME in page
    assert EMAIL not in page and "Robin" not in page
    assert page.count("<button") == 1 and 'method="post"' in page
    assert '<html lang="en">' in page
    assert email_opt_in(svc, patient) is True
    assert audits(svc) == events
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_posting_the_unsubscribe_form_unsubscribes(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    response = client.post(unsubscribe_path(svc, patient))

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert email_opt_in(svc, patient) is False
    assert sms_opt_in(svc, patient) is True
    evidence = svc.consent.history(patient)[-1]
    assert (evidence["channel"], evidence["granted"], evidence["source"]) == (
        "email",
        False,
        "unsubscribe-link",
    )
    assert evidence["recorded_by"] == "patient"
    assert evidence["text_shown"] == "unsubscribe link in delivery 7"
    [event] = [a for a in audits(svc) if a["action"] == "consent.revoke"]
    assert (event["actor"], event["subject_id"], event["detail"]) == (
        "patient",
        str(patient),
        {"channel": "email", "source": "unsubscribe-link"},
    )


def test_one_click_unsubscribe_answers_200_without_redirect_or_cookie(
    app: Flask, svc: Services, patient: int
) -> None:
    client = app.test_client(use_cookies=False)

    response = client.post(
        unsubscribe_path(svc, patient),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert email_opt_in(svc, patient) is False
    assert svc.consent.history(patient)[-1]["source"] == "one-click"


def test_unsubscribing_twice_records_one_revocation(
    client: FlaskClient, svc: Services, patient: int
) -> None:
    path = unsubscribe_path(svc, patient)
    client.post(path)

    again = client.post(path, data={"List-Unsubscribe": "One-Click"})

    assert again.status_code == 200
    revocations = [f for f in svc.consent.history(patient) if not f["granted"]]
    assert len(revocations) == 1
    assert "already unsubscribed" in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_is_refused_and_changes_nothing(
    client: FlaskClient, svc: Services, patient: int, method: str
) -> None:
    path = unsubscribe_path(svc, patient)
    tampered = path[:-1] + ("A" if path[-1] != "A" else "B")
    events = audits(svc)

    response = getattr(client, method)(tampered)

    assert response.status_code == 404
    assert "not valid" in response.get_data(as_text=True)
    assert email_opt_in(svc, patient) is True
    assert audits(svc) == events


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("From", ""),
        ("From", "not-a-number"),
        ("From", "12345"),
        ("To", "+19995550000"),
        ("Body", ""),
        ("Body", "é" * 1600),
        ("Body", "🙂🙂🙂 STOP? 🛑"),
    ],
)
def test_odd_inbound_posts_are_stored_and_answered_and_never_logged(
    client: FlaskClient, svc: Services, caplog: pytest.LogCaptureFixture, field: str, value: str
) -> None:
    params = {"MessageSid": "SM0042", "From": PHONE, "To": "+16175550142", "Body": "hi there"}
    params[field] = value
    headers = {"X-Twilio-Signature": signature("/twilio/inbound", params)}
    with caplog.at_level(logging.DEBUG):
        response = client.post("/twilio/inbound", data=params, headers=headers)

    assert response.status_code == 200 and response.mimetype == "text/xml"
    [row] = stored(svc)
    assert row["body"] == params["Body"] and row["from_phone"] == params["From"]
    assert row["to_phone"] == (params["To"] or None)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in {params["From"], params["Body"], params["To"]} - {""}:
        assert secret not in logged
