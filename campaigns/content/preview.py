"""Preview: each channel's message for one patient, with SMS segments and lint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaigns.content import compliance, sms
from campaigns.content.rendering import build_context
from campaigns.errors import NotFound
from campaigns.sending import runs

if TYPE_CHECKING:
    from campaigns.services import Services


def preview(svc: Services, campaign: str, external_id: str) -> dict[str, Any]:
    row, definition = runs.load_campaign(svc, campaign)
    patient = svc.patients.find(external_id)
    if patient is None:
        raise NotFound(f"no patient with external_id {external_id!r}")
    channels: dict[str, Any] = {}
    for channel in definition.channels:
        url = svc.unsubscribe_url(patient.patient_id, None) if channel == "email" else None
        context = build_context(
            first_name=patient.first_name,
            last_name=patient.last_name,
            clinic=svc.clinic,
            campaign=definition.name,
            unsubscribe_url=url,
        )
        rendered = svc.renderer.render(definition.templates, channel, context)
        part = rendered.to_dict()
        if channel == "sms":
            body = (
                sms.smart_encode(rendered.body)
                if svc.settings.sms_smart_encoding
                else rendered.body
            )
            part["body"] = body
            part["segments"] = sms.count_segments(body).to_dict()
        channels[channel] = part
    findings: list[dict[str, Any]] = list(row["findings"])
    return {
        "campaign": definition.name,
        "patient": external_id,
        "channels": channels,
        "findings": findings,
        "rules": len(compliance.load_rules().rules),
    }
