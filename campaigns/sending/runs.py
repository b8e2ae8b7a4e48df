"""Campaign runs: apply a definition, start an occurrence, fan out, pause, resume,
cancel, and report. The Celery tasks are thin callers of these functions.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import redis
from redis.lock import Lock

from campaigns import keys
from campaigns.clock import geography, schedules, wallclock
from campaigns.content import compliance
from campaigns.content.definitions import CampaignDefinition, load_definition, parse_definition
from campaigns.content.rendering import PARTS, build_context
from campaigns.domain.models import Channel, Recipient
from campaigns.errors import InputError, NotFound, Problem
from campaigns.sending.batches import group_batches

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

SAMPLE_NAME = "Maximiliana"  # long-ish, so length checks are honest


@dataclass
class Applied:
    campaign_id: int
    name: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    unacknowledged: list[dict[str, Any]] = field(default_factory=list)


def sample_context(svc: Services, channel: Channel, name: str) -> dict[str, Any]:
    url = svc.unsubscribe_url(0, None) if channel == "email" else None
    return build_context(
        first_name=SAMPLE_NAME,
        last_name="Featherstonehaugh",
        clinic=svc.clinic,
        campaign=name,
        unsubscribe_url=url,
    )


def lint_definition(svc: Services, definition: CampaignDefinition) -> list[dict[str, Any]]:
    """Compile and trial-render every template, then run the compliance lint."""
    samples = {ch: sample_context(svc, ch, definition.name) for ch in definition.channels}
    rendered = svc.renderer.check(definition.templates, list(definition.channels), samples)
    findings: list[compliance.Finding] = []
    for channel in definition.channels:
        for part in PARTS[channel]:
            name = f"{definition.templates}/{part}"
            findings += compliance.lint_source(
                channel, name, svc.renderer.source(definition.templates, part)
            )
        message = rendered[channel]
        url = samples[channel].get("unsubscribe_url")
        texts = [("txt", message.body)] + ([("html", message.html)] if message.html else [])
        for suffix, text in texts:
            findings += compliance.lint_rendered(
                channel,
                f"{definition.templates}/{channel}.{suffix} (rendered)",
                text,
                clinic_name=svc.clinic.name,
                clinic_address=svc.clinic.address,
                unsubscribe_url=url,
            )
    return [f.to_dict() for f in findings]


def _unacknowledged(
    definition: CampaignDefinition, findings: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    acked = {a.phrase.lower() for a in definition.compliance.acknowledged}
    return [
        f
        for f in findings
        if f["severity"] == "claim" and str(f.get("phrase") or "").lower() not in acked
    ]


def apply_campaign(svc: Services, path: Path, *, actor: str) -> Applied:
    definition = load_definition(path)
    return save_definition(svc, definition, actor=actor, source=str(path))


def save_definition(
    svc: Services, definition: CampaignDefinition, *, actor: str, source: str
) -> Applied:
    findings = lint_definition(svc, definition)
    errors = [f for f in findings if f["severity"] == "error"]
    if errors:
        raise InputError(
            f"{source}: the compliance lint refused the campaign",
            [
                Problem(f"{f['template']}:{f['line'] or '-'}", f"{f['rule']}: {f['message']}")
                for f in errors
            ],
        )
    campaign_id = svc.campaigns.save(definition.name, definition.to_json(), findings, actor=actor)
    return Applied(campaign_id, definition.name, findings, _unacknowledged(definition, findings))


def load_campaign(svc: Services, key: str | int) -> tuple[dict[str, Any], CampaignDefinition]:
    row = svc.campaigns.get(key)
    if row is None:
        raise NotFound(f"no campaign named {key!r}")
    return row, parse_definition(row["definition"], f"campaign {row['name']}")


def _refuse_open_claims(row: dict[str, Any], definition: CampaignDefinition, what: str) -> None:
    """Nothing is sent, scheduled or run now, while a health claim is unacknowledged."""
    open_claims = _unacknowledged(definition, row["findings"])
    if open_claims:
        raise InputError(
            f"campaign {row['name']}: health-claim findings need an acknowledgement "
            f"(compliance.acknowledged in the YAML) before it can be {what}",
            [
                Problem(f"{f['template']}:{f['line']}", f"{f['phrase']!r}: {f['message']}")
                for f in open_claims
            ],
        )


def schedule_campaign(svc: Services, key: str | int, *, actor: str) -> dict[str, Any]:
    """Allow the campaign's occurrences to start; refused while claims are unacknowledged."""
    row, definition = load_campaign(svc, key)
    if row["status"] == "cancelled":
        raise InputError(f"campaign {row['name']}: cancelled; apply it again under a new name")
    _refuse_open_claims(row, definition, "scheduled")
    svc.campaigns.set_status(row["id"], "scheduled", actor=actor)
    return row


# starting a run ------------------------------------------------------------


