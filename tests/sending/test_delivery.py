"""The send loop on the stubs (campaigns.sending.delivery): retries until the
campaign's ``max_attempts``, and sends held back until the patient's window opens."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from campaigns.domain.models import PatientRecord
from campaigns.domain.states import Channel, RunState
from campaigns.errors import TransientError
from campaigns.sending import control, delivery
from campaigns.sending.stubs import MemoryLimiter
from tests.conftest import ROOT, make_settings
from tests.sending.builders import add_patients, delivery_rows, patient, save_campaign
from tests.sending.conftest import MIDDAY
from tests.support.stubs import (
    RecordingTransport,
    SlowLimiter,
    StubbedServices,
    fan_out_queued,
    send_due,
)


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


# the rate limiter's wait -------------------------------------------------------------


def test_a_message_judged_lawful_before_the_rate_limiters_wait_is_held_if_the_window_closed(
    svc: StubbedServices,
) -> None:
    # 20:59:55 in Boston: lawful when the claim is judged; the shared limiter's token
    # comes ten seconds later, after 21:00.
    svc.set_clock(_utc(16, 0, 59) + timedelta(seconds=55))
    run_id, sms = _start(svc, save_campaign(svc), patient("BOSTON"))
    svc.use_limiter("sms", SlowLimiter(svc, timedelta(seconds=10)))
    provider = svc.recorder("sms")

    (result,) = send_due(svc)

    assert provider.offered == []
    assert result.counts == {"pending": 1}
    row = _row(svc, run_id, sms)
    opens = _utc(16, 12)  # 08:00 EDT on Thursday
    assert (row["state"], row["next_attempt_at"], row["attempts"]) == ("pending", opens, 0)
    assert svc.queued() == {sms: opens}


def test_a_processs_first_transport_is_built_before_its_rate_limiter_slot(
    svc: StubbedServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building a transport can take tens of milliseconds (the twilio SDK imports its
    # API modules): between the slot and the send it would make the text land late.
    events: list[str] = []
    build = svc._make_transport

    def built(channel: Channel) -> RecordingTransport:
        events.append(f"built {channel}")
        return build(channel)

    class Recording(MemoryLimiter):
        def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
            events.append("slot")
            return super().reserve(n, timeout_s)

    monkeypatch.setattr(svc, "_make_transport", built)
    svc.use_limiter("sms", Recording())
    _start(svc, save_campaign(svc), patient("BOSTON"))

    (result,) = send_due(svc)

    assert result.counts == {"sent": 1}
    assert events.count("slot") == 1
    assert events.index("built sms") < events.index("slot")


class _FarSlot(MemoryLimiter):
    """A limiter whose every slot is ``wait_s`` away, as for one of many senders
    sharing a slow rate."""

    def __init__(self, wait_s: float) -> None:
        super().__init__()
        self.wait_s = wait_s

    def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
        super().reserve(n, timeout_s)
        return self.wait_s


class _Clock:
    """``time`` for campaigns.sending.delivery: a sleep moves the monotonic clock and
    the services' clock together, and runs ``during`` first."""

    def __init__(self, svc: StubbedServices, during: Callable[[], None] = lambda: None) -> None:
        self.svc, self.during, self.at = svc, during, 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.during()
        self.at += seconds
        self.svc.advance(seconds=seconds)


