"""Sending one batch: claim -> check -> render -> rate-limit -> send -> record.

A batch is claimed in slices no longer than about a second of sending at the
provider's rate, so a pause (which stops new claims) takes effect within a second
and a claim is never held for long.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaigns import consent, schedules
from campaigns.definitions import CampaignDefinition
from campaigns.dispatch import Batch, chunked, group_batches
from campaigns.errors import OutcomeUnknown, PermanentError, TransientError
from campaigns.models import Channel, Recipient
from campaigns.rendering import build_context
from campaigns.runs import load_campaign, recipient_clock
from campaigns.sms import smart_encode
from campaigns.store.ledger import Claimed, Outcome
from campaigns.transports.base import OutboundMessage
from campaigns.wiring import Services

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, state: str) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1


def _slice_size(svc: Services, batch_size: int) -> int:
    rate = min(svc.settings.sms_rate, svc.settings.email_rate)
    return max(1, min(batch_size, int(rate)))


def send_batch(svc: Services, batch: Batch) -> BatchResult:
    result = BatchResult()
    _, definition = load_campaign(svc, _campaign_of(svc, batch.run_id))
    touched = False
    try:
        for ids in chunked(batch.delivery_ids, _slice_size(svc, len(batch.delivery_ids))):
            claimed = svc.ledger.claim(ids, svc.now())
            if not claimed:
                continue
            touched = True
            result.claimed += len(claimed)
            outcomes = _send_claimed(svc, definition, claimed)
            now = svc.now()
            svc.ledger.record(outcomes, now)
            for o in outcomes:
                result.add(o.state)
            later = sorted(
                (o.next_attempt_at, o.delivery_id)
                for o in outcomes
                if o.state == "pending" and o.next_attempt_at is not None
            )
            if later:
                svc.due.add(
                    group_batches([(i, d) for d, i in later], batch.run_id, svc.settings.batch_size)
                )
    finally:
        for channel in definition.channels:
            svc.transport(channel).close()
    if touched:
        svc.ledger.finish_if_done(batch.run_id)
    return result


def _campaign_of(svc: Services, run_id: int) -> int:
    run = svc.ledger.get_run(run_id)
    if run is None:
        raise LookupError(f"run {run_id} does not exist")
    return int(run["campaign_id"])


def _send_claimed(
    svc: Services, definition: CampaignDefinition, claimed: Sequence[Claimed]
) -> list[Outcome]:
    recipients = svc.patients.recipients([c.patient_id for c in claimed])
    history = svc.ledger.sent_since(
        [c.patient_id for c in claimed],
        svc.now() - timedelta(days=max(definition.limits.frequency_cap_days, 1)),
        exclude_run=claimed[0].run_id,
    )
    outcomes: list[Outcome] = []
    sent_now: dict[int, list[tuple[int, str, datetime]]] = {}
    for c in claimed:
        recipient = recipients.get(c.patient_id)
        channel: Channel = "sms" if c.channel == "sms" else "email"
        if recipient is None:
            outcomes.append(Outcome(c.delivery_id, "skipped", skip_reason="invalid_contact"))
            continue
        now = svc.now()
        past = history.get(c.patient_id, []) + sent_now.get(c.patient_id, [])
        verdict = consent.check_send(
            recipient,
            channel,
            past,
            now=now,
            cap_days=definition.limits.frequency_cap_days,
            run_id=c.run_id,
        )
        if verdict is not None:
            outcomes.append(Outcome(c.delivery_id, "skipped", skip_reason=verdict))
            continue
        opens = _window_opens(svc, recipient, channel, now)
        if opens is not None:
            # Due outside the patient's hours (the clock moved, or a retry landed at
            # night): wait for the next opening, never send early, never drop.
            outcomes.append(Outcome(c.delivery_id, "pending", next_attempt_at=opens))
            continue
        outcomes.append(_send_one(svc, definition, c, recipient, channel))
        if outcomes[-1].state == "sent":
            sent_now.setdefault(c.patient_id, []).append((c.run_id, channel, now))
    return outcomes


def _window_opens(
    svc: Services, recipient: Recipient, channel: Channel, now: datetime
) -> datetime | None:
    zone, state = recipient_clock(svc, recipient, channel)
    if schedules.is_allowed(now, zone, state):
        return None
    return schedules.next_allowed(now, zone, state)


def build_message(
    svc: Services,
    definition: CampaignDefinition,
    c: Claimed,
    recipient: Recipient,
    channel: Channel,
) -> OutboundMessage:
    url = svc.unsubscribe_url(recipient.patient_id, c.delivery_id) if channel == "email" else None
    context: dict[str, Any] = build_context(
        first_name=recipient.first_name,
        last_name=recipient.last_name,
        clinic=svc.clinic,
        campaign=definition.name,
        unsubscribe_url=url,
    )
    rendered = svc.renderer.render(definition.templates, channel, context)
    body = rendered.body
    if channel == "sms" and svc.settings.sms_smart_encoding:
        body = smart_encode(body)
    to = recipient.contact(channel) or ""
    return OutboundMessage(
        delivery_id=c.delivery_id,
        run_id=c.run_id,
        channel=channel,
        to=to,
        body=body,
        subject=rendered.subject,
        html=rendered.html,
        unsubscribe_url=url,
    )


def _send_one(
    svc: Services,
    definition: CampaignDefinition,
    c: Claimed,
    recipient: Recipient,
    channel: Channel,
) -> Outcome:
    message = build_message(svc, definition, c, recipient, channel)
    svc.limiter(channel).acquire()
    try:
        receipt = svc.transport(channel).send(message)
    except PermanentError as exc:
        if exc.opted_out:
            consent.record_provider_opt_out(svc, recipient.patient_id, channel, exc.code)
        log.info("delivery %s failed for good (%s %s)", c.delivery_id, exc.code, exc.reason)
        return Outcome(c.delivery_id, "failed", error_code=exc.code, error_reason=exc.reason)
    except TransientError as exc:
        if c.attempts >= definition.limits.max_attempts:
            log.info(
                "delivery %s failed after %s attempts (%s)", c.delivery_id, c.attempts, exc.reason
            )
            return Outcome(
                c.delivery_id,
                "failed",
                error_code=exc.code,
                error_reason=f"gave up after {c.attempts} attempts: {exc.reason}",
            )
        retry = retry_at(svc.now(), c.attempts, definition.limits.retry_base_s)
        return Outcome(
            c.delivery_id,
            "pending",
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
        return Outcome(c.delivery_id, "unknown", error_code=exc.code, error_reason=exc.reason)
    return Outcome(c.delivery_id, "sent", provider_id=receipt.provider_id)


def retry_at(now: datetime, attempt: int, base_s: float) -> datetime:
    """Exponential backoff with full jitter in its upper half, capped at an hour."""
    delay = min(base_s * 2 ** max(attempt - 1, 0), 3600.0)
    return now + timedelta(seconds=delay * (0.5 + random.random() / 2))  # noqa: S311
