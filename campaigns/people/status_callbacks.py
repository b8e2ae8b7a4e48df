"""Twilio's status callbacks: the delivery a report settles, and a carrier-held STOP.

A report names the message by its provider id (Twilio's SID). A send is recorded in
bulk after its slice, so a fast report can come before its SID is in the ledger: it
is kept in Redis for the sweeper (``apply_early_statuses``). An error 21610 says the
number holds a STOP: the patient's SMS opt-out is recorded. A code that means the
number is dead, invalid or not a mobile (campaigns.domain.sms_errors.SUPPRESSING)
suppresses the number, with the report kept as evidence (campaigns.people.bounces).

Nothing here logs a phone number: only ids, states and codes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import redis

from campaigns import keys
from campaigns.domain.sms_errors import SUPPRESSING
from campaigns.people import bounces, consent

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


# Twilio's MessageStatus -> the delivery state it settles; any other status
# (queued, sending, sent, accepted, read, ...) says nothing final and is ignored.
_FINAL_STATUSES = {"delivered": "delivered", "undelivered": "undelivered", "failed": "undelivered"}
# "Attempt to send to unsubscribed recipient": the carrier or Twilio holds a STOP.
OPTED_OUT_CODE = "21610"


@dataclass(frozen=True)
class StatusOutcome:
    """What a status callback did: the delivery it settled, and whether it opted out."""

    delivery_id: int | None
    state: str | None
    opted_out: bool = False


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
        if svc.delivery_queries.find_by_provider_id(sid) is not None:
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
    delivery_id = svc.delivery_queries.find_by_provider_id(message_sid)
    if delivery_id is None:
        _keep_for_later(svc, message_sid, status, error_code)
        return StatusOutcome(None, state)
    code = (error_code or None) if state == "undelivered" else None
    svc.deliveries.set_status(delivery_id, state, code, svc.now())
    opted_out = code == OPTED_OUT_CODE and _record_provider_opt_out(svc, delivery_id)
    if code in SUPPRESSING:
        # Dead, invalid, not a mobile, or opted out: the number is suppressed, with
        # the report kept as evidence (once per message and code).
        bounces.decide(
            svc,
            delivery_id=delivery_id,
            channel="sms",
            kind="sms-error",
            status=code,
            source="twilio",
            report_id=f"{message_sid}:{code}",
        )
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
