"""Send a test: the campaign's copy reaches the staff member's own phone (through the
twilio client and the local Twilio-compatible server) and email (smtplib to a real
aiosmtpd), marked as a test, never a delivery, audited without address or body,
limited per hour; and the patient picker finds patients by name or id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default

import pytest

from campaigns.errors import InputError
from campaigns.people.staff import set_contact
from campaigns.services import Services
from campaigns.store.tables import deliveries
from tests.support.factories import add_examples, add_patient, add_staff
from tests.support.twilio_server import TwilioServer
from tests.transports.test_smtp_email import LoopbackController, RecordingHandler

NAME = "cold-and-flu-season"


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, RecordingHandler]]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def settings_overrides(
    env: dict[str, str],
    twilio: TwilioServer,
    smtp: tuple[LoopbackController, RecordingHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, object]:
    controller, _ = smtp
    env.update(
        {
            "MERIDIAN_SMS_TRANSPORT": "twilio",
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "MERIDIAN_TWILIO_FROM": "+16175550199",
            "MERIDIAN_TWILIO_API_URL": twilio.url,
            "MERIDIAN_EMAIL_TRANSPORT": "smtp",
            "MERIDIAN_SMTP_HOST": "127.0.0.1",
            "MERIDIAN_SMTP_PORT": str(controller.port),
            "MERIDIAN_SMTP_STARTTLS": "false",
            "MERIDIAN_TEST_SENDS_PER_HOUR": "3",
        }
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    values: dict[str, object] = {
        key.removeprefix("MERIDIAN_").lower(): value for key, value in env.items()
    }
    return values


def count_deliveries(svc: Services) -> int:
    with svc.db.connect() as conn:
        return len(conn.execute(deliveries.select()).all())


def test_a_test_send_reaches_the_staff_members_own_phone_and_email_marked_as_a_test(
    svc: Services,
    twilio: TwilioServer,
    smtp: tuple[LoopbackController, RecordingHandler],
) -> None:
    from campaigns.sending.test_send import send_test

    _, handler = smtp
    add_examples(svc)
    add_staff(svc, mara="marketer")
    svc.redis.flushdb()
    set_contact(svc, "mara", phone="(415) 555-0123", email="Mara@Clinic.Example")
    said = send_test(svc, NAME, username="mara", channel="sms", external_id="P000002")
    assert "Test sms sent" in said
    (texted,) = twilio.accepted()
    assert texted["to"] == "+14155550123"
    assert texted["body"].startswith("TEST: ")
    send_test(svc, NAME, username="mara", channel="email")
    (raw,) = handler.raw
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", raw)  # RFC 5322 folding of a long subject
    assert b"\r\nSubject: [TEST] " in unfolded
    mail = message_from_bytes(raw, policy=default)
    assert mail["To"] == "Mara@clinic.example"
    # Never a delivery: not in any run's results, not in any frequency cap.
    assert count_deliveries(svc) == 0
    audit = svc.reports.audit_page(limit=20, action_prefix="campaign.test_send")
    assert [(e["actor"], e["detail"]["channel"]) for e in audit] == [
        ("mara", "email"),
        ("mara", "sms"),
    ]
    for event in audit:
        text = str(event).lower()
        assert "+14155550123" not in text and "mara@clinic.example" not in text
        assert texted["body"].lower() not in text
    send_test(svc, NAME, username="mara", channel="sms")
    with pytest.raises(InputError, match="3 tests this hour"):
        send_test(svc, NAME, username="mara", channel="sms")
    assert len(twilio.accepted()) == 2


def test_a_test_send_without_a_contact_on_the_profile_says_where_to_add_it(
    svc: Services,
) -> None:
    from campaigns.sending.test_send import send_test

    add_examples(svc)
    add_staff(svc, mara="marketer")
    with pytest.raises(InputError) as refused:
        send_test(svc, NAME, username="mara", channel="sms")
    assert refused.value.problems[0].where == "phone"
    with pytest.raises(InputError) as bad:
        set_contact(svc, "mara", phone="12", email="not an address")
    assert [p.where for p in bad.value.problems] == ["phone", "email"]


def test_the_picker_finds_patients_by_first_or_last_name_or_external_id(svc: Services) -> None:
    add_patient(svc, "P1", first_name="Maria", last_name="Lopez")
    add_patient(svc, "P2", first_name="Mark", last_name="Adams")
    add_patient(svc, "X9", first_name="Zoe", last_name="Marsh")
    names = lambda q: [p["external_id"] for p in svc.reports.pick_patients(q)]  # noqa: E731
    assert names("mar") == ["P2", "P1", "X9"]
    assert names("maria lo") == ["P1"]
    assert names("x9") == ["X9"]
    assert names("%") == []
    assert len(svc.reports.pick_patients("", limit=10)) == 0


def test_a_test_send_to_a_number_on_the_suppression_list_is_refused(
    svc: Services, twilio: TwilioServer
) -> None:
    # A profile's phone is whatever staff type: a number that replied STOP (a patient's,
    # say) gets nothing from Meridian, a test included.
    from campaigns.sending.test_send import send_test

    add_examples(svc)
    add_staff(svc, mara="marketer")
    set_contact(svc, "mara", phone="+1 415 555 0123", email="")
    svc.suppressions.add(
        "sms", "+14155550123", suppressed=True, reason="stop", actor="patient", at=svc.now()
    )
    with pytest.raises(InputError, match="suppression list") as refused:
        send_test(svc, NAME, username="mara", channel="sms")
    assert refused.value.problems[0].where == "phone"
    assert twilio.accepted() == []


def test_a_test_send_count_left_without_an_expiry_gets_one(svc: Services) -> None:
    # A worker stopped between counting and setting the hour's expiry would otherwise
    # leave the count for good: the staff member locked out of tests for ever.
    from campaigns import keys
    from campaigns.sending.test_send import WINDOW_S, send_test

    add_examples(svc)
    add_staff(svc, mara="marketer")
    set_contact(svc, "mara", phone="+1 415 555 0123", email="")
    svc.redis.set(keys.test_sends("mara"), 1)
    send_test(svc, NAME, username="mara", channel="sms")
    assert 0 < int(svc.redis.ttl(keys.test_sends("mara"))) <= WINDOW_S
