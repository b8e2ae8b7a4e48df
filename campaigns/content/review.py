"""Review of a campaign by a second person: a marketer submits it, a staff member with
the approver role (or an admin) approves it or sends it back with a comment, and an
admin acknowledges one lint finding with a reason.

The two-person rule (MERIDIAN_APPROVAL_TWO_PERSON, on by default): whoever submitted
the campaign may not approve it. An approval is of the exact content the approver
saw: the page carries its fingerprint, and a campaign that changed meanwhile is
refused with a sentence saying so. Approval needs a lint-clean campaign (no error,
no unacknowledged health claim).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from campaigns.content import compliance
from campaigns.content.approval import (
    ACKNOWLEDGE_ACTION,
    APPROVED,
    SENT_BACK,
    SUBMITTED,
    ReviewStatus,
    record_operator_approval,
    review_status,
)
from campaigns.content.catalogue import (
    Applied,
    lint_definition,
    load_campaign,
    refuse_open_claims,
    save_definition,
)
from campaigns.content.definitions import Acknowledgement, CampaignDefinition
from campaigns.domain.states import CampaignState
from campaigns.errors import InputError, NotFound, Problem

if TYPE_CHECKING:
    from campaigns.people.staff import Staff  # its role check only: no import at run time
    from campaigns.services import Services

MAX_COMMENT = 2000


def _open(svc: Services, key: str | int) -> tuple[int, str, CampaignDefinition, ReviewStatus]:
    row, definition = load_campaign(svc, key)
    if row["status"] == CampaignState.CANCELLED:
        raise InputError(f"campaign {row['name']}: cancelled; nothing to review")
    cid = int(row["id"])
    return cid, str(row["name"]), definition, review_status(svc, cid, definition)


def submit(svc: Services, key: str | int, *, staff: Staff) -> ReviewStatus:
    """Ask for approval of the campaign as it is now (a marketer or above)."""
    if not staff.can("marketer"):
        raise InputError("only a marketer, an approver or an admin may submit a campaign")
    cid, name, definition, status = _open(svc, key)
    if status.state in (SUBMITTED, APPROVED):
        raise InputError(f"campaign {name}: already {status.sentence}")
    svc.reviews.add(cid, SUBMITTED, status.fingerprint, actor=staff.username)
    return review_status(svc, cid, definition)


def approve(
    svc: Services, key: str | int, *, staff: Staff, seen: str | None = None
) -> ReviewStatus:
    """Approve the campaign's content now; ``seen`` is the fingerprint of the version
    the approver looked at (refused if it changed since)."""
    if not staff.can("approver"):
        raise InputError("approving needs the approver or admin role")
    cid, name, definition, status = _open(svc, key)
    if status.state != SUBMITTED:
        raise InputError(f"campaign {name}: {status.sentence}; only a submitted one is approved")
    if seen is not None and seen != status.fingerprint:
        raise InputError(
            f"campaign {name}: it changed while you were reviewing it; look at it again "
            "before approving"
        )
    latest = status.latest or {}
    if svc.settings.approval_two_person and latest.get("actor") == staff.username:
        raise InputError(
            f"campaign {name}: you submitted it, so another staff member with the approver "
            "role must approve it (the two-person rule, MERIDIAN_APPROVAL_TWO_PERSON)"
        )
    submitted = latest.get("fingerprint")
    if (
        svc.settings.approval_two_person
        and submitted != status.fingerprint
        and svc.reviews.edits_since_submission(cid, staff.username) > 0
    ):
        raise InputError(
            f"campaign {name}: you changed it since {latest.get('actor')} submitted it, so "
            "another staff member with the approver role must approve it (the two-person "
            "rule, MERIDIAN_APPROVAL_TWO_PERSON)"
        )
    row, _ = load_campaign(svc, cid)
    refuse_open_claims(svc, row, definition, "approved")
    svc.reviews.add(cid, APPROVED, status.fingerprint, actor=staff.username)
    return review_status(svc, cid, definition)


def send_back(svc: Services, key: str | int, *, staff: Staff, comment: str) -> ReviewStatus:
    """Return a submitted campaign to its author with a comment saying what to change."""
    if not staff.can("approver"):
        raise InputError("sending back needs the approver or admin role")
    comment = comment.strip()
    if not comment:
        raise InputError("say what to change", [Problem("comment", "is empty")])
    if len(comment) > MAX_COMMENT:
        raise InputError(
            "the comment is too long",
            [Problem("comment", f"{len(comment)} characters; at most {MAX_COMMENT}")],
        )
    cid, name, definition, status = _open(svc, key)
    if status.state != SUBMITTED:
        raise InputError(f"campaign {name}: {status.sentence}; only a submitted one is sent back")
    svc.reviews.add(cid, SENT_BACK, status.fingerprint, actor=staff.username, comment=comment)
    return review_status(svc, cid, definition)


def acknowledge(
    svc: Services, key: str | int, *, staff: Staff, finding_key: str, reason: str
) -> Applied:
    """An admin accepts one finding of the lint as it is now, with a reason: the same
    ``compliance.acknowledged`` entry the YAML holds, saved through the catalogue.
    ``finding_key`` is compliance.finding_key's tuple, joined as the page gives it."""
    if not staff.can("admin"):
        raise InputError("acknowledging a finding needs the admin role")
    row, definition = load_campaign(svc, key)
    if row["status"] in (CampaignState.CANCELLED, CampaignState.ARCHIVED):
        # its name is free: saving would make a new campaign of that name
        raise InputError(f"campaign {row['name']}: {row['status']}; nothing to acknowledge")
    findings = {
        finding_token(f): f for f in lint_definition(svc, definition) if f["severity"] == "claim"
    }
    finding = findings.get(finding_key)
    if finding is None:
        raise NotFound(
            f"campaign {row['name']}: that finding is not in the lint any more (the copy "
            "changed); look at the review page again"
        )
    try:
        ack = Acknowledgement(
            rule=finding["rule"],
            template=finding["template"],
            line=finding["line"],
            phrase=finding["phrase"],
            sentence=finding["sentence"],
            occurrence=int(finding.get("occurrence") or 1),
            reason=reason.strip(),
            by=staff.username,
        )
    except ValueError:
        raise InputError(
            "the acknowledgement was not saved",
            [Problem("reason", "say in at least 10 characters why this is acceptable")],
        ) from None
    kept = [a for a in definition.compliance.acknowledged if a.key() != ack.key()]
    changed = definition.model_copy(
        update={
            "compliance": definition.compliance.model_copy(update={"acknowledged": [*kept, ack]})
        }
    )
    applied = save_definition(svc, changed, actor=staff.username, source=f"campaign {row['name']}")
    svc.reports.record_campaign_event(
        staff.username, ACKNOWLEDGE_ACTION, int(row["id"]), rule=ack.rule, line=ack.line
    )
    return applied


