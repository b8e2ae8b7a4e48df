"""What patients text back: each text stored, acted on, and answered.

Every text is stored and shown to staff (the inbox), whatever it holds: an empty or
1,600-character body, emoji, a sender that is not E.164 or is missing. How a text
is read is campaigns.people.replies; here it is acted on. An opt-out takes effect at
once and is kept as evidence (the patient's own words in the consent ledger, and the
number on the suppression list, even when no patient has it yet). A patient gets at
most one confirmation, with no marketing in it (COMPLIANCE.md, SMS rows
"revocation", "confirmation after opt-out", "HELP reply").

Twilio's delivery reports are handled in campaigns.people.status_callbacks, and
unsubscribe links in campaigns.people.unsubscribe_links.

Nothing here logs a phone number, an address or a message body: only ids, kinds
and counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import parseaddr
from typing import TYPE_CHECKING

from campaigns.content.rendering import Clinic
from campaigns.people import consent
from campaigns.people.replies import Reading, read_reply

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


_UNSUBSCRIBED = (
    "{name}: you're unsubscribed and will get no more texts. Reply START to resubscribe."
)
_RESUBSCRIBED = (
    "{name}: you're resubscribed to texts. Msg & data rates may apply. "
    "Reply HELP for help, STOP to unsubscribe."
)
_WRONG_NUMBER = "{name}: thank you, this number has been removed from our list."
_HELP = (
    "{name}: seasonal reminders by text. Msg frequency varies. Msg & data rates may apply."
    " Help: {contact}. Reply STOP to unsubscribe (or QUIT, END, CANCEL, UNSUBSCRIBE, OPT OUT),"
    " START to resubscribe."
)


@dataclass(frozen=True)
class InboundSms:
    """One text as Twilio posted it. Holds PHI: never log it."""

    sid: str
    from_phone: str  # E.164 as Twilio sends it; anything else is stored as given
    body: str
    to_phone: str = ""  # the clinic's number it was sent to


@dataclass(frozen=True)
class InboundOutcome:
    """What was done about one inbound text, and the reply to give (if any)."""

    inbound_id: int
    kind: str  # campaigns.people.replies.REPLY_KINDS
    duplicate: bool  # the sid was already stored: nothing changed this time
    patient_ids: tuple[int, ...] = ()
    changed: tuple[int, ...] = ()  # patients whose SMS consent this message changed
    flagged: bool = False  # needs a person
    reply: str | None = None
    actions: tuple[str, ...] = ()  # what Meridian did, as the inbox shows it


def handle_inbound(svc: Services, message: InboundSms) -> InboundOutcome:
    """Act on one inbound text, store it, and say what to reply.

    The consent change and the suppression come before the row is stored: if the
    process dies in between, Twilio's retry finds no row and acts again (a second
    revocation is harmless), whereas storing first could lose a STOP for good. The
    row's unique sid decides which of two concurrent deliveries of one webhook may
    reply.
    """
    store = svc.inbound
    seen = store.find_by_sid(message.sid)
    if seen is not None:
        log.info("inbound %s: sid already stored; nothing done, no reply", seen.inbound_id)
        return InboundOutcome(seen.inbound_id, seen.kind, duplicate=True, flagged=seen.flagged)

    reading = read_reply(message.body)
    phone = message.from_phone.strip()
    patient_ids = sorted(svc.consent.patients_by_phone(phone)) if phone else []
    recipients = svc.patients.recipients(patient_ids) if patient_ids else {}
    before = {pid: r.sms_opt_in for pid, r in recipients.items()}
    changed, actions = _apply(svc, reading, message.body, phone, before)
    reply = _reply(svc, reading, before, changed, suppressed="suppressed" in actions)
    if reply is not None:
        actions.append("help answered" if reading.kind == "help" else "confirmed")
    if reading.needs_review:
        actions.append("flagged")

    inbound_id, stored = store.add(
        provider_sid=message.sid,
        from_phone=phone,
        to_phone=message.to_phone.strip(),
        body=message.body,
        kind=reading.kind,
        flagged=reading.needs_review,
        patient_ids=patient_ids,
        received_at=svc.now(),
        actions=" ".join(actions),
        auto_reply=reply,
    )
    if not stored:
        log.info("inbound %s: stored concurrently by another request; no reply", inbound_id)
        return InboundOutcome(inbound_id, reading.kind, duplicate=True, flagged=True)

    log.info(
        "inbound %s: %s from %d patient(s), consent changed for %d, actions=%s, reply=%s",
        inbound_id,
        reading.kind,
        len(patient_ids),
        len(changed),
        ",".join(actions) or "-",
        reply is not None,
    )
    return InboundOutcome(
        inbound_id,
        reading.kind,
        duplicate=False,
        patient_ids=tuple(patient_ids),
        changed=tuple(changed),
        flagged=reading.needs_review,
        reply=reply,
        actions=tuple(actions),
    )


def _apply(
    svc: Services, reading: Reading, body: str, phone: str, before: dict[int, bool | None]
) -> tuple[list[int], list[str]]:
    """Change consent and the suppression list as the message asks: the ids of the
    patients whose SMS consent it changed, and what was done."""
    actions: list[str] = []
    changed: list[int] = []
    only = next(iter(before)) if len(before) == 1 else None
    if reading.revokes and before:
        ids = sorted(before)
        source = "keyword" if reading.kind == "stop" else "free-text"
        consent.record(svc, ids, "sms", False, source=source, actor="patient", text=body)
        changed = [pid for pid in ids if before[pid] is not False]
        actions.append("revoked")
    if reading.suppresses and phone:
        reason = "wrong-number" if reading.kind == "wrong_number" else reading.kind
        if consent.suppress(
            svc, "sms", phone, reason=reason, actor="patient", evidence=body, patient_id=only
        ):
            actions.append("suppressed")
        else:
            actions.append("already suppressed")
    if reading.keyword_kept:
        actions.append("consent kept")
    if reading.kind == "start":
        if phone and svc.suppressions.suppressed("sms", [phone]):
            svc.suppressions.add(
                "sms",
                phone,
                suppressed=False,
                reason="start",
                actor="patient",
                at=svc.now(),
                evidence=body,
                patient_id=only,
            )
            actions.append("unsuppressed")
        # START undoes an opt-out; it does not stand in for the written consent
        # marketing texts need, so only a patient with a grant on file gets it back.
        ids = [pid for pid, opt_in in sorted(before.items()) if opt_in is False]
        restorable = [pid for pid in ids if _ever_granted_sms(svc, pid)]
        if restorable:
            consent.record(
                svc, restorable, "sms", True, source="keyword", actor="patient", text=body
            )
            actions.append("resubscribed")
        changed = restorable
    return changed, actions


def _ever_granted_sms(svc: Services, patient_id: int) -> bool:
    return any(f["channel"] == "sms" and f["granted"] for f in svc.consent.history(patient_id))


def _reply(
    svc: Services,
    reading: Reading,
    before: dict[int, bool | None],
    changed: list[int],
    *,
    suppressed: bool,
) -> str | None:
    name = svc.clinic.name
    if reading.revokes:
        # One confirmation, only to a number that was opted in: a repeated STOP gets
        # none. Where Twilio's Advanced Opt-Out answers an exact keyword itself, it
        # also blocks sends to the number it just opted out, so ours does not land.
        was_opted_in = any(before[pid] is True for pid in changed)
        return _UNSUBSCRIBED.format(name=name) if was_opted_in else None
    if reading.kind == "wrong_number":
        return _WRONG_NUMBER.format(name=name) if suppressed else None
    if reading.kind == "start":
        return _RESUBSCRIBED.format(name=name) if changed else None
    if reading.kind == "help":
        return help_text(svc.clinic, fallback=clinic_contact(svc))
    return None


def clinic_contact(svc: Services) -> str | None:
    """A contact for patients when the clinic has no phone: its reply-to or sender address."""
    s = svc.settings
    return parseaddr(s.email_reply_to or s.email_from)[1] or None


def help_text(clinic: Clinic, *, fallback: str | None = None) -> str:
    """The HELP reply: who we are, what we send, a contact, and how to stop.

    Always carries a contact: the clinic's phone (production refuses to start
    without MERIDIAN_CLINIC_PHONE), else ``fallback``, else "reply to this number".
    """
    if clinic.phone:
        contact = f"call {clinic.phone}"
    elif fallback:
        contact = fallback
    else:
        contact = "reply to this number"
    return _HELP.format(name=clinic.name, contact=contact)
