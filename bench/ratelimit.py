"""How closely does the global limiter hold several worker processes to the SMS rate?

Usage: python bench/ratelimit.py [--seconds 60] [--workers 4] [--rate 20] [--burst 1]
                                [--jitter-ms 30]
                                [--grants-only]

Each worker process loops: ``RateLimiter.acquire()``, then send one SMS. When the
local Twilio-compatible server (tests/support/twilio_server.py) and the Twilio
transport (campaigns/transports/twilio_sms.py) both exist, "send" is a real HTTP
POST made by the real twilio client; otherwise the worker only records when it was
granted. Prints the most sent in any one-second window and the mean rate, as a
table and then one JSON line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from campaigns.sending.ratelimit import RateLimiter  # noqa: E402
from campaigns.settings import Settings  # noqa: E402

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-token"
FROM_NUMBER = "+15005550006"
TO_NUMBER = "+15005550009"
SENDER = "sms"
WARM_UP_S = 2.0


@dataclass(frozen=True)
class WorkerResult:
    pid: int
    granted: list[float]  # time.time() when acquire() returned
    sent: list[float]  # time.time() when the send returned (equal to granted without HTTP)
    errors: int


def twilio_available() -> bool:
    return (
        importlib.util.find_spec("tests.support.twilio_server") is not None
        and importlib.util.find_spec("campaigns.transports.twilio_sms") is not None
    )


def make_sender(twilio_url: str | None) -> Callable[[], None] | None:
    """A callable sending one SMS through the real transport, or None to only record grants."""
    if twilio_url is None:
        return None
    from campaigns.domain.transport import OutboundMessage
    from campaigns.settings import load_settings

    # Imported by name: the transport may not exist yet, and the bench falls back then.
    twilio_sms = importlib.import_module("campaigns.transports.twilio_sms")
    settings = load_settings(
        sms_transport="twilio",
        twilio_api_url=twilio_url,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=FROM_NUMBER,
    )
    transport = twilio_sms.TwilioSmsTransport(settings)
    counter = iter(range(1, 1 << 62))

    def send() -> None:
        message = OutboundMessage(
            delivery_id=next(counter),
            run_id=0,
            channel="sms",
            to=TO_NUMBER,
            body="Cold and flu season is here: book your visit. Reply STOP to opt out.",
        )
        transport.send(message)

    return send


def work(
    redis_url: str,
    twilio_url: str | None,
    rate: float,
    burst: int,
    jitter_ms: float,
    seconds: float,
    ready: Barrier,
    out: Queue[WorkerResult],
) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(client, SENDER, rate_per_s=rate, burst=burst, jitter_s=jitter_ms / 1000)
    send = make_sender(twilio_url)
    client.ping()
    ready.wait(timeout=120)
    stop_at = time.monotonic() + seconds
    granted: list[float] = []
    sent: list[float] = []
    errors = 0
    while (remaining := stop_at - time.monotonic()) > 0:
        try:
            limiter.acquire(timeout_s=remaining)
        except TimeoutError:
            break
        granted.append(time.time())
        if send is not None:
            try:
                send()
            except Exception:  # a figure, not a crash: count it and go on
                errors += 1
                continue
        sent.append(time.time())
    out.put(WorkerResult(os.getpid(), granted, sent, errors))
    client.close()


def most_in_one_second(stamps: Sequence[float]) -> tuple[int, float]:
    """The most stamps in any window [t, t + 1 s), t sliding freely, and that window's t."""
    ordered = sorted(stamps)
    best, best_at = 0, ordered[0] if ordered else 0.0
    first = 0
    for last, stamp in enumerate(ordered):
        while stamp - ordered[first] >= 1.0:
            first += 1
        if last - first + 1 > best:
            best, best_at = last - first + 1, ordered[first]
    return best, best_at


