"""The send path's CPU per message by stage, in one process: no Celery, no pool.

``make bench`` measures the whole system; this measures what one process spends on
each stage of Meridian's own work, so a change to one stage shows in its figure and
not in the machine's noise. On a fresh ledger (SQLite or PostgreSQL, the bench's
synthetic patients and campaign, the ``accept`` transport, the clock at 18:00 UTC)
it times with the process's CPU clock:

- **fan-out**: ``campaigns.sending.fanout.fan_out`` of the whole run, per delivery
  written (pending and skipped);
- **sending**: ``campaigns.sending.delivery.send_batch`` on every pending delivery
  in batches of ``--batch-size``, per message: claim, checks, render, send, record;
- **render**: ``build_message`` alone for the same messages (the bench's render
  ceiling), so *sending minus render* is what the send path costs beyond the
  message itself.

The database server's own CPU is not in these figures (``make bench`` counts it).
Prints a table and a JSON line; asserts nothing.

Run::

    python bench/stages.py --patients 20000 --database postgresql
    python bench/stages.py --patients 20000 --database sqlite --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.throughput import (  # noqa: E402
    CAMPAIGN,
    build_all,
    campaign_yaml,
    meridian_env,
    message_claims,
    parse_args,
)
from campaigns.content.catalogue import apply_campaign  # noqa: E402
from campaigns.domain.models import Batch  # noqa: E402
from campaigns.domain.states import DeliveryState  # noqa: E402
from campaigns.people.patients import import_patients  # noqa: E402
from campaigns.people.synthetic import write_patients_csv  # noqa: E402
from campaigns.sending import control  # noqa: E402
from campaigns.sending.delivery import send_batch  # noqa: E402
from campaigns.sending.fanout import fan_out  # noqa: E402
from campaigns.services import Services  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from campaigns.store.tables import deliveries  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402

WORKDIR = ROOT / "var" / "bench"


def one_run(
    database: str,
    patients: int,
    batch_size: int,
    redis_server: RedisServer,
    pg: PostgresServer | None,
) -> dict[str, Any]:
    csv = WORKDIR / "stages-patients.csv"
    write_patients_csv(csv, patients, seed=2026, as_of=datetime.now(UTC).date())
    redis.Redis.from_url(redis_server.url).flushall()
    try:
        if database == "postgresql":
            assert pg is not None
            url = pg.create_database(f"stages_{time.strftime('%H%M%S')}_{os.getpid()}")
        else:
            path = WORKDIR / "stages.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            url = f"sqlite:///{path}"
        opts = parse_args(["--patients", str(patients), "--batch-size", str(batch_size)])
        os.environ.update(meridian_env(url, redis_server.url, opts))
        from tasks.app import dispatcher

        svc = Services(Settings(_env_file=None), dispatcher())  # type: ignore[call-arg]
        try:
            svc.db.upgrade()
            import_patients(csv, svc.patients, region="US", actor="bench")
            yaml_path = WORKDIR / "stages-campaign.yaml"
            yaml_path.write_text(campaign_yaml(CAMPAIGN, 7))
            apply_campaign(svc, yaml_path, actor="bench", approve=True)
            # The run is recorded and its fan-out task queued on a broker no worker
            # reads: this process does the work itself.
            run_id = control.run_now(svc, CAMPAIGN, actor="bench")
            assert run_id is not None
            c0 = time.process_time()
            fan_out(svc, run_id)
            fan_cpu = time.process_time() - c0
            with svc.db.connect() as conn:
                written = conn.execute(
                    select(deliveries.c.id, deliveries.c.state).where(deliveries.c.run_id == run_id)
                ).all()
            pending = sorted(i for i, s in written if s == DeliveryState.PENDING)
            c0 = time.process_time()
            for i in range(0, len(pending), batch_size):
                send_batch(svc, Batch(run_id, pending[i : i + batch_size]))
            send_cpu = time.process_time() - c0
            render_cpu, sent = render_only(svc, run_id)
        finally:
            svc.close()
    finally:
        csv.unlink(missing_ok=True)
    return {
        "deliveries": len(written),
        "messages_sent": sent,
        "fan_out_us_per_delivery": fan_cpu / len(written) * 1e6,
        "sending_us_per_msg": send_cpu / sent * 1e6,
        "render_us_per_msg": render_cpu / sent * 1e6,
        "beyond_render_us_per_msg": (send_cpu - render_cpu) / sent * 1e6,
        "fan_out_us_per_msg": fan_cpu / sent * 1e6,
        "total_us_per_msg": (fan_cpu + send_cpu) / sent * 1e6,
    }


def render_only(svc: Services, run_id: int) -> tuple[float, int]:
    """CPU seconds of build_message for the run's sent messages, and how many."""
    with svc.db.connect() as conn:
        sent = conn.execute(
            select(deliveries.c.id, deliveries.c.patient_id, deliveries.c.channel)
            .where(deliveries.c.run_id == run_id, deliveries.c.state == DeliveryState.SENT)
            .order_by(deliveries.c.id)
        ).all()
    claims = message_claims(svc, run_id, [(d, p, str(ch)) for d, p, ch in sent])
    return build_all(svc, claims, clock=time.process_time), len(claims)


FIGURES = (
    ("fan-out, per delivery", "fan_out_us_per_delivery"),
    ("fan-out, per message sent", "fan_out_us_per_msg"),
    ("sending, per message", "sending_us_per_msg"),
    ("&emsp;render (build_message alone)", "render_us_per_msg"),
    ("&emsp;beyond the render", "beyond_render_us_per_msg"),
    ("**fan-out + sending, per message**", "total_us_per_msg"),
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the table shows each")
    args = parser.parse_args(argv)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    # One Redis for every run: the workers' Celery app reads its broker once.
    redis_server = RedisServer().start()
    pg = PostgresServer().start() if args.database == "postgresql" else None
    try:
        runs = [
            one_run(args.database, args.patients, args.batch_size, redis_server, pg)
            for _ in range(args.repeat)
        ]
    finally:
        redis_server.stop()
        if pg is not None:
            pg.stop()
    first = runs[0]
    print(
        f"{args.database}, {args.patients:,} patients: {first['deliveries']:,} deliveries, "
        f"{first['messages_sent']:,} messages; CPU µs of this one process"
    )
    print("| stage | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |")
    print("|---|" + "---:|" * (len(runs) + 1))
    for label, key in FIGURES:
        values = [r[key] for r in runs]
        cells = " | ".join(f"{v:.0f}" for v in values)
        print(f"| {label} | {cells} | {median(values):.0f} |")
    summary = {k: round(median(r[k] for r in runs), 1) for _, k in FIGURES}
    print(json.dumps({"database": args.database, "patients": args.patients, **summary}))


if __name__ == "__main__":
    main()
