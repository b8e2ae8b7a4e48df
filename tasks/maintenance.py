"""The pump (every second) and the sweeper (every half minute)."""

from __future__ import annotations

import logging
from typing import Any

from campaigns import keys
from campaigns.sending import sweeper as reconcile
from tasks.app import app, services
from tasks.runs import fan_out
from tasks.send import send_batch

log = logging.getLogger(__name__)


@app.task(name="meridian.maintenance.pump")
def pump() -> int:
    """Move due batches from the sorted set onto the send queue."""
    svc = services()
    moved = 0
    while True:
        batches = svc.due.pop_due(svc.now())
        for batch in batches:
            send_batch.apply_async((batch.run_id, batch.delivery_ids), queue=keys.SEND_QUEUE)
        moved += len(batches)
        if len(batches) < 200:
            return moved


@app.task(name="meridian.maintenance.sweep")
def sweep() -> dict[str, Any]:
    result = reconcile.sweep(services())
    for run_id in result.get("stalled_fan_outs", []):
        log.warning("run %s: its fan-out stopped with nobody at it; sent again", run_id)
        fan_out.apply_async((run_id,), queue="runs")
    return result
