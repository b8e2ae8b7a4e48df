"""first-party clicks and bookings

``links`` keeps each distinct URL a message carried, once; ``clicks`` one row per
delivery and link; ``bookings`` a patient's next appointment changing to a future
date, attributed to a delivery's run when one was sent within the booking window.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaigns.store.schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, campaigns.store.schema.UtcDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_links"),
        sa.UniqueConstraint("url_hash", name="uq_links_url_hash"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", _ID, primary_key=True),
        sa.Column(
            "delivery_id",
            _ID,
            sa.ForeignKey("deliveries.id", name="fk_clicks_delivery_id_deliveries"),
            nullable=False,
        ),
        sa.Column(
            "link_id",
            _ID,
            sa.ForeignKey("links.id", name="fk_clicks_link_id_links"),
            nullable=False,
        ),
        _ts("at"),
        sa.PrimaryKeyConstraint("id", name="pk_clicks"),
        sa.UniqueConstraint("delivery_id", "link_id", name="uq_clicks_delivery_link"),
    )
    op.create_table(
        "bookings",
        sa.Column("id", _ID, primary_key=True),
        sa.Column(
            "patient_id",
            _ID,
            sa.ForeignKey("patients.id", name="fk_bookings_patient_id_patients"),
            nullable=True,
        ),
        sa.Column("appointment", sa.Date(), nullable=False),
        _ts("booked_at"),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "delivery_id",
            _ID,
            sa.ForeignKey("deliveries.id", name="fk_bookings_delivery_id_deliveries"),
            nullable=True,
        ),
        sa.Column(
            "run_id",
            _ID,
            sa.ForeignKey("campaign_runs.id", name="fk_bookings_run_id_campaign_runs"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
    )
    op.create_index("ix_bookings_run", "bookings", ["run_id"])
    op.create_index("ix_bookings_delivery", "bookings", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_bookings_delivery", table_name="bookings")
    op.drop_index("ix_bookings_run", table_name="bookings")
    op.drop_table("bookings")
    op.drop_table("clicks")
    op.drop_table("links")
