"""Reading bounce and complaint reports: RFC 3464 DSNs and RFC 5965 ARF reports.

Both are ``multipart/report`` messages (RFC 6522): a human part, a machine part
(``message/delivery-status`` or ``message/feedback-report``) and the original
message or its headers. What is read:

- the kind: a DSN recipient whose Status is 5.x.x is a hard bounce, 4.x.x a soft
  one (Action "delivered", "relayed" or "expanded" is no bounce); any ARF report is
  a complaint (Feedback-Type abuse, fraud, ...);
- which delivery: the signed VERP address the report was sent to (To,
  Delivered-To, X-Original-To; for ARF, Original-Mail-From), else the original
  message's Message-ID (the ledger's provider id of an email);
- the report's own Message-ID, so a report read twice is recognised.

Pure: no I/O, nothing logged (a report quotes the patient's address).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_NO_BOUNCE = {"delivered", "relayed", "expanded"}


@dataclass(frozen=True)
class BounceReport:
    """What one report says; ``kind`` is hard, soft, complaint or other."""

    kind: str
    status: str | None  # the DSN's Status (5.1.1) or the ARF Feedback-Type (abuse)
    report_id: str  # the report's Message-ID, or a digest of it
    envelope_to: tuple[str, ...]  # addresses the report was sent to (VERP candidates)
    original_message_id: str | None


def read_report(raw: bytes) -> BounceReport:
    """What a report message says; ``kind`` "other" for mail that is no report."""
    msg = message_from_bytes(raw, policy=policy.default)
    report_id = str(msg.get("Message-ID") or "").strip() or _digest(raw)
    to = _envelope_to(msg)
    report_type = msg.get_param("report-type", header="content-type")
    if msg.get_content_type() != "multipart/report" or not isinstance(report_type, str):
        return BounceReport("other", None, report_id, to, None)
    original = _original_message_id(msg)
    if report_type.lower() == "feedback-report":
        fields = _part_fields(msg, "message/feedback-report")
        feedback = (fields.get("feedback-type") or "abuse").strip().lower()
        mail_from = fields.get("original-mail-from")
        if mail_from:
            to = (*to, mail_from.strip().strip("<>"))
        return BounceReport("complaint", feedback, report_id, to, original)
    if report_type.lower() == "delivery-status":
        kind, status = _dsn_outcome(msg)
        return BounceReport(kind, status, report_id, to, original)
    return BounceReport("other", None, report_id, to, original)


def _digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _envelope_to(msg: Message) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        for value in msg.get_all(name) or []:
            addresses = getattr(value, "addresses", None)
            if addresses:
                found.extend(a.addr_spec for a in addresses)
            else:
                found.append(str(value).strip().strip("<>"))
    return tuple(dict.fromkeys(a for a in found if a))


def _machine_part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header blocks of a machine part (per-message first, then per recipient).

    The email package parses ``message/delivery-status`` into one sub-message per
    block; ``message/feedback-report`` into one message or a text body."""
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [p for p in payload if isinstance(p, Message)]
    elif isinstance(payload, str):
        text = payload.replace("\r\n", "\n")
        blocks = [
            message_from_bytes(b.encode(), policy=policy.compat32) for b in text.split("\n\n")
        ]
    return [{k.lower(): str(v) for k, v in b.items()} for b in blocks]


def _part_fields(msg: Message, content_type: str) -> dict[str, str]:
    part = _machine_part(msg, content_type)
    merged: dict[str, str] = {}
    for block in _field_blocks(part) if part is not None else []:
        merged.update(block)
    return merged


def _dsn_outcome(msg: Message) -> tuple[str, str | None]:
    """The worst recipient outcome of a DSN: hard over soft over none."""
    part = _machine_part(msg, "message/delivery-status")
    if part is None:
        return "other", None
    outcomes: list[tuple[str, str]] = []
    for block in _field_blocks(part):
        action = (block.get("action") or "").strip().lower()
        found = _STATUS.search(block.get("status") or "")
        if not action and found is None:
            continue  # the per-message block
        if action in _NO_BOUNCE or found is None:
            continue
        status = found.group(0)
        if status.startswith("5") or (action == "failed" and not status.startswith("4")):
            outcomes.append(("hard", status))
        elif status.startswith("4"):
            outcomes.append(("soft", status))
    for kind in ("hard", "soft"):
        for k, status in outcomes:
            if k == kind:
                return kind, status
    return "other", None


def _original_message_id(msg: Message) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner_msg, Message) and inner_msg.get("Message-ID"):
                return str(inner_msg["Message-ID"]).strip()
        elif ctype == "text/rfc822-headers":
            text = part.get_content() if isinstance(part, EmailMessage) else part.get_payload()
            headers = message_from_bytes(str(text).encode(), policy=policy.compat32)
            if headers.get("Message-ID"):
                return str(headers["Message-ID"]).strip()
    return None
