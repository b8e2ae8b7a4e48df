"""Named SQL for campaign definitions: saved by name, with their lint findings and status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import campaigns


class CampaignRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self, name: str, definition: dict[str, Any], findings: list[dict[str, Any]], *, actor: str
    ) -> int:
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            found = conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).first()
            if found is None:
                cid = int(
                    conn.execute(
                        insert(campaigns)
                        .values(
                            name=name,
                            definition=definition,
                            status="draft",
                            findings=findings,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(campaigns.c.id)
                    ).scalar_one()
                )
                audit(conn, actor, "campaign.create", "campaign", cid)
            else:
                cid = int(found[0])
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == cid)
                    .values(definition=definition, findings=findings, updated_at=now)
                )
                audit(conn, actor, "campaign.update", "campaign", cid)
            return cid

    def get(self, key: str | int) -> dict[str, Any] | None:
        column = campaigns.c.id if isinstance(key, int) else campaigns.c.name
        with self.db.connect() as conn:
            row = conn.execute(select(campaigns).where(column == key)).mappings().first()
        return None if row is None else dict(row)

    def all(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(select(campaigns).order_by(campaigns.c.name)).mappings().all()
        return [dict(r) for r in rows]

    def set_status(self, campaign_id: int, status: str, *, actor: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(status=status, updated_at=datetime.now(UTC))
            )
            audit(conn, actor, f"campaign.{status}", "campaign", campaign_id)
