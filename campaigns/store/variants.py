"""Named SQL for A/B copy: a campaign's split, and a run's figures per variant.

The split is ``campaigns.variant_split`` (letter -> percent); setting it is audited
(``ab.split``, ``ab.promote``, ``ab.stop``). Each variant's text is a version of the
copy in ``template_versions`` (campaigns.store.copies, ``variant``); each delivery
records the variant its patient was given (``deliveries.variant``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select, update

from campaigns.domain.ports import Clock, utc_now
from campaigns.domain.states import DeliveryState
from campaigns.store.audit import audit
from campaigns.store.db import Database
from campaigns.store.tables import campaigns, deliveries

_HANDED_OVER = (DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED)


class VariantRepository:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def split(self, campaign_id: int) -> dict[str, int] | None:
        """The campaign's split (letter -> percent), or None when it has no A/B test."""
        with self.db.connect() as conn:
            found = conn.execute(
                select(campaigns.c.variant_split).where(campaigns.c.id == campaign_id)
            ).scalar()
        return None if not found else {str(k): int(v) for k, v in dict(found).items()}

    def set_split(
        self,
        campaign_id: int,
        split: dict[str, int] | None,
        *,
        actor: str,
        action: str = "ab.split",
        **detail: object,
    ) -> None:
        """Set (None: remove) the campaign's split, audited as ``action``."""
        now = self.clock()
        with self.db.begin() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(variant_split=split, updated_at=now)
            )
            audit(conn, now, actor, action, "campaign", campaign_id, split=split, **detail)

    def run_figures(self, run_id: int) -> dict[str, dict[str, int]]:
        """Per variant (NULL reads "A"): ``patients`` (distinct), and of its messages
        ``sent`` (handed to a provider), ``texts_sent`` (the SMS among them: only texts
        get a delivery receipt), delivered, undelivered, failed, skipped."""
        letter = func.coalesce(deliveries.c.variant, "A")
        state = deliveries.c.state

        def count(*states: str) -> Any:
            return func.sum(case((state.in_(list(states)), 1), else_=0))

        query = (
            select(
                letter.label("variant"),
                func.count(func.distinct(deliveries.c.patient_id)).label("patients"),
                count(*_HANDED_OVER).label("sent"),
                func.sum(
                    case(
                        (and_(state.in_(list(_HANDED_OVER)), deliveries.c.channel == "sms"), 1),
                        else_=0,
                    )
                ).label("texts_sent"),
                count(DeliveryState.DELIVERED).label("delivered"),
                count(DeliveryState.UNDELIVERED).label("undelivered"),
                count(DeliveryState.FAILED).label("failed"),
                count(DeliveryState.SKIPPED).label("skipped"),
            )
            .where(deliveries.c.run_id == run_id)
            .group_by(letter)
            .order_by(letter)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {str(r["variant"]): {k: int(r[k] or 0) for k in r if k != "variant"} for r in rows}

    def of_run(self, run_id: int) -> dict[int, str]:
        """patient id -> variant for a run's deliveries (tests, exports)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.patient_id, deliveries.c.variant).where(
                    deliveries.c.run_id == run_id
                )
            ).all()
        return {int(p): str(v or "A") for p, v in rows}
