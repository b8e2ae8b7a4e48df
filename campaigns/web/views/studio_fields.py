"""The campaign form's fields: read from a posted form into the one CampaignDefinition
the YAML import builds too, and written back from a definition for editing.

Nothing here decides what is valid: the definition model does, and its refusals
come back in staff's words (campaigns.content.field_errors), each placed next to
the form field it is about. The form keeps every value as typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from campaigns.clock.schedule_words import KINDS, Choice, Kind, choice_of, rule_of
from campaigns.content.definitions import (
    Audience,
    CampaignDefinition,
    Limits,
    ScheduleSpec,
    parse_definition,
)
from campaigns.errors import InputError

LISTS = ("channels", "tags_any", "tags_none", "states", "weekdays")
SOURCE = "form"
# Where a definition's field path lands on the form, when its last part is not the
# form field's name.
_PLACED = {"schedule": "schedule_kind", "(top level)": "form", "audience": "tags_any"}


@dataclass
class FormRead:
    """What the form sent, as typed (``values``), and what it makes."""

    values: dict[str, Any]
    data: dict[str, Any]  # the definition's fields, before validation
    errors: dict[str, str] = field(default_factory=dict)  # form field -> message
    definition: CampaignDefinition | None = None


def _text(form: MultiDict[str, str], name: str) -> str:
    return form.get(name, "").strip()


def _optional_int(text: str) -> str | None:
    return text or None  # pydantic reads "30"; an empty box means "no limit"


def read_form(form: MultiDict[str, str]) -> FormRead:
    """The posted form as a definition, or with its errors by form field."""
    values: dict[str, Any] = {name: form.get(name, "") for name in form}
    for name in LISTS:
        values[name] = [v.strip() for v in form.getlist(name) if v.strip()]
    kind: Kind = form.get("schedule_kind", "yearly")  # type: ignore[assignment]
    if kind not in KINDS:
        kind = "yearly"
    values["schedule_kind"] = kind
    choice = Choice(
        kind,
        once=_text(form, "once"),
        month=_text(form, "month"),
        day=_text(form, "day"),
        weekdays=tuple(values["weekdays"]),
        rrule=_text(form, "rrule"),
    )
    rrule, once, schedule_problems = rule_of(choice)
    schedule: dict[str, Any] = {
        "rrule": rrule,
        "once": once,
        "send_time": _text(form, "send_time"),
        "grace_hours": _text(form, "grace_hours") or "6",
    }
    if _text(form, "timezone"):
        schedule["timezone"] = _text(form, "timezone")
    data: dict[str, Any] = {
        "name": _text(form, "name"),
        "description": form.get("description", "").strip(),
        "channels": values["channels"],
        "channel_policy": _text(form, "channel_policy") or "all_consented",
        "templates": _text(form, "templates"),
        "audience": {
            "tags_any": values["tags_any"],
            "tags_none": values["tags_none"],
            "states": values["states"],
            "last_visit_within_days": _optional_int(_text(form, "last_visit_within_days")),
            "no_appointment_within_days": _optional_int(_text(form, "no_appointment_within_days")),
        },
        "schedule": schedule,
        "limits": {
            "max_attempts": _text(form, "max_attempts"),
            "frequency_cap_days": _text(form, "frequency_cap_days"),
            "retry_base_s": _text(form, "retry_base_s") or "30",
        },
    }
    kept = _kept_compliance(form.get("compliance", ""))
    if kept:
        data["compliance"] = kept
    read = FormRead(values, data)
    try:
        read.definition = parse_definition(data, SOURCE)
    except InputError as exc:
        for problem in exc.problems or []:
            path = problem.where.removeprefix(f"{SOURCE}: ")
            read.errors.setdefault(_form_field(path, kind), problem.reason)
    if schedule_problems:
        # The builder's words name the field; the rule it could not write says less.
        read.errors.pop("schedule_kind", None)
        read.errors.update(schedule_problems)
    if read.errors:
        read.definition = None
    return read


def _form_field(path: str, kind: Kind) -> str:
    last = path.split("[", 1)[0].rsplit(".", 1)[-1]
    if path.startswith("schedule.rrule"):
        return "rrule" if kind == "rrule" else "schedule_kind"
    if path.startswith("compliance"):
        return "form"
    return _PLACED.get(path, _PLACED.get(last, last))


def _kept_compliance(text: str) -> dict[str, Any] | None:
    """The acknowledgements the campaign had, carried through the form unchanged (the
    form does not edit them; the review page and the YAML do)."""
    if not text.strip():
        return None
    try:
        kept = json.loads(text)
    except ValueError:
        return None
    return kept if isinstance(kept, dict) else None


def form_values(definition: CampaignDefinition | None) -> dict[str, Any]:
    """The form's fields for a definition (a new campaign's defaults when None)."""
    d = definition
    audience = d.audience if d else Audience(tags_any=["active"], tags_none=["do-not-market"])
    schedule = d.schedule if d else None
    limits = d.limits if d else Limits()
    choice = (
        choice_of(schedule.rrule, schedule.once)
        if schedule
        else Choice("yearly", month="10", day="15")
    )
    return {
        "name": d.name if d else "",
        "description": d.description if d else "",
        "channels": list(d.channels) if d else ["sms", "email"],
        "channel_policy": d.channel_policy if d else "all_consented",
        "templates": d.templates if d else "cold-and-flu-season",
        "tags_any": list(audience.tags_any),
        "tags_none": list(audience.tags_none),
        "states": list(audience.states),
        "last_visit_within_days": _shown(audience.last_visit_within_days),
        "no_appointment_within_days": _shown(audience.no_appointment_within_days),
        "schedule_kind": choice.kind,
        "once": choice.once,
        "month": choice.month,
        "day": choice.day,
        "weekdays": list(choice.weekdays),
        "rrule": choice.rrule,
        "send_time": f"{schedule.send_time:%H:%M}" if schedule else "10:00",
        "timezone": (schedule.timezone or "") if schedule else "",
        "grace_hours": f"{schedule.grace_hours:g}" if schedule else "6",
        "max_attempts": str(limits.max_attempts),
        "frequency_cap_days": str(limits.frequency_cap_days),
        "retry_base_s": f"{limits.retry_base_s:g}",
        "compliance": json.dumps(d.compliance.model_dump(mode="json")) if d else "",
    }


def _shown(value: int | None) -> str:
    return "" if value is None else str(value)


def schedule_spec(read: FormRead) -> ScheduleSpec | None:
    """The schedule alone, when its fields are valid (for the live preview)."""
    try:
        return ScheduleSpec.model_validate(read.data["schedule"])
    except ValueError:
        return None


def audience_definition(read: FormRead) -> CampaignDefinition | None:
    """A stand-in definition with the form's audience and channels (for the live count),
    when those fields are valid, whatever else is not yet."""
    if read.definition is not None:
        return read.definition
    stand_in = {
        "name": "preview",
        "channels": read.data["channels"],
        "channel_policy": read.data["channel_policy"],
        "templates": "preview",
        "audience": read.data["audience"],
        "schedule": {"once": "2000-01-01", "send_time": "10:00"},
    }
    try:
        return CampaignDefinition.model_validate(stand_in)
    except ValueError:
        return None
