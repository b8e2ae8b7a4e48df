"""First-party short links: every link a message carries, rewritten to the clinic's own.

A link in an email (its HTML and its text part) or an SMS becomes
``MERIDIAN_PUBLIC_URL/l/<token>``. The token names a delivery and a link by number
(the URL is kept once in the ledger's ``links``), signed by itsdangerous under
MERIDIAN_SECRET_KEY with its own salt. It carries no patient data and no URL, so it
is short enough for SMS: both numbers in base 36 and an HMAC-SHA256 truncated to 96
bits, about 22 characters. Forging one would only count a click on a link the
clinic sent; the redirect goes to a stored URL, never to one the token names, so
there is no open redirect.

The unsubscribe link and any other link already on MERIDIAN_PUBLIC_URL are left as
they are. A rewritten SMS is counted at its shortened length: ``short_length``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer
from itsdangerous.signer import SigningAlgorithm

_SALT = "meridian.link"
_SIG_BYTES = 12  # 96 bits, a whole number of base64 characters (16): one spelling each
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# The longest token the segment counter allows for: a delivery id up to 36**7 (78
# billion) and a link id up to 36**3 (46,656 distinct URLs), "-" and "." between.
TOKEN_CHARS = 7 + 1 + 3 + 1 + 16

# A link in text or HTML: http(s) up to a space, a quote or an angle bracket, less
# the sentence's closing punctuation.
_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}"


class _TruncatedHmac(SigningAlgorithm):
    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).digest()[:_SIG_BYTES]


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT, sep=".", algorithm=_TruncatedHmac())


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _BASE36[r] + out
        if n == 0:
            return out


@dataclass(frozen=True)
class LinkClaim:
    delivery_id: int
    link_id: int


def make_link_token(secret: str, delivery_id: int, link_id: int) -> str:
    return _signer(secret).sign(f"{_b36(delivery_id)}-{_b36(link_id)}").decode()


def read_link_token(secret: str, token: str) -> LinkClaim | None:
    """The claim of a token we signed; None for anything else."""
    if len(token) > 64:
        return None
    try:
        value = _signer(secret).unsign(token).decode()
        delivery, _, link = value.partition("-")
        return LinkClaim(int(delivery, 36), int(link, 36))
    except (BadSignature, ValueError, UnicodeDecodeError):
        return None


def short_length(public_url: str) -> int:
    """How long a short link is at most: what the segment counter counts a link as."""
    return len(public_url.rstrip("/")) + len("/l/") + TOKEN_CHARS


def _split(match: str) -> tuple[str, str]:
    """The URL and the punctuation after it that belongs to the sentence."""
    url = match.rstrip(_TRAILING)
    return url, match[len(url) :]


def links_in(text: str, *, is_html: bool = False) -> list[str]:
    """The URLs ``text`` carries, in order, as a browser would follow them."""
    found = []
    for m in _URL.finditer(text):
        url, _ = _split(m.group(0))
        found.append(html.unescape(url) if is_html else url)
    return found


class LinkRewriter:
    """Rewrites one message's links for one delivery. ``link_id`` gives a URL's number
    in the ledger (stored once; the caller caches it)."""

    def __init__(
        self, secret: str, public_url: str, delivery_id: int, link_id: Callable[[str], int]
    ) -> None:
        self.public = public_url.rstrip("/")
        self.prefix = f"{self.public}/l/"
        self.secret = secret
        self.delivery_id = delivery_id
        self.link_id = link_id

    def rewrite(self, text: str, *, is_html: bool = False) -> str:
        def replace(m: re.Match[str]) -> str:
            url, tail = _split(m.group(0))
            target = html.unescape(url) if is_html else url
            if not url or target == self.public or target.startswith(self.public + "/"):
                return m.group(0)  # our own: the unsubscribe link, a short link
            token = make_link_token(self.secret, self.delivery_id, self.link_id(target))
            return self.prefix + token + tail

        return _URL.sub(replace, text)


def shortened_for_count(text: str, public_url: str) -> str:
    """``text`` with each link that would be rewritten replaced by a stand-in of the
    short link's length: what ``count_segments`` should count for an SMS."""
    public = public_url.rstrip("/")
    stand_in = "x" * short_length(public)

    def replace(m: re.Match[str]) -> str:
        url, tail = _split(m.group(0))
        if not url or url == public or url.startswith(public + "/"):
            return m.group(0)
        return stand_in + tail

    return _URL.sub(replace, text)
