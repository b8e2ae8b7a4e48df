"""Reading the bounce mailbox, every MERIDIAN_BOUNCE_IMAP_INTERVAL_S when it is set."""

from __future__ import annotations

import logging

from campaigns.errors import TransientError
from campaigns.transports import bounce_mailbox
from tasks.app import app, services
from tasks.dispatcher import POLL_BOUNCES

log = logging.getLogger(__name__)


@app.task(name=POLL_BOUNCES)
def poll_bounces() -> dict[str, object]:
    """Act on new bounce and complaint reports; a mailbox away waits for the next tick."""
    try:
        return bounce_mailbox.poll(services()).as_dict()
    except TransientError as exc:
        log.warning("bounce mailbox not read (%s); trying again at the next interval", exc)
        return {"read": 0, "error": str(exc)}
