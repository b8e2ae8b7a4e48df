"""What the console's results cost on a big run: the campaign list and a run page of
100,000 deliveries, on SQLite and PostgreSQL, with each query's plan.

A ledger is written straight into the tables (no send): ``--patients`` patients, one
run of 20 campaigns each over a sample of them, and one big run with an SMS and an
email delivery per patient — sent over six hours, some delivered, some failed,
some skipped, and the rest pending (due over the next hours, some held, some
retrying). Then it times, best of ``--repeat``:

- ``campaign list``: campaigns.sending.results.campaign_overview (two queries for
  every campaign's last run, whatever their number);
- ``run status``: campaigns.sending.runs.run_status (what the progress polls);
- ``timeline``: campaigns.sending.results.timeline (the due times, also polled);
- ``run results``: failures and the chart (campaigns.sending.results.run_results).

and prints EXPLAIN (SQLite's QUERY PLAN; PostgreSQL's ANALYZE) of the SQL behind
them. Nothing is asserted; no patient data is printed.

Run::

    .venv/bin/python bench/results.py                  # 50,000 patients: 100,000 deliveries
    .venv/bin/python bench/results.py --patients 5000 --databases sqlite
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402

from campaigns.sending import results, runs  # noqa: E402
from campaigns.services import Services  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from campaigns.store import results as store_results  # noqa: E402
from campaigns.store.tables import campaign_runs, campaigns, deliveries, patients  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402

START = datetime(2027, 10, 15, 14, 0, tzinfo=UTC)
CLINIC = {
    "clinic_name": "Bench Clinic",
    "clinic_address": "1 Main St\nBoston, MA 02110",
    "clinic_phone": "(617) 555-0100",
    "clinic_timezone": "America/New_York",
}


def build_ledger(svc: Services, n_patients: int, seed: int = 7) -> int:
    """The ledger described above; the big run's id."""
    rng = random.Random(seed)
    now = START + timedelta(hours=6)
    with svc.db.begin() as conn:
        conn.execute(
            insert(patients),
            [
                {
                    "external_id": f"B{i:07d}",
                    "tags": ";active;",
                    "timezone": "America/New_York",
                    "state": "MA",
                    "created_at": START,
                    "updated_at": START,
                }
                for i in range(n_patients)
            ],
        )
        for c in range(21):
            conn.execute(
                insert(campaigns).values(
                    name=f"bench-{c}",
                    definition={},
                    status="draft",
                    findings=[],
                    created_at=START,
                    updated_at=START,
                )
            )
        conn.execute(
            insert(campaign_runs),
            [
                {
                    "campaign_id": c + 1,
                    "occurrence": "2027-10-15",
                    "trigger": "schedule",
                    "status": "finished" if c else "running",
                    "planned": 0,
                    "started_at": START,
                }
                for c in range(21)
            ],
        )
    big = 1
    rows: list[dict[str, Any]] = []
    for pid in range(1, n_patients + 1):
        for channel in ("sms", "email"):
            rows.append(_delivery(rng, big, pid, channel, now))
    for run_id in range(2, 22):
        for pid in rng.sample(range(1, n_patients + 1), min(500, n_patients)):
            rows.append(_delivery(rng, run_id, pid, "sms", now))
    with svc.db.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(deliveries), rows[start : start + 5000])
    svc.deliveries.analyze()
    return big


def _delivery(
    rng: random.Random, run_id: int, pid: int, channel: str, now: datetime
) -> dict[str, Any]:
    roll = rng.random()
    due = START + timedelta(minutes=rng.choice((0, 60, 120, 180)))
    row: dict[str, Any] = {
        "run_id": run_id,
        "patient_id": pid,
        "channel": channel,
        "state": "sent",
        "skip_reason": None,
        "due_at": due,
        "next_attempt_at": due,
        "attempts": 1,
        "sent_at": None,
        "error_code": None,
        "error_reason": None,
        "updated_at": now,
    }
    if roll < 0.10:
        row.update(state="skipped", skip_reason=rng.choice(("no_consent", "opted_out")), attempts=0)
    elif roll < 0.12:
        row.update(state="failed", error_code="21211", error_reason="invalid number")
    elif roll < 0.25:
        later = now + timedelta(minutes=rng.choice((30, 90, 150, 210)))
        row.update(state="pending", due_at=later, next_attempt_at=later, attempts=0)
        if roll < 0.14:
            row.update(next_attempt_at=later + timedelta(hours=1))  # held at send time
        elif roll < 0.15:
            row.update(error_code="20429", error_reason="too many requests", attempts=2)
    else:
        sent = START + timedelta(seconds=rng.uniform(0, 6 * 3600))
        delivered = channel == "sms" and roll < 0.8
        row.update(state="delivered" if delivered else "sent", sent_at=sent)
    return row


