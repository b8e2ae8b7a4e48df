"""RedBeat's scheduler, made to keep leading through a Redis restart.

Stock RedBeat takes its lock once, when beat starts, and installs the static
entries (the pump and the sweeper) once, at the same moment. A Redis that restarts
without its data takes the lock, the entries and every campaign's tick with it:
the stock scheduler then fails to extend a lock it no longer owns, and a beat
that took the lock over would find an empty schedule. Nothing would be pumped or
swept again.

This scheduler extends its lock on every tick and, whenever it has just become
leader (at start, or by taking a lock that was lost), installs the static entries
and every scheduled campaign's entry again from the database. A beat that is not
leader stands by and tries for the lock each tick; one that cannot reach Redis
logs it and tries again a second later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis

from campaigns.sending import liveness
from campaigns.sending.control import rebuild_schedules
from tasks.app import services
from tasks.liveness import report_beat

log = logging.getLogger(__name__)


class MeridianScheduler(RedBeatScheduler):  # type: ignore[misc]
    lock: Any = None  # redis.lock.Lock once held (RedBeat's attribute)
    _installed_for: Any = None  # the token of the lock the schedule was installed under

    _next_watch: float | None = None  # monotonic time of the next look at the workers

    def tick(self, min: Callable[..., float] = min, **kwargs: Any) -> float:
        try:
            leading = not self.lock_key or self._lead()
            report_beat(get_redis(self.app), leader=leading)
            if not leading:
                return float(self.max_interval)
            self._watch_workers()
            return float(super().tick(min=min, **kwargs))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("beat: Redis unreachable (%s); trying again", type(exc).__name__)
            return float(self.max_interval)
        except redis.exceptions.LockError:
            log.warning("beat: the lock expired under this beat; trying for it again")
            return float(self.max_interval)

    def _lead(self) -> bool:
        """Hold the lock (taking it if free); after taking it, reinstall the schedule."""
        if self.lock is not None and self.lock.owned():
            if self._installed_for != self.lock.local.token:
                self._install()
            return True
        lock = get_redis(self.app).lock(
            self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval
        )
        lock.lua_extend = get_redis(self.app).register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            if self.lock is not None:
                log.warning("beat: another beat leads now; standing by")
                self.lock = None
            return False
        log.warning("beat: took the lead; installing the schedule again")
        self.lock = lock
        self._install()
        return True

    def _watch_workers(self) -> None:
        """Every MERIDIAN_WORKER_SILENCE_S, log each run with due work and no worker
        at one of its queues (the first look waits that long: workers start too)."""
        silence = services().settings.worker_silence_s
        now = time.monotonic()
        if self._next_watch is None:
            self._next_watch = now + silence
        if now < self._next_watch:
            return
        self._next_watch = now + silence
        try:
            liveness.log_unattended_runs(services())
        except Exception as exc:  # a database away must not stop the beat from ticking
            log.warning("beat: could not look at the runs' workers (%s)", type(exc).__name__)

    def _install(self) -> None:
        self.setup_schedule()
        campaigns = rebuild_schedules(services())
        self._installed_for = self.lock.local.token if self.lock is not None else None
        log.info("beat: schedule installed (%s scheduled campaigns)", campaigns)
