"""Named SQL that reads the delivery ledger and changes nothing (``svc.delivery_queries``).

What was sent to whom, for the frequency caps (per patient, and per number or
address), which delivery a provider's id belongs to, and how far a run has got (its
counts, the work a worker should be at). The claim, the outcomes and the way back to
pending are in campaigns.store.deliveries. Times come from the caller (``svc.now()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, column, func, or_, select, text

from campaigns.domain.states import ACTIVE_DELIVERY_STATES, DeliveryState
from campaigns.store.bulk import one_of
from campaigns.store.db import Database
from campaigns.store.tables import deliveries, delivery_state_in, patients

# PostgreSQL: the caps' reads go patient by patient (and number by number) through the
# indexes, as LATERAL subqueries the planner cannot flatten (OFFSET 0). Written as IN
# lists, a table whose statistics are stale (a run just written; a million rows
# imported) made each slice read the whole deliveries table: the planner takes an
# unanalysed column's IN list of a few hundred values for most of the table.
_SENT_SINCE_PG_SQL = """
    SELECT t.patient_id, d.run_id, d.channel, d.sent_at
    FROM unnest(CAST(:patient_ids AS bigint[])) AS t(patient_id)
    CROSS JOIN LATERAL (
        SELECT run_id, channel, sent_at FROM deliveries
        WHERE deliveries.patient_id = t.patient_id AND deliveries.sent_at >= :since
        OFFSET 0
    ) AS d
    WHERE d.run_id <> :exclude_run
    """
_SENT_TO_CONTACTS_PG = """
    SELECT p.contact, d.patient_id, d.run_id, d.channel, d.sent_at
    FROM unnest(CAST(:contacts AS text[])) AS t(contact)
    CROSS JOIN LATERAL (
        SELECT id, {column} AS contact FROM patients WHERE {column} = t.contact OFFSET 0
    ) AS p
    CROSS JOIN LATERAL (
        SELECT patient_id, run_id, channel, sent_at FROM deliveries
        WHERE deliveries.patient_id = p.id AND deliveries.sent_at >= :since
          AND deliveries.channel = :channel
        OFFSET 0
    ) AS d
    """


def _typed(sql: str, *leading: Any) -> Any:
    """``sql`` with the ledger's own types on its results and its time bound (stored
    times are UTC-aware only through their column type)."""
    return (
        text(sql)
        .bindparams(bindparam("since", type_=deliveries.c.sent_at.type))
        .columns(
            *leading,
            deliveries.c.patient_id,
            deliveries.c.run_id,
            deliveries.c.channel,
            deliveries.c.sent_at,
        )
    )


_SENT_SINCE_PG = _typed(_SENT_SINCE_PG_SQL)
_SENT_TO_CONTACTS = {
    "sms": _typed(_SENT_TO_CONTACTS_PG.format(column="phone"), column("contact", String)),
    "email": _typed(_SENT_TO_CONTACTS_PG.format(column="email"), column("contact", String)),
}


class DeliveryQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def sent_since(
        self, patient_ids: Sequence[int], since: datetime, exclude_run: int
    ) -> dict[int, list[tuple[int, str, datetime]]]:
        """(run_id, channel, sent_at) of every message handed over to these patients
        since ``since``, other runs only: the facts the frequency caps count."""
        if self.db.backend == "postgresql":
            with self.db.connect() as conn:
                found = conn.execute(
                    _SENT_SINCE_PG,
                    {
                        "patient_ids": sorted(set(patient_ids)),
                        "since": since,
                        "exclude_run": exclude_run,
                    },
                ).all()
            return _by_patient(found)
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.patient_id,
                    deliveries.c.run_id,
                    deliveries.c.channel,
                    deliveries.c.sent_at,
                ).where(
                    one_of(self.db.backend, deliveries.c.patient_id, sorted(set(patient_ids))),
                    deliveries.c.sent_at >= since,
                    deliveries.c.run_id != exclude_run,
                )
            ).all()
        return _by_patient(rows)

    def sent_to_contacts(
        self, channel: str, contacts: Sequence[str], since: datetime
    ) -> dict[str, list[tuple[int, int, str, datetime]]]:
        """(patient_id, run_id, channel, sent_at) of every message on ``channel``
        handed over since ``since`` to a patient whose number (sms) or address (email)
        is now one of ``contacts``, this run's included, by that number or address:
        the per-number caps and the one-message-per-occurrence rule count them."""
        wanted = sorted(set(contacts))
        if not wanted:
            return {}
        column = patients.c.phone if channel == "sms" else patients.c.email
        out: dict[str, list[tuple[int, int, str, datetime]]] = {}
        if self.db.backend == "postgresql":
            with self.db.connect() as conn:
                found = conn.execute(
                    _SENT_TO_CONTACTS[channel],
                    {"contacts": wanted, "since": since, "channel": channel},
                ).all()
            for contact, pid, rid, ch, at in found:
                out.setdefault(str(contact), []).append((int(pid), int(rid), ch, at))
            return out
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    column,
                    deliveries.c.patient_id,
                    deliveries.c.run_id,
                    deliveries.c.channel,
                    deliveries.c.sent_at,
                )
                .join(patients, patients.c.id == deliveries.c.patient_id)
                .where(
                    one_of(self.db.backend, column, wanted),
                    deliveries.c.channel == channel,
                    deliveries.c.sent_at >= since,
                )
            ).all()
        for contact, pid, rid, ch, at in rows:
            out.setdefault(str(contact), []).append((int(pid), int(rid), ch, at))
        return out

    def find_by_provider_id(self, provider_id: str) -> int | None:
        with self.db.connect() as conn:
            return conn.execute(
                select(deliveries.c.id).where(deliveries.c.provider_id == provider_id)
            ).scalar_one_or_none()

    def due_work(self, run_id: int, now: datetime) -> int:
        """Deliveries of the run a worker should be at now: pending and due, or claimed."""
        with self.db.connect() as conn:
            n = conn.execute(
                select(func.count()).where(
                    deliveries.c.run_id == run_id,
                    # implied by the next term; written out, it lets SQLite read the
                    # run's open rows alone (ix_deliveries_open)
                    delivery_state_in(*ACTIVE_DELIVERY_STATES),
                    or_(
                        and_(
                            deliveries.c.state == DeliveryState.PENDING,
                            deliveries.c.next_attempt_at <= now,
                        ),
                        deliveries.c.state == DeliveryState.SENDING,
                    ),
                )
            ).scalar_one()
        return int(n)

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


def _by_patient(rows: Sequence[Any]) -> dict[int, list[tuple[int, str, datetime]]]:
    out: dict[int, list[tuple[int, str, datetime]]] = {}
    for pid, rid, ch, at in rows:
        out.setdefault(int(pid), []).append((int(rid), ch, at))
    return out
