"""The global GCRA limiter against a real redis-server, shared by several processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import redis

from campaigns import keys
from campaigns.errors import ConfigError
from campaigns.sending.ratelimit import RateLimiter
from tests.support.services import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@dataclass(frozen=True)
class _Grant:
    """A grant seen by one process: it happened between ``before`` and ``after``."""

    pid: int
    before: float
    after: float


@dataclass(frozen=True)
class _Report:
    started: float
    stopped: float
    grants: list[_Grant]


def _hammer(url: str, sender: str, seconds: float, ready: Barrier, out: Queue[_Report]) -> None:
    """Take tokens as fast as the limiter allows, stamping either side of every request.

    time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine,
    so stamps from different processes compare.
    """
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(client, sender, rate_per_s=20, burst=1)
    client.ping()
    ready.wait(timeout=60)
    started = time.monotonic()
    stop_at = started + seconds
    grants = []
    while (now := time.monotonic()) < stop_at:
        wait = limiter.try_acquire()
        after = time.monotonic()
        if wait == 0.0:
            grants.append(_Grant(os.getpid(), now, after))
        else:
            time.sleep(min(wait, max(stop_at - after, 0.0)))
    out.put(_Report(started, time.monotonic(), grants))
    client.close()


def _most_in_one_second(grants: list[_Grant]) -> int:
    """The most grants certainly inside one 1-second window (both stamps within it).

    Counting only grants whose whole interval lies inside the window makes this a
    lower bound on the true count, so a result above the limit is a real breach and
    never an artefact of a process being descheduled between grant and stamp.
    """
    best = 0
    for start in sorted(g.before for g in grants):
        inside = sum(1 for g in grants if g.before >= start and g.after <= start + 1.0)
        best = max(best, inside)
    return best


def test_four_processes_sharing_one_sender_stay_within_rate_and_burst_together(
    redis_server: RedisServer,
) -> None:
    processes, seconds = 4, 3.0
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    out: Queue[_Report] = ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(redis_server.url, "sms", seconds, ready, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=60)
        reports: list[_Report] = [out.get(timeout=seconds + 30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    grants = [g for r in reports for g in r.grants]
    span = max(r.stopped for r in reports) - min(r.started for r in reports)

    overall = len(grants) / span
    assert 15.0 <= overall <= 21.0, f"{len(grants)} grants in {span:.2f} s"
    # 20/s with a burst of 1: grants 50 ms apart fit at most 21 in a closed second.
    assert _most_in_one_second(grants) <= 21
    # The processes really competed for one bucket rather than one taking every turn.
    assert len({g.pid for g in grants}) >= 2


def test_a_fresh_bucket_grants_the_burst_at_once_then_asks_to_wait(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=1, burst=3)

    granted = [limiter.try_acquire() for _ in range(3)]
    wait = limiter.try_acquire()

    assert granted == [0.0, 0.0, 0.0]
    assert 0.9 < wait <= 1.0


def test_a_refused_request_takes_nothing_from_the_bucket(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=1, burst=1)
    assert limiter.try_acquire() == 0.0

    first = limiter.try_acquire()
    second = limiter.try_acquire()

    # Had the refusal taken a token, the second wait would be a whole second longer.
    assert 0.0 < second <= first <= 1.0


def test_taking_several_tokens_at_once_waits_for_all_of_them(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "email", rate_per_s=10, burst=5)

    assert limiter.try_acquire(5) == 0.0
    assert 0.05 < limiter.try_acquire(1) <= 0.1
    assert 0.45 < limiter.try_acquire(5) <= 0.5


def test_separate_senders_do_not_share_a_bucket(client: redis.Redis) -> None:
    sms = RateLimiter(client, "sms", rate_per_s=1, burst=1)
    email = RateLimiter(client, "email", rate_per_s=1, burst=1)
    assert sms.try_acquire() == 0.0
    assert sms.try_acquire() > 0.0

    assert email.try_acquire() == 0.0


def test_limiters_for_the_same_sender_share_one_bucket_across_clients(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    other_client = redis.Redis.from_url(redis_server.url)
    one = RateLimiter(client, "sms", rate_per_s=1, burst=1)
    two = RateLimiter(other_client, "sms", rate_per_s=1, burst=1)

    assert one.try_acquire() == 0.0
    assert two.try_acquire() > 0.0
    other_client.close()


def test_the_bucket_lives_under_the_senders_key_and_expires_once_full_again(
    client: redis.Redis,
) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=20, burst=2)
    limiter.try_acquire()
    limiter.try_acquire()

    ttl_ms = client.pttl(keys.rate_limit("sms"))
    assert 0 < ttl_ms <= 100
    time.sleep(0.15)
    assert client.exists(keys.rate_limit("sms")) == 0
    assert limiter.try_acquire() == 0.0


def test_acquire_sleeps_until_the_next_token_is_due(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=5, burst=1)
    limiter.acquire()

    started = time.monotonic()
    limiter.acquire()
    waited = time.monotonic() - started

    assert 0.18 <= waited < 1.0


def test_acquire_raises_timeout_error_at_once_when_the_wait_outlasts_the_timeout(
    client: redis.Redis,
) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=0.5, burst=1)
    limiter.acquire()

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="'sms'"):
        limiter.acquire(timeout_s=0.5)

    assert time.monotonic() - started < 0.4


def test_asking_for_more_tokens_than_the_burst_is_refused(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=10, burst=2)

    with pytest.raises(ConfigError, match="burst=2"):
        limiter.try_acquire(3)
    with pytest.raises(ConfigError, match="burst=2"):
        limiter.acquire(0)


def test_a_limiter_needs_a_positive_rate_and_a_burst_of_at_least_one(
    client: redis.Redis,
) -> None:
    with pytest.raises(ConfigError, match="rate_per_s"):
        RateLimiter(client, "sms", rate_per_s=0)
    with pytest.raises(ConfigError, match="burst"):
        RateLimiter(client, "sms", rate_per_s=1, burst=0)


def test_an_exhausted_bucket_stays_exhausted_across_a_redis_restart() -> None:
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        limiter = RateLimiter(client, "sms", rate_per_s=0.1, burst=1)
        assert limiter.try_acquire() == 0.0

        server.restart()

        # The script cache is empty after a restart: the limiter must reload its script.
        assert limiter.try_acquire() > 5.0
        client.close()
    finally:
        server.stop()
