"""Run tasks: fan a run out, and the schedule's tick. Thin: ids in, a service call."""

from __future__ import annotations

from campaigns.sending import control, fanout
from tasks.app import app, services
from tasks.dispatcher import FAN_OUT, TICK_CAMPAIGN


@app.task(name=FAN_OUT, acks_late=True)
def fan_out(run_id: int) -> int:
    return fanout.fan_out(services(), run_id)


@app.task(name=TICK_CAMPAIGN)
def tick_campaign(campaign_id: int) -> list[int]:
    """Fired by the campaign's RedBeat entry: start whatever occurrence is due."""
    return control.tick(services(), campaign_id)
