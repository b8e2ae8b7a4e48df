"""The way back to pending, the pump and one clock, on the in-memory due queue and
dispatcher (campaigns.sending.stubs): no Redis, no worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from campaigns.content.catalogue import apply_campaign, schedule_campaign
from campaigns.domain.models import Batch, ConsentFact, PatientRecord, PendingAgain
from campaigns.domain.states import DeliveryState, RunState
from campaigns.errors import TransientError
from campaigns.people import consent
from campaigns.people import staff as accounts
from campaigns.sending import batches, delivery, runs, sweeper
from campaigns.sending.pending import back_to_pending
from campaigns.sending.stubs import MemoryDispatcher, MemoryDueQueue
from campaigns.services import Services
from campaigns.store.tables import (
    audit_events,
    campaign_runs,
    campaigns,
    consents,
    patients,
    staff_users,
)
from tests.conftest import ROOT, make_settings
from tests.support.factories import deliveries_by_id
from tests.support.workers import shift_into_window

CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
EIGHT_HOURS = 8 * 3600.0


def _services(tmp_path: Path, database_url: str, shift_s: float, **overrides: Any) -> Services:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        clock_shift_s=shift_s,
        sms_rate=0,
        email_rate=0,
        **overrides,
    )
    svc = Services(settings, MemoryDispatcher(), due=MemoryDueQueue())
    svc.db.upgrade()
    return svc


@pytest.fixture
def svc(tmp_path: Path, database_url: str) -> Iterator[Services]:
    """Services on a clock inside every US patient's hours, with in-memory stubs."""
    services = _services(tmp_path, database_url, shift_into_window())
    yield services
    services.close()


def _due(svc: Services) -> MemoryDueQueue:
    assert isinstance(svc.due, MemoryDueQueue)
    return svc.due


def _dispatcher(svc: Services) -> MemoryDispatcher:
    assert isinstance(svc.dispatcher, MemoryDispatcher)
    return svc.dispatcher


def _running_run(svc: Services, n: int = 3) -> tuple[int, list[int]]:
    """A running run of the shipped campaign with ``n`` SMS deliveries due a minute ago."""
    now = svc.now()
    records = [
        PatientRecord(
            f"P{i:03d}",
            "Ana",
            "Li",
            None,
            f"+1617555{i:04d}",
            "America/New_York",
            "MA",
            ("active",),
            None,
            None,
            "sms",
            (ConsentFact("sms", True, now - timedelta(days=1), "test"),),
        )
        for i in range(n)
    ]
    svc.patients.import_batches([records], dry_run=False, actor="test")
    campaign_id = apply_campaign(svc, CAMPAIGN, actor="test", approve=True).campaign_id
    occurrence = f"now:{now.isoformat()}"
    run_id = svc.runs.create(campaign_id, occurrence, "manual", RunState.RUNNING, now, actor="test")
    assert run_id is not None
    audience = svc.patients.stream_audience({}, now.date())
    patients = [r.patient_id for chunk in audience for r in chunk]
    due = now - timedelta(minutes=1)
    rows = [
        {"patient_id": p, "channel": "sms", "state": DeliveryState.PENDING, "due_at": due}
        for p in patients
    ]
    svc.deliveries.add(run_id, rows, now)
    ids = [i for chunk in svc.deliveries.stream_due_pending(run_id) for i, _, _ in chunk]
    return run_id, ids


def _queued(svc: Services) -> dict[int, datetime]:
    """Each queued delivery id, with the due time of its batch."""
    return {i: due for due, batch in _due(svc).waiting for i in batch.delivery_ids}


class _Busy:
    """A provider that answers 429 to everything."""

    channel = "sms"

    def send(self, message: object) -> object:
        raise TransientError("provider busy (429)", "429")

    def close(self) -> None:
        """Nothing held."""


