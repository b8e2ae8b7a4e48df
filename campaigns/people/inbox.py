"""What staff do in the inbox: answer a patient, mark a thread done, suppress a number,
and restore a consent that a reply was wrongly read as withdrawing.

A staff reply is informational: it goes through the configured SMS transport, never
to a suppressed number, and never with marketing copy (the promotional words of
campaigns/data/replies.yaml and the health-claim rules of the compliance lint refuse
it, naming the word). Every action is audited with the staff member; nothing here
logs a number or a body.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaigns.content.compliance import lint_source
from campaigns.domain.states import Channel
from campaigns.domain.transport import OutboundMessage
from campaigns.errors import InputError, NotFound, OutcomeUnknown, PermanentError, TransientError
from campaigns.people import consent
from campaigns.people.replies import is_promotional, read_reply

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# Twilio recommends 320 characters or fewer; a reply is a short, plain answer.
MAX_REPLY_CHARS = 320
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
RESTORE_SOURCE = "staff-restore"


@dataclass(frozen=True)
class SentReply:
    reply_id: int
    state: str  # sent or failed
    error: str | None = None


def thread_of(svc: Services, message_id: int) -> dict[str, Any]:
    """The inbound message ``message_id`` (NotFound if none): its thread is its number's."""
    message = svc.inbound.get(message_id)
    if message is None:
        raise NotFound(f"no inbound message {message_id}")
    return message


def check_reply(svc: Services, to: str, body: str) -> str:
    """The reply's text, stripped; InputError saying what is wrong with it."""
    text = body.strip()
    if not _E164.match(to):
        raise InputError("this sender has no phone number a text can be sent to")
    if not text:
        raise InputError("the reply is empty: write what to send")
    if len(text) > MAX_REPLY_CHARS:
        raise InputError(
            f"the reply has {len(text)} characters; keep it to {MAX_REPLY_CHARS} or fewer"
        )
    suppressed = svc.suppressions.current("sms", to)
    if suppressed is not None and suppressed.suppressed:
        raise InputError(
            f"this number is on the suppression list ({suppressed.reason}, "
            f"{suppressed.at:%Y-%m-%d}): Meridian sends nothing to it"
        )
    word = is_promotional(text)
    if word is not None:
        raise InputError(
            f"replies are informational only; '{word}' reads as marketing. "
            "Send promotions through a campaign, which checks consent and hours"
        )
    claims = [f for f in lint_source("sms", "reply", text) if f.severity == "error"]
    if claims:
        first = claims[0]
        raise InputError(f"the reply makes a health claim ('{first.phrase}'): {first.message}")
    return text


def send_reply(svc: Services, message_id: int, body: str, *, actor: str) -> SentReply:
    """Send an informational text to the number of message ``message_id``'s thread."""
    message = thread_of(svc, message_id)
    to = str(message["from_phone"])
    text = check_reply(svc, to, body)
    outbound = OutboundMessage(delivery_id=0, run_id=0, channel="sms", to=to, body=text)
    transport = svc.transport("sms")
    state, provider_id, error = "sent", None, None
    try:
        provider_id = transport.send(outbound).provider_id
    except (PermanentError, TransientError, OutcomeUnknown) as exc:
        state, error = "failed", f"{exc.code or ''} {exc.reason}".strip()[:200]
        if isinstance(exc, PermanentError) and exc.opted_out:
            consent.suppress(
                svc, "sms", to, reason=f"provider-{exc.code}", actor="provider", evidence=error
            )
    finally:
        transport.close()
    reply_id = svc.inbound.add_reply(
        inbound_id=message_id,
        to_phone=to,
        body=text,
        sent_by=actor,
        sent_at=svc.now(),
        state=state,
        provider_id=provider_id,
        error=error,
    )
    if state == "sent":
        svc.inbound.mark_done(to, up_to_id=_last_id(svc, to), actor=actor, at=svc.now())
    log.info("staff reply %s to inbound %s by %s: %s", reply_id, message_id, actor, state)
    return SentReply(reply_id, state, error)


