"""Patient CSV import: check every row, then upsert the good ones in one transaction.

The file is read once and never held in memory: good rows go to the store in
batches, which it upserts by external_id in one transaction, while every bad row's
problems are kept (with each external_id's first row, to find duplicates). If a row
is bad and ``skip_invalid`` is off, the scan still reads to the end to report every
bad row, then raises, so the transaction rolls back and nothing is written. A file
that changes while it is read aborts the transaction too.

Row numbers are what a spreadsheet shows: the header is row 1, so the first data row
is row 2, and a quoted value spanning lines is still one row. Blank rows are ignored
but keep their number. Problems name the row and column and say what is expected;
they never repeat a phone number, email address, name or external_id (PHI), while
time zones, states, dates and yes/no values are repeated so they can be found.

``*_consent_at`` is an ISO 8601 date or date-time. A naive value is read in the
patient's own time zone when the row has a valid one, else in UTC; a bare date means
midnight. It is required when ``*_consent`` is yes or no: evidence must say when.
"""

from __future__ import annotations

import csv
import difflib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from campaigns.domain.models import CHANNELS, Channel, ConsentFact, PatientRecord
from campaigns.errors import ConfigError, InputError, Problem

logger = logging.getLogger(__name__)

# fmt: off
REQUIRED_COLUMNS: tuple[str, ...] = (
    "external_id", "first_name", "last_name", "email", "phone", "timezone", "state", "tags",
    "last_visit", "next_appointment", "sms_consent", "sms_consent_at", "sms_consent_source",
    "email_consent", "email_consent_at", "email_consent_source",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("preferred_channel",)
# The 50 states, DC, the territories, the freely associated states and military mail.
_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ",
    "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT",
    "VA", "WA", "WV", "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI", "FM", "MH", "PW", "AA",
    "AE", "AP",
})
# fmt: on
_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
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
_TO_UTF8 = "save it as UTF-8 (in Excel: Save As > CSV UTF-8) and import it again"


class PatientStore(Protocol):
    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int]:
        """Upsert every batch by external_id in ONE transaction (rolled back when dry_run).

        Returns (inserted, updated). An exception raised while iterating ``batches``
        must roll the transaction back.
        """
        ...


@dataclass(frozen=True)
class SkippedRow:
    """A bad row that ``skip_invalid`` left out, and why."""

    row: int
    problems: tuple[Problem, ...]


@dataclass
class ImportReport:
    """What an import did. ``rows`` counts non-blank data rows; ``valid`` the good ones."""

    file: str
    rows: int
    valid: int
    inserted: int
    updated: int
    skipped: list[SkippedRow]
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        done = "would insert {}, would update {}" if self.dry_run else "inserted {}, updated {}"
        line = f"{self.file}: {_plural(self.rows, 'row')}, {self.valid} valid; " + done.format(
            self.inserted, self.updated
        )
        lines = [line + (" (dry run: nothing was written)" if self.dry_run else "")]
        if self.skipped:
            rows = _ranges([s.row for s in self.skipped])
            lines.append(f"skipped {_plural(len(self.skipped), 'bad row')}: {rows}")
            lines.extend(f"  {p}" for s in self.skipped for p in s.problems)
        return "\n".join(lines)


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
                f"{_echo(zone_name)} is not an IANA time zone name; expected one "
                "like America/New_York or UTC",
            )
        zone_name = known
    if (state := value("state")) is not None and (state := state.upper()) not in _STATES:
        bad("state", f"{_echo(state)} is not a USPS state code; expected two letters like NY")
    tags = _parse_tags(value("tags") or "", partial(bad, "tags"))
    last_visit = _parse_date(value("last_visit"), partial(bad, "last_visit"))
    next_appointment = _parse_date(value("next_appointment"), partial(bad, "next_appointment"))
    preferred: Channel | None = None
    if (choice := (value("preferred_channel") or "").lower()) in ("sms", "email"):
        preferred = "sms" if choice == "sms" else "email"
    elif choice:
        bad("preferred_channel", f"{_echo(choice)} is not sms or email; expected one or blank")
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


