"""Named SQL for a campaign's results (``svc.results``): the last run of every campaign
with its counts, and a run's due times, failures and messages over time.

Everything is aggregated in SQL, with the same statements on SQLite and PostgreSQL:
the campaign list costs two queries whatever the number of campaigns, and a run page
a handful whatever the number of deliveries. Times are bucketed on whole seconds since
the epoch (``_epoch``), shifted by the caller's offset so that buckets of an hour or a
day start on the clinic's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, case, cast, func, literal_column, select

from campaigns.domain.states import DeliveryState
from campaigns.store.db import Database
from campaigns.store.tables import campaign_runs, deliveries, delivery_state_in


class ResultsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def last_runs(self) -> dict[int, dict[str, Any]]:
        """Each campaign's latest run (by id) with its counts: campaign id ->
        {run_id, status, occurrence, started_at, counts: {(channel, state): n}}."""
        latest = (
            select(func.max(campaign_runs.c.id).label("run_id"))
            .group_by(campaign_runs.c.campaign_id)
            .scalar_subquery()
        )
        with self.db.connect() as conn:
            runs = (
                conn.execute(
                    select(
                        campaign_runs.c.id,
                        campaign_runs.c.campaign_id,
                        campaign_runs.c.status,
                        campaign_runs.c.occurrence,
                        campaign_runs.c.started_at,
                    ).where(campaign_runs.c.id.in_(latest))
                )
                .mappings()
                .all()
            )
            counts = conn.execute(
                select(deliveries.c.run_id, deliveries.c.channel, deliveries.c.state, func.count())
                .where(deliveries.c.run_id.in_(latest))
                .group_by(deliveries.c.run_id, deliveries.c.channel, deliveries.c.state)
            ).all()
        found: dict[int, dict[str, Any]] = {}
        by_run: dict[int, dict[str, Any]] = {}
        for r in runs:
            entry = {
                "run_id": int(r["id"]),
                "status": r["status"],
                "occurrence": r["occurrence"],
                "started_at": r["started_at"],
                "counts": {},
            }
            found[int(r["campaign_id"])] = entry
            by_run[int(r["id"])] = entry
        for run_id, channel, state, n in counts:
            by_run[int(run_id)]["counts"][(channel, state)] = int(n)
        return found

    def pending_by_due(
        self, run_id: int, bucket_s: int, offset_s: int = 0
    ) -> list[tuple[datetime, str, int, datetime, int]]:
        """The run's pending deliveries grouped by when they are next due, in buckets of
        ``bucket_s`` seconds, and by why they wait (``kind``: ``retry`` after a provider
        error, ``held`` at send time for want of a lawful hour, else ``planned`` by
        fan-out): (bucket start, kind, n, first due instant, a delivery id), soonest first."""
        bucket = _bucket(self.db, deliveries.c.next_attempt_at, bucket_s, offset_s)
        kind = case(
            (deliveries.c.error_reason.is_not(None), "retry"),
            (deliveries.c.error_code.is_not(None), "retry"),
            (deliveries.c.next_attempt_at > deliveries.c.due_at, "held"),
            else_="planned",
        ).label("kind")
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    bucket,
                    kind,
                    func.count(),
                    func.min(deliveries.c.next_attempt_at),
                    func.min(deliveries.c.id),
                )
                .where(deliveries.c.run_id == run_id, delivery_state_in(DeliveryState.PENDING))
                .group_by(literal_column("bucket"), literal_column("kind"))
                .order_by(literal_column("bucket"), literal_column("kind"))
            ).all()
        return [(_instant(b), k, int(n), _aware(first), int(i)) for b, k, n, first, i in rows]

    def sent_span(self, run_id: int) -> tuple[datetime, datetime] | None:
        """The first and last instant a message of the run was handed over; None if none was."""
        with self.db.connect() as conn:
            first, last = conn.execute(
                select(func.min(deliveries.c.sent_at), func.max(deliveries.c.sent_at)).where(
                    deliveries.c.run_id == run_id, deliveries.c.sent_at.is_not(None)
                )
            ).one()
        if first is None or last is None:
            return None
        return _aware(first), _aware(last)

    def sent_over_time(
        self, run_id: int, bucket_s: int, offset_s: int = 0
    ) -> list[tuple[datetime, str, int]]:
        """(bucket start, channel, n) of the run's messages handed over, per bucket of
        ``bucket_s`` seconds, by ``sent_at``."""
        bucket = _bucket(self.db, deliveries.c.sent_at, bucket_s, offset_s)
        with self.db.connect() as conn:
            rows = conn.execute(
                select(bucket, deliveries.c.channel, func.count())
                .where(deliveries.c.run_id == run_id, deliveries.c.sent_at.is_not(None))
                .group_by(literal_column("bucket"), deliveries.c.channel)
                .order_by(literal_column("bucket"))
            ).all()
        return [(_instant(b), c, int(n)) for b, c, n in rows]

    def failures(self, run_id: int, limit: int = 20) -> list[tuple[str, str | None, str, int]]:
        """(state, error code, reason, n) of the run's failed and undelivered deliveries,
        the commonest first."""
        reason = func.coalesce(deliveries.c.error_reason, "")
        with self.db.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.state, deliveries.c.error_code, reason, func.count())
                .where(
                    deliveries.c.run_id == run_id,
                    deliveries.c.state.in_([DeliveryState.FAILED, DeliveryState.UNDELIVERED]),
                )
                .group_by(deliveries.c.state, deliveries.c.error_code, reason)
                .order_by(func.count().desc(), deliveries.c.state, deliveries.c.error_code)
                .limit(limit)
            ).all()
        return [(s, c, r, int(n)) for s, c, r, n in rows]

    def patient_of(self, delivery_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """delivery id -> (patient id, channel), for explaining a group by one of its own."""
        if not delivery_ids:
            return {}
        with self.db.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.patient_id, deliveries.c.channel).where(
                    deliveries.c.id.in_(list(delivery_ids))
                )
            ).all()
        return {int(i): (int(p), c) for i, p, c in rows}


def _epoch(db: Database, column: ColumnElement[Any]) -> ColumnElement[int]:
    """Whole seconds since the epoch of a stored UTC instant (naive UTC on both backends)."""
    if db.backend == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def _bucket(
    db: Database, column: ColumnElement[Any], bucket_s: int, offset_s: int
) -> ColumnElement[int]:
    """The start of the ``bucket_s``-second bucket (aligned ``offset_s`` ahead of UTC)
    an instant falls in, as seconds since the epoch, labelled ``bucket``. The sizes are
    literals, not parameters, so PostgreSQL sees the same expression in the GROUP BY."""
    size = literal_column(str(int(bucket_s)), Integer)
    shift = literal_column(str(int(offset_s)), Integer)
    return ((((_epoch(db, column) + shift) // size) * size) - shift).label("bucket")


def _instant(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def _aware(value: Any) -> datetime:
    """A min()/max() of an instant column: SQLAlchemy leaves the type decorator off
    aggregates on SQLite (a string comes back), so it is made an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
