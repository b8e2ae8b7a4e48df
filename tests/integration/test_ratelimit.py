"""The global GCRA limiter against a real redis-server, shared by several processes.

The limiter decides by Redis's clock (TIME), so these tests read that clock around
what they do and assert what the limiter answered against it: a wait is exactly
one interval less the Redis time that passed since the first grant, whatever this
machine's load. None of them times itself; how close to the rate several workers
get is measured by bench/ratelimit.py. Where a test is not about refilling, the
rate is one token an hour, so nothing refills however slowly it runs.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import redis

from campaigns import keys
from campaigns.errors import ConfigError
from campaigns.sending.ratelimit import RateLimiter
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from tests.support.services import RedisServer
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HOURLY = 1 / 3600  # tokens per second: none comes back while a test runs
HOUR_US = 3_600_000_000


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _recorded_sleeps(
    monkeypatch: pytest.MonkeyPatch, then: Callable[[float], None] = lambda _: None
) -> list[float]:
    """Every time.sleep() asked for from now on, in seconds; none really sleeps, and
    ``then`` runs with each instead."""
    asked: list[float] = []

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        # A limiter that keeps asking for more time would loop here for ever.
        assert len(asked) <= 10, f"time.sleep() asked for ten times: {asked}"
        then(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return asked


@pytest.fixture
def sleeps(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep() asked for during the test, in seconds; none really sleeps.

    A sleep lets that much time pass for the "sms" bucket at once instead: its
    theoretical arrival time moves back by what was slept, exactly as if Redis's
    clock had moved on. So acquire() can wait an hour in no time at all.
    """

    def time_passes(seconds: float) -> None:
        if client.exists(keys.rate_limit("sms")):
            client.decrby(keys.rate_limit("sms"), in_us(seconds))

    return _recorded_sleeps(monkeypatch, time_passes)


def redis_us(client: redis.Redis) -> int:
    """Redis's clock, the one the limiter decides by, in microseconds."""
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def bucket_us(client: redis.Redis, sender: str) -> int:
    """The bucket's theoretical arrival time (GCRA's one number), in Redis microseconds."""
    value = client.get(keys.rate_limit(sender))
    assert value is not None, f"no bucket for {sender!r}"
    return int(value)


def in_us(wait: float) -> int:
    """A wait the limiter gave (whole microseconds, as seconds) back in microseconds."""
    return round(wait * 1_000_000)


# several processes, one bucket -------------------------------------------------------------


def _race(
    url: str, attempts: int, burst: int, ready: Barrier, out: Queue[tuple[int, list[float]]]
) -> None:
    """Ask for a token ``attempts`` times as fast as possible; report every answer."""
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=burst)
    client.ping()
    ready.wait(timeout=60)
    answers = [limiter.try_acquire() for _ in range(attempts)]
    out.put((os.getpid(), answers))
    client.close()


def test_four_processes_racing_for_one_bucket_get_exactly_its_burst_between_them(
    redis_url: str, client: redis.Redis
) -> None:
    # Twice as many requests as tokens, and more tokens than one process asks for.
    processes, attempts, burst = 4, 100, 200
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    out: Queue[tuple[int, list[float]]] = ctx.Queue()
    racers = [
        ctx.Process(target=_race, args=(redis_url, attempts, burst, ready, out))
        for _ in range(processes)
    ]
    for racer in racers:
        racer.start()
    try:
        before = redis_us(client)
        ready.wait(timeout=60)
        reports = [out.get(timeout=60) for _ in racers]
        after = redis_us(client)
    finally:
        for racer in racers:
            racer.join(timeout=10)
            if racer.is_alive():
                racer.kill()
    granted = [pid for pid, answers in reports for wait in answers if wait == 0.0]
    refused = [in_us(wait) for _, answers in reports for wait in answers if wait > 0.0]

    # Not one token more than the burst, however the requests interleaved, and not
    # one fewer: a refusal took nothing, so every token went to someone.
    assert len(granted) == burst
    assert len(refused) == processes * attempts - burst
    # No process could take them all: the grants came from several, out of one bucket.
    assert len(set(granted)) >= 2
    # Every refusal named the same moment: one interval after the first grant.
    assert all(HOUR_US - (after - before) <= wait <= HOUR_US for wait in refused)


