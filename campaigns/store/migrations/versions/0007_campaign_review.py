"""campaign review and staff contact

A campaign is submitted, approved or sent back; each step is a row of
``campaign_reviews`` with the fingerprint of the content reviewed. Staff users get
their own phone and email, where a test send goes.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaigns.store.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("campaigns.id", name="fk_campaign_reviews_campaign_id_campaigns"),
            nullable=False,
        ),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", campaigns.store.schema.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_reviews"),
    )
    op.create_index("ix_campaign_reviews_campaign", "campaign_reviews", ["campaign_id", "id"])
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("email")
        batch.drop_column("phone")
    op.drop_index("ix_campaign_reviews_campaign", table_name="campaign_reviews")
    op.drop_table("campaign_reviews")
