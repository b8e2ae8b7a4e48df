"""Named SQL for what staff read in the console (``svc.reports``), and the few events
they record there: staff account events. The inbox's reads and "mark done" are
campaigns.store.inbound's.

These reads span table families (runs with their campaign's name, deliveries, patients,
the audit log), so they live together here rather than in one table's repository.
They return plain dicts and tuples: the web never sees SQLAlchemy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, cast, func, or_, select

from campaigns.domain.ports import Clock, utc_now
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import (
    audit_events,
    campaign_runs,
    campaigns,
    deliveries,
    patients,
)

# Deliveries in these states have an outcome; pending and sending do not yet.
OUTCOMES = ("sent", "delivered", "undelivered", "failed", "skipped", "unknown")

_SUMMARY = (
    patients.c.id,
    patients.c.external_id,
    patients.c.first_name,
    patients.c.last_name,
    patients.c.state,
    patients.c.sms_opt_in,
    patients.c.email_opt_in,
)


class ReportRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    # runs and their outcomes ---------------------------------------------------------

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs of every campaign, newest first, with the campaign's name."""
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(campaign_runs, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == campaign_runs.c.campaign_id)
                    .order_by(campaign_runs.c.id.desc())
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def messages_per_day(self, first_day: date) -> list[tuple[date, str, int]]:
        """(UTC day, state, n) of deliveries with an outcome, by the day they last changed,
        from midnight UTC at the start of ``first_day`` on."""
        since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
        day = (
            cast(deliveries.c.updated_at, Date)
            if self.db.backend != "sqlite"
            else func.date(deliveries.c.updated_at)
        )
        with self.db.connect() as conn:
            rows = conn.execute(
                select(day.label("day"), deliveries.c.state, func.count())
                .where(deliveries.c.updated_at >= since, deliveries.c.state.in_(OUTCOMES))
                .group_by(day, deliveries.c.state)
                .order_by(day)
            ).all()
        # SQLite's date() answers text, PostgreSQL a date.
        return [
            (d if isinstance(d, date) else date.fromisoformat(d), s, int(n)) for d, s, n in rows
        ]

    # patients --------------------------------------------------------------------------

    def search_patients(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Patients whose external_id is ``query`` or whose last name starts with it."""
        text = query.strip()
        if not text:
            return []
        last_name = func.lower(patients.c.last_name)
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(*_SUMMARY)
                    .where(
                        or_(
                            patients.c.external_id == text,
                            last_name.startswith(text.lower(), autoescape=True),
                        )
                    )
                    .order_by(patients.c.last_name, patients.c.first_name, patients.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def pick_patients(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """The patient picker: external_id, first or last name, or "first last",
        starting with ``query`` (case-folded); at most ``limit``."""
        text = " ".join(query.split()).lower()
        if not text:
            return []
        first, last = func.lower(patients.c.first_name), func.lower(patients.c.last_name)
        full = func.lower(patients.c.first_name + " " + patients.c.last_name)
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(*_SUMMARY)
                    .where(
                        or_(
                            func.lower(patients.c.external_id).startswith(text, autoescape=True),
                            first.startswith(text, autoescape=True),
                            last.startswith(text, autoescape=True),
                            full.startswith(text, autoescape=True),
                        )
                    )
                    .order_by(patients.c.last_name, patients.c.first_name, patients.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def patient(self, patient_id: int) -> dict[str, Any] | None:
        """One patient's record as staff see it (contacts, tags, visits, cached consent)."""
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(
                        *_SUMMARY,
                        patients.c.email,
                        patients.c.phone,
                        patients.c.timezone,
                        patients.c.tags,
                        patients.c.last_visit,
                        patients.c.next_appointment,
                        patients.c.preferred_channel,
                        patients.c.created_at,
                        patients.c.updated_at,
                    ).where(patients.c.id == patient_id)
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        found = dict(row)
        found["tags"] = [t for t in str(found["tags"] or "").split(";") if t]
        return found

    # the audit log and staff events ----------------------------------------------------

    def audit_page(
        self,
        *,
        before_id: int | None = None,
        limit: int = 50,
        actor: str | None = None,
        action_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of the audit log, newest first; page on with ``before_id`` (keyset)."""
        cond: list[Any] = []
        if before_id is not None:
            cond.append(audit_events.c.id < before_id)
        if actor:
            cond.append(audit_events.c.actor == actor)
        if action_prefix:
            cond.append(audit_events.c.action.startswith(action_prefix, autoescape=True))
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(audit_events)
                    .where(*cond)
                    .order_by(audit_events.c.id.desc())
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def record_access(
        self, actor: str, action: str, patient_id: int | None, **detail: object
    ) -> None:
        """Audit who saw patient data (HIPAA §164.312(b)): a view, a search, a preview
        or an export. ``detail`` holds ids and counts, never what was shown."""
        with self.db.begin() as conn:
            audit(conn, self.clock(), actor, action, "patient", patient_id, **detail)

    def record_campaign_event(
        self, actor: str, action: str, campaign_id: int, **detail: object
    ) -> None:
        """Audit something done to a campaign on its own (a test send). ``detail`` holds
        ids, channels and counts, never an address or a message."""
        with self.db.begin() as conn:
            audit(conn, self.clock(), actor, action, "campaign", campaign_id, **detail)

    def record_staff_event(self, actor: str, action: str, username: str) -> None:
        """Audit a staff account event (sign-in, sign-out, token, new user) on its own."""
        with self.db.begin() as conn:
            audit(conn, self.clock(), actor, action, "staff", username)
