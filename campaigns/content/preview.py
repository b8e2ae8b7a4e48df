"""Preview: each channel's message for one patient, with SMS segments and lint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaigns.content import compliance_rules, sms
from campaigns.content.catalogue import lint_definition, load_campaign, mark_acknowledged
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.message import render_message
from campaigns.domain.models import Recipient
from campaigns.errors import NotFound

if TYPE_CHECKING:
    from campaigns.services import Services


def preview(svc: Services, campaign: str, external_id: str, *, actor: str) -> dict[str, Any]:
    """The saved campaign's messages for the patient, its lint findings and rule count;
    audited as ``actor`` seeing the patient's data."""
    _, definition = load_campaign(svc, campaign)
    patient = svc.patients.find(external_id)
    if patient is None:
        raise NotFound(f"no patient with external_id {external_id!r}")
    # Linted now, against the templates as they are: what schedule and run will judge.
    findings = mark_acknowledged(definition, lint_definition(svc, definition))
    channels = preview_channels(svc, definition, patient)
    svc.reports.record_access(
        actor, "patient.preview", patient.patient_id, campaign=definition.name
    )
    return {
        "campaign": definition.name,
        "patient": external_id,
        "channels": channels,
        "findings": findings,
        "rules": len(compliance_rules.load_rules().rules),
    }


def preview_channels(
    svc: Services, definition: CampaignDefinition, patient: Recipient
) -> dict[str, dict[str, Any]]:
    """Each channel's message for the patient, as it would be sent, an SMS with its
    segments; the definition saved or not (the console previews the one being edited)."""
    channels: dict[str, dict[str, Any]] = {}
    for channel in definition.channels:
        part = render_message(svc, definition, patient, channel).to_dict()
        if channel == "sms":
            part["segments"] = sms.count_segments(part["body"], svc.settings.public_url).to_dict()
        channels[channel] = part
    return channels
