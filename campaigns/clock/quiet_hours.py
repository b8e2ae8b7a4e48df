"""The state rule table: when marketing texts may reach a patient, and how many a day.

The window table (federal 08:00-21:00 narrowed by state rules) and the frequency
caps live in ``campaigns/data/quiet_hours.yaml`` so counsel can change them without a
code change. The file is validated by the pydantic models below when first read; a
bad table fails with ConfigError naming the file and the field path
("campaigns/data/quiet_hours.yaml: states.TX.windows.sun.opens: ...").
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import holidays
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from campaigns.clock.geography import USPS_CODES, patient_state
from campaigns.errors import ConfigError

__all__ = [
    "QUIET_HOURS_FILE",
    "DayRule",
    "Window",
    "day_rule",
    "presumes_resident",
    "state_cap",
    "strictest_cap",
    "window_for",
]

QUIET_HOURS_FILE = "campaigns/data/quiet_hours.yaml"
_RESOURCE = "data/quiet_hours.yaml"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
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

    def __str__(self) -> str:
        return "closed" if self.is_closed else f"{self.opens:%H:%M}-{self.closes:%H:%M}"


_CLOSED = Window(time(0), time(0))


@dataclass(frozen=True)
class DayRule:
    """One local day's window for a state, with the rule that sets it and its source.

    ``state`` is the USPS code whose own row applies (None: the federal rule only);
    ``closed_for`` says why a closed day is closed ("Sunday", "holiday: Labor Day").
    """

    window: Window
    state: str | None
    closed_for: str | None
    source: str

    def describe(self) -> str:
        who = self.state or "federal"
        if self.window.is_closed:
            return f"{who}: no marketing texts on {self.closed_for or 'this day'}"
        return f"{who}: {self.window}"


def day_rule(state: str | None, local_day: date) -> DayRule:
    """The day's window: federal 08:00-21:00, narrowed by the state's own rule, and
    closed on the holidays of a state that forbids them."""
    table = _table()
    weekday = local_day.weekday()
    federal = table.federal.windows[weekday]
    code = patient_state(state, None)
    rules = table.states.get(code) if code else None
    if rules is None:
        return DayRule(federal, None, None, table.federal.source)
    if rules.closed_on_holidays:
        holiday = _holidays(code or "", local_day.year).get(local_day)
        if holiday is not None:
            return DayRule(_CLOSED, code, f"holiday: {holiday}", rules.source)
    own = rules.windows[weekday]
    if own.is_closed:
        return DayRule(_CLOSED, code, _DAY_NAMES[weekday], rules.source)
    # The intersection: a state's rule can make the federal window narrower, never wider.
    opens, closes = max(federal.opens, own.opens), min(federal.closes, own.closes)
    window = Window(opens, closes) if opens < closes else _CLOSED
    return DayRule(window, code, _DAY_NAMES[weekday] if window.is_closed else None, rules.source)


def window_for(state: str | None, local_day: date) -> Window:
    """The day's window (``day_rule`` without its reasons)."""
    return day_rule(state, local_day).window


def state_cap(state: str | None) -> int | None:
    """At most this many marketing messages per rolling 24 hours, or None for no cap."""
    code = patient_state(state, None)
    rules = _table().states.get(code) if code else None
    return rules.cap_per_24h if rules else None


def strictest_cap(states: Iterable[str]) -> tuple[int, str] | None:
    """The lowest cap of any of ``states`` and the state that sets it; None if none caps."""
    caps = [(cap, code) for code in states if (cap := state_cap(code)) is not None]
    return min(caps) if caps else None


def presumes_resident(state: str) -> bool:
    """Whether the state presumes a resident from a local area code (FL, OK)."""
    rules = _table().states.get(state)
    return bool(rules and rules.presumes_resident)


@functools.lru_cache(maxsize=256)
def _holidays(code: str, year: int) -> Mapping[date, str]:
    """The state's and the federal holidays of one year, observed days included
    (the ``holidays`` package, which keeps each state's own list)."""
    _load_us_holidays()
    return dict(holidays.country_holidays("US", subdiv=code, years=year).items())


@functools.cache
def _load_us_holidays() -> None:
    """Load the holidays package's United States module by itself, before its registry
    asks for it: the registry then finds it loaded, and the package of the 250 other
    countries it would import with it (8 MB in every worker process, measured) never
    is. Anything unexpected leaves it to the registry, as before."""
    name = "holidays.countries.united_states"
    if name in sys.modules:
        return
    path = Path(holidays.__file__).parent / "countries" / "united_states.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]


# -- the table as read at run time ------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    windows: tuple[Window, ...]  # indexed by date.weekday(), Monday = 0
    cap_per_24h: int | None
    source: str = ""
    closed_on_holidays: bool = False
    presumes_resident: bool = False


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
    closed_on_holidays: StrictBool = False
    area_code_presumes_resident: StrictBool = False
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
        return _Rules(
            windows=tuple(by_day),
            cap_per_24h=self.cap_per_24h,
            source=" ".join(self.source.split()),
            closed_on_holidays=self.closed_on_holidays,
            presumes_resident=self.area_code_presumes_resident,
        )


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

    @field_validator("federal")
    @classmethod
    def _federal_has_no_state_rules(cls, value: _RulesSpec) -> _RulesSpec:
        if value.closed_on_holidays or value.area_code_presumes_resident:
            raise ValueError("closed_on_holidays and area_code_presumes_resident are state rules")
        return value

    @field_validator("states")
    @classmethod
    def _holidays_known(cls, value: dict[str, _RulesSpec]) -> dict[str, _RulesSpec]:
        _load_us_holidays()
        known = holidays.country_holidays("US").subdivisions
        for code, rules in value.items():
            if rules.closed_on_holidays and code not in known:
                raise ValueError(f"{code}: the holidays package lists no holidays for it")
        return value


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
