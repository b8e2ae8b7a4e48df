"""The interfaces the core needs and the edges implement.

``Clock`` is Meridian's time: ``Services.now``, which the repositories are built
with, so every time the ledger stores comes from it. ``Dispatcher`` is how the core
hands work to the workers: tasks.dispatcher
implements it on Celery and RedBeat, and only the entry points (the CLI, the
worker, the web app factory) plug it into their Services. ``DueQueue`` and
``Limiter`` are the Redis-only parts of sending (campaigns.sending.batches,
campaigns.sending.ratelimit), ``Tally`` the counters /metrics reads
(campaigns.sending.tally); campaigns.sending.stubs has in-memory ones, as real
implementations for tests and benches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from campaigns.domain.models import Batch, Heartbeats, SliceFigures

# Meridian's clock: aware UTC, shifted only for rehearsals (MERIDIAN_CLOCK_SHIFT_S).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The unshifted clock: the default of a repository built without Services."""
    return datetime.now(UTC)


class Dispatcher(Protocol):
    """Each call raises campaigns.errors.BrokerUnavailable when the broker does not
    answer: then nothing was queued."""

    def queue_fan_out(self, run_id: int) -> None:
        """Have a worker fan the run out (campaigns.sending.fanout.fan_out)."""
        ...

    def queue_send(self, batch: Batch) -> None:
        """Have a worker send the batch now (campaigns.sending.delivery.send_batch)."""
        ...

    def put_schedule(self, campaign_id: int) -> None:
        """Write the campaign's schedule entry: a tick that starts each occurrence."""
        ...

    def remove_schedule(self, campaign_id: int) -> None:
        """Remove the campaign's schedule entry; nothing if there is none."""
        ...

    def waiting_sends(self) -> int:
        """How many send batches wait on the broker for a worker."""
        ...

    def heartbeats(self) -> Heartbeats | None:
        """What the workers and beats last reported; None when the broker does not answer."""
        ...


class DueQueue(Protocol):
    """Batches waiting for their due time (no broker ETA is ever used); BrokerUnavailable
    when the store behind it does not answer."""

    def add(self, batches: Iterable[tuple[datetime, Batch]]) -> int:
        """Add (due, batch) pairs; returns how many were added."""
        ...

    def pop_due(self, now: datetime, limit: int = 200) -> list[Batch]:
        """Take up to ``limit`` batches due by ``now``; no two callers get the same one."""
        ...

    def waiting_since(self, before: datetime) -> int:
        """Batches due at or before ``before`` that nobody has taken yet."""
        ...


class Limiter(Protocol):
    """A rate shared by every worker sending on one account."""

    def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
        """Take the next ``n`` tokens now: the seconds until they are due (0.0: at once).
        TimeoutError, taking nothing, if they are not due within ``timeout_s``."""
        ...


class Tally(Protocol):
    """Counters every process adds to and /metrics reads (campaigns.sending.tally).

    Never raises: a figure that cannot be recorded is dropped, not worth a send."""

    def add_slice(self, figures: SliceFigures) -> None:
        """Add one send slice's provider latencies and rate-limit waits."""
        ...

    def count_webhook(self, route: str, verdict: str) -> None:
        """Count one webhook request by route and verdict."""
        ...
