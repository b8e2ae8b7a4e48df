"""Email (and SMS) unsubscribe links: the signed token read, and the opt-out it asks for.

The token (campaigns.people.tokens) names the patient, the channel and the delivery
it came in; unsubscribing revokes that channel's consent, as the patient's own, and
suppresses the contact.

Nothing here logs an address or a phone number: only ids and channels.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from campaigns.domain.states import Channel, channel_of
from campaigns.people import consent
from campaigns.people.tokens import UnsubscribeClaim, read_unsubscribe_token

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


def read_unsubscribe(svc: Services, token: str) -> UnsubscribeClaim | None:
    """The claim of a genuine token whose patient still exists; None otherwise."""
    claim = read_unsubscribe_token(svc.settings.secret_key.get_secret_value(), token)
    if claim is None:
        return None
    if claim.patient_id not in svc.patients.recipients([claim.patient_id]):
        log.info("unsubscribe link for patient %s: no such patient", claim.patient_id)
        return None
    return claim


def claim_channel(claim: UnsubscribeClaim) -> Channel:
    return channel_of(claim.channel)


def is_unsubscribed(svc: Services, claim: UnsubscribeClaim) -> bool:
    return svc.consent.current(claim.patient_id)[claim_channel(claim)] is False


def unsubscribe(svc: Services, claim: UnsubscribeClaim, *, one_click: bool) -> bool:
    """Revoke the link's channel for its patient; False when already unsubscribed."""
    channel = claim_channel(claim)
    if is_unsubscribed(svc, claim):
        log.info(
            "patient %s: %s already unsubscribed; nothing to record", claim.patient_id, channel
        )
        return False
    source = "one-click" if one_click else "unsubscribe-link"
    how = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe link"
    where = f" in delivery {claim.delivery_id}" if claim.delivery_id is not None else ""
    consent.record(
        svc,
        [claim.patient_id],
        channel,
        False,
        source=source,
        actor="patient",
        text=f"{how}{where}",
    )
    consent.suppress_contact(
        svc, claim.patient_id, channel, reason="unsubscribe", text=f"{how}{where}", actor="patient"
    )
    log.info(
        "patient %s: %s unsubscribed by %s (delivery %s)",
        claim.patient_id,
        channel,
        source,
        claim.delivery_id,
    )
    return True
