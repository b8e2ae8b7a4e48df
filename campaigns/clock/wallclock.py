"""The patient's own clock: time zone, US state, quiet-hours window and due time.

Every rule here is read in the *recipient's* local time (COMPLIANCE.md, "where the
recipient is"): the patient's own zone, else the zone of the phone's area code,
else the clinic's. The window table (federal 08:00-21:00 narrowed by state rules)
and the frequency caps live in ``campaigns/data/quiet_hours.yaml`` so counsel can
change them without a code change.

Wall-clock times are turned into instants by one rule, used everywhere so that
``is_allowed`` and ``next_allowed`` can never disagree:

- a wall time that happens twice (fall back) means its first instance (fold=0);
- a wall time that never happens (spring forward) means the first instant after
  the gap, which is what cron does with jobs the gap skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from phonenumbers import timezone as phone_timezones

__all__ = [
    "Window",
    "is_allowed",
    "local_due",
    "next_allowed",
    "patient_state",
    "patient_zone",
    "resolve_wall_time",
    "state_cap",
    "state_from_description",
    "window_for",
]

_TABLE_PACKAGE = "campaigns"
_TABLE_PATH = "data/quiet_hours.yaml"
_TABLE_NAME = "campaigns/data/quiet_hours.yaml"

# Codes patients.py accepts, with the names phonenumbers' English geocoder gives
# area codes ("Florida", "Los Angeles, CA", "Washington State").
_USPS_NAMES = """
AL Alabama; AK Alaska; AZ Arizona; AR Arkansas; CA California; CO Colorado;
CT Connecticut; DE Delaware; FL Florida; GA Georgia; HI Hawaii; ID Idaho; IL Illinois;
IN Indiana; IA Iowa; KS Kansas; KY Kentucky; LA Louisiana; ME Maine; MD Maryland;
MA Massachusetts; MI Michigan; MN Minnesota; MS Mississippi; MO Missouri; MT Montana;
NE Nebraska; NV Nevada; NH New Hampshire; NJ New Jersey; NM New Mexico; NY New York;
NC North Carolina; ND North Dakota; OH Ohio; OK Oklahoma; OR Oregon; PA Pennsylvania;
RI Rhode Island; SC South Carolina; SD South Dakota; TN Tennessee; TX Texas; UT Utah;
VT Vermont; VA Virginia; WA Washington; WA Washington State; WV West Virginia;
WI Wisconsin; WY Wyoming; DC District of Columbia; DC Washington D.C.; DC Washington DC;
AS American Samoa; GU Guam; MP Northern Mariana Islands; PR Puerto Rico;
VI U.S. Virgin Islands; VI US Virgin Islands; FM Micronesia; MH Marshall Islands;
PW Palau; AA Armed Forces Americas; AE Armed Forces Europe; AP Armed Forces Pacific
"""
_STATE_BY_NAME = {
    name.casefold(): code
    for code, name in (entry.strip().split(" ", 1) for entry in _USPS_NAMES.split(";"))
}
_USPS_CODES = frozenset(_STATE_BY_NAME.values())
# NANP regions that are US states or territories; for the territories the region
# code is the USPS code. Without this check a number in the country of Georgia
# (geocoded "Georgia") would come out as GA.
_US_TERRITORY_REGIONS = frozenset({"AS", "GU", "MP", "PR", "VI"})
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SELECTORS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    **{day: (index,) for index, day in enumerate(_DAYS)},
}
# Quarter hours over two years: enough to see any difference between zones whose
# transitions fall on different days or at different times of day.
_AGREE_STEP = timedelta(minutes=15)
_AGREE_SAMPLES = 2 * 366 * 24 * 4


# -- time zone and state ---------------------------------------------------------


# Pure functions of a few strings, asked for every message: cached per process.
@functools.lru_cache(maxsize=1 << 16)
def patient_zone(timezone: str | None, phone_e164: str | None, fallback: str) -> ZoneInfo:
    """The zone a patient's messages are timed in.

    The patient's own zone wins; else the zone of the phone's area code, when
    phonenumbers gives exactly one or all its candidates keep the same clock; else
    ``fallback`` (the clinic's). A zone name that is not an IANA zone raises
    ValueError: guessing would risk texting someone at night.
    """
    if timezone and timezone.strip():
        return _zone(timezone.strip(), "patient time zone")
    if phone_e164:
        derived = _zone_from_phone(phone_e164)
        if derived is not None:
            return derived
    return _zone(fallback, "fallback time zone")


@functools.lru_cache(maxsize=1 << 16)
def patient_state(state: str | None, phone_e164: str | None) -> str | None:
    """The patient's two-letter USPS code, else the area code's state, else None.

    ``state`` may be a code in any case or a full name ("Texas"); anything else
    raises ValueError, since the state decides the legal sending window.
    """
    if state and state.strip():
        text = state.strip()
        code = text.upper() if text.upper() in _USPS_CODES else _STATE_BY_NAME.get(text.casefold())
        if code is None:
            raise ValueError(
                f"state {text!r} is not a USPS state code; expected two letters like NY"
            )
        return code
    if phone_e164:
        return _state_from_phone(phone_e164)
    return None


def _zone(name: str, what: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{what} {name!r} is not an IANA time zone; expected a name like 'America/New_York'"
        ) from None


def _parse_phone(phone_e164: str) -> Any | None:
    try:
        return phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        # The phone is only a proxy here; patients.py is where a bad number is reported.
        return None


def _zone_from_phone(phone_e164: str) -> ZoneInfo | None:
    number = _parse_phone(phone_e164)
    if number is None:
        return None
    names = tuple(
        sorted(
            {
                str(name)
                for name in phone_timezones.time_zones_for_number(number)
                if name != phone_timezones.UNKNOWN_TIMEZONE
            }
        )
    )
    if not names or (len(names) > 1 and not _zones_agree(names, datetime.now(UTC).year)):
        return None
    try:
        return ZoneInfo(names[0])
    except (ZoneInfoNotFoundError, ValueError):
        return None  # phonenumbers knows a zone this machine's tzdata lacks


@functools.lru_cache(maxsize=64)
def _zones_agree(names: tuple[str, ...], year: int) -> bool:
    """Whether the zones show the same clock at every sampled instant of two years."""
    try:
        zones = [ZoneInfo(name) for name in names]
    except (ZoneInfoNotFoundError, ValueError):
        return False
    start = datetime(year, 1, 1, tzinfo=UTC)
    for step in range(_AGREE_SAMPLES):
        instant = start + step * _AGREE_STEP
        if len({instant.astimezone(zone).utcoffset() for zone in zones}) > 1:
            return False
    return True


def _state_from_phone(phone_e164: str) -> str | None:
    number = _parse_phone(phone_e164)
    if number is None:
        return None
    region = phonenumbers.region_code_for_number(number)
    if region in _US_TERRITORY_REGIONS:
        return str(region)
    if region != "US":
        return None
    # The geocoder's answer, from a table of its US prefixes (scripts/area_codes.py):
    # the geocoder itself costs about 100 MB in every process that imports it.
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN or not phonenumbers.is_number_type_geographical(
        kind, number.country_code
    ):
        return None  # the geocoder names no area for these
    digits = phonenumbers.national_significant_number(number)
    table = _us_prefix_states()
    for end in range(len(digits), 0, -1):
        state = table.get(digits[:end])
        if state is not None:
            return state or None
    return None


def state_from_description(description: str) -> str | None:
    """The USPS code in a geocoder description: "Los Angeles, CA" or "California"."""
    description = description.strip()
    _, comma, tail = description.rpartition(",")
    if comma and tail.strip().upper() in _USPS_CODES:
        return tail.strip().upper()
    return _STATE_BY_NAME.get(description.casefold())


_AREA_CODES_PATH = "data/us_area_codes.csv"


@functools.cache
def _us_prefix_states() -> dict[str, str]:
    """Prefix (national digits) -> USPS code, "" where the geocoder names no state."""
    text = resources.files(_TABLE_PACKAGE).joinpath(_AREA_CODES_PATH).read_text("utf-8")
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(row.split(",", 1) for row in rows[1:])


# -- the window table --------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Allowed local send times on one day; ``closes`` is exclusive.

    ``opens == closes`` means no sending that day.
    """

    opens: time
    closes: time

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("a Window holds wall-clock times; drop the tzinfo")
        if self.opens > self.closes:
            raise ValueError(f"window opens at {self.opens} after it closes at {self.closes}")

    @property
    def is_closed(self) -> bool:
        return self.opens >= self.closes


_CLOSED = Window(time(0), time(0))


@dataclass(frozen=True)
class _Rules:
    windows: tuple[Window, ...]  # indexed by date.weekday(), Monday = 0
    cap_per_24h: int | None


@dataclass(frozen=True)
class _Table:
    federal: _Rules
    states: Mapping[str, _Rules]


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


@functools.cache
def _table() -> _Table:
    text = resources.files(_TABLE_PACKAGE).joinpath(_TABLE_PATH).read_text(encoding="utf-8")
    return _parse_table(yaml.safe_load(text))


def _parse_table(data: Any) -> _Table:
    if not isinstance(data, dict) or data.get("version") != 1:
        raise _table_error("(top)", "expected a mapping with 'version: 1'")
    states = data.get("states") or {}
    if not isinstance(states, dict):
        raise _table_error("states", "expected a mapping of USPS code -> rules")
    parsed: dict[str, _Rules] = {}
    for code, entry in states.items():
        if not isinstance(code, str) or code not in _USPS_CODES:
            raise _table_error(f"states.{code}", "is not a USPS state code")
        parsed[code] = _parse_rules(entry, f"states.{code}")
    return _Table(federal=_parse_rules(data.get("federal"), "federal"), states=parsed)


def _parse_rules(entry: Any, where: str) -> _Rules:
    if not isinstance(entry, dict):
        raise _table_error(where, "expected a mapping with 'windows' and 'source'")
    unknown = set(entry) - {"name", "windows", "cap_per_24h", "source", "note"}
    if unknown:
        raise _table_error(where, f"unknown keys {sorted(map(str, unknown))}")
    if not entry.get("source"):
        raise _table_error(f"{where}.source", "every rule must cite its source")
    cap = entry.get("cap_per_24h")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise _table_error(f"{where}.cap_per_24h", f"expected a whole number >= 1, got {cap!r}")
    windows = entry.get("windows")
    if not isinstance(windows, dict) or not windows:
        raise _table_error(f"{where}.windows", "expected a mapping of day selector -> window")
    by_day: list[Window | None] = [None] * 7
    # Apply the least specific selectors first so that a named day overrides them.
    for selector in sorted(windows, key=lambda s: len(_SELECTORS.get(str(s), ())), reverse=True):
        if selector not in _SELECTORS:
            raise _table_error(
                f"{where}.windows.{selector}",
                f"unknown day selector; use one of {list(_SELECTORS)}",
            )
        window = _parse_window(windows[selector], f"{where}.windows.{selector}")
        for day in _SELECTORS[selector]:
            by_day[day] = window
    missing = [_DAYS[day] for day, window in enumerate(by_day) if window is None]
    if missing:
        raise _table_error(f"{where}.windows", f"no window for {missing}; add them or 'all'")
    return _Rules(windows=tuple(w for w in by_day if w is not None), cap_per_24h=cap)


def _parse_window(value: Any, where: str) -> Window:
    if value == "closed":
        return _CLOSED
    if not isinstance(value, dict) or set(value) != {"opens", "closes"}:
        raise _table_error(where, 'expected {opens: "HH:MM", closes: "HH:MM"} or \'closed\'')
    opens, closes = (_parse_time(value[key], f"{where}.{key}") for key in ("opens", "closes"))
    if opens >= closes:
        raise _table_error(where, f"opens {opens:%H:%M} is not before closes {closes:%H:%M}")
    return Window(opens, closes)


def _parse_time(value: Any, where: str) -> time:
    if not isinstance(value, str):
        # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260.
        raise _table_error(where, f'expected a quoted "HH:MM" string, got {value!r}')
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise _table_error(where, f'{value!r} is not a time like "09:00"') from None


def _table_error(where: str, problem: str) -> ValueError:
    return ValueError(f"{_TABLE_NAME}: {where}: {problem}")


# -- instants ------------------------------------------------------------------------


def resolve_wall_time(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which clocks in ``zone`` show ``wall`` on ``day``.

    Ambiguous (fall back): the first instance. Nonexistent (spring forward): the
    first instant after the gap.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap fold=1 reads the wall time with the offset after the transition and
    # fold=0 with the one before, so the transition lies between the two readings.
    # Zone transitions fall on whole seconds: bisect on them.
    before = int(local.replace(fold=1).astimezone(UTC).timestamp()) - 1
    after = int(instant.timestamp()) + 1
    old_offset = _offset_at(before, zone)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset_at(middle, zone) == old_offset:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def _offset_at(timestamp: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()


@functools.lru_cache(maxsize=4096)
def _open_span(day: date, zone: ZoneInfo, state: str | None) -> tuple[datetime, datetime] | None:
    """The instants between which sending is allowed on local ``day``, if any."""
    window = window_for(state, day)
    if window.is_closed:
        return None
    opens = resolve_wall_time(day, window.opens, zone)
    closes = resolve_wall_time(day, window.closes, zone)
    # A gap can swallow a whole day (Pacific/Apia skipped 2011-12-30).
    if opens >= closes or opens.astimezone(zone).date() != day:
        return None
    return opens, closes


def is_allowed(instant: datetime, zone: ZoneInfo, state: str | None) -> bool:
    """Whether ``instant`` falls inside the window of its local day in ``zone``."""
    _require_aware(instant)
    span = _open_span(instant.astimezone(zone).date(), zone, state)
    return span is not None and span[0] <= instant < span[1]


def next_allowed(instant: datetime, zone: ZoneInfo, state: str | None) -> datetime:
    """The earliest instant >= ``instant`` inside its local day's window, in UTC."""
    _require_aware(instant)
    first_day = instant.astimezone(zone).date()
    # Two weeks covers any weekly table, even one with closed days.
    for offset in range(14):
        span = _open_span(first_day + timedelta(days=offset), zone, state)
        if span is not None and max(span[0], instant) < span[1]:
            return max(span[0], instant).astimezone(UTC)
    raise ValueError(f"{_TABLE_NAME}: no open window in two weeks for state {state!r}")


def local_due(d: date, send_time: time, zone: ZoneInfo, state: str | None) -> datetime:
    """When the patient gets occurrence ``d``: ``send_time`` on their clock, moved
    forward past a DST gap and then into the allowed window; in UTC. Never earlier
    than the wall time, never dropped."""
    return next_allowed(resolve_wall_time(d, send_time, zone), zone, state)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {instant.isoformat()}")
