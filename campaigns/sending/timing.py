"""When one patient's messages for one occurrence go, and why: for ``meridian
campaigns when`` and the console's preview. The answer is
campaigns.sending.fanout.recipient_send_time, whose instant is the one fan-out and the
send-time check take (recipient_send_at)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from campaigns.clock import schedules
from campaigns.content.catalogue import load_campaign
from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.models import Recipient
from campaigns.errors import InputError, NotFound
from campaigns.people.consent import skip_reason
from campaigns.sending.fanout import recipient_send_time

if TYPE_CHECKING:
    from campaigns.services import Services

__all__ = ["next_occurrence", "send_times", "when"]


def when(
    svc: Services, campaign: str, external_id: str, occurrence: date | None = None
) -> dict[str, Any]:
    """The saved campaign's send time for the patient, per channel, for ``occurrence``
    (default: the schedule's next, on the clinic's calendar)."""
    _, definition = load_campaign(svc, campaign)
    patient = svc.patients.find(external_id)
    if patient is None:
        raise NotFound(f"no patient with external_id {external_id!r}")
    day = occurrence or next_occurrence(svc, definition)
    return {
        "campaign": definition.name,
        "patient": external_id,
        **send_times(svc, definition, patient, day),
    }


def next_occurrence(svc: Services, definition: CampaignDefinition) -> date:
    """The schedule's first occurrence on or after today on the clinic's calendar."""
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    today = svc.now().astimezone(ZoneInfo(schedule.timezone)).date()
    upcoming = schedules.occurrence_dates(schedule, today - timedelta(days=1), 1)
    if not upcoming:
        raise InputError(
            f"campaign {definition.name}: its schedule has no occurrence from {today} on; "
            "name one with --occurrence YYYY-MM-DD"
        )
    return upcoming[0]


def send_times(
    svc: Services, definition: CampaignDefinition, patient: Recipient, day: date
) -> dict[str, Any]:
    """Per channel of the campaign: the consent verdict and the lawful send time."""
    now = svc.now()
    channels: dict[str, Any] = {}
    for channel in definition.channels:
        answer = recipient_send_time(
            svc, schedules.occurrence_key(day), definition, patient, channel, now
        )
        consent = skip_reason(patient, channel)
        # The clock's answer stands on its own; consent (or a missing contact) is a
        # separate reason the patient would get nothing on this channel.
        part = {**answer.to_dict(), "consent_skip_reason": consent}
        for clock, shown in zip(part["candidates"], answer.clocks, strict=True):
            clock["local_text"] = f"{shown.local:%a %Y-%m-%d %H:%M %Z}"
        part["at_text"] = f"{answer.at:%Y-%m-%d %H:%M:%S} UTC" if answer.at else None
        channels[channel] = part
    return {
        "occurrence": day.isoformat(),
        "send_time": definition.schedule.send_time.strftime("%H:%M"),
        "grace_hours": definition.schedule.grace_hours,
        "asked_at": now.isoformat(),
        "channels": channels,
    }
