"""The sweeper on the stubs (campaigns.sending.sweeper): a claim whose worker died
becomes ``unknown`` and is settled by asking the provider, never resent blindly."""

from __future__ import annotations

from datetime import timedelta

from campaigns.content.catalogue import load_campaign
from campaigns.domain.models import Claimed
from campaigns.domain.states import RunState
from campaigns.sending import control, delivery, sweeper
from tests.sending.builders import add_patients, delivery_rows, patient, save_campaign
from tests.support.stubs import StubbedServices, fan_out_queued, send_due


def _claimed_by_a_worker_that_died(svc: StubbedServices) -> tuple[int, list[Claimed]]:
    """Two SMS deliveries claimed; the first handed to the provider; then the worker died."""
    add_patients(svc, patient("P1"), patient("P2", phone="+16175550101"))
    name = save_campaign(svc)
    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    fan_out_queued(svc)
    assert len(svc.memory_due.pop_due(svc.now())) == 1  # the worker took the batch
    sms = [r["id"] for r in delivery_rows(svc, run_id) if r["channel"] == "sms"]
    claims = svc.deliveries.claim(sms, svc.now())
    assert len(claims) == 2
    _, definition = load_campaign(svc, name)
    first = claims[0]
    recipient = svc.patients.recipients([first.patient_id])[first.patient_id]
    svc.recorder("sms").send(delivery.build_message(svc, definition, first, recipient, "sms"))
    return run_id, claims


def _states(svc: StubbedServices, run_id: int) -> dict[int, str]:
    return {r["id"]: r["state"] for r in delivery_rows(svc, run_id) if r["channel"] == "sms"}


def test_a_dead_claim_is_settled_by_the_provider_sent_if_it_has_it_else_pending_and_queued(
    svc: StubbedServices,
) -> None:
    run_id, (reached, lost) = _claimed_by_a_worker_that_died(svc)
    provider = svc.recorder("sms")
    claimed_at = svc.now()
    timeout = timedelta(seconds=svc.settings.claim_timeout_s)

    svc.set_clock(claimed_at + timeout - timedelta(seconds=1))
    assert sweeper.sweep(svc)["unknown"] == 0
    assert set(_states(svc, run_id).values()) == {"sending"}

    svc.set_clock(claimed_at + timeout + timedelta(seconds=1))
    counts = sweeper.sweep(svc)

    assert (counts["unknown"], counts["reconciled"]) == (2, 2)
    rows = {r["id"]: r for r in delivery_rows(svc, run_id)}
    assert rows[reached.delivery_id]["state"] == "sent"
    assert rows[reached.delivery_id]["provider_id"] == provider.taken[0].provider_id
    assert rows[lost.delivery_id]["state"] == "pending"
    assert svc.queued() == {lost.delivery_id: svc.now()}
    assert len(provider.offered) == 1  # nothing resent by the sweeper itself

    send_due(svc)

    assert provider.taken_ids() == [reached.delivery_id, lost.delivery_id]
    assert _states(svc, run_id) == {reached.delivery_id: "sent", lost.delivery_id: "sent"}
    assert svc.runs.status(run_id) == RunState.FINISHED


def test_a_claim_its_worker_keeps_renewing_is_not_taken_over(svc: StubbedServices) -> None:
    run_id, claims = _claimed_by_a_worker_that_died(svc)
    timeout = timedelta(seconds=svc.settings.claim_timeout_s)

    svc.advance(seconds=timeout.total_seconds() / 2)
    assert svc.deliveries.touch_claims([c.delivery_id for c in claims], svc.now()) == 2
    svc.advance(seconds=timeout.total_seconds() / 2 + 1)

    assert sweeper.sweep(svc)["unknown"] == 0
    assert set(_states(svc, run_id).values()) == {"sending"}
