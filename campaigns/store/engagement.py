"""Named SQL for what patients did with a message (``svc.engagement``): the links a
message carried, the clicks on them, bookings per run, and a run's message log.

A click is kept once per delivery and link (INSERT ... ON CONFLICT DO NOTHING, on
SQLite and PostgreSQL alike), so a patient clicking twice counts once. Aggregates are
per run, optionally grouped by a column of ``deliveries`` (the channel, or the A/B
variant once deliveries carry one): ``engagement(run_ids, group_by="variant")``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, distinct, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import bookings, clicks, deliveries, links, patients


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class EngagementRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._link_ids: dict[str, int] = {}  # a URL's number never changes: kept per process

    def link_id(self, url: str, now: datetime) -> int:
        """The number of ``url`` in ``links``, stored on first sight."""
        known = self._link_ids.get(url)
        if known is not None:
            return known
        digest = hashlib.sha256(url.encode()).hexdigest()
        with self.db.begin() as conn:
            conn.execute(
                _insert(conn, links)
                .values(url_hash=digest, url=url, created_at=now)
                .on_conflict_do_nothing(index_elements=["url_hash"])
            )
            found = int(
                conn.execute(select(links.c.id).where(links.c.url_hash == digest)).scalar_one()
            )
        self._link_ids[url] = found
        return found

    def url_of(self, link_id: int) -> str | None:
        with self.db.connect() as conn:
            url = conn.execute(select(links.c.url).where(links.c.id == link_id)).scalar()
        return None if url is None else str(url)

    def delivery_exists(self, delivery_id: int) -> bool:
        with self.db.connect() as conn:
            found = conn.execute(select(deliveries.c.id).where(deliveries.c.id == delivery_id))
            return found.first() is not None

    def record_click(self, delivery_id: int, link_id: int, now: datetime) -> bool:
        """Record a click; False when this delivery's link was clicked before."""
        with self.db.begin() as conn:
            result = conn.execute(
                _insert(conn, clicks)
                .values(delivery_id=delivery_id, link_id=link_id, at=now)
                .on_conflict_do_nothing(index_elements=["delivery_id", "link_id"])
            )
        return bool(result.rowcount)

    def engagement(
        self, run_ids: Sequence[int], group_by: str | None = None
    ) -> dict[Any, dict[str, int]]:
        """Per run (or per (run, ``group_by`` value)): ``clicked`` deliveries with at
        least one click, ``clicks`` distinct links clicked, ``booked`` bookings
        attributed. ``group_by`` names a column of ``deliveries``."""
        if not run_ids:
            return {}
        keys = [deliveries.c.run_id]
        if group_by is not None:
            keys.append(deliveries.c[group_by])
        out: dict[Any, dict[str, int]] = {}

        def key(row: Sequence[Any]) -> Any:
            return int(row[0]) if group_by is None else (int(row[0]), row[1])

        with self.db.connect() as conn:
            for row in conn.execute(
                select(*keys, func.count(distinct(clicks.c.delivery_id)), func.count())
                .select_from(clicks.join(deliveries, deliveries.c.id == clicks.c.delivery_id))
                .where(deliveries.c.run_id.in_(list(run_ids)))
                .group_by(*keys)
            ):
                entry = out.setdefault(key(row), {"clicked": 0, "clicks": 0, "booked": 0})
                entry["clicked"], entry["clicks"] = int(row[-2]), int(row[-1])
            for row in conn.execute(
                select(*keys, func.count())
                .select_from(bookings.join(deliveries, deliveries.c.id == bookings.c.delivery_id))
                .where(deliveries.c.run_id.in_(list(run_ids)))
                .group_by(*keys)
            ):
                entry = out.setdefault(key(row), {"clicked": 0, "clicks": 0, "booked": 0})
                entry["booked"] = int(row[-1])
        return out

    def patients_by_variant(self, run_id: int) -> dict[str, dict[str, int]]:
        """Per A/B variant of the run (no variant: A): the patients who clicked any of
        their messages' links, and those with a booking attributed to one of them."""
        variant = func.coalesce(deliveries.c.variant, "A")
        out: dict[str, dict[str, int]] = {}
        with self.db.connect() as conn:
            for outcome, table in (("clicked", clicks), ("booked", bookings)):
                for letter, n in conn.execute(
                    select(variant, func.count(distinct(deliveries.c.patient_id)))
                    .select_from(table.join(deliveries, deliveries.c.id == table.c.delivery_id))
                    .where(deliveries.c.run_id == run_id)
                    .group_by(variant)
                ):
                    out.setdefault(str(letter), {"clicked": 0, "booked": 0})[outcome] = int(n)
        return out

    def message_log(self, run_id: int, chunk: int = 2000) -> Iterator[dict[str, Any]]:
        """The run's deliveries (sending.export.LOG_COLUMNS), in id order, read ``chunk`` at a time
        (keyset paging: a run of any size streams in constant memory)."""
        clicked = exists().where(clicks.c.delivery_id == deliveries.c.id)
        was_booked = exists().where(bookings.c.delivery_id == deliveries.c.id)
        last = 0
        while True:
            with self.db.connect() as conn:
                rows = (
                    conn.execute(
                        select(
                            deliveries.c.id.label("delivery_id"),
                            patients.c.external_id.label("patient_external_id"),
                            deliveries.c.channel,
                            deliveries.c.state,
                            deliveries.c.due_at,
                            deliveries.c.sent_at,
                            deliveries.c.updated_at,
                            deliveries.c.attempts,
                            deliveries.c.skip_reason,
                            deliveries.c.error_code,
                            clicked.label("clicked"),
                            was_booked.label("booked"),
                        )
                        .select_from(
                            deliveries.outerjoin(patients, patients.c.id == deliveries.c.patient_id)
                        )
                        .where(deliveries.c.run_id == run_id, deliveries.c.id > last)
                        .order_by(deliveries.c.id)
                        .limit(chunk)
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            yield from (dict(r) for r in rows)
            last = int(rows[-1]["delivery_id"])

    def audit_export(self, now: datetime, actor: str, run_id: int, what: str) -> None:
        with self.db.begin() as conn:
            audit(conn, now, actor, "run.export", "campaign_run", run_id, what=what)
