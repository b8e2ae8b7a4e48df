"""Heartbeats in Redis: each worker says which queues it consumes, each beat that it ticks.

Celery's own worker heartbeats are events (off with ``--without-heartbeat``, and
only seen by a process listening to the event stream at the time), and ``inspect``
answers only for the workers alive at that moment. A page, ``runs show`` or
/readyz needs "when did a worker last consume queue X", so every worker writes its
hostname, its queues and the broker's time to one hash every HEARTBEAT_S seconds,
from the consumer's own timer (so a worker whose consumer has stopped stops
reporting), and every beat does the same on each tick. Readers compute ages on
the same Redis clock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

import redis
from celery import bootsteps

from campaigns import keys
from campaigns.domain.models import Heartbeats

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
# A worker or beat silent this long is dropped from the hashes when the next one writes.
FORGET_AFTER_S = 24 * 3600.0


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _broker_now(r: redis.Redis) -> float:
    seconds, micros = r.time()
    return float(seconds) + micros / 1e6


def _write(r: redis.Redis, key: str, member: str, value: dict[str, Any]) -> None:
    now = _broker_now(r)
    stale = [
        name
        for name, raw in r.hgetall(key).items()
        if now - float(json.loads(raw).get("seen", 0)) > FORGET_AFTER_S
    ]
    pipe = r.pipeline()
    pipe.hset(key, member, json.dumps({**value, "seen": now}))
    if stale:
        pipe.hdel(key, *stale)
    pipe.execute()


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def read(r: redis.Redis) -> Heartbeats:
    """Every worker's and beat's last report, as ages on Redis's clock."""
    now = _broker_now(r)
    workers: dict[str, tuple[float, tuple[str, ...]]] = {}
    for name, raw in r.hgetall(keys.WORKER_HEARTBEATS).items():
        entry = json.loads(raw)
        workers[_text(name)] = (max(0.0, now - entry["seen"]), tuple(entry["queues"]))
    beats: dict[str, tuple[float, bool]] = {}
    for name, raw in r.hgetall(keys.BEAT_HEARTBEATS).items():
        entry = json.loads(raw)
        beats[_text(name)] = (max(0.0, now - entry["seen"]), bool(entry["leader"]))
    return Heartbeats(workers=workers, beats=beats)


class QueueHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer bootstep: report this worker's queues every HEARTBEAT_S seconds."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self._tref: Any = None
        self._redis: redis.Redis | None = None
        self._failing = False
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        self._redis = client(c.app.conf.broker_url)
        self._beat(c)
        self._tref = c.timer.call_repeatedly(HEARTBEAT_S, self._beat, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None

    shutdown = stop

    def _beat(self, c: Any) -> None:
        consumer = c.task_consumer
        queues = sorted(q.name for q in consumer.queues) if consumer is not None else []
        try:
            assert self._redis is not None
            _write(self._redis, keys.WORKER_HEARTBEATS, c.hostname, {"queues": queues})
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("worker heartbeat: Redis unreachable (%s)", type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.warning("worker heartbeat: Redis answers again")
        self._failing = False


def beat_id() -> str:
    return f"beat@{socket.gethostname()}:{os.getpid()}"


def report_beat(r: redis.Redis, *, leader: bool) -> None:
    """Record that this beat ticked (and whether it leads); raises redis errors."""
    _write(r, keys.BEAT_HEARTBEATS, beat_id(), {"leader": leader})
