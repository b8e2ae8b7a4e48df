"""The routes patients and Twilio reach without a login; each checks its own proof.

- ``POST /twilio/inbound`` and ``POST /twilio/status``: X-Twilio-Signature over
  MERIDIAN_PUBLIC_URL + the path (the address Twilio was given, not the one a
  proxy forwards to). A missing or wrong signature gets 403 and changes nothing.
- ``GET|POST /unsubscribe/<token>``: a signed token. GET only shows a page (mail
  scanners fetch links); POST unsubscribes, and RFC 8058's one-click POST (body
  ``List-Unsubscribe=One-Click``, no cookies) gets a 200 without a redirect.
- ``GET /l/<token>``: a first-party short link (campaigns.content.links). A genuine
  token records the delivery's click once and 302s to the URL the ledger keeps for
  it; anything else gets a plain 404 page and no redirect (never an open redirect).

The blueprint is named "public": the login check (campaigns.web.auth) lets it
through by that name, and the app factory exempts it from CSRF protection. The
work is done in ``campaigns.people.inbound``, ``status_callbacks`` and
``unsubscribe_links``; nothing here logs a phone number, an
address or a message body.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect, render_template, request
from flask.typing import ResponseReturnValue

from campaigns.content.links import read_link_token
from campaigns.people import inbound, status_callbacks, unsubscribe_links
from campaigns.people.tokens import UnsubscribeClaim
from campaigns.services import Services
from campaigns.transports.twilio_webhooks import (
    SIGNATURE_HEADER,
    TWIML_MIMETYPE,
    twiml_reply,
    validate_signature,
)
from campaigns.web.context import services

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

_HEADERS = {
    # The token is in the URL: keep it out of caches and Referer headers.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Robots-Tag": "noindex",
}


@bp.after_request
def _harden(response: Response) -> Response:
    response.headers.update(_HEADERS)
    if response.mimetype == "text/html":
        response.headers.update(_PAGE_HEADERS)
    return response


# Twilio ----------------------------------------------------------------------


@bp.post("/twilio/inbound")
def twilio_inbound() -> ResponseReturnValue:
    svc = services()
    if not _signed_by_twilio(svc):
        return _refused()
    sid = request.form.get("MessageSid", "")
    if not sid:
        log.warning("refused %s: signed, but MessageSid is missing", request.path)
        return _plain("MessageSid is a required form field", 400)
    # Whatever else is odd (no From, a sender that is not E.164, an unknown To, an
    # empty or very long body) the text is stored and shown to staff.
    message = inbound.InboundSms(
        sid=sid,
        from_phone=request.form.get("From", ""),
        body=request.form.get("Body", ""),
        to_phone=request.form.get("To", ""),
    )
    outcome = inbound.handle_inbound(svc, message)
    return Response(twiml_reply(outcome.reply), mimetype=TWIML_MIMETYPE)


@bp.post("/twilio/status")
def twilio_status() -> ResponseReturnValue:
    svc = services()
    if not _signed_by_twilio(svc):
        return _refused()
    sid, status = request.form.get("MessageSid", ""), request.form.get("MessageStatus", "")
    if not sid or not status:
        log.warning("refused %s: signed, but MessageSid or MessageStatus is missing", request.path)
        return _plain("MessageSid and MessageStatus are required form fields", 400)
    status_callbacks.handle_status(svc, sid, status, request.form.get("ErrorCode"))
    return Response(status=204)


def _signed_by_twilio(svc: Services) -> bool:
    token = svc.settings.twilio_auth_token
    if token is None or not token.get_secret_value():
        log.error(
            "refused %s: TWILIO_AUTH_TOKEN is not set, so no signature can be checked", request.path
        )
        return False
    url = svc.settings.public_url + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    signature = request.headers.get(SIGNATURE_HEADER)
    if validate_signature(token.get_secret_value(), url, request.form, signature):
        return True
    log.warning(
        "refused %s: X-Twilio-Signature %s for %s",
        request.path,
        "missing" if not signature else "does not match",
        url,
    )
    return False


def _refused() -> Response:
    return _plain("X-Twilio-Signature is missing or does not match this request", 403)


def _plain(text: str, status: int) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


# Unsubscribe links ---------------------------------------------------------------


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    svc = services()
    claim = unsubscribe_links.read_unsubscribe(svc, token)
    if claim is None:
        return _invalid_link(svc)
    return render_template(
        "public/unsubscribe.html",
        clinic=svc.clinic,
        channel=_channel_noun(claim),
        already=unsubscribe_links.is_unsubscribed(svc, claim),
        token=token,
    )


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> ResponseReturnValue:
    svc = services()
    claim = unsubscribe_links.read_unsubscribe(svc, token)
    if claim is None:
        return _invalid_link(svc)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    unsubscribe_links.unsubscribe(svc, claim, one_click=one_click)
    # 200 with the page, never a redirect: RFC 8058 forbids one for one-click.
    return render_template(
        "public/unsubscribed.html", clinic=svc.clinic, channel=_channel_noun(claim)
    )


# Short links ---------------------------------------------------------------------


@bp.get("/l/<token>")
def short_link(token: str) -> ResponseReturnValue:
    svc = services()
    claim = read_link_token(svc.settings.secret_key.get_secret_value(), token)
    url = None if claim is None else svc.engagement.url_of(claim.link_id)
    if claim is None or url is None or not svc.engagement.delivery_exists(claim.delivery_id):
        log.info("refused a short link: token not genuine or names no link")
        return render_template("public/link_not_found.html", clinic=svc.clinic), 404
    first = svc.engagement.record_click(claim.delivery_id, claim.link_id, svc.now())
    again = "" if first else " again"
    log.info("delivery %s: link %s clicked%s", claim.delivery_id, claim.link_id, again)
    return redirect(url, code=302)


def _invalid_link(svc: Services) -> ResponseReturnValue:
    log.info(
        "refused %s %s: unsubscribe token is not genuine or names no patient",
        request.method,
        request.url_rule,
    )
    return render_template("public/invalid_link.html", clinic=svc.clinic), 404


def _channel_noun(claim: UnsubscribeClaim) -> str:
    return "texts" if unsubscribe_links.claim_channel(claim) == "sms" else "emails"
