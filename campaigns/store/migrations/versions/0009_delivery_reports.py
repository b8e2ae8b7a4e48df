"""delivery reports: bounces, complaints and SMS error codes with their decisions

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaigns.store.schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_reports",
        sa.Column("id", _ID, primary_key=True),
        sa.Column(
            "delivery_id",
            _ID,
            sa.ForeignKey("deliveries.id", name="fk_delivery_reports_delivery_id_deliveries"),
            nullable=True,
        ),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("address_key", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=24), nullable=False),
        sa.Column("at", campaigns.store.schema.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_reports"),
        sa.UniqueConstraint("source", "report_id", name="uq_delivery_reports_source_report"),
    )
    op.create_index("ix_delivery_reports_address", "delivery_reports", ["address_key", "kind"])
    op.create_index("ix_delivery_reports_delivery", "delivery_reports", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_reports_delivery", table_name="delivery_reports")
    op.drop_index("ix_delivery_reports_address", table_name="delivery_reports")
    op.drop_table("delivery_reports")
