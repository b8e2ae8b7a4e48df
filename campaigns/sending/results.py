"""Results where staff look: the campaign list's columns (status, next occurrence, the
last run's counts) and a run's page (what waits and until when, why some were
skipped, what failed, messages over time), in plain words and the clinic's zone.

The figures are the ledger's, aggregated in SQL (campaigns.store.results); this module
only words them. Why a pending delivery waits comes from the ledger (a provider error
retried, or held at send time) and, for what fan-out planned, from the send-time
answer of one delivery of the group (campaigns.sending.fanout.recipient_send_time):
the patient's send time, quiet hours, or a day with no texts.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from campaigns.clock import schedules
from campaigns.content.catalogue import load_campaign
from campaigns.content.definitions import parse_stored_definition
from campaigns.domain.sms_errors import error_words
from campaigns.domain.states import CampaignState, DeliveryState
from campaigns.domain.words import WAIT_WORDS, skip_words
from campaigns.errors import MeridianError, NotFound
from campaigns.sending import chart
from campaigns.sending.fanout import recipient_send_time

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# Due-time groups finer than this many are merged into coarser buckets.
MAX_GROUPS = 12
_EXPLAINED = 6  # groups whose reason is asked of one of their deliveries
HANDED_OVER = (DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED)


# the campaign list ---------------------------------------------------------------------


def campaign_overview(svc: Services, *, archived: bool | None = None) -> list[dict[str, Any]]:
    """Every campaign with its status, next occurrence and last run's figures; two
    queries for the runs' figures whatever the number of campaigns."""
    last = svc.results.last_runs()
    engaged = svc.engagement.engagement([int(r["run_id"]) for r in last.values()])
    now = svc.now()
    zone = ZoneInfo(svc.settings.clinic_timezone)
    listed = []
    for row in svc.campaigns.all(archived=archived):
        figures = _run_figures(last.get(int(row["id"])), zone)
        if figures is not None:
            figures |= engaged.get(figures["run_id"], {"clicked": 0, "clicks": 0, "booked": 0})
        listed.append({**row, "next": _next_occurrence(svc, row, now), "last_run": figures})
    return listed


def _next_occurrence(svc: Services, row: dict[str, Any], now: datetime) -> str:
    if row["status"] != CampaignState.SCHEDULED:
        return {"draft": "not scheduled (draft)", "paused": "none while paused"}.get(
            str(row["status"]), "none"
        )
    try:
        definition = parse_stored_definition(row["definition"], f"campaign {row['name']}")
        schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
        upcoming = schedules.next_sends(schedule, now, 1)
    except MeridianError:
        return "— (the schedule cannot be read)"
    if not upcoming:
        return "none: the schedule has no date left"
    at = upcoming[0]
    return f"{at:%a %d %b %Y} ({_until(at, now)}), {at:%H:%M} on each patient's clock"


def _run_figures(run: dict[str, Any] | None, zone: ZoneInfo) -> dict[str, Any] | None:
    """Sent (handed to the provider), delivered (SMS with a carrier report; None for a
    run with no SMS: email has none), failed (failed or reported undelivered), skipped."""
    if run is None:
        return None
    counts: dict[tuple[str, str], int] = run["counts"]

    def total(*states: str, channel: str | None = None) -> int:
        return sum(n for (c, s), n in counts.items() if s in states and channel in (None, c))

    has_sms = any(c == "sms" for c, _ in counts)
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "started": run["started_at"].astimezone(zone),
        "sent": total(*HANDED_OVER),
        "delivered": total(DeliveryState.DELIVERED, channel="sms") if has_sms else None,
        "failed": total(DeliveryState.FAILED, DeliveryState.UNDELIVERED),
        "skipped": total(DeliveryState.SKIPPED),
        "pending": total(DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN),
    }


# a run's page ----------------------------------------------------------------------------


