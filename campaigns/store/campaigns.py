"""Named SQL for campaign definitions: saved by name, with their lint findings and status.

A name belongs to one campaign that holds it (not cancelled, not archived); a
cancelled or archived campaign keeps its row, id and runs, and a new campaign may
take its name. ``get(name)`` gives the holder, or else the newest row of that name.

A status change is one conditional UPDATE from the states the state machine
(campaigns.domain.states.CAMPAIGN_TRANSITIONS) allows, so a cancel racing a resume
never leaves a cancelled campaign scheduled.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, insert, select, update

from campaigns.domain.ports import Clock, utc_now
from campaigns.domain.states import FREED_NAME_STATES, CampaignState, campaign_sources
from campaigns.errors import InputError
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import campaigns

_HOLDS_NAME: ColumnElement[bool] = campaigns.c.status.not_in(sorted(FREED_NAME_STATES))


def id_by_name(name: str) -> ScalarSelect[Any]:
    """The id ``CampaignRepository.get(name)`` finds, as a subquery: the campaign that
    holds the name, else the newest that had it (names are reused once freed)."""
    return (
        select(campaigns.c.id)
        .where(campaigns.c.name == name)
        .order_by(_HOLDS_NAME.desc(), campaigns.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


class CampaignRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def save(
        self, name: str, definition: dict[str, Any], findings: list[dict[str, Any]], *, actor: str
    ) -> int:
        now = self.clock()
        with self.db.begin() as conn:
            found = conn.execute(
                select(campaigns.c.id).where(campaigns.c.name == name, _HOLDS_NAME)
            ).first()
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
        """By id; or by name: the campaign holding it, else the newest that had it."""
        if isinstance(key, int):
            query = select(campaigns).where(campaigns.c.id == key)
        else:
            query = (
                select(campaigns)
                .where(campaigns.c.name == key)
                .order_by(_HOLDS_NAME.desc(), campaigns.c.id.desc())
                .limit(1)
            )
        with self.db.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def name_taken(self, name: str) -> bool:
        """True when a campaign that is not cancelled or archived has this name."""
        with self.db.connect() as conn:
            found = conn.execute(
                select(campaigns.c.id).where(campaigns.c.name == name, _HOLDS_NAME)
            ).first()
        return found is not None

    def all(self, *, archived: bool | None = None) -> list[dict[str, Any]]:
        """Every campaign by name (then oldest first); with ``archived``, only the
        archived ones (True) or all but them (False)."""
        query = select(campaigns).order_by(campaigns.c.name, campaigns.c.id)
        if archived is not None:
            is_archived = campaigns.c.status == CampaignState.ARCHIVED
            query = query.where(is_archived if archived else ~is_archived)
        with self.db.connect() as conn:
            rows = conn.execute(query).mappings().all()
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
            if status not in FREED_NAME_STATES:
                self._refuse_taken_name(conn, campaign_id)
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

    @staticmethod
    def _refuse_taken_name(conn: Any, campaign_id: int) -> None:
        """A campaign taking its name back (restored) while another holds it: refused
        with a sentence rather than the unique index's error."""
        row = conn.execute(
            select(campaigns.c.name, campaigns.c.status).where(campaigns.c.id == campaign_id)
        ).first()
        if row is None or row.status not in FREED_NAME_STATES:
            return
        holder = conn.execute(
            select(campaigns.c.id).where(
                campaigns.c.name == row.name, _HOLDS_NAME, campaigns.c.id != campaign_id
            )
        ).first()
        if holder is not None:
            raise InputError(
                f"campaign {row.name!r} (id {campaign_id}) cannot come back under its name: "
                f"campaign id {holder.id} has it now. Clone it under a new name instead."
            )
