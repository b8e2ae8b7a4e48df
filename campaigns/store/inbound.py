"""Named SQL for what arrives from outside: inbound texts and delivery reports.

``provider_sid`` is unique, so a webhook Twilio delivers twice stores one row; the
insert that loses says so instead of raising. Staff review of flagged messages
is the console's (``store.reports``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from campaigns.domain.models import StoredInbound
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import deliveries, inbound_messages


class InboundRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find_by_sid(self, provider_sid: str) -> StoredInbound | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(
                    inbound_messages.c.id,
                    inbound_messages.c.kind,
                    inbound_messages.c.flagged,
                    inbound_messages.c.patient_id,
                ).where(inbound_messages.c.provider_sid == provider_sid)
            ).first()
        return None if row is None else StoredInbound(int(row[0]), row[1], bool(row[2]), row[3])

    def add(
        self,
        *,
        provider_sid: str,
        from_phone: str,
        body: str,
        kind: str,
        flagged: bool,
        patient_ids: list[int],
        received_at: datetime,
        to_phone: str | None = None,
        actions: str | None = None,
        auto_reply: str | None = None,
    ) -> tuple[int, bool]:
        """Store one inbound message and audit it: (its id, whether this call stored it).

        A sid already stored (a redelivered webhook, perhaps racing this one) is left
        as it is. The row links a patient only when exactly one has the number; the
        audit event names every patient it matched.
        """
        try:
            with self.db.begin() as conn:
                inbound_id = int(
                    conn.execute(
                        insert(inbound_messages)
                        .values(
                            provider_sid=provider_sid,
                            from_phone=from_phone,
                            body=body,
                            patient_id=patient_ids[0] if len(patient_ids) == 1 else None,
                            kind=kind,
                            flagged=flagged,
                            received_at=received_at,
                            to_phone=to_phone or None,
                            actions=actions or None,
                            auto_reply=auto_reply,
                        )
                        .returning(inbound_messages.c.id)
                    ).scalar_one()
                )
                audit(
                    conn,
                    "patient" if patient_ids else "unknown-sender",
                    "inbound.receive",
                    "inbound_message",
                    inbound_id,
                    kind=kind,
                    flagged=flagged,
                    patients=sorted(patient_ids),
                )
                return inbound_id, True
        except IntegrityError:
            stored = self.find_by_sid(provider_sid)
            if stored is None:
                raise
            return stored.inbound_id, False

    def delivery_recipient(self, delivery_id: int) -> tuple[int, str] | None:
        """(patient_id, channel) of a delivery, for a status callback that names a patient."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(deliveries.c.patient_id, deliveries.c.channel).where(
                    deliveries.c.id == delivery_id
                )
            ).first()
        return None if row is None else (int(row[0]), str(row[1]))
