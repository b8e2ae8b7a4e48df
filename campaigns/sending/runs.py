"""Campaign runs: start an occurrence (by hand or on the schedule's tick), pause,
resume and cancel a run, and report on it.

A run moves only as campaigns.domain.states.RUN_TRANSITIONS allows; each move is
one conditional update, so two callers racing never both win.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from campaigns.clock import schedules
from campaigns.content import variants
from campaigns.content.approval import lapse_if_changed, refuse_unapproved
from campaigns.content.catalogue import load_campaign, refuse_open_claims
from campaigns.content.copy import templates_key, version_of
from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.states import CampaignState, DeliveryState, RunState
from campaigns.errors import InputError, NotFound
from campaigns.sending import liveness
from campaigns.sending.pending import queue_pending
from campaigns.sending.results import skipped_in_words

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


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
    if row["status"] in (CampaignState.CANCELLED, CampaignState.ARCHIVED):
        raise InputError(f"campaign {row['name']}: {row['status']}, so it never starts")
    refuse_open_claims(svc, row, definition, "run")
    refuse_unapproved(svc, row, definition, "run")
    now = svc.now()
    occ = occurrence or f"now:{now.replace(microsecond=0).isoformat()}"
    run_id = svc.runs.create(
        row["id"],
        occ,
        trigger,
        RunState.FANNING_OUT,
        now,
        actor=actor,
        template_version_id=_pinned_copy(svc, row, definition),
        variants=variants.pinned(svc, int(row["id"])),
    )
    if run_id is None:
        log.info(
            "campaign %s occurrence %s already has a run; not starting another", row["id"], occ
        )
    return run_id


def tick_campaign(svc: Services, campaign_id: int) -> list[int]:
    """Start (or record as missed) every occurrence whose start window has opened;
    returns the runs started, for their fan-out to be queued.

    Safe to call from any number of beats at once: the run's unique key on
    (campaign, occurrence) lets exactly one caller create each occurrence's run.
    """
    row, definition = load_campaign(svc, campaign_id)
    if row["status"] != CampaignState.SCHEDULED:
        return []
    # A template part edited since approval (not a save of the campaign): the approval
    # no longer matches, so the campaign returns to draft here, within a tick.
    if lapse_if_changed(svc, row, definition, actor="beat"):
        log.warning("campaign %s changed since approval: back to draft", campaign_id)
        return []
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    last = svc.runs.last_occurrence(campaign_id)
    if last is None:
        last = (
            row["created_at"].astimezone(ZoneInfo(schedule.timezone)).date() - timedelta(days=1)
        ).isoformat()
    due = schedules.due_occurrences(schedule, svc.now(), last)
    if any(verdict == "start" for _, verdict in due):
        try:
            refuse_open_claims(svc, row, definition, "run")
            refuse_unapproved(svc, row, definition, "run")
        except InputError as refused:
            # Not started, not recorded: each tick asks again, and past the grace
            # period the occurrence is recorded as missed.
            log.warning(
                "campaign %s: occurrence not started: %s (%d findings)",
                campaign_id,
                refused.message,
                len(refused.problems),
            )
            return []
    started: list[int] = []
    version = _pinned_copy(svc, row, definition)
    ab = variants.pinned(svc, campaign_id)
    for day, verdict in due:
        key = schedules.occurrence_key(day)
        status = RunState.FANNING_OUT if verdict == "start" else RunState.MISSED
        run_id = svc.runs.create(
            campaign_id,
            key,
            "schedule",
            status,
            svc.now(),
            actor="beat",
            template_version_id=version if status == RunState.FANNING_OUT else None,
            variants=ab if status == RunState.FANNING_OUT else None,
        )
        if run_id is None:
            continue
        if status == RunState.MISSED:
            log.warning(
                "campaign %s occurrence %s was missed (beat was down past its grace "
                "period); recorded as missed, nothing sent",
                campaign_id,
                key,
            )
        else:
            started.append(run_id)
    return started


def _pinned_copy(svc: Services, row: dict[str, Any], definition: CampaignDefinition) -> int | None:
    """The version of the copy a run starting now sends for its whole life: the one
    the lint just judged (campaigns.content.copy.templates_key); None for a templates folder."""
    return version_of(templates_key(svc, definition))


def pause_run(svc: Services, run_id: int, *, actor: str) -> bool:
    """Stop new claims at once: the claim only takes deliveries of running runs."""
    return svc.runs.set_status(
        run_id, RunState.PAUSED, svc.now(), actor=actor, only_from=[RunState.RUNNING]
    )


def resume_run(svc: Services, run_id: int, *, actor: str) -> bool:
    """Continue where the run stopped; what was sent stays sent."""
    if not svc.runs.set_status(
        run_id, RunState.RUNNING, svc.now(), actor=actor, only_from=[RunState.PAUSED]
    ):
        return False
    queue_pending(svc, run_id)
    svc.runs.finish_if_done(run_id, svc.now())
    return True


def cancel_run(svc: Services, run_id: int, *, actor: str) -> int:
    """Stop the run for good; what is left is skipped with reason ``cancelled``."""
    if not svc.runs.set_status(run_id, RunState.CANCELLED, svc.now(), actor=actor):
        return 0
    return svc.deliveries.cancel_pending(run_id, svc.now())


def run_status(svc: Services, run_id: int) -> dict[str, Any]:
    run = svc.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    by_state: dict[str, int] = {}
    skipped: dict[str, int] = {}
    by_channel: dict[str, dict[str, int]] = {}
    total = 0
    for channel, state, reason, n in svc.delivery_queries.counts(run_id):
        total += n
        by_state[state] = by_state.get(state, 0) + n
        by_channel.setdefault(channel, {})
        by_channel[channel][state] = by_channel[channel].get(state, 0) + n
        if state == DeliveryState.SKIPPED and reason:
            skipped[reason] = skipped.get(reason, 0) + n
    return {
        "run_id": run_id,
        "campaign": run["campaign"],
        # The name may since belong to a newer campaign: the id says which one ran.
        "campaign_id": int(run["campaign_id"]),
        "occurrence": run["occurrence"],
        "trigger": run["trigger"],
        "status": run["status"],
        "started_at": run["started_at"].isoformat(),
        "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
        "total": total,
        "by_state": by_state,
        "skipped_by_reason": skipped,
        # the same reasons in plain words (campaigns.domain.words), the commonest first
        "skip_reasons": skipped_in_words(skipped),
        "by_channel": by_channel,
        # A run with due work and no worker at one of its queues says so (liveness).
        "warnings": liveness.run_warnings(svc, run_id, run["status"]),
    }
