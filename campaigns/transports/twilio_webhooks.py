"""Twilio's side of its webhooks: the request signature, and TwiML replies.

The web layer may not import ``twilio`` (import-linter: only transports talk to
vendor SDKs), so it reaches the SDK's validator and TwiML builder through here.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_MIMETYPE = "text/xml"


def validate_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Whether ``signature`` is Twilio's HMAC of ``url`` and the form ``params``.

    ``url`` must be the address Twilio was told to call (our public URL and the
    path), not the one the request arrived at behind a proxy. ``params`` may be a
    multi-dict (Flask's ``request.form``); every value of a repeated field counts.
    """
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def twiml_reply(text: str | None) -> str:
    """A messaging TwiML document: one ``<Message>`` with ``text``, or none."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response.to_xml())
