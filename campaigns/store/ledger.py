"""Named SQL for runs and deliveries: the claim, the outcomes, the counts.

The claim is one conditional UPDATE: whoever flips a delivery from ``pending`` to
``sending`` owns it, and a redelivered task that loses the race does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.domain.models import Claimed, Outcome
from campaigns.store.audit import audit
from campaigns.store.bulk import insert_rows
from campaigns.store.db import Database
from campaigns.store.tables import campaign_runs, campaigns, deliveries

ACTIVE = ("pending", "sending", "unknown")


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    # runs ---------------------------------------------------------------
    def create_run(
        self,
        campaign_id: int,
        occurrence: str,
        trigger: str,
        status: str,
        now: datetime,
        *,
        actor: str,
    ) -> int | None:
        """Insert the run of one occurrence; None when that occurrence already has one."""
        try:
            with self.db.begin() as conn:
                run_id = int(
                    conn.execute(
                        insert(campaign_runs)
                        .values(
                            campaign_id=campaign_id,
                            occurrence=occurrence,
                            trigger=trigger,
                            status=status,
                            planned=0,
                            started_at=now,
                            finished_at=now if status == "missed" else None,
                        )
                        .returning(campaign_runs.c.id)
                    ).scalar_one()
                )
                audit(
                    conn,
                    actor,
                    f"run.{status}",
                    "run",
                    run_id,
                    campaign_id=campaign_id,
                    occurrence=occurrence,
                )
                return run_id
        except IntegrityError:
            return None

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(campaign_runs, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == campaign_runs.c.campaign_id)
                    .where(campaign_runs.c.id == run_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def runs_of(self, campaign_id: int) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(campaign_runs)
                    .where(campaign_runs.c.campaign_id == campaign_id)
                    .order_by(campaign_runs.c.id.desc())
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def last_occurrence(self, campaign_id: int) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(
                select(func.max(campaign_runs.c.occurrence)).where(
                    campaign_runs.c.campaign_id == campaign_id,
                    campaign_runs.c.trigger == "schedule",
                )
            ).scalar_one_or_none()

    def set_run_status(
        self, run_id: int, status: str, *, actor: str, only_from: Sequence[str] | None = None
    ) -> bool:
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            stmt = update(campaign_runs).where(campaign_runs.c.id == run_id)
            if only_from:
                stmt = stmt.where(campaign_runs.c.status.in_(list(only_from)))
            values: dict[str, Any] = {"status": status}
            if status in ("finished", "cancelled"):
                values["finished_at"] = now
            changed = conn.execute(stmt.values(values)).rowcount > 0
            if changed:
                audit(conn, actor, f"run.{status}", "run", run_id)
            return changed

    def finish_if_done(self, run_id: int) -> bool:
        """Mark a running run finished once nothing in it can still be sent."""
        still_open = (
            select(deliveries.c.id)
            .where(deliveries.c.run_id == run_id, deliveries.c.state.in_(ACTIVE))
            .limit(1)
        )
        # Asked after every batch: one row is enough, and no write lock for it.
        with self.db.connect() as conn:
            if conn.execute(still_open).first() is not None:
                return False
        with self.db.begin() as conn:
            if conn.execute(still_open).first() is not None:
                return False
            done = conn.execute(
                update(campaign_runs)
                .where(campaign_runs.c.id == run_id, campaign_runs.c.status == "running")
                .values(status="finished", finished_at=datetime.now(UTC))
            ).rowcount
            if done:
                audit(conn, "system", "run.finished", "run", run_id)
            return bool(done)

    def counts(self, run_id: int) -> list[tuple[str, str, str | None, int]]:
        """(channel, state, skip_reason, n) for every group in the run."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.channel,
                    deliveries.c.state,
                    deliveries.c.skip_reason,
                    func.count(),
                )
                .where(deliveries.c.run_id == run_id)
                .group_by(deliveries.c.channel, deliveries.c.state, deliveries.c.skip_reason)
            ).all()
        return [(c, s, r, int(n)) for c, s, r, n in rows]

    def running_runs(self) -> list[int]:
        return self.runs_in("running")

    # deliveries ---------------------------------------------------------
    def add_deliveries(self, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Bulk insert; a row already there (a re-run fan-out) is left as it is."""
        if not rows:
            return
        with self.db.begin() as conn:
            # Two fan-outs of one run (a lock that expired) take turns here, so the
            # second sees the first's rows instead of breaking the unique key.
            conn.execute(
                select(campaign_runs.c.id).where(campaign_runs.c.id == run_id).with_for_update()
            )
            existing = set(
                conn.execute(
                    select(deliveries.c.patient_id, deliveries.c.channel).where(
                        deliveries.c.run_id == run_id,
                        deliveries.c.patient_id.in_({r["patient_id"] for r in rows}),
                    )
                )
            )
            fresh = [
                {"skip_reason": None, **r, "next_attempt_at": r["due_at"]}
                for r in rows
                if (r["patient_id"], r["channel"]) not in existing
            ]
            if fresh:
                shared = {"run_id": run_id, "attempts": 0, "updated_at": datetime.now(UTC)}
                insert_rows(conn, deliveries, fresh, same=shared)
                conn.execute(
                    update(campaign_runs)
                    .where(campaign_runs.c.id == run_id)
                    .values(planned=campaign_runs.c.planned + len(fresh))
                )

    def stream_due_pending(
        self, run_id: int | None, *, not_after: datetime | None = None, chunk: int = 5000
    ) -> Iterator[list[tuple[int, datetime, int]]]:
        """(id, next_attempt_at, run_id) of pending deliveries in due order, by chunks."""
        last_due = datetime(1970, 1, 1, tzinfo=UTC)
        last_id = 0
        while True:
            cond = [
                deliveries.c.state == "pending",
                or_(
                    deliveries.c.next_attempt_at > last_due,
                    and_(deliveries.c.next_attempt_at == last_due, deliveries.c.id > last_id),
                ),
            ]
            if run_id is not None:
                cond.append(deliveries.c.run_id == run_id)
            else:
                running = select(campaign_runs.c.id).where(campaign_runs.c.status == "running")
                cond.append(deliveries.c.run_id.in_(running))
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
        """Flip pending -> sending for the ids that are due and whose run is running."""
        running = select(campaign_runs.c.id).where(campaign_runs.c.status == "running")
        with self.db.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.state == "pending",
                    deliveries.c.next_attempt_at <= now,
                    deliveries.c.run_id.in_(running),
                )
                .values(
                    state="sending",
                    claimed_at=now,
                    attempts=deliveries.c.attempts + 1,
                    updated_at=now,
                )
                .returning(
                    deliveries.c.id,
                    deliveries.c.run_id,
                    deliveries.c.patient_id,
                    deliveries.c.channel,
                    deliveries.c.attempts,
                    deliveries.c.due_at,
                )
            ).all()
        return sorted((Claimed(*r) for r in rows), key=lambda c: c.delivery_id)

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Write every outcome of a batch in one statement per kind."""
        if not outcomes:
            return
        stmt = (
            update(deliveries)
            .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state == "sending")
            .values(
                state=bindparam("b_state"),
                provider_id=bindparam("b_provider"),
                error_code=bindparam("b_code"),
                error_reason=bindparam("b_reason"),
                skip_reason=bindparam("b_skip"),
                sent_at=bindparam("b_sent"),
                next_attempt_at=func.coalesce(
                    bindparam("b_next", type_=deliveries.c.next_attempt_at.type),
                    deliveries.c.next_attempt_at,
                ),
                updated_at=now,
            )
        )
        params = [
            {
                "b_id": o.delivery_id,
                "b_state": o.state,
                "b_provider": o.provider_id,
                "b_code": o.error_code,
                "b_reason": o.error_reason,
                "b_skip": o.skip_reason,
                "b_sent": now if o.state == "sent" else None,
                "b_next": o.next_attempt_at,
            }
            for o in outcomes
        ]
        with self.db.begin() as conn:
            conn.execute(stmt, params)

    def analyze(self) -> None:
        """Refresh the planner's statistics of the deliveries table.

        Right after a fan-out the planner knows nothing of the new rows and answers
        the claim's ``id IN (...)`` from the (state, next_attempt_at) index, reading
        every due delivery per claim (500 ms against 13 ms on PostgreSQL)."""
        with self.db.begin() as conn:
            conn.exec_driver_sql("ANALYZE deliveries")

    def run_state(self, run_id: int) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(
                select(campaign_runs.c.status).where(campaign_runs.c.id == run_id)
            ).scalar_one_or_none()

    def runs_in(self, status: str, *, started_before: datetime | None = None) -> list[int]:
        cond = [campaign_runs.c.status == status]
        if started_before is not None:
            cond.append(campaign_runs.c.started_at < started_before)
        with self.db.connect() as conn:
            return [int(i) for i in conn.execute(select(campaign_runs.c.id).where(*cond)).scalars()]

    def touch_claims(self, ids: Sequence[int], now: datetime) -> int:
        """Renew claims still being worked on; returns how many are still ours."""
        if not ids:
            return 0
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == "sending")
                .values(claimed_at=now)
            ).rowcount

    def release(self, ids: Sequence[int], now: datetime) -> int:
        """Hand claims that were never sent back to pending, as if never claimed."""
        if not ids:
            return 0
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == "sending")
                .values(
                    state="pending",
                    claimed_at=None,
                    attempts=deliveries.c.attempts - 1,
                    updated_at=now,
                )
            ).rowcount

    def stale_claims(self, older_than: datetime, limit: int = 1000) -> list[Claimed]:
        """Claims whose outcome was never recorded: the worker died mid-send."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.run_id,
                    deliveries.c.patient_id,
                    deliveries.c.channel,
                    deliveries.c.attempts,
                    deliveries.c.due_at,
                )
                .where(deliveries.c.state == "sending", deliveries.c.claimed_at < older_than)
                .order_by(deliveries.c.id)
                .limit(limit)
            ).all()
        return [Claimed(*r) for r in rows]

    def mark_unknown(self, ids: Sequence[int], now: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == "sending")
                .values(state="unknown", updated_at=now)
            ).rowcount

    def unknown(self, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(deliveries)
                    .where(deliveries.c.state == "unknown")
                    .order_by(deliveries.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def resolve_unknown(
        self, delivery_id: int, *, sent_provider_id: str | None, now: datetime
    ) -> None:
        values: dict[str, Any] = (
            {"state": "sent", "provider_id": sent_provider_id, "sent_at": now}
            if sent_provider_id
            else {"state": "pending", "next_attempt_at": now}
        )
        with self.db.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.state == "unknown")
                .values(updated_at=now, **values)
            )

    def cancel_pending(self, run_id: int, now: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.run_id == run_id, deliveries.c.state == "pending")
                .values(state="skipped", skip_reason="cancelled", updated_at=now)
            ).rowcount

    def sent_since(
        self, patient_ids: Sequence[int], since: datetime, exclude_run: int
    ) -> dict[int, list[tuple[int, str, datetime]]]:
        """(run_id, channel, sent_at) of every message handed over to these patients
        since ``since``, other runs only: the facts the frequency caps count."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.patient_id,
                    deliveries.c.run_id,
                    deliveries.c.channel,
                    deliveries.c.sent_at,
                ).where(
                    deliveries.c.patient_id.in_(list(patient_ids)),
                    deliveries.c.sent_at >= since,
                    deliveries.c.run_id != exclude_run,
                )
            ).all()
        out: dict[int, list[tuple[int, str, datetime]]] = {}
        for pid, rid, ch, at in rows:
            out.setdefault(int(pid), []).append((int(rid), ch, at))
        return out

    def find_delivery_by_provider_id(self, provider_id: str) -> int | None:
        with self.db.connect() as conn:
            return conn.execute(
                select(deliveries.c.id).where(deliveries.c.provider_id == provider_id)
            ).scalar_one_or_none()

    def set_delivery_status(
        self, delivery_id: int, state: str, code: str | None, now: datetime
    ) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.state.in_(("sent", "delivered", "undelivered")),
                )
                .values(state=state, error_code=code, updated_at=now)
            )

    def overdue_pending(self, before: datetime) -> int:
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.state == "pending", deliveries.c.next_attempt_at < before)
                ).scalar_one()
            )