@dataclass(frozen=True)
class _Grant:
    """A grant seen by one process: made between ``before`` and ``after`` (Redis µs)."""

    pid: int
    before: int
    after: int


def _hammer(url: str, grants: int, ready: Barrier, out: Queue[list[_Grant]]) -> None:
    """Reserve ``grants`` slots as fast as possible, as the send loop does, reading
    Redis's clock either side of each: the slot falls between the two readings plus
    its wait. Nothing sleeps: the slots are on Redis's clock whoever waits for them."""
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(client, "sms", rate_per_s=20, burst=1)
    client.ping()
    ready.wait(timeout=60)
    taken: list[_Grant] = []
    while len(taken) < grants:
        before = redis_us(client)
        wait_us = in_us(limiter.reserve())
        taken.append(_Grant(os.getpid(), before + wait_us, redis_us(client) + wait_us))
    out.put(taken)
    client.close()


def _most_in_one_second(grants: list[_Grant]) -> int:
    """The most grants certainly inside one closed second of Redis time (both stamps in it).

    Counting only grants whose whole interval lies inside the window makes this a
    lower bound on the true count, so a result above the limit is a real breach and
    never an artefact of a process being descheduled between grant and stamp.
    """
    best = 0
    for start in sorted(g.before for g in grants):
        inside = sum(1 for g in grants if g.before >= start and g.after <= start + 1_000_000)
        best = max(best, inside)
    return best


def test_four_processes_sharing_one_sender_stay_within_rate_and_burst_together(
    redis_url: str,
) -> None:
    processes, each = 4, 15
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    out: Queue[list[_Grant]] = ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(redis_url, each, ready, out)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=60)
        grants = [g for _ in workers for g in out.get(timeout=120)]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()

    assert len(grants) == processes * each
    # 20/s with a burst of 1: grants 50 ms apart fit at most 21 in a closed second,
    assert _most_in_one_second(grants) <= 21
    # and all of them, end to end, took at least an interval per grant after the first.
    span = max(g.after for g in grants) - min(g.before for g in grants)
    assert span >= (len(grants) - 1) * 50_000
    # The processes really competed for one bucket rather than one taking every turn.
    assert len({g.pid for g in grants}) >= 2


# one process -------------------------------------------------------------------------------


def test_a_fresh_bucket_grants_the_burst_at_once_then_asks_to_wait(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=3)

    before = redis_us(client)
    granted = [limiter.try_acquire() for _ in range(3)]
    wait = in_us(limiter.try_acquire())
    after = redis_us(client)

    assert granted == [0.0, 0.0, 0.0]
    # The next token is due one interval after the first grant: what is left of it.
    assert HOUR_US - (after - before) <= wait <= HOUR_US


