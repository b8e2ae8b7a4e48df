"""Named SQL that moves deliveries: the claim, the outcomes, the way back to pending.

The claim is one conditional UPDATE: whoever flips a delivery from ``pending`` to
``sending`` owns it, and a redelivered task that loses the race does nothing.
Every other write is conditional on the state it leaves, as the state machine
(campaigns.domain.states) allows. Times come from the caller (``svc.now()``). The
reads that change nothing (what was sent, counts) are in campaigns.store.delivery_queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update

from campaigns.domain.models import Claimed, Outcome, PendingAgain
from campaigns.domain.states import (
    RECORDED_OUTCOMES,
    SENDING_RUN_STATES,
    DeliveryState,
    IllegalTransition,
    SkipReason,
    channel_of,
)
from campaigns.store.bulk import one_of
from campaigns.store.db import Database
from campaigns.store.delivery_rows import write_chunk
from campaigns.store.outcome_rows import record_outcomes
from campaigns.store.tables import campaign_runs, deliveries, delivery_state_in

_CLAIMED = (
    deliveries.c.id,
    deliveries.c.run_id,
    deliveries.c.patient_id,
    deliveries.c.channel,
    deliveries.c.attempts,
    deliveries.c.due_at,
    deliveries.c.variant,
)


def _claimed(row: Sequence[Any]) -> Claimed:
    i, run_id, patient_id, channel, attempts, due_at, variant = row
    return Claimed(
        int(i), int(run_id), int(patient_id), channel_of(channel), attempts, due_at, variant
    )


def _running() -> Any:
    """Runs whose deliveries may be claimed: running, or still fanning out (each chunk
    is queued as soon as it is written, so sending starts with the first one)."""
    return select(campaign_runs.c.id).where(campaign_runs.c.status.in_(SENDING_RUN_STATES))


def _run_sends() -> Any:
    """The claimed row's run may send, asked row by row (a correlated subquery on the
    runs' primary key): unlike ``run_id IN (...)`` it cannot lead the planner to read
    the run's rows by run_id, whatever the statistics say."""
    status = (
        select(campaign_runs.c.status)
        .where(campaign_runs.c.id == deliveries.c.run_id)
        .scalar_subquery()
    )
    return status.in_(SENDING_RUN_STATES)


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self, run_id: int, rows: Sequence[dict[str, Any]], now: datetime
    ) -> list[tuple[int, datetime]]:
        """Bulk insert a fan-out chunk; a row already there (a re-run fan-out) is left
        as it is. Returns (id, next_attempt_at) of the pending rows it wrote, for the
        caller to queue (campaigns.store.delivery_rows)."""
        if not rows:
            return []
        with self.db.begin() as conn:
            return write_chunk(conn, run_id, rows, now)

    def stream_due_pending(
        self, run_id: int | None, *, not_after: datetime | None = None, chunk: int = 5000
    ) -> Iterator[list[tuple[int, datetime, int]]]:
        """(id, next_attempt_at, run_id) of pending deliveries in due order, by chunks:
        of one run, or of every running run."""
        last_due = datetime(1970, 1, 1, tzinfo=UTC)
        last_id = 0
        while True:
            # From where the last page ended: a row comparison is one bound of
            # ix_deliveries_pending_due. (With no statistics PostgreSQL still reads
            # and sorts every pending row per page; this runs after a fan-out only on
            # SQLite or after a takeover, and in the sweeper's safety net.)
            cond = [
                delivery_state_in(DeliveryState.PENDING),
                tuple_(deliveries.c.next_attempt_at, deliveries.c.id) > tuple_(last_due, last_id),
            ]
            if run_id is not None:
                # On SQLite, ``+ 0`` keeps the run's unique index out of the plan: by it,
                # every page read all the run's rows again and sorted them.
                run_of = (
                    deliveries.c.run_id + 0 if self.db.backend == "sqlite" else deliveries.c.run_id
                )
                cond.append(run_of == run_id)
            else:
                cond.append(deliveries.c.run_id.in_(_running()))
            if not_after is not None:
                cond.append(deliveries.c.next_attempt_at <= not_after)
            with self.db.connect() as conn:
                rows = conn.execute(
                    select(deliveries.c.id, deliveries.c.next_attempt_at, deliveries.c.run_id)
                    .where(*cond)
                    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield [(int(i), d, int(r)) for i, d, r in rows]
            last_id, last_due = rows[-1][0], rows[-1][1]

    def claim(self, ids: Sequence[int], now: datetime) -> list[Claimed]:
        """Flip pending -> sending for the ids that are due and whose run sends (running,
        or fanning out)."""
        with self.db.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(
                    one_of(self.db.backend, deliveries.c.id, ids),
                    # Only the primary key may lead this plan. With stale statistics
                    # (a run just written) ``state = 'pending'`` looks rare and the
                    # planner would read every open row through the partial indexes;
                    # IS NOT DISTINCT FROM means the same for a NOT NULL column and
                    # matches no index (bench/explain.py shows both plans).
                    deliveries.c.state.is_not_distinct_from(DeliveryState.PENDING),
                    deliveries.c.next_attempt_at <= now,
                    _run_sends(),
                )
                .values(
                    state=DeliveryState.SENDING,
                    claimed_at=now,
                    attempts=deliveries.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*_CLAIMED)
            ).all()
        return sorted((_claimed(r) for r in rows), key=lambda c: c.delivery_id)

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Write every outcome of a batch in one statement (never a return to pending:
        that is back_to_pending's, which the caller pairs with queueing)."""
        if not outcomes:
            return
        wrong = sorted({o.state for o in outcomes} - RECORDED_OUTCOMES)
        if wrong:
            raise IllegalTransition(f"a claim is not recorded as {', '.join(wrong)}")
        with self.db.begin() as conn:
            record_outcomes(conn, outcomes, now)

    def back_to_pending(self, returns: Sequence[PendingAgain], now: datetime) -> int:
        """Return deliveries to pending in one transaction; how many moved.

        A claim never used is undone as if never taken; a claim that will be tried
        again gets its new time and error, and keeps its attempt only if the message
        was offered to the provider (a transient error; not a window not yet open);
        an unknown the provider never got is due again.
        Only campaigns.sending.pending.back_to_pending calls this: it queues them too.
        """
        from_claims = [r for r in returns if r.source == DeliveryState.SENDING]
        unused = [r.delivery_id for r in from_claims if r.due is None]
        later = [r for r in from_claims if r.due is not None]
        unknown = [r for r in returns if r.source == DeliveryState.UNKNOWN]
        if len(unused) + len(later) + len(unknown) != len(returns):
            raise IllegalTransition("only a claim or an unknown delivery goes back to pending")
        moved = 0
        with self.db.begin() as conn:
            if unused:
                moved += conn.execute(
                    update(deliveries)
                    .where(
                        one_of(self.db.backend, deliveries.c.id, unused),
                        deliveries.c.state == DeliveryState.SENDING,
                    )
                    .values(
                        state=DeliveryState.PENDING,
                        claimed_at=None,
                        attempts=deliveries.c.attempts - 1,
                        updated_at=now,
                    )
                ).rowcount
            if later:
                moved += conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id == bindparam("b_id"),
                        deliveries.c.state == DeliveryState.SENDING,
                    )
                    .values(
                        state=DeliveryState.PENDING,
                        next_attempt_at=bindparam("b_next"),
                        error_code=bindparam("b_code"),
                        error_reason=bindparam("b_reason"),
                        attempts=deliveries.c.attempts - bindparam("b_untried"),
                        provider_id=None,
                        skip_reason=None,
                        sent_at=None,
                        updated_at=now,
                    ),
                    [
                        {
                            "b_id": r.delivery_id,
                            "b_next": r.due,
                            "b_code": r.error_code,
                            "b_reason": r.error_reason,
                            "b_untried": 0 if r.tried else 1,
                        }
                        for r in later
                    ],
                ).rowcount
            if unknown:
                moved += conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id == bindparam("b_id"),
                        deliveries.c.state == DeliveryState.UNKNOWN,
                    )
                    .values(
                        state=DeliveryState.PENDING,
                        next_attempt_at=bindparam("b_next"),
                        updated_at=now,
                    ),
                    [{"b_id": r.delivery_id, "b_next": r.due or now} for r in unknown],
                ).rowcount
        return moved

    def touch_claims(self, ids: Sequence[int], now: datetime) -> int:
        """Renew claims still being worked on; returns how many are still ours."""
        if not ids:
            return 0
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(
                    one_of(self.db.backend, deliveries.c.id, ids),
                    deliveries.c.state == DeliveryState.SENDING,
                )
                .values(claimed_at=now)
            ).rowcount

    def stale_claims(self, older_than: datetime, limit: int = 1000) -> list[Claimed]:
        """Claims whose outcome was never recorded: the worker died mid-send."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_CLAIMED)
                .where(
                    deliveries.c.state == DeliveryState.SENDING,
                    deliveries.c.claimed_at < older_than,
                )
                .order_by(deliveries.c.id)
                .limit(limit)
            ).all()
        return [_claimed(r) for r in rows]

    def mark_unknown(self, ids: Sequence[int], now: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(
                    one_of(self.db.backend, deliveries.c.id, ids),
                    deliveries.c.state == DeliveryState.SENDING,
                )
                .values(state=DeliveryState.UNKNOWN, updated_at=now)
            ).rowcount

    def unknown(self, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(deliveries)
                    .where(deliveries.c.state == DeliveryState.UNKNOWN)
                    .order_by(deliveries.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def unknown_was_sent(self, delivery_id: int, provider_id: str, now: datetime) -> None:
        """The provider has the message whose answer was lost: it was sent."""
        with self.db.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.state == DeliveryState.UNKNOWN)
                .values(
                    state=DeliveryState.SENT, provider_id=provider_id, sent_at=now, updated_at=now
                )
            )

    def cancel_pending(self, run_id: int, now: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.run_id == run_id, delivery_state_in(DeliveryState.PENDING))
                .values(
                    state=DeliveryState.SKIPPED, skip_reason=SkipReason.CANCELLED, updated_at=now
                )
            ).rowcount

    def set_status(self, delivery_id: int, state: str, code: str | None, now: datetime) -> None:
        """What the provider's status callback says of a sent message (last word wins)."""
        settled = DeliveryState(state)
        sources = [s for s in DeliveryState if s.can_become(settled)]
        with self.db.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.state.in_(sources))
                .values(state=settled, error_code=code, updated_at=now)
            )
