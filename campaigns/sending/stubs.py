"""In-memory stand-ins for the Redis and broker parts of sending, as dramatiq has a
stub broker: real implementations of campaigns.domain.ports, for one process.

    svc = Services(
        settings,
        dispatcher=MemoryDispatcher(),
        due=MemoryDueQueue(),
        limiters={"sms": MemoryLimiter(), "email": MemoryLimiter()},
    )

A test then runs the send loop with no Redis and no worker: ``svc.due`` holds what
was queued for later, ``svc.dispatcher`` what was handed to the workers, and each
limiter how many tokens the send loop took from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from campaigns import keys
from campaigns.domain.models import Batch, Heartbeats, SliceFigures


@dataclass
class MemoryDueQueue:
    """A DueQueue in a list: what is due pops in due order, each batch once."""

    waiting: list[tuple[datetime, Batch]] = field(default_factory=list)

    def add(self, batches: Iterable[tuple[datetime, Batch]]) -> int:
        added = list(batches)
        self.waiting.extend(added)
        self.waiting.sort(key=lambda pair: pair[0])
        return len(added)

    def pop_due(self, now: datetime, limit: int = 200) -> list[Batch]:
        due = [pair for pair in self.waiting if pair[0] <= now][:limit]
        for pair in due:
            self.waiting.remove(pair)
        return [batch for _, batch in due]

    def waiting_since(self, before: datetime) -> int:
        return sum(1 for due, _ in self.waiting if due <= before)


@dataclass
class MemoryDispatcher:
    """A Dispatcher that keeps what it was asked to do, for the caller to run or read."""

    fan_outs: list[int] = field(default_factory=list)
    sends: list[Batch] = field(default_factory=list)
    schedules: set[int] = field(default_factory=set)

    def queue_fan_out(self, run_id: int) -> None:
        self.fan_outs.append(run_id)

    def queue_send(self, batch: Batch) -> None:
        self.sends.append(batch)

    def put_schedule(self, campaign_id: int) -> None:
        self.schedules.add(campaign_id)

    def remove_schedule(self, campaign_id: int) -> None:
        self.schedules.discard(campaign_id)

    def waiting_sends(self) -> int:
        return len(self.sends)

    def heartbeats(self) -> Heartbeats | None:
        """The caller runs what was queued: every queue has a consumer, now."""
        return Heartbeats(workers={"memory": (0.0, keys.QUEUES)}, beats={"memory": (0.0, True)})


@dataclass
class MemoryLimiter:
    """A Limiter that grants every request at once and counts the tokens it granted.

    It stands for a provider with no rate limit; the send loop reserves once for
    every message it hands over, so ``granted`` counts messages let through. (The
    shared rate itself is the Redis limiter's: tests/integration/test_ratelimit.py.)
    """

    granted: int = 0

    def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
        self.granted += n
        return 0.0


@dataclass
class MemoryTally:
    """A Tally in lists: every slice's figures and every webhook verdict, kept."""

    slices: list[SliceFigures] = field(default_factory=list)
    webhooks: list[tuple[str, str]] = field(default_factory=list)

    def add_slice(self, figures: SliceFigures) -> None:
        self.slices.append(figures)

    def count_webhook(self, route: str, verdict: str) -> None:
        self.webhooks.append((route, verdict))
