"""The patient import's writes: every batch upserted by external_id in one transaction.

A new patient's row, its cached opt-in words and its first consent evidence are
written together by COPY (``store.bulk``), with ids taken up front: from the table's
own sequence on PostgreSQL, after the largest on SQLite (whose import holds the write
lock from its first statement), exactly the ids the database would have given. So
nothing is read back: a batch costs one look-up of the external_ids on file, the ids,
the rows, and one look-up of its numbers and addresses on the suppression list.

A patient on file is updated, a new future appointment recorded as a booking, and
its evidence appended through ``store.consent.append_consents``, which keeps the
opt-in cache true. A patient whose number or address is on the suppression list is
imported opted out, the revocation recorded as evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.store.audit import audit
from campaigns.store.bookings import appointments_of, booked, record_bookings
from campaigns.store.bulk import insert_tuples, one_of
from campaigns.store.consent import append_consents, distinct_facts, latest_words
from campaigns.store.db import Database
from campaigns.store.read_ahead import ReadAhead
from campaigns.store.suppression import latest_rows, suppressed_on_channels
from campaigns.store.tables import consents, patients

# The source of the revocation an import records for a patient whose number or
# address is on the suppression list.
SUPPRESSION_SOURCE = "suppression-list"

# What a new patient's row and its evidence are written as (less the shared stamps).
_PATIENT_COLUMNS = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "timezone",
    "state",
    "tags",
    "last_visit",
    "next_appointment",
    "preferred_channel",
    "sms_opt_in",
    "sms_consent_for",
    "email_opt_in",
    "email_consent_for",
)
_CONSENT_COLUMNS = ("patient_id", "channel", "granted", "address", "at", "source", "text_shown")
# Patients written per round of statements: the CSV scan's batches (1,000 rows) are
# joined up to this many, since each round has a fixed cost on the server (a COPY's
# start and end, its foreign-key checks' set-up) and in round trips.
_WRITE_ROWS = 5000
_NEXT_IDS = text(
    "SELECT array_agg(id) FROM "
    "(SELECT nextval(CAST(:sequence AS regclass)) AS id FROM generate_series(1, :n)) AS drawn"
)


def import_batches(
    db: Database,
    batches: Iterable[Sequence[PatientRecord]],
    *,
    now: datetime,
    booking_window_days: int,
    dry_run: bool,
    actor: str,
) -> tuple[int, int, int]:
    """Upsert every batch in one transaction, committed unless ``dry_run``: (inserted,
    updated, imported opted out because the suppression list has their number or
    address). An exception from ``batches`` rolls everything back."""
    inserted = updated = suppressed = 0
    conn = db.engine.connect().execution_options(meridian_write=True)
    trans = conn.begin()
    ahead = None
    try:
        sequence = None
        if conn.dialect.name == "postgresql":
            # The next batch is parsed while the server writes this one (store.read_ahead).
            batches = ahead = ReadAhead(batches, name="patient-import-scan")
            # psycopg prepares a statement run five times, and PostgreSQL may then
            # keep a generic plan made while the table was empty: a sequential scan
            # per batch once it is not, 300 s for 100,000 patients instead of 2 s.
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
            sequence = conn.exec_driver_sql(
                "SELECT pg_get_serial_sequence('patients', 'id')"
            ).scalar_one()
        for batch in _joined(batches, _WRITE_ROWS):
            existing = _ids_of(conn, [r.external_id for r in batch])
            new = [r for r in batch if r.external_id not in existing]
            old = [r for r in batch if r.external_id in existing]
            if new:
                existing |= _insert_new(conn, new, now, _new_ids(conn, len(new), sequence))
            if old:
                _update_old(conn, old, existing, now, booking_window_days)
            inserted += len(new)
            updated += len(old)
            suppressed += _opt_out_suppressed(conn, batch, existing, now)
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
        if ahead is not None:
            ahead.close()
        conn.close()
    return inserted, updated, suppressed


def _joined(batches: Iterable[Sequence[PatientRecord]], size: int) -> Iterator[list[PatientRecord]]:
    """The batches joined up to ``size`` records, in order; a batch that repeats an
    external_id of the ones joined so far starts a new group, so that each group
    writes what the batches one by one would have."""
    group: list[PatientRecord] = []
    names: set[str] = set()
    for batch in batches:
        these = {r.external_id for r in batch}
        if group and (len(group) + len(batch) > size or not names.isdisjoint(these)):
            yield group
            group, names = [], set()
        group.extend(batch)
        names |= these
    if group:
        yield group


def _new_ids(conn: Connection, count: int, sequence: str | None) -> list[int]:
    """``count`` ids for new patients, ascending: what the database's default gives."""
    if sequence is not None:
        drawn = conn.execute(_NEXT_IDS, {"sequence": sequence, "n": count}).scalar_one()
        return sorted(int(i) for i in drawn)
    # SQLite gives a new row the largest id + 1; the import's write lock, taken by its
    # first statement, keeps every other writer out until it ends.
    last = conn.execute(select(patients.c.id).order_by(patients.c.id.desc()).limit(1)).scalar()
    first = 1 if last is None else int(last) + 1
    return list(range(first, first + count))


