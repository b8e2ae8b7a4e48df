"""One row of a patient CSV: check each field, normalize it, and build the patient's record.

Problems name the row and column and say what is expected; they never repeat a phone
number, email address, name or external_id (PHI), while time zones, states, dates and
yes/no values are repeated so they can be found.

``*_consent_at`` is an ISO 8601 date or date-time. A naive value is read in the
patient's own time zone when the row has a valid one, else in UTC; a bare date means
midnight. It is required when ``*_consent`` is yes: evidence of consent must say
when. A ``no`` without a date is a refusal recorded as of the import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache, partial
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from campaigns.domain.models import CHANNELS, Channel, ConsentFact, PatientRecord
from campaigns.errors import ConfigError, Problem

# fmt: off
# The 50 states, DC, the territories, the freely associated states and military mail.
_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
    "VA", "WA", "WV", "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI", "FM", "MH", "PW", "AA",
    "AE", "AP",
})
# fmt: on
_YES, _NO = frozenset({"yes", "y", "true", "1"}), frozenset({"no", "n", "false", "0"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_TAG, _TAG_SEPARATOR = re.compile(r"[a-z0-9-]+"), re.compile(r"[;,]")
_PLAIN_TAGS = re.compile(r"[a-z0-9-]+(?:;[a-z0-9-]+)*")
# A strict subset of the local parts email-validator accepts and leaves as they are.
_PLAIN_LOCAL_PART = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")
_CASE_INSENSITIVE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_PHONE_PUNCTUATION = str.maketrans("", "", " ()-./\t")
_CONSENT_SKEW = timedelta(days=1)
_CONSENT_COLUMNS = {c: (f"{c}_consent", f"{c}_consent_at", f"{c}_consent_source") for c in CHANNELS}


def parse_row(
    row: dict[str, str], row_number: int, *, region: str
) -> PatientRecord | list[Problem]:
    """Check one CSV row (keys are column names) and build its record, or list its problems.

    ``row_number`` is the spreadsheet row: the header is row 1, the first data row is 2.
    A missing key counts as blank. ``region`` reads numbers written without +country.
    """
    problems: list[Problem] = []

    def bad(column: str, reason: str) -> None:
        problems.append(Problem(f"row {row_number}, column {column}", reason))

    values = {column: text for column, raw in row.items() if raw and (text := raw.strip())}
    value = values.get
    external_id = value("external_id")
    first_name, last_name = value("first_name"), value("last_name")
    if external_id is None:
        bad("external_id", "is blank; every row needs the clinic's own patient id")
    elif len(external_id) > 64 or not external_id.isprintable():
        bad("external_id", "must be at most 64 printable characters")
    for column, name in (("first_name", first_name), ("last_name", last_name)):
        if name is not None and len(name) > 100:
            bad(column, "is longer than 100 characters")
    if (email := value("email")) is not None and (email := _normalize_email(email)) is None:
        bad("email", "is not a valid email address; expected one like name@example.org")
    if (phone := value("phone")) is not None and (phone := _normalize_phone(phone, region)) is None:
        bad(
            "phone",
            f"is not a valid phone number for region {region}; expected a number "
            f"dialled in {region}, or + and the country code",
        )
    if (zone_name := value("timezone")) is not None:
        if (known := _zone_names().get(zone_name.lower())) is None:
            bad(
                "timezone",
                f"{echo(zone_name)} is not an IANA time zone name; expected one "
                "like America/New_York or UTC",
            )
        zone_name = known
    if (state := value("state")) is not None and (state := state.upper()) not in _STATES:
        bad("state", f"{echo(state)} is not a USPS state code; expected two letters like NY")
    tags = _parse_tags(value("tags") or "", partial(bad, "tags"))
    last_visit = _parse_date(value("last_visit"), partial(bad, "last_visit"))
    next_appointment = _parse_date(value("next_appointment"), partial(bad, "next_appointment"))
    preferred: Channel | None = None
    if (choice := (value("preferred_channel") or "").lower()) in ("sms", "email"):
        preferred = "sms" if choice == "sms" else "email"
    elif choice:
        bad("preferred_channel", f"{echo(choice)} is not sms or email; expected one or blank")
    zone: tzinfo = ZoneInfo(zone_name) if zone_name else UTC
    consents = tuple(fact for c in CHANNELS if (fact := _parse_consent(c, value, bad, zone)))
    if problems or external_id is None:
        return problems
    return PatientRecord(
        external_id=external_id,
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        timezone=zone_name,
        state=state,
        tags=tags,
        last_visit=last_visit,
        next_appointment=next_appointment,
        preferred_channel=preferred,
        consents=consents,
    )


@cache
def country_code(region: str) -> int:
    """The calling code of ``region``; ConfigError if phonenumbers does not know it."""
    if (code := int(phonenumbers.country_code_for_region(region))) == 0:
        raise ConfigError(
            f"MERIDIAN_DEFAULT_REGION: {region!r} is not a region phonenumbers "
            "knows; use a two-letter ISO 3166 code such as US"
        )
    return code


def echo(text: str) -> str:
    """A value as a problem repeats it: quoted, and cut short when long."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _parse_consent(
    channel: Channel,
    value: Callable[[str], str | None],
    bad: Callable[[str, str], None],
    zone: tzinfo,
) -> ConsentFact | None:
    column, at_column, source_column = _CONSENT_COLUMNS[channel]
    said, when, source = value(column), value(at_column), value(source_column)
    word = None if said is None else said.lower()
    granted = None if word is None else word in _YES
    if said is not None and not granted and word not in _NO:
        granted = None
        bad(
            column,
            f"{echo(said)} is not yes or no; expected yes/no/true/false/y/n/1/0, or "
            "blank for no evidence",
        )
    at = None
    if when is None:
        if granted:
            bad(
                at_column,
                f"is blank but {column} is yes; evidence of consent must say "
                "when it was given (ISO 8601, e.g. 2025-10-15)",
            )
        elif granted is False:
            # A refusal needs no date: it is recorded as of now, so it wins over any
            # earlier consent (err toward the patient).
            at = datetime.now(UTC)
    elif (at := _parse_instant(when, zone)) is None:
        bad(
            at_column,
            f"{echo(when)} is not an ISO 8601 date or date-time; expected e.g. "
            "2025-10-15 or 2025-10-15T09:30:00-04:00",
        )
    # Real time, not Meridian's clock: the evidence was given in the real world, and
    # a rehearsal's shifted clock must not refuse a consent given today.
    elif at > datetime.now(UTC) + _CONSENT_SKEW:
        bad(at_column, f"{echo(when)} is in the future; expected when consent was given")
    elif said is None:
        bad(
            at_column,
            f"is filled in but {column} is blank; fill in {column} (yes or no) or clear the date",
        )
    if source is not None and len(source) > 32:
        bad(source_column, "is longer than 32 characters")
    if granted is None or at is None:
        return None
    return ConsentFact(channel=channel, granted=granted, at=at, source=source or "import")


