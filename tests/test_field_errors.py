"""Validation errors in staff's words (campaigns.content.field_errors), the same for the
form, the YAML import, the API and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.content.definitions import parse_definition
from campaigns.errors import InputError

GOOD: dict[str, Any] = {
    "name": "spring-check-in",
    "channels": ["sms"],
    "templates": "cold-and-flu-season",
    "schedule": {"rrule": "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=20", "send_time": "10:00"},
}


def refusals(**sections: Any) -> dict[str, str]:
    data = {**GOOD, **{k: v for k, v in sections.items() if k not in ("schedule",)}}
    if "schedule" in sections:
        data["schedule"] = {**GOOD["schedule"], **sections["schedule"]}
    with pytest.raises(InputError) as caught:
        parse_definition(data, "form")
    return {p.where.removeprefix("form: "): p.reason for p in caught.value.problems}


@pytest.mark.parametrize(
    ("sections", "path", "message"),
    [
        (
            {"limits": {"max_attempts": "lots"}},
            "limits.max_attempts",
            "Max attempts must be a whole number between 1 and 20",
        ),
        (
            {"limits": {"max_attempts": 0}},
            "limits.max_attempts",
            "Max attempts must be a whole number between 1 and 20",
        ),
        (
            {"limits": {"frequency_cap_days": 1.5}},
            "limits.frequency_cap_days",
            "Frequency cap (days) must be a whole number between 0 and 365",
        ),
        (
            {"audience": {"last_visit_within_days": 0}},
            "audience.last_visit_within_days",
            "Last visit within (days) must be a whole number, at least 1",
        ),
        (
            {"schedule": {"grace_hours": "six"}},
            "schedule.grace_hours",
            "Grace hours must be a number between 0 and 72",
        ),
        (
            {"schedule": {"send_time": "25:00"}},
            "schedule.send_time",
            "Send time must be a time of day like 10:00",
        ),
        (
            {"schedule": {"rrule": None, "once": "2027-02-30"}},
            "schedule.once",
            "Date must be a date like 2027-10-15",
        ),
        ({"channels": []}, "channels", "Channels: choose at least one"),
        ({"channels": ["sms", "fax"]}, "channels[1]", "Channels must be 'sms' or 'email'"),
        (
            {"channel_policy": "both"},
            "channel_policy",
            "Channel policy must be 'all_consented' or 'preferred'",
        ),
        (
            {"audiance": {}},
            "audiance",
            "Audiance: a campaign has no field 'audiance'; check its spelling",
        ),
    ],
)
def test_a_bad_value_is_refused_in_words_naming_its_field(
    sections: dict[str, Any], path: str, message: str
) -> None:
    assert refusals(**sections) == {path: message}


def test_no_refusal_repeats_pydantic_wording() -> None:
    found = refusals(
        limits={"max_attempts": "x", "frequency_cap_days": "y", "retry_base_s": "z"},
        schedule={"send_time": "noon", "grace_hours": "q"},
        audience={"tags_any": "active", "no_appointment_within_days": "soon"},
    )
    assert len(found) == 7
    for message in found.values():
        assert "Input should" not in message and "unable to parse" not in message, message


def test_a_missing_field_says_it_is_required() -> None:
    data = {k: v for k, v in GOOD.items() if k != "channels"}
    with pytest.raises(InputError) as caught:
        parse_definition(data, "campaign.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "campaign.yaml: channels: Channels is required"
    ]
