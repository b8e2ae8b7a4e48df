"""a cancelled or archived campaign frees its name

The campaign name was unique across every row ever saved, so a cancelled campaign
kept its name for good. It is now unique only among campaigns that are not
cancelled or archived (a partial unique index, on SQLite and PostgreSQL alike): a
new campaign may take a freed name, and the old row keeps its id, so its runs'
history stays with it and is told apart by the campaign id.

Downgrading fails while two rows share a name (rename or delete one first).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_HOLDS_NAME = sa.text("status NOT IN ('archived', 'cancelled')")


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_constraint("uq_campaigns_name", type_="unique")
    op.create_index(
        "uq_campaigns_live_name",
        "campaigns",
        ["name"],
        unique=True,
        sqlite_where=_HOLDS_NAME,
        postgresql_where=_HOLDS_NAME,
    )


def downgrade() -> None:
    op.drop_index("uq_campaigns_live_name", table_name="campaigns")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.create_unique_constraint("uq_campaigns_name", ["name"])
