"""Signed, unguessable tokens for unsubscribe links.

A token names the patient, the delivery it was sent in and the channel, and is
signed by itsdangerous (HMAC-SHA256) under MERIDIAN_SECRET_KEY, salted so that
no other token the secret signs (sessions, API tokens) reads as one. It never
expires: an unsubscribe link must keep working long after the message (CAN-SPAM
asks for 30 days; we promise years).

Links sent before itsdangerous signed them (Meridian's own HMAC, a 22-character
signature) are still read, so emails already in inboxes keep working; see
``_read_legacy``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_encode

_SALT = "meridian.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeClaim:
    patient_id: int
    delivery_id: int | None
    channel: str = "email"


@functools.lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


@functools.lru_cache(maxsize=8)
def _signing_key(secret: str) -> bytes:
    key: bytes = _serializer(secret).make_signer().derive_key()
    return key


def make_unsubscribe_token(secret: str, claim: UnsubscribeClaim) -> str:
    """Exactly ``_serializer(secret).dumps([patient, delivery, channel])`` (tested):
    itsdangerous' own payload, signed with the key it derives, derived once per secret
    instead of a new signer and key for every email (14 µs a message; 5 this way)."""
    serializer = _serializer(secret)
    payload: bytes = serializer.dump_payload([claim.patient_id, claim.delivery_id, claim.channel])
    mac = hmac.new(_signing_key(secret), payload, hashlib.sha256).digest()
    return (payload + b"." + base64_encode(mac)).decode("ascii")


def read_unsubscribe_token(secret: str, token: str) -> UnsubscribeClaim | None:
    """The claim in a token, or None when it was tampered with or is malformed."""
    try:
        body = _serializer(secret).loads(token)
    except BadData:  # not signed by us: perhaps a link from before itsdangerous
        body = _read_legacy(secret, token)
    return _claim(body)


def _claim(body: Any) -> UnsubscribeClaim | None:
    if not isinstance(body, list) or len(body) != 3:
        return None
    patient_id, delivery_id, channel = body
    if not isinstance(patient_id, int) or channel not in ("email", "sms"):
        return None
    if delivery_id is not None and not isinstance(delivery_id, int):
        return None
    return UnsubscribeClaim(patient_id, delivery_id, channel)


# Tokens signed before itsdangerous: base64url(JSON) "." base64url(HMAC-SHA256 over
# "unsubscribe:" + payload, first 16 bytes). Same secret, same claim; only read.
_LEGACY_SIG_CHARS = 22


def _read_legacy(secret: str, token: str) -> Any:
    payload, _, sig = token.partition(".")
    if not payload or len(sig) != _LEGACY_SIG_CHARS:
        return None
    mac = hmac.new(secret.encode(), b"unsubscribe:" + payload.encode(), hashlib.sha256)
    expected = base64.urlsafe_b64encode(mac.digest()[:16]).rstrip(b"=").decode()
    if not hmac.compare_digest(sig, expected):
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