def stamp_of(value: object) -> float | None:
    """A server's ``date_created`` as epoch seconds (datetime, number, ISO or RFC 2822)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            try:
                return parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                return None
    return None


def figures(
    name: str, stamps: Sequence[float], started: float, seconds: float
) -> dict[str, object]:
    most, at = most_in_one_second(stamps)
    return {
        "measure": name,
        "count": len(stamps),
        "max_in_any_1s": most,
        "worst_window_at_s": round(at - started, 2),
        "mean_per_s": round(len(stamps) / seconds, 3),
    }


def latency_ms(results: Sequence[WorkerResult]) -> dict[str, float]:
    """How long the sends took (grant to POST returned): the jitter that can bunch arrivals."""
    spans = sorted(
        (s - g) * 1000
        for r in results
        if len(r.sent) == len(r.granted)
        for g, s in zip(r.granted, r.sent, strict=True)
    )
    if not spans:
        return {}

    def pick(q: float) -> float:
        return round(spans[min(len(spans) - 1, int(q * len(spans)))], 1)

    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(spans[-1], 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=Settings.model_fields["rate_jitter_ms"].default,
        help="MERIDIAN_RATE_JITTER_MS",
    )
    parser.add_argument(
        "--grants-only",
        action="store_true",
        help="record grants; send nothing even if Twilio is there",
    )
    args = parser.parse_args(argv)

    from tests.support.services import RedisServer

    redis_server = RedisServer().start()
    twilio_server: Any = None
    if twilio_available() and not args.grants_only:
        twilio_module = importlib.import_module("tests.support.twilio_server")
        twilio_server = twilio_module.TwilioServer(ACCOUNT_SID, AUTH_TOKEN).start()
    mode = "twilio" if twilio_server is not None else "grants-only"
    try:
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Barrier(args.workers + 1)
        out: Queue[WorkerResult] = ctx.Queue()
        twilio_url = None if twilio_server is None else str(twilio_server.url)
        workers = [
            ctx.Process(
                target=work,
                args=(
                    redis_server.url,
                    twilio_url,
                    args.rate,
                    args.burst,
                    args.jitter_ms,
                    args.seconds,
                    ready,
                    out,
                ),
            )
            for _ in range(args.workers)
        ]
        for worker in workers:
            worker.start()
        ready.wait(timeout=120)
        started = time.time()
        results = [out.get(timeout=args.seconds + 120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        granted = [t for r in results for t in r.granted]
        rows = [figures("granted (acquire returned)", granted, started, args.seconds)]
        headline = rows[0]
        if twilio_server is not None:
            sent = [t for r in results for t in r.sent]
            headline = figures("sent (POST returned)", sent, started, args.seconds)
            rows.append(headline)
            created = [stamp_of(m.get("date_created")) for m in twilio_server.accepted()]
            known = [t for t in created if t is not None]
            whole_seconds = all(t == int(t) for t in known)
            name = "accepted (server date_created" + (", 1 s resolution)" if whole_seconds else ")")
            rows.append(figures(name, known, started, args.seconds))
            if known and not whole_seconds:
                headline = rows[-1]  # the provider's own clock: what a real limit is counted on
            if known and not whole_seconds and args.seconds > 2 * WARM_UP_S:
                # Cold first requests (connection set-up) bunch arrivals; this row leaves
                # the first WARM_UP_S out to show the steady state on its own.
                steady = [t for t in known if t >= started + WARM_UP_S]
                name = f"accepted from +{WARM_UP_S:g} s on"
                rows.append(figures(name, steady, started, args.seconds - WARM_UP_S))
    finally:
        if twilio_server is not None and hasattr(twilio_server, "stop"):
            twilio_server.stop()
        redis_server.stop()

    errors = sum(r.errors for r in results)
    latency = latency_ms(results) if mode == "twilio" else {}
    print(
        f"mode={mode} workers={args.workers} limit={args.rate:g}/s burst={args.burst} "
        f"jitter={args.jitter_ms:g} ms seconds={args.seconds:g} send_errors={errors}"
    )
    print(f"{'measure':<40} {'count':>6} {'max in any 1 s':>15} {'at +s':>7} {'mean /s':>8}")
    for row in rows:
        print(
            f"{row['measure']!s:<40} {row['count']!s:>6} {row['max_in_any_1s']!s:>15} "
            f"{row['worst_window_at_s']!s:>7} {row['mean_per_s']!s:>8}"
        )
    if latency:
        print("send latency ms (grant to POST returned): " + json.dumps(latency))
    print(
        json.dumps(
            {
                "bench": "ratelimit",
                "mode": mode,
                "workers": args.workers,
                "limit_per_s": args.rate,
                "burst": args.burst,
                "jitter_ms": args.jitter_ms,
                "seconds": args.seconds,
                "sent": headline["count"],
                "max_in_any_1s": headline["max_in_any_1s"],
                "mean_per_s": headline["mean_per_s"],
                "send_errors": errors,
                "send_latency_ms": latency,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
