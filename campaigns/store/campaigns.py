"""Named SQL for campaign definitions: saved by name, with their lint findings and status.

A status change is one conditional UPDATE from the states the state machine
(campaigns.domain.states.CAMPAIGN_TRANSITIONS) allows, so a cancel racing a resume
never leaves a cancelled campaign scheduled.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import insert, select, update

from campaigns.domain.ports import Clock, utc_now
from campaigns.domain.states import CampaignState, campaign_sources
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import campaigns


class CampaignRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def save(
        self, name: str, definition: dict[str, Any], findings: list[dict[str, Any]], *, actor: str
    ) -> int:
        now = self.clock()
        with self.db.begin() as conn:
            found = conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).first()
            if found is None:
                cid = int(
                    conn.execute(
                        insert(campaigns)
                        .values(
                            name=name,
                            definition=definition,
                            status=CampaignState.DRAFT,
                            findings=findings,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(campaigns.c.id)
                    ).scalar_one()
                )
                audit(conn, now, actor, "campaign.create", "campaign", cid)
            else:
                cid = int(found[0])
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == cid)
                    .values(definition=definition, findings=findings, updated_at=now)
                )
                audit(conn, now, actor, "campaign.update", "campaign", cid)
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

    def set_status(
        self,
        campaign_id: int,
        status: CampaignState,
        *,
        actor: str,
        only_from: Collection[CampaignState] | None = None,
    ) -> bool:
        """Move the campaign to ``status`` if it is in ``only_from`` (default: any state
        the state machine allows it from). False when it was not."""
        sources = campaign_sources(status, only_from)
        now = self.clock()
        with self.db.begin() as conn:
            changed = (
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(sources))
                    .values(status=status, updated_at=now)
                ).rowcount
                > 0
            )
            if changed:
                audit(conn, now, actor, f"campaign.{status}", "campaign", campaign_id)
            return changed
