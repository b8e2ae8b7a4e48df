"""A campaign's results as staff read them (campaigns.store.results aggregated in SQL,
campaigns.sending.results in words), on SQLite and PostgreSQL, against ledgers made by
the factories: every figure must be the ledger's own count."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rich.console import Console

from campaigns.cli.progress import print_summary
from campaigns.domain.models import Outcome, PendingAgain
from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.sending import chart, results
from campaigns.sending.runs import run_status
from campaigns.services import Services
from tests.support.factories import (
    add_campaign,
    add_deliveries,
    add_example_campaign,
    add_patients,
    add_run,
    claim,
    delivery_rows,
    patient_record,
)

T0 = datetime(2027, 10, 15, 14, 0, tzinfo=UTC)


def _patients(svc: Services, n: int, prefix: str = "R") -> list[int]:
    return add_patients(svc, [patient_record(f"{prefix}{i:04d}") for i in range(n)])


def _send(svc: Services, ids: list[int], at: datetime, state: DeliveryState, **kw: object) -> None:
    claim(svc, ids, at)
    svc.deliveries.record([Outcome(i, state, **kw) for i in ids], at)  # type: ignore[arg-type]


def _mixed_run(svc: Services, campaign_id: int, occurrence: str, pids: list[int]) -> int:
    """A run with texts sent, delivered, undelivered, failed, skipped and pending, and
    emails sent and skipped."""
    run_id = add_run(svc, campaign_id, occurrence=occurrence)
    sms = add_deliveries(svc, run_id, pids[:30], due_at=T0 - timedelta(minutes=1))
    email = add_deliveries(svc, run_id, pids[:10], channel="email", due_at=T0)
    add_deliveries(
        svc, run_id, pids[30:34], state=DeliveryState.SKIPPED, skip_reason=SkipReason.NO_CONSENT
    )
    _send(svc, sms[:12], T0, DeliveryState.SENT, provider_id=None)
    for i in sms[:5]:
        svc.deliveries.set_status(i, DeliveryState.DELIVERED, None, T0)
    svc.deliveries.set_status(sms[5], DeliveryState.UNDELIVERED, "30003", T0)
    _send(svc, sms[12:15], T0, DeliveryState.FAILED, error_code="21211", error_reason="bad number")
    _send(svc, email[:6], T0, DeliveryState.SENT)
    _send(svc, email[6:8], T0, DeliveryState.SKIPPED, skip_reason=SkipReason.SUPPRESSED)
    return run_id


def _ledger_figures(svc: Services, run_id: int) -> dict[str, object]:
    rows = delivery_rows(svc, run_id)
    states = Counter(r["state"] for r in rows)
    sms = any(r["channel"] == "sms" for r in rows)
    return {
        "sent": states["sent"] + states["delivered"] + states["undelivered"],
        "delivered": sum(1 for r in rows if r["state"] == "delivered" and r["channel"] == "sms")
        if sms
        else None,
        "failed": states["failed"] + states["undelivered"],
        "skipped": states["skipped"],
        "pending": states["pending"] + states["sending"] + states["unknown"],
    }


def test_the_campaign_list_shows_each_last_runs_counts_as_the_ledger_has_them(
    svc: Services,
) -> None:
    pids = _patients(svc, 40)
    first = add_campaign(svc, "first")
    _mixed_run(svc, first, "2027-10-14", pids)
    latest = _mixed_run(svc, first, "2027-10-15", pids)
    email_only = add_campaign(svc, "email-only")
    email_run = add_run(svc, email_only)
    email = add_deliveries(svc, email_run, pids[:3], channel="email")
    _send(svc, email, T0, DeliveryState.SENT)
    add_campaign(svc, "never-run")

    listed = {c["name"]: c for c in results.campaign_overview(svc)}

    got = listed["first"]["last_run"]
    assert got["run_id"] == latest
    assert {k: got[k] for k in ("sent", "delivered", "failed", "skipped", "pending")} == (
        _ledger_figures(svc, latest)
    )
    assert got["sent"] == 18 and got["delivered"] == 5 and got["failed"] == 4
    assert listed["email-only"]["last_run"]["delivered"] is None  # email has no reports
    assert listed["email-only"]["last_run"]["sent"] == 3
    assert listed["never-run"]["last_run"] is None
    assert listed["never-run"]["next"] == "not scheduled (draft)"


def test_messages_over_time_add_up_to_what_was_handed_over_bucket_by_bucket(
    svc: Services,
) -> None:
    pids = _patients(svc, 60)
    run_id = add_run(svc, add_campaign(svc))
    ids = add_deliveries(svc, run_id, pids, due_at=T0)
    times = [T0 + timedelta(minutes=m) for m in (0, 3, 7, 7, 55, 119)]
    for k, at in enumerate(times):
        _send(svc, ids[k * 10 : k * 10 + 10], at, DeliveryState.SENT)

    span = svc.results.sent_span(run_id)
    assert span is not None
    assert span[0] == times[0] and span[-1] == times[-1]
    size, name = chart.choose_bucket(*span)
    assert (size, name) == (300, "5 minutes")
    zone = ZoneInfo("America/Chicago")
    rows = svc.results.sent_over_time(run_id, size, chart.offset_s(zone, span[0]))

    assert sum(n for _, _, n in rows) == 60
    expected: Counter[datetime] = Counter()
    for r in delivery_rows(svc, run_id):
        (start,) = [b for b, _, _ in rows if b <= r["sent_at"] < b + timedelta(seconds=size)]
        expected[start] += 1
    assert dict(expected) == {b: n for b, _, n in rows}

    drawn = results.messages_over_time(svc, run_id, zone)
    assert drawn["total"] == 60 and not drawn["empty"]
    assert len(drawn["bars"]) == 24  # two hours in 5-minute bars, empty ones included
    assert drawn["zone"] == "CDT" and drawn["top"] == 20
    assert drawn["bars"][0]["label"] == "09:00"


def test_a_run_with_nothing_sent_has_an_empty_chart(svc: Services) -> None:
    run_id = add_run(svc, add_campaign(svc))
    add_deliveries(svc, run_id, _patients(svc, 3), due_at=T0)
    assert svc.results.sent_span(run_id) is None
    assert results.messages_over_time(svc, run_id, ZoneInfo("America/New_York"))["empty"]


def test_pending_deliveries_are_grouped_by_due_time_and_by_why_they_wait(
    svc: Services,
) -> None:
    pids = _patients(svc, 20)
    run_id = add_run(svc, add_campaign(svc))
    at_ten_east, at_ten_central = T0, T0 + timedelta(hours=1)
    planned = add_deliveries(svc, run_id, pids[:8], due_at=at_ten_east)
    add_deliveries(svc, run_id, pids[8:12], due_at=at_ten_central)
    # a delivery held at send time for quiet hours, and two retried after an error
    now = T0 + timedelta(minutes=5)
    claim(svc, planned[:3], now)
    held_until = T0 + timedelta(hours=3)
    svc.deliveries.back_to_pending(
        [
            PendingAgain(planned[0], held_until, tried=False),
            PendingAgain(planned[1], held_until + timedelta(seconds=40), error_reason="429"),
            PendingAgain(planned[2], held_until + timedelta(seconds=20), error_code="20429"),
        ],
        now,
    )

    rows = svc.results.pending_by_due(run_id, 60)

    got = {(b, kind): n for b, kind, n, _, _ in rows}
    assert got == {
        (at_ten_east, "planned"): 5,
        (at_ten_central, "planned"): 4,
        (held_until, "held"): 1,
        (held_until, "retry"): 2,
    }
    ledger = Counter(r["state"] for r in delivery_rows(svc, run_id))
    assert sum(got.values()) == ledger["pending"]
    firsts = {kind: first for b, kind, _, first, _ in rows if b == held_until}
    assert firsts == {"held": held_until, "retry": held_until + timedelta(seconds=20)}


def test_failures_are_counted_by_reason(svc: Services) -> None:
    pids = _patients(svc, 10)
    run_id = add_run(svc, add_campaign(svc))
    ids = add_deliveries(svc, run_id, pids, due_at=T0)
    _send(svc, ids[:4], T0, DeliveryState.FAILED, error_code="21211", error_reason="bad number")
    _send(svc, ids[4:5], T0, DeliveryState.FAILED, error_reason="template error")
    _send(svc, ids[5:8], T0, DeliveryState.SENT)
    for i in ids[5:7]:
        svc.deliveries.set_status(i, DeliveryState.UNDELIVERED, "30003", T0)

    got = svc.results.failures(run_id)

    assert got == [
        ("failed", "21211", "bad number", 4),
        ("undelivered", "30003", "", 2),
        ("failed", None, "template error", 1),
    ]
    ledger = Counter(r["state"] for r in delivery_rows(svc, run_id))
    assert sum(n for *_, n in got) == ledger["failed"] + ledger["undelivered"]


def test_a_run_waiting_for_its_patients_hours_says_when_the_next_batch_is_due(
    svc: Services,
) -> None:
    pids = _patients(svc, 5)
    run_id = add_run(svc, add_campaign(svc))
    due = svc.now() + timedelta(hours=2)
    add_deliveries(svc, run_id, pids, due_at=due)

    told = results.timeline(svc, run_id)

    assert told["all_later"] and told["waiting"] == 5
    assert told["summary"].startswith("5 waiting, none due yet: the next 5 are due at ")
    assert "(in 2 h)" in told["summary"] or "(in 1 h 59 min)" in told["summary"]
    assert told["groups"][0]["count"] == 5


def test_run_status_tells_skip_reasons_in_plain_words(svc: Services) -> None:
    pids = _patients(svc, 4)
    run_id = add_run(svc, add_campaign(svc))
    add_deliveries(
        svc, run_id, pids[:3], state=DeliveryState.SKIPPED, skip_reason=SkipReason.SHARED_NUMBER
    )
    add_deliveries(
        svc, run_id, pids[3:], state=DeliveryState.SKIPPED, skip_reason=SkipReason.FREQUENCY_CAP
    )

    told = run_status(svc, run_id)["skip_reasons"]

    assert [(s["reason"], s["count"]) for s in told] == [
        ("shared_number", 3),
        ("frequency_cap", 1),
    ]
    assert told[1]["words"] == "already messaged recently (frequency cap)"


def test_runs_show_prints_skip_reasons_in_the_same_words(svc: Services) -> None:
    pids = _patients(svc, 2)
    run_id = add_run(svc, add_campaign(svc))
    add_deliveries(
        svc, run_id, pids, state=DeliveryState.SKIPPED, skip_reason=SkipReason.SUPPRESSED
    )
    console = Console(record=True, width=160)

    print_summary(console, run_status(svc, run_id))

    shown = console.export_text()
    assert "the number or address is on the suppression list" in shown
    assert "suppressed" in shown and " 2 " in shown


def _west_coast_run(svc: Services, occurrence: str) -> tuple[int, list[int]]:
    name = add_example_campaign(svc)
    campaign = svc.campaigns.get(name)
    assert campaign is not None
    pids = add_patients(
        svc,
        [
            patient_record(
                f"W{i}", phone="+14155550100", timezone="America/Los_Angeles", state="CA"
            )
            for i in range(3)
        ],
    )
    return add_run(svc, int(campaign["id"]), occurrence=occurrence), pids


def test_a_group_planned_for_the_send_time_says_it_waits_for_each_patients_clock(
    svc: Services,
) -> None:
    run_id, pids = _west_coast_run(svc, "2027-10-15")
    ten_in_la = datetime(2027, 10, 15, 17, 0, tzinfo=UTC)
    add_deliveries(svc, run_id, pids, due_at=ten_in_la)

    (group,) = results.timeline(svc, run_id)["groups"]

    assert group["count"] == 3 and group["kind"] == "planned"
    assert group["words"] == "waiting for 10:00 in each patient's zone (their send time)"
    assert group["when"] == "13:00 EDT on Fri 15 Oct"


def test_a_group_held_by_quiet_hours_says_it_waits_for_the_window_to_open(
    svc: Services,
) -> None:
    # run by hand at 04:00 in Los Angeles: fan-out planned them for 08:00 there
    run_id, pids = _west_coast_run(svc, "now:2027-10-15T11:00:00+00:00")
    eight_in_la = datetime(2027, 10, 15, 15, 0, tzinfo=UTC)
    add_deliveries(svc, run_id, pids, due_at=eight_in_la)

    (group,) = results.timeline(svc, run_id)["groups"]

    assert group["words"] == "held until the patient's window opens (quiet hours where they may be)"
