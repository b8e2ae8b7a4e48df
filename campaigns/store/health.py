"""Named SQL for health and metrics: a ping, the migration head, counts by state.

Counts only: nothing here returns a patient's name, contact or message.
"""

from __future__ import annotations

from sqlalchemy import func, select, text

from campaigns.store.db import Database
from campaigns.store.tables import audit_events, deliveries


class HealthRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ping(self) -> None:
        """One round trip; raises if the database does not answer."""
        with self.db.connect() as conn:
            conn.execute(text("SELECT 1"))

    def migrations(self) -> tuple[str | None, str | None]:
        """(the revision the database is at, the newest this code knows)."""
        return self.db.revisions()

    def deliveries_by_channel_and_state(self) -> list[tuple[str, str, int]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.channel, deliveries.c.state, func.count()).group_by(
                    deliveries.c.channel, deliveries.c.state
                )
            ).all()
        return [(str(c), str(s), int(n)) for c, s, n in rows]

    def imported_rows(self) -> dict[str, int]:
        """Patients inserted and updated by every import that was written (not dry runs)."""
        totals = {"inserted": 0, "updated": 0}
        with self.db.connect() as conn:
            details = conn.execute(
                select(audit_events.c.detail).where(audit_events.c.action == "patients.import")
            ).scalars()
            for detail in details:
                if not detail or detail.get("dry_run"):
                    continue
                for key in totals:
                    totals[key] += int(detail.get(key) or 0)
        return totals
