"""The pump (every second) and the sweeper (every half minute)."""

from __future__ import annotations

from typing import Any

from campaigns.sending import batches, sweeper
from tasks.app import app, services
from tasks.dispatcher import PUMP, SWEEP


@app.task(name=PUMP)
def pump() -> int:
    """Move due batches from the sorted set onto the send queue."""
    return batches.pump(services())


@app.task(name=SWEEP)
def sweep() -> dict[str, Any]:
    return sweeper.sweep(services())