def _insert_new(
    conn: Connection, new: Sequence[PatientRecord], now: datetime, ids: Sequence[int]
) -> dict[str, int]:
    """Write new patients, their opt-in words and their evidence; their ids by
    external_id. A new patient's evidence is all in this file: no lock, no read-back."""
    rows: list[tuple[Any, ...]] = []
    evidence: list[tuple[Any, ...]] = []
    for pid, r in zip(ids, new, strict=True):
        sms = email = None
        if r.consents:
            words = latest_words(r.consents, {"sms": r.phone, "email": r.email})
            sms, email = words.get("sms"), words.get("email")
            for fact in distinct_facts(r.consents):
                address = fact.address
                if address is None:
                    address = r.phone if fact.channel == "sms" else r.email
                said = (fact.channel, fact.granted, address, fact.at, fact.source)
                evidence.append((pid, *said, fact.text_shown))
        rows.append(
            (
                pid,
                r.external_id,
                r.first_name,
                r.last_name,
                r.email,
                r.phone,
                r.timezone,
                r.state,
                _tags(r.tags),
                r.last_visit,
                r.next_appointment,
                r.preferred_channel,
                None if sms is None else sms[0],
                None if sms is None else sms[1],
                None if email is None else email[0],
                None if email is None else email[1],
            )
        )
    insert_tuples(
        conn, patients, _PATIENT_COLUMNS, rows, same={"created_at": now, "updated_at": now}
    )
    stamps = {"recorded_by": "import", "recorded_at": now}
    insert_tuples(conn, consents, _CONSENT_COLUMNS, evidence, same=stamps)
    return {r.external_id: pid for pid, r in zip(ids, new, strict=True)}


def _update_old(
    conn: Connection,
    old: Sequence[PatientRecord],
    ids: dict[str, int],
    now: datetime,
    window_days: int,
) -> None:
    """Update patients on file; a new future appointment is a booking."""
    before = appointments_of(conn, [ids[r.external_id] for r in old])
    updates = [_fields(r) | {"updated_at": now} for r in old]
    stmt = (
        update(patients)
        .where(patients.c.external_id == bindparam("b_ext"))
        .values({k: bindparam(k) for k in updates[0] if k != "external_id"})
    )
    conn.execute(stmt, [{**f, "b_ext": f["external_id"]} for f in updates])
    changes = {
        ids[r.external_id]: r.next_appointment
        for r in old
        if r.next_appointment is not None
        and booked(before.get(ids[r.external_id]), r.next_appointment, now.date())
    }
    record_bookings(conn, changes, now=now, window_days=window_days, source="csv-import")
    facts: dict[int, Sequence[ConsentFact]] = {
        ids[r.external_id]: r.consents for r in old if r.consents
    }
    if facts:
        append_consents(conn, facts, "import", now)


def _opt_out_suppressed(
    conn: Connection, batch: Sequence[PatientRecord], ids: dict[str, int], now: datetime
) -> int:
    """Record a revocation for every patient of the batch whose number or address is on
    the suppression list (unless already opted out); how many patients it names."""
    on_list = suppressed_on_channels(
        conn, {"sms": [r.phone for r in batch], "email": [r.email for r in batch]}
    )
    phones, emails = on_list["sms"], on_list["email"]
    hits = [r for r in batch if r.phone in phones or r.email in emails]
    if not hits:
        return 0
    words = {
        int(pid): (sms, email)
        for pid, sms, email in conn.execute(
            select(patients.c.id, patients.c.sms_opt_in, patients.c.email_opt_in).where(
                patients.c.id.in_([ids[r.external_id] for r in hits])
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
            reason = f"on the suppression list since {row.at:%Y-%m-%d} ({row.reason})"
            fact = ConsentFact(channel, False, now, SUPPRESSION_SOURCE, reason, address)  # type: ignore[arg-type]
            facts.setdefault(pid, []).append(fact)
    if facts:
        append_consents(conn, facts, "import", now)
    return len(hits)


def _tags(tags: tuple[str, ...]) -> str:
    """ ";a;b;" (";" for none), so that a tag is matched whole."""
    return ";" + ";".join(tags) + ";" if tags else ";"


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
        "tags": _tags(r.tags),
        "last_visit": r.last_visit,
        "next_appointment": r.next_appointment,
        "preferred_channel": r.preferred_channel,
    }


def _ids_of(conn: Connection, external_ids: list[str]) -> dict[str, int]:
    """The ids of the patients among ``external_ids`` that are on file."""
    matches = one_of(conn.dialect.name, patients.c.external_id, external_ids, "external_ids")
    rows = conn.execute(select(patients.c.external_id, patients.c.id).where(matches))
    return {str(ext): int(pid) for ext, pid in rows}
