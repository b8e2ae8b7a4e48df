"""Consent: the append-only ledger's services, opt-out words, and the send-time check.

A patient gets a channel only with a current grant and no later revocation; the
store keeps the latest word per channel on the patient row, written in the same
transaction as the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from campaigns.clock import geography, quiet_hours
from campaigns.domain.models import Channel, ConsentFact, Recipient
from campaigns.domain.states import SkipReason

if TYPE_CHECKING:
    from campaigns.services import Services

InboundKind = Literal["stop", "start", "help", "revocation", "other"]

# FCC 24-24 per-se revocation words plus the carriers' and Twilio's opt-out list
# (COMPLIANCE.md, SMS rows "revocation" and "Twilio's own filter").
STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "opt-out",
    }
)
START_WORDS = frozenset({"start", "yes", "unstop"})
HELP_WORDS = frozenset({"help", "info"})

# Free text that reads as a revocation: a patient may revoke "by any reasonable means".
_REVOCATION = re.compile(
    r"\b(stop|quit|cease|no more|don'?t|do not|never)\b.{0,30}\b(text|texting|message|"
    r"messaging|sms|contact|contacting)|\b(remove|take)\b.{0,20}\b(me|my number)\b.{0,20}"
    r"\b(list|off)\b|\bunsubscribe\b|\bopt(ing)?[ -]?out\b|\bleave me alone\b",
    re.IGNORECASE,
)


def classify_inbound(body: str) -> InboundKind:
    """What an inbound SMS means. Exact keywords first, then revocation-like text."""
    word = re.sub(r"[^\w\s-]", "", body).strip().lower()
    word = re.sub(r"\s+", " ", word)
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    if _REVOCATION.search(body):
        return "revocation"
    return "other"


def skip_reason(recipient: Recipient, channel: Channel) -> SkipReason | None:
    """Why this channel may not carry anything to this patient, at any time; or None.

    The one definition of the consent and contact rules: fan-out plans with it and
    the send-time check starts with it, so a consent that changed in between counts.
    """
    opt = recipient.opt_in(channel)
    if opt is None:
        return SkipReason.NO_CONSENT
    if opt is False:
        return SkipReason.OPTED_OUT
    if not recipient.contact(channel):
        return SkipReason.INVALID_CONTACT
    return None


def check_send(
    recipient: Recipient,
    channel: Channel,
    past: Sequence[tuple[int, str, datetime]],
    *,
    now: datetime,
    cap_days: int,
    run_id: int,
) -> SkipReason | None:
    """The skip reason that forbids sending now, or None when it may go.

    ``past`` holds (run_id, channel, sent_at) of messages already handed over to
    this patient. The campaign cap counts other runs only (one occurrence may use
    both channels by policy); the state caps count every text, this run's included.
    """
    reason = skip_reason(recipient, channel)
    if reason is not None:
        return reason
    if cap_days > 0:
        since = now - timedelta(days=cap_days)
        if any(at >= since and rid != run_id for rid, _, at in past):
            return SkipReason.FREQUENCY_CAP
    if channel == "sms":
        cap = quiet_hours.state_cap(geography.patient_state(recipient.state, recipient.phone))
        if cap is not None:
            day_ago = now - timedelta(hours=24)
            if sum(1 for _, ch, at in past if ch == "sms" and at >= day_ago) >= cap:
                return SkipReason.FREQUENCY_CAP
    return None


def record(
    svc: Services,
    patient_ids: Sequence[int],
    channel: Channel,
    granted: bool,
    *,
    source: str,
    actor: str,
    text: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one consent fact for each patient; every change lands in the audit log."""
    fact = ConsentFact(
        channel=channel, granted=granted, at=at or svc.now(), source=source, text_shown=text
    )
    return svc.consent.record(list(patient_ids), fact, actor=actor)


def record_provider_opt_out(
    svc: Services, patient_id: int, channel: Channel, code: str | None
) -> None:
    """The provider says the number has opted out (Twilio 21610): believe it, at once."""
    record(
        svc,
        [patient_id],
        channel,
        False,
        source="provider",
        actor="provider",
        text=f"provider error {code}" if code else "provider opt-out",
    )
