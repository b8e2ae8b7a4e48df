"""VERP: each email's envelope sender names its delivery, signed, with no address.

``bounces+<token>@<domain>``: a bounce comes back to the Return-Path, so the
address it is sent to says which delivery bounced, even when the bounce quotes
nothing of the message. The token is the delivery id (base 36) signed by
itsdangerous under MERIDIAN_SECRET_KEY with its own salt; HMAC-SHA1, whose
27-character signature keeps the local part within RFC 5321's 64 octets. (A
signature truncated or forged reads as None; a mail system that folds the local
part's case breaks the signature too, and the reader falls back to the original
message's Message-ID.)
"""

from __future__ import annotations

import hashlib
import hmac
from email.utils import parseaddr

from itsdangerous import BadSignature, Signer

_SALT = "meridian.verp"
_TAG = "bounces"


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT, sep=".", digest_method=hashlib.sha1)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def bounce_base(bounce_address: str | None, email_from: str) -> tuple[str, str]:
    """(local part, domain) of the bounce mailbox: MERIDIAN_BOUNCE_ADDRESS, or
    "bounces" at the domain of MERIDIAN_EMAIL_FROM."""
    if bounce_address:
        local, _, domain = parseaddr(bounce_address)[1].rpartition("@")
        return local or _TAG, domain
    domain = parseaddr(email_from)[1].rpartition("@")[2]
    return _TAG, domain or "localhost"


def return_path(secret: str, delivery_id: int, local: str, domain: str) -> str:
    """The envelope sender for one delivery: ``local+<signed id>@domain``."""
    token = _signer(secret).sign(_base36(delivery_id)).decode()
    return f"{local}+{token}@{domain}"


def read_return_path(secret: str, address: str) -> int | None:
    """The delivery a VERP address names, or None when it is not one we signed."""
    local = parseaddr(address)[1].rpartition("@")[0]
    _, plus, token = local.partition("+")
    if not plus or not token:
        return None
    try:
        value = _signer(secret).unsign(token).decode()
    except BadSignature:
        return None
    try:
        return int(value, 36)
    except ValueError:
        return None


def address_key(secret: str, address: str) -> str:
    """An HMAC of a normalised address: counts bounces per address with none in clear."""
    normal = address.strip().lower()
    mac = hmac.new(secret.encode(), b"meridian.address:" + normal.encode(), hashlib.sha256)
    return mac.hexdigest()
