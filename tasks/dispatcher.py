"""The core's Dispatcher on Celery and RedBeat: tasks sent by name, schedule entries.

Entry points plug it into their Services (tasks.app.dispatcher()); the core only
sees campaigns.domain.ports.Dispatcher, and a broker that does not answer only as
campaigns.errors.BrokerUnavailable: the CLI, the console and the API catch that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property

import redis
from celery import Celery
from celery.schedules import schedule as every
from kombu.exceptions import OperationalError
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import RedBeatConfig

from campaigns import keys
from campaigns.domain.models import Batch, Heartbeats
from campaigns.errors import BrokerUnavailable
from tasks import liveness

# The task names the workers register (tasks.runs, tasks.send, tasks.maintenance).
FAN_OUT = "meridian.runs.fan_out"
TICK_CAMPAIGN = "meridian.runs.tick_campaign"
SEND_BATCH = "meridian.send.batch"
PUMP = "meridian.maintenance.pump"
SWEEP = "meridian.maintenance.sweep"
INBOX_DIGEST = "meridian.maintenance.inbox_digest"
POLL_BOUNCES = "meridian.maintenance.poll_bounces"

# A scheduled campaign's entry ticks this often; each tick starts what is due.
TICK_S = 60.0
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def queue_fan_out(self, run_id: int) -> None:
        with _broker("queue the run's fan-out"):
            self.app.send_task(FAN_OUT, args=(run_id,), queue=keys.RUNS_QUEUE)

    def queue_send(self, batch: Batch) -> None:
        with _broker("queue a send batch"):
            self.app.send_task(
                SEND_BATCH, args=(batch.run_id, batch.delivery_ids), queue=keys.SEND_QUEUE
            )

    def put_schedule(self, campaign_id: int) -> None:
        """The campaign's RedBeat entry: a tick that starts each occurrence when its
        window opens."""
        entry = RedBeatSchedulerEntry(
            keys.schedule_entry(campaign_id),
            TICK_CAMPAIGN,
            every(TICK_S),
            args=(campaign_id,),
            options={"queue": keys.RUNS_QUEUE, "expires": TICK_S},
            # Last run long ago: the first tick fires at once, so an occurrence that is
            # already due starts within a second of scheduling, not a minute later.
            last_run_at=LONG_AGO,
            app=self.app,
        )
        with _broker("write the campaign's schedule entry"):
            entry.save()

    def remove_schedule(self, campaign_id: int) -> None:
        key = RedBeatConfig(self.app).key_prefix + keys.schedule_entry(campaign_id)
        with _broker("remove the campaign's schedule entry"), contextlib.suppress(KeyError):
            RedBeatSchedulerEntry.from_key(key, app=self.app).delete()

    def waiting_sends(self) -> int:
        # kombu's Redis transport keeps a queue as a list under its own name.
        with _broker("count the waiting send batches"):
            return int(self._client.llen(keys.SEND_QUEUE))

    def heartbeats(self) -> Heartbeats | None:
        try:
            return liveness.read(self._client)
        except redis.RedisError:
            return None

    @cached_property
    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.app.conf.broker_url, socket_timeout=10, socket_connect_timeout=5
        )


@contextlib.contextmanager
def _broker(what: str) -> Iterator[None]:
    """Raise a broker that did not answer as the core's BrokerUnavailable."""
    try:
        yield
    except (
        OperationalError,  # kombu's, from send_task
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    ) as exc:
        raise BrokerUnavailable(
            f"could not {what}: Redis (the broker) did not answer ({type(exc).__name__}); "
            "nothing was queued. Check that Redis is up at MERIDIAN_REDIS_URL and try again"
        ) from exc
