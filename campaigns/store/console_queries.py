"""Named SQL for the staff console: what its pages read, and the few events it records.

Reads return plain dicts and tuples; the console never sees SQLAlchemy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, cast, func, or_, select, update

from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import (
    audit_events,
    campaign_runs,
    campaigns,
    deliveries,
    inbound_messages,
    patients,
)

# Deliveries in these states have an outcome; pending and sending do not yet.
OUTCOMES = ("sent", "delivered", "undelivered", "failed", "skipped", "unknown")


def recent_runs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs of every campaign, newest first, with the campaign's name."""
    with db.connect() as conn:
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


def audit_page(
    db: Database,
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
    with db.connect() as conn:
        rows = (
            conn.execute(
                select(audit_events).where(*cond).order_by(audit_events.c.id.desc()).limit(limit)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def flagged_inbound(
    db: Database, *, include_reviewed: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Inbound messages flagged for a person to read, newest first, with the patient's ids."""
    cond: list[Any] = [inbound_messages.c.flagged.is_(True)]
    if not include_reviewed:
        cond.append(inbound_messages.c.reviewed_by.is_(None))
    with db.connect() as conn:
        rows = (
            conn.execute(
                select(
                    inbound_messages,
                    patients.c.external_id,
                    patients.c.first_name,
                    patients.c.last_name,
                )
                .outerjoin(patients, patients.c.id == inbound_messages.c.patient_id)
                .where(*cond)
                .order_by(inbound_messages.c.received_at.desc(), inbound_messages.c.id.desc())
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def mark_reviewed(db: Database, message_id: int, *, actor: str) -> bool:
    """Record that ``actor`` read a flagged inbound message; False if there is none to mark."""
    with db.begin() as conn:
        changed = conn.execute(
            update(inbound_messages)
            .where(
                inbound_messages.c.id == message_id,
                inbound_messages.c.flagged.is_(True),
                inbound_messages.c.reviewed_by.is_(None),
            )
            .values(reviewed_by=actor)
        ).rowcount
        if changed:
            audit(conn, actor, "inbound.reviewed", "inbound_message", message_id)
        return bool(changed)


def record_staff_event(db: Database, actor: str, action: str, username: str) -> None:
    """Audit a staff account event (sign-in, sign-out, token, new user) in its own transaction."""
    with db.begin() as conn:
        audit(conn, actor, action, "staff", username)


def messages_per_day(db: Database, since: datetime) -> list[tuple[date, str, int]]:
    """(UTC day, state, n) of deliveries with an outcome, by the day they last changed."""
    day = (
        cast(deliveries.c.updated_at, Date)
        if db.backend != "sqlite"
        else func.date(deliveries.c.updated_at)
    )
    with db.connect() as conn:
        rows = conn.execute(
            select(day.label("day"), deliveries.c.state, func.count())
            .where(deliveries.c.updated_at >= since, deliveries.c.state.in_(OUTCOMES))
            .group_by(day, deliveries.c.state)
            .order_by(day)
        ).all()
    # SQLite's date() answers text, PostgreSQL a date.
    return [(d if isinstance(d, date) else date.fromisoformat(d), s, int(n)) for d, s, n in rows]


def search_patients(db: Database, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Patients whose external_id is ``query`` or whose last name starts with it."""
    text = query.strip()
    if not text:
        return []
    with db.connect() as conn:
        rows = (
            conn.execute(
                select(*_SUMMARY)
                .where(
                    or_(
                        patients.c.external_id == text,
                        func.lower(patients.c.last_name).startswith(text.lower(), autoescape=True),
                    )
                )
                .order_by(patients.c.last_name, patients.c.first_name, patients.c.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def patient(db: Database, patient_id: int) -> dict[str, Any] | None:
    """One patient's record as staff see it (contacts, tags, visits, cached consent)."""
    with db.connect() as conn:
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


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``: the bound ``messages_per_day`` takes."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


_SUMMARY = (
    patients.c.id,
    patients.c.external_id,
    patients.c.first_name,
    patients.c.last_name,
    patients.c.state,
    patients.c.sms_opt_in,
    patients.c.email_opt_in,
)
