"""Recovery, one mechanism at a time: the sweeper after a worker died mid-send, a
fan-out left behind, pause within a second, and occurrences started or missed
while two beats run."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaigns import keys
from campaigns.content.catalogue import apply_campaign, load_campaign
from campaigns.domain.models import Channel, Outcome
from campaigns.domain.states import DeliveryState
from campaigns.people import status_callbacks
from campaigns.sending import control, runs
from campaigns.sending import sweeper as reconcile
from campaigns.sending.delivery import build_message
from campaigns.sending.fanout import fan_out
from campaigns.services import Services
from campaigns.settings import Settings
from campaigns.transports.outbox import read_outbox
from tasks.dispatcher import TICK_CAMPAIGN
from tests.support.factories import (
    EXAMPLE_CAMPAIGN,
    add_example_patients,
    add_examples,
    claim,
    delivery_states,
)
from tests.support.waiting import wait_until
from tests.support.workers import Workers, beat_ticks, tasks_in_hand


def _later(svc: Services, seconds: float) -> Services:
    """The same services with the clock ``seconds`` ahead: the sweeper, later."""
    shifted = svc.settings.model_copy(
        update={"clock_shift_s": svc.settings.clock_shift_s + seconds}
    )
    return Services(shifted, svc.dispatcher)


def _fanned_out_run(svc: Services) -> int:
    campaign = add_examples(svc)
    run_id = runs.start_run(svc, campaign, actor="test")
    assert run_id is not None
    fan_out(svc, run_id)
    return run_id


def _pending_ids(svc: Services, run_id: int, n: int) -> list[int]:
    rows = next(svc.deliveries.stream_due_pending(run_id, chunk=n))
    return [delivery_id for delivery_id, _, _ in rows]


def test_the_sweeper_reconciles_the_claims_of_a_dead_worker_with_the_provider(
    svc: Services,
) -> None:
    run_id = _fanned_out_run(svc)
    sent_id, unsent_id = _pending_ids(svc, run_id, 2)
    claimed = {c.delivery_id: c for c in claim(svc, [sent_id, unsent_id])}
    # The worker handed the first message to the provider, then died before it
    # recorded anything; the second it never sent.
    c = claimed[sent_id]
    channel: Channel = "sms" if c.channel == "sms" else "email"
    recipient = svc.patients.recipients([c.patient_id])[c.patient_id]
    message = build_message(
        svc, load_campaign(svc, "cold-and-flu-season")[1], c, recipient, channel
    )
    svc.transport(channel).send(message)

    # Within the claim timeout the sweeper leaves live claims alone.
    assert reconcile.sweep(svc)["unknown"] == 0

    later = _later(svc, svc.settings.claim_timeout_s + 1)
    try:
        result = reconcile.sweep(later)
    finally:
        later.close()
    assert result["unknown"] == 2
    assert result["reconciled"] == 2
    rows = {r["id"]: r for r in svc.deliveries.unknown()} or {}
    assert rows == {}
    assert delivery_states(svc, [sent_id, unsent_id]) == {sent_id: "sent", unsent_id: "pending"}
    # It was marked sent from the outbox's record, not sent again.
    assert [m["delivery_id"] for m in read_outbox(svc.settings.outbox_dir)] == [sent_id]


def test_a_fan_out_nobody_is_doing_is_found_by_the_sweeper_and_one_in_progress_is_not(
    svc: Services,
) -> None:
    run_id = runs.start_run(svc, add_examples(svc), actor="test")
    assert run_id is not None
    later = _later(svc, svc.settings.requeue_after_s + 1)
    try:
        assert reconcile.sweep(svc)["stalled_fan_outs"] == []  # too young to judge
        lock = svc.redis.lock(keys.fan_out_lock(run_id), timeout=30)
        assert lock.acquire(blocking=False)
        assert reconcile.sweep(later)["stalled_fan_outs"] == []  # someone is at it
        lock.release()
        assert reconcile.sweep(later)["stalled_fan_outs"] == [run_id]
    finally:
        later.close()
    assert fan_out(svc, run_id) > 0
    assert svc.runs.status(run_id) == "running"


def test_pause_stops_sending_within_a_second_and_resume_sends_the_rest_once(
    svc: Services, env: dict[str, str], workers: Workers
) -> None:
    # The limiter holds the workers to these rates with no burst, so a second of
    # sending is a number of messages: at most a token per channel and 60 a second each.
    rates = {"sms": 60, "email": 60}
    env.update({f"MERIDIAN_{c.upper()}_RATE": str(r) for c, r in rates.items()})
    env.update({f"MERIDIAN_{c.upper()}_BURST": "1" for c in rates})
    campaign = add_examples(svc)
    workers.start(concurrency=2)
    workers.start(beat=False, concurrency=2, queues="send")
    run_id = control.run_now(svc, campaign, actor="test")
    assert run_id is not None
    outbox = svc.settings.outbox_dir

    wait_until(lambda: len(read_outbox(outbox)) >= 100, 60, "sending to start", workers.logs)
    sent_before_pause = len(read_outbox(outbox))
    assert control.pause(svc, campaign, actor="test").endswith("1 run(s) paused")
    # Each slice stops at its next look at the run; once none holds a claim, none
    # can send (a paused run gives out no claims).
    wait_until(
        lambda: runs.run_status(svc, run_id)["by_state"].get("sending", 0) == 0,
        30,
        "the slices in flight to stop",
        workers.logs,
    )
    status = runs.run_status(svc, run_id)
    sent_by_then = read_outbox(outbox)
    assert status["status"] == "paused"
    assert status["by_state"].get("sending", 0) == 0  # unsent claims went back
    assert status["by_state"].get("pending", 0) > 0  # so the pause really cut it short
    # What went out after the pause is no more than a second of sending allows,
    assert len(sent_by_then) - sent_before_pause <= sum(rates.values()) + len(rates)
    # and every message sent is recorded: nothing was still on its way.
    assert len(sent_by_then) == status["by_state"]["sent"]

    control.resume(svc, campaign, actor="test")
    wait_until(
        lambda: runs.run_status(svc, run_id)["status"] == "finished",
        120,
        "the resumed run to finish",
        workers.logs,
    )
    status = runs.run_status(svc, run_id)
    messages = read_outbox(outbox)
    assert len(messages) == status["by_state"]["sent"]
    assert max(Counter(m["delivery_id"] for m in messages).values()) == 1


def _once_campaign(directory: Path, name: str, day: str, send_time: str, grace: float) -> Path:
    text = EXAMPLE_CAMPAIGN.read_text(encoding="utf-8")
    text = text.replace("name: cold-and-flu-season", f"name: {name}")
    text = text.replace("rrule: FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15", f"once: {day}")
    text = text.replace('send_time: "10:00"', f'send_time: "{send_time}"')
    text = text.replace("grace_hours: 6", f"grace_hours: {grace}")
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("beats", [2])
def test_with_two_beats_an_occurrence_within_grace_starts_once_and_a_later_one_is_missed_once(
    svc: Services, workers: Workers, tmp_path: Path, beats: int
) -> None:
    add_example_patients(svc)
    clinic_now = svc.now().astimezone(ZoneInfo(svc.settings.clinic_timezone))
    today = clinic_now.date().isoformat()
    # Beat was down at both send times. One is an hour ago with 6 hours of grace;
    # the other was three hours ago with one hour of grace.
    hour_ago = (clinic_now - timedelta(hours=1)).strftime("%H:%M")
    three_ago = (clinic_now - timedelta(hours=3)).strftime("%H:%M")
    if clinic_now.hour < 4:
        pytest.skip("the clinic's day is too young for a send time three hours ago")
    apply_campaign(
        svc, _once_campaign(tmp_path, "late-ok", today, hour_ago, 6), actor="t", approve=True
    )
    apply_campaign(
        svc, _once_campaign(tmp_path, "too-late", today, three_ago, 1), actor="t", approve=True
    )
    for _ in range(beats):
        workers.start(beat=True)
    control.schedule(svc, "late-ok", actor="test")
    control.schedule(svc, "too-late", actor="test")

    def runs_of(name: str) -> list[dict[str, object]]:
        row, _ = load_campaign(svc, name)
        return svc.runs.of_campaign(int(row["id"]))

    wait_until(
        lambda: len(runs_of("late-ok")) == 1 and len(runs_of("too-late")) == 1,
        30,
        "both occurrences to be handled",
        workers.logs,
    )
    # More ticks, from the test too, as a third beat would: nothing more happens.
    for name in ("late-ok", "too-late"):
        row, _ = load_campaign(svc, name)
        assert runs.tick_campaign(svc, int(row["id"])) == []
    # Give the beats two more ticks of their own, then let every campaign tick they
    # sent be done, before counting the runs.
    ticks = beat_ticks(svc.redis)
    wait_until(lambda: beat_ticks(svc.redis) >= ticks + 2, 30, "two beat ticks", workers.logs)
    wait_until(
        lambda: tasks_in_hand(svc.redis, TICK_CAMPAIGN, keys.RUNS_QUEUE) == 0,
        30,
        "the campaign ticks sent to be done",
        workers.logs,
    )
    started, missed = runs_of("late-ok"), runs_of("too-late")
    assert [(r["occurrence"], r["trigger"]) for r in started] == [(today, "schedule")]
    assert started[0]["status"] in ("fanning_out", "running", "finished")
    assert [(r["occurrence"], r["status"]) for r in missed] == [(today, "missed")]


def test_settings_refuse_a_claim_timeout_a_slow_provider_could_outlast(env: dict[str, str]) -> None:
    values = {k.removeprefix("MERIDIAN_").lower(): v for k, v in env.items()}
    values.update(sms_transport="twilio", twilio_timeout_s="30", claim_timeout_s="60")
    with pytest.raises(ValueError, match="CLAIM_TIMEOUT_S"):
        Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_a_delivery_report_that_beats_the_send_record_is_applied_by_the_sweeper(
    svc: Services,
) -> None:
    run_id = _fanned_out_run(svc)
    (delivery_id,) = _pending_ids(svc, run_id, 1)
    claim(svc, [delivery_id])
    # Twilio's callback arrives while the slice is still sending: no delivery has
    # the SID yet.
    assert status_callbacks.handle_status(svc, "SMearly", "delivered", None).delivery_id is None
    assert reconcile.sweep(svc)["early_statuses"] == 0  # still nothing to apply it to
    svc.deliveries.record(
        [Outcome(delivery_id, DeliveryState.SENT, provider_id="SMearly")], svc.now()
    )

    assert reconcile.sweep(svc)["early_statuses"] == 1
    assert delivery_states(svc, [delivery_id]) == {delivery_id: "delivered"}
    assert svc.redis.hlen(keys.EARLY_STATUSES) == 0
