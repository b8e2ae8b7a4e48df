"""Named SQL for patients: the import's upsert, look-ups, and the audience a campaign picks.

A new patient's consent evidence is written with its row; an existing patient's
goes through ``store.consent.append_consents``, which keeps the opt-in cache true.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    any_,
    bindparam,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from campaigns.domain.models import ConsentFact, PatientRecord, Recipient
from campaigns.domain.ports import Clock, utc_now
from campaigns.store.audit import audit
from campaigns.store.bookings import appointments_of, booked, record_bookings
from campaigns.store.bulk import insert_rows
from campaigns.store.consent import append_consents, consent_row, distinct_facts, latest_words
from campaigns.store.db import Database
from campaigns.store.schema import one_of
from campaigns.store.suppression import latest_rows, suppressed_among
from campaigns.store.tables import consents, patients

# The source of the revocation an import records for a patient whose number or
# address is on the suppression list.
SUPPRESSION_SOURCE = "suppression-list"


class PatientRepository:
    def __init__(self, db: Database, clock: Clock = utc_now, booking_window_days: int = 14) -> None:
        self.db = db
        self.clock = clock
        self.booking_window_days = booking_window_days

    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int, int]:
        """(inserted, updated, imported opted out because the suppression list has their
        number or address)."""
        inserted = updated = suppressed = 0
        now = self.clock()
        conn = self.db.engine.connect().execution_options(meridian_write=True)
        trans = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                # psycopg prepares a statement run five times, and PostgreSQL may then
                # keep a generic plan made while the table was empty: a sequential scan
                # per batch once it is not, 300 s for 100,000 patients instead of 2 s.
                conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
            for batch in batches:
                i, u, s = self._upsert(conn, batch, now)
                inserted += i
                updated += u
                suppressed += s
            audit(
                conn,
                now,
                actor,
                "patients.import",
                "patients",
                None,
                inserted=inserted,
                updated=updated,
                suppressed=suppressed,
                dry_run=dry_run,
            )
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
        except BaseException:
            if trans.is_active:
                trans.rollback()
            raise
        finally:
            conn.close()
        return inserted, updated, suppressed

    def _upsert(
        self, conn: Connection, batch: Sequence[PatientRecord], now: datetime
    ) -> tuple[int, int, int]:
        existing = _ids_of(conn, [r.external_id for r in batch])
        new = [r for r in batch if r.external_id not in existing]
        old = [r for r in batch if r.external_id in existing]
        if new:
            # A new patient's evidence is all in this file: its opt-in columns are
            # written with the row, and its consents need no lock and no read-back.
            rows = []
            for r in new:
                words = latest_words(r.consents, {"sms": r.phone, "email": r.email})
                sms, email = words.get("sms"), words.get("email")
                rows.append(
                    _fields(r)
                    | {
                        "sms_opt_in": sms[0] if sms else None,
                        "sms_consent_for": sms[1] if sms else None,
                        "email_opt_in": email[0] if email else None,
                        "email_consent_for": email[1] if email else None,
                    }
                )
            insert_rows(conn, patients, rows, same={"created_at": now, "updated_at": now})
            # Read back rather than INSERT ... RETURNING, which PostgreSQL takes three
            # times as long over (make bench, 1,000-row batches).
            ids = _ids_of(conn, [r.external_id for r in new])
            evidence = [
                consent_row(ids[r.external_id], fact, _address(r, fact))
                for r in new
                for fact in distinct_facts(r.consents)
            ]
            insert_rows(
                conn, consents, evidence, same={"recorded_by": "import", "recorded_at": now}
            )
        if old:
            before = appointments_of(conn, [existing[r.external_id] for r in old])
            updates = [_fields(r) | {"updated_at": now} for r in old]
            stmt = (
                update(patients)
                .where(patients.c.external_id == bindparam("b_ext"))
                .values({k: bindparam(k) for k in updates[0] if k != "external_id"})
            )
            conn.execute(stmt, [{**f, "b_ext": f["external_id"]} for f in updates])
            changes = {
                existing[r.external_id]: r.next_appointment
                for r in old
                if r.next_appointment is not None
                and booked(before.get(existing[r.external_id]), r.next_appointment, now.date())
            }
            record_bookings(
                conn,
                changes,
                now=now,
                window_days=self.booking_window_days,
                source="csv-import",
            )
            facts: dict[int, Sequence[ConsentFact]] = {
                existing[r.external_id]: r.consents for r in old if r.consents
            }
            if facts:
                append_consents(conn, facts, "import", now)
        suppressed = _opt_out_suppressed(conn, batch, now)
        return len(new), len(old), suppressed

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


def _address(r: PatientRecord, fact: ConsentFact) -> str | None:
    if fact.address is not None:
        return fact.address
    return r.phone if fact.channel == "sms" else r.email


def _opt_out_suppressed(conn: Connection, batch: Sequence[PatientRecord], now: datetime) -> int:
    """Record a revocation for every patient of the batch whose number or address is on
    the suppression list (unless already opted out); how many patients it names."""
    phones = suppressed_among(conn, "sms", (r.phone for r in batch))
    emails = suppressed_among(conn, "email", (r.email for r in batch))
    hits = [r for r in batch if r.phone in phones or r.email in emails]
    if not hits:
        return 0
    ids = _ids_of(conn, [r.external_id for r in hits])
    words = {
        int(pid): (sms, email)
        for pid, sms, email in conn.execute(
            select(patients.c.id, patients.c.sms_opt_in, patients.c.email_opt_in).where(
                patients.c.id.in_(list(ids.values()))
            )
        )
    }
    why_sms = latest_rows(conn, "sms", phones)
    why_email = latest_rows(conn, "email", emails)
    facts: dict[int, list[ConsentFact]] = {}
    for r in hits:
        pid = ids[r.external_id]
        sms_word, email_word = words[pid]
        for channel, address, word, why in (
            ("sms", r.phone, sms_word, why_sms),
            ("email", r.email, email_word, why_email),
        ):
            if address not in why or word is False:
                continue
            row = why[address]
            text = f"on the suppression list since {row.at:%Y-%m-%d} ({row.reason})"
            fact = ConsentFact(channel, False, now, SUPPRESSION_SOURCE, text, address)  # type: ignore[arg-type]
            facts.setdefault(pid, []).append(fact)
    if facts:
        append_consents(conn, facts, "import", now)
    return len(hits)


def _fields(r: PatientRecord) -> dict[str, Any]:
    """The ``patients`` columns an import writes, less the cached opt-in words."""
    return {
        "external_id": r.external_id,
        "first_name": r.first_name,
        "last_name": r.last_name,
        "email": r.email,
        "phone": r.phone,
        "timezone": r.timezone,
        "state": r.state,
        "tags": ";" + ";".join(r.tags) + ";" if r.tags else ";",
        "last_visit": r.last_visit,
        "next_appointment": r.next_appointment,
        "preferred_channel": r.preferred_channel,
    }


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


def _ids_of(conn: Connection, external_ids: list[str]) -> dict[str, int]:
    """The ids of the patients among ``external_ids`` that are on file."""
    if conn.dialect.name == "postgresql":
        # One array parameter: a thousand-name IN list cost PostgreSQL more to plan
        # and SQLAlchemy more to bind than the lookup itself.
        matches = patients.c.external_id == any_(
            bindparam("external_ids", external_ids, type_=postgresql.ARRAY(String))
        )
    else:
        matches = patients.c.external_id.in_(external_ids)
    rows = conn.execute(select(patients.c.external_id, patients.c.id).where(matches))
    return {str(ext): int(pid) for ext, pid in rows}
