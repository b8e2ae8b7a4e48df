"""Handing one message to the provider, and what its answer makes of the delivery.

Sent (with the provider's id); failed for good (a permanent error, recording a
provider opt-out as the patient's, or the last attempt); pending again with a
backoff (``retry_at``); or unknown, when the answer was lost: never resent before
the sweeper has asked the provider (campaigns.sending.sweeper).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.models import Claimed, Outcome, Recipient
from campaigns.domain.states import DeliveryState
from campaigns.domain.transport import OutboundMessage
from campaigns.errors import OutcomeUnknown, PermanentError, TransientError
from campaigns.people import bounces, consent

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


def send_one(
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
        if exc.address_refused:  # SMTP 5xx on RCPT/DATA; Twilio 21211, 21614
            bounces.decide(
                svc,
                delivery_id=c.delivery_id,
                channel=message.channel,
                kind="refused" if message.channel == "email" else "sms-error",
                status=exc.code,
                source="smtp" if message.channel == "email" else "twilio",
                report_id=f"delivery-{c.delivery_id}-attempt-{c.attempts}",
            )
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
