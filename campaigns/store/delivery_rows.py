"""A fan-out chunk into the deliveries table, as cheaply as the backend allows.

One transaction per chunk: the run's row locked (two fan-outs of one run take
turns), the rows already there found by the unique key's range (a fan-out that
takes over from one that died writes only what is missing), the rest written by
COPY (PostgreSQL) or one executemany (SQLite), and the run's ``planned`` count
raised. On PostgreSQL the chunk's patients are checked and key-share locked in one
statement: the foreign keys are not per row there (migration 0008). The pending
rows' ids and due times come back for the due set: drawn before the rows are
written (PostgreSQL's sequence; on SQLite, under its one write lock, the ids after the
largest), so nothing is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from campaigns.domain.states import DeliveryState
from campaigns.errors import NotFound
from campaigns.store.bulk import insert_rows
from campaigns.store.tables import campaign_runs, deliveries, patients

# Ids for a chunk's rows, drawn before the COPY so the pending ones need no read-back.
_NEXT_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) FROM generate_series(1, :n)"
)


def _patients_stay(conn: Connection, ids: set[int]) -> None:
    """PostgreSQL's foreign key to patients, checked once for the chunk (migration 0008):
    each patient must exist, and is key-share locked, as the constraint's trigger would
    lock it row by row, so a delete waits for this transaction and then finds the rows."""
    found = conn.execute(
        select(func.count()).select_from(
            select(patients.c.id)
            # one array parameter: a thousand bound values cost SQLAlchemy and psycopg
            # more than the lookup itself
            .where(patients.c.id == any_(bindparam("ids", sorted(ids), type_=ARRAY(BigInteger))))
            .with_for_update(read=True, key_share=True)
            .subquery()
        )
    ).scalar_one()
    if found != len(ids):
        raise NotFound(f"{len(ids) - found} patients of this chunk do not exist")


def write_chunk(
    conn: Connection, run_id: int, rows: Sequence[dict[str, Any]], now: datetime
) -> list[tuple[int, datetime]]:
    """Write ``rows`` of one run in ``conn``'s transaction; (id, due) of the pending ones."""
    # Two fan-outs of one run (a lock that expired) take turns here, so the
    # second sees the first's rows instead of breaking the unique key.
    run = select(campaign_runs.c.id).where(campaign_runs.c.id == run_id).with_for_update()
    if conn.execute(run).first() is None:
        raise NotFound(f"no run {run_id}")
    # By the chunk's range of patient ids (fan-out streams them in id order):
    # both bounds are index conditions on the unique key whatever the
    # statistics, where an IN list of a thousand ids let a fresh table's plan
    # read every row of the run written so far, chunk after chunk.
    ids = {r["patient_id"] for r in rows}
    existing = {
        (patient_id, channel)
        for patient_id, channel in conn.execute(
            select(deliveries.c.patient_id, deliveries.c.channel).where(
                deliveries.c.run_id == run_id,
                deliveries.c.patient_id.between(min(ids), max(ids)),
            )
        )
        if patient_id in ids
    }
    fresh = [
        {"skip_reason": None, **r, "next_attempt_at": r["due_at"]}
        for r in rows
        if (r["patient_id"], r["channel"]) not in existing
    ]
    if not fresh:
        return []
    if conn.dialect.name == "postgresql":
        _patients_stay(conn, {r["patient_id"] for r in fresh})
        new_ids: Sequence[int] = conn.execute(_NEXT_IDS, {"n": len(fresh)}).scalars().all()
    else:
        # Database.begin is BEGIN IMMEDIATE on SQLite: this transaction holds the one
        # write lock, so the ids after the largest are free, as SQLite would pick them
        # (read back by the unique key instead, the chunk's rows cost a tenth more).
        top = conn.execute(select(func.max(deliveries.c.id))).scalar_one_or_none() or 0
        new_ids = range(top + 1, top + 1 + len(fresh))
    fresh = [{"id": i, **r} for i, r in zip(new_ids, fresh, strict=True)]
    shared = {"run_id": run_id, "attempts": 0, "updated_at": now}
    insert_rows(conn, deliveries, fresh, same=shared)
    conn.execute(
        update(campaign_runs)
        .where(campaign_runs.c.id == run_id)
        .values(planned=campaign_runs.c.planned + len(fresh))
    )
    return [
        (int(r["id"]), r["next_attempt_at"]) for r in fresh if r["state"] == DeliveryState.PENDING
    ]
