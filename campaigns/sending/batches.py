"""Batches of deliveries waiting for their due time, in a Redis sorted set.

No Celery ETA longer than a minute is ever used: with the Redis broker a task
whose ETA outlives the visibility timeout is redelivered and runs twice. Future
sends wait here instead, scored by due time, and the pump (every second) moves
what is due onto the send queue. Losing this set loses nothing: the sweeper
re-queues overdue pending deliveries from the ledger. A Redis that does not answer
is raised as campaigns.errors.BrokerUnavailable, as the dispatcher raises it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import redis

from campaigns import keys
from campaigns.domain.models import Batch
from campaigns.errors import BrokerUnavailable

if TYPE_CHECKING:
    from campaigns.services import Services

# The most batches one pop takes; the pump pops again while it gets this many.
POP_LIMIT = 200
# The most send batches the pump lets wait on the broker: at 500 deliveries a batch,
# several seconds of work for a few worker processes.
SEND_BACKLOG = 64

# Pop up to ARGV[2] members scored at or below ARGV[1], atomically, so that two
# pumps never both move the same batch.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


class DueBatches:
    """The due set in Redis (a campaigns.domain.ports.DueQueue)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._pop = client.register_script(_POP_DUE)

    def add(self, batches: Iterable[tuple[datetime, Batch]]) -> int:
        mapping: dict[str, float] = {}
        for due, batch in batches:
            member = json.dumps(
                {"r": batch.run_id, "ids": batch.delivery_ids, "n": uuid.uuid4().hex[:8]}
            )
            mapping[member] = due.timestamp()
        if mapping:
            with _unreachable("queue batches in the due set"):
                self.client.zadd(keys.DUE_BATCHES, mapping)
        return len(mapping)

    def pop_due(self, now: datetime, limit: int = POP_LIMIT) -> list[Batch]:
        with _unreachable("take due batches"):
            raw = self._pop(keys=[keys.DUE_BATCHES], args=[now.timestamp(), limit])
        out = []
        for member in cast(list[bytes], raw):
            data: dict[str, Any] = json.loads(member)
            out.append(Batch(int(data["r"]), [int(i) for i in data["ids"]]))
        return out

    def waiting_since(self, before: datetime) -> int:
        """Batches due at or before ``before`` that no pump has moved yet."""
        with _unreachable("count the due batches"):
            return int(self.client.zcount(keys.DUE_BATCHES, "-inf", before.timestamp()))


@contextlib.contextmanager
def _unreachable(what: str) -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise BrokerUnavailable(
            f"could not {what}: Redis did not answer ({type(exc).__name__}); nothing was "
            "queued. Check that Redis is up at MERIDIAN_REDIS_URL and try again"
        ) from exc


def pump(svc: Services) -> int:
    """Move due batches onto the send queue, up to SEND_BACKLOG waiting there; how many
    were moved. What is due beyond that waits in the due set (in Redis, scored by its
    due time) until the workers have taken some: the broker's queue stays bounded
    however large the run (a million patients queued 473 batches at once before)."""
    moved = 0
    room = SEND_BACKLOG - svc.dispatcher.waiting_sends()
    while room > 0:
        limit = min(POP_LIMIT, room)
        batches = svc.due.pop_due(svc.now(), limit)
        for batch in batches:
            svc.dispatcher.queue_send(batch)
        moved += len(batches)
        room -= len(batches)
        if len(batches) < limit:
            break
    return moved


def group_batches(
    rows: Iterable[tuple[int, datetime]], run_of: int, size: int
) -> Iterator[tuple[datetime, Batch]]:
    """Group (id, due) rows, already in due order, into batches of one due second.

    A batch is scored by its latest member, so none of its messages goes early.
    """
    current: list[int] = []
    first: datetime | None = None
    last: datetime | None = None
    for delivery_id, due in rows:
        if current and (
            len(current) >= size or first is None or (due - first).total_seconds() >= 1.0
        ):
            assert last is not None
            yield last, Batch(run_of, current)
            current = []
        if not current:
            first = due
        current.append(delivery_id)
        last = due
    if current and last is not None:
        yield last, Batch(run_of, current)


def chunked(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