def skipped_in_words(skipped_by_reason: dict[str, int]) -> list[dict[str, Any]]:
    """Skip reasons with their sentence and count, the commonest first."""
    return [
        {"reason": reason, "words": skip_words(reason), "count": n}
        for reason, n in sorted(skipped_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def code_words(code: str | None) -> str | None:
    """A provider's error code in plain words: Twilio's codes from their table, an
    SMTP reply by its class."""
    if not code:
        return None
    if code.isdigit() and len(code) == 3:
        if code.startswith("5"):
            return "the mail server refused it for good (a refused address is suppressed)"
        if code.startswith("4"):
            return "the receiving mail server asked to try again later"
        return None
    return error_words(code)


def run_results(svc: Services, run_id: int) -> dict[str, Any]:
    """What the run page shows below its progress (which has the timeline of due
    times, :func:`timeline`): failures by reason and the chart of messages over time."""
    run = svc.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    zone = ZoneInfo(svc.settings.clinic_timezone)
    return {
        "failures": [
            {
                "state": state,
                "words": "the carrier reported it undelivered"
                if state == DeliveryState.UNDELIVERED
                else "the provider refused it, or every attempt failed",
                "code": code or "—",
                "meaning": code_words(code) or "",
                "reason": reason or "no reason recorded",
                "count": n,
            }
            for state, code, reason, n in svc.results.failures(run_id)
        ],
        "chart": messages_over_time(svc, run_id, zone),
    }


def messages_over_time(svc: Services, run_id: int, zone: ZoneInfo) -> dict[str, Any]:
    span = svc.results.sent_span(run_id)
    if span is None:
        return chart.build([], 60, "minute", zone)
    size, name = chart.choose_bucket(*span)
    rows = svc.results.sent_over_time(run_id, size, chart.offset_s(zone, span[0]))
    return chart.build(rows, size, name, zone)


def timeline(svc: Services, run_id: int) -> dict[str, Any]:
    """Pending deliveries grouped by when they are next due (in the clinic's zone) and
    why they wait, soonest first, with a sentence for the whole: how many wait, and
    when the next batch is due."""
    zone = ZoneInfo(svc.settings.clinic_timezone)
    now = svc.now()
    rows = svc.results.pending_by_due(run_id, 60)
    if len({r[0] for r in rows}) > MAX_GROUPS:
        size = max(60, chart.choose_bucket(rows[0][0], rows[-1][0], MAX_GROUPS)[0])
        rows = svc.results.pending_by_due(run_id, size, chart.offset_s(zone, rows[0][0]))
    reasons = _reasons(svc, run_id, [r for r in rows[:_EXPLAINED] if r[1] != "retry"])
    groups: list[dict[str, Any]] = []
    for _, kind, n, first, sample in rows:
        local = first.astimezone(zone)
        groups.append(
            {
                "at": local,
                "when": _clock_words(local, now.astimezone(zone)),
                "in": _until(first, now),
                "kind": kind,
                "count": n,
                "words": reasons.get(sample, WAIT_WORDS[kind]),
                "due_now": first <= now,
            }
        )
    waiting = sum(g["count"] for g in groups)
    later = [g for g in groups if not g["due_now"]]
    summary = None
    if waiting and later and len(later) == len(groups):
        nxt = later[0]
        summary = (
            f"{waiting} waiting, none due yet: the next {nxt['count']} are due at "
            f"{nxt['when']} ({nxt['in']}), {nxt['words']}."
        )
    elif waiting:
        due = sum(g["count"] for g in groups if g["due_now"])
        summary = f"{due} due now and being sent; {waiting - due} due later."
    return {
        "groups": groups,
        "waiting": waiting,
        "summary": summary,
        # True: nothing is due yet; the run waits for its patients' hours, it is not stuck
        "all_later": bool(waiting) and len(later) == len(groups),
        "zone": f"{now.astimezone(zone):%Z}",
    }


def _reasons(
    svc: Services, run_id: int, rows: list[tuple[datetime, str, int, datetime, int]]
) -> dict[int, str]:
    """Sample delivery id -> why its group waits, asked of the send-time answer for that
    delivery's patient as fan-out saw it (at the run's start). A question that cannot be
    answered (a definition since changed, a patient deleted) leaves the ledger's words."""
    if not rows:
        return {}
    run = svc.runs.get(run_id)
    assert run is not None
    try:
        _, definition = load_campaign(svc, int(run["campaign_id"]))
    except MeridianError:
        return {}
    samples = svc.results.patient_of([r[4] for r in rows])
    recipients = svc.patients.recipients([p for p, _ in samples.values()])
    send_time: time = definition.schedule.send_time
    found: dict[int, str] = {}
    for _, kind, _, first, sample in rows:
        if sample not in samples or samples[sample][0] not in recipients:
            continue
        patient_id, channel = samples[sample]
        try:
            when = recipient_send_time(
                svc,
                str(run["occurrence"]),
                definition,
                recipients[patient_id],
                "sms" if channel == "sms" else "email",
                # held: asked just before it came due, the rule that held it answers
                first - timedelta(seconds=1) if kind == "held" else run["started_at"],
                hold=kind == "held",
            )
        except MeridianError:
            continue
        found[sample] = _why(when.decided_by, when.held, str(run["occurrence"]), send_time)
    return found


def _why(decided_by: str, held: bool, occurrence: str, send_time: time) -> str:
    if "no marketing texts on" in decided_by:
        return "held past a day with no texts (a Sunday or holiday where the patient may be)"
    if "the window opens" in decided_by or "the window closes" in decided_by:
        return "held until the patient's window opens (quiet hours where they may be)"
    if held:
        return "held until it is lawful where the patient may be"
    if occurrence.startswith("now:"):
        return "due as soon as it is lawful for the patient"
    return f"waiting for {send_time:%H:%M} in each patient's zone (their send time)"


def _clock_words(local: datetime, today: datetime) -> str:
    if local.date() == today.date():
        return f"{local:%H:%M %Z} today"
    return f"{local:%H:%M %Z} on {local:%a %d %b}"


def _until(at: datetime, now: datetime) -> str:
    seconds = int((at - now).total_seconds())
    if seconds <= 0:
        return "due now"
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    return f"in {hours // 24} days"
