"""Named SQL for consent evidence and the opt-in columns that cache its latest word.

Evidence is append-only (``consents``); ``patients.sms_opt_in`` and
``patients.email_opt_in`` are written only here, together with the evidence they
follow. The patient import writes a new patient's first evidence with the same
helpers (``store.patient_import``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from campaigns.domain.models import Channel, ConsentFact
from campaigns.domain.ports import Clock, utc_now
from campaigns.store.audit import audit
from campaigns.store.bulk import insert_rows
from campaigns.store.db import Database
from campaigns.store.tables import consents, patients


class ConsentRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def record(self, patient_ids: Sequence[int], fact: ConsentFact, *, actor: str) -> int:
        now = self.clock()
        with self.db.begin() as conn:
            n = append_consents(conn, {pid: [fact] for pid in patient_ids}, actor, now)
            for pid in patient_ids:
                audit(
                    conn,
                    now,
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


def append_consents(
    conn: Connection,
    facts: Mapping[int, Sequence[ConsentFact]],
    actor: str,
    now: datetime,
) -> int:
    """Append the facts not already on file, recorded by ``actor`` at ``now``, and
    refresh the cached opt-in columns.

    The cache follows the latest evidence by the time the patient gave it, so a
    re-import of an old "yes" never overrides a later STOP; it also keeps the number
    or address that evidence was given for. A fact with no address is for the
    patient's current one. A fact that repeats a word and time already on file is
    the same evidence, whatever number it now comes with: re-importing an old "yes"
    with a new phone number is not consent for the new number.

    The patients' rows are locked first, so that a concurrent writer of their consent
    waits, then reads this evidence: otherwise, on PostgreSQL, it could cache an older
    word over a newer one (SQLite serializes writers anyway and has no FOR UPDATE).
    Evidence is read in the order it was recorded, so that ties in ``at`` resolve
    alike on every backend.
    """
    ids = sorted(facts)
    contacts = {
        int(pid): {"sms": phone, "email": email}
        for pid, phone, email in conn.execute(
            select(patients.c.id, patients.c.phone, patients.c.email)
            .where(patients.c.id.in_(ids))
            .order_by(patients.c.id)
            .with_for_update()
        )
    }
    on_file: dict[tuple[int, str], list[_Said]] = defaultdict(list)
    for pid, channel, granted, at, address in conn.execute(
        select(
            consents.c.patient_id,
            consents.c.channel,
            consents.c.granted,
            consents.c.at,
            consents.c.address,
        )
        .where(consents.c.patient_id.in_(ids))
        .order_by(consents.c.id)
    ):
        on_file[(pid, channel)].append((bool(granted), at, address))
    rows = []
    for pid, fs in facts.items():
        for f in fs:
            said = on_file[(pid, f.channel)]
            if any((g, a) == (f.granted, f.at) for g, a, _ in said):
                continue
            address = f.address if f.address is not None else contacts.get(pid, {}).get(f.channel)
            said.append((f.granted, f.at, address))
            rows.append(consent_row(pid, f, address))
    insert_rows(conn, consents, rows, same={"recorded_by": actor, "recorded_at": now})
    changed: set[tuple[int, str]] = {(pid, f.channel) for pid, fs in facts.items() for f in fs}
    latest: dict[str, list[dict[str, Any]]] = {"sms": [], "email": []}
    for pid, channel in sorted(changed):
        word, address = _latest_word(on_file[(pid, channel)])
        latest[channel].append({"b_id": pid, "b_opt_in": word, "b_for": address or ""})
    # One executemany per channel: a 100,000-row import wrote 200,000 statements.
    for channel, params in latest.items():
        if params:
            word_column, for_column = (
                ("sms_opt_in", "sms_consent_for")
                if channel == "sms"
                else ("email_opt_in", "email_consent_for")
            )
            conn.execute(
                update(patients)
                .where(patients.c.id == bindparam("b_id"))
                .values({word_column: bindparam("b_opt_in"), for_column: bindparam("b_for")}),
                params,
            )
    return len(rows)


# (word, when it was said, the number or address it was said for)
_Said = tuple[bool, datetime, str | None]


def consent_row(pid: int, fact: ConsentFact, address: str | None) -> dict[str, Any]:
    """The ``consents`` row of one fact, less who recorded it and when."""
    return {
        "patient_id": pid,
        "channel": fact.channel,
        "granted": fact.granted,
        "address": address,
        "at": fact.at,
        "source": fact.source,
        "text_shown": fact.text_shown,
    }


def distinct_facts(facts: Sequence[ConsentFact]) -> list[ConsentFact]:
    """The facts in order, less any that repeat an earlier (channel, word, time)."""
    if len(facts) < 2:
        return list(facts)
    seen: set[tuple[str, bool, datetime]] = set()
    kept = []
    for f in facts:
        if (f.channel, f.granted, f.at) not in seen:
            seen.add((f.channel, f.granted, f.at))
            kept.append(f)
    return kept


def latest_words(
    facts: Sequence[ConsentFact], contacts: dict[str, str | None]
) -> dict[str, tuple[bool, str]]:
    """Each channel's latest word and the address it was given for ("" for none), for
    a patient with no evidence on file yet whose current contacts are ``contacts``."""
    latest: dict[str, ConsentFact] = {}
    for f in facts:  # _latest_word's choice: the latest, the first recorded on a tie
        seen = latest.get(f.channel)
        if seen is None or f.at > seen.at:
            latest[f.channel] = f
    out: dict[str, tuple[bool, str]] = {}
    for channel, f in latest.items():
        address = f.address if f.address is not None else contacts.get(channel)
        out[channel] = (f.granted, address or "")
    return out


def _latest_word(evidence: Sequence[_Said]) -> tuple[bool, str | None]:
    """The latest word by the time it was given, and its address; on a tie, the first
    recorded."""
    granted, _, address = max(evidence, key=lambda said: said[1])
    return granted, address
