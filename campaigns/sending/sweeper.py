"""The sweeper: claims whose outcome was never seen, and work Redis forgot.

Neither Twilio's Messages API nor SMTP has an idempotency key, so a send whose
outcome was never seen is never blindly retried: it becomes ``unknown``, and the
provider is asked (Twilio: messages to that number since the claim, matching the
body; the outbox: its own log) before it is marked sent or returned to pending.

Returns to pending are queued at once (campaigns.sending.pending); the sweeper's
own re-queue of overdue pending deliveries is the safety net for a due set or a
send queue that Redis lost.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis

from campaigns import keys
from campaigns.content import variants
from campaigns.content.catalogue import load_campaign, run_templates_key
from campaigns.domain.models import Claimed, PendingAgain
from campaigns.domain.states import DeliveryState, RunState, channel_of
from campaigns.errors import TransientError
from campaigns.people import status_callbacks
from campaigns.sending.delivery import build_message
from campaigns.sending.fanout import stalled_fan_outs
from campaigns.sending.pending import back_to_pending, queue_pending

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# Timings come from settings. A sending worker renews its claims every half second,
# so a claim not renewed for claim_timeout_s belongs to a worker that died
# mid-send. A pending delivery requeue_after_s past due, at a moment when no batch
# waits anywhere, has nothing queued for it (Redis lost it, or a worker died with
# its batch): it is queued again. A duplicate batch is harmless, since the claim
# lets only one sender through.


def sweep(svc: Services) -> dict[str, Any]:
    """One pass; returns its counts, and the runs whose fan-out it queued again."""
    # One sweeper at a time; a sweeper killed mid-sweep holds the lock only a few
    # intervals.
    hold = min(300.0, max(10.0, 5 * svc.settings.sweep_interval_s))
    lock = svc.redis.lock(keys.SWEEPER_LOCK, timeout=hold, blocking=False)
    if not lock.acquire():
        return {"skipped": 1}
    try:
        now = svc.now()
        claim_timeout = timedelta(seconds=svc.settings.claim_timeout_s)
        stale = svc.deliveries.stale_claims(now - claim_timeout)
        marked = svc.deliveries.mark_unknown([c.delivery_id for c in stale], now) if stale else 0
        if marked:
            log.warning(
                "%s claims had no outcome after %s; marked unknown for reconciliation",
                marked,
                claim_timeout,
            )
        resolved = reconcile_unknown(svc)
        requeued = 0
        overdue = now - timedelta(seconds=svc.settings.requeue_after_s)
        if _nothing_queued(svc, overdue):
            requeued = queue_pending(svc, None, not_after=overdue)
        if requeued:
            log.warning(
                "re-queued %s batches of overdue pending deliveries from the ledger", requeued
            )
        early = status_callbacks.apply_early_statuses(svc)
        finished = sum(
            svc.runs.finish_if_done(r, svc.now())
            for r in svc.runs.ids_with_status(RunState.RUNNING)
        )
        stalled = stalled_fan_outs(svc, overdue)
        for run_id in stalled:
            log.warning("run %s: its fan-out stopped with nobody at it; sent again", run_id)
            svc.dispatcher.queue_fan_out(run_id)
        return {
            "stalled_fan_outs": stalled,
            "unknown": marked,
            "reconciled": resolved,
            "requeued": requeued,
            "finished": finished,
            "early_statuses": early,
        }
    finally:
        # Expired (a long sweep) or gone (Redis restarted): nothing left to release.
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _nothing_queued(svc: Services, overdue: datetime) -> bool:
    """No batch waits on the send queue, and none due by ``overdue`` in the due set.

    Only then is an overdue pending delivery known to have nothing queued for it.
    A long campaign at a low rate has most of its deliveries overdue while their
    batches wait their turn; re-queueing those would flood the queue with copies.
    (Future batches in the due set, such as a later time zone's, do not count.)
    """
    return svc.due.waiting_since(overdue) == 0 and svc.dispatcher.waiting_sends() == 0


def reconcile_unknown(svc: Services, limit: int = 500) -> int:
    """Ask the provider about each unknown delivery: sent, or back to pending."""
    done = 0
    for row in svc.deliveries.unknown(limit):
        run = svc.runs.get(int(row["run_id"]))
        if run is None:
            continue
        _, definition = load_campaign(svc, int(run["campaign_id"]))
        recipient = svc.patients.recipients([int(row["patient_id"])]).get(int(row["patient_id"]))
        if recipient is None:
            continue
        channel = channel_of(row["channel"])
        claim = Claimed(
            int(row["id"]),
            int(row["run_id"]),
            int(row["patient_id"]),
            channel,
            int(row["attempts"]),
            row["due_at"],
            row.get("variant"),
        )
        templates = run_templates_key(definition, run)
        if claim.variant is not None:  # the A/B variant this patient was given
            templates = variants.run_keys(run, templates).get(claim.variant, templates)
        message = build_message(svc, definition, claim, recipient, channel, templates)
        # Ledger times are Meridian's clock; the provider's are real time.
        claimed_at = row["claimed_at"] or row["updated_at"]
        since = claimed_at - svc.settings.clock_shift - timedelta(minutes=1)
        try:
            seen = svc.transport(channel).find_sent(message, since)
        except TransientError as exc:
            log.info(
                "delivery %s: provider cannot be asked now (%s); will ask again",
                row["id"],
                exc.reason,
            )
            continue
        if seen is not None:
            svc.deliveries.unknown_was_sent(claim.delivery_id, seen.provider_id, svc.now())
        else:
            back_to_pending(
                svc,
                claim.run_id,
                [PendingAgain(claim.delivery_id, svc.now(), source=DeliveryState.UNKNOWN)],
            )
        log.info(
            "delivery %s reconciled: %s",
            row["id"],
            "provider has it, marked sent" if seen else "provider never got it, resent",
        )
        done += 1
    return done