def best_of(repeat: int, call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return best


def explain(svc: Services, run_id: int) -> None:
    """The plans of the results' SQL, as the database chose them."""
    repo = store_results.ResultsRepository(svc.db)
    statements = _statements(repo, run_id)
    dialect = sqlite.dialect() if svc.db.backend == "sqlite" else postgresql.dialect()
    prefix = "EXPLAIN QUERY PLAN " if svc.db.backend == "sqlite" else "EXPLAIN ANALYZE "
    with svc.db.connect() as conn:
        for name, stmt in statements:
            sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            plan = conn.execute(text(prefix + sql)).all()
            print(f"\n-- {name}")
            for line in plan:
                print("   ", " | ".join(str(v) for v in line[-1:]))


def _statements(repo: store_results.ResultsRepository, run_id: int) -> list[tuple[str, Any]]:
    captured: list[tuple[str, Any]] = []
    real = repo.db.connect

    class Spy:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def execute(self, stmt: Any) -> Any:
            captured.append((self.name, stmt))
            with real() as conn:
                return conn.execute(stmt)

    for name, call in (
        ("last_runs", repo.last_runs),
        ("pending_by_due", lambda: repo.pending_by_due(run_id, 60)),
        ("sent_span", lambda: repo.sent_span(run_id)),
        ("sent_over_time", lambda: repo.sent_over_time(run_id, 900)),
        ("failures", lambda: repo.failures(run_id)),
    ):
        repo.db.connect = lambda name=name: Spy(name)  # type: ignore[method-assign,misc]
        try:
            call()
        finally:
            repo.db.connect = real  # type: ignore[method-assign]
    return captured


def bench(database_url: str, n_patients: int, repeat: int, show_plans: bool) -> None:
    settings = Settings(_env_file=None, database_url=database_url, **CLINIC)  # type: ignore[call-arg]
    svc = Services(settings)
    svc.db.upgrade()
    t = time.perf_counter()
    run_id = build_ledger(svc, n_patients)
    built = time.perf_counter() - t
    total = sum(runs.run_status(svc, run_id)["by_state"].values())
    print(f"\n{svc.db.backend}: run {run_id} of {total} deliveries (ledger built in {built:.1f} s)")
    for name, call in (
        ("campaign list (21 campaigns)", lambda: results.campaign_overview(svc)),
        ("run status", lambda: runs.run_status(svc, run_id)),
        ("timeline", lambda: results.timeline(svc, run_id)),
        ("run results (failures, chart)", lambda: results.run_results(svc, run_id)),
    ):
        print(f"  {name:32s} {1000 * best_of(repeat, call):8.1f} ms")
    drawn = results.run_results(svc, run_id)["chart"]
    print(f"  chart: {len(drawn['bars'])} bars of a {drawn['bucket']}, {drawn['total']} sent")
    if show_plans:
        explain(svc, run_id)
    svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-plans", action="store_true")
    opts = parser.parse_args()
    chosen = [d.strip() for d in opts.databases.split(",") if d.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in chosen:
            bench(f"sqlite:///{tmp}/results.db", opts.patients, opts.repeat, not opts.no_plans)
        if "postgresql" in chosen:
            pg = PostgresServer().start()
            try:
                bench(pg.url, opts.patients, opts.repeat, not opts.no_plans)
            finally:
                pg.stop()


if __name__ == "__main__":
    main()
