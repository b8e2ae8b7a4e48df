"""What the CLI and the console ask of the workers: run now, schedule, pause, cancel.

Each call is a campaigns service followed by the Celery side of it (a task sent,
a RedBeat entry written or removed).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from celery.schedules import schedule as every
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import RedBeatConfig

from campaigns import keys
from campaigns.sending import runs
from campaigns.services import Services
from tasks.app import app
from tasks.runs import fan_out

TICK_S = 60.0
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def run_now(svc: Services, campaign: str, *, actor: str) -> int | None:
    run_id = runs.start_run(svc, campaign, trigger="manual", actor=actor)
    if run_id is not None:
        fan_out.apply_async((run_id,), queue="runs")
    return run_id


def schedule(svc: Services, campaign: str, *, actor: str) -> dict[str, Any]:
    row = runs.schedule_campaign(svc, campaign, actor=actor)
    put_entry(int(row["id"]))
    return row


def put_entry(campaign_id: int) -> None:
    """The campaign's RedBeat entry: a tick that starts each occurrence when its window opens."""
    RedBeatSchedulerEntry(
        keys.schedule_entry(campaign_id),
        "meridian.runs.tick_campaign",
        every(TICK_S),
        args=(campaign_id,),
        options={"queue": "runs", "expires": TICK_S},
        # Last run long ago: the first tick fires at once, so an occurrence that is
        # already due starts within a second of scheduling, not a minute later.
        last_run_at=LONG_AGO,
        app=app,
    ).save()


def remove_entry(campaign_id: int) -> None:
    key = RedBeatConfig(app).key_prefix + keys.schedule_entry(campaign_id)
    with contextlib.suppress(KeyError):
        RedBeatSchedulerEntry.from_key(key, app=app).delete()


def rebuild_entries(svc: Services) -> int:
    """Write an entry for every scheduled campaign (after Redis was lost)."""
    n = 0
    for row in svc.campaigns.all():
        if row["status"] == "scheduled":
            put_entry(int(row["id"]))
            n += 1
    return n


def pause(svc: Services, campaign: str, *, actor: str) -> str:
    """Stop new claims of the campaign's runs and hold its schedule."""
    row, _ = runs.load_campaign(svc, campaign)
    paused = runs.pause_campaign(svc, int(row["id"]), actor=actor)
    remove_entry(int(row["id"]))
    return f"{paused} run(s) paused"


def resume(svc: Services, campaign: str, *, actor: str) -> str:
    row, _ = runs.load_campaign(svc, campaign)
    resumed, scheduled = runs.resume_campaign(svc, int(row["id"]), actor=actor)
    if scheduled:
        put_entry(int(row["id"]))
    return f"{resumed} run(s) resumed"


def cancel(svc: Services, campaign: str, *, actor: str) -> str:
    row, _ = runs.load_campaign(svc, campaign)
    skipped = runs.cancel_campaign(svc, int(row["id"]), actor=actor)
    remove_entry(int(row["id"]))
    return f"{skipped} pending deliveries skipped as cancelled"
