"""Named SQL that reads the delivery ledger and changes nothing (``svc.delivery_queries``).

What was sent to whom, for the frequency caps (per patient, and per number or
address), which delivery a provider's id belongs to, and how far a run has got (its
counts, the work a worker should be at). The claim, the outcomes and the way back to
pending are in campaigns.store.deliveries. Times come from the caller (``svc.now()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from campaigns.domain.states import DeliveryState
from campaigns.store.db import Database
from campaigns.store.tables import deliveries, patients


class DeliveryQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

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
        with self.db.connect() as conn:
            for start in range(0, len(wanted), 900):
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
                        column.in_(wanted[start : start + 900]),
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
