"""The API's side of campaign review: where approval stands, submit, approve, send
back (campaigns.content.review's rules; a bearer token names who does it)."""

from __future__ import annotations

from flask import abort
from flask.typing import ResponseReturnValue

from campaigns.content import catalogue, review
from campaigns.content.approval import ReviewStatus, review_status
from campaigns.people.staff import Staff
from campaigns.web import auth
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views import schemas as s
from campaigns.web.views.api import _asked, _body, _reply, bp


def _staff() -> Staff:
    staff = auth.current_staff()
    if staff is None:
        abort(401)
    return staff


def _answer(name: str, status: ReviewStatus) -> ResponseReturnValue:
    return _reply(s.ReviewReply.model_validate({"name": name, **status.to_dict()}))


@bp.get("/campaigns/<name>/review")
@require_role("viewer")
def campaign_review_status(name: str) -> ResponseReturnValue:
    row, definition = catalogue.load_campaign(services(), name)
    return _answer(row["name"], review_status(services(), int(row["id"]), definition))


@bp.post("/campaigns/<name>/submit")
@require_role("marketer")
def campaign_submit(name: str) -> ResponseReturnValue:
    return _answer(name, review.submit(services(), name, staff=_staff()))


@bp.post("/campaigns/<name>/approve")
@require_role("approver")
def campaign_approve(name: str) -> ResponseReturnValue:
    asked = _asked(s.ReviewRequest, _body())
    return _answer(name, review.approve(services(), name, staff=_staff(), seen=asked.fingerprint))


@bp.post("/campaigns/<name>/send-back")
@require_role("approver")
def campaign_send_back(name: str) -> ResponseReturnValue:
    asked = _asked(s.ReviewRequest, _body())
    return _answer(name, review.send_back(services(), name, staff=_staff(), comment=asked.comment))