def start_run(
    svc: Services,
    key: str | int,
    *,
    occurrence: str | None = None,
    trigger: str = "manual",
    actor: str,
) -> int | None:
    """Insert the run of one occurrence. None when that occurrence already has a run."""
    row, definition = load_campaign(svc, key)
    if row["status"] == "cancelled":
        raise InputError(f"campaign {row['name']}: cancelled")
    _refuse_open_claims(row, definition, "run")
    now = svc.now()
    occ = occurrence or f"now:{now.replace(microsecond=0).isoformat()}"
    run_id = svc.ledger.create_run(row["id"], occ, trigger, "fanning_out", now, actor=actor)
    if run_id is None:
        log.info(
            "campaign %s occurrence %s already has a run; not starting another", row["id"], occ
        )
    return run_id


def recipient_clock(
    svc: Services, recipient: Recipient, channel: Channel
) -> tuple[ZoneInfo, str | None]:
    """The patient's zone, and the state whose window applies to this channel."""
    zone = geography.patient_zone(recipient.timezone, recipient.phone, svc.settings.clinic_timezone)
    # State telemarketing windows govern calls and texts; email keeps the federal
    # decent-hours window only.
    state = geography.patient_state(recipient.state, recipient.phone) if channel == "sms" else None
    return zone, state


def _due_for(
    svc: Services,
    run: dict[str, Any],
    definition: CampaignDefinition,
    recipient: Recipient,
    channel: Channel,
    now: datetime,
) -> datetime:
    zone, state = recipient_clock(svc, recipient, channel)
    occurrence: str = run["occurrence"]
    if occurrence.startswith("now:"):
        return wallclock.next_allowed(now, zone, state)
    due = wallclock.local_due(
        date.fromisoformat(occurrence), definition.schedule.send_time, zone, state
    )
    return max(due, wallclock.next_allowed(now, zone, state))


def _plan(recipient: Recipient, definition: CampaignDefinition) -> list[tuple[Channel, str | None]]:
    """Which channels this patient gets, each with a skip reason or None."""

    def reason(channel: Channel) -> str | None:
        opt = recipient.opt_in(channel)
        if opt is None:
            return "no_consent"
        if opt is False:
            return "opted_out"
        if not recipient.contact(channel):
            return "invalid_contact"
        return None

    channels = list(definition.channels)
    if definition.channel_policy == "all_consented":
        return [(ch, reason(ch)) for ch in channels]
    preferred = (
        recipient.preferred_channel if recipient.preferred_channel in channels else channels[0]
    )
    order = [preferred] + [c for c in channels if c != preferred]
    for channel in order:
        if reason(channel) is None:
            return [(channel, None)]
    return [(preferred, reason(preferred))]


# A fan-out holds its run's lock this long and renews it after every chunk; a
# worker killed mid-fan-out leaves a lock that expires, and the sweeper starts the
# fan-out again (rows already written are kept).
FAN_OUT_LOCK_S = 60


def fan_out(svc: Services, run_id: int) -> int:
    """Stream the audience into deliveries, then queue the pending ones by due time."""
    run = svc.ledger.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    if run["status"] != "fanning_out":
        log.info("run %s is %s; fan-out already done", run_id, run["status"])
        return 0
    lock = svc.redis.lock(keys.fan_out_lock(run_id), timeout=FAN_OUT_LOCK_S, blocking=False)
    if not lock.acquire():
        log.info("run %s is being fanned out by another worker", run_id)
        return 0
    try:
        total = _fan_out(svc, run, lock)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    log.info("run %s fanned out: %s deliveries", run_id, total)
    return total


def _fan_out(svc: Services, run: dict[str, Any], lock: Lock) -> int:
    run_id = int(run["id"])
    _, definition = load_campaign(svc, int(run["campaign_id"]))
    now = svc.now()
    today = now.astimezone(ZoneInfo(svc.settings.clinic_timezone)).date()
    total = 0
    for chunk in svc.patients.stream_audience(definition.audience.model_dump(), today):
        rows = []
        for recipient in chunk:
            for channel, skip in _plan(recipient, definition):
                due = now if skip else _due_for(svc, run, definition, recipient, channel, now)
                rows.append(
                    {
                        "patient_id": recipient.patient_id,
                        "channel": channel,
                        "state": "skipped" if skip else "pending",
                        "skip_reason": skip,
                        "due_at": due,
                    }
                )
        svc.ledger.add_deliveries(run_id, rows)
        lock.reacquire()
        total += len(rows)
    svc.ledger.analyze()
    svc.ledger.set_run_status(run_id, "running", actor="system", only_from=["fanning_out"])
    queue_pending(svc, run_id)
    svc.ledger.finish_if_done(run_id)
    return total


def stalled_fan_outs(svc: Services, older_than: datetime) -> list[int]:
    """Runs left fanning out with nobody at it (the worker died, or Redis lost the task)."""
    return [
        run_id
        for run_id in svc.ledger.runs_in("fanning_out", started_before=older_than)
        if not svc.redis.exists(keys.fan_out_lock(run_id))
    ]


