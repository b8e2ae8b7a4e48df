"""The large chaos run: 20,000 texts while workers are killed and Redis restarts.

Usage: python bench/chaos.py [--recipients 20000] [--rate 400] [--kills 4]
                             [--fault-rate 0.1] [--lose-redis-data]
                             [--databases sqlite,postgresql]

For each database it starts a private redis-server (and PostgreSQL), the local
Twilio-compatible server injecting 429s, 500s and replies lost after the message
was accepted, and two ``celery -A tasks worker -B`` processes; it sends one SMS
campaign to every recipient, kills a worker with SIGKILL ``--kills`` times (each
replaced by a new one) and kills and restarts redis-server once, then waits for
the run to finish by itself. From the server's own record of accepted messages it
counts duplicates and recipients never sent. Prints a table, then one JSON line.
Asserts nothing; tests/integration/test_chaos.py is the small version CI runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.support.chaos import ChaosPlan, ChaosResult, run_chaos  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402


def _run(
    plan: ChaosPlan, database: str, redis: RedisServer, workdir: Path, console: Console
) -> ChaosResult:
    if database == "postgresql":
        with PostgresServer() as pg:
            url = pg.create_database("chaos")
            return run_chaos(
                plan, database_url=url, redis_server=redis, workdir=workdir, say=console.print
            )
    url = f"sqlite:///{workdir / 'meridian.db'}"
    return run_chaos(plan, database_url=url, redis_server=redis, workdir=workdir, say=console.print)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=400.0, help="SMS per second, all workers")
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--lose-redis-data", action="store_true")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    results: list[ChaosResult] = []
    # One redis-server for every database: the Celery app of this process reads
    # its broker URL once. Each run starts by emptying it.
    with RedisServer() as redis:
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            plan = ChaosPlan(
                recipients=args.recipients,
                rate=args.rate,
                fault_rate=args.fault_rate,
                kills=args.kills,
                redis_restarts=1,
                lose_redis_data=args.lose_redis_data,
                timeout_s=args.timeout,
            )
            console.print(f"[bold]{database}[/]: {plan}")
            with tempfile.TemporaryDirectory(prefix="meridian-chaos-") as tmp:
                result = _run(plan, database, redis, Path(tmp), console)
            console.print(json.dumps(result.to_dict()))
            results.append(result)
    table = Table(title="chaos runs")
    for column in (
        "database", "recipients", "kills", "Redis restarts", "duplicates",
        "never sent", "seconds", "run", "faults served", "ledger", "recovery",
    ):  # fmt: skip
        table.add_column(column)
    for r in results:
        table.add_row(
            r.database,
            str(r.recipients),
            str(r.kills),
            str(r.redis_restarts),
            str(r.duplicates),
            str(r.never_sent),
            f"{r.seconds:.1f}",
            r.run_status,
            ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())),
            ", ".join(f"{k} {v}" for k, v in sorted(r.ledger.items())),
            ", ".join(f"{k} {v}" for k, v in r.recovery.items() if v),
        )
    Console(width=200).print(table)
    print(json.dumps({"chaos": [r.to_dict() for r in results]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
