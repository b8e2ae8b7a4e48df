"""Bookings: a patient's next appointment changing to a future date, as an event.

The time of the change is the booking time. A booking is attributed to the run of
the patient's latest delivery sent (or delivered) within the booking window before
it (MERIDIAN_BOOKING_WINDOW_DAYS); a booking with no such delivery is still kept,
attributed to nothing, so that the figure "booked without a message" stays honest.
Written in the caller's transaction: the CSV re-import's and the API's PATCH.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, select, update

from campaigns.domain.ports import Clock
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import bookings, deliveries, patients

SOURCES = ("csv-import", "api")


class BookingRepository:
    """A patient's next appointment set one at a time (the API's PATCH)."""

    def __init__(self, db: Database, clock: Clock, booking_window_days: int) -> None:
        self.db = db
        self.clock = clock
        self.booking_window_days = booking_window_days

    def set_next_appointment(self, patient_id: int, appointment: date | None, actor: str) -> bool:
        """Set a patient's next appointment; a new future date is a booking
        (store.bookings). False when there is no such patient."""
        now = self.clock()
        with self.db.begin() as conn:
            before = appointments_of(conn, [patient_id])
            if patient_id not in before:
                return False
            conn.execute(
                update(patients)
                .where(patients.c.id == patient_id)
                .values(next_appointment=appointment, updated_at=now)
            )
            new = appointment is not None and booked(before[patient_id], appointment, now.date())
            if new and appointment is not None:
                record_bookings(
                    conn,
                    {patient_id: appointment},
                    now=now,
                    window_days=self.booking_window_days,
                    source="api",
                )
            audit(conn, now, actor, "patient.appointment", "patient", patient_id, booking=new)
        return True


def appointments_of(conn: Connection, patient_ids: Sequence[int]) -> dict[int, date | None]:
    """Each patient's next appointment as the ledger has it now."""
    if not patient_ids:
        return {}
    rows = conn.execute(
        select(patients.c.id, patients.c.next_appointment).where(
            patients.c.id.in_(list(patient_ids))
        )
    )
    return {int(pid): appt for pid, appt in rows}


def booked(before: date | None, after: date | None, today: date) -> bool:
    """Whether a change of next appointment from ``before`` to ``after`` is a booking:
    a new date, in the future."""
    return after is not None and after != before and after > today


def record_bookings(
    conn: Connection,
    changes: Mapping[int, date],
    *,
    now: datetime,
    window_days: int,
    source: str,
) -> int:
    """Record a booking for each patient id -> new appointment, attributed to the
    latest delivery sent within ``window_days`` before ``now``; how many were."""
    if not changes:
        return 0
    since = now - timedelta(days=window_days)
    latest = (
        select(deliveries.c.patient_id, func.max(deliveries.c.sent_at).label("sent_at"))
        .where(
            deliveries.c.patient_id.in_(list(changes)),
            deliveries.c.sent_at.is_not(None),
            deliveries.c.sent_at >= since,
            deliveries.c.sent_at <= now,
        )
        .group_by(deliveries.c.patient_id)
        .subquery()
    )
    found = conn.execute(
        select(deliveries.c.patient_id, deliveries.c.id, deliveries.c.run_id)
        .join(
            latest,
            and_(
                deliveries.c.patient_id == latest.c.patient_id,
                deliveries.c.sent_at == latest.c.sent_at,
            ),
        )
        .order_by(deliveries.c.id)
    ).all()
    attributed: dict[int, tuple[int, int]] = {}
    for pid, did, rid in found:
        attributed[int(pid)] = (int(did), int(rid))  # the same instant: the later id
    rows = [
        {
            "patient_id": pid,
            "appointment": appointment,
            "booked_at": now,
            "source": source,
            "delivery_id": attributed.get(pid, (None, None))[0],
            "run_id": attributed.get(pid, (None, None))[1],
        }
        for pid, appointment in changes.items()
    ]
    conn.execute(insert(bookings), rows)
    return len(rows)
