"""Every Redis key and Celery queue name Meridian uses, in one place.

Keys start with ``meridian:``; the queues are kombu's lists under their own names.
"""

from __future__ import annotations

import hashlib

PREFIX = "meridian"

# Batches of delivery ids waiting for their due time; scored by due epoch seconds.
DUE_BATCHES = f"{PREFIX}:due"
# Serialises the sweeper across workers.
SWEEPER_LOCK = f"{PREFIX}:lock:sweeper"
# The Celery queues: fan-outs and schedule ticks; send batches; the pump and the
# sweeper. With kombu's Redis transport a queue is a list under its own name, so
# the send queue's length is how many send batches are waiting.
RUNS_QUEUE = "runs"
SEND_QUEUE = "send"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (RUNS_QUEUE, SEND_QUEUE, MAINTENANCE_QUEUE)
# Twilio status callbacks that arrived before the send's outcome was recorded,
# by message SID; the sweeper applies them once the SID is in the ledger.
EARLY_STATUSES = f"{PREFIX}:status:early"
# The id of the newest inbound message the last inbox digest counted.
INBOX_DIGEST_LAST = f"{PREFIX}:inbox:digest:last"
# Heartbeats, on Redis's own clock: each worker's queues (hash: hostname -> JSON),
# written every few seconds by tasks.liveness; each beat's (hash: beat id -> JSON),
# written on every tick. Read by the run page, ``runs show``, /readyz and doctor.
WORKER_HEARTBEATS = f"{PREFIX}:heartbeat:workers"
BEAT_HEARTBEATS = f"{PREFIX}:heartbeat:beats"
# RedBeat keeps its own keys under this prefix.
REDBEAT_PREFIX = f"{PREFIX}:redbeat:"


def rate_limit(sender: str) -> str:
    """The GCRA bucket of one sender (a channel, or a channel and a from-address)."""
    return f"{PREFIX}:rate:{sender}"


def fan_out_lock(run_id: int) -> str:
    """Held while a run is being fanned out; its absence means nobody is at it."""
    return f"{PREFIX}:lock:fan-out:{run_id}"


def sign_in_failures(username: str) -> str:
    """Failed sign-ins for one username (hashed: a mistyped name may be a password)."""
    digest = hashlib.sha256(username.encode()).hexdigest()[:24]
    return f"{PREFIX}:sign-in-failures:{digest}"


def sign_in_failures_from(address: str) -> str:
    """Failed sign-ins from one client address, whatever usernames they tried."""
    digest = hashlib.sha256(address.encode()).hexdigest()[:24]
    return f"{PREFIX}:sign-in-failures-from:{digest}"


def schedule_entry(campaign_id: int) -> str:
    """The RedBeat entry name of a scheduled campaign."""
    return f"campaign:{campaign_id}"


def test_sends(username: str) -> str:
    """Test sends one staff member made in the hour since their first (hashed username)."""
    digest = hashlib.sha256(username.encode()).hexdigest()[:24]
    return f"{PREFIX}:test-sends:{digest}"
