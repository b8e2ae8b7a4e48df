"""Reading a patient CSV: its encoding, its header row, and its rows by number.

Row numbers are what a spreadsheet shows: the header is row 1, so the first data row
is row 2, and a quoted value spanning lines is still one row. Blank rows are skipped
but keep their number. The file is streamed, never held in memory.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterator
from pathlib import Path

from campaigns.errors import InputError, Problem
from campaigns.people.patient_fields import echo

# fmt: off
# Only external_id must be there: an SMS-only clinic has no email columns, and a
# column left out reads as blank in every row.
REQUIRED_COLUMNS: tuple[str, ...] = ("external_id",)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "first_name", "last_name", "email", "phone", "timezone", "state", "tags",
    "last_visit", "next_appointment", "sms_consent", "sms_consent_at", "sms_consent_source",
    "email_consent", "email_consent_at", "email_consent_source", "preferred_channel",
)
# fmt: on
_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
# C0 controls but tab, DEL and C1 controls: no name, address or id holds one, and a NUL
# ends a PostgreSQL text value with an error.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Free-text notes (who took the consent, how) may span lines; nothing else may.
_NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NOTES = frozenset({"sms_consent_source", "email_consent_source"})
_CONTROL_NAMES = {
    "\x00": "NUL",
    "\n": "line feed",
    "\r": "carriage return",
    "\x1b": "escape",
    "\x7f": "DEL",
}
_TO_UTF8 = "save it as UTF-8 (in Excel: Save As > CSV UTF-8) and import it again"


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str], list[Problem]]]:
    """Yield (row number, values by column, problems of shape) for each non-blank row."""
    records = _records(path)
    if (first := next(records, None)) is None:
        raise InputError(
            f"{path} is empty; its first row must name the columns: "
            + ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
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
        problems.extend(_control_characters(number, names, fields))
        yield number, dict(zip(names, fields, strict=True)), problems


def _control_characters(number: int, names: list[str], fields: list[str]) -> list[Problem]:
    """Where a row holds a control character: column and position, never the value."""
    if not _CONTROL.search("".join(fields)):  # the rule of every column, and the strictest
        return []
    found = []
    for i, value in enumerate(fields):
        pattern = _NOTE_CONTROL if names[i] in _NOTES else _CONTROL
        if (hit := pattern.search(value)) is None:
            continue
        char = hit.group()
        label = _CONTROL_NAMES.get(char, "a control character")
        reason = (
            f"holds a control character (U+{ord(char):04X}, {label}) at character "
            f"{hit.start() + 1}; remove it (only tab is allowed) and import again"
        )
        found.append(Problem(f"row {number}, column {names[i] or i + 1}", reason))
    return found


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
    expected = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
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
                f"unknown column {echo(header[number - 1].strip())}; "
                + (f"did you mean {close[0]}? " if close else "")
                + "rename or delete it, or its values would be lost. "
                f"Known columns: {expected}"
            )
            problems.append(Problem(f"row 1, column {number}", reason))
        if name:
            first_column.setdefault(name, number)
    if problems:
        raise InputError(f"{path}: the header row is wrong; nothing was imported", problems)
    return names
