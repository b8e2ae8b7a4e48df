"""What staff ask of a campaign (run now, schedule, pause, resume, cancel, clone,
archive, restore), and the schedule's tick: the ledger's side, then the workers' side
through ``svc.dispatcher`` (a fan-out queued, a schedule entry written or removed).

The CLI, the API and the console call these; the workers' tasks call ``tick``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaigns.content.approval import review_status
from campaigns.content.catalogue import Applied, load_campaign, save_definition, schedule_campaign
from campaigns.content.copy import Copy, to_block
from campaigns.content.definitions import parse_definition
from campaigns.domain.states import FINAL_RUN_STATES, CampaignState, RunState
from campaigns.errors import BrokerUnavailable, InputError, Problem
from campaigns.sending import runs

if TYPE_CHECKING:
    from campaigns.services import Services


def run_now(svc: Services, campaign: str, *, actor: str) -> int | None:
    """Start an occurrence now and queue its fan-out; None if it already has a run."""
    run_id = runs.start_run(svc, campaign, trigger="manual", actor=actor)
    if run_id is not None:
        svc.dispatcher.queue_fan_out(run_id)
    return run_id


def schedule(svc: Services, campaign: str, *, actor: str) -> dict[str, Any]:
    """Let the campaign's occurrences start, each when its window opens. When the
    schedule entry cannot be written (Redis does not answer), the campaign goes back
    to the state it was in: "scheduled" with no entry would never start, and its page
    would offer no way to try again."""
    row = schedule_campaign(svc, campaign, actor=actor)
    try:
        svc.dispatcher.put_schedule(int(row["id"]))
    except BrokerUnavailable:
        before = CampaignState(row["status"])
        if before != CampaignState.SCHEDULED:
            svc.campaigns.set_status(
                int(row["id"]), before, actor=actor, only_from=[CampaignState.SCHEDULED]
            )
        raise
    return row


def tick(svc: Services, campaign_id: int) -> list[int]:
    """The schedule entry's tick: start what is due, and queue each new run's fan-out."""
    started = runs.tick_campaign(svc, campaign_id)
    for run_id in started:
        svc.dispatcher.queue_fan_out(run_id)
    return started


def rebuild_schedules(svc: Services) -> int:
    """Write the entry of every scheduled campaign again (after Redis was lost)."""
    n = 0
    for row in svc.campaigns.all():
        if row["status"] == CampaignState.SCHEDULED:
            svc.dispatcher.put_schedule(int(row["id"]))
            n += 1
    return n


def pause(svc: Services, campaign: str, *, actor: str) -> str:
    """Stop new claims of the campaign's runs and hold its schedule; a sentence saying
    what was done, or that there was nothing to pause."""
    row, _ = load_campaign(svc, campaign)
    campaign_id = int(row["id"])
    held = row["status"] == CampaignState.SCHEDULED and svc.campaigns.set_status(
        campaign_id, CampaignState.PAUSED, actor=actor, only_from=[CampaignState.SCHEDULED]
    )
    paused = sum(
        runs.pause_run(svc, int(r["id"]), actor=actor)
        for r in svc.runs.of_campaign(campaign_id)
        if r["status"] == RunState.RUNNING
    )
    if held:
        svc.dispatcher.remove_schedule(campaign_id)
    if not held and not paused:
        return (
            f"campaign {campaign} is {row['status']}: nothing was paused (it has no "
            "schedule and no running run)"
        )
    schedule = "its schedule is held, " if held else ""
    return f"campaign {campaign}: {schedule}{paused} run(s) paused"


def resume(svc: Services, campaign: str, *, actor: str) -> str:
    """Resume paused runs; a paused schedule becomes scheduled again. A sentence."""
    row, _ = load_campaign(svc, campaign)
    campaign_id = int(row["id"])
    scheduled = row["status"] == CampaignState.PAUSED and svc.campaigns.set_status(
        campaign_id, CampaignState.SCHEDULED, actor=actor, only_from=[CampaignState.PAUSED]
    )
    resumed = sum(
        runs.resume_run(svc, int(r["id"]), actor=actor)
        for r in svc.runs.of_campaign(campaign_id)
        if r["status"] == RunState.PAUSED
    )
    if scheduled:
        svc.dispatcher.put_schedule(campaign_id)
    if not scheduled and not resumed:
        return f"campaign {campaign} is {row['status']}: nothing was paused, so nothing resumed"
    schedule = "its schedule runs again, " if scheduled else ""
    return f"campaign {campaign}: {schedule}{resumed} run(s) resumed"


def cancel(svc: Services, campaign: str, *, actor: str) -> str:
    """Stop for good: the schedule, and every run still going (left deliveries skipped)."""
    row, _ = load_campaign(svc, campaign)
    campaign_id = int(row["id"])
    svc.campaigns.set_status(campaign_id, CampaignState.CANCELLED, actor=actor)
    skipped = sum(
        runs.cancel_run(svc, int(r["id"]), actor=actor)
        for r in svc.runs.of_campaign(campaign_id)
        if RunState(r["status"]).can_become(RunState.CANCELLED)
    )
    svc.dispatcher.remove_schedule(campaign_id)
    return f"{skipped} pending deliveries skipped as cancelled"


def clone(svc: Services, campaign: str | int, new_name: str, *, actor: str) -> Applied:
    """A new draft with the campaign's definition and its newest copy (when it has
    copy in the ledger) under ``new_name``, which no campaign may hold (a cancelled or
    archived one's name is free)."""
    row, definition = load_campaign(svc, campaign)
    new_name = new_name.strip()
    if svc.campaigns.name_taken(new_name):
        raise InputError(
            f"cannot clone {definition.name}: the name is taken",
            [Problem("name", f"a campaign named {new_name!r} exists; choose another name")],
        )
    data = {**definition.to_json(), "name": new_name}
    version = svc.copies.current_id(int(row["id"]))
    written = svc.copies.get(version) if version is not None else None
    if written is not None:  # else the clone sends the templates folder, as the original
        data["copy"] = to_block(Copy.from_row(written))
    copy = parse_definition(data, "clone")
    return save_definition(svc, copy, actor=actor, source=f"clone of {definition.name}")


def archive(svc: Services, campaign: str | int, *, actor: str) -> str:
    """Hide the campaign from the list and stop its schedule for good (until restored);
    refused while one of its runs is still going. A sentence saying what was done."""
    row, _ = load_campaign(svc, campaign)
    campaign_id = int(row["id"])
    going = [
        r
        for r in svc.runs.of_campaign(campaign_id)
        if RunState(r["status"]) not in FINAL_RUN_STATES
    ]
    if going:
        raise InputError(
            f"campaign {row['name']}: run {going[0]['id']} is still {going[0]['status']}; "
            "cancel it or let it finish before archiving the campaign"
        )
    if row["status"] == CampaignState.ARCHIVED:
        return f"campaign {row['name']} was already archived"
    if not svc.campaigns.set_status(campaign_id, CampaignState.ARCHIVED, actor=actor):
        raise InputError(f"campaign {row['name']}: changed meanwhile; look again and retry")
    if row["status"] == CampaignState.SCHEDULED:
        # Only a scheduled campaign has an entry; one left behind (Redis down) ticks
        # harmlessly: the tick starts nothing for a campaign that is not scheduled.
        svc.dispatcher.remove_schedule(campaign_id)
    return f"campaign {row['name']} archived: it is hidden from the list and never starts"


def restore(svc: Services, campaign_id: int, *, actor: str) -> str:
    """An archived campaign back in the list, as a draft; its approval counts again
    only while its content is what was approved. A sentence saying what to do next."""
    row, definition = load_campaign(svc, campaign_id)
    if row["status"] != CampaignState.ARCHIVED:
        raise InputError(f"campaign {row['name']} is {row['status']}, not archived")
    if not svc.campaigns.set_status(
        campaign_id, CampaignState.DRAFT, actor=actor, only_from=[CampaignState.ARCHIVED]
    ):
        raise InputError(f"campaign {row['name']}: changed meanwhile; look again and retry")
    if review_status(svc, campaign_id, definition).approved:
        return (
            f"campaign {row['name']} restored as a draft; its content is what was approved, "
            "so schedule it to send"
        )
    return (
        f"campaign {row['name']} restored as a draft: submit it for approval, then schedule "
        "it to send"
    )
