"""Approval of exact content: the fingerprint of what was approved, where a campaign's
review stands, and the refusal to schedule or run what is not approved as it is now.

The fingerprint is the SHA-256 of the canonical JSON of the definition together with
the text of every template part as the renderer will use it
(``svc.renderer.source``), and, with an A/B test, the split and every variant's text
(campaigns.content.variants), so an edit to the definition or to any part's text makes
an earlier approval stop counting: the campaign is "changed since approval", goes
back to draft, and nothing schedules or runs it until it is approved again.
The review steps themselves (submit, approve, send back) are campaigns.content.review.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaigns.content import variants
from campaigns.content.copy import templates_key
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.rendering import PARTS
from campaigns.domain.states import CampaignState
from campaigns.errors import InputError

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

SUBMITTED, APPROVED, SENT_BACK = "submitted", "approved", "sent_back"
# An admin's acknowledgement of a finding saves the definition (a campaign.update) and
# is audited as this too: a review act, not an edit of what is sent.
ACKNOWLEDGE_ACTION = "campaign.acknowledge"


def fingerprint(svc: Services, definition: CampaignDefinition) -> str:
    """SHA-256 (hex) of the definition's canonical JSON, every part's template text
    (the newest copy in the ledger, else the folder's) and the text of every template
    a part extends or includes (the shipped layouts)."""
    templates = templates_key(svc, definition)
    parts = {
        f"{channel}/{part}": _source(svc, templates, part)
        for channel in definition.channels
        for part in PARTS[channel]
    }
    # What the parts extend or include (the shipped layouts: footer, unsubscribe link).
    layouts: dict[str, str] = {}
    for channel in definition.channels:
        for part in PARTS[channel]:
            layouts.update(svc.renderer.referenced_sources(templates, part))
    content: dict[str, Any] = {
        "definition": definition.to_json(),
        "templates": parts,
        "layouts": layouts,
    }
    ab = variants.fingerprint_part(svc, definition)
    if ab is not None:  # only with an A/B test, so earlier approvals keep counting
        content["variants"] = ab
    canonical = json.dumps(
        content,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _source(svc: Services, templates: str, part: str) -> str:
    """A part's text; "" for a file removed from the folder (a change like any other:
    the lint says what is missing, and nothing schedules or runs it meanwhile)."""
    try:
        return svc.renderer.source(templates, part)
    except InputError:
        return ""


@dataclass(frozen=True)
class ReviewStatus:
    """Where a campaign's review stands, judged against its content now."""

    # draft (never submitted), submitted, approved, sent_back, changed (approved, then
    # changed: the approval no longer counts)
    state: str
    fingerprint: str  # of the content now
    latest: dict[str, Any] | None  # the newest review row

    @property
    def approved(self) -> bool:
        return self.state == APPROVED

    @property
    def sentence(self) -> str:
        last = self.latest
        if last is None:
            return "not submitted for approval yet"
        who, when = last["actor"], f"{last['at']:%Y-%m-%d %H:%M} UTC"
        return {
            SUBMITTED: f"submitted for approval by {who} on {when}",
            APPROVED: f"approved by {who} on {when}",
            SENT_BACK: f"sent back by {who} on {when}",
            "changed": f"changed since approval (approved by {who} on {when}); submit it again",
        }[self.state]

    def to_dict(self) -> dict[str, Any]:
        last = self.latest
        return {
            "state": self.state,
            "approved": self.approved,
            "fingerprint": self.fingerprint,
            "by": last["actor"] if last else None,
            "at": last["at"].isoformat() if last else None,
            "comment": last["comment"] if last else None,
            "says": self.sentence,
        }


def review_status(svc: Services, campaign_id: int, definition: CampaignDefinition) -> ReviewStatus:
    now_fp = fingerprint(svc, definition)
    latest = svc.reviews.latest(campaign_id)
    if latest is None:
        state = "draft"
    elif latest["action"] == APPROVED and latest["fingerprint"] != now_fp:
        state = "changed"
    else:
        state = str(latest["action"])
    return ReviewStatus(state, now_fp, latest)


def refuse_unapproved(
    svc: Services, row: dict[str, Any], definition: CampaignDefinition, what: str
) -> None:
    """InputError unless the campaign's content now is the content an approver approved."""
    status = review_status(svc, int(row["id"]), definition)
    if not status.approved:
        raise InputError(
            f"campaign {row['name']}: not approved ({status.sentence}); it cannot be {what} "
            "until a staff member with the approver role approves this version"
        )


def record_operator_approval(
    svc: Services, campaign_id: int, definition: CampaignDefinition, *, actor: str, via: str
) -> str:
    """An operator applying a reviewed file (``campaigns apply --approve``, the demo):
    submitted and approved at once, audited with ``via``. The caller has linted it."""
    fp = fingerprint(svc, definition)
    svc.reviews.add(campaign_id, SUBMITTED, fp, actor=actor, via=via)
    svc.reviews.add(campaign_id, APPROVED, fp, actor=actor, via=via)
    log.info("campaign %s approved by operator %s (%s)", campaign_id, actor, via)
    return fp


def lapse_if_changed(
    svc: Services, row: dict[str, Any], definition: CampaignDefinition, *, actor: str
) -> bool:
    """After a change: when the campaign was approved and its content is no longer what
    was approved, it returns to draft (its schedule removed). True if it did."""
    status = review_status(svc, int(row["id"]), definition)
    if status.state != "changed":
        return False
    campaign_id = int(row["id"])
    if row["status"] in (CampaignState.SCHEDULED, CampaignState.PAUSED):
        svc.campaigns.set_status(
            campaign_id,
            CampaignState.DRAFT,
            actor=actor,
            only_from=[CampaignState.SCHEDULED, CampaignState.PAUSED],
        )
        if svc.has_dispatcher:
            svc.dispatcher.remove_schedule(campaign_id)
        log.info("campaign %s changed since approval: back to draft", campaign_id)
    return True
