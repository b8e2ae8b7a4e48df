"""a leaner delivery row: partial indexes on the open states

The deliveries table kept six indexes on every row, the skipped ones included,
and (state, next_attempt_at) let the planner pick it for the claim whenever its
statistics were stale (right after a fan-out). Now a row is indexed by its key, its
recipient (the unique key) and its patient; the open states (pending, sending,
unknown) and the pending due times are in partial indexes that hold only those
rows; the provider's id only once there is one.

Revision ID: 0008
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
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


def upgrade() -> None:
    op.drop_index("ix_deliveries_run_state", table_name="deliveries")
    op.drop_index("ix_deliveries_state_next", table_name="deliveries")
    op.drop_index("ix_deliveries_provider", table_name="deliveries")
    _partial("ix_deliveries_open", ["state", "run_id"], _OPEN)
    _partial("ix_deliveries_pending_due", ["next_attempt_at", "id"], _PENDING)
    _partial("ix_deliveries_provider", ["provider_id"], _PROVIDER)


def downgrade() -> None:
    op.drop_index("ix_deliveries_provider", table_name="deliveries")
    op.drop_index("ix_deliveries_pending_due", table_name="deliveries")
    op.drop_index("ix_deliveries_open", table_name="deliveries")
    op.create_index("ix_deliveries_provider", "deliveries", ["provider_id"])
    op.create_index("ix_deliveries_state_next", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_run_state", "deliveries", ["run_id", "state"])
