"""campaigns.people.inbound, status_callbacks and unsubscribe_links without Flask: texts in,
delivery reports, unsubscribe links."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from campaigns.content.sms import count_segments
from campaigns.domain.models import Channel
from campaigns.people import inbound, unsubscribe_links
from campaigns.people.inbound import InboundSms, handle_inbound
from campaigns.people.status_callbacks import handle_status
from campaigns.people.tokens import UnsubscribeClaim
from campaigns.services import Services
from campaigns.store.tables import audit_events, inbound_messages
from tests.support import factories
from tests.support.factories import PHONE, add_sent_delivery, delivery_state


def add_patient(
    svc: Services,
    external_id: str,
    *,
    phone: str | None = PHONE,
    email: str | None = None,
    sms: bool | None = True,
    email_opt_in: bool | None = None,
) -> int:
    words: dict[Channel, bool | None] = {"sms": sms, "email": email_opt_in}
    return factories.add_patient(
        svc,
        external_id,
        phone=phone,
        email=email,
        consent={channel: said for channel, said in words.items() if said is not None},
        text_shown="I agree to texts",
    )


def text(body: str, sid: str = "SM0001", phone: str = PHONE) -> InboundSms:
    return InboundSms(sid=sid, from_phone=phone, body=body)


def sms_opt_in(svc: Services, patient_id: int) -> bool | None:
    return svc.consent.current(patient_id)["sms"]


def stored(svc: Services) -> list[dict[str, Any]]:
    with svc.db.connect() as conn:
        rows = conn.execute(select(inbound_messages).order_by(inbound_messages.c.id)).mappings()
        return [dict(r) for r in rows]


def audit_actions(svc: Services) -> list[tuple[str, str | None]]:
    with svc.db.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.subject_id).order_by(audit_events.c.id)
        )
        return [(a, s) for a, s in rows]


# inbound texts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ["STOP", " stop ", "Stop.", "opt out", "OPTOUT", "unsubscribe!", "Quit", "end"]
)
def test_a_stop_word_revokes_sms_at_once_and_confirms_once(svc: Services, body: str) -> None:
    pid = add_patient(svc, "P1")

    outcome = handle_inbound(svc, text(body))

    assert sms_opt_in(svc, pid) is False
    assert outcome.kind == "stop" and not outcome.flagged and outcome.changed == (pid,)
    assert outcome.reply is not None
    assert outcome.reply.startswith("Harbor Acupuncture & Wellness: you're unsubscribed")
    assert "START" in outcome.reply
    last = svc.consent.history(pid)[-1]
    assert (last["channel"], last["granted"], last["source"], last["text_shown"]) == (
        "sms",
        False,
        "keyword",
        body,
    )
    assert last["recorded_by"] == "patient"


def test_a_stop_revokes_every_patient_who_shares_the_number(svc: Services) -> None:
    parent = add_patient(svc, "P1")
    child = add_patient(svc, "P2")
    other = add_patient(svc, "P3", phone="+16175550199")

    outcome = handle_inbound(svc, text("STOP"))

    assert outcome.patient_ids == (parent, child)
    assert (sms_opt_in(svc, parent), sms_opt_in(svc, child), sms_opt_in(svc, other)) == (
        False,
        False,
        True,
    )
    row = stored(svc)[0]
    assert row["patient_id"] is None  # shared number: the audit event names both
    assert ("consent.revoke", str(parent)) in audit_actions(svc)
    assert ("consent.revoke", str(child)) in audit_actions(svc)


def test_a_second_stop_is_recorded_but_gets_no_second_confirmation(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    first = handle_inbound(svc, text("STOP", sid="SM1"))

    second = handle_inbound(svc, text("stop", sid="SM2"))

    assert first.reply is not None
    assert second.reply is None and second.changed == ()
    assert sms_opt_in(svc, pid) is False
    assert len(stored(svc)) == 2


def test_a_stop_from_a_patient_never_opted_in_revokes_without_a_reply(svc: Services) -> None:
    pid = add_patient(svc, "P1", sms=None)

    outcome = handle_inbound(svc, text("STOP"))

    assert sms_opt_in(svc, pid) is False
    assert outcome.reply is None


def test_start_restores_sms_for_a_patient_who_had_consented(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    handle_inbound(svc, text("STOP", sid="SM1"))

    outcome = handle_inbound(svc, text("Start", sid="SM2"))

    assert sms_opt_in(svc, pid) is True
    assert outcome.kind == "start" and outcome.changed == (pid,)
    assert outcome.reply is not None and "resubscribed" in outcome.reply
    last = svc.consent.history(pid)[-1]
    assert (last["granted"], last["source"], last["text_shown"]) == (True, "keyword", "Start")


def test_start_does_not_invent_consent_for_a_patient_who_never_gave_it(svc: Services) -> None:
    pid = add_patient(svc, "P1", sms=False)

    outcome = handle_inbound(svc, text("YES"))

    assert sms_opt_in(svc, pid) is False
    assert outcome.changed == () and outcome.reply is None
    assert stored(svc)[0]["kind"] == "start"


def test_start_from_a_patient_already_opted_in_changes_nothing(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    facts = len(svc.consent.history(pid))

    outcome = handle_inbound(svc, text("UNSTOP"))

    assert outcome.reply is None
    assert len(svc.consent.history(pid)) == facts


@pytest.mark.parametrize("body", ["HELP", "info", " Help? "])
def test_help_replies_with_the_clinic_name_phone_and_opt_out_words(
    svc: Services, body: str
) -> None:
    pid = add_patient(svc, "P1")

    outcome = handle_inbound(svc, text(body))

    assert outcome.reply is not None
    for words in (
        "Harbor Acupuncture & Wellness",
        "(617) 555-0142",
        "STOP",
        "QUIT",
        "END",
        "CANCEL",
        "UNSUBSCRIBE",
        "OPT OUT",
        "Msg & data rates may apply",
    ):
        assert words in outcome.reply
    assert sms_opt_in(svc, pid) is True


def test_the_help_reply_is_gsm7_and_fits_in_two_segments(svc: Services) -> None:
    info = count_segments(inbound.help_text(svc.clinic))

    assert info.encoding == "GSM-7"
    assert info.segments <= 2


def test_the_help_reply_always_names_the_clinic_a_contact_and_the_opt_out_words() -> None:
    from campaigns.content.rendering import Clinic

    without_phone = Clinic(name="Harbor Clinic", address="", phone="")
    for reply, contact in (
        (inbound.help_text(without_phone, fallback="desk@harbor.example"), "desk@harbor.example"),
        (inbound.help_text(without_phone), "reply to this number"),
        (inbound.help_text(Clinic("Harbor Clinic", "", "(617) 555-0142")), "call (617) 555-0142"),
    ):
        assert reply.startswith("Harbor Clinic:")
        assert f"Help: {contact}." in reply
        assert "Reply STOP to unsubscribe" in reply


def test_help_from_an_unknown_number_is_answered_too(svc: Services) -> None:
    outcome = handle_inbound(svc, text("HELP", phone="+16175550111"))

    assert outcome.reply is not None and outcome.patient_ids == ()


@pytest.mark.parametrize(
    ("body", "kind", "source"),
    [
        ("please stop texting me", "stop", "keyword"),
        ("Remove me from your list", "stop", "keyword"),
        ("Don't text me anymore thanks", "revocation", "free-text"),
        ("leave me alone", "revocation", "free-text"),
    ],
)
def test_free_text_that_reads_as_a_revocation_revokes_and_is_flagged(
    svc: Services, body: str, kind: str, source: str
) -> None:
    pid = add_patient(svc, "P1")

    outcome = handle_inbound(svc, text(body))

    assert sms_opt_in(svc, pid) is False
    assert outcome.kind == kind and outcome.flagged
    assert outcome.reply is not None and "unsubscribed" in outcome.reply
    row = stored(svc)[0]
    assert (row["kind"], row["flagged"], row["patient_id"], row["body"]) == (
        kind,
        True,
        pid,
        body,
    )
    assert row["actions"] == "revoked suppressed confirmed flagged"
    last = svc.consent.history(pid)[-1]
    assert (last["source"], last["text_shown"], last["address"]) == (source, body, PHONE)
    assert svc.suppressions.suppressed("sms", [PHONE]) == {PHONE}


def test_a_free_text_revocation_from_an_unknown_number_is_flagged_for_staff(
    svc: Services,
) -> None:
    outcome = handle_inbound(svc, text("stop texting me", phone="+16175550111"))

    assert outcome.flagged and outcome.reply is None
    assert stored(svc)[0]["flagged"] is True


def test_ordinary_text_is_stored_for_staff_and_changes_nothing(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    facts = len(svc.consent.history(pid))

    outcome = handle_inbound(svc, text("see you Tuesday"))

    assert outcome.kind == "other" and outcome.flagged and outcome.reply is None
    assert sms_opt_in(svc, pid) is True
    assert len(svc.consent.history(pid)) == facts
    row = stored(svc)[0]
    assert (row["provider_sid"], row["from_phone"], row["body"], row["kind"]) == (
        "SM0001",
        PHONE,
        "see you Tuesday",
        "other",
    )
    assert ("inbound.receive", str(row["id"])) in audit_actions(svc)


def test_the_same_message_sid_twice_changes_nothing_and_replies_nothing(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    first = handle_inbound(svc, text("STOP"))
    facts = svc.consent.history(pid)
    audits = audit_actions(svc)

    again = handle_inbound(svc, text("STOP"))

    assert again.duplicate and again.reply is None
    assert again.inbound_id == first.inbound_id
    assert svc.consent.history(pid) == facts
    assert audit_actions(svc) == audits
    assert len(stored(svc)) == 1


def test_a_delivery_that_lost_the_race_to_store_the_sid_does_not_reply(svc: Services) -> None:
    add_patient(svc, "P1")
    store = svc.inbound
    winner, _ = store.add(
        provider_sid="SM0001",
        from_phone=PHONE,
        body="STOP",
        kind="stop",
        flagged=False,
        patient_ids=[],
        received_at=datetime.now(UTC),
    )

    loser_id, inserted = store.add(
        provider_sid="SM0001",
        from_phone=PHONE,
        body="STOP",
        kind="stop",
        flagged=False,
        patient_ids=[],
        received_at=datetime.now(UTC),
    )

    assert (loser_id, inserted) == (winner, False)


def test_nothing_logged_names_the_phone_or_the_words(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    add_patient(svc, "P1")
    caplog.set_level(logging.DEBUG)

    handle_inbound(svc, text("please stop texting me"))
    handle_inbound(svc, text("HELP", sid="SM2"))

    assert caplog.records
    for record in caplog.records:
        message = record.getMessage()
        assert PHONE not in message and "texting" not in message and "HELP" not in message


# status callbacks -------------------------------------------------------------------


def test_a_delivered_callback_marks_the_delivery_delivered(svc: Services) -> None:
    did = add_sent_delivery(svc, add_patient(svc, "P1"), "SM-out-1")

    outcome = handle_status(svc, "SM-out-1", "delivered", None)

    assert (outcome.delivery_id, outcome.state) == (did, "delivered")
    assert delivery_state(svc, did) == ("delivered", None)


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_undelivered_and_failed_callbacks_mark_it_undelivered_with_the_code(
    svc: Services, status: str
) -> None:
    pid = add_patient(svc, "P1")
    did = add_sent_delivery(svc, pid, "SM-out-1")

    handle_status(svc, "SM-out-1", status, "30003")

    assert delivery_state(svc, did) == ("undelivered", "30003")
    assert sms_opt_in(svc, pid) is True


@pytest.mark.parametrize("status", ["queued", "sending", "sent", "accepted"])
def test_interim_statuses_are_ignored(svc: Services, status: str) -> None:
    did = add_sent_delivery(svc, add_patient(svc, "P1"), "SM-out-1")

    outcome = handle_status(svc, "SM-out-1", status, None)

    assert outcome.delivery_id is None
    assert delivery_state(svc, did) == ("sent", None)


def test_a_callback_for_an_unknown_message_changes_nothing(svc: Services) -> None:
    did = add_sent_delivery(svc, add_patient(svc, "P1"), "SM-out-1")

    outcome = handle_status(svc, "SM-somebody-else", "delivered", None)

    assert outcome.delivery_id is None
    assert delivery_state(svc, did) == ("sent", None)


def test_error_21610_also_records_an_sms_opt_out_once(svc: Services) -> None:
    pid = add_patient(svc, "P1")
    did = add_sent_delivery(svc, pid, "SM-out-1")

    first = handle_status(svc, "SM-out-1", "undelivered", "21610")
    facts = len(svc.consent.history(pid))
    again = handle_status(svc, "SM-out-1", "undelivered", "21610")

    assert first.opted_out and not again.opted_out
    assert delivery_state(svc, did) == ("undelivered", "21610")
    assert sms_opt_in(svc, pid) is False
    assert len(svc.consent.history(pid)) == facts
    last = svc.consent.history(pid)[-1]
    assert (last["source"], last["recorded_by"]) == ("provider", "provider")


# unsubscribe links ------------------------------------------------------------------


def test_an_unsubscribe_link_revokes_email_with_the_delivery_as_evidence(svc: Services) -> None:
    pid = add_patient(svc, "P1", email="robin@example.org", email_opt_in=True)
    token = svc.unsubscribe_url(pid, 17).rsplit("/", 1)[1]
    claim = unsubscribe_links.read_unsubscribe(svc, token)
    assert claim == UnsubscribeClaim(pid, 17, "email")

    assert unsubscribe_links.unsubscribe(svc, claim, one_click=False) is True
    assert unsubscribe_links.unsubscribe(svc, claim, one_click=True) is False

    assert svc.consent.current(pid) == {"sms": True, "email": False}
    last = svc.consent.history(pid)[-1]
    assert (last["channel"], last["source"], last["recorded_by"]) == (
        "email",
        "unsubscribe-link",
        "patient",
    )
    assert last["text_shown"] == "unsubscribe link in delivery 17"


def test_a_token_for_a_patient_that_does_not_exist_is_refused(svc: Services) -> None:
    token = svc.unsubscribe_url(999, None).rsplit("/", 1)[1]

    assert unsubscribe_links.read_unsubscribe(svc, token) is None
