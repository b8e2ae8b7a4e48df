"""The audit log: who did what to which thing, and when, written in the caller's
transaction. The time is the caller's, from Meridian's clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert

from campaigns.store.tables import audit_events


def audit(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object = None,
    **detail: object,
) -> None:
    """Record who did what to which thing. ``detail`` holds ids and counts, never PHI."""
    conn.execute(
        insert(audit_events).values(
            at=at,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            detail=detail,
        )
    )
