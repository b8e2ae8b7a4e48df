"""a leaner delivery row: partial indexes on the open states

The deliveries table kept six indexes on every row, the skipped ones included,
and (state, next_attempt_at) let the planner pick it for the claim whenever its
statistics were stale (right after a fan-out). Now a row is indexed by its key, its
recipient (the unique key) and its patient; the open states (pending, sending,
unknown) and the pending due times are in partial indexes that hold only those
rows; the provider's id only once there is one.

On PostgreSQL the two foreign keys of a delivery (its run, its patient) cost a
trigger call and a key-share lock per row of every COPY: about 40 % of a fan-out's
write time. They are checked once per chunk instead (campaigns/store/delivery_rows.py
locks the run's row and every patient of the chunk in one statement each, and
refuses a chunk that names a missing one), and a patient or run that deliveries
refer to cannot be deleted (a BEFORE DELETE trigger raises foreign_key_violation,
as the constraint did). SQLite keeps its constraints: there they cost little.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = "state IN ('pending', 'sending', 'unknown')"
_PENDING = "state = 'pending'"
_PROVIDER = "provider_id IS NOT NULL"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        "deliveries",
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


_KEEP_PARENT = """
CREATE FUNCTION deliveries_keep_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deliveries WHERE {column} = OLD.id) THEN
        RAISE EXCEPTION 'deliveries refer to this row of {table}'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER deliveries_keep_{table} BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION deliveries_keep_{table}();
"""
_PARENTS = (("patients", "patient_id"), ("campaign_runs", "run_id"))


def _foreign_keys_per_chunk() -> None:
    for table, column in _PARENTS:
        op.drop_constraint(f"fk_deliveries_{column}_{table}", "deliveries", type_="foreignkey")
        op.execute(_KEEP_PARENT.format(table=table, column=column))


def _foreign_keys_per_row() -> None:
    for table, column in _PARENTS:
        op.execute(f"DROP TRIGGER deliveries_keep_{table} ON {table}")
        op.execute(f"DROP FUNCTION deliveries_keep_{table}()")
        op.create_foreign_key(
            f"fk_deliveries_{column}_{table}", "deliveries", table, [column], ["id"]
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _foreign_keys_per_chunk()
    op.drop_index("ix_deliveries_run_state", table_name="deliveries")
    op.drop_index("ix_deliveries_state_next", table_name="deliveries")
    op.drop_index("ix_deliveries_provider", table_name="deliveries")
    _partial("ix_deliveries_open", ["state", "run_id"], _OPEN)
    _partial("ix_deliveries_pending_due", ["next_attempt_at", "id"], _PENDING)
    _partial("ix_deliveries_provider", ["provider_id"], _PROVIDER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _foreign_keys_per_row()
    op.drop_index("ix_deliveries_provider", table_name="deliveries")
    op.drop_index("ix_deliveries_pending_due", table_name="deliveries")
    op.drop_index("ix_deliveries_open", table_name="deliveries")
    op.create_index("ix_deliveries_provider", "deliveries", ["provider_id"])
    op.create_index("ix_deliveries_state_next", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_run_state", "deliveries", ["run_id", "state"])
