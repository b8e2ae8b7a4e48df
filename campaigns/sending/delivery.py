"""Sending one batch: claim -> check -> render -> rate-limit -> send -> record.

A batch is claimed in slices no longer than about a second of sending at the
provider's rate, so a pause (which stops new claims) takes effect within a second
and a claim is never held for long. What goes back to pending (a retry, a window
not open yet, a claim never used) goes through campaigns.sending.pending.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from campaigns.content.catalogue import load_campaign
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.message import render_message
from campaigns.domain.models import (
    CHANNELS,
    Batch,
    Channel,
    Claimed,
    Outcome,
    PendingAgain,
    Recipient,
    SliceFigures,
)
from campaigns.domain.states import DeliveryState, RunState, SkipReason
from campaigns.domain.transport import OutboundMessage
from campaigns.errors import (
    MeridianError,
    NotFound,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)
from campaigns.people import consent
from campaigns.sending.batches import chunked
from campaigns.sending.fanout import recipient_send_time
from campaigns.sending.pending import back_to_pending

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, state: str) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1


def _slice_size(svc: Services, channels: Sequence[Channel], batch_size: int) -> int:
    """About a second of sending at the slowest rate of the campaign's own channels."""
    s = svc.settings
    rates = [r for ch in channels if (r := s.sms_rate if ch == "sms" else s.email_rate) > 0]
    if not rates:
        return batch_size
    return max(1, min(batch_size, int(min(rates))))


def send_batch(svc: Services, batch: Batch) -> BatchResult:
    result = BatchResult()
    _, definition = load_campaign(svc, _campaign_of(svc, batch.run_id))
    touched = False
    try:
        size = _slice_size(svc, definition.channels, len(batch.delivery_ids))
        for ids in chunked(batch.delivery_ids, size):
            claimed = svc.deliveries.claim(ids, svc.now())
            if not claimed:
                continue
            touched = True
            result.claimed += len(claimed)
            outcomes = _send_slice(svc, definition, claimed)
            for o in outcomes:
                result.add(o.state)
            if len(outcomes) < len(claimed):
                log.info("run %s is no longer running; batch stopped", batch.run_id)
                break
    finally:
        for channel in definition.channels:
            svc.transport(channel).close()
    if touched:
        svc.runs.finish_if_done(batch.run_id, svc.now())
    return result


def _send_slice(
    svc: Services, definition: CampaignDefinition, claimed: Sequence[Claimed]
) -> list[Outcome]:
    """Send one claimed slice and record every outcome, whatever happens.

    Claims never handed to a provider (the run was paused or cancelled meanwhile,
    or the worker hit an error such as Redis going away) go straight back to
    pending, and are queued again; only a message that may have reached the
    provider is left for the sweeper to reconcile.
    """
    sender = _SliceSender(svc, definition, claimed)
    try:
        sender.run()
    finally:
        if sender.in_flight is not None:
            sender.outcomes.append(
                Outcome(
                    sender.in_flight.delivery_id,
                    DeliveryState.UNKNOWN,
                    error_reason="worker error",
                )
            )
        svc.deliveries.record(
            [o for o in sender.outcomes if o.state != DeliveryState.PENDING], svc.now()
        )
        back_to_pending(svc, claimed[0].run_id, _returns(sender.outcomes, claimed))
        svc.tally.add_slice(sender.figures)
    return sender.outcomes


def _returns(outcomes: Sequence[Outcome], claimed: Sequence[Claimed]) -> list[PendingAgain]:
    """What of a slice goes back to pending: sends to try later, and claims never used."""
    later = [
        PendingAgain(
            o.delivery_id,
            o.next_attempt_at,
            error_code=o.error_code,
            error_reason=o.error_reason,
            tried=o.tried,
        )
        for o in outcomes
        if o.state == DeliveryState.PENDING
    ]
    done = {o.delivery_id for o in outcomes}
    return later + [PendingAgain(c.delivery_id, None) for c in claimed if c.delivery_id not in done]


# How often a slice in progress looks at its run's status, so a pause or cancel
# stops the sending within a second even when the slice is long, and renews its
# claims, so the sweeper takes only the claims of a worker that died.
STATUS_CHECK_S = 0.5


def _campaign_of(svc: Services, run_id: int) -> int:
    run = svc.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return int(run["campaign_id"])


