"""``POST /webhooks/mailgun``: Mailgun's bounce and complaint events, signed.

No login: the proof is Mailgun's HMAC signature under MERIDIAN_MAILGUN_WEBHOOK_KEY
(campaigns.transports.mailgun_webhooks). A missing key, a bad or stale signature
gets 403, is logged without the payload, and is kept as a refused report. The
blueprint is public (campaigns.web.auth) and exempt from CSRF (its own proof).
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from campaigns.people import bounces
from campaigns.services import Services
from campaigns.transports import mailgun_webhooks
from campaigns.web.context import services

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/mailgun")
def mailgun() -> ResponseReturnValue:
    svc = services()
    payload = request.get_json(silent=True)
    key = svc.settings.mailgun_webhook_key
    if key is None or not key.get_secret_value():
        log.error("refused %s: MERIDIAN_MAILGUN_WEBHOOK_KEY is not set", request.path)
        return _refused(svc)
    if not mailgun_webhooks.signature_ok(key.get_secret_value(), payload, time.time()):
        log.warning("refused %s: missing, wrong or stale Mailgun signature", request.path)
        return _refused(svc)
    assert isinstance(payload, dict)  # signature_ok read it as one
    event = mailgun_webhooks.read_event(payload)
    if event.kind == "other":
        return Response(status=204)
    delivery_id = (
        svc.delivery_queries.find_by_provider_id(event.message_id) if event.message_id else None
    )
    decision = bounces.decide(
        svc,
        delivery_id=delivery_id,
        channel="email",
        kind=event.kind,
        status=event.status,
        source="mailgun",
        report_id=event.event_id,
    )
    return jsonify({"kind": decision.kind, "decision": decision.decision})


def _refused(svc: Services) -> ResponseReturnValue:
    svc.delivery_reports.add(
        delivery_id=None,
        channel="email",
        kind="bad-signature",
        status=None,
        source="mailgun",
        report_id=f"refused-{uuid.uuid4()}",
        address_key=None,
        decision="refused",
        at=svc.now(),
    )
    return Response("signature refused\n", status=403, mimetype="text/plain")
