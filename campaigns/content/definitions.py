"""Campaign definitions: the YAML staff write, validated into a typed model.

A bad file fails with the field path and the reason, e.g.
``campaign.yaml: schedule.rrule: not a valid RRULE (unknown FREQ 'YEARLYY')``.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.clock.schedules import Schedule, parse_rrule
from campaigns.content.copy import from_block
from campaigns.content.field_errors import field_path, human_message
from campaigns.content.variants import from_ab_block
from campaigns.domain.models import Channel
from campaigns.errors import InputError, Problem

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Audience(_Strict):
    tags_any: list[str] = Field(default_factory=list)
    tags_none: list[str] = Field(default_factory=list)
    # the patient's address state (two letters), any of; none given: every state
    states: list[str] = Field(default_factory=list)
    last_visit_within_days: int | None = Field(default=None, ge=1)
    no_appointment_within_days: int | None = Field(default=None, ge=0)

    @field_validator("states")
    @classmethod
    def _state_codes(cls, value: list[str]) -> list[str]:
        codes = [s.strip().upper() for s in value]
        bad = [s for s in codes if not re.fullmatch(r"[A-Z]{2}", s)]
        if bad:
            raise ValueError(f"use two-letter state codes like 'MA', not {bad[0]!r}")
        return codes


class ScheduleSpec(_Strict):
    rrule: str | None = None
    once: date | None = None
    send_time: time
    timezone: str | None = None  # the clinic's zone when omitted
    grace_hours: float = Field(default=6, ge=0, le=72)

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rrule(value)
        return value

    @field_validator("send_time")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError(
                "is a wall-clock time in each patient's zone; drop the UTC offset, e.g. '10:00'"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"{value!r} is not an IANA time zone name") from exc
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if (self.rrule is None) == (self.once is None):
            raise ValueError("give exactly one of 'rrule' or 'once'")
        return self

    def to_schedule(self, clinic_zone: str) -> Schedule:
        return Schedule(
            timezone=self.timezone or clinic_zone,
            send_time=self.send_time,
            rrule=self.rrule,
            once=self.once,
            grace=timedelta(hours=self.grace_hours),
        )


class Limits(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    frequency_cap_days: int = Field(default=7, ge=0, le=365)
    retry_base_s: float = Field(default=30.0, gt=0)


_OLD_FORM = (
    "the phrase-wide form (only 'phrase', 'reason', 'by') is no longer accepted: it would "
    "cover the phrase in any sentence, including text written after it was given. "
    "Acknowledge each finding instead, naming it as the lint reports it: rule, template, "
    "line, phrase, sentence (and occurrence, when the lint gives one above 1), with "
    "reason and by. `meridian campaigns apply FILE --json` lists them under "
    "'unacknowledged'; the console shows each one ready to paste"
)


class Acknowledgement(_Strict):
    """Staff accept one claim finding: this rule, matching this phrase, in this exact
    sentence, on this line of this template. Any change to the sentence, or a move
    to another line, and it no longer counts."""

    rule: str = Field(min_length=1)
    template: str = Field(min_length=1)
    line: int = Field(ge=1)
    phrase: str = Field(min_length=1)
    sentence: str = Field(min_length=1)
    occurrence: int = Field(default=1, ge=1)
    reason: str = Field(min_length=10)
    by: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _not_the_old_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "phrase" in data and not {"rule", "template"} & set(data):
            raise ValueError(_OLD_FORM)
        return data

    @field_validator("reason", "by")
    @classmethod
    def _filled_in(cls, value: str) -> str:
        if value.strip().startswith("<") and value.strip().endswith(">"):
            raise ValueError("still the placeholder the console offered: say it in your words")
        return value

    @field_validator("sentence")
    @classmethod
    def _spaces_as_the_lint_writes_them(cls, value: str) -> str:
        return " ".join(value.split())

    def key(self) -> tuple[str, str, int, str, str, int]:
        """The identity of the finding it names (compliance.finding_key's shape)."""
        return (self.rule, self.template, self.line, self.phrase, self.sentence, self.occurrence)


class Compliance(_Strict):
    acknowledged: list[Acknowledgement] = Field(default_factory=list)


class CampaignDefinition(_Strict):
    name: str
    description: str = ""
    channels: list[Channel] = Field(min_length=1)
    channel_policy: Literal["all_consented", "preferred"] = "all_consented"
    templates: str
    audience: Audience = Field(default_factory=Audience)
    schedule: ScheduleSpec
    limits: Limits = Field(default_factory=Limits)
    compliance: Compliance = Field(default_factory=Compliance)
    # The copy written inline (campaigns.content.copy.from_block's shape): saved to the
    # ledger as a version by apply, never kept in the stored definition.
    copy_block: dict[str, Any] | None = Field(default=None, alias="copy", exclude=True)
    # An A/B test of the copy (campaigns.content.variants.from_ab_block's shape:
    # ``split`` and each other variant's ``copy:`` block); saved to the ledger by apply.
    ab_block: dict[str, Any] | None = Field(default=None, alias="ab", exclude=True)

    @field_validator("name", "templates")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits and '-' (at most 63)")
        return value

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @field_validator("copy_block")
    @classmethod
    def _copy_shape(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                from_block(value, "")
            except InputError as exc:
                said = [f"{p.where.removeprefix(': copy.')}: {p.reason}" for p in exc.problems]
                raise ValueError(
                    "; ".join(said) or exc.message.removeprefix(": copy: ").removeprefix(": copy.")
                ) from exc
        return value

    @field_validator("ab_block")
    @classmethod
    def _ab_shape(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                from_ab_block(value, "")
            except InputError as exc:
                said = [f"{p.where.removeprefix(': ')}: {p.reason}" for p in exc.problems]
                raise ValueError("; ".join(said) or exc.message.removeprefix(": ")) from exc
        return value

    def to_json(self) -> dict[str, Any]:
        """The definition as the ledger keeps it: without its inline copy."""
        return self.model_dump(mode="json")


def parse_definition(data: Any, source: str) -> CampaignDefinition:
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping of campaign fields at the top level")
    try:
        return CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(f"{source}: {field_path(e['loc'])}", human_message(CampaignDefinition, e))
            for e in exc.errors()
        ]
        raise InputError(f"{source}: invalid campaign definition", problems) from exc


def parse_stored_definition(data: Any, source: str) -> CampaignDefinition:
    """A definition saved in the ledger. One saved before acknowledgements named a
    finding loses its phrase-wide ones here (they cannot be mapped to a finding):
    its claims then show as unacknowledged and nothing is scheduled or run until it
    is applied again with per-finding acknowledgements."""
    if isinstance(data, dict):
        compliance = data.get("compliance")
        if isinstance(compliance, dict) and isinstance(compliance.get("acknowledged"), list):
            kept = [
                a
                for a in compliance["acknowledged"]
                if not (isinstance(a, dict) and "phrase" in a and "rule" not in a)
            ]
            data = {**data, "compliance": {**compliance, "acknowledged": kept}}
    return parse_definition(data, source)


def load_definition(path: Path) -> CampaignDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse_definition(data, str(path))