def test_a_transient_error_puts_the_delivery_back_to_pending_and_queues_its_retry(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, ids = _running_run(svc, 2)
    monkeypatch.setattr(svc, "transport", lambda channel: _Busy())
    before = svc.now()

    result = delivery.send_batch(svc, Batch(run_id, ids))

    assert result.counts == {"pending": 2}
    rows = deliveries_by_id(svc, ids)
    assert {r["state"] for r in rows.values()} == {"pending"}
    assert {r["attempts"] for r in rows.values()} == {1}
    assert {r["error_code"] for r in rows.values()} == {"429"}
    queued = _queued(svc)
    assert set(queued) == set(ids)
    for i in ids:
        assert queued[i] >= rows[i]["next_attempt_at"] > before
    assert svc.runs.status(run_id) == RunState.RUNNING


def test_a_claim_never_used_goes_back_as_if_never_taken_and_is_queued_at_once(
    svc: Services,
) -> None:
    run_id, ids = _running_run(svc, 2)
    assert len(svc.deliveries.claim(ids, svc.now())) == 2

    moved = back_to_pending(svc, run_id, [PendingAgain(i, None) for i in ids])

    assert moved == 2
    rows = deliveries_by_id(svc, ids)
    assert {(r["state"], r["attempts"], r["claimed_at"]) for r in rows.values()} == {
        ("pending", 0, None)
    }
    assert set(_queued(svc)) == set(ids)
    # The pump hands the batch to the workers now: nothing waits for a sweep.
    assert batches.pump(svc) == 1
    assert _dispatcher(svc).sends == [Batch(run_id, sorted(ids))]


def test_an_unknown_delivery_the_provider_never_got_is_pending_again_and_queued(
    svc: Services,
) -> None:
    _, ids = _running_run(svc, 1)
    svc.deliveries.claim(ids, svc.now())
    svc.deliveries.mark_unknown(ids, svc.now())

    assert sweeper.reconcile_unknown(svc) == 1  # the outbox has no record of it

    assert deliveries_by_id(svc, ids)[ids[0]]["state"] == "pending"
    assert set(_queued(svc)) == set(ids)


def test_a_claim_returned_after_its_run_was_cancelled_is_skipped_as_cancelled(
    svc: Services,
) -> None:
    run_id, ids = _running_run(svc, 2)
    svc.deliveries.claim(ids, svc.now())
    assert runs.cancel_run(svc, run_id, actor="test") == 0  # both are claimed

    back_to_pending(svc, run_id, [PendingAgain(i, None) for i in ids])

    rows = deliveries_by_id(svc, ids)
    assert {(r["state"], r["skip_reason"]) for r in rows.values()} == {("skipped", "cancelled")}


def test_a_send_outside_the_patients_hours_waits_for_their_window_and_is_queued_for_it(
    tmp_path: Path, database_url: str
) -> None:
    # 11:00 UTC is 06:00 or 07:00 in Boston: the window opens within the run's grace.
    svc = _services(tmp_path, database_url, shift_into_window() - 7 * 3600)
    try:
        run_id, ids = _running_run(svc, 1)
        result = delivery.send_batch(svc, Batch(run_id, ids))
        assert result.counts == {"pending": 1}
        opens = deliveries_by_id(svc, ids)[ids[0]]["next_attempt_at"]
        assert opens >= svc.now() + timedelta(minutes=59)
        assert _queued(svc) == {ids[0]: opens}
        assert batches.pump(svc) == 0  # not before the window opens
    finally:
        svc.close()


def test_a_run_sent_to_the_end_is_finished_and_nothing_is_left_queued(svc: Services) -> None:
    run_id, ids = _running_run(svc, 3)

    result = delivery.send_batch(svc, Batch(run_id, ids))

    assert result.counts == {"sent": 3}
    assert svc.runs.status(run_id) == RunState.FINISHED
    assert _due(svc).waiting == []


def _run_times(svc: Services, run_id: int) -> tuple[datetime, datetime]:
    with svc.db.connect() as conn:
        started, finished = conn.execute(
            select(campaign_runs.c.started_at, campaign_runs.c.finished_at).where(
                campaign_runs.c.id == run_id
            )
        ).one()
    return started, finished


def test_on_a_shifted_clock_a_run_cancelled_at_once_took_no_time(
    tmp_path: Path, database_url: str
) -> None:
    svc = _services(tmp_path, database_url, EIGHT_HOURS)
    try:
        apply_campaign(svc, CAMPAIGN, actor="test", approve=True)
        run_id = runs.start_run(svc, "cold-and-flu-season", actor="test")
        assert run_id is not None
        runs.cancel_run(svc, run_id, actor="test")
        started, finished = _run_times(svc, run_id)
        assert timedelta(0) <= finished - started < timedelta(minutes=1)
        assert abs(finished - svc.now()) < timedelta(minutes=1)
    finally:
        svc.close()


def test_on_a_shifted_clock_a_run_that_finishes_ends_on_meridians_clock(
    tmp_path: Path, database_url: str
) -> None:
    svc = _services(tmp_path, database_url, shift_into_window() + 24 * 3600)
    try:
        run_id, ids = _running_run(svc, 1)
        delivery.send_batch(svc, Batch(run_id, ids))
        started, finished = _run_times(svc, run_id)
        assert svc.runs.status(run_id) == RunState.FINISHED
        assert timedelta(0) <= finished - started < timedelta(minutes=1)
    finally:
        svc.close()


FORTY_DAYS = 40 * 24 * 3600.0


def test_on_a_shifted_clock_every_time_the_ledger_stamps_is_meridians(
    tmp_path: Path, database_url: str
) -> None:
    svc = _services(tmp_path, database_url, FORTY_DAYS)
    try:
        _running_run(svc, 1)  # imports a patient, applies the campaign, starts a run
        pid = next(iter(svc.patients.recipients([1])))
        consent.record(svc, [pid], "email", True, source="staff", actor="test", text="yes")
        accounts.add_user(svc, "mara", "correct horse battery staple", "marketer")
        svc.reports.record_staff_event("mara", "staff.sign_in", "mara")
        with svc.db.connect() as conn:
            stamped = {
                "campaigns": conn.execute(
                    select(campaigns.c.created_at, campaigns.c.updated_at)
                ).one(),
                "patients": conn.execute(
                    select(patients.c.created_at, patients.c.updated_at)
                ).one(),
                "consents": conn.execute(select(consents.c.recorded_at)).scalars().all(),
                "staff": conn.execute(select(staff_users.c.created_at)).scalars().all(),
                "audit": conn.execute(select(audit_events.c.at)).scalars().all(),
            }
        now = svc.now()
        for table, times in stamped.items():
            assert times, table
            for at in times:
                assert abs(at - now) < timedelta(minutes=1), (table, at, now)
    finally:
        svc.close()


def test_on_a_shifted_clock_a_new_schedule_owes_nothing_from_before_it_was_created(
    tmp_path: Path, database_url: str
) -> None:
    # 18:00 UTC three days from now: today's 10:00 occurrence (New York) is open.
    svc = _services(tmp_path, database_url, shift_into_window() + 3 * 24 * 3600)
    try:
        daily = tmp_path / "daily.yaml"
        daily.write_text(
            CAMPAIGN.read_text().replace("FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15", "FREQ=DAILY")
        )
        campaign_id = apply_campaign(svc, daily, actor="test", approve=True).campaign_id
        schedule_campaign(svc, campaign_id, actor="test")

        started = runs.tick_campaign(svc, campaign_id)

        today = svc.now().astimezone(ZoneInfo("America/New_York")).date()
        found = [(r["occurrence"], r["status"]) for r in svc.runs.of_campaign(campaign_id)]
        assert found == [(today.isoformat(), RunState.FANNING_OUT)]
        assert len(started) == 1
    finally:
        svc.close()


def test_the_pump_keeps_the_send_queue_bounded_and_the_rest_waits_due(svc: Services) -> None:
    now = svc.now()
    backlog = batches.SEND_BACKLOG
    _due(svc).add((now, Batch(1, [i])) for i in range(backlog + 10))

    assert batches.pump(svc) == backlog
    assert len(_dispatcher(svc).sends) == backlog
    assert len(_due(svc).waiting) == 10
    # Nothing more while the workers have not taken any.
    assert batches.pump(svc) == 0

    del _dispatcher(svc).sends[:4]  # the workers took four
    assert batches.pump(svc) == 4
    del _dispatcher(svc).sends[:]
    assert batches.pump(svc) == 6
    assert [b.delivery_ids[0] for b in _dispatcher(svc).sends] == list(
        range(backlog + 4, backlog + 10)
    )


def test_on_sqlite_the_open_and_pending_reads_go_through_the_partial_indexes(
    svc: Services, backend: str
) -> None:
    """finish_if_done after every batch, the pending pages and due_work read a run's
    open rows through ix_deliveries_open / ix_deliveries_pending_due. With the states
    bound as parameters SQLite cannot prove those indexes' WHERE and walks every row
    of the run instead (7 ms a batch at 40,000 deliveries)."""
    if backend != "sqlite":
        pytest.skip("which index PostgreSQL picks depends on its statistics")
    run_id, _ = _running_run(svc, 3)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM deliveries" in statement:
            statements.append((statement, parameters))

    event.listen(svc.db.engine, "before_cursor_execute", seen)
    try:
        assert not svc.runs.finish_if_done(run_id, svc.now())
        list(svc.deliveries.stream_due_pending(run_id))
        assert svc.delivery_queries.due_work(run_id, svc.now()) == 3
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", seen)
    assert len(statements) >= 3
    with svc.db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "ix_deliveries_open" in plan or "ix_deliveries_pending_due" in plan, (
                statement,
                plan,
            )
