"""The pump (every second), the sweeper (every half minute), the inbox digest."""

from __future__ import annotations

from typing import Any

from campaigns.people import digest
from campaigns.sending import batches, sweeper
from tasks.app import app, services
from tasks.dispatcher import INBOX_DIGEST, PUMP, SWEEP


@app.task(name=PUMP)
def pump() -> int:
    """Move due batches from the sorted set onto the send queue."""
    return batches.pump(services())


@app.task(name=SWEEP)
def sweep() -> dict[str, Any]:
    return sweeper.sweep(services())


@app.task(name=INBOX_DIGEST)
def inbox_digest() -> int:
    """Email MERIDIAN_INBOX_DIGEST_TO when new patient replies wait for a person."""
    return digest.send_digest(services())
