"""A/B copy: variants of a campaign's copy, its split, and each delivery's variant

``template_versions.variant`` names the variant a version is the copy of (NULL: the
main copy, A); ``campaigns.variant_split`` is the split staff set; a run pins its
variants' versions in ``campaign_runs.variants``; ``deliveries.variant`` records which
one each patient was sent.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("template_versions") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=8), nullable=True))
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("variant_split", sa.JSON(), nullable=True))
    with op.batch_alter_table("campaign_runs") as batch:
        batch.add_column(sa.Column("variants", sa.JSON(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("variant")
    with op.batch_alter_table("campaign_runs") as batch:
        batch.drop_column("variants")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("variant_split")
    with op.batch_alter_table("template_versions") as batch:
        batch.drop_column("variant")
