"""Cancelling a whole campaign on the stubs (campaigns.sending.control.cancel): every
run still going stops for good, what it had left is skipped, the schedule goes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from campaigns.domain.states import RunState
from campaigns.errors import InputError
from campaigns.sending import control, runs
from campaigns.store.deliveries import DeliveryRepository
from tests.sending.builders import add_patients, delivery_rows, patient, save_campaign
from tests.support.stubs import StubbedServices, fan_out_queued, send_due


def _start(svc: StubbedServices, name: str, occurrence: str) -> int:
    run_id = runs.start_run(svc, name, occurrence=occurrence, trigger="schedule", actor="beat")
    assert run_id is not None
    svc.memory_dispatcher.queue_fan_out(run_id)
    return run_id


def _sms_states(svc: StubbedServices, run_id: int) -> Counter[tuple[str, Any]]:
    return Counter(
        (r["state"], r["skip_reason"]) for r in delivery_rows(svc, run_id) if r["channel"] == "sms"
    )


def test_cancelling_a_campaign_stops_its_runs_skips_what_they_had_left_and_drops_its_schedule(
    svc: StubbedServices,
) -> None:
    add_patients(svc, *(patient(f"P{i}", phone=f"+1617555010{i}") for i in range(3)))
    name = save_campaign(svc)
    campaign_id = int(control.schedule(svc, name, actor="test")["id"])
    assert campaign_id in svc.memory_dispatcher.schedules

    finished = control.run_now(svc, name, actor="test")
    assert finished is not None
    fan_out_queued(svc)
    send_due(svc)  # due at once: all sent, the run finished
    running = _start(svc, name, "2025-10-16")
    paused = _start(svc, name, "2025-10-17")
    fan_out_queued(svc)
    assert runs.pause_run(svc, paused, actor="test")
    fanning_out = _start(svc, name, "2025-10-18")  # its fan-out still waits for a worker
    missed = svc.runs.create(
        campaign_id, "2025-10-14", "schedule", RunState.MISSED, svc.now(), actor="beat"
    )
    assert missed is not None
    sent_before = list(svc.recorder("sms").taken)
    assert len(sent_before) == 3

    message = control.cancel(svc, name, actor="test")

    assert message == "6 pending deliveries skipped as cancelled"
    assert {r: svc.runs.status(r) for r in (finished, running, paused, fanning_out, missed)} == {
        finished: RunState.FINISHED,
        running: RunState.CANCELLED,
        paused: RunState.CANCELLED,
        fanning_out: RunState.CANCELLED,
        missed: RunState.MISSED,
    }
    for run_id in (running, paused):
        assert _sms_states(svc, run_id) == {("skipped", "cancelled"): 3}
        run = svc.runs.get(run_id)
        assert run is not None and run["finished_at"] == svc.now()
    assert _sms_states(svc, finished) == {("sent", None): 3}
    campaign = svc.campaigns.get(name)
    assert campaign is not None and campaign["status"] == "cancelled"
    assert campaign_id not in svc.memory_dispatcher.schedules

    # What was already queued finds nothing to send, now or when it falls due, and
    # the fan-out that was waiting writes nothing.
    svc.advance(days=4)
    fan_out_queued(svc)
    send_due(svc)
    assert delivery_rows(svc, fanning_out) == []
    assert svc.recorder("sms").taken == sent_before
    assert svc.runs.status(fanning_out) == RunState.CANCELLED


def test_a_campaign_cancelled_while_its_run_fans_out_leaves_nothing_pending(
    svc: StubbedServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_patients(svc, patient("P1"), patient("P2", phone="+16175550101"))
    name = save_campaign(svc)
    run_id = _start(svc, name, "2025-10-16")
    write = DeliveryRepository.add

    def cancelled_meanwhile(repo: DeliveryRepository, *args: Any, **kwargs: Any) -> Any:
        control.cancel(svc, name, actor="staff")
        return write(repo, *args, **kwargs)

    monkeypatch.setattr(DeliveryRepository, "add", cancelled_meanwhile)
    fan_out_queued(svc)

    assert svc.runs.status(run_id) == RunState.CANCELLED
    assert _sms_states(svc, run_id) == {("skipped", "cancelled"): 2}
    assert svc.queued() == {}


def test_a_cancelled_campaign_starts_no_run(svc: StubbedServices) -> None:
    name = save_campaign(svc)
    control.cancel(svc, name, actor="test")
    svc.advance(hours=1)

    with pytest.raises(InputError, match="cancelled"):
        control.run_now(svc, name, actor="test")
    assert svc.memory_dispatcher.fan_outs == []