def test_a_refused_request_takes_nothing_from_the_bucket(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    assert limiter.try_acquire() == 0.0

    first = limiter.try_acquire()
    second = limiter.try_acquire()

    # Had the refusal taken a token, the second wait would be a whole interval longer.
    assert 0.0 < second <= first <= 3600.0


def test_taking_several_tokens_at_once_waits_for_all_of_them(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "email", rate_per_s=HOURLY, burst=5)

    before = redis_us(client)
    assert limiter.try_acquire(5) == 0.0
    one = in_us(limiter.try_acquire(1))
    five = in_us(limiter.try_acquire(5))
    elapsed = redis_us(client) - before

    # After the whole burst went, one token is an interval away and five are five.
    assert HOUR_US - elapsed <= one <= HOUR_US
    assert 5 * HOUR_US - elapsed <= five <= 5 * HOUR_US


def test_separate_senders_do_not_share_a_bucket(client: redis.Redis) -> None:
    sms = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    email = RateLimiter(client, "email", rate_per_s=HOURLY, burst=1)
    assert sms.try_acquire() == 0.0
    assert sms.try_acquire() > 0.0

    assert email.try_acquire() == 0.0


def test_limiters_for_the_same_sender_share_one_bucket_across_clients(
    redis_url: str, client: redis.Redis
) -> None:
    other_client = redis.Redis.from_url(redis_url)
    one = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    two = RateLimiter(other_client, "sms", rate_per_s=HOURLY, burst=1)

    assert one.try_acquire() == 0.0
    assert two.try_acquire() > 0.0
    other_client.close()


def test_the_bucket_lives_under_the_senders_key_and_expires_once_full_again(
    client: redis.Redis,
) -> None:
    hourly = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=2)
    hourly.try_acquire()
    hourly.try_acquire()

    # One snapshot: the bucket, how long its key has left, and Redis's clock.
    with client.pipeline(transaction=True) as pipe:
        pipe.get(keys.rate_limit("sms"))
        pipe.pttl(keys.rate_limit("sms"))
        pipe.time()
        full_at_us, ttl_ms, (seconds, micros) = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    # The key expires when the bucket is full again (GCRA's TAT), to the millisecond.
    assert 0 < ttl_ms <= 2 * 3_600_000
    assert abs(now_ms + ttl_ms - int(full_at_us) / 1000) <= 2

    fast = RateLimiter(client, "email", rate_per_s=20, burst=2)
    fast.try_acquire()
    fast.try_acquire()
    wait_until(
        lambda: client.exists(keys.rate_limit("email")) == 0, 10, "the full bucket's key to expire"
    )
    # A bucket whose key expired is full: the whole burst again.
    assert [fast.try_acquire(), fast.try_acquire()] == [0.0, 0.0]


def test_acquire_sleeps_until_the_next_token_is_due(
    client: redis.Redis, sleeps: list[float]
) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    limiter.acquire()
    assert sleeps == []  # a fresh bucket grants at once
    due_us = bucket_us(client, "sms")  # burst 1: the next token is due at the bucket's TAT

    asked_at = redis_us(client)
    limiter.acquire()
    returned_at = redis_us(client)

    # It took the token due then and slept once, for what was left until it came.
    assert len(sleeps) == 1
    assert due_us - returned_at <= in_us(sleeps[0]) <= due_us - asked_at
    assert bucket_us(client, "sms") >= asked_at + HOUR_US


def test_callers_queued_at_acquire_hold_slots_exactly_one_interval_apart(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sleeps are recorded, and no time passes for the bucket: two more callers queue
    # behind the first grant while it is still an hour away.
    slept = _recorded_sleeps(monkeypatch)
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    limiter.acquire()
    first_due = bucket_us(client, "sms")

    asked_at = redis_us(client)
    limiter.acquire()
    limiter.acquire()
    returned_at = redis_us(client)

    # Each took its own slot in one call and slept until it: the next due and the one
    # after, however late either wakes. The bucket moved by exactly two intervals.
    assert len(slept) == 2
    assert first_due - returned_at <= in_us(slept[0]) <= first_due - asked_at
    assert in_us(slept[1]) - in_us(slept[0]) == pytest.approx(HOUR_US, abs=returned_at - asked_at)
    assert bucket_us(client, "sms") == first_due + 2 * HOUR_US


def test_jitter_spreads_a_seconds_grants_over_a_second_and_the_jitter(
    client: redis.Redis,
) -> None:
    # 30 ms of jitter at one token an hour: the next token is 1.03 hours away.
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1, jitter_s=0.03)
    before = redis_us(client)
    assert limiter.try_acquire() == 0.0
    wait = in_us(limiter.try_acquire())
    elapsed = redis_us(client) - before

    assert round(1.03 * HOUR_US) - elapsed <= wait <= round(1.03 * HOUR_US)


