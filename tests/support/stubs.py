"""Stand-ins for the edges the send loop's tests replace: a provider that keeps a log
and fails as told, the few Redis calls the core makes past its ports, and Services
on a clock the test sets, built on the in-memory ports of campaigns.sending.stubs.

    svc = StubbedServices(settings, at=datetime(2025, 10, 15, 16, 0, tzinfo=UTC))
    fan_out_queued(svc)   # what control.run_now queued
    send_due(svc)         # the pump, then the send tasks, as a worker would
    svc.recorder("sms").taken

These live with the tests, not in campaigns.sending.stubs, because they stand for
edges (a provider, a Redis client) rather than for a port the core declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast

import redis
from redis.exceptions import LockNotOwnedError

from campaigns.domain.models import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt
from campaigns.errors import SendError
from campaigns.sending import batches, delivery, fanout
from campaigns.sending.stubs import MemoryDispatcher, MemoryDueQueue, MemoryLimiter, MemoryTally
from campaigns.services import Services
from campaigns.settings import Settings
from campaigns.transports.accept import AcceptTransport


@dataclass(frozen=True)
class Taken:
    """One message the provider accepted, when (on Meridian's clock), under which id."""

    at: datetime
    message: OutboundMessage
    provider_id: str


@dataclass(frozen=True)
class _Failure:
    error: SendError
    reached: bool  # the provider took the message before the error (an answer lost)


class RecordingTransport(AcceptTransport):
    """The accept transport, keeping the provider's log and failing when told to.

    ``offered`` is every message handed to ``send``, ``taken`` what the provider
    accepted (what ``find_sent`` answers from, as Twilio's message list would).
    ``fail_next`` scripts the next sends; ``fail_always`` every send after them.
    """

    def __init__(self, channel: Channel, clock: Callable[[], datetime]) -> None:
        super().__init__(channel)
        self.clock = clock
        self.offered: list[OutboundMessage] = []
        self.taken: list[Taken] = []
        self._next: list[_Failure] = []
        self._always: _Failure | None = None

    def fail_next(self, error: SendError, *, reached: bool = False, times: int = 1) -> None:
        self._next += [_Failure(error, reached)] * times

    def fail_always(self, error: SendError, *, reached: bool = False) -> None:
        self._always = _Failure(error, reached)

    def send(self, message: OutboundMessage) -> SendReceipt:
        self.offered.append(message)
        failure = self._next.pop(0) if self._next else self._always
        if failure is not None and not failure.reached:
            raise failure.error
        receipt = super().send(message)
        self.taken.append(Taken(self.clock(), message, receipt.provider_id))
        if failure is not None:
            raise failure.error
        return receipt

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        for t in self.taken:
            if (
                t.message.delivery_id == message.delivery_id
                and t.message.channel == message.channel
                and t.at >= since
            ):
                return SeenMessage(t.provider_id, t.message.to, t.message.body, t.at)
        return None

    def taken_ids(self) -> list[int]:
        """The delivery id of every message the provider accepted, in order."""
        return [t.message.delivery_id for t in self.taken]


class SlowLimiter(MemoryLimiter):
    """A limiter whose every grant comes ``wait`` later on the stub clock, as at a
    shared rate of 1/s with many messages ahead in the queue."""

    def __init__(self, svc: StubbedServices, wait: timedelta) -> None:
        super().__init__()
        self.svc = svc
        self.wait = wait

    def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
        self.svc.advance(seconds=self.wait.total_seconds())
        return super().reserve(n, timeout_s)


class MemoryRedis:
    """The redis-py calls the core still makes past its ports: fan-out's and the
    sweeper's locks (``lock``, ``exists``) and the early statuses' hash (``hset``,
    ``hgetall``, ``hdel``). Any other call is an AttributeError, so a new direct use
    of Redis in the send loop shows up in these tests."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.hashes: dict[str, dict[str, Any]] = {}

    def lock(self, name: str, timeout: float | None = None, blocking: bool = True) -> MemoryLock:
        return MemoryLock(self, name)

    def exists(self, *names: str) -> int:
        return sum(1 for n in names if n in self.held or self.hashes.get(n))

    def hset(self, name: str, key: str, value: Any) -> int:
        fresh = key not in self.hashes.setdefault(name, {})
        self.hashes[name][key] = value
        return int(fresh)

    def hgetall(self, name: str) -> dict[str, Any]:
        return dict(self.hashes.get(name, {}))

    def hdel(self, name: str, *keys: str) -> int:
        found = self.hashes.get(name, {})
        return sum(1 for k in keys if found.pop(k, None) is not None)


class MemoryLock:
    """A lock that never expires: held until released (a dead holder is not simulated)."""

    def __init__(self, store: MemoryRedis, name: str) -> None:
        self.store = store
        self.name = name
        self.owned = False

    def acquire(self, blocking: bool | None = None) -> bool:
        if self.name in self.store.held:
            return False
        self.store.held.add(self.name)
        self.owned = True
        return True

    def reacquire(self) -> bool:
        if not (self.owned and self.name in self.store.held):
            raise LockNotOwnedError(f"lock {self.name} is not ours")
        return True

    def release(self) -> None:
        self.reacquire()
        self.store.held.discard(self.name)
        self.owned = False


class StubbedServices(Services):
    """Services with no Redis and no worker, on a clock that moves only when told.

    The due queue, dispatcher and limiters are campaigns.sending.stubs'; each
    channel's transport a RecordingTransport on this clock; the locks MemoryRedis.
    ``now()`` is the one clock: the ledger, the windows and the provider's log all
    read it.
    """

    def __init__(self, settings: Settings, *, at: datetime) -> None:
        self.limiters = {"sms": MemoryLimiter(), "email": MemoryLimiter()}
        super().__init__(
            settings,
            MemoryDispatcher(),
            due=MemoryDueQueue(),
            limiters=cast(dict[Channel, MemoryLimiter], self.limiters),
            tally=MemoryTally(),
        )
        self.clock = at
        self.memory_redis = MemoryRedis()

    def now(self) -> datetime:
        return self.clock

    def set_clock(self, at: datetime) -> None:
        self.clock = at

    def advance(self, **delta: float) -> datetime:
        self.clock += timedelta(**delta)
        return self.clock

    @cached_property
    def redis(self) -> redis.Redis:
        return cast(redis.Redis, self.memory_redis)

    def _make_transport(self, channel: Channel) -> RecordingTransport:
        return RecordingTransport(channel, self.now)

    def recorder(self, channel: Channel) -> RecordingTransport:
        transport = self.transport(channel)
        assert isinstance(transport, RecordingTransport)
        return transport

    def use_limiter(self, channel: Channel, limiter: MemoryLimiter) -> None:
        """Hand the send loop this limiter for ``channel`` (one that takes its time)."""
        self.limiters[channel] = limiter
        self._limiters[channel] = limiter

    def new_worker_renderer(self) -> None:
        """Templates read afresh, as by a worker process started after they changed
        on disk (each process compiles a template once)."""
        self.__dict__.pop("renderer", None)

    @property
    def memory_due(self) -> MemoryDueQueue:
        assert isinstance(self.due, MemoryDueQueue)
        return self.due

    @property
    def memory_tally(self) -> MemoryTally:
        assert isinstance(self.tally, MemoryTally)
        return self.tally

    @property
    def memory_dispatcher(self) -> MemoryDispatcher:
        assert isinstance(self.dispatcher, MemoryDispatcher)
        return self.dispatcher

    def queued(self) -> dict[int, datetime]:
        """Each delivery waiting in the due queue, with its batch's due time."""
        return {i: due for due, batch in self.memory_due.waiting for i in batch.delivery_ids}


def fan_out_queued(svc: StubbedServices) -> list[int]:
    """Run every fan-out handed to the workers, as the runs queue would; their run ids."""
    done = []
    while svc.memory_dispatcher.fan_outs:
        run_id = svc.memory_dispatcher.fan_outs.pop(0)
        fanout.fan_out(svc, run_id)
        done.append(run_id)
    return done


def send_due(svc: StubbedServices) -> list[delivery.BatchResult]:
    """The pump, then every send batch it handed to the workers, at ``svc.now()``."""
    batches.pump(svc)
    results = []
    while svc.memory_dispatcher.sends:
        results.append(delivery.send_batch(svc, svc.memory_dispatcher.sends.pop(0)))
    return results
