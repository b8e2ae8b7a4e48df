"""Where a patient is: their time zone and US state, from stored values or the phone.

Every rule is read in the *recipient's* local time (COMPLIANCE.md, "where the
recipient is"): the patient's own zone, else the zone of the phone's area code,
else the clinic's; the patient's own state, else the state of the phone's area code.

The state of an area code comes from ``campaigns/data/us_area_codes.csv``, a table
generated from phonenumbers' geocoder by ``scripts/area_codes.py``: the geocoder
itself costs about 100 MB in every process that imports it. At run time the shipped
table is the source of truth; ``python scripts/area_codes.py --check`` says when a
newer phonenumbers release has moved a prefix and the table should be regenerated.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from campaigns.errors import ConfigError, InputError

__all__ = [
    "AREA_CODES_FILE",
    "USPS_CODES",
    "area_code_state",
    "parse_area_codes",
    "patient_state",
    "patient_zone",
    "state_from_description",
]

AREA_CODES_FILE = "campaigns/data/us_area_codes.csv"
_AREA_CODES_RESOURCE = "data/us_area_codes.csv"
# NPA-NXX: the finest level at which the geocoder names US areas.
_LONGEST_PREFIX = 6

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
USPS_CODES = frozenset(_STATE_BY_NAME.values())
# NANP regions that are US states or territories; for the territories the region
# code is the USPS code. Without this check a number in the country of Georgia
# (geocoded "Georgia") would come out as GA.
_US_TERRITORY_REGIONS = frozenset({"AS", "GU", "MP", "PR", "VI"})
# Quarter hours over two years: enough to see any difference between zones whose
# transitions fall on different days or at different times of day.
_AGREE_STEP = timedelta(minutes=15)
_AGREE_SAMPLES = 2 * 366 * 24 * 4


# Pure functions of a few strings, asked for every message: cached per process.
@functools.lru_cache(maxsize=1 << 16)
def patient_zone(
    timezone: str | None, phone_e164: str | None, fallback: str, *, year: int
) -> ZoneInfo:
    """The zone a patient's messages are timed in.

    The patient's own zone wins; else the zone of the phone's area code, when
    phonenumbers gives exactly one or all its candidates keep the same clock in
    ``year`` (Meridian's, from ``svc.now()``) and the next; else
    ``fallback`` (the clinic's). A patient zone that is not an IANA zone raises
    InputError (a bad fallback, ConfigError): guessing would risk texting someone
    at night.
    """
    if timezone and timezone.strip():
        return _zone(timezone.strip(), "patient time zone", InputError)
    if phone_e164:
        derived = _zone_from_phone(phone_e164, year)
        if derived is not None:
            return derived
    return _zone(fallback, "fallback time zone", ConfigError)


@functools.lru_cache(maxsize=1 << 16)
def patient_state(state: str | None, phone_e164: str | None) -> str | None:
    """The patient's two-letter USPS code, else the area code's state, else None.

    ``state`` may be a code in any case or a full name ("Texas"); anything else
    raises InputError, since the state decides the legal sending window.
    """
    if state and state.strip():
        text = state.strip()
        code = text.upper() if text.upper() in USPS_CODES else _STATE_BY_NAME.get(text.casefold())
        if code is None:
            raise InputError(
                f"state {text!r} is not a USPS state code; expected two letters like NY"
            )
        return code
    if phone_e164:
        return _state_from_phone(phone_e164)
    return None


def state_from_description(description: str) -> str | None:
    """The USPS code in a geocoder description: "Los Angeles, CA" or "California"."""
    description = description.strip()
    _, comma, tail = description.rpartition(",")
    if comma and tail.strip().upper() in USPS_CODES:
        return tail.strip().upper()
    return _STATE_BY_NAME.get(description.casefold())


def area_code_state(national_digits: str) -> str | None:
    """The shipped table's state for a US number's national digits: longest prefix wins."""
    table = _area_codes()
    for end in range(min(len(national_digits), _LONGEST_PREFIX), 0, -1):
        state = table.get(national_digits[:end])
        if state is not None:
            return state or None
    return None


def parse_area_codes(text: str, origin: str = AREA_CODES_FILE) -> dict[str, str]:
    """Prefix (national digits) -> USPS code, "" where no state; ConfigError if malformed."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line and line[0] != "#"]
    if not lines or lines[0][1] != "prefix,state":
        raise ConfigError(f"{origin}: the first line after the comments must be 'prefix,state'")
    table: dict[str, str] = {}
    for n, line in lines[1:]:
        where = f"{origin}: line {n}"
        prefix, comma, state = line.partition(",")
        if not comma or "," in state:
            raise ConfigError(f"{where}: expected 'prefix,state', got {line!r}")
        if not (prefix.isascii() and prefix.isdigit() and 1 <= len(prefix) <= _LONGEST_PREFIX):
            raise ConfigError(f"{where}: prefix {prefix!r} is not 1 to 6 digits")
        if state and state not in USPS_CODES:
            raise ConfigError(f"{where}: state {state!r} is not a USPS code (or empty for none)")
        if prefix in table:
            raise ConfigError(f"{where}: prefix {prefix} appears twice")
        table[prefix] = state
    return table


@functools.cache
def _area_codes() -> dict[str, str]:
    text = resources.files("campaigns").joinpath(_AREA_CODES_RESOURCE).read_text("utf-8")
    return parse_area_codes(text)


def _zone(name: str, what: str, error: type[InputError] | type[ConfigError]) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise error(
            f"{what} {name!r} is not an IANA time zone; expected a name like 'America/New_York'"
        ) from None


def _parse_phone(phone_e164: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        # The phone is only a proxy here; patients.py is where a bad number is reported.
        return None


def _zone_from_phone(phone_e164: str, year: int) -> ZoneInfo | None:
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
    if not names or (len(names) > 1 and not _zones_agree(names, year)):
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
    kind = phonenumbers.number_type(number)
    # Region US means country code 1.
    if kind == phonenumbers.PhoneNumberType.UNKNOWN or not phonenumbers.is_number_type_geographical(
        kind, 1
    ):
        return None  # the geocoder names no area for these
    return area_code_state(phonenumbers.national_significant_number(number))
