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
from collections.abc import Callable
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis

from campaigns.sending.control import rebuild_schedules
from tasks.app import services

log = logging.getLogger(__name__)


class MeridianScheduler(RedBeatScheduler):  # type: ignore[misc]
    lock: Any = None  # redis.lock.Lock once held (RedBeat's attribute)
    _installed_for: Any = None  # the token of the lock the schedule was installed under

    def tick(self, min: Callable[..., float] = min, **kwargs: Any) -> float:
        try:
            if self.lock_key and not self._lead():
                return float(self.max_interval)
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

    def _install(self) -> None:
        self.setup_schedule()
        campaigns = rebuild_schedules(services())
        self._installed_for = self.lock.local.token if self.lock is not None else None
        log.info("beat: schedule installed (%s scheduled campaigns)", campaigns)
