"""Counters that many processes add to and one scrape reads: hashes in Redis.

Send latency and rate-limit waits happen in the workers, webhook verdicts in the
web processes (several gunicorn workers, several machines). prometheus-client's
multiprocess mode shares files between processes of one host only, so those
counters live in Redis instead: each send slice adds its figures in one pipeline,
each webhook one HINCRBY, and /metrics reads the hashes at scrape time. Everything
else /metrics shows is computed from the ledger or Redis when scraped.

A tally that cannot reach Redis drops the figure and says so once: a metric is
never worth failing a send or a webhook for.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from dataclasses import dataclass

import redis

from campaigns import keys
from campaigns.domain.models import SliceFigures

log = logging.getLogger(__name__)

# Seconds a provider takes to accept one message (an SMTP session reuses its connection).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SEND_LATENCY = f"{keys.PREFIX}:metrics:send-latency"  # "<channel>:<le>|sum|count" -> n
RATE_WAITS = f"{keys.PREFIX}:metrics:rate-waits"  # "<channel>:seconds|count" -> n
WEBHOOKS = f"{keys.PREFIX}:metrics:webhooks"  # "<route>:<verdict>" -> n


@dataclass(frozen=True)
class Histogram:
    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    total: float
    count: int


class RedisTally:
    """The Tally port on Redis hashes; also reads them back for /metrics."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._failing = False

    def add_slice(self, figures: SliceFigures) -> None:
        if not figures.latency and not figures.waits:
            return
        pipe = self._redis.pipeline(transaction=False)
        for channel, values in figures.latency.items():
            # one HINCRBY per bucket the slice touched, not per message
            buckets = Counter(bisect.bisect_left(LATENCY_BUCKETS, seconds) for seconds in values)
            for i, n in sorted(buckets.items()):
                le = repr(LATENCY_BUCKETS[i]) if i < len(LATENCY_BUCKETS) else "+Inf"
                pipe.hincrby(SEND_LATENCY, f"{channel}:{le}", n)
            pipe.hincrbyfloat(SEND_LATENCY, f"{channel}:sum", sum(values))
            pipe.hincrby(SEND_LATENCY, f"{channel}:count", len(values))
        for channel, values in figures.waits.items():
            pipe.hincrbyfloat(RATE_WAITS, f"{channel}:seconds", sum(values))
            pipe.hincrby(RATE_WAITS, f"{channel}:count", len(values))
        self._run(pipe)

    def count_webhook(self, route: str, verdict: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(WEBHOOKS, f"{route}:{verdict}", 1)
        self._run(pipe)

    def _run(self, pipe: redis.client.Pipeline) -> None:
        try:
            pipe.execute()
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("metrics: Redis unreachable (%s); figures dropped", type(exc).__name__)
            self._failing = True
            return
        self._failing = False

    # Reading, at scrape time (raises redis errors) --------------------------------

    def send_latency(self) -> dict[str, Histogram]:
        raw = _floats(self._redis.hgetall(SEND_LATENCY))
        found: dict[str, Histogram] = {}
        for channel in sorted({k.partition(":")[0] for k in raw}):
            running, buckets = 0, []
            for le in [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]:
                running += int(raw.get(f"{channel}:{le}", 0))
                buckets.append((float(le), running))
            found[channel] = Histogram(
                buckets, raw.get(f"{channel}:sum", 0.0), int(raw.get(f"{channel}:count", 0))
            )
        return found

    def rate_waits(self) -> dict[str, tuple[float, int]]:
        raw = _floats(self._redis.hgetall(RATE_WAITS))
        channels = sorted({k.partition(":")[0] for k in raw})
        return {c: (raw.get(f"{c}:seconds", 0.0), int(raw.get(f"{c}:count", 0))) for c in channels}

    def webhooks(self) -> dict[tuple[str, str], int]:
        raw = _floats(self._redis.hgetall(WEBHOOKS))
        return {tuple(k.split(":", 1)): int(v) for k, v in raw.items()}  # type: ignore[misc]


def _floats(raw: dict[bytes | str, bytes | str]) -> dict[str, float]:
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
