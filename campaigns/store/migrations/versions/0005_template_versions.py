"""template versions in the ledger

Staff write a campaign's copy in the console (or inline in its YAML): every save is
an immutable, numbered version. A run records the version it sends, fixed when it
starts, so a save while it sends changes nothing already under way.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column(
            "campaign_id",
            _ID,
            sa.ForeignKey("campaigns.id", name="fk_template_versions_campaign_id_campaigns"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sms", sa.Text()),
        sa.Column("email_subject", sa.Text()),
        sa.Column("email_body", sa.Text()),
        sa.Column("email_format", sa.String(length=8), nullable=False),
        sa.Column("email_text", sa.Text()),
        sa.Column("restored_from", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_template_versions"),
        sa.UniqueConstraint("campaign_id", "number", name="uq_template_versions_number"),
    )
    with op.batch_alter_table("campaign_runs") as batch:
        batch.add_column(sa.Column("template_version_id", _ID))
        batch.create_foreign_key(
            "fk_campaign_runs_template_version_id_template_versions",
            "template_versions",
            ["template_version_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch:
        batch.drop_constraint(
            "fk_campaign_runs_template_version_id_template_versions", type_="foreignkey"
        )
        batch.drop_column("template_version_id")
    op.drop_table("template_versions")
