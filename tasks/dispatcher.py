"""The core's Dispatcher on Celery and RedBeat: tasks sent by name, schedule entries.

Entry points plug it into their Services (tasks.app.dispatcher()); the core only
sees campaigns.domain.ports.Dispatcher.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from functools import cached_property

import redis
from celery import Celery
from celery.schedules import schedule as every
from redbeat import RedBeatSchedulerEntry
from redbeat.schedulers import RedBeatConfig

from campaigns import keys
from campaigns.domain.models import Batch, Heartbeats
from tasks import liveness

# The task names the workers register (tasks.runs, tasks.send, tasks.maintenance).
FAN_OUT = "meridian.runs.fan_out"
TICK_CAMPAIGN = "meridian.runs.tick_campaign"
SEND_BATCH = "meridian.send.batch"
PUMP = "meridian.maintenance.pump"
SWEEP = "meridian.maintenance.sweep"

# A scheduled campaign's entry ticks this often; each tick starts what is due.
TICK_S = 60.0
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def queue_fan_out(self, run_id: int) -> None:
        self.app.send_task(FAN_OUT, args=(run_id,), queue=keys.RUNS_QUEUE)

    def queue_send(self, batch: Batch) -> None:
        self.app.send_task(
            SEND_BATCH, args=(batch.run_id, batch.delivery_ids), queue=keys.SEND_QUEUE
        )

    def put_schedule(self, campaign_id: int) -> None:
        """The campaign's RedBeat entry: a tick that starts each occurrence when its
        window opens."""
        RedBeatSchedulerEntry(
            keys.schedule_entry(campaign_id),
            TICK_CAMPAIGN,
            every(TICK_S),
            args=(campaign_id,),
            options={"queue": keys.RUNS_QUEUE, "expires": TICK_S},
            # Last run long ago: the first tick fires at once, so an occurrence that is
            # already due starts within a second of scheduling, not a minute later.
            last_run_at=LONG_AGO,
            app=self.app,
        ).save()

    def remove_schedule(self, campaign_id: int) -> None:
        key = RedBeatConfig(self.app).key_prefix + keys.schedule_entry(campaign_id)
        with contextlib.suppress(KeyError):
            RedBeatSchedulerEntry.from_key(key, app=self.app).delete()

    def waiting_sends(self) -> int:
        # kombu's Redis transport keeps a queue as a list under its own name.
        return int(self._broker.llen(keys.SEND_QUEUE))

    def heartbeats(self) -> Heartbeats | None:
        try:
            return liveness.read(self._broker)
        except redis.RedisError:
            return None

    @cached_property
    def _broker(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.app.conf.broker_url, socket_timeout=10, socket_connect_timeout=5
        )
