"""The state rule table: when marketing texts may reach a patient, and how many a day.

The window table (federal 08:00-21:00 narrowed by state rules) and the frequency
caps live in ``campaigns/data/quiet_hours.yaml`` so counsel can change them without a
code change. The file is validated by the pydantic models below when first read; a
bad table fails with ConfigError naming the file and the field path
("campaigns/data/quiet_hours.yaml: states.TX.windows.sun.opens: ...").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from importlib import resources
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from campaigns.clock.geography import USPS_CODES, patient_state
from campaigns.errors import ConfigError

__all__ = ["QUIET_HOURS_FILE", "Window", "state_cap", "window_for"]

QUIET_HOURS_FILE = "campaigns/data/quiet_hours.yaml"
_RESOURCE = "data/quiet_hours.yaml"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SELECTORS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    **{day: (index,) for index, day in enumerate(_DAYS)},
}


@dataclass(frozen=True)
class Window:
    """Allowed local send times on one day; ``closes`` is exclusive.

    ``opens == closes`` means no sending that day.
    """

    opens: time
    closes: time

    def __post_init__(self) -> None:
        # Windows are built from the checked table (_WindowSpec): these are bugs.
        assert self.opens.tzinfo is None and self.closes.tzinfo is None, (
            "a Window holds wall-clock times; drop the tzinfo"
        )
        assert self.opens <= self.closes, (
            f"window opens at {self.opens} after it closes at {self.closes}"
        )

    @property
    def is_closed(self) -> bool:
        return self.opens >= self.closes


_CLOSED = Window(time(0), time(0))


def window_for(state: str | None, local_day: date) -> Window:
    """The day's window: federal 08:00-21:00, narrowed by the state's own rule."""
    table = _table()
    federal = table.federal.windows[local_day.weekday()]
    code = patient_state(state, None)
    rules = table.states.get(code) if code else None
    if rules is None:
        return federal
    own = rules.windows[local_day.weekday()]
    # The intersection: a state's rule can make the federal window narrower, never wider.
    opens, closes = max(federal.opens, own.opens), min(federal.closes, own.closes)
    return Window(opens, closes) if opens < closes else _CLOSED


def state_cap(state: str | None) -> int | None:
    """At most this many marketing messages per rolling 24 hours, or None for no cap."""
    code = patient_state(state, None)
    rules = _table().states.get(code) if code else None
    return rules.cap_per_24h if rules else None


# -- the table as read at run time ------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    windows: tuple[Window, ...]  # indexed by date.weekday(), Monday = 0
    cap_per_24h: int | None


@dataclass(frozen=True)
class _Table:
    federal: _Rules
    states: Mapping[str, _Rules]


@functools.cache
def _table() -> _Table:
    text = resources.files("campaigns").joinpath(_RESOURCE).read_text(encoding="utf-8")
    return _parse_table(yaml.safe_load(text))


def _parse_table(data: Any) -> _Table:
    """The table from parsed YAML; ConfigError naming the field path if it is malformed."""
    try:
        spec = _TableSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_problems(exc))) from None
    return _Table(
        federal=spec.federal.rules(),
        states={code: rules.rules() for code, rules in spec.states.items()},
    )


# -- the file's shape -------------------------------------------------------------------


def _known_selector(value: str) -> str:
    if value not in _SELECTORS:
        raise ValueError(f"unknown day selector; use one of {list(_SELECTORS)}")
    return value


def _known_state(value: str) -> str:
    if value not in USPS_CODES:
        raise ValueError("is not a USPS state code")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _WindowSpec(_Strict):
    """``{opens: "HH:MM", closes: "HH:MM"}``, or the word ``closed`` (no times)."""

    opens: time | None = None
    closes: time | None = None

    @model_validator(mode="before")
    @classmethod
    def _closed_or_both_times(cls, value: object) -> object:
        if value == "closed":
            return {}
        if not isinstance(value, dict) or set(value) != {"opens", "closes"}:
            raise ValueError('expected {opens: "HH:MM", closes: "HH:MM"} or \'closed\'')
        return value

    @field_validator("opens", "closes", mode="before")
    @classmethod
    def _quoted_wall_time(cls, value: object) -> time:
        if not isinstance(value, str):
            # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260.
            raise ValueError(f'expected a quoted "HH:MM" string, got {value!r}')
        try:
            parsed = time.fromisoformat(value)
        except ValueError:
            raise ValueError(f'{value!r} is not a time like "09:00"') from None
        if parsed.tzinfo is not None:
            raise ValueError(f'{value!r} carries a UTC offset; give a wall-clock time like "09:00"')
        return parsed

    @model_validator(mode="after")
    def _opens_before_closes(self) -> Self:
        if self.opens is not None and self.closes is not None and self.opens >= self.closes:
            raise ValueError(f"opens {self.opens:%H:%M} is not before closes {self.closes:%H:%M}")
        return self

    def window(self) -> Window:
        if self.opens is None or self.closes is None:
            return _CLOSED
        return Window(self.opens, self.closes)


class _RulesSpec(_Strict):
    name: str | None = None
    windows: dict[Annotated[str, AfterValidator(_known_selector)], _WindowSpec]
    cap_per_24h: Annotated[StrictInt, Field(ge=1)] | None = None
    source: str = Field(default="", validate_default=True)
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _cited(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("every rule must cite its source")
        return value

    @field_validator("windows")
    @classmethod
    def _every_day_covered(cls, windows: dict[str, _WindowSpec]) -> dict[str, _WindowSpec]:
        covered = {day for selector in windows for day in _SELECTORS[selector]}
        missing = [name for day, name in enumerate(_DAYS) if day not in covered]
        if missing:
            raise ValueError(f"no window for {missing}; add them or 'all'")
        return windows

    def rules(self) -> _Rules:
        by_day = [_CLOSED] * 7
        # The least specific selectors first, so that a named day overrides them.
        for selector in sorted(self.windows, key=lambda s: len(_SELECTORS[s]), reverse=True):
            for day in _SELECTORS[selector]:
                by_day[day] = self.windows[selector].window()
        return _Rules(windows=tuple(by_day), cap_per_24h=self.cap_per_24h)


class _TableSpec(_Strict):
    version: Literal[1]
    federal: _RulesSpec
    states: dict[Annotated[str, AfterValidator(_known_state)], _RulesSpec] = Field(
        default_factory=dict
    )

    @field_validator("states", mode="before")
    @classmethod
    def _none_is_no_states(cls, value: object) -> object:
        return {} if value is None else value


def _problems(exc: ValidationError) -> list[str]:
    """One line per problem: the file, the field path, and what is wrong."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part != "[key]") or "(top)"
        if error["type"] == "value_error":
            problem = str(error["ctx"]["error"])
        elif error["type"] == "extra_forbidden":
            problem = "unknown field; see the format at the top of the file"
        elif error["type"] == "model_type":
            problem = "expected a mapping" + ("" if error["loc"] else " with 'version: 1'")
        elif error["type"] == "missing":
            problem = "required field is missing"
        else:
            problem = error["msg"]
        lines.append(f"{QUIET_HOURS_FILE}: {where}: {problem}")
    return lines
