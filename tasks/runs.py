"""Run tasks: start an occurrence, fan it out. Thin: ids in, a service call, errors mapped."""

from __future__ import annotations

import logging

from campaigns.sending import runs
from tasks.app import app, services

log = logging.getLogger(__name__)


@app.task(name="meridian.runs.fan_out", acks_late=True)
def fan_out(run_id: int) -> int:
    return runs.fan_out(services(), run_id)


@app.task(name="meridian.runs.tick_campaign")
def tick_campaign(campaign_id: int) -> list[int]:
    """Fired by the campaign's RedBeat entry: start whatever occurrence is due."""
    started = runs.tick_campaign(services(), campaign_id)
    for run_id in started:
        fan_out.delay(run_id)
    return started