def import_patients(
    path: Path,
    store: PatientStore,
    *,
    region: str = "US",
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor: str = "cli",
    batch_size: int = 1000,
) -> ImportReport:
    """Import a patient CSV: check every row, then upsert the good ones by external_id.

    Raises InputError listing every bad row (spreadsheet row numbers: the header is
    row 1, the first data row is 2) and imports nothing, unless ``skip_invalid``: then
    the good rows are imported and the report lists exactly the rows skipped.
    """
    _country_code(region)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    scan = _Scan(path, region, batch_size, all_or_nothing=not skip_invalid)
    inserted, updated = store.import_batches(scan.batches(), dry_run=dry_run, actor=actor)
    bad = scan.bad
    skipped = [SkippedRow(number, tuple(bad[number])) for number in sorted(bad)]
    rows = scan.rows
    report = ImportReport(str(path), rows, rows - len(bad), inserted, updated, skipped, dry_run)
    logger.info("patient import by %s: %s", actor, report.summary().partition("\n")[0])
    return report


class _Scan:
    """One pass over the file: good rows out in batches, every bad row's problems kept.

    The store writes the batches inside one transaction. At the first bad row of an
    all-or-nothing import the batches stop, but the scan reads on to report every
    bad row, then raises, so the store rolls back and nothing is imported. A file
    that changed while it was read raises too.
    """

    def __init__(self, path: Path, region: str, size: int, *, all_or_nothing: bool) -> None:
        self.path, self.region, self.size = path, region, size
        self.all_or_nothing = all_or_nothing
        self.rows = 0
        self.bad: dict[int, list[Problem]] = {}

    def batches(self) -> Iterator[list[PatientRecord]]:
        path = self.path
        before = _fingerprint(path)
        first_row_of: dict[str, int] = {}
        batch: list[PatientRecord] = []
        for number, row, problems in _rows(path):
            self.rows += 1
            record = None if problems else parse_row(row, number, region=self.region)
            if isinstance(record, list):
                problems = record
            external_id = (row.get("external_id") or "").strip()
            if external_id and (first := first_row_of.setdefault(external_id, number)) != number:
                reason = f"repeats the external_id of row {first}; each patient must appear once"
                problems.append(Problem(f"row {number}, column external_id", reason))
            if problems:
                self.bad[number] = problems
                continue
            if isinstance(record, PatientRecord) and not (self.all_or_nothing and self.bad):
                batch.append(record)
                if len(batch) >= self.size:
                    yield batch
                    batch = []
        if _fingerprint(path) != before:
            raise InputError(
                f"{path} changed while it was being imported; nothing was imported. "
                "Import it again once nothing else is writing it."
            )
        if self.bad and self.all_or_nothing:
            problems = [p for number in sorted(self.bad) for p in self.bad[number]]
            raise InputError(
                f"{path}: {_plural(len(self.bad), 'bad row')}; nothing was imported", problems
            )
        if batch:
            yield batch


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str], list[Problem]]]:
    """Yield (row number, values by column, problems of shape) for each non-blank row."""
    records = _records(path)
    if (first := next(records, None)) is None:
        raise InputError(
            f"{path} is empty; its first row must name the columns: " + ", ".join(REQUIRED_COLUMNS)
        )
    names = _check_header(path, first[1])
    unnamed = [i for i, name in enumerate(names) if not name]
    for number, fields in records:
        if not "".join(fields).strip():
            continue
        if len(fields) != len(names):
            reason = (
                f"has {len(fields)} values but the header names {len(names)} columns; "
                "look for a stray comma or an unquoted value"
            )
            yield number, {}, [Problem(f"row {number}", reason)]
            continue
        reason = "has a value but its column has no name in row 1; name or clear the column"
        problems = [
            Problem(f"row {number}, column {i + 1}", reason) for i in unnamed if fields[i].strip()
        ]
        yield number, dict(zip(names, fields, strict=True)), problems


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, fields) for each CSV record, streaming; a UTF-8 BOM is fine."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file, strict=True)
            number = line = 0
            try:
                for fields in reader:
                    number, line = number + 1, reader.line_num
                    yield number, fields
            except csv.Error as e:
                raise InputError(
                    f"{path}: row {number + 1}, from line {line + 1}, is not valid "
                    f"CSV ({e}); look for a quote that is not closed"
                ) from None
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None


def _encoding_error(path: Path) -> InputError:
    """Say where the file stops being UTF-8: line and byte offset."""
    with path.open("rb") as file:
        if file.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return InputError(f"{path} is UTF-16 text, not UTF-8; {_TO_UTF8}")
        file.seek(0)
        offset = 0
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return InputError(
                    f"{path}: byte 0x{line[e.start]:02X} on line {number} (byte offset "
                    f"{offset + e.start}) is not UTF-8; the file is in another encoding "
                    f"such as Latin-1 or Windows-1252: {_TO_UTF8}"
                )
            offset += len(line)
    return InputError(f"{path} is not UTF-8 text; {_TO_UTF8}")


