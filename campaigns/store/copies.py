"""Named SQL for campaign copy: immutable template versions, numbered per campaign.

A version is never updated: a save or a restore inserts the next number, in one
transaction with its audit event. Two staff saving at once cannot take the same
number (the unique key on campaign and number); the loser is told to try again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from campaigns.domain.ports import Clock, utc_now
from campaigns.errors import InputError
from campaigns.store.audit import audit
from campaigns.store.campaigns import id_by_name
from campaigns.store.db import Database
from campaigns.store.tables import campaigns, template_versions

# The text columns of a version: what a save writes and a restore copies.
TEXT_COLUMNS = ("sms", "email_subject", "email_body", "email_format", "email_text")
# The main copy (variant A); an A/B variant's versions name their variant.
_MAIN = template_versions.c.variant.is_(None)


class CopyRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def add(
        self,
        campaign_id: int,
        texts: dict[str, str | None],
        *,
        author: str,
        restored_from: int | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Insert the campaign's next version; audited as ``copy.save`` or ``copy.restore``."""
        now = self.clock()
        values = {c: texts.get(c) for c in TEXT_COLUMNS}
        try:
            with self.db.begin() as conn:
                last = conn.execute(
                    select(func.max(template_versions.c.number)).where(
                        template_versions.c.campaign_id == campaign_id
                    )
                ).scalar()
                number = int(last or 0) + 1
                version_id = int(
                    conn.execute(
                        insert(template_versions)
                        .values(
                            campaign_id=campaign_id,
                            number=number,
                            author=author,
                            created_at=now,
                            restored_from=restored_from,
                            variant=variant,
                            **values,
                        )
                        .returning(template_versions.c.id)
                    ).scalar_one()
                )
                action = "copy.save" if restored_from is None else "copy.restore"
                detail: dict[str, object] = {"version": number, "version_id": version_id}
                if restored_from is not None:
                    detail["restored_from"] = restored_from
                if variant is not None:
                    detail["variant"] = variant
                audit(conn, now, author, action, "campaign", campaign_id, **detail)
        except IntegrityError as exc:
            raise InputError(
                "copy: someone else saved a version of this campaign at the same moment; "
                "reload the page to see it, then save again"
            ) from exc
        found = self.get(version_id)
        assert found is not None
        return found

    def get(self, version_id: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(template_versions, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == template_versions.c.campaign_id)
                    .where(template_versions.c.id == version_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def current(self, campaign: str) -> dict[str, Any] | None:
        """The campaign's newest version; None when its copy was never saved here.
        ``campaign`` names the one that holds the name (store.campaigns.id_by_name):
        a cancelled campaign's copy is not a new one's of the same name."""
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(template_versions, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == template_versions.c.campaign_id)
                    .where(template_versions.c.campaign_id == id_by_name(campaign), _MAIN)
                    .order_by(template_versions.c.number.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def current_id(self, campaign_id: int) -> int | None:
        """The id of the campaign's newest version, or None."""
        with self.db.connect() as conn:
            found = conn.execute(
                select(template_versions.c.id)
                .where(template_versions.c.campaign_id == campaign_id, _MAIN)
                .order_by(template_versions.c.number.desc())
                .limit(1)
            ).scalar()
        return None if found is None else int(found)

    def of_campaign(self, campaign: str) -> list[dict[str, Any]]:
        """Every version of the campaign, newest first."""
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(template_versions, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == template_versions.c.campaign_id)
                    .where(template_versions.c.campaign_id == id_by_name(campaign), _MAIN)
                    .order_by(template_versions.c.number.desc())
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def by_number(self, campaign: str, number: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(template_versions, campaigns.c.name.label("campaign"))
                    .join(campaigns, campaigns.c.id == template_versions.c.campaign_id)
                    .where(
                        template_versions.c.campaign_id == id_by_name(campaign),
                        template_versions.c.number == number,
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def current_variants(self, campaign_id: int) -> dict[str, dict[str, Any]]:
        """The newest version of each A/B variant other than A, by letter."""
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    select(template_versions)
                    .where(
                        template_versions.c.campaign_id == campaign_id,
                        template_versions.c.variant.is_not(None),
                    )
                    .order_by(template_versions.c.number)
                )
                .mappings()
                .all()
            )
        return {str(r["variant"]): dict(r) for r in rows}  # the newest wins
