"""Named SQL for campaign review: submitted, approved, sent back, one row each.

Append-only: the latest row of a campaign says where its review stands. Each row is
audited in the same transaction (who, which campaign; the comment stays in the row).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select

from campaigns.content.approval import ACKNOWLEDGE_ACTION
from campaigns.domain.ports import Clock, utc_now
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import audit_events, campaign_reviews

_AUDIT_ACTION = {"submitted": "submit", "approved": "approve", "sent_back": "send_back"}


class ReviewRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def add(
        self,
        campaign_id: int,
        action: str,
        fingerprint: str,
        *,
        actor: str,
        comment: str | None = None,
        via: str | None = None,
    ) -> int:
        """Record one review step and audit it; its id."""
        now = self.clock()
        detail: dict[str, object] = {"fingerprint": fingerprint[:12]}
        if via:
            detail["via"] = via
        with self.db.begin() as conn:
            review_id = int(
                conn.execute(
                    insert(campaign_reviews)
                    .values(
                        campaign_id=campaign_id,
                        action=action,
                        fingerprint=fingerprint,
                        actor=actor,
                        comment=comment,
                        at=now,
                    )
                    .returning(campaign_reviews.c.id)
                ).scalar_one()
            )
            audit(
                conn,
                now,
                actor,
                f"campaign.review.{_AUDIT_ACTION[action]}",
                "campaign",
                campaign_id,
                **detail,
            )
        return review_id

    def history(self, campaign_id: int) -> list[dict[str, Any]]:
        """Every review step of the campaign, newest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(campaign_reviews)
                .where(campaign_reviews.c.campaign_id == campaign_id)
                .order_by(campaign_reviews.c.id.desc())
            ).mappings()
            return [dict(r) for r in rows]

    def latest(self, campaign_id: int) -> dict[str, Any] | None:
        """The newest review step, or None when the campaign was never submitted."""
        with self.db.connect() as conn:
            row = (
                conn.execute(
                    select(campaign_reviews)
                    .where(campaign_reviews.c.campaign_id == campaign_id)
                    .order_by(campaign_reviews.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def edits_since_submission(self, campaign_id: int, actor: str) -> int:
        """How many times ``actor`` changed the campaign (a definition or copy save)
        since it was last submitted, acknowledgements of findings not counted."""
        campaign = (audit_events.c.subject_type == "campaign") & (
            audit_events.c.subject_id == str(campaign_id)
        )
        submitted = (
            select(func.max(audit_events.c.id))
            .where(campaign, audit_events.c.action == "campaign.review.submit")
            .scalar_subquery()
        )
        with self.db.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(audit_events.c.action, func.count())
                    .where(
                        campaign,
                        audit_events.c.actor == actor,
                        audit_events.c.id > func.coalesce(submitted, 0),
                        audit_events.c.action.in_(["campaign.update", ACKNOWLEDGE_ACTION]),
                    )
                    .group_by(audit_events.c.action)
                ).all()
            )
        return int(counts.get("campaign.update", 0)) - int(counts.get(ACKNOWLEDGE_ACTION, 0))
