"""Whether one claimed delivery may go now, and what to record when it may not.

Consent, the suppression list and the frequency caps (counted per number or address,
campaigns.people.consent.check_send), then the patient's next lawful instant
(campaigns.sending.fanout.recipient_send_at): skipped, held, or failed for good when
the patient's stored whereabouts are not valid. The send loop
(campaigns.sending.delivery) asks before rendering and waiting for the rate limiter,
and again after the wait; a message that cannot be rendered fails alone, with the
reason ``render_failure`` gives it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.models import CHANNELS, Channel, Claimed, Outcome, Recipient
from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.errors import MeridianError
from campaigns.people import consent
from campaigns.sending.fanout import recipient_send_at

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


class SliceChecks:
    """The send-time check for the claims of one slice, with what it needs to know:
    what was sent to each patient within the frequency cap (in the ledger, and by
    this slice so far) and, through _ByContact, to each number or address."""

    def __init__(
        self,
        svc: Services,
        definition: CampaignDefinition,
        claimed: Sequence[Claimed],
        recipients: dict[int, Recipient],
    ) -> None:
        self.svc = svc
        self.definition = definition
        since = svc.now() - timedelta(days=max(definition.limits.frequency_cap_days, 1))
        self._history = svc.delivery_queries.sent_since(
            [c.patient_id for c in claimed], since, exclude_run=claimed[0].run_id
        )
        self._by_contact = _ByContact(svc, claimed, recipients, since)
        self._sent_now: dict[int, list[tuple[int, str, datetime]]] = {}

    def judge(
        self, c: Claimed, recipient: Recipient, occurrence: str, now: datetime
    ) -> Outcome | None:
        """None when the message may go at ``now``; else what to record instead: skipped
        (consent, suppression, caps, a shared number), held for the patient's next lawful
        instant, or failed for good when the patient's stored zone or state is not valid
        (campaigns.clock.whereabouts refuses to guess)."""
        channel, definition = c.channel, self.definition
        past = self._history.get(c.patient_id, []) + self._sent_now.get(c.patient_id, [])
        contact = recipient.contact(channel)
        try:
            verdict = consent.check_send(
                recipient,
                channel,
                past,
                now=now,
                cap_days=definition.limits.frequency_cap_days,
                run_id=c.run_id,
                suppressed=self._by_contact.is_suppressed(channel, contact),
                shared=self._by_contact.others(channel, contact, c.patient_id),
            )
            if verdict is not None:
                return Outcome(c.delivery_id, DeliveryState.SKIPPED, skip_reason=verdict)
            at = recipient_send_at(
                self.svc, occurrence, definition, recipient, channel, now, hold=True
            )
        except MeridianError:
            # The value is not logged: the ledger's reason says what to fix, staff look
            # the patient up.
            log.warning("delivery %s failed for good: %s", c.delivery_id, BAD_WHEREABOUTS)
            return Outcome(c.delivery_id, DeliveryState.FAILED, error_reason=BAD_WHEREABOUTS)
        if at is None:
            return Outcome(
                c.delivery_id, DeliveryState.SKIPPED, skip_reason=SkipReason.NO_LAWFUL_TIME
            )
        if at > now:
            # Not lawful now everywhere the patient might be (the clock moved, a
            # backlog, a pause or the rate limiter made it late, a retry landed at
            # night): wait for the next lawful instant, never send early, never drop
            # for lateness.
            return Outcome(c.delivery_id, DeliveryState.PENDING, next_attempt_at=at, tried=False)
        return None

    def sent(self, c: Claimed, recipient: Recipient, now: datetime) -> None:
        """Count a message this slice has just sent, for the checks of the rest."""
        self._sent_now.setdefault(c.patient_id, []).append((c.run_id, c.channel, now))
        contact = recipient.contact(c.channel)
        self._by_contact.sent(c.channel, contact, c.patient_id, c.run_id, now)


BAD_WHEREABOUTS = "the patient's stored zone/state is not valid"
_REASON_MAX = 200  # deliveries.error_reason is a String(200)


def render_failure(exc: MeridianError, recipient: Recipient) -> str:
    """The ledger's reason for a message that could not be rendered: the template file,
    line and error (campaigns.content.rendering), never the patient's values."""
    problems = getattr(exc, "problems", None)
    said = "; ".join(str(p) for p in problems) if problems else str(exc)
    for value in (
        recipient.first_name,
        recipient.last_name,
        recipient.contact("sms"),
        recipient.contact("email"),
    ):
        if value and len(value) > 1:
            said = said.replace(value, "[patient value]")
    reason = f"the message could not be rendered: {said}"
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 1] + "…"


class _ByContact:
    """What the send-time check needs to know per number or address of a slice: is it
    suppressed, and what was sent to it for other patients (in the ledger, and by
    this slice so far)."""

    def __init__(
        self,
        svc: Services,
        claimed: Sequence[Claimed],
        recipients: dict[int, Recipient],
        since: datetime,
    ) -> None:
        self._suppressed: dict[Channel, dict[str, str]] = {}
        self._sent: dict[tuple[Channel, str], list[tuple[int, int, str, datetime]]] = {}
        for channel in CHANNELS:
            contacts = {
                contact
                for c in claimed
                if c.channel == channel
                and (r := recipients.get(c.patient_id)) is not None
                and (contact := r.contact(channel))
            }
            self._suppressed[channel] = svc.suppressions.suppressed_why(channel, contacts)
            day = min(since, svc.now() - timedelta(hours=24))
            for contact, rows in svc.delivery_queries.sent_to_contacts(
                channel, sorted(contacts), day
            ).items():
                self._sent[(channel, contact)] = rows

    def is_suppressed(self, channel: Channel, contact: str | None) -> str | bool:
        """Why ``contact`` is suppressed (the list's reason), or False."""
        return self._suppressed[channel].get(contact or "", False)

    def others(
        self, channel: Channel, contact: str | None, patient_id: int
    ) -> list[tuple[int, str, datetime]]:
        if not contact:
            return []
        return [
            (rid, ch, at)
            for pid, rid, ch, at in self._sent.get((channel, contact), [])
            if pid != patient_id
        ]

    def sent(
        self, channel: Channel, contact: str | None, patient_id: int, run_id: int, at: datetime
    ) -> None:
        if contact:
            self._sent.setdefault((channel, contact), []).append((patient_id, run_id, channel, at))
