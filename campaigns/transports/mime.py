"""One email as both email transports write it: the SMTP bytes and the outbox ``.eml``.

The one-click unsubscribe headers (RFC 2369 ``List-Unsubscribe``, RFC 8058
``List-Unsubscribe-Post``) must reach mailbox providers as written: an angle-bracketed
URL in plain ASCII. ``email.policy.default`` treats unknown headers as unstructured
text and, when a URL is longer than a line, folds it into RFC 2047 encoded-words
(``=?utf-8?q?=3Chttps=3A//...?=``), which RFC 2369 does not allow, so Gmail and
Yahoo see no unsubscribe URL at all. ``LIST_HEADER_POLICY`` is the default policy
except for those two headers: it stores them verbatim and writes each on one line
(RFC 5322 allows 998 characters; a longer one is refused, never cut). Every other
header (a non-ASCII subject or display name) is still encoded and folded by the
default policy, where RFC 2047 says it must be.

DKIM: the bytes written are the bytes a signer signs. Nothing here folds or encodes
the list headers, so relaxed canonicalization of them is the header as written; the
signing MTA should list both in its ``h=`` tag, as Gmail and Yahoo require.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any

from campaigns.domain.transport import OutboundMessage

LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
_VERBATIM = frozenset(name.lower() for name in (LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST))
_MAX_LINE = 998  # RFC 5322 section 2.1.1, without the CRLF


class _ListHeaderPolicy(EmailPolicy):
    """``email.policy.default``, except that the RFC 2369/8058 list headers are kept
    verbatim: stored as given, written on one line, never turned into encoded-words."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if name.lower() not in _VERBATIM:
            return super().header_store_parse(name, value)
        text = str(value)
        if not text.isascii() or any(ch in text for ch in "\r\n\0"):
            raise ValueError(f"{name}: must be one line of ASCII")
        if len(name) + 2 + len(text) > _MAX_LINE:
            raise ValueError(f"{name}: longer than an RFC 5322 line ({_MAX_LINE} characters)")
        return name, text

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in _VERBATIM and isinstance(value, str):
            return f"{name}: {value}{self.linesep}"
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in _VERBATIM and isinstance(value, str):
            return self.fold(name, value).encode("ascii")
        return bytes(super().fold_binary(name, value))


LIST_HEADER_POLICY = _ListHeaderPolicy()


def message_id(message: OutboundMessage, sender_address: str) -> str:
    """``<meridian.RUN.DELIVERY@domain>``: the same for every attempt at one delivery,
    so receiving systems fold a resend into the first copy."""
    domain = sender_address.rpartition("@")[2] or "localhost"
    return f"<meridian.{message.run_id}.{message.delivery_id}@{domain}>"


def build_email(
    message: OutboundMessage,
    *,
    sender: str,
    reply_to: str | None,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The message as it goes on the wire: headers, then text and (if any) HTML parts.

    Raises ValueError or TypeError for a header the policy refuses (a line break in
    it, an address it cannot parse, a list header that is not one ASCII line).

    Only the https one-click URL is offered in List-Unsubscribe: a ``mailto:`` would
    promise an unsubscribe that nothing at the clinic's mailbox processes.
    """
    email = EmailMessage(policy=LIST_HEADER_POLICY)
    email["From"] = sender
    email["To"] = message.to
    if reply_to:
        email["Reply-To"] = reply_to
    email["Subject"] = message.subject or ""
    email["Date"] = format_datetime(date)
    email["Message-ID"] = message_id
    if message.unsubscribe_url:
        email[LIST_UNSUBSCRIBE] = f"<{message.unsubscribe_url}>"
        email[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
    for name, value in message.headers.items():
        del email[name]
        email[name] = value
    email.set_content(message.body)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email
