"""The sweeper: claims whose outcome was never seen, and work Redis forgot.

Neither Twilio's Messages API nor SMTP has an idempotency key, so a send whose
outcome was never seen is never blindly retried: it becomes ``unknown``, and the
provider is asked (Twilio: messages to that number since the claim, matching the
body; the outbox: its own log) before it is marked sent or returned to pending.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from campaigns import keys, runs
from campaigns.delivery import build_message
from campaigns.errors import TransientError
from campaigns.models import Channel
from campaigns.store.ledger import Claimed
from campaigns.wiring import Services

log = logging.getLogger(__name__)

# A claim is held for about a second of sending plus one provider timeout; one
# older than this belongs to a worker that died mid-send.
STALE_CLAIM = timedelta(minutes=2)
# A pending delivery this far past due has nothing queued for it (Redis lost it,
# or a pump died between pop and enqueue): queue it again. A duplicate batch is
# harmless, since the claim lets only one sender through.
OVERDUE = timedelta(seconds=60)


def sweep(svc: Services) -> dict[str, int]:
    lock = svc.redis.lock(keys.SWEEPER_LOCK, timeout=300, blocking=False)
    if not lock.acquire():
        return {"skipped": 1}
    try:
        now = svc.now()
        stale = svc.ledger.stale_claims(now - STALE_CLAIM)
        marked = svc.ledger.mark_unknown([c.delivery_id for c in stale], now) if stale else 0
        if marked:
            log.warning(
                "%s claims had no outcome after %s; marked unknown for reconciliation",
                marked,
                STALE_CLAIM,
            )
        resolved = reconcile_unknown(svc)
        requeued = runs.queue_pending(svc, None, not_after=now - OVERDUE)
        if requeued:
            log.warning(
                "re-queued %s batches of overdue pending deliveries from the ledger", requeued
            )
        finished = sum(svc.ledger.finish_if_done(r) for r in svc.ledger.running_runs())
        return {
            "unknown": marked,
            "reconciled": resolved,
            "requeued": requeued,
            "finished": finished,
        }
    finally:
        lock.release()


def reconcile_unknown(svc: Services, limit: int = 500) -> int:
    done = 0
    for row in svc.ledger.unknown(limit):
        run = svc.ledger.get_run(int(row["run_id"]))
        if run is None:
            continue
        _, definition = runs.load_campaign(svc, int(run["campaign_id"]))
        recipient = svc.patients.recipients([int(row["patient_id"])]).get(int(row["patient_id"]))
        if recipient is None:
            continue
        channel: Channel = "sms" if row["channel"] == "sms" else "email"
        claim = Claimed(
            int(row["id"]),
            int(row["run_id"]),
            int(row["patient_id"]),
            row["channel"],
            int(row["attempts"]),
            row["due_at"],
        )
        message = build_message(svc, definition, claim, recipient, channel)
        since = (row["claimed_at"] or row["updated_at"]) - timedelta(minutes=1)
        try:
            seen = svc.transport(channel).find_sent(message, since)
        except TransientError as exc:
            log.info(
                "delivery %s: provider cannot be asked now (%s); will ask again",
                row["id"],
                exc.reason,
            )
            continue
        svc.ledger.resolve_unknown(
            int(row["id"]), sent_provider_id=seen.provider_id if seen else None, now=svc.now()
        )
        log.info(
            "delivery %s reconciled: %s",
            row["id"],
            "provider has it, marked sent" if seen else "provider never got it, resent",
        )
        done += 1
    return done
