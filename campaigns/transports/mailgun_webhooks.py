"""Mailgun's webhooks: the signature, and what a bounce or complaint event says.

Mailgun signs each webhook with HMAC-SHA256 of ``timestamp + token`` under the
account's HTTP webhook signing key, hex-encoded in ``signature.signature``
(documentation.mailgun.com, "Securing webhooks"). A timestamp further than
``MAX_SKEW_S`` from now is refused too, so a captured request cannot be replayed
later; a replay within the window is harmless, as each event is kept once by its id.

Events read: ``failed`` (severity permanent: hard bounce; temporary: soft) and
``complained``. The message is named by its Message-ID, which Mailgun gives without
angle brackets.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

MAX_SKEW_S = 15 * 60


@dataclass(frozen=True)
class MailgunEvent:
    kind: str  # hard, soft, complaint, other
    status: str | None  # the SMTP code or enhanced status Mailgun reports
    event_id: str
    message_id: str | None  # with angle brackets, as the ledger holds it


def signature_ok(key: str, payload: Any, now: float) -> bool:
    """Whether ``payload["signature"]`` was made with ``key``, recently."""
    sig = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(sig, dict):
        return False
    timestamp, token, signature = (
        str(sig.get(k) or "") for k in ("timestamp", "token", "signature")
    )
    if not (timestamp and token and signature) or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        return False
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def read_event(payload: dict[str, Any]) -> MailgunEvent:
    data = payload.get("event-data")
    data = data if isinstance(data, dict) else {}
    event = str(data.get("event") or "").lower()
    event_id = str(data.get("id") or payload["signature"]["token"])
    headers = (data.get("message") or {}).get("headers") or {}
    raw_id = str(headers.get("message-id") or "").strip().strip("<>")
    message_id = f"<{raw_id}>" if raw_id else None
    status_info = data.get("delivery-status") or {}
    code = status_info.get("enhanced-code") or status_info.get("code")
    status = str(code) if code else None
    if event == "complained":
        return MailgunEvent("complaint", "abuse", event_id, message_id)
    if event == "failed":
        severity = str(data.get("severity") or "").lower()
        kind = "hard" if severity == "permanent" else "soft"
        return MailgunEvent(kind, status, event_id, message_id)
    return MailgunEvent("other", status, event_id, message_id)