def test_a_sender_waiting_for_a_distant_slot_renews_its_claim_and_sends_when_it_comes(
    svc: StubbedServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, sms = _start(svc, save_campaign(svc), patient("BOSTON"))
    svc.use_limiter("sms", _FarSlot(wait_s=150.0))  # longer than a claim lives (120 s)
    clock = _Clock(svc)
    monkeypatch.setattr(delivery, "time", clock)
    claims: list[object] = []
    touch = svc.deliveries.touch_claims

    def touched(ids: Sequence[int], now: datetime) -> int:
        claims.append(now)
        return touch(ids, now)

    monkeypatch.setattr(svc.deliveries, "touch_claims", touched)

    (result,) = send_due(svc)

    assert result.counts == {"sent": 1}
    assert len(svc.recorder("sms").offered) == 1
    # Renewed every half second of the wait, and it slept no further than its slot.
    assert len(claims) == 299
    assert sum(clock.slept) == pytest.approx(150.0)
    assert _row(svc, run_id, sms)["state"] == "sent"


def test_a_sender_waiting_for_a_distant_slot_stops_when_the_run_is_paused_meanwhile(
    svc: StubbedServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = save_campaign(svc)
    run_id, sms = _start(svc, name, patient("BOSTON"))
    svc.use_limiter("sms", _FarSlot(wait_s=30.0))
    clock = _Clock(svc, during=lambda: control.pause(svc, name, actor="test"))
    monkeypatch.setattr(delivery, "time", clock)

    send_due(svc)

    # It saw the pause at its first look, half a second in, and sent nothing: the
    # claim went back to pending, the slot it held is lost.
    assert svc.recorder("sms").offered == []
    assert clock.slept == [0.5]
    assert _row(svc, run_id, sms)["state"] == "pending"


def test_senders_at_a_fast_shared_rate_still_look_at_the_run_every_half_second(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 texts a second: a slice of ten, each text's slot a fifth of a second away.
    svc = StubbedServices(
        make_settings(tmp_path, database_url=database_url, sms_rate=10), at=MIDDAY
    )
    svc.db.upgrade()
    try:
        name = save_campaign(svc)
        add_patients(svc, *(patient(f"P{i}") for i in range(10)))
        assert control.run_now(svc, name, actor="test") is not None
        fan_out_queued(svc)
        svc.use_limiter("sms", _FarSlot(wait_s=0.2))
        paused: list[str] = []

        def pause_once() -> None:
            if not paused:
                paused.append(control.pause(svc, name, actor="test"))

        monkeypatch.setattr(delivery, "time", _Clock(svc, during=pause_once))

        send_due(svc)

        # Paused during the first wait: seen at the first look between sends, half a
        # second in, after three texts, not after the whole slice.
        assert len(svc.recorder("sms").offered) == 3
    finally:
        svc.close()


# messages that can never be rendered or timed ---------------------------------------

LONG_NAME = "Bartholomew-Maximilian Featherstonehaugh"  # 40 characters
# Renders for the trial sample ("Maximiliana", 13 * 3,000 characters) and for Robin,
# but past the sandbox's 100,000 characters for a 40-letter first name.
PADDED = (
    '{{ clinic.name }}: Hi {{ (patient.first_name ~ "! ") * 3000 }}'
    "Book a visit: {{ clinic.phone }}. Reply STOP to opt out"
)


@pytest.fixture
def own_templates(tmp_path: Path, database_url: str) -> Iterator[StubbedServices]:
    """The stubs on a copy of the shipped templates, which the test edits."""
    copied = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", copied)
    settings = make_settings(tmp_path, database_url=database_url, templates_dir=copied)
    services = StubbedServices(settings, at=MIDDAY)
    services.db.upgrade()
    yield services
    services.close()


def _sms_template(svc: StubbedServices) -> Path:
    return svc.settings.templates_dir / "cold-and-flu-season" / "sms.txt.j2"


def _run_both(
    svc: StubbedServices, good: PatientRecord, bad: PatientRecord
) -> tuple[int, dict[str, int]]:
    names = add_patients(svc, good, bad)
    run_id = control.run_now(svc, save_campaign(svc), actor="test")
    assert run_id is not None
    fan_out_queued(svc)
    rows = delivery_rows(svc, run_id)
    ids = {names[r["patient_id"]]: r["id"] for r in rows if r["channel"] == "sms"}
    return run_id, ids


def _finishes_with_one_failure(
    svc: StubbedServices, run_id: int, ids: dict[str, int], bad: str
) -> str:
    """Sends what is due twice over; the bad delivery failed once, every other sent, the
    run finished and nothing left queued. The failure's reason."""
    provider = svc.recorder("sms")
    (result,) = send_due(svc)
    assert result.claimed == len(ids)
    svc.advance(seconds=1)
    assert send_due(svc) == []  # nothing given back to try again
    rows = {r["id"]: r for r in delivery_rows(svc, run_id)}
    states = {name: rows[i]["state"] for name, i in ids.items()}
    assert result.counts == {"sent": len(ids) - 1, "failed": 1}
    assert states == {name: "failed" if name == bad else "sent" for name in ids}
    assert rows[ids[bad]]["attempts"] == 1
    assert sorted(provider.taken_ids()) == sorted(i for n, i in ids.items() if n != bad)
    assert svc.queued() == {}
    assert svc.runs.status(run_id) == RunState.FINISHED
    reason = rows[ids[bad]]["error_reason"]
    assert isinstance(reason, str)
    return reason


def test_a_template_the_sandbox_refuses_for_one_patients_values_fails_that_delivery_only(
    own_templates: StubbedServices,
) -> None:
    svc = own_templates
    _sms_template(svc).write_text(PADDED)
    long_name = dataclasses.replace(patient("LONG"), first_name=LONG_NAME)
    run_id, ids = _run_both(svc, patient("ROBIN"), long_name)

    reason = _finishes_with_one_failure(svc, run_id, ids, "LONG")

    assert reason.startswith("the message could not be rendered: cold-and-flu-season/sms.txt.j2:1")
    assert "refused by the sandbox" in reason
    assert LONG_NAME not in reason and "Bartholomew" not in reason


@pytest.mark.parametrize(
    ("edited", "says"),
    [
        ("{{ clinic.name }}: Hi {{ patient.first_name }. Reply STOP to opt out", "syntax error"),
        ("{{ clinic.name }}: Hi {{ patient.nickname }}. Reply STOP to opt out", "unknown variable"),
    ],
    ids=["syntax-error", "unknown-variable"],
)
def test_a_template_edited_on_disk_after_the_run_started_fails_each_delivery_once(
    own_templates: StubbedServices, edited: str, says: str
) -> None:
    svc = own_templates
    names = add_patients(svc, patient("P1"), patient("P2"))
    run_id = control.run_now(svc, save_campaign(svc), actor="test")
    assert run_id is not None
    fan_out_queued(svc)
    _sms_template(svc).write_text(edited)
    svc.new_worker_renderer()  # a worker that starts now reads the edited file

    (result,) = send_due(svc)
    svc.advance(seconds=1)
    assert send_due(svc) == []

    assert result.counts == {"failed": 2}
    rows = [r for r in delivery_rows(svc, run_id) if r["channel"] == "sms"]
    assert {(names[r["patient_id"]], r["state"], r["attempts"]) for r in rows} == {
        ("P1", "failed", 1),
        ("P2", "failed", 1),
    }
    for r in rows:
        assert r["error_reason"].startswith(
            "the message could not be rendered: cold-and-flu-season/sms.txt.j2:1: " + says
        )
        assert "Robin" not in r["error_reason"]
    assert svc.recorder("sms").offered == []
    assert svc.runs.status(run_id) == RunState.FINISHED


@pytest.mark.parametrize(
    ("zone", "state"),
    [("Mars/Olympus_Mons", "MA"), ("America/New_York", "ZZ")],
    ids=["zone", "state"],
)
def test_a_patient_whose_stored_zone_or_state_is_not_valid_fails_and_the_others_go(
    svc: StubbedServices, zone: str, state: str
) -> None:
    # Imported past the CSV's checks (an older import, a zone tzdata has since dropped).
    bad = patient("BAD", timezone=zone, state=state)
    run_id, ids = _run_both(svc, patient("GOOD"), bad)

    reason = _finishes_with_one_failure(svc, run_id, ids, "BAD")

    assert reason == "the patient's stored zone/state is not valid"


# slices -------------------------------------------------------------------------------


def test_an_email_only_campaign_claims_a_second_of_email_not_of_sms(
    svc: StubbedServices,
) -> None:
    # 1 text and 10 emails a second (the defaults): an email-only batch of six is one
    # slice, not six slices of one text each.
    assert (svc.settings.sms_rate, svc.settings.email_rate) == (1.0, 10.0)
    add_patients(svc, *(patient(f"P{i}", sms=None, email=True) for i in range(6)))
    run_id = control.run_now(svc, save_campaign(svc, channels=["email"]), actor="test")
    assert run_id is not None
    fan_out_queued(svc)

    (result,) = send_due(svc)

    assert result.counts == {"sent": 6}
    assert len(svc.memory_tally.slices) == 1
