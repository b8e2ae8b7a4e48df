"""Named SQL for campaign runs: one occurrence each, and its status.

Every status change is one conditional UPDATE from the states the state machine
(campaigns.domain.states) allows, so two callers racing to change a run never both
win. Times come from the caller (``svc.now()``), never from this module.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.domain.states import (
    ACTIVE_DELIVERY_STATES,
    FINAL_RUN_STATES,
    RunState,
    run_sources,
)
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import campaign_runs, campaigns, deliveries, delivery_state_in


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        campaign_id: int,
        occurrence: str,
        trigger: str,
        status: RunState,
        now: datetime,
        *,
        actor: str,
        template_version_id: int | None = None,
        variants: dict[str, Any] | None = None,
    ) -> int | None:
        """Insert the run of one occurrence, with the version of the copy it sends (None:
        the campaign's templates folder); None when that occurrence already has one."""
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
                            finished_at=now if status in FINAL_RUN_STATES else None,
                            template_version_id=template_version_id,
                            variants=variants,
                        )
                        .returning(campaign_runs.c.id)
                    ).scalar_one()
                )
                audit(
                    conn,
                    now,
                    actor,
                    f"run.{status}",
                    "run",
                    run_id,
                    campaign_id=campaign_id,
                    occurrence=occurrence,
                    template_version_id=template_version_id,
                    variants=variants,
                )
                return run_id
        except IntegrityError:
            return None

    def get(self, run_id: int) -> dict[str, Any] | None:
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

    def of_campaign(self, campaign_id: int) -> list[dict[str, Any]]:
        """The campaign's runs, newest first."""
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

    def set_status(
        self,
        run_id: int,
        status: RunState,
        now: datetime,
        *,
        actor: str,
        only_from: Collection[RunState] | None = None,
    ) -> bool:
        """Move the run to ``status`` if it is in ``only_from`` (default: any state the
        state machine allows it from). False when it was not."""
        sources = run_sources(status, only_from)
        values: dict[str, Any] = {"status": status}
        if status in FINAL_RUN_STATES:
            values["finished_at"] = now
        with self.db.begin() as conn:
            changed = (
                conn.execute(
                    update(campaign_runs)
                    .where(
                        campaign_runs.c.id == run_id,
                        campaign_runs.c.status.in_(sources),
                    )
                    .values(values)
                ).rowcount
                > 0
            )
            if changed:
                audit(conn, now, actor, f"run.{status}", "run", run_id)
            return changed

    def finish_if_done(self, run_id: int, now: datetime) -> bool:
        """Mark a running run finished once nothing in it can still be sent."""
        still_open = (
            select(deliveries.c.id)
            .where(
                deliveries.c.run_id == run_id,
                delivery_state_in(*ACTIVE_DELIVERY_STATES),
            )
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
                .where(
                    campaign_runs.c.id == run_id,
                    campaign_runs.c.status == RunState.RUNNING,
                )
                .values(status=RunState.FINISHED, finished_at=now)
            ).rowcount
            if done:
                audit(conn, now, "system", f"run.{RunState.FINISHED}", "run", run_id)
            return bool(done)

    def status(self, run_id: int) -> RunState | None:
        with self.db.connect() as conn:
            value = conn.execute(
                select(campaign_runs.c.status).where(campaign_runs.c.id == run_id)
            ).scalar_one_or_none()
        return None if value is None else RunState(value)

    def ids_with_status(
        self, status: RunState, *, started_before: datetime | None = None
    ) -> list[int]:
        cond = [campaign_runs.c.status == status]
        if started_before is not None:
            cond.append(campaign_runs.c.started_at < started_before)
        with self.db.connect() as conn:
            return [int(i) for i in conn.execute(select(campaign_runs.c.id).where(*cond)).scalars()]
