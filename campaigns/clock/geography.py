"""Where a patient is: their time zone and US state, from stored values or the phone.

Every rule is read in the *recipient's* local time (COMPLIANCE.md, "where the
recipient is"). This module reads single facts: a stored zone or state, the area of
a phone number (``phone_area``: its state and zones), a state's zones. Sending
combines them in ``campaigns.clock.whereabouts`` into every place the patient might
be; ``patient_state`` reads one state (a stored one normalised, else the phone's).

The state of an area code comes from ``campaigns/data/us_area_codes.csv``, a table
generated from phonenumbers' geocoder by ``scripts/area_codes.py``: the geocoder
itself costs about 100 MB in every process that imports it. At run time the shipped
table is the source of truth; ``python scripts/area_codes.py --check`` says when a
newer phonenumbers release has moved a prefix and the table should be regenerated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import us
from phonenumbers import timezone as phone_timezones

from campaigns.clock import phone_prefix
from campaigns.errors import ConfigError, InputError

__all__ = [
    "AREA_CODES_FILE",
    "USPS_CODES",
    "PhoneArea",
    "area_code_state",
    "parse_area_codes",
    "patient_state",
    "phone_area",
    "state_from_description",
    "state_zones",
    "zones_agree",
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
_PLACED_KINDS = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)
# Quarter hours over two years: enough to see any difference between zones whose
# transitions fall on different days or at different times of day.
_AGREE_STEP = timedelta(minutes=15)
_AGREE_SAMPLES = 2 * 366 * 24 * 4


# Pure functions of a few strings, asked for every message: cached per process.
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


@dataclass(frozen=True, slots=True)
class PhoneArea:
    """What a phone number says about where its owner is: its area code, the state
    or territory of that code (None when the table names none) and the zones
    phonenumbers gives the number (empty when it knows none)."""

    area_code: str
    state: str | None
    zones: tuple[str, ...]


# One instance of each distinct area (a few hundred), however many keys the cache
# below holds: each entry is then its key and a reference.
_AREAS: dict[PhoneArea, PhoneArea] = {}


def phone_area(phone_e164: str | None) -> PhoneArea | None:
    """The area a NANP number belongs to; None for other numbers, non-geographic
    ones (toll-free, 5XX) and anything that does not parse."""
    if not phone_e164:
        return None
    # Cached by the leading digits that decide the answer (campaigns.clock.phone_prefix),
    # not by the number: a clinic's patients share a few thousand entries.
    return _phone_area(
        phone_prefix.area_key(phone_e164, phone_prefix.prefix_digits(_LONGEST_PREFIX))
    )


@functools.lru_cache(maxsize=1 << 14)
def _phone_area(key: str) -> PhoneArea | None:
    number = _parse_phone(phone_prefix.representative(key))
    if number is None or number.country_code != 1 or not _geographical(number):
        return None
    national = phonenumbers.national_significant_number(number)
    # Known geographical: the type (phonenumbers' dearest question) is not asked again.
    state = _state_of(number, geographical=True)
    # The prefix lookup itself: time_zones_for_number answers a MOBILE-typed number
    # (American Samoa's, Guam's) with every zone of the NANP.
    zones = _known_zones(phone_timezones.time_zones_for_geographical_number(number))
    if state is None and not zones:
        return None
    area = PhoneArea(area_code=national[:3], state=state, zones=zones)
    return _AREAS.setdefault(area, area)


@functools.cache
def state_zones(code: str) -> tuple[str, ...]:
    """Every zone of a US state or territory (the ``us`` package's table); empty
    for codes it does not know (the armed forces' AA, AE, AP)."""
    found = us.states.lookup(code, field="abbr")
    return _known_zones(found.time_zones) if found is not None else ()


def zones_agree(names: tuple[str, ...], year: int) -> bool:
    """Whether the zones keep the same clock all ``year`` (Meridian's) and the next."""
    return len(set(names)) <= 1 or _zones_agree(tuple(sorted(set(names))), year)


def checked_zone(name: str) -> ZoneInfo:
    """A stored IANA zone name as a zone; InputError when it is not one."""
    return _zone(name, "time zone", InputError)


def _known_zones(names: Iterable[str]) -> tuple[str, ...]:
    """The IANA zones among ``names`` this machine's tzdata has, sorted, once each."""
    known = set()
    for name in names:
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # phonenumbers' "Etc/Unknown", or a zone newer than this tzdata
        known.add(str(name))
    return tuple(sorted(known))


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


def area_codes_by_state() -> dict[str, tuple[str, ...]]:
    """Every three-digit area code of the shipped table under its state, in order."""
    by_state: dict[str, list[str]] = {}
    for prefix, state in _area_codes().items():
        if len(prefix) == 3 and state:
            by_state.setdefault(state, []).append(prefix)
    return {state: tuple(sorted(codes)) for state, codes in sorted(by_state.items())}


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


_NANP_E164 = re.compile(r"\+1[2-9]\d{9}")


def _parse_phone(phone_e164: str) -> phonenumbers.PhoneNumber | None:
    if _NANP_E164.fullmatch(phone_e164):
        # What parse() makes of a NANP number in E.164, the ledger's form, at a
        # tenth of its cost (it was a sixth of a fan-out's work).
        return phonenumbers.PhoneNumber(country_code=1, national_number=int(phone_e164[2:]))
    try:
        return phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        # The phone is only a proxy here; patients.py is where a bad number is reported.
        return None


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


def _geographical(number: phonenumbers.PhoneNumber) -> bool:
    # In the NANP a mobile number belongs to its area code's place too; phonenumbers
    # types American Samoa's and Guam's mobiles MOBILE, which it calls non-geographic.
    return phonenumbers.number_type(number) in _PLACED_KINDS


def _state_from_phone(phone_e164: str) -> str | None:
    number = _parse_phone(phone_e164)
    return None if number is None else _state_of(number)


def _state_of(number: phonenumbers.PhoneNumber, *, geographical: bool = False) -> str | None:
    region = phonenumbers.region_code_for_number(number)
    if region in _US_TERRITORY_REGIONS:
        return str(region)
    if region != "US":
        return None
    if not (geographical or _geographical(number)):
        return None  # the geocoder names no area for these
    return area_code_state(phonenumbers.national_significant_number(number))
