"""Named SQL for the suppression list: numbers and addresses nothing may be sent to.

Keyed by (channel, address), separate from patients: a STOP from a number no
patient has yet is kept, and a patient imported later with that number is imported
opted out. Rows are append-only evidence (triggers refuse UPDATE and DELETE): a row
suppresses or lifts, and the latest row of an address decides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select

from campaigns.domain.models import Channel
from campaigns.domain.ports import Clock, utc_now
from campaigns.store.audit import audit
from campaigns.store.bulk import one_of
from campaigns.store.db import Database
from campaigns.store.tables import suppressions

# Bound parameters per IN list: well under SQLite's limit of 32,766.
_CHUNK = 900


@dataclass(frozen=True)
class Suppression:
    """One suppression-list row: what, when, who, and the message (PHI: never log it)."""

    id: int
    channel: str
    address: str
    suppressed: bool
    reason: str
    at: datetime
    actor: str
    evidence: str | None
    inbound_id: int | None
    patient_id: int | None


class SuppressionRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def add(
        self,
        channel: Channel,
        address: str,
        *,
        suppressed: bool,
        reason: str,
        actor: str,
        at: datetime,
        evidence: str | None = None,
        inbound_id: int | None = None,
        patient_id: int | None = None,
    ) -> int:
        """Append a row that suppresses (or lifts) ``address``; audited without it."""
        with self.db.begin() as conn:
            return add_suppression(
                conn,
                channel,
                address,
                suppressed=suppressed,
                reason=reason,
                actor=actor,
                at=at,
                evidence=evidence,
                inbound_id=inbound_id,
                patient_id=patient_id,
                now=self.clock(),
            )

    def suppressed(self, channel: Channel, addresses: Iterable[str | None]) -> set[str]:
        """The addresses among ``addresses`` that are suppressed now."""
        with self.db.connect() as conn:
            return suppressed_among(conn, channel, addresses)

    def suppressed_why(self, channel: Channel, addresses: Iterable[str | None]) -> dict[str, str]:
        """address -> the reason it is suppressed, for the addresses suppressed now."""
        with self.db.connect() as conn:
            return suppression_reasons(conn, channel, addresses)

    def current(self, channel: Channel, address: str) -> Suppression | None:
        """The latest row for ``address`` (suppressing or lifting), or None."""
        rows = self.history(channel, address)
        return rows[-1] if rows else None

    def history(self, channel: Channel, address: str) -> list[Suppression]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_COLUMNS)
                .where(suppressions.c.channel == channel, suppressions.c.address == address)
                .order_by(suppressions.c.id)
            ).all()
        return [_suppression(r) for r in rows]

    def listing(self, *, limit: int = 200) -> list[Suppression]:
        """The addresses suppressed now, newest first (for staff)."""
        with self.db.connect() as conn:
            rows = conn.execute(select(*_COLUMNS).order_by(suppressions.c.id)).all()
        latest: dict[tuple[str, str], Suppression] = {}
        for r in rows:
            row = _suppression(r)
            latest[(row.channel, row.address)] = row
        now = [s for s in latest.values() if s.suppressed]
        return sorted(now, key=lambda s: s.id, reverse=True)[:limit]


_COLUMNS = (
    suppressions.c.id,
    suppressions.c.channel,
    suppressions.c.address,
    suppressions.c.suppressed,
    suppressions.c.reason,
    suppressions.c.at,
    suppressions.c.actor,
    suppressions.c.evidence,
    suppressions.c.inbound_id,
    suppressions.c.patient_id,
)


def _suppression(r: Any) -> Suppression:
    return Suppression(
        id=int(r[0]),
        channel=str(r[1]),
        address=str(r[2]),
        suppressed=bool(r[3]),
        reason=str(r[4]),
        at=r[5],
        actor=str(r[6]),
        evidence=r[7],
        inbound_id=r[8],
        patient_id=r[9],
    )


def add_suppression(
    conn: Connection,
    channel: Channel,
    address: str,
    *,
    suppressed: bool,
    reason: str,
    actor: str,
    at: datetime,
    evidence: str | None = None,
    inbound_id: int | None = None,
    patient_id: int | None = None,
    now: datetime,
) -> int:
    """Append one row, recorded at ``now`` (Meridian's clock), and audit it."""
    row_id = int(
        conn.execute(
            insert(suppressions)
            .values(
                channel=channel,
                address=address,
                suppressed=suppressed,
                reason=reason,
                at=at,
                actor=actor,
                evidence=evidence,
                inbound_id=inbound_id,
                patient_id=patient_id,
                recorded_at=now,
            )
            .returning(suppressions.c.id)
        ).scalar_one()
    )
    audit(
        conn,
        now,
        actor,
        "suppression.add" if suppressed else "suppression.lift",
        "suppression",
        row_id,
        channel=channel,
        reason=reason,
        inbound=inbound_id,
        patient=patient_id,
    )
    return row_id


def suppressed_among(
    conn: Connection, channel: Channel, addresses: Iterable[str | None]
) -> set[str]:
    """The addresses among ``addresses`` whose latest row suppresses them."""
    return set(suppression_reasons(conn, channel, addresses))


def suppression_reasons(
    conn: Connection, channel: Channel, addresses: Iterable[str | None]
) -> dict[str, str]:
    """address -> reason, for the addresses among ``addresses`` whose latest row
    suppresses them."""
    wanted = sorted({a for a in addresses if a})
    latest: dict[str, tuple[int, bool, str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        rows = conn.execute(
            select(
                suppressions.c.address,
                suppressions.c.id,
                suppressions.c.suppressed,
                suppressions.c.reason,
            ).where(
                suppressions.c.channel == channel,
                one_of(conn.dialect.name, suppressions.c.address, part),
            )
        )
        for address, row_id, suppressed, reason in rows:
            seen = latest.get(address)
            if seen is None or row_id > seen[0]:
                latest[address] = (int(row_id), bool(suppressed), str(reason))
    return {a: reason for a, (_, suppressed, reason) in latest.items() if suppressed}


def suppressed_on_channels(
    conn: Connection, addresses: Mapping[Channel, Iterable[str | None]]
) -> dict[Channel, set[str]]:
    """For each channel, the addresses among its ``addresses`` whose latest row
    suppresses them: one query, with one parameter per channel (``bulk.one_of``)."""
    wanted = {channel: sorted({a for a in found if a}) for channel, found in addresses.items()}
    if not any(wanted.values()):
        return {channel: set() for channel in wanted}
    rows = conn.execute(
        select(suppressions.c.channel, suppressions.c.address, suppressions.c.suppressed)
        .where(
            or_(
                *(
                    and_(
                        suppressions.c.channel == channel,
                        one_of(conn.dialect.name, suppressions.c.address, found, f"in_{channel}"),
                    )
                    for channel, found in wanted.items()
                )
            )
        )
        .order_by(suppressions.c.id)
    )
    latest = {(str(channel), str(address)): bool(said) for channel, address, said in rows}
    return {
        channel: {a for (c, a), said in latest.items() if c == channel and said}
        for channel in wanted
    }


def latest_rows(
    conn: Connection, channel: Channel, addresses: Collection[str]
) -> dict[str, Suppression]:
    """The latest row of each address that has one (suppressing or lifting)."""
    found: dict[str, Suppression] = {}
    wanted = sorted(set(addresses))
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        rows = conn.execute(
            select(*_COLUMNS)
            .where(suppressions.c.channel == channel, suppressions.c.address.in_(part))
            .order_by(suppressions.c.id)
        )
        for r in rows:
            found[r[2]] = _suppression(r)
    return found
