"""The claim: several processes racing for the same deliveries never double-claim."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns.domain.states import RunState
from campaigns.services import Services
from campaigns.settings import Settings
from tests.support.factories import (
    add_campaign,
    add_deliveries,
    add_patients,
    add_run,
    patient_record,
)

pytestmark = pytest.mark.integration


def _seed(svc: Services, n: int) -> tuple[int, list[int]]:
    """A running run with ``n`` deliveries due; the run and the deliveries' ids."""
    patient_ids = add_patients(
        svc, [patient_record(f"P{i:05d}", phone=f"+1617555{i:04d}") for i in range(n)]
    )
    run_id = add_run(svc, add_campaign(svc), occurrence=f"now:{svc.now().isoformat()}")
    # Due by the wall clock the claimers read (svc's is shifted into sending hours).
    due = datetime.now(UTC) - timedelta(days=1)
    return run_id, add_deliveries(svc, run_id, patient_ids, due_at=due)


def _claimer(url: str, ids: list[int], out: multiprocessing.Queue, start: Any) -> None:  # type: ignore[type-arg]
    svc = Services(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    svc.runs.get(0)  # connect before the start line
    start.wait()
    won: list[int] = []
    for start in range(0, len(ids), 7):
        claimed = svc.deliveries.claim(ids[start : start + 7], datetime.now(UTC))
        won += [c.delivery_id for c in claimed]
    out.put(won)


def test_four_processes_claiming_the_same_deliveries_never_both_win(svc: Services) -> None:
    _, ids = _seed(svc, 300)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_claimer, args=(svc.settings.database_url, ids, out, start))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    won = [i for r in results for i in r]
    assert sorted(won) == sorted(ids), "every delivery claimed exactly once"


def test_a_paused_run_gives_out_no_claims(svc: Services) -> None:
    run_id, ids = _seed(svc, 5)
    svc.runs.set_status(run_id, RunState.PAUSED, datetime.now(UTC), actor="test")
    assert svc.deliveries.claim(ids, datetime.now(UTC)) == []
    svc.runs.set_status(run_id, RunState.RUNNING, datetime.now(UTC), actor="test")
    assert len(svc.deliveries.claim(ids, datetime.now(UTC))) == 5