def _check_header(path: Path, header: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in header]
    if any("\x00" in name for name in names):
        raise InputError(f"{path} has NUL bytes in row 1, so it looks like UTF-16; {_TO_UTF8}")
    expected = ", ".join(REQUIRED_COLUMNS)
    if not _COLUMNS.intersection(names):  # a data row? Its cells may be PHI: do not repeat them
        reason = f"names none of the columns; row 1 must name them, comma-separated: {expected}"
        raise InputError(f"{path}: row 1 is not a header row", [Problem("row 1", reason)])
    problems = [
        Problem(
            "row 1",
            f"has no {column} column; add it"
            + ("" if column == "external_id" else " (its values may be blank)"),
        )
        for column in REQUIRED_COLUMNS
        if column not in names
    ]
    first_column: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in first_column:
            reason = f"{name} appears again (first in column {first_column[name]}); keep one"
            problems.append(Problem(f"row 1, column {number}", reason))
        elif name and name not in _COLUMNS:
            close = difflib.get_close_matches(name, sorted(_COLUMNS), n=1)
            reason = (
                f"unknown column {_echo(header[number - 1].strip())}; "
                + (f"did you mean {close[0]}? " if close else "")
                + "rename or delete it, or its values would be lost. "
                f"Known columns: {expected}, preferred_channel"
            )
            problems.append(Problem(f"row 1, column {number}", reason))
        if name:
            first_column.setdefault(name, number)
    if problems:
        raise InputError(f"{path}: the header row is wrong; nothing was imported", problems)
    return names


def _parse_consent(
    channel: Channel,
    value: Callable[[str], str | None],
    bad: Callable[[str, str], None],
    zone: tzinfo,
) -> ConsentFact | None:
    column = f"{channel}_consent"
    said, when, source = value(column), value(f"{column}_at"), value(f"{column}_source")
    granted = None if said is None else said.lower() in _YES
    if said is not None and not granted and said.lower() not in _NO:
        granted = None
        bad(
            column,
            f"{_echo(said)} is not yes or no; expected yes/no/true/false/y/n/1/0, or "
            "blank for no evidence",
        )
    at = None
    if when is None:
        if said is not None:
            bad(
                f"{column}_at",
                f"is blank but {column} is filled in; consent evidence must say "
                "when it was given (ISO 8601, e.g. 2025-10-15)",
            )
    elif (at := _parse_instant(when, zone)) is None:
        bad(
            f"{column}_at",
            f"{_echo(when)} is not an ISO 8601 date or date-time; expected e.g. "
            "2025-10-15 or 2025-10-15T09:30:00-04:00",
        )
    elif at > datetime.now(UTC) + _CONSENT_SKEW:
        bad(f"{column}_at", f"{_echo(when)} is in the future; expected when consent was given")
    elif said is None:
        bad(
            f"{column}_at",
            f"is filled in but {column} is blank; fill in {column} (yes or no) or clear the date",
        )
    if source is not None and len(source) > 32:
        bad(f"{column}_source", "is longer than 32 characters")
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
    bad(f"{_echo(text)} is not a date in ISO 8601 form; expected YYYY-MM-DD, e.g. 2025-10-15")
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
    elif _country_code(region) != 1:
        digits = ""
    elif len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10 and digits.isascii() and digits.isdigit() and digits[0] not in "01":
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
        # E.164 of a +1 number is "+1" and its ten national digits.
        return "+1" + digits if phonenumbers.is_valid_number(number) else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@cache
def _country_code(region: str) -> int:
    if (code := int(phonenumbers.country_code_for_region(region))) == 0:
        raise ConfigError(
            f"MERIDIAN_DEFAULT_REGION: {region!r} is not a region phonenumbers "
            "knows; use a two-letter ISO 3166 code such as US"
        )
    return code


@cache
def _zone_names() -> dict[str, str]:
    """IANA names by lower-case spelling; legacy names without a '/' (EST5EDT) are out."""
    return {n.lower(): n for n in available_timezones() if "/" in n or n == "UTC"}


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    return stat.st_size, stat.st_mtime_ns


def _echo(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ranges(numbers: list[int]) -> str:
    """'rows 4, 9-12' from sorted row numbers."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return ("row " if len(numbers) == 1 else "rows ") + text
