"""Consent: the append-only ledger's services, the skip rules and the send-time check.

A patient gets a channel only with a current grant, given for the number or address
the patient has now, no later revocation, and a number or address that is not on the
suppression list; the store keeps the latest word per channel (and the address it
was given for) on the patient row, written in the same transaction as the evidence.
Caps count every message to the number, whoever it was for, and patients who share a
number get one text per occurrence. How replies are read is campaigns.people.replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from campaigns.clock import quiet_hours, whereabouts
from campaigns.domain.models import Channel, ConsentFact, Recipient
from campaigns.domain.states import SkipReason

if TYPE_CHECKING:
    from campaigns.services import Services


def skip_reason(
    recipient: Recipient, channel: Channel, *, suppressed: bool | str = False
) -> SkipReason | None:
    """Why this channel may not carry anything to this patient, at any time; or None.

    The one definition of the consent and contact rules: fan-out plans with it and
    the send-time check starts with it, so a consent that changed in between counts.
    ``suppressed``: the patient's number (sms) or address (email) is on the
    suppression list now; given as the list's reason, a bounce, a complaint or a
    dead number is named as such.
    """
    opt = recipient.opt_in(channel)
    if opt is None:
        return SkipReason.NO_CONSENT
    if opt is False:
        return SkipReason.OPTED_OUT
    contact = recipient.contact(channel)
    if not contact:
        return SkipReason.INVALID_CONTACT
    if suppressed:
        return _SUPPRESSED_BECAUSE.get(str(suppressed), SkipReason.SUPPRESSED)
    if recipient.consent_for(channel) != contact:
        return (
            SkipReason.NO_CONSENT_FOR_NUMBER
            if channel == "sms"
            else SkipReason.NO_CONSENT_FOR_ADDRESS
        )
    return None


# The suppression list's reason -> the skip reason a run records (else SUPPRESSED).
_SUPPRESSED_BECAUSE = {
    "bounce": SkipReason.BOUNCED,
    "soft-bounces": SkipReason.BOUNCED,
    "smtp-refused": SkipReason.BOUNCED,
    "complaint": SkipReason.COMPLAINED,
    "sms-error": SkipReason.DEAD_NUMBER,
}


def check_send(
    recipient: Recipient,
    channel: Channel,
    past: Sequence[tuple[int, str, datetime]],
    *,
    now: datetime,
    cap_days: int,
    run_id: int,
    suppressed: bool | str = False,
    shared: Sequence[tuple[int, str, datetime]] = (),
) -> SkipReason | None:
    """The skip reason that forbids sending now, or None when it may go.

    ``past`` holds (run_id, channel, sent_at) of messages already handed over to
    this patient; ``shared`` those handed over on this channel to the same number or
    address for other patients. The campaign cap counts other runs only (one
    occurrence may use both channels by policy) and every message to the number;
    the state caps count every text to the number, this run's included; and a number
    gets one message per occurrence, whoever shares it.
    """
    reason = skip_reason(recipient, channel, suppressed=suppressed)
    if reason is not None:
        return reason
    if any(rid == run_id and ch == channel for rid, ch, _ in shared):
        return SkipReason.SHARED_NUMBER
    everything = [*past, *shared]
    if cap_days > 0:
        since = now - timedelta(days=cap_days)
        if any(at >= since and rid != run_id for rid, _, at in everything):
            return SkipReason.FREQUENCY_CAP
    if channel == "sms":
        # The lowest cap of every state the patient might be in (address and area code).
        strictest = quiet_hours.strictest_cap(
            whereabouts.candidate_states(recipient.state, recipient.phone)
        )
        cap = strictest[0] if strictest else None
        if cap is not None:
            day_ago = now - timedelta(hours=24)
            if sum(1 for _, ch, at in everything if ch == "sms" and at >= day_ago) >= cap:
                return SkipReason.FREQUENCY_CAP
    return None


def record(
    svc: Services,
    patient_ids: Sequence[int],
    channel: Channel,
    granted: bool,
    *,
    source: str,
    actor: str,
    text: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one consent fact for each patient; every change lands in the audit log.

    A grant recorded here (staff, a web form, START) is a new, recorded consent for
    each patient's current number or address: it lifts that number's suppression.
    (An import's "yes" does not: a number someone asked to stop stays suppressed
    until its owner says START or a consent is recorded for it.)
    """
    when = at or svc.now()
    fact = ConsentFact(channel=channel, granted=granted, at=when, source=source, text_shown=text)
    n = svc.consent.record(list(patient_ids), fact, actor=actor)
    if granted:
        recipients = svc.patients.recipients(list(patient_ids))
        contacts = {r.contact(channel) for r in recipients.values()} - {None, ""}
        for address in sorted(svc.suppressions.suppressed(channel, contacts)):
            patient = next(
                (pid for pid, r in recipients.items() if r.contact(channel) == address), None
            )
            svc.suppressions.add(
                channel,
                address,
                suppressed=False,
                reason="consent" if source != "keyword" else "start",
                actor=actor,
                at=when,
                evidence=text,
                patient_id=patient,
            )
    return n


def record_provider_opt_out(
    svc: Services, patient_id: int, channel: Channel, code: str | None
) -> None:
    """The provider says the number has opted out (Twilio 21610): believe it, at once,
    and put the number on the suppression list."""
    text = f"provider error {code}" if code else "provider opt-out"
    record(svc, [patient_id], channel, False, source="provider", actor="provider", text=text)
    suppress_contact(svc, patient_id, channel, reason=f"provider-{code or 'opt-out'}", text=text)


def suppress(
    svc: Services,
    channel: Channel,
    address: str,
    *,
    reason: str,
    actor: str,
    evidence: str | None,
    patient_id: int | None = None,
    inbound_id: int | None = None,
) -> bool:
    """Put ``address`` on the suppression list; False when it already is."""
    if not address or svc.suppressions.suppressed(channel, [address]):
        return False
    svc.suppressions.add(
        channel,
        address,
        suppressed=True,
        reason=reason,
        actor=actor,
        at=svc.now(),
        evidence=evidence,
        patient_id=patient_id,
        inbound_id=inbound_id,
    )
    return True


def suppress_contact(
    svc: Services,
    patient_id: int,
    channel: Channel,
    *,
    reason: str,
    text: str | None,
    actor: str = "provider",
) -> bool:
    """Suppress the patient's current number (sms) or address (email)."""
    recipient = svc.patients.recipients([patient_id]).get(patient_id)
    address = recipient.contact(channel) if recipient else None
    if not address:
        return False
    return suppress(
        svc, channel, address, reason=reason, actor=actor, evidence=text, patient_id=patient_id
    )
