"""Pending deliveries and the due set: queue what is pending, and the one way back.

A delivery becomes pending once, at fan-out. It comes back to pending from a claim
(a transient error to retry, the patient's window not open yet, a claim never used
because the run was paused or the worker stopped) or from ``unknown`` (the provider
never got it). Every return goes through :func:`back_to_pending`, which writes the
ledger and queues the batches in the due set together, so none waits for a sweep.
The sweeper's re-queue of overdue pending deliveries (:func:`queue_pending` with
``not_after``) stays as the safety net for a due set that Redis lost.

Queueing more than once is harmless: the claim lets one sender through.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import redis

from campaigns.domain.models import PendingAgain
from campaigns.domain.states import RunState
from campaigns.errors import BrokerUnavailable
from campaigns.sending.batches import group_batches

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


def queue_pending(svc: Services, run_id: int | None, *, not_after: datetime | None = None) -> int:
    """Put pending deliveries (of one run, or of every running run) into due batches."""
    queued = 0
    for rows in svc.deliveries.stream_due_pending(run_id, not_after=not_after):
        by_run: dict[int, list[tuple[int, datetime]]] = {}
        for delivery_id, due, rid in rows:
            by_run.setdefault(rid, []).append((delivery_id, due))
        for rid, group in by_run.items():
            queued += svc.due.add(group_batches(group, rid, svc.settings.batch_size))
    return queued


def back_to_pending(svc: Services, run_id: int, returns: Sequence[PendingAgain]) -> int:
    """Return deliveries of one run to pending and queue them for their due time.

    Returns how many the ledger moved. The ledger is written first: if the due set
    cannot be reached (Redis away), the deliveries are pending all the same and the
    sweeper queues them once they are overdue. In a run cancelled meanwhile they
    are skipped as cancelled, as the cancel skipped the rest.
    """
    if not returns:
        return 0
    now = svc.now()
    moved = svc.deliveries.back_to_pending(returns, now)
    due = sorted((r.due or now, r.delivery_id) for r in returns)
    try:
        svc.due.add(group_batches([(i, d) for d, i in due], run_id, svc.settings.batch_size))
    except (BrokerUnavailable, redis.exceptions.RedisError) as exc:
        log.warning(
            "run %s: %s deliveries back to pending, not queued (%s); the sweeper queues "
            "them once overdue",
            run_id,
            moved,
            type(exc).__name__,
        )
    if svc.runs.status(run_id) == RunState.CANCELLED:
        svc.deliveries.cancel_pending(run_id, now)
    return moved
