"""Named SQL for delivery reports: bounces, complaints, refusals, SMS error codes.

Each report is kept once per (source, report_id), so a mailbox read twice or a
webhook delivered twice decides nothing twice. No address in clear: soft bounces
are counted by ``address_key`` (an HMAC of the address).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from campaigns.store.db import Database
from campaigns.store.tables import deliveries, delivery_reports


@dataclass(frozen=True)
class DeliveryReport:
    """One report and the decision taken on it (no address: PHI)."""

    id: int
    delivery_id: int | None
    channel: str
    kind: str
    status: str | None
    source: str
    report_id: str
    decision: str
    at: datetime


class DeliveryReportRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def seen(self, source: str, report_id: str) -> bool:
        with self.db.connect() as conn:
            found = conn.execute(
                select(delivery_reports.c.id).where(
                    delivery_reports.c.source == source,
                    delivery_reports.c.report_id == report_id,
                )
            ).first()
        return found is not None

    def add(
        self,
        *,
        delivery_id: int | None,
        channel: str,
        kind: str,
        status: str | None,
        source: str,
        report_id: str,
        address_key: str | None,
        decision: str,
        at: datetime,
    ) -> int | None:
        """Keep one report; None when (source, report_id) was already kept."""
        try:
            with self.db.begin() as conn:
                return int(
                    conn.execute(
                        insert(delivery_reports)
                        .values(
                            delivery_id=delivery_id,
                            channel=channel,
                            kind=kind,
                            status=(status or None) and status[:32],
                            source=source,
                            report_id=report_id[:255],
                            address_key=address_key,
                            decision=decision,
                            at=at,
                        )
                        .returning(delivery_reports.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            return None

    def count(self, address_key: str, kind: str) -> int:
        """Reports of ``kind`` kept for one address."""
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        delivery_reports.c.address_key == address_key,
                        delivery_reports.c.kind == kind,
                    )
                ).scalar_one()
            )

    def for_run(self, run_id: int) -> list[DeliveryReport]:
        """The reports on a run's deliveries, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_COLUMNS)
                .join(deliveries, deliveries.c.id == delivery_reports.c.delivery_id)
                .where(deliveries.c.run_id == run_id)
                .order_by(delivery_reports.c.id)
            ).all()
        return [_report(r) for r in rows]

    def recent(self, *, limit: int = 100) -> list[DeliveryReport]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_COLUMNS).order_by(delivery_reports.c.id.desc()).limit(limit)
            ).all()
        return [_report(r) for r in rows]


_COLUMNS = (
    delivery_reports.c.id,
    delivery_reports.c.delivery_id,
    delivery_reports.c.channel,
    delivery_reports.c.kind,
    delivery_reports.c.status,
    delivery_reports.c.source,
    delivery_reports.c.report_id,
    delivery_reports.c.decision,
    delivery_reports.c.at,
)


def _report(r: Any) -> DeliveryReport:
    return DeliveryReport(
        id=int(r[0]),
        delivery_id=None if r[1] is None else int(r[1]),
        channel=str(r[2]),
        kind=str(r[3]),
        status=r[4],
        source=str(r[5]),
        report_id=str(r[6]),
        decision=str(r[7]),
        at=r[8],
    )