def mark_done(svc: Services, message_id: int, *, actor: str) -> int:
    """Mark every open message of the thread, up to ``message_id``'s latest, done."""
    message = thread_of(svc, message_id)
    phone = str(message["from_phone"])
    return svc.inbound.mark_done(phone, up_to_id=_last_id(svc, phone), actor=actor, at=svc.now())


def suppress_thread(svc: Services, message_id: int, *, actor: str, reason: str) -> bool:
    """Staff put the thread's number on the suppression list; False if it already is."""
    message = thread_of(svc, message_id)
    phone = str(message["from_phone"])
    if not _E164.match(phone):
        raise InputError("this sender has no phone number to suppress")
    why = reason.strip()
    if not why:
        raise InputError("give a reason for suppressing this number")
    return consent.suppress(svc, "sms", phone, reason="staff", actor=actor, evidence=why)


# Revocations that are not a reading of the patient's words: a person may not undo them.
_NOT_READ = {
    "provider": "the provider reported the number opted out (error 21610)",
    "one-click": "the patient unsubscribed with the email's one-click link",
    "unsubscribe-link": "the patient unsubscribed with the link",
    "suppression-list": "the number or address was on the suppression list at import",
}


def why_not_restorable(svc: Services, patient_id: int, channel: Channel) -> str | None:
    """Why staff may not restore this channel's consent; None when they may.

    Restoring is for a reply Meridian read as an opt-out that was not one. A plain
    opt-out word, an unsubscribe, a provider's opt-out or the suppression list are
    not readings: only the patient's START, or a new consent with its evidence,
    undoes them. And only a consent on file for the current number or address can be
    restored (a new number needs a new consent).
    """
    recipient = svc.patients.recipients([patient_id]).get(patient_id)
    if recipient is None:
        raise NotFound(f"no patient with id {patient_id}")
    contact = recipient.contact(channel)
    if not contact:
        return f"this patient has no {'phone' if channel == 'sms' else 'email'}"
    if recipient.opt_in(channel) is True and recipient.consent_for(channel) == contact:
        return f"{channel} consent is already on for this patient"
    history = [h for h in svc.consent.history(patient_id) if h["channel"] == channel]
    if not any(h["granted"] and h["address"] == contact for h in history):
        return (
            f"no {channel} consent on file for the patient's current "
            f"{'number' if channel == 'sms' else 'address'} to restore; record a new consent "
            "with its evidence instead"
        )
    revoked = [h for h in history if not h["granted"]]
    if revoked:
        last = revoked[-1]
        source = str(last["source"])
        if source in _NOT_READ:
            return f"{_NOT_READ[source]}: only the patient (START) or a new consent undoes it"
        if source == "keyword" and not read_reply(str(last["text_shown"] or "")).needs_review:
            return "the patient sent a plain opt-out word: only the patient's START undoes it"
    return None


def restore_consent(
    svc: Services, patient_id: int, channel: Channel, *, reason: str, actor: str
) -> None:
    """Undo a revocation staff judge was a misreading, with their reason, audited.

    Refused with ``why_not_restorable``'s reason where that names one. Restoring
    records a grant (source ``staff-restore``, the reason as its words), which also
    lifts the number's suppression.
    """
    why = reason.strip()
    if len(why) < 5:
        raise InputError("reason: say why the revocation was a misreading (5 characters or more)")
    refused = why_not_restorable(svc, patient_id, channel)
    if refused is not None:
        raise InputError(refused)
    consent.record(
        svc,
        [patient_id],
        channel,
        True,
        source=RESTORE_SOURCE,
        actor=actor,
        text=f"restored by staff: {why}",
    )
    log.info("patient %s: %s consent restored by %s", patient_id, channel, actor)


def _last_id(svc: Services, phone: str) -> int:
    ids = [int(m["id"]) for m in svc.inbound.thread_messages(phone) if m["direction"] == "in"]
    return max(ids, default=0)
