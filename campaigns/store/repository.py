"""Named SQL for patients, consent, campaigns and the audit log.

Every function takes the Database and keeps its transaction short; the services
above never see SQLAlchemy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    any_,
    bindparam,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from campaigns.domain.models import Channel, ConsentFact, PatientRecord, Recipient
from campaigns.store.bulk import insert_rows
from campaigns.store.db import Database
from campaigns.store.tables import audit_events, campaigns, consents, patients, staff_users


def _now() -> datetime:
    return datetime.now(UTC)


def _tags_text(tags: Iterable[str]) -> str:
    return ";" + ";".join(tags) + ";" if tags else ";"


def audit(
    conn: Connection,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object = None,
    **detail: object,
) -> None:
    """Record who did what to which thing. ``detail`` holds ids and counts, never PHI."""
    conn.execute(
        insert(audit_events).values(
            at=_now(),
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            detail=detail,
        )
    )


class PatientRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int]:
        inserted = updated = 0
        conn = self.db.engine.connect().execution_options(meridian_write=True)
        trans = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                # psycopg prepares a statement run five times, and PostgreSQL may then
                # keep a generic plan made while the table was empty: a sequential scan
                # per batch once it is not, 300 s for 100,000 patients instead of 2 s.
                conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
            for batch in batches:
                i, u = self._upsert(conn, batch)
                inserted += i
                updated += u
            audit(
                conn,
                actor,
                "patients.import",
                "patients",
                None,
                inserted=inserted,
                updated=updated,
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
        return inserted, updated

    def _upsert(self, conn: Connection, batch: Sequence[PatientRecord]) -> tuple[int, int]:
        now = _now()
        existing = _ids_of(conn, [r.external_id for r in batch])

        def fields(r: PatientRecord) -> dict[str, Any]:
            return {
                "external_id": r.external_id,
                "first_name": r.first_name,
                "last_name": r.last_name,
                "email": r.email,
                "phone": r.phone,
                "timezone": r.timezone,
                "state": r.state,
                "tags": _tags_text(r.tags),
                "last_visit": r.last_visit,
                "next_appointment": r.next_appointment,
                "preferred_channel": r.preferred_channel,
            }

        new = [r for r in batch if r.external_id not in existing]
        old = [r for r in batch if r.external_id in existing]
        if new:
            # A new patient's evidence is all in this file: its opt-in columns are
            # written with the row, and its consents need no lock and no read-back.
            rows = []
            for r in new:
                words = _latest_words(r.consents)
                rows.append(
                    fields(r)
                    | {
                        "sms_opt_in": words.get("sms"),
                        "email_opt_in": words.get("email"),
                    }
                )
            insert_rows(conn, patients, rows, same={"created_at": now, "updated_at": now})
            # Read back rather than INSERT ... RETURNING, which PostgreSQL takes three
            # times as long over (make bench, 1,000-row batches).
            ids = _ids_of(conn, [r.external_id for r in new])
            evidence = [
                _consent_row(ids[r.external_id], fact)
                for r in new
                for fact in _distinct(r.consents)
            ]
            insert_rows(
                conn, consents, evidence, same={"recorded_by": "import", "recorded_at": now}
            )
        if old:
            updates = [fields(r) | {"updated_at": now} for r in old]
            stmt = (
                update(patients)
                .where(patients.c.external_id == bindparam("b_ext"))
                .values({k: bindparam(k) for k in updates[0] if k != "external_id"})
            )
            conn.execute(stmt, [{**f, "b_ext": f["external_id"]} for f in updates])
            facts: dict[int, Sequence[ConsentFact]] = {
                existing[r.external_id]: r.consents for r in old if r.consents
            }
            if facts:
                _append_consents(conn, facts, actor="import")
        return len(new), len(old)

    def find(self, external_id: str) -> Recipient | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(*_RECIPIENT_COLUMNS).where(patients.c.external_id == external_id)
            ).first()
        return None if row is None else Recipient(*row)

    def count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(patients)).scalar_one())

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

    def recipients(self, patient_ids: Sequence[int]) -> dict[int, Recipient]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(*_RECIPIENT_COLUMNS).where(patients.c.id.in_(list(patient_ids)))
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
)


def _has_tag(tag: str) -> Any:
    # Stored tags are lower-case (the importer folds them), and a campaign's are
    # compared the same way on every backend: LIKE ignores ASCII case on SQLite but
    # not on PostgreSQL. Escaped, so that "_" and "%" in a tag match only themselves.
    return patients.c.tags.contains(f";{tag.lower()};", autoescape=True)


def _audience_clause(audience: dict[str, Any], today: date) -> list[Any]:
    from datetime import timedelta

    clauses: list[Any] = []
    tags_any = audience.get("tags_any") or []
    if tags_any:
        clauses.append(or_(*(_has_tag(t) for t in tags_any)))
    for tag in audience.get("tags_none") or []:
        clauses.append(not_(_has_tag(tag)))
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


def _append_consents(conn: Connection, facts: dict[int, Sequence[ConsentFact]], actor: str) -> int:
    """Append the facts not already on file and refresh the cached opt-in columns.

    The cache follows the latest evidence by the time the patient gave it, so a
    re-import of an old "yes" never overrides a later STOP.

    The patients' rows are locked first, so that a concurrent writer of their consent
    waits, then reads this evidence: otherwise, on PostgreSQL, it could cache an older
    word over a newer one (SQLite serializes writers anyway and has no FOR UPDATE).
    Evidence is read in the order it was recorded, so that ties in ``at`` resolve
    alike on every backend.
    """
    ids = sorted(facts)
    conn.execute(
        select(patients.c.id)
        .where(patients.c.id.in_(ids))
        .order_by(patients.c.id)
        .with_for_update()
    )
    on_file: dict[tuple[int, str], list[tuple[bool, datetime]]] = defaultdict(list)
    for pid, channel, granted, at in conn.execute(
        select(consents.c.patient_id, consents.c.channel, consents.c.granted, consents.c.at)
        .where(consents.c.patient_id.in_(ids))
        .order_by(consents.c.id)
    ):
        on_file[(pid, channel)].append((bool(granted), at))
    now = _now()
    rows = []
    for pid, fs in facts.items():
        for f in fs:
            if (f.granted, f.at) in on_file[(pid, f.channel)]:
                continue
            on_file[(pid, f.channel)].append((f.granted, f.at))
            rows.append(_consent_row(pid, f))
    insert_rows(conn, consents, rows, same={"recorded_by": actor, "recorded_at": now})
    changed: set[tuple[int, str]] = {(pid, f.channel) for pid, fs in facts.items() for f in fs}
    latest: dict[str, list[dict[str, Any]]] = {"sms": [], "email": []}
    for pid, channel in sorted(changed):
        word = _latest_word(on_file[(pid, channel)])
        latest[channel].append({"b_id": pid, "b_opt_in": word})
    # One executemany per channel: a 100,000-row import wrote 200,000 statements.
    for channel, params in latest.items():
        if params:
            column = patients.c.sms_opt_in if channel == "sms" else patients.c.email_opt_in
            conn.execute(
                update(patients)
                .where(patients.c.id == bindparam("b_id"))
                .values({column: bindparam("b_opt_in")}),
                params,
            )
    return len(rows)


class ConsentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, patient_ids: Sequence[int], fact: ConsentFact, *, actor: str) -> int:
        with self.db.begin() as conn:
            n = _append_consents(conn, {pid: [fact] for pid in patient_ids}, actor)
            for pid in patient_ids:
                audit(
                    conn,
                    actor,
                    "consent.grant" if fact.granted else "consent.revoke",
                    "patient",
                    pid,
                    channel=fact.channel,
                    source=fact.source,
                )
            return n

    def patients_by_phone(self, phone: str) -> list[int]:
        with self.db.connect() as conn:
            return list(
                conn.execute(select(patients.c.id).where(patients.c.phone == phone)).scalars()
            )

    def patients_by_email(self, email: str) -> list[int]:
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    select(patients.c.id).where(func.lower(patients.c.email) == email.lower())
                ).scalars()
            )

    def history(self, patient_id: int) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(consents)
                    .where(consents.c.patient_id == patient_id)
                    .order_by(consents.c.at, consents.c.id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def current(self, patient_id: int) -> dict[Channel, bool | None]:
        with self.db.connect() as conn:
            row = conn.execute(
                select(patients.c.sms_opt_in, patients.c.email_opt_in).where(
                    patients.c.id == patient_id
                )
            ).one()
        return {"sms": row[0], "email": row[1]}


class CampaignRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self, name: str, definition: dict[str, Any], findings: list[dict[str, Any]], *, actor: str
    ) -> int:
        now = _now()
        with self.db.begin() as conn:
            found = conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).first()
            if found is None:
                cid = int(
                    conn.execute(
                        insert(campaigns)
                        .values(
                            name=name,
                            definition=definition,
                            status="draft",
                            findings=findings,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(campaigns.c.id)
                    ).scalar_one()
                )
                audit(conn, actor, "campaign.create", "campaign", cid)
            else:
                cid = int(found[0])
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == cid)
                    .values(definition=definition, findings=findings, updated_at=now)
                )
                audit(conn, actor, "campaign.update", "campaign", cid)
            return cid

    def get(self, key: str | int) -> dict[str, Any] | None:
        column = campaigns.c.id if isinstance(key, int) else campaigns.c.name
        with self.db.connect() as conn:
            row = conn.execute(select(campaigns).where(column == key)).mappings().first()
        return None if row is None else dict(row)

    def all(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(select(campaigns).order_by(campaigns.c.name)).mappings().all()
        return [dict(r) for r in rows]

    def set_status(self, campaign_id: int, status: str, *, actor: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(status=status, updated_at=_now())
            )
            audit(conn, actor, f"campaign.{status}", "campaign", campaign_id)


class StaffRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, username: str, password_hash: str, role: str) -> int:
        with self.db.begin() as conn:
            try:
                return int(
                    conn.execute(
                        insert(staff_users)
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role,
                            active=True,
                            created_at=_now(),
                        )
                        .returning(staff_users.c.id)
                    ).scalar_one()
                )
            except IntegrityError as exc:
                raise ValueError(f"user {username!r} exists") from exc

    def get(self, username: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(select(staff_users).where(staff_users.c.username == username))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)


def _consent_row(pid: int, fact: ConsentFact) -> dict[str, Any]:
    return {
        "patient_id": pid,
        "channel": fact.channel,
        "granted": fact.granted,
        "at": fact.at,
        "source": fact.source,
        "text_shown": fact.text_shown,
    }


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


def _distinct(facts: Sequence[ConsentFact]) -> list[ConsentFact]:
    """The facts in order, less any that repeat an earlier (channel, word, time)."""
    seen: set[tuple[str, bool, datetime]] = set()
    kept = []
    for f in facts:
        if (f.channel, f.granted, f.at) not in seen:
            seen.add((f.channel, f.granted, f.at))
            kept.append(f)
    return kept


def _latest_word(evidence: Sequence[tuple[bool, datetime]]) -> bool:
    """The latest word by the time it was given; on a tie, the first recorded."""
    return max(evidence, key=lambda said: said[1])[0]


def _latest_words(facts: Sequence[ConsentFact]) -> dict[str, bool]:
    """Each channel's ``_latest_word``, for a patient with no evidence on file yet."""
    by_channel: dict[str, list[tuple[bool, datetime]]] = defaultdict(list)
    for f in facts:
        by_channel[f.channel].append((f.granted, f.at))
    return {channel: _latest_word(evidence) for channel, evidence in by_channel.items()}
