"""Named SQL for patients: look-ups, and the audience a campaign picks.

The import's upsert is ``store.patient_import``'s; the repository hands it the batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, not_, or_, select

from campaigns.domain.models import PatientRecord, Recipient
from campaigns.domain.ports import Clock, utc_now
from campaigns.store.bulk import one_of
from campaigns.store.db import Database
from campaigns.store.patient_import import import_batches
from campaigns.store.tables import patients


class PatientRepository:
    def __init__(self, db: Database, clock: Clock = utc_now, booking_window_days: int = 14) -> None:
        self.db = db
        self.clock = clock
        self.booking_window_days = booking_window_days

    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int, int]:
        """(inserted, updated, imported opted out because the suppression list has their
        number or address); see ``store.patient_import``."""
        return import_batches(
            self.db,
            batches,
            now=self.clock(),
            booking_window_days=self.booking_window_days,
            dry_run=dry_run,
            actor=actor,
        )

    def find(self, external_id: str) -> Recipient | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(*_RECIPIENT_COLUMNS).where(patients.c.external_id == external_id)
            ).first()
        return None if row is None else Recipient(*row)

    def count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(patients)).scalar_one())

    def shared_contacts(self, channel: str) -> set[str]:
        """The numbers (sms) or addresses (email) on file for more than one patient:
        the only ones fan-out has to remember (one message per number per run)."""
        column = patients.c.phone if channel == "sms" else patients.c.email
        with self.db.connect() as conn:
            rows = conn.execute(
                select(column).where(column.is_not(None)).group_by(column).having(func.count() > 1)
            ).scalars()
            return {str(contact) for contact in rows}

    def stream_audience(
        self, audience: dict[str, Any], today: date, chunk: int = 1000
    ) -> Iterator[list[Recipient]]:
        """Yield matching recipients in id order, ``chunk`` at a time (keyset paging)."""
        where = _audience_clause(audience, today)
        last = 0
        while True:
            with self.db.connect() as conn:
                rows = conn.execute(
                    select(*_RECIPIENT_COLUMNS)
                    .where(and_(patients.c.id > last, *where))
                    .order_by(patients.c.id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield [Recipient(*r) for r in rows]
            last = rows[-1][0]

    def count_audience(self, audience: dict[str, Any], today: date) -> int:
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(patients)
                    .where(and_(*_audience_clause(audience, today)))
                ).scalar_one()
            )

    def tags_in_use(self) -> list[str]:
        """Every tag some patient has, sorted: what the audience builder offers."""
        with self.db.connect() as conn:
            stored = conn.execute(select(patients.c.tags).distinct()).scalars().all()
        return sorted({tag for tags in stored for tag in (tags or "").split(";") if tag})

    def states_in_use(self) -> list[str]:
        """Every address state some patient has, sorted."""
        with self.db.connect() as conn:
            found = conn.execute(
                select(patients.c.state).where(patients.c.state.is_not(None)).distinct()
            ).scalars()
            return sorted(str(s) for s in found)

    def recipients(self, patient_ids: Sequence[int]) -> dict[int, Recipient]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_RECIPIENT_COLUMNS).where(
                    one_of(self.db.backend, patients.c.id, patient_ids)
                )
            ).all()
        return {r[0]: Recipient(*r) for r in rows}


_RECIPIENT_COLUMNS = (
    patients.c.id,
    patients.c.external_id,
    patients.c.first_name,
    patients.c.last_name,
    patients.c.email,
    patients.c.phone,
    patients.c.timezone,
    patients.c.state,
    patients.c.preferred_channel,
    patients.c.sms_opt_in,
    patients.c.email_opt_in,
    patients.c.sms_consent_for,
    patients.c.email_consent_for,
)


def _has_tag(tag: str) -> Any:
    # Stored tags are lower-case (the importer folds them), and a campaign's are
    # compared the same way on every backend: LIKE ignores ASCII case on SQLite but
    # not on PostgreSQL. Escaped, so that "_" and "%" in a tag match only themselves.
    return patients.c.tags.contains(f";{tag.lower()};", autoescape=True)


def _audience_clause(audience: dict[str, Any], today: date) -> list[Any]:
    clauses: list[Any] = []
    tags_any = audience.get("tags_any") or []
    if tags_any:
        clauses.append(or_(*(_has_tag(t) for t in tags_any)))
    for tag in audience.get("tags_none") or []:
        clauses.append(not_(_has_tag(tag)))
    states = audience.get("states") or []
    if states:
        clauses.append(patients.c.state.in_([s.upper() for s in states]))
    within = audience.get("last_visit_within_days")
    if within is not None:
        clauses.append(patients.c.last_visit >= today - timedelta(days=int(within)))
    booked = audience.get("no_appointment_within_days")
    if booked is not None:
        clauses.append(
            or_(
                patients.c.next_appointment.is_(None),
                patients.c.next_appointment < today,
                patients.c.next_appointment > today + timedelta(days=int(booked)),
            )
        )
    return clauses