def queue_pending(svc: Services, run_id: int | None, *, not_after: datetime | None = None) -> int:
    """Put pending deliveries (of one run, or of every running run) into due batches."""
    queued = 0
    for rows in svc.ledger.stream_due_pending(run_id, not_after=not_after):
        by_run: dict[int, list[tuple[int, datetime]]] = {}
        for delivery_id, due, rid in rows:
            by_run.setdefault(rid, []).append((delivery_id, due))
        for rid, group in by_run.items():
            queued += svc.due.add(group_batches(group, rid, svc.settings.batch_size))
    return queued


# controlling a run ------------------------------------------------------------


def pause_run(svc: Services, run_id: int, *, actor: str) -> bool:
    """Stop new claims at once: the claim only takes deliveries of running runs."""
    return svc.ledger.set_run_status(run_id, "paused", actor=actor, only_from=["running"])


def resume_run(svc: Services, run_id: int, *, actor: str) -> bool:
    """Continue where the run stopped; what was sent stays sent."""
    if not svc.ledger.set_run_status(run_id, "running", actor=actor, only_from=["paused"]):
        return False
    queue_pending(svc, run_id)
    svc.ledger.finish_if_done(run_id)
    return True


def cancel_run(svc: Services, run_id: int, *, actor: str) -> int:
    """Stop the run for good; what is left is skipped with reason ``cancelled``."""
    if not svc.ledger.set_run_status(
        run_id, "cancelled", actor=actor, only_from=["running", "paused", "fanning_out"]
    ):
        return 0
    return svc.ledger.cancel_pending(run_id, svc.now())


def run_status(svc: Services, run_id: int) -> dict[str, Any]:
    run = svc.ledger.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    by_state: dict[str, int] = {}
    skipped: dict[str, int] = {}
    by_channel: dict[str, dict[str, int]] = {}
    total = 0
    for channel, state, reason, n in svc.ledger.counts(run_id):
        total += n
        by_state[state] = by_state.get(state, 0) + n
        by_channel.setdefault(channel, {})
        by_channel[channel][state] = by_channel[channel].get(state, 0) + n
        if state == "skipped" and reason:
            skipped[reason] = skipped.get(reason, 0) + n
    return {
        "run_id": run_id,
        "campaign": run["campaign"],
        "occurrence": run["occurrence"],
        "trigger": run["trigger"],
        "status": run["status"],
        "started_at": run["started_at"].isoformat(),
        "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
        "total": total,
        "by_state": by_state,
        "skipped_by_reason": skipped,
        "by_channel": by_channel,
    }


# the schedule ------------------------------------------------------------------


def tick_campaign(svc: Services, campaign_id: int) -> list[int]:
    """Start (or record as missed) every occurrence whose start window has opened.

    Safe to call from any number of beats at once: the run's unique key on
    (campaign, occurrence) lets exactly one caller create each occurrence's run.
    """
    row, definition = load_campaign(svc, campaign_id)
    if row["status"] != "scheduled":
        return []
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    last = svc.ledger.last_occurrence(campaign_id)
    if last is None:
        last = (
            row["created_at"].astimezone(ZoneInfo(schedule.timezone)).date() - timedelta(days=1)
        ).isoformat()
    started: list[int] = []
    for day, verdict in schedules.due_occurrences(schedule, svc.now(), last):
        key = schedules.occurrence_key(day)
        status = "fanning_out" if verdict == "start" else "missed"
        run_id = svc.ledger.create_run(
            campaign_id, key, "schedule", status, svc.now(), actor="beat"
        )
        if run_id is None:
            continue
        if verdict == "missed":
            log.warning(
                "campaign %s occurrence %s was missed (beat was down past its grace "
                "period); recorded as missed, nothing sent",
                campaign_id,
                key,
            )
        else:
            started.append(run_id)
    return started


# the campaign as a whole ---------------------------------------------------------


def pause_campaign(svc: Services, campaign_id: int, *, actor: str) -> int:
    row, _ = load_campaign(svc, campaign_id)
    if row["status"] == "scheduled":
        svc.campaigns.set_status(campaign_id, "paused", actor=actor)
    return sum(
        pause_run(svc, int(r["id"]), actor=actor)
        for r in svc.ledger.runs_of(campaign_id)
        if r["status"] == "running"
    )


def resume_campaign(svc: Services, campaign_id: int, *, actor: str) -> tuple[int, bool]:
    """Resume paused runs; a paused schedule becomes scheduled again. (runs, scheduled?)"""
    row, _ = load_campaign(svc, campaign_id)
    scheduled = row["status"] == "paused"
    if scheduled:
        svc.campaigns.set_status(campaign_id, "scheduled", actor=actor)
    resumed = sum(
        resume_run(svc, int(r["id"]), actor=actor)
        for r in svc.ledger.runs_of(campaign_id)
        if r["status"] == "paused"
    )
    return resumed, scheduled


def cancel_campaign(svc: Services, campaign_id: int, *, actor: str) -> int:
    svc.campaigns.set_status(campaign_id, "cancelled", actor=actor)
    return sum(
        cancel_run(svc, int(r["id"]), actor=actor)
        for r in svc.ledger.runs_of(campaign_id)
        if r["status"] in ("running", "paused", "fanning_out")
    )
