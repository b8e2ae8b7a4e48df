"""Scale out, measured: 1, 2 and 4 separate Celery nodes on one PostgreSQL and one Redis.

Usage: python bench/nodes.py [--patients 20000] [--nodes 1,2,4] [--rate 100]
                             [--rate-seconds 30] [--concurrency 1]

Each node is its own ``celery -A tasks worker -n nodeK@host -c 1`` process tree (no
embedded beat); one ``celery -A tasks beat`` process ticks the pump for all of them.
For every node count, on the same ledger (patients imported once):

1. **throughput**: the bench campaign (sms + email, every patient not tagged
   do-not-market) run now to the ``accept`` transport with no rate limit; messages
   per second from ``run_now`` to finished, and CPU seconds per 1,000 messages by
   role: the worker trees, beat, PostgreSQL (every server process) and Redis,
   measured with psutil (bench/meter.py).
2. **the global rate limiter across nodes**: an SMS-only campaign through the real
   twilio client to the local Twilio-compatible server (tests/support/twilio_server.py)
   at ``MERIDIAN_SMS_RATE=--rate`` for ``--rate-seconds`` (then the run is cancelled);
   from the server's own arrival times, the most
   messages in any one-second window (sliding, to the microsecond) and the mean
   rate from the first to the last arrival. Wanted: max <= the rate, mean >= 95 % of it.

Prints a table per phase and one JSON line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.meter import Meter  # noqa: E402
from bench.ratelimit import most_in_one_second  # noqa: E402
from bench.throughput import (  # noqa: E402
    WORKDIR,
    Options,
    Worker,
    campaign_yaml,
    follow,
    machine,
    meridian_env,
    postgres_pid,
    redis_pid,
    wait_for,
)
from campaigns.content.catalogue import apply_campaign  # noqa: E402
from campaigns.people.patients import import_patients  # noqa: E402
from campaigns.people.synthetic import write_patients_csv  # noqa: E402
from campaigns.sending import control, runs  # noqa: E402
from campaigns.services import Services  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402
from tests.support.twilio_server import TwilioServer  # noqa: E402

SID = "AC" + "0" * 32
TOKEN = "bench-token"


class Beat:
    """One ``celery -A tasks beat`` process (RedBeat): the pump and the sweeper."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO"]
        with open(log, "wb") as handle:
            self.proc = subprocess.Popen(
                cmd,
                env={**os.environ, **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_nodes(n: int, concurrency: int, env: dict[str, str], tag: str) -> list[Worker]:
    nodes = []
    for k in range(1, n + 1):
        # The Worker helper names the node after its log file: node{k}-... @ this host.
        log = WORKDIR / f"node{k}-of-{n}-{tag}.log"
        nodes.append(Worker("tasks", "runs,send,maintenance", concurrency, env, log, beat=False))
    for node in nodes:
        node.wait_ready()
    return nodes


def measured_run(
    svc: Services,
    name: str,
    nodes: list[Worker],
    beat: Beat,
    services: list[tuple[str, int]],
    stop_after_s: float | None = None,
) -> dict[str, Any]:
    meter = Meter()
    for node in nodes:
        meter.watch("worker", node.pid)
    meter.watch("beat", beat.proc.pid)
    for role, pid in services:
        meter.watch(role, pid)
    meter.start()
    t0 = time.monotonic()
    run_id = control.run_now(svc, name, actor="bench")
    assert run_id is not None
    if stop_after_s is not None:
        # Long enough to see the limiter hold its rate; then the run is cancelled and
        # its claims come back (what was handed over stays handed over).
        time.sleep(stop_after_s)
        runs.cancel_run(svc, run_id, actor="bench")
    follow(svc, run_id, 1800, log=nodes[0].log)
    elapsed = time.monotonic() - t0
    usage = meter.stop()
    status = runs.run_status(svc, run_id)
    sent = int(status["by_state"].get("sent", 0))
    per_role = (
        {k: round(v / sent * 1000, 4) for k, v in sorted(usage.cpu_s.items())} if sent else {}
    )
    return {
        "run_id": run_id,
        "messages_sent": sent,
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(sent / elapsed, 1),
        "cpu_s_per_1000_msgs": round(usage.total_cpu_s / sent * 1000, 4) if sent else None,
        "cpu_s_per_1000_msgs_by_role": per_role,
        "other_load_cores": round(usage.other_cpu_s / usage.wall_s, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def limiter_figures(arrivals: Sequence[datetime], rate: float) -> dict[str, Any]:
    stamps = sorted(a.timestamp() for a in arrivals)
    if len(stamps) < 2:
        return {"messages": len(stamps)}
    most, _ = most_in_one_second(stamps)
    span = stamps[-1] - stamps[0]
    mean = (len(stamps) - 1) / span if span > 0 else 0.0
    return {
        "messages": len(stamps),
        "max_in_any_1s": most,
        "mean_per_s": round(mean, 2),
        "mean_of_limit": round(mean / rate, 4),
        "max_within_limit": most <= rate,
        "mean_at_least_95pct": mean >= 0.95 * rate,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--nodes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes per node")
    parser.add_argument("--rate", type=float, default=100.0, help="MERIDIAN_SMS_RATE")
    parser.add_argument(
        "--rate-seconds", type=float, default=30.0, help="how long the rate phase sends"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",")]
    WORKDIR.mkdir(parents=True, exist_ok=True)
    csv = WORKDIR / "nodes-patients.csv"
    write_patients_csv(csv, args.patients, seed=2026, as_of=datetime.now(UTC).date())
    redis_server = RedisServer().start()
    pg = PostgresServer().start()
    twilio = TwilioServer(SID, TOKEN).start()
    results: dict[str, Any] = {
        "patients": args.patients,
        "rate": args.rate,
        # the limiter's spacing (MERIDIAN_RATE_JITTER_MS, the workers' default)
        "rate_jitter_ms": Settings.model_fields["rate_jitter_ms"].default,
        "machine": machine(),  # with the commit, so a table can be traced to its code
        "nodes": {},
    }
    try:
        url = pg.create_database("bench_nodes")
        opts = Options(
            args.patients, ["postgresql"], 500, args.concurrency, 0, 0, 0.5, 0, None,
            False, 0, False, False,
        )  # fmt: skip
        env = meridian_env(url, redis_server.url, opts)
        os.environ.update(env)
        from tasks.app import dispatcher

        svc = Services(Settings(_env_file=None), dispatcher())  # type: ignore[call-arg]
        svc.db.upgrade()
        import_patients(csv, svc.patients, region="US", actor="bench")
        services = [("redis", redis_pid(redis_server.url)), ("postgresql", postgres_pid(pg))]
        # SMS-only, as many texts as --rate-seconds at --rate (one per number and run).
        sms_env = {
            **env,
            "MERIDIAN_SMS_TRANSPORT": "twilio",
            "TWILIO_ACCOUNT_SID": SID,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "MERIDIAN_TWILIO_FROM": "+13125550199",
            "MERIDIAN_TWILIO_API_URL": twilio.url,
            "MERIDIAN_SMS_RATE": str(args.rate),
            "MERIDIAN_SMS_BURST": "1",
        }
        for n in counts:
            figures: dict[str, Any] = {}
            for phase, phase_env, channels in (
                ("throughput", env, "[sms, email]"),
                ("rate_limit", sms_env, "[sms]"),
            ):
                name = f"nodes-{n}-{phase.replace('_', '-')}"
                path = WORKDIR / f"{name}.yaml"
                path.write_text(
                    campaign_yaml(name, 0).replace(
                        "channels: [sms, email]", f"channels: {channels}"
                    )
                )
                apply_campaign(svc, path, actor="bench", approve=True)
                redis.Redis.from_url(redis_server.url).delete("send", "runs")
                beat = Beat(phase_env, WORKDIR / f"beat-{n}-{phase}.log")
                nodes = start_nodes(n, args.concurrency, phase_env, phase)
                wait_for(lambda: bool(svc.redis.keys("meridian:redbeat:pump")), 30, "beat")
                before = len(twilio.accepted())
                try:
                    stop = args.rate_seconds if phase == "rate_limit" else None
                    figures[phase] = measured_run(svc, name, nodes, beat, services, stop)
                finally:
                    for node in nodes:
                        node.stop()
                    beat.stop()
                if phase == "rate_limit":
                    arrivals = [
                        datetime.fromisoformat(m["date_created"])
                        for m in twilio.accepted()[before:]
                    ]
                    figures[phase]["limiter"] = limiter_figures(arrivals, args.rate)
                print(f"{n} node(s), {phase}: {json.dumps(figures[phase])}", file=sys.stderr)
            results["nodes"][str(n)] = figures
        svc.close()
    finally:
        twilio.stop()
        pg.stop()
        redis_server.stop()
        csv.unlink(missing_ok=True)
    print_tables(results)
    print(json.dumps(results))


def print_tables(results: dict[str, Any]) -> None:
    print(
        "| nodes | msgs/s | CPU s / 1,000 msgs | worker | PostgreSQL | Redis | beat | "
        f"SMS at {results['rate']:.0f}/s: max in 1 s | mean | mean / limit |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, figures in results["nodes"].items():
        t = figures["throughput"]
        roles = t["cpu_s_per_1000_msgs_by_role"]
        lim = figures["rate_limit"].get("limiter", {})
        print(
            f"| {n} | {t['msgs_per_s']:,.0f} | {t['cpu_s_per_1000_msgs']:.3f} | "
            f"{roles.get('worker', 0):.3f} | {roles.get('postgresql', 0):.3f} | "
            f"{roles.get('redis', 0):.3f} | {roles.get('beat', 0):.3f} | "
            f"{lim.get('max_in_any_1s', '-')} | {lim.get('mean_per_s', '-')} | "
            f"{lim.get('mean_of_limit', '-')} |"
        )


if __name__ == "__main__":
    main()
