"""The plans of the deliveries table's hot queries on PostgreSQL, with no statistics.

Usage: python bench/explain.py [--patients 100000] [--analyze]

Builds a throwaway ledger (the tests' PostgreSQL cluster, migrated to head) with
``--patients`` patients and two deliveries each, as a fan-out writes them by COPY
(70 % pending, the rest skipped), a few thousand sent, claimed and unknown, and
never runs ANALYZE (autovacuum is off for the table): the state right after a
fan-out, when a plan that leans on statistics goes wrong. Then prints
``EXPLAIN (ANALYZE, BUFFERS)`` of each query the claim, the sweeper and the console
send, as SQLAlchemy compiles them from the repositories' own statements where they
are built inline. ``--analyze`` runs ANALYZE first, to compare. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, text  # noqa: E402

from campaigns.store.bulk import insert_rows  # noqa: E402
from campaigns.store.db import Database  # noqa: E402
from campaigns.store.tables import campaign_runs, campaigns, deliveries, patients  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)

QUERIES: dict[str, str] = {
    # DeliveryRepository.claim: one slice of a batch (ids from the due set). (A fan-out
    # chunk's pending ids need no query on PostgreSQL: they are drawn before the COPY.)
    "claim (DeliveryRepository.claim)": """
        UPDATE deliveries SET state = 'sending', claimed_at = :now, attempts = attempts + 1,
            updated_at = :now
        WHERE id = ANY(ARRAY[{ids}]::bigint[]) AND state IS NOT DISTINCT FROM 'pending'
          AND next_attempt_at <= :now
          AND (SELECT status FROM campaign_runs WHERE campaign_runs.id = deliveries.run_id)
              IN ('fanning_out', 'running')
        RETURNING id, run_id, patient_id, channel, attempts, due_at""",
    # DeliveryRepository.record: a slice's outcomes, one statement of arrays.
    "record outcomes (DeliveryRepository.record, 250 ids)": """
        UPDATE deliveries AS d
        SET state = o.state, provider_id = o.provider_id, error_code = NULL,
            error_reason = NULL, skip_reason = NULL, sent_at = :now, updated_at = :now
        FROM unnest(ARRAY[{sending}]::bigint[], ARRAY[{states}]::text[],
                    ARRAY[{providers}]::text[]) AS o(id, state, provider_id)
        WHERE d.id = o.id AND d.state = 'sending'""",
    "due set refill, every run (DeliveryRepository.stream_due_pending, sweeper)": """
        SELECT id, next_attempt_at, run_id FROM deliveries
        WHERE state = 'pending' AND (next_attempt_at, id) > (:epoch, 0)
          AND run_id IN (SELECT id FROM campaign_runs
                         WHERE status IN ('fanning_out', 'running'))
          AND next_attempt_at <= :now
        ORDER BY next_attempt_at, id LIMIT 5000""",
    "due set refill, one run (queue_pending after a fan-out)": """
        SELECT id, next_attempt_at, run_id FROM deliveries
        WHERE state = 'pending' AND (next_attempt_at, id) > (:epoch, 0) AND run_id = 1
        ORDER BY next_attempt_at, id LIMIT 5000""",
    # The claim as it was: the run filter as a join and ``state = 'pending'``.
    "claim, planned on statistics (before 0008; for comparison)": """
        UPDATE deliveries SET state = 'sending', claimed_at = :now, attempts = attempts + 1,
            updated_at = :now
        WHERE id IN ({ids}) AND state = 'pending' AND next_attempt_at <= :now
          AND run_id IN (SELECT id FROM campaign_runs
                         WHERE status IN ('fanning_out', 'running'))
        RETURNING id, run_id, patient_id, channel, attempts, due_at""",
    "run done? (RunRepository.finish_if_done)": """
        SELECT id FROM deliveries
        WHERE run_id = 1 AND state IN ('pending', 'sending', 'unknown') LIMIT 1""",
    "stale claims (DeliveryRepository.stale_claims, sweeper)": """
        SELECT id, run_id, patient_id, channel, attempts, due_at FROM deliveries
        WHERE state = 'sending' AND claimed_at < :stale ORDER BY id LIMIT 1000""",
    "unknown to reconcile (DeliveryRepository.unknown, sweeper)": """
        SELECT * FROM deliveries WHERE state = 'unknown' ORDER BY id LIMIT 500""",
    "due work (DeliveryQueries.due_work, run page and readiness)": """
        SELECT count(*) FROM deliveries
        WHERE run_id = 1 AND ((state = 'pending' AND next_attempt_at <= :now)
                              OR state = 'sending')""",
    "caps by patient (DeliveryQueries.sent_since)": """
        SELECT t.patient_id, d.run_id, d.channel, d.sent_at
        FROM unnest(ARRAY[{patients}]::bigint[]) AS t(patient_id)
        CROSS JOIN LATERAL (
            SELECT run_id, channel, sent_at FROM deliveries
            WHERE deliveries.patient_id = t.patient_id AND deliveries.sent_at >= :since
            OFFSET 0
        ) AS d
        WHERE d.run_id <> 2""",
    "caps by number (DeliveryQueries.sent_to_contacts)": """
        SELECT p.contact, d.patient_id, d.run_id, d.channel, d.sent_at
        FROM unnest(ARRAY[{phones}]::text[]) AS t(contact)
        CROSS JOIN LATERAL (
            SELECT id, phone AS contact FROM patients WHERE phone = t.contact OFFSET 0
        ) AS p
        CROSS JOIN LATERAL (
            SELECT patient_id, run_id, channel, sent_at FROM deliveries
            WHERE deliveries.patient_id = p.id AND deliveries.sent_at >= :since
              AND deliveries.channel = 'sms'
            OFFSET 0
        ) AS d""",
    "caps by number, as an IN list (before; for comparison)": """
        SELECT p.phone, d.patient_id, d.run_id, d.channel, d.sent_at
        FROM deliveries d JOIN patients p ON p.id = d.patient_id
        WHERE p.phone IN ({phones}) AND d.channel = 'sms' AND d.sent_at >= :since""",
    "a chunk's rows already written (delivery_rows.write_chunk)": """
        SELECT patient_id, channel FROM deliveries
        WHERE run_id = 1 AND patient_id BETWEEN 40000 AND 41000""",
    "status callback (DeliveryQueries.find_by_provider_id)": """
        SELECT id FROM deliveries WHERE provider_id = 'SM00000000000000000000000000000042'""",
    "patient page (InboundRepository, messages to a patient)": """
        SELECT id, run_id, channel, state, sent_at FROM deliveries WHERE patient_id = 4242""",
    "run page counts (DeliveryQueries.counts)": """
        SELECT channel, state, skip_reason, count(*) FROM deliveries WHERE run_id = 1
        GROUP BY channel, state, skip_reason""",
}


def build(conn: Connection, n: int) -> None:
    insert_rows(
        conn,
        patients,
        [
            {"external_id": f"X{i:07d}", "phone": f"+1617555{i % 10_000:04d}", "tags": ";"}
            for i in range(1, n + 1)
        ],
        same={"created_at": NOW, "updated_at": NOW},
    )
    conn.execute(
        campaigns.insert().values(
            id=1, name="explain", status="scheduled", definition={}, findings=[],
            created_at=NOW, updated_at=NOW,
        )
    )  # fmt: skip
    conn.execute(
        campaign_runs.insert().values(
            id=1, campaign_id=1, occurrence="x", trigger="manual", status="fanning_out",
            planned=0, started_at=NOW,
        )
    )  # fmt: skip
    conn.exec_driver_sql("ALTER TABLE deliveries SET (autovacuum_enabled = false)")
    rows: list[dict[str, Any]] = []
    for pid in range(1, n + 1):
        for channel in ("sms", "email"):
            open_ = (pid * 7 + len(channel)) % 10 < 7
            rows.append(
                {
                    "patient_id": pid,
                    "channel": channel,
                    "state": "pending" if open_ else "skipped",
                    "skip_reason": None if open_ else "no_consent",
                    "due_at": NOW,
                    "next_attempt_at": NOW,
                }
            )
    insert_rows(conn, deliveries, rows, same={"run_id": 1, "attempts": 0, "updated_at": NOW})
    # A few thousand further on: sent (with provider ids), claimed, unknown.
    conn.exec_driver_sql(
        "UPDATE deliveries SET state = 'sent', sent_at = now(), "
        "provider_id = 'SM' || lpad(id::text, 32, '0') WHERE mod(id, 50) = 0 AND state = 'pending'"
    )
    conn.exec_driver_sql(
        "UPDATE deliveries SET state = 'sending', claimed_at = now() "
        "WHERE mod(id, 97) = 0 AND state = 'pending'"
    )
    conn.exec_driver_sql("UPDATE deliveries SET state = 'unknown' WHERE mod(id, 997) = 0")


def explain(conn: Connection, title: str, sql: str, n: int) -> None:
    ids = ", ".join(str(i) for i in range(n // 2, n // 2 + 2 * 250, 2))
    pids = ", ".join(str(i) for i in range(n // 3, n // 3 + 500))
    phones = ", ".join(f"'+1617555{i:04d}'" for i in range(100, 600))
    claimed = range(97 * (n // 200), 97 * (n // 200 + 250), 97)  # build() claimed these
    sending = ", ".join(str(i) for i in claimed)
    states = ", ".join("'sent'" for _ in claimed)
    providers = ", ".join(f"'SM{i:032d}'" for i in claimed)
    statement = text(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON) "
        + sql.format(
            ids=ids,
            patients=pids,
            phones=phones,
            sending=sending,
            states=states,
            providers=providers,
        )
    )
    params = {
        "now": NOW,
        "epoch": datetime(1970, 1, 1, tzinfo=UTC),
        "stale": NOW - timedelta(minutes=2),
        "since": NOW - timedelta(days=7),
    }
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    plan = [r[0] for r in conn.execute(statement, used)]
    print(f"\n-- {title}")
    for line in plan:
        print(f"   {line if len(line) < 160 else line[:150] + ' ...'}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE deliveries first")
    args = parser.parse_args(argv)
    pg = PostgresServer().start()
    try:
        db = Database(pg.create_database("explain"))
        db.upgrade()
        with db.begin() as conn:
            build(conn, args.patients)
        with db.begin() as conn:
            if args.analyze:
                conn.exec_driver_sql("ANALYZE deliveries")
            stats = conn.exec_driver_sql(
                "SELECT reltuples, relpages, last_analyze, last_autoanalyze "
                "FROM pg_class JOIN pg_stat_user_tables USING (relname) "
                "WHERE relname = 'deliveries'"
            ).one()
            indexes = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'deliveries' ORDER BY 1"
            ).scalars()
            print(f"deliveries: {2 * args.patients} rows; planner statistics {tuple(stats)}")
            for definition in indexes:
                print(f"   {definition}")
            for title, sql in QUERIES.items():
                explain(conn, title, sql, args.patients)
            conn.rollback()
        db.engine.dispose()
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
