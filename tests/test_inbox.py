"""What staff do in the inbox, on the outbox transport: informational replies only, never
to a suppressed number; restoring a misread revocation needs a reason and a consent
on file for the current number."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.errors import InputError
from campaigns.people import inbox
from campaigns.people.inbound import InboundSms, handle_inbound
from campaigns.services import Services

PHONE = "+16175550100"
SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def add_patient(svc: Services, phone: str = PHONE) -> int:
    facts = (ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),)
    record = PatientRecord(
        "P1", "Robin", "Example", None, phone, "America/New_York", "MA",
        ("active",), None, None, "sms", facts,
    )  # fmt: skip
    svc.patients.import_batches([[record]], dry_run=False, actor="test")
    found = svc.patients.find("P1")
    assert found is not None
    return found.patient_id


def sent_texts(svc: Services) -> list[dict[str, str]]:
    log = svc.settings.outbox_dir / "outbox.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_a_reply_goes_out_is_recorded_and_closes_the_thread(svc: Services) -> None:
    add_patient(svc)
    message = handle_inbound(svc, InboundSms("SM1", PHONE, "Can I book Tuesday at 3?"))
    assert svc.inbound.open_count() == 1

    sent = inbox.send_reply(svc, message.inbound_id, "  Yes, 3pm Tuesday works.  ", actor="mara")

    assert sent.state == "sent"
    assert [(m["to"], m["body"]) for m in sent_texts(svc)] == [(PHONE, "Yes, 3pm Tuesday works.")]
    thread = svc.inbound.thread_messages(PHONE)
    assert [(m["direction"], m.get("sent_by")) for m in thread] == [("in", None), ("out", "mara")]
    assert svc.inbound.open_count() == 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("", "empty"),
        ("x" * 321, "321 characters"),
        ("20% off flu visits this week!", "'percent off' reads as marketing"),
        ("Book now: limited time offer", "reads as marketing"),
    ],
)
def test_a_reply_that_is_not_informational_is_refused(svc: Services, body: str, why: str) -> None:
    message = handle_inbound(svc, InboundSms("SM1", PHONE, "hello?"))
    with pytest.raises(InputError, match=why):
        inbox.send_reply(svc, message.inbound_id, body, actor="mara")
    assert sent_texts(svc) == []


def test_no_reply_goes_to_a_suppressed_number_or_to_no_number(svc: Services) -> None:
    stopped = handle_inbound(svc, InboundSms("SM1", PHONE, "STOP please"))
    with pytest.raises(InputError, match="suppression list"):
        inbox.send_reply(svc, stopped.inbound_id, "Sorry to see you go", actor="mara")
    nobody = handle_inbound(svc, InboundSms("SM2", "", "hi"))
    with pytest.raises(InputError, match="no phone number"):
        inbox.send_reply(svc, nobody.inbound_id, "Who is this?", actor="mara")
    assert sent_texts(svc) == []


def test_restoring_needs_a_reason_and_a_consent_for_the_current_number(svc: Services) -> None:
    pid = add_patient(svc)
    handle_inbound(svc, InboundSms("SM1", PHONE, "Stop, I have a cough. Can I come in?"))
    assert svc.consent.current(pid)["sms"] is False

    with pytest.raises(InputError, match="reason"):
        inbox.restore_consent(svc, pid, "sms", reason=" ", actor="mara")
    inbox.restore_consent(svc, pid, "sms", reason="asked for a visit", actor="mara")

    assert svc.consent.current(pid)["sms"] is True
    last = svc.consent.history(pid)[-1]
    assert (last["source"], last["recorded_by"], last["address"]) == (
        "staff-restore",
        "mara",
        PHONE,
    )
    assert last["text_shown"] == "restored by staff: asked for a visit"
    assert svc.suppressions.suppressed("sms", [PHONE]) == set()
    with pytest.raises(InputError, match="already on"):
        inbox.restore_consent(svc, pid, "sms", reason="asked for a visit", actor="mara")


def test_a_patient_who_never_consented_for_this_number_cannot_be_restored(svc: Services) -> None:
    pid = add_patient(svc, phone=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no phone"):
        inbox.restore_consent(svc, pid, "sms", reason="asked for a visit", actor="mara")


def test_a_consent_given_for_an_old_number_is_not_restored_for_a_new_one(svc: Services) -> None:
    from campaigns.people import consent

    pid = add_patient(svc, phone="+16175550111")
    add_patient(svc, phone=PHONE)  # the same patient, re-imported with a new phone
    consent.record(svc, [pid], "sms", False, source="keyword", actor="patient", text="STOP")
    with pytest.raises(InputError, match="no sms consent on file for the patient's current number"):
        inbox.restore_consent(svc, pid, "sms", reason="asked for a visit", actor="mara")


@pytest.mark.parametrize(
    ("body", "why"),
    [("STOP", "plain opt-out word"), ("Alto", "plain opt-out word")],
)
def test_a_plain_opt_out_word_cannot_be_restored_by_staff(
    svc: Services, body: str, why: str
) -> None:
    pid = add_patient(svc)
    handle_inbound(svc, InboundSms("SM1", PHONE, body))
    assert inbox.why_not_restorable(svc, pid, "sms") is not None
    with pytest.raises(InputError, match=why):
        inbox.restore_consent(svc, pid, "sms", reason="patient phoned us", actor="mara")
    assert svc.consent.current(pid)["sms"] is False


def test_a_provider_opt_out_cannot_be_restored_by_staff(svc: Services) -> None:
    from campaigns.people import consent

    pid = add_patient(svc)
    consent.record_provider_opt_out(svc, pid, "sms", "21610")
    with pytest.raises(InputError, match="21610"):
        inbox.restore_consent(svc, pid, "sms", reason="patient phoned us", actor="mara")