class _SliceSender:
    def __init__(
        self, svc: Services, definition: CampaignDefinition, claimed: Sequence[Claimed]
    ) -> None:
        self.svc = svc
        self.definition = definition
        self.claimed = claimed
        self.outcomes: list[Outcome] = []
        # The claim being handed to a provider: if anything fails then, the
        # message may have gone, so it is not released.
        self.in_flight: Claimed | None = None
        self._occurrences: dict[int, str] = {}
        self.figures = SliceFigures()  # for /metrics: provider latency, rate-limit waits

    def _occurrence(self, run_id: int) -> str:
        if run_id not in self._occurrences:
            run = self.svc.runs.get(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            self._occurrences[run_id] = str(run["occurrence"])
        return self._occurrences[run_id]

    def _carry_on(self, rest: Sequence[Claimed]) -> bool:
        """Between sends, every STATUS_CHECK_S: is the run still running, and are the
        remaining claims still ours? Renewing them tells the sweeper this worker is
        alive, however long the slice takes at a shared rate."""
        if self.svc.runs.status(rest[0].run_id) != RunState.RUNNING:
            return False
        ids = [c.delivery_id for c in rest]
        if self.svc.deliveries.touch_claims(ids, self.svc.now()) < len(ids):
            log.warning(
                "run %s: claims were taken over by the sweeper; batch stopped", rest[0].run_id
            )
            return False
        return True

    def run(self) -> None:
        svc, definition, claimed = self.svc, self.definition, self.claimed
        run_id = claimed[0].run_id
        recipients = svc.patients.recipients([c.patient_id for c in claimed])
        since = svc.now() - timedelta(days=max(definition.limits.frequency_cap_days, 1))
        self._history = svc.deliveries.sent_since(
            [c.patient_id for c in claimed], since, exclude_run=run_id
        )
        self._by_contact = _ByContact(svc, claimed, recipients, since)
        self._sent_now: dict[int, list[tuple[int, str, datetime]]] = {}
        next_check = time.monotonic() + STATUS_CHECK_S
        for i, c in enumerate(claimed):
            if time.monotonic() >= next_check:
                if not self._carry_on(claimed[i:]):
                    return
                next_check = time.monotonic() + STATUS_CHECK_S
            recipient = recipients.get(c.patient_id)
            channel = c.channel
            if recipient is None:
                self.outcomes.append(
                    Outcome(
                        c.delivery_id, DeliveryState.SKIPPED, skip_reason=SkipReason.INVALID_CONTACT
                    )
                )
                continue
            occurrence = self._occurrence(c.run_id)
            # Judged once before rendering and waiting for the rate limiter (nothing
            # skipped or held costs a token), and again after the wait, on a fresh
            # clock: at a shared 1/s the wait may be long enough to close the window.
            stop = self._judge(c, recipient, occurrence, svc.now())
            if stop is not None:
                self.outcomes.append(stop)
                continue
            try:
                message = build_message(svc, definition, c, recipient, channel)
            except MeridianError as exc:
                # The template fails for this patient (a sandbox bound tripped by their
                # values, a template edited on disk since the campaign was applied):
                # sending it again cannot help, and the rest of the slice goes on.
                log.warning(
                    "delivery %s failed for good: its message could not be rendered",
                    c.delivery_id,
                )
                self.outcomes.append(
                    Outcome(
                        c.delivery_id,
                        DeliveryState.FAILED,
                        error_reason=_render_failure(exc, recipient),
                    )
                )
                continue
            limiter = svc.limiter(channel)
            if limiter is not None:
                started = time.monotonic()
                limiter.acquire()  # a token taken for a message then held is lost: harmless
                self.figures.waits[channel].append(time.monotonic() - started)
            now = svc.now()
            stop = self._judge(c, recipient, occurrence, now)
            if stop is not None:
                self.outcomes.append(stop)
                continue
            self.in_flight = c
            started = time.monotonic()
            outcome = _send_one(svc, definition, c, recipient, message)
            self.figures.latency[channel].append(time.monotonic() - started)
            self.in_flight = None
            self.outcomes.append(outcome)
            if outcome.state == DeliveryState.SENT:
                self._sent_now.setdefault(c.patient_id, []).append((c.run_id, channel, now))
                contact = recipient.contact(channel)
                self._by_contact.sent(channel, contact, c.patient_id, c.run_id, now)

    def _judge(
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
            when = recipient_send_time(
                self.svc, occurrence, definition, recipient, channel, now, hold=True
            )
        except MeridianError:
            # The value is not logged: the ledger's reason says what to fix, staff look
            # the patient up.
            log.warning("delivery %s failed for good: %s", c.delivery_id, BAD_WHEREABOUTS)
            return Outcome(c.delivery_id, DeliveryState.FAILED, error_reason=BAD_WHEREABOUTS)
        if when.at is None:
            return Outcome(
                c.delivery_id, DeliveryState.SKIPPED, skip_reason=SkipReason.NO_LAWFUL_TIME
            )
        if when.at > now:
            # Not lawful now everywhere the patient might be (the clock moved, a
            # backlog, a pause or the rate limiter made it late, a retry landed at
            # night): wait for the next lawful instant, never send early, never drop
            # for lateness.
            return Outcome(
                c.delivery_id, DeliveryState.PENDING, next_attempt_at=when.at, tried=False
            )
        return None


BAD_WHEREABOUTS = "the patient's stored zone/state is not valid"
_REASON_MAX = 200  # deliveries.error_reason is a String(200)


def _render_failure(exc: MeridianError, recipient: Recipient) -> str:
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
        self._suppressed: dict[Channel, set[str]] = {}
        self._sent: dict[tuple[Channel, str], list[tuple[int, int, str, datetime]]] = {}
        for channel in CHANNELS:
            contacts = {
                contact
                for c in claimed
                if c.channel == channel
                and (r := recipients.get(c.patient_id)) is not None
                and (contact := r.contact(channel))
            }
            self._suppressed[channel] = svc.suppressions.suppressed(channel, contacts)
            day = min(since, svc.now() - timedelta(hours=24))
            for contact, rows in svc.deliveries.sent_to_contacts(
                channel, sorted(contacts), day
            ).items():
                self._sent[(channel, contact)] = rows

    def is_suppressed(self, channel: Channel, contact: str | None) -> bool:
        return bool(contact) and contact in self._suppressed[channel]

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


def build_message(
    svc: Services,
    definition: CampaignDefinition,
    c: Claimed,
    recipient: Recipient,
    channel: Channel,
) -> OutboundMessage:
    """The claimed delivery's message, addressed (content.message.render_message)."""
    rendered = render_message(svc, definition, recipient, channel, delivery_id=c.delivery_id)
    return OutboundMessage(
        delivery_id=c.delivery_id,
        run_id=c.run_id,
        channel=channel,
        to=recipient.contact(channel) or "",
        body=rendered.body,
        subject=rendered.subject,
        html=rendered.html,
        unsubscribe_url=rendered.unsubscribe_url,
    )


def _send_one(
    svc: Services,
    definition: CampaignDefinition,
    c: Claimed,
    recipient: Recipient,
    message: OutboundMessage,
) -> Outcome:
    try:
        receipt = svc.transport(message.channel).send(message)
    except PermanentError as exc:
        if exc.opted_out:
            consent.record_provider_opt_out(svc, recipient.patient_id, message.channel, exc.code)
        log.info("delivery %s failed for good (%s %s)", c.delivery_id, exc.code, exc.reason)
        return Outcome(
            c.delivery_id, DeliveryState.FAILED, error_code=exc.code, error_reason=exc.reason
        )
    except TransientError as exc:
        if c.attempts >= definition.limits.max_attempts:
            log.info(
                "delivery %s failed after %s attempts (%s)", c.delivery_id, c.attempts, exc.reason
            )
            return Outcome(
                c.delivery_id,
                DeliveryState.FAILED,
                error_code=exc.code,
                error_reason=f"gave up after {c.attempts} attempts: {exc.reason}",
            )
        retry = retry_at(svc.now(), c.attempts, definition.limits.retry_base_s)
        return Outcome(
            c.delivery_id,
            DeliveryState.PENDING,
            error_code=exc.code,
            error_reason=exc.reason,
            next_attempt_at=retry,
        )
    except OutcomeUnknown as exc:
        log.warning(
            "delivery %s: provider's answer lost (%s); marked unknown for "
            "reconciliation, not resent",
            c.delivery_id,
            exc.reason,
        )
        return Outcome(
            c.delivery_id, DeliveryState.UNKNOWN, error_code=exc.code, error_reason=exc.reason
        )
    return Outcome(c.delivery_id, DeliveryState.SENT, provider_id=receipt.provider_id)


def retry_at(now: datetime, attempt: int, base_s: float) -> datetime:
    """Exponential backoff with full jitter in its upper half, capped at an hour."""
    delay = min(base_s * 2 ** max(attempt - 1, 0), 3600.0)
    return now + timedelta(seconds=delay * (0.5 + random.random() / 2))  # noqa: S311
