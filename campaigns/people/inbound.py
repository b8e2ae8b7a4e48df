"""What patients and Twilio send back: texts, delivery reports, unsubscribe clicks.

Every text is stored and shown to staff (the inbox), whatever it holds: an empty or
1,600-character body, emoji, a sender that is not E.164 or is missing. How a text
is read is campaigns.people.replies; here it is acted on. An opt-out takes effect at
once and is kept as evidence (the patient's own words in the consent ledger, and the
number on the suppression list, even when no patient has it yet). A patient gets at
most one confirmation, with no marketing in it (COMPLIANCE.md, SMS rows
"revocation", "confirmation after opt-out", "HELP reply").

Nothing here logs a phone number, an address or a message body: only ids, kinds
and counts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING

import redis

from campaigns import keys
from campaigns.content.rendering import Clinic
from campaigns.domain.states import Channel, channel_of
from campaigns.people import consent
from campaigns.people.replies import Reading, read_reply
from campaigns.people.tokens import UnsubscribeClaim, read_unsubscribe_token

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# Twilio's MessageStatus -> the delivery state it settles; any other status
# (queued, sending, sent, accepted, read, ...) says nothing final and is ignored.
_FINAL_STATUSES = {"delivered": "delivered", "undelivered": "undelivered", "failed": "undelivered"}
# "Attempt to send to unsubscribed recipient": the carrier or Twilio holds a STOP.
OPTED_OUT_CODE = "21610"

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


@dataclass(frozen=True)
class StatusOutcome:
    """What a status callback did: the delivery it settled, and whether it opted out."""

    delivery_id: int | None
    state: str | None
    opted_out: bool = False


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


# An early callback not matched within this long belongs to no delivery of ours.
EARLY_STATUS_TTL = timedelta(days=1)


def _keep_for_later(svc: Services, message_sid: str, status: str, code: str | None) -> None:
    """A send is recorded in bulk after its slice (about a second), so a fast
    callback can arrive before its SID is in the ledger: keep it for the sweeper."""
    value = json.dumps({"status": status, "code": code, "at": svc.now().isoformat()})
    try:
        svc.redis.hset(keys.EARLY_STATUSES, message_sid, value)
    except redis.exceptions.RedisError as exc:
        log.warning("status for provider id %s not kept (%s)", message_sid, type(exc).__name__)
        return
    log.info("status %s for provider id %s: no delivery has it yet; kept", status, message_sid)


def apply_early_statuses(svc: Services) -> int:
    """Apply kept callbacks whose SID has reached the ledger; drop the stale ones."""
    applied = 0
    now = svc.now()
    for raw_sid, raw in svc.redis.hgetall(keys.EARLY_STATUSES).items():
        sid = raw_sid.decode() if isinstance(raw_sid, bytes) else str(raw_sid)
        kept = json.loads(raw)
        if svc.deliveries.find_by_provider_id(sid) is not None:
            handle_status(svc, sid, kept["status"], kept["code"])
            applied += 1
        elif now - datetime.fromisoformat(kept["at"]) < EARLY_STATUS_TTL:
            continue
        svc.redis.hdel(keys.EARLY_STATUSES, sid)
    return applied


def handle_status(
    svc: Services, message_sid: str, status: str, error_code: str | None
) -> StatusOutcome:
    """Settle the delivery Twilio reports on; a 21610 also records an SMS opt-out."""
    state = _FINAL_STATUSES.get(status.strip().lower())
    if state is None:
        return StatusOutcome(None, None)
    delivery_id = svc.deliveries.find_by_provider_id(message_sid)
    if delivery_id is None:
        _keep_for_later(svc, message_sid, status, error_code)
        return StatusOutcome(None, state)
    code = (error_code or None) if state == "undelivered" else None
    svc.deliveries.set_status(delivery_id, state, code, svc.now())
    opted_out = code == OPTED_OUT_CODE and _record_provider_opt_out(svc, delivery_id)
    log.info("delivery %s: %s (code %s)", delivery_id, state, code or "-")
    return StatusOutcome(delivery_id, state, opted_out)


def _record_provider_opt_out(svc: Services, delivery_id: int) -> bool:
    found = svc.inbound.delivery_recipient(delivery_id)
    if found is None or found[1] != "sms":
        return False
    patient_id = found[0]
    if svc.consent.current(patient_id)["sms"] is False:
        reason = f"provider-{OPTED_OUT_CODE}"
        consent.suppress_contact(svc, patient_id, "sms", reason=reason, text="provider error")
        return False
    consent.record_provider_opt_out(svc, patient_id, "sms", OPTED_OUT_CODE)
    log.info("patient %s: SMS opt-out recorded from delivery %s (21610)", patient_id, delivery_id)
    return True


# Email (and SMS) unsubscribe links -----------------------------------------


def read_unsubscribe(svc: Services, token: str) -> UnsubscribeClaim | None:
    """The claim of a genuine token whose patient still exists; None otherwise."""
    claim = read_unsubscribe_token(svc.settings.secret_key.get_secret_value(), token)
    if claim is None:
        return None
    if claim.patient_id not in svc.patients.recipients([claim.patient_id]):
        log.info("unsubscribe link for patient %s: no such patient", claim.patient_id)
        return None
    return claim


def claim_channel(claim: UnsubscribeClaim) -> Channel:
    return channel_of(claim.channel)


def is_unsubscribed(svc: Services, claim: UnsubscribeClaim) -> bool:
    return svc.consent.current(claim.patient_id)[claim_channel(claim)] is False


def unsubscribe(svc: Services, claim: UnsubscribeClaim, *, one_click: bool) -> bool:
    """Revoke the link's channel for its patient; False when already unsubscribed."""
    channel = claim_channel(claim)
    if is_unsubscribed(svc, claim):
        log.info(
            "patient %s: %s already unsubscribed; nothing to record", claim.patient_id, channel
        )
        return False
    source = "one-click" if one_click else "unsubscribe-link"
    how = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe link"
    where = f" in delivery {claim.delivery_id}" if claim.delivery_id is not None else ""
    consent.record(
        svc,
        [claim.patient_id],
        channel,
        False,
        source=source,
        actor="patient",
        text=f"{how}{where}",
    )
    consent.suppress_contact(
        svc, claim.patient_id, channel, reason="unsubscribe", text=f"{how}{where}", actor="patient"
    )
    log.info(
        "patient %s: %s unsubscribed by %s (delivery %s)",
        claim.patient_id,
        channel,
        source,
        claim.delivery_id,
    )
    return True