def finding_token(finding: dict[str, object]) -> str:
    """A finding's identity as one string, for a form field."""
    key = compliance.finding_key(finding)
    return hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:16]


# The revision that brought review in: before it, scheduling a campaign approved it.
REVIEW_REVISION = "0007"


def approve_scheduled_before_review(svc: Services) -> list[str]:
    """After ``db upgrade`` past REVIEW_REVISION: each campaign that was scheduled or
    paused, and so approved under the old rules, with no review yet, is approved as
    it is now (audited via "db upgrade"), so its schedule keeps running; one that the
    lint refuses is named, to be approved in the console. A sentence for each."""
    said = []
    for row in svc.campaigns.all():
        held = row["status"] in (CampaignState.SCHEDULED, CampaignState.PAUSED)
        if not held or svc.reviews.latest(int(row["id"])) is not None:
            continue
        _, definition = load_campaign(svc, int(row["id"]))
        try:
            refuse_open_claims(svc, row, definition, "approved")
        except InputError:
            said.append(
                f"campaign {row['name']}: scheduled before approval existed, but the "
                "compliance lint refuses it now; it will not start until it is fixed and "
                "approved on its Review and approval page"
            )
            continue
        record_operator_approval(svc, int(row["id"]), definition, actor="system", via="db upgrade")
        said.append(
            f"campaign {row['name']}: scheduled before approval existed; approved as it "
            "is now, so its schedule keeps running"
        )
    return said
