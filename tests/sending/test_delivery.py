"""The send loop on the stubs (campaigns.sending.delivery): retries until the
campaign's ``max_attempts``, and sends held back until the patient's window opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.domain.models import PatientRecord
from campaigns.domain.states import RunState
from campaigns.errors import TransientError
from campaigns.sending import control
from tests.sending.builders import add_patients, delivery_rows, patient, save_campaign
from tests.support.stubs import StubbedServices, fan_out_queued, send_due


def _start(svc: StubbedServices, name: str, who: PatientRecord) -> tuple[int, int]:
    """Run the campaign now for one patient with SMS consent only; (run, SMS delivery)."""
    add_patients(svc, who)
    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    fan_out_queued(svc)
    (sms,) = [r["id"] for r in delivery_rows(svc, run_id) if r["channel"] == "sms"]
    return run_id, sms


def _row(svc: StubbedServices, run_id: int, delivery_id: int) -> dict[str, object]:
    (row,) = [r for r in delivery_rows(svc, run_id) if r["id"] == delivery_id]
    return row


# giving up -----------------------------------------------------------------------------


@pytest.mark.parametrize("max_attempts", [5, 2], ids=["shipped-5", "2"])
def test_a_delivery_the_provider_keeps_refusing_fails_after_max_attempts_and_not_before(
    svc: StubbedServices, max_attempts: int
) -> None:
    name = save_campaign(svc) if max_attempts == 5 else save_campaign(svc, max_attempts=2)
    run_id, sms = _start(svc, name, patient("P1"))
    provider = svc.recorder("sms")
    provider.fail_always(TransientError("provider busy", "429"))

    for attempt in range(1, max_attempts):
        send_due(svc)
        row = _row(svc, run_id, sms)
        assert len(provider.offered) == attempt
        assert (row["state"], row["attempts"], row["error_reason"]) == (
            "pending",
            attempt,
            "provider busy",
        )
        retry = row["next_attempt_at"]
        assert isinstance(retry, datetime)
        assert svc.queued() == {sms: retry}
        # Not before its time: the retry waits in the due queue until then.
        send_due(svc)
        assert len(provider.offered) == attempt
        svc.set_clock(retry)

    send_due(svc)

    row = _row(svc, run_id, sms)
    assert len(provider.offered) == max_attempts
    assert (row["state"], row["attempts"], row["error_code"]) == ("failed", max_attempts, "429")
    assert row["error_reason"] == f"gave up after {max_attempts} attempts: provider busy"
    assert svc.limiters["sms"].granted == max_attempts
    assert svc.queued() == {}
    assert svc.runs.status(run_id) == RunState.FINISHED
    svc.advance(hours=2)
    send_due(svc)
    assert len(provider.offered) == max_attempts


# the patient's window ------------------------------------------------------------------


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("who", "fanned_out", "picked_up", "opens"),
    [
        # Due at 20:30 in Boston; picked up at 02:00; the window opens at 08:00 EDT.
        (patient("BOSTON"), _utc(15, 0, 30), _utc(15, 6), _utc(15, 12)),
        # Due at 20:30 on Saturday in Houston; picked up at 10:00 on Sunday, inside
        # the federal window but before Texas lets texts go on a Sunday (noon).
        (
            patient("HOUSTON", timezone="America/Chicago", state="TX", phone="+17135550100"),
            _utc(19, 1, 30),
            _utc(19, 15),
            _utc(19, 17),
        ),
    ],
    ids=["night", "texas-sunday-morning"],
)
def test_a_claim_taken_outside_the_patients_window_waits_for_it_and_nothing_goes_early(
    svc: StubbedServices,
    who: PatientRecord,
    fanned_out: datetime,
    picked_up: datetime,
    opens: datetime,
) -> None:
    svc.set_clock(fanned_out)
    run_id, sms = _start(svc, save_campaign(svc), who)
    assert svc.queued() == {sms: fanned_out}  # due at once: the window was open then
    provider = svc.recorder("sms")

    # The batch reaches a worker only hours later (a backlog, a run resumed at night).
    svc.set_clock(picked_up)
    (result,) = send_due(svc)

    assert result.claimed == 1
    assert result.counts == {"pending": 1}
    assert provider.offered == []
    assert svc.limiters["sms"].granted == 0
    row = _row(svc, run_id, sms)
    assert (row["state"], row["next_attempt_at"]) == ("pending", opens)
    assert svc.queued() == {sms: opens}

    svc.set_clock(opens - timedelta(seconds=1))
    assert send_due(svc) == []
    assert provider.offered == []

    svc.set_clock(opens)
    send_due(svc)
    assert [(t.at, t.message.delivery_id) for t in provider.taken] == [(opens, sms)]
    assert _row(svc, run_id, sms)["state"] == "sent"
    assert svc.runs.status(run_id) == RunState.FINISHED


def test_waiting_for_the_patients_window_is_not_one_of_the_tries(svc: StubbedServices) -> None:
    svc.set_clock(_utc(15, 0, 30))
    run_id, sms = _start(svc, save_campaign(svc, max_attempts=2), patient("BOSTON"))
    provider = svc.recorder("sms")
    provider.fail_always(TransientError("provider busy", "429"))
    svc.set_clock(_utc(15, 6))
    send_due(svc)  # 02:00 in Boston: back to pending until 08:00

    svc.set_clock(_utc(15, 12))
    send_due(svc)

    assert len(provider.offered) == 1
    assert _row(svc, run_id, sms)["state"] == "pending"  # one try of two: tried again
