"""Named SQL for what arrives from outside, and the inbox staff read it in.

``provider_sid`` is unique, so a webhook Twilio delivers twice stores one row; the
insert that loses says so instead of raising. The inbox groups inbound texts into a
thread per sending number, with the informational replies staff sent to it
(``staff_replies``); a message is open while it is flagged and nobody marked it done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.domain.models import StoredInbound
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import (
    campaign_runs,
    campaigns,
    deliveries,
    inbound_messages,
    patients,
    staff_replies,
)

InboxView = Literal["review", "booking", "all"]
_OPEN = and_(inbound_messages.c.flagged.is_(True), inbound_messages.c.reviewed_by.is_(None))


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
                    received_at,
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

    # the inbox -------------------------------------------------------------------------

    def open_count(self) -> int:
        """Inbound messages that need a person and nobody marked done."""
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(inbound_messages).where(_OPEN)
                ).scalar_one()
            )

    def open_messages(self) -> list[dict[str, Any]]:
        """(id, kind, received_at) of every message that needs a person."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    inbound_messages.c.id, inbound_messages.c.kind, inbound_messages.c.received_at
                ).where(_OPEN)
            ).mappings()
            return [dict(r) for r in rows]

    def threads(self, view: InboxView = "review", limit: int = 200) -> list[dict[str, Any]]:
        """One row per sending number: open threads first, then the latest.

        ``review``: threads with an open message; ``booking``: with an open booking
        request; ``all``: every thread. Each names its patients where known.
        """
        is_open = case((_OPEN, 1), else_=0)
        is_booking = case((and_(_OPEN, inbound_messages.c.kind == "booking"), 1), else_=0)
        query = (
            select(
                inbound_messages.c.from_phone,
                func.max(inbound_messages.c.id).label("last_id"),
                func.max(inbound_messages.c.received_at).label("last_at"),
                func.sum(is_open).label("open"),
                func.sum(is_booking).label("booking"),
                func.count().label("messages"),
            )
            .group_by(inbound_messages.c.from_phone)
            .order_by(func.sum(is_open).desc(), func.max(inbound_messages.c.id).desc())
            .limit(limit)
        )
        if view == "review":
            query = query.having(func.sum(is_open) > 0)
        elif view == "booking":
            query = query.having(func.sum(is_booking) > 0)
        with self.db.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            last = {
                int(r["id"]): dict(r)
                for r in conn.execute(
                    select(
                        inbound_messages.c.id,
                        inbound_messages.c.body,
                        inbound_messages.c.kind,
                        inbound_messages.c.actions,
                    ).where(inbound_messages.c.id.in_([r["last_id"] for r in rows]))
                ).mappings()
            }
            named = _patients_by_phone(conn, [r["from_phone"] for r in rows])
        for r in rows:
            r["open"] = int(r["open"] or 0)
            r["booking"] = int(r["booking"] or 0)
            r["last"] = last.get(int(r["last_id"]), {})
            r["patients"] = named.get(r["from_phone"], [])
        return rows

    def get(self, message_id: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(select(inbound_messages).where(inbound_messages.c.id == message_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def thread_messages(self, from_phone: str) -> list[dict[str, Any]]:
        """Every text from this number and every staff reply to it, oldest first."""
        with self.db.connect() as conn:
            received = [
                dict(r) | {"direction": "in", "at": r["received_at"]}
                for r in conn.execute(
                    select(inbound_messages).where(inbound_messages.c.from_phone == from_phone)
                ).mappings()
            ]
            sent = [
                dict(r) | {"direction": "out", "at": r["sent_at"]}
                for r in conn.execute(
                    select(staff_replies).where(staff_replies.c.to_phone == from_phone)
                ).mappings()
            ]
        return sorted(received + sent, key=lambda m: (m["at"], m["direction"], m["id"]))

    def thread_patients(self, from_phone: str) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            return _patients_by_phone(conn, [from_phone]).get(from_phone, [])

    def mark_done(self, from_phone: str, *, up_to_id: int, actor: str, at: datetime) -> int:
        """Mark the thread's open messages (up to ``up_to_id``) done; how many."""
        with self.db.begin() as conn:
            ids = list(
                conn.execute(
                    select(inbound_messages.c.id).where(
                        _OPEN,
                        inbound_messages.c.from_phone == from_phone,
                        inbound_messages.c.id <= up_to_id,
                    )
                ).scalars()
            )
            if not ids:
                return 0
            conn.execute(
                update(inbound_messages)
                .where(inbound_messages.c.id.in_(ids))
                .values(reviewed_by=actor, reviewed_at=at)
            )
            for message_id in ids:
                audit(conn, at, actor, "inbound.reviewed", "inbound_message", message_id)
            return len(ids)

    def add_reply(
        self,
        *,
        inbound_id: int,
        to_phone: str,
        body: str,
        sent_by: str,
        sent_at: datetime,
        state: str,
        provider_id: str | None,
        error: str | None,
    ) -> int:
        """Record a staff reply and audit it with the staff member (no number, no body)."""
        with self.db.begin() as conn:
            reply_id = int(
                conn.execute(
                    insert(staff_replies)
                    .values(
                        inbound_id=inbound_id,
                        to_phone=to_phone,
                        body=body,
                        sent_by=sent_by,
                        sent_at=sent_at,
                        state=state,
                        provider_id=provider_id,
                        error=error,
                    )
                    .returning(staff_replies.c.id)
                ).scalar_one()
            )
            audit(
                conn,
                sent_at,
                sent_by,
                "inbound.reply",
                "staff_reply",
                reply_id,
                inbound=inbound_id,
                state=state,
                provider_id=provider_id,
            )
            return reply_id

    def sent_to_patient(self, patient_id: int, limit: int = 200) -> list[dict[str, Any]]:
        """Every delivery to this patient, newest first, with its campaign's name."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.run_id,
                    campaigns.c.name.label("campaign"),
                    deliveries.c.channel,
                    deliveries.c.state,
                    deliveries.c.skip_reason,
                    deliveries.c.sent_at,
                    deliveries.c.updated_at,
                    deliveries.c.error_code,
                )
                .join(campaign_runs, campaign_runs.c.id == deliveries.c.run_id)
                .join(campaigns, campaigns.c.id == campaign_runs.c.campaign_id)
                .where(deliveries.c.patient_id == patient_id)
                .order_by(deliveries.c.id.desc())
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]


def _patients_by_phone(conn: Any, phones: list[str]) -> dict[str, list[dict[str, Any]]]:
    wanted = sorted({p for p in phones if p})
    found: dict[str, list[dict[str, Any]]] = {}
    if not wanted:
        return found
    rows = conn.execute(
        select(
            patients.c.phone,
            patients.c.id,
            patients.c.external_id,
            patients.c.first_name,
            patients.c.last_name,
            patients.c.sms_opt_in,
        )
        .where(patients.c.phone.in_(wanted))
        .order_by(patients.c.id)
    ).mappings()
    for r in rows:
        found.setdefault(str(r["phone"]), []).append(dict(r))
    return found
