"""Fan-out on the stubs: who the shipped campaign's audience takes, which channel the
``preferred`` policy picks, and when each delivery is due (campaigns.sending.fanout)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from campaigns.content.catalogue import campaign_summary
from campaigns.domain.states import RunState
from campaigns.sending import control, fanout, runs
from campaigns.store.deliveries import DeliveryRepository
from tests.sending.builders import (
    add_patients,
    delivery_rows,
    due_times,
    patient,
    plan,
    save_campaign,
)
from tests.support.stubs import StubbedServices, fan_out_queued, send_due

# audience dates -----------------------------------------------------------------------

# 02:00 UTC on 15 October is still the 14th at the clinic (America/New_York): the
# audience's days count from the clinic's date, not UTC's.
LATE_EVENING = datetime(2025, 10, 15, 2, 0, tzinfo=UTC)
CLINIC_TODAY = date(2025, 10, 14)
RECENT = CLINIC_TODAY - timedelta(days=30)


def test_the_shipped_audience_takes_patients_seen_within_730_days_and_not_booked_within_14(
    svc: StubbedServices,
) -> None:
    svc.set_clock(LATE_EVENING)
    names = add_patients(
        svc,
        patient("SEEN-730-DAYS-AGO", last_visit=CLINIC_TODAY - timedelta(days=730)),
        patient("SEEN-731-DAYS-AGO", last_visit=CLINIC_TODAY - timedelta(days=731)),
        patient("SEEN-TODAY", last_visit=CLINIC_TODAY),
        patient("NEVER-SEEN", last_visit=None),
        patient("BOOKED-TODAY", last_visit=RECENT, next_appointment=CLINIC_TODAY),
        patient(
            "BOOKED-IN-14-DAYS",
            last_visit=RECENT,
            next_appointment=CLINIC_TODAY + timedelta(days=14),
        ),
        patient(
            "BOOKED-IN-15-DAYS",
            last_visit=RECENT,
            next_appointment=CLINIC_TODAY + timedelta(days=15),
        ),
        patient(
            "BOOKED-YESTERDAY",
            last_visit=RECENT,
            next_appointment=CLINIC_TODAY - timedelta(days=1),
        ),
        patient("NOT-BOOKED", last_visit=RECENT, next_appointment=None),
    )
    name = save_campaign(svc)

    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    fan_out_queued(svc)

    reached = {p for p, _, _, _ in plan(svc, run_id, names)}
    assert reached == {
        "SEEN-730-DAYS-AGO",
        "SEEN-TODAY",
        "BOOKED-IN-15-DAYS",
        "BOOKED-YESTERDAY",
        "NOT-BOOKED",
    }
    # The count staff see before running it is the same audience.
    assert campaign_summary(svc, name, audience=True).audience == len(reached)


# the preferred channel policy ---------------------------------------------------------


def test_the_preferred_policy_sends_one_channel_the_preferred_one_when_consented(
    svc: StubbedServices,
) -> None:
    names = add_patients(
        svc,
        patient("PREFERS-EMAIL", preferred="email", sms=True, email=True),
        patient("PREFERS-EMAIL-NO-EMAIL-CONSENT", preferred="email", sms=True, email=None),
        patient("PREFERS-SMS-HAS-NEITHER", preferred="sms", sms=False, email=None),
        patient("NO-PREFERENCE", preferred=None, sms=True, email=True),
    )
    name = save_campaign(svc, name="preferred-channel", channel_policy="preferred")

    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    fan_out_queued(svc)

    assert plan(svc, run_id, names) == {
        ("PREFERS-EMAIL", "email", "pending", None),
        # Not consented on the preferred channel: the other one, which is.
        ("PREFERS-EMAIL-NO-EMAIL-CONSENT", "sms", "pending", None),
        # Neither: one row, on the preferred channel, with its reason.
        ("PREFERS-SMS-HAS-NEITHER", "sms", "skipped", "opted_out"),
        # No preference: the campaign's first channel.
        ("NO-PREFERENCE", "sms", "pending", None),
    }


def test_a_preferred_channel_the_campaign_does_not_use_yields_to_the_campaigns_own(
    svc: StubbedServices,
) -> None:
    names = add_patients(
        svc,
        patient("PREFERS-SMS", preferred="sms", sms=True, email=True),
        patient("PREFERS-SMS-NO-EMAIL-CONSENT", preferred="sms", sms=True, email=None),
    )
    name = save_campaign(svc, name="email-only", channels=["email"], channel_policy="preferred")

    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    fan_out_queued(svc)

    assert plan(svc, run_id, names) == {
        ("PREFERS-SMS", "email", "pending", None),
        ("PREFERS-SMS-NO-EMAIL-CONSENT", "email", "skipped", "no_consent"),
    }


# due times ----------------------------------------------------------------------------

# Sunday 19 October 2025, 08:00 in Boston: before anyone's 10:00 send time.
SUNDAY_MORNING = datetime(2025, 10, 19, 12, 0, tzinfo=UTC)


def _everywhere(svc: StubbedServices) -> dict[int, str]:
    return add_patients(
        svc,
        patient("BOSTON", email=True),
        patient(
            "LOS-ANGELES",
            timezone="America/Los_Angeles",
            state="CA",
            phone="+13105550100",
            email=True,
        ),
        patient(
            "HOUSTON", timezone="America/Chicago", state="TX", phone="+17135550100", email=True
        ),
        # No zone and no state on file: both come from the Austin (512) area code,
        # not from the clinic's zone.
        patient("AUSTIN-BY-PHONE", timezone=None, state=None, phone="+15125550100", email=True),
    )


def _hour(day: int, hour: int) -> datetime:
    return datetime(2025, 10, day, hour, 0, tzinfo=UTC)


def test_an_occurrence_is_due_at_the_send_time_on_each_patients_clock_moved_into_their_hours(
    svc: StubbedServices,
) -> None:
    svc.set_clock(SUNDAY_MORNING)
    names = _everywhere(svc)
    name = save_campaign(svc)  # send_time 10:00

    run_id = runs.start_run(svc, name, occurrence="2025-10-19", trigger="schedule", actor="beat")
    assert run_id is not None
    svc.memory_dispatcher.queue_fan_out(run_id)
    fan_out_queued(svc)

    due = due_times(svc, run_id, names)
    assert due == {
        ("BOSTON", "sms"): _hour(19, 14),  # 10:00 EDT
        ("BOSTON", "email"): _hour(19, 14),
        ("LOS-ANGELES", "sms"): _hour(19, 17),  # 10:00 PDT
        ("LOS-ANGELES", "email"): _hour(19, 17),
        # Texas allows marketing texts from noon on Sundays; email keeps 10:00 CDT.
        ("HOUSTON", "sms"): _hour(19, 17),
        ("HOUSTON", "email"): _hour(19, 15),
        ("AUSTIN-BY-PHONE", "sms"): _hour(19, 17),
        ("AUSTIN-BY-PHONE", "email"): _hour(19, 15),
    }
    assert svc.runs.status(run_id) == RunState.RUNNING
    # Each is queued for its own due time, so none is handed to a worker early.
    pending = [r for r in delivery_rows(svc, run_id) if r["state"] == "pending"]
    assert svc.queued() == {r["id"]: r["due_at"] for r in pending}


def test_an_occurrence_fanned_out_after_a_patients_send_time_is_due_at_once(
    svc: StubbedServices,
) -> None:
    late = _hour(19, 15) + timedelta(minutes=30)  # 11:30 in Boston, 08:30 in Los Angeles
    svc.set_clock(late)
    names = add_patients(
        svc,
        patient("BOSTON"),
        patient("LOS-ANGELES", timezone="America/Los_Angeles", state="CA"),
    )
    name = save_campaign(svc)

    run_id = runs.start_run(svc, name, occurrence="2025-10-19", trigger="schedule", actor="beat")
    assert run_id is not None
    svc.memory_dispatcher.queue_fan_out(run_id)
    fan_out_queued(svc)

    assert due_times(svc, run_id, names) == {
        ("BOSTON", "sms"): late,
        ("LOS-ANGELES", "sms"): _hour(19, 17),
    }


def test_a_run_now_is_due_at_once_where_the_patient_is_in_hours_else_when_they_open(
    svc: StubbedServices,
) -> None:
    # 23:00 in Boston, 22:00 in Texas, 20:00 in Los Angeles, on Tuesday the 14th.
    svc.set_clock(_hour(15, 3))
    names = _everywhere(svc)
    name = save_campaign(svc)

    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    assert svc.memory_dispatcher.fan_outs == [run_id]
    fan_out_queued(svc)

    assert due_times(svc, run_id, names) == {
        ("BOSTON", "sms"): _hour(15, 12),  # 08:00 EDT on Wednesday
        ("BOSTON", "email"): _hour(15, 12),
        ("LOS-ANGELES", "sms"): _hour(15, 3),  # now
        ("LOS-ANGELES", "email"): _hour(15, 3),
        ("HOUSTON", "sms"): _hour(15, 14),  # Texas texts from 09:00 CDT
        ("HOUSTON", "email"): _hour(15, 13),  # 08:00 CDT
        ("AUSTIN-BY-PHONE", "sms"): _hour(15, 14),
        ("AUSTIN-BY-PHONE", "email"): _hour(15, 13),
    }


# shared numbers -----------------------------------------------------------------------


def test_a_shared_number_goes_to_the_next_patient_when_the_first_has_no_lawful_time(
    svc: StubbedServices,
) -> None:
    # Sunday: Rhode Island allows no marketing texts, so the first patient on the
    # number (an RI address) has no lawful time within the 6 h grace; the second, with
    # a Massachusetts address, may have the text at 10:00.
    svc.set_clock(SUNDAY_MORNING)
    shared = "+16175550199"
    names = add_patients(
        svc,
        patient("RHODE-ISLAND", state="RI", phone=shared),
        patient("MASSACHUSETTS", state="MA", phone=shared),
    )
    name = save_campaign(svc)

    run_id = runs.start_run(svc, name, occurrence="2025-10-19", trigger="schedule", actor="beat")
    assert run_id is not None
    svc.memory_dispatcher.queue_fan_out(run_id)
    fan_out_queued(svc)

    sms = {(p, s, r) for p, ch, s, r in plan(svc, run_id, names) if ch == "sms"}
    assert sms == {
        ("RHODE-ISLAND", "skipped", "no_lawful_time"),
        ("MASSACHUSETTS", "pending", None),
    }
    assert due_times(svc, run_id, names)[("MASSACHUSETTS", "sms")] == _hour(19, 14)

    # ... and has it: the RI patient's skip takes nothing from the number.
    svc.set_clock(_hour(19, 14))
    send_due(svc)
    assert [t.message.to for t in svc.recorder("sms").taken] == [shared]


# sending while fanning out -------------------------------------------------------------

WEEKDAY_MORNING = datetime(2025, 10, 15, 15, 0, tzinfo=UTC)  # 11:00 in Boston


def test_a_run_on_postgresql_sends_each_chunk_while_the_rest_is_still_being_written(
    svc: StubbedServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc.set_clock(WEEKDAY_MORNING)
    names = add_patients(svc, patient("FIRST"), patient("SECOND"), patient("THIRD"))
    name = save_campaign(svc)
    monkeypatch.setattr(fanout, "FAN_OUT_CHUNK", 1)
    write = DeliveryRepository.add
    seen: list[tuple[RunState | None, int]] = []

    def send_what_is_queued_then_write(
        repo: DeliveryRepository, *args: Any, **kwargs: Any
    ) -> list[tuple[int, datetime]]:
        # What the workers do meanwhile: the pump and the send queue, before each chunk.
        send_due(svc)
        seen.append((svc.runs.status(run_id), len(svc.recorder("sms").taken)))
        return write(repo, *args, **kwargs)

    run_id = control.run_now(svc, name, actor="test")
    assert run_id is not None
    monkeypatch.setattr(DeliveryRepository, "add", send_what_is_queued_then_write)
    fan_out_queued(svc)

    # Before the second and third chunks were written, the chunks before them were
    # sent, on both databases.
    assert seen == [(RunState.FANNING_OUT, n) for n in (0, 1, 2)]
    send_due(svc)
    taken = [t.message.to for t in svc.recorder("sms").taken]
    assert len(taken) == len(set(taken)) == 3
    assert {p for p, ch, s, _ in plan(svc, run_id, names) if s == "sent"} == set(names.values())
    assert svc.runs.status(run_id) == RunState.FINISHED


def test_a_run_fanning_out_is_not_finished_by_its_first_sends(svc: StubbedServices) -> None:
    svc.set_clock(WEEKDAY_MORNING)
    names = add_patients(svc, patient("WRITTEN"), patient("NOT-YET"))
    name = save_campaign(svc)
    run_id = runs.start_run(svc, name, occurrence="2025-10-15", trigger="schedule", actor="beat")
    assert run_id is not None
    # A fan-out wrote and queued its first chunk, and is at the next one.
    first = next(i for i, n in names.items() if n == "WRITTEN")
    written = svc.deliveries.add(
        run_id,
        [{"patient_id": first, "channel": "sms", "state": "pending", "due_at": svc.now()}],
        svc.now(),
    )
    fanout._queue_chunk(svc, run_id, written)

    send_due(svc)

    assert len(svc.recorder("sms").taken) == 1
    assert svc.runs.status(run_id) == RunState.FANNING_OUT


def test_a_fan_out_that_takes_over_queues_what_its_predecessor_wrote(
    svc: StubbedServices,
) -> None:
    svc.set_clock(WEEKDAY_MORNING)
    names = add_patients(svc, patient("WRITTEN-BEFORE"), patient("WRITTEN-AFTER"))
    name = save_campaign(svc)
    run_id = runs.start_run(svc, name, occurrence="2025-10-15", trigger="schedule", actor="beat")
    assert run_id is not None
    # The first fan-out died after committing a chunk and before queueing it.
    first = next(i for i, n in names.items() if n == "WRITTEN-BEFORE")
    svc.deliveries.add(
        run_id,
        [{"patient_id": first, "channel": "sms", "state": "pending", "due_at": svc.now()}],
        svc.now(),
    )
    svc.memory_dispatcher.queue_fan_out(run_id)
    fan_out_queued(svc)
    send_due(svc)

    taken = [t.message.to for t in svc.recorder("sms").taken]
    assert len(taken) == len(set(taken)) == 2
    assert svc.runs.status(run_id) == RunState.FINISHED
