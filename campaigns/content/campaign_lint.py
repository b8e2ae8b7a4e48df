"""The lint of a campaign definition: every template part compiled and trial-rendered
for a sample patient, then the compliance lint on the sources and on what they
render, and an error for each clinic setting a template uses that is empty.
campaigns.content.catalogue asks it at every save, schedule and run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaigns.content import compliance, compliance_rules
from campaigns.content.copy import Copy, compile_templates, draft_key, from_block, templates_key
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.rendering import PARTS, Renderer, build_context
from campaigns.domain.models import Channel

if TYPE_CHECKING:
    from campaigns.services import Services

SAMPLE_NAME = "Maximiliana"  # long-ish, so length checks are honest


def sample_context(svc: Services, channel: Channel, name: str) -> dict[str, Any]:
    url = svc.unsubscribe_url(0, None) if channel == "email" else None
    return build_context(
        first_name=SAMPLE_NAME,
        last_name="Featherstonehaugh",
        clinic=svc.clinic,
        campaign=name,
        unsubscribe_url=url,
    )


def lint_definition(
    svc: Services, definition: CampaignDefinition, *, draft: Copy | None = None
) -> list[dict[str, Any]]:
    """Compile and trial-render every template, then run the compliance lint: on the
    campaign's copy as it is now (templates_key), or on ``draft``, copy not saved yet
    (by default the definition's own ``copy:`` block, when it has one)."""
    if draft is None and definition.copy_block is not None:
        draft = from_block(definition.copy_block, f"campaign {definition.name}")
    renderer, key = svc.renderer, templates_key(svc, definition)
    if draft is not None:
        key = draft_key(draft)
        renderer = svc.renderer.with_draft(key, compile_templates(draft))
    samples = {ch: sample_context(svc, ch, definition.name) for ch in definition.channels}
    rendered = renderer.check(key, list(definition.channels), samples)
    findings: list[compliance_rules.Finding] = []
    for channel in definition.channels:
        for part in PARTS[channel]:
            name = renderer.label(key, part)
            findings += compliance.lint_source(channel, name, renderer.source(key, part))
        findings += _empty_clinic_settings(renderer, svc, key, channel)
        message = rendered[channel]
        url = samples[channel].get("unsubscribe_url")
        texts = [("txt", message.body)] + ([("html", message.html)] if message.html else [])
        for suffix, text in texts:
            findings += compliance.lint_rendered(
                channel,
                f"{renderer.label(key, channel)}.{suffix} (rendered)",
                text,
                clinic_name=svc.clinic.name,
                clinic_address=svc.clinic.address,
                unsubscribe_url=url,
            )
    return [f.to_dict() for f in findings]


_CLINIC_SETTING = {"name": "MERIDIAN_CLINIC_NAME", "address": "MERIDIAN_CLINIC_ADDRESS"}


def _empty_clinic_settings(
    renderer: Renderer, svc: Services, folder: str, channel: Channel
) -> list[compliance_rules.Finding]:
    """An error for each use of a clinic setting that is empty, where it is used:
    otherwise the message goes out with a blank ("Book a visit: . Reply STOP")."""
    values = {"name": svc.clinic.name, "address": svc.clinic.address, "phone": svc.clinic.phone}
    found, seen = [], set()
    for part in PARTS[channel]:
        for template, line, name in renderer.clinic_fields(folder, part):
            if (template, line, name) in seen:
                continue  # a layout two parts share
            seen.add((template, line, name))
            if name in values and not values[name].strip():
                key = _CLINIC_SETTING.get(name, f"MERIDIAN_CLINIC_{name.upper()}")
                found.append(
                    compliance_rules.Finding(
                        rule="clinic-setting-empty",
                        severity="error",
                        template=template,
                        line=line,
                        phrase=f"clinic.{name}",
                        message=(
                            f"The template uses clinic.{name}, but {key} is empty: the "
                            f"message would go out with a blank there. Set {key}, or "
                            f"take clinic.{name} out of the template."
                        ),
                        source="campaigns/settings.py (the clinic's identity, MERIDIAN_CLINIC_*)",
                    )
                )
    return found
