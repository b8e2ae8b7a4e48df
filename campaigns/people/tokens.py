"""Signed, unguessable tokens for unsubscribe links.

A token names the patient and the delivery it was sent in and is signed with
HMAC-SHA256 under MERIDIAN_SECRET_KEY. It never expires: an unsubscribe link must
keep working long after the message (CAN-SPAM asks for 30 days; we promise years).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

_SIG_BYTES = 16


@dataclass(frozen=True)
class UnsubscribeClaim:
    patient_id: int
    delivery_id: int | None
    channel: str = "email"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), b"unsubscribe:" + payload.encode(), hashlib.sha256)
    return _b64(mac.digest()[:_SIG_BYTES])


def make_unsubscribe_token(secret: str, claim: UnsubscribeClaim) -> str:
    body = json.dumps([claim.patient_id, claim.delivery_id, claim.channel], separators=(",", ":"))
    payload = _b64(body.encode())
    return f"{payload}.{_sign(secret, payload)}"


def read_unsubscribe_token(secret: str, token: str) -> UnsubscribeClaim | None:
    """The claim in a token, or None when it was tampered with or is malformed."""
    payload, _, sig = token.partition(".")
    if not payload or not sig or not hmac.compare_digest(sig, _sign(secret, payload)):
        return None
    try:
        patient_id, delivery_id, channel = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    if not isinstance(patient_id, int) or channel not in ("email", "sms"):
        return None
    return UnsubscribeClaim(patient_id, delivery_id, channel)