def _parse_instant(text: str, zone: tzinfo) -> datetime | None:
    if not _INSTANT.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def _parse_date(text: str | None, bad: Callable[[str], None]) -> date | None:
    if text is None:
        return None
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    bad(f"{echo(text)} is not a date in ISO 8601 form; expected YYYY-MM-DD, e.g. 2025-10-15")
    return None


def _parse_tags(text: str, bad: Callable[[str], None]) -> tuple[str, ...]:
    if len(text) <= 498 and _PLAIN_TAGS.fullmatch(text):  # already clean; ";a;b;" fits 500
        return tuple(dict.fromkeys(text.split(";")))
    tags: dict[str, None] = {}  # ordered and deduplicated
    for number, piece in enumerate(_TAG_SEPARATOR.split(text), start=1):
        if (tag := piece.strip().lower()) and not _TAG.fullmatch(tag):
            odd = " ".join(
                repr(c) for c in sorted(set(tag) - set("abcdefghijklmnopqrstuvwxyz0123456789-"))
            )
            bad(
                f"tag {number} has characters other than a-z, 0-9 and - ({odd}); "
                "separate tags with ;"
            )
        elif tag:
            tags[tag] = None
    if sum(len(tag) + 1 for tag in tags) + 1 > 500:
        bad("are longer than 500 characters in all")
    return tuple(tags)


def _normalize_email(text: str) -> str | None:
    """email-validator's normalized form, or None; plain addresses reuse a domain's check."""
    local, at, domain = text.rpartition("@")
    if (
        at
        and len(text) <= 200
        and len(local) <= 64
        and _PLAIN_LOCAL_PART.fullmatch(local)
        and local.lower() not in _CASE_INSENSITIVE_MAILBOXES
    ):
        return None if (normal := _normalize_domain(domain)) is None else f"{local}@{normal}"
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


@lru_cache(maxsize=4096)
def _normalize_domain(domain: str) -> str | None:
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def _normalize_phone(text: str, region: str) -> str | None:
    """E.164, or None. Plain NANP numbers skip phonenumbers' slow parse, never its rules."""
    digits = text.translate(_PHONE_PUNCTUATION)
    if digits.startswith("+1"):
        digits = digits[2:]
    elif country_code(region) != 1:
        digits = ""
    elif len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10 and digits.isascii() and digits.isdigit() and digits[0] not in "01":
        # E.164 of a +1 number is "+1" and its ten national digits.
        return "+1" + digits if _valid_nanp(digits) else None
    return _parse_phone(text, region)


# Households share a number, and a file repeats it in one spelling or another: each
# distinct number is checked once per import (forget() empties these caches after).
_PHONES_KEPT = 1 << 16


@lru_cache(maxsize=_PHONES_KEPT)
def _valid_nanp(digits: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
    return bool(phonenumbers.is_valid_number(number))


@lru_cache(maxsize=_PHONES_KEPT)
def _parse_phone(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def forget() -> None:
    """Empty the caches of numbers and domains checked: no PHI outlives an import."""
    _valid_nanp.cache_clear()
    _parse_phone.cache_clear()
    _normalize_domain.cache_clear()


@cache
def _zone_names() -> dict[str, str]:
    """IANA names by lower-case spelling; legacy names without a '/' (EST5EDT) are out."""
    return {n.lower(): n for n in available_timezones() if "/" in n or n == "UTC"}
