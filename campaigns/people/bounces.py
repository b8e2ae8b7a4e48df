"""Bounces, complaints and refusals: what each decides, recorded as evidence.

A hard bounce (5.x.x), a complaint, a permanent SMTP refusal at send time and an
SMS error meaning a dead or opted-out number put the address on the suppression
list at once; a soft bounce (4.x.x) is counted, and the address is suppressed at
the MERIDIAN_SOFT_BOUNCES_TO_SUPPRESS-th. Every report is kept (campaigns.store.
delivery_reports) with its decision, once per (source, report id), so a mailbox
read twice or a webhook retried decides nothing twice.

Logs name deliveries, kinds and codes; never an address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaigns.domain.states import channel_of
from campaigns.people import consent, verp
from campaigns.people.bounce_reports import BounceReport

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# The kind of report -> the suppression list's reason (at most 24 characters).
SUPPRESSING = {
    "hard": "bounce",
    "complaint": "complaint",
    "refused": "smtp-refused",
    "sms-error": "sms-error",
}
SOFT_REASON = "soft-bounces"


@dataclass(frozen=True)
class Decision:
    """What one report did: ``decision`` is suppressed, counted, already-suppressed,
    no-delivery, ignored or duplicate."""

    delivery_id: int | None
    kind: str
    decision: str


def decide(
    svc: Services,
    *,
    delivery_id: int | None,
    channel: str,
    kind: str,
    status: str | None,
    source: str,
    report_id: str,
) -> Decision:
    """Act on one report about ``delivery_id`` and keep it with its decision."""
    if svc.delivery_reports.seen(source, report_id):
        return Decision(delivery_id, kind, "duplicate")
    found = svc.inbound.delivery_recipient(delivery_id) if delivery_id is not None else None
    address: str | None = None
    patient_id: int | None = None
    if found is not None:
        patient_id, channel = found
        recipient = svc.patients.recipients([patient_id]).get(patient_id)
        address = recipient.contact(channel_of(channel)) if recipient else None
    secret = svc.settings.secret_key.get_secret_value()
    key = verp.address_key(secret, address) if address else None
    decision = _decision(svc, kind, key, address is not None)
    if decision == "suppressed" and address:
        reason = SOFT_REASON if kind == "soft" else SUPPRESSING[kind]
        evidence = f"{source} {kind} report {report_id} ({status or 'no status'})"
        done = consent.suppress(
            svc,
            channel_of(channel),
            address,
            reason=reason,
            actor="provider",
            evidence=evidence[:500],
            patient_id=patient_id,
        )
        decision = "suppressed" if done else "already-suppressed"
    kept = svc.delivery_reports.add(
        delivery_id=delivery_id if found is not None else None,
        channel=channel,
        kind=kind,
        status=status,
        source=source,
        report_id=report_id,
        address_key=key,
        decision=decision,
        at=svc.now(),
    )
    if kept is None:
        return Decision(delivery_id, kind, "duplicate")
    log.info(
        "%s %s report on delivery %s (%s): %s",
        source,
        kind,
        delivery_id if found is not None else "-",
        status or "-",
        decision,
    )
    return Decision(delivery_id, kind, decision)


def _decision(svc: Services, kind: str, key: str | None, known: bool) -> str:
    if not known:
        return "no-delivery"
    if kind in SUPPRESSING:
        return "suppressed"
    if kind == "soft" and key is not None:
        earlier = svc.delivery_reports.count(key, "soft")
        return "suppressed" if earlier + 1 >= svc.settings.soft_bounces_to_suppress else "counted"
    return "ignored"


def delivery_of(svc: Services, report: BounceReport) -> int | None:
    """The delivery a report is about: its signed VERP address, else the original
    message's Message-ID as the ledger holds it."""
    secret = svc.settings.secret_key.get_secret_value()
    for address in report.envelope_to:
        found = verp.read_return_path(secret, address)
        if found is not None:
            return found
    if report.original_message_id:
        return svc.delivery_queries.find_by_provider_id(report.original_message_id)
    return None


def decide_report(svc: Services, report: BounceReport, *, source: str) -> Decision:
    """Act on a parsed DSN or ARF report."""
    delivery_id = delivery_of(svc, report)
    if report.kind not in ("hard", "soft", "complaint"):
        kind = report.kind
        if svc.delivery_reports.seen(source, report.report_id):
            return Decision(delivery_id, kind, "duplicate")
        svc.delivery_reports.add(
            delivery_id=None,
            channel="email",
            kind=kind,
            status=report.status,
            source=source,
            report_id=report.report_id,
            address_key=None,
            decision="ignored",
            at=svc.now(),
        )
        return Decision(delivery_id, kind, "ignored")
    return decide(
        svc,
        delivery_id=delivery_id,
        channel="email",
        kind=report.kind,
        status=report.status,
        source=source,
        report_id=report.report_id,
    )