def test_each_channels_limiter_takes_its_rate_and_burst_and_the_jitter_from_the_settings(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = make_settings(
        tmp_path,
        redis_url=redis_url,
        sms_rate=HOURLY,
        sms_burst=1,
        email_rate=2 * HOURLY,
        email_burst=2,
        rate_jitter_ms=500,
        email_transport="outbox",
    )
    svc = Services(settings, MemoryDispatcher())
    try:
        sms, email = svc.limiter("sms"), svc.limiter("email")
        assert sms is not None and email is not None
        before = redis_us(client)
        granted = [sms.try_acquire(), email.try_acquire(), email.try_acquire()]
        waits = [in_us(sms.try_acquire()), in_us(email.try_acquire())]
        elapsed = redis_us(client) - before
    finally:
        svc.close()

    assert granted == [0.0, 0.0, 0.0]  # each channel's burst, out of its own bucket
    # Half a second of jitter: an interval is 1.5 s over the rate, for each channel.
    assert round(1.5 * HOUR_US) - elapsed <= waits[0] <= round(1.5 * HOUR_US)
    assert round(0.75 * HOUR_US) - elapsed <= waits[1] <= round(0.75 * HOUR_US)


def test_acquire_raises_timeout_error_at_once_when_the_wait_outlasts_the_timeout(
    client: redis.Redis, sleeps: list[float]
) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
    limiter.acquire()
    due_us = bucket_us(client, "sms")

    with pytest.raises(TimeoutError, match="'sms'"):
        limiter.acquire(timeout_s=60)

    assert sleeps == []  # it did not sleep first to find out
    assert bucket_us(client, "sms") == due_us  # and took nothing
    # Within the timeout, the same wait is taken and slept.
    limiter.acquire(timeout_s=2 * 3600)
    assert len(sleeps) == 1


def test_reserving_with_a_burst_takes_the_burst_at_once_then_one_slot_per_interval(
    client: redis.Redis,
) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=3)
    before = redis_us(client)
    waits = [in_us(limiter.reserve()) for _ in range(5)]
    elapsed = redis_us(client) - before

    assert waits[:3] == [0, 0, 0]
    assert HOUR_US - elapsed <= waits[3] <= HOUR_US
    assert 2 * HOUR_US - elapsed <= waits[4] <= 2 * HOUR_US


def test_asking_for_more_tokens_than_the_burst_is_refused(client: redis.Redis) -> None:
    limiter = RateLimiter(client, "sms", rate_per_s=10, burst=2)

    with pytest.raises(ConfigError, match="burst=2"):
        limiter.try_acquire(3)
    with pytest.raises(ConfigError, match="burst=2"):
        limiter.acquire(0)


def test_a_limiter_needs_a_positive_rate_a_burst_of_at_least_one_and_a_jitter_under_a_second(
    client: redis.Redis,
) -> None:
    with pytest.raises(ConfigError, match="rate_per_s"):
        RateLimiter(client, "sms", rate_per_s=0)
    with pytest.raises(ConfigError, match="burst"):
        RateLimiter(client, "sms", rate_per_s=1, burst=0)
    with pytest.raises(ConfigError, match="jitter_s"):
        RateLimiter(client, "sms", rate_per_s=1, jitter_s=1.0)
    with pytest.raises(ConfigError, match="jitter_s"):
        RateLimiter(client, "sms", rate_per_s=1, jitter_s=-0.01)


def test_an_exhausted_bucket_stays_exhausted_across_a_redis_restart() -> None:
    with RedisServer() as server:  # its own: the session's server is not to be restarted
        client = redis.Redis.from_url(server.url)
        limiter = RateLimiter(client, "sms", rate_per_s=HOURLY, burst=1)
        before = redis_us(client)
        assert limiter.try_acquire() == 0.0

        server.restart()

        # The script cache is empty after a restart: the limiter must reload its script.
        wait = in_us(limiter.try_acquire())
        assert HOUR_US - (redis_us(client) - before) <= wait <= HOUR_US
        client.close()
