"""A fan-out chunk into the ledger (campaigns/store/delivery_rows.py) and the foreign
keys of a delivery: per row on SQLite, once per chunk and by trigger on PostgreSQL
(migration 0008); the same promises on both."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from campaigns.errors import NotFound
from campaigns.services import Services
from campaigns.store.tables import campaign_runs, deliveries, patients
from tests.support.factories import add_campaign, add_deliveries, add_patient, add_run


def _row(patient_id: int, channel: str = "sms", state: str = "pending") -> dict[str, object]:
    return {"patient_id": patient_id, "channel": channel, "state": state, "due_at": None}


def _rows(svc: Services, *rows: dict[str, object]) -> list[dict[str, object]]:
    due = svc.now() + timedelta(minutes=5)
    return [{**r, "due_at": due} for r in rows]


def test_a_patient_or_run_that_deliveries_refer_to_cannot_be_deleted(svc: Services) -> None:
    patient_id = add_patient(svc)
    run_id = add_run(svc, add_campaign(svc))
    add_deliveries(svc, run_id, [patient_id])

    with pytest.raises(IntegrityError), svc.db.begin() as conn:
        conn.execute(delete(patients).where(patients.c.id == patient_id))
    with pytest.raises(IntegrityError), svc.db.begin() as conn:
        conn.execute(delete(campaign_runs).where(campaign_runs.c.id == run_id))

    assert svc.patients.count() == 1
    assert svc.runs.get(run_id) is not None


def test_a_patient_with_no_deliveries_can_still_be_deleted(svc: Services) -> None:
    kept, gone = add_patient(svc, "KEPT"), add_patient(svc, "GONE")
    add_deliveries(svc, add_run(svc, add_campaign(svc)), [kept])

    with svc.db.begin() as conn:
        conn.execute(delete(patients).where(patients.c.id == gone))

    assert svc.patients.count() == 1


def test_a_chunk_naming_a_missing_patient_or_run_writes_nothing(svc: Services) -> None:
    patient_id = add_patient(svc)
    run_id = add_run(svc, add_campaign(svc))

    with pytest.raises((NotFound, IntegrityError)):
        svc.deliveries.add(run_id, _rows(svc, _row(patient_id), _row(patient_id + 99)), svc.now())
    with pytest.raises((NotFound, IntegrityError)):
        svc.deliveries.add(run_id + 99, _rows(svc, _row(patient_id)), svc.now())

    with svc.db.connect() as conn:
        assert conn.execute(select(deliveries.c.id)).all() == []
    run = svc.runs.get(run_id)
    assert run is not None and run["planned"] == 0


def test_a_chunk_returns_its_pending_rows_and_a_rewrite_adds_only_what_is_missing(
    svc: Services,
) -> None:
    first, second, third = (add_patient(svc, f"P{i}") for i in range(3))
    run_id = add_run(svc, add_campaign(svc))
    chunk = _rows(
        svc,
        _row(first),
        _row(first, "email", state="skipped"),
        _row(second),
    )

    written = svc.deliveries.add(run_id, chunk, svc.now())
    # A fan-out that takes over writes the same chunk again, and one more patient.
    again = svc.deliveries.add(run_id, [*chunk, *_rows(svc, _row(third))], svc.now())

    with svc.db.connect() as conn:
        stored = {
            (p, ch): (i, state, due)
            for i, p, ch, state, due in conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.patient_id,
                    deliveries.c.channel,
                    deliveries.c.state,
                    deliveries.c.next_attempt_at,
                )
            )
        }
    assert len(stored) == 4
    pending = {k: (i, due) for k, (i, state, due) in stored.items() if state == "pending"}
    assert sorted(written) == sorted(
        v for k, v in pending.items() if k in {(first, "sms"), (second, "sms")}
    )
    assert again == [pending[(third, "sms")]]
    run = svc.runs.get(run_id)
    assert run is not None and run["planned"] == 4
