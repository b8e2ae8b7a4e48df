"""Patient CSV import: every bad input is refused with its row and column, nothing half-done."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.errors import ConfigError, InputError, Problem
from campaigns.people.patient_csv import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from campaigns.people.patient_fields import parse_row
from campaigns.people.patients import ImportReport, import_patients

HEADER = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]


class MemoryStore:
    """A PatientStore over a dict: batches are staged and committed only at the end."""

    def __init__(self) -> None:
        self.patients: dict[str, PatientRecord] = {}
        self.actors: list[str] = []

    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int]:
        staged = dict(self.patients)
        inserted = updated = 0
        for batch in batches:
            for record in batch:
                if record.external_id in staged:
                    updated += 1
                else:
                    inserted += 1
                staged[record.external_id] = record
        if not dry_run:
            self.patients = staged
            self.actors.append(actor)
        return inserted, updated


def row(external_id: str = "P1", **values: str) -> dict[str, str]:
    base = {
        "external_id": external_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "phone": "(212) 736-5000",
        "timezone": "America/New_York",
        "state": "NY",
        "tags": "flu-2025",
        "last_visit": "2025-03-01",
        "next_appointment": "",
        "sms_consent": "yes",
        "sms_consent_at": "2024-05-01T10:00:00",
        "sms_consent_source": "",
        "email_consent": "",
        "email_consent_at": "",
        "email_consent_source": "",
        "preferred_channel": "",
    }
    return base | values


def write_csv(path: Path, rows: Iterable[dict[str, str]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(header), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def refused(path: Path, store: MemoryStore, **options: object) -> InputError:
    with pytest.raises(InputError) as caught:
        import_patients(path, store, **options)  # type: ignore[arg-type]
    assert store.patients == {}
    return caught.value


def where(error: InputError) -> list[str]:
    return [p.where for p in error.problems]


def problems_of(result: PatientRecord | list[Problem]) -> list[Problem]:
    assert isinstance(result, list), result
    return result


def record_of(result: PatientRecord | list[Problem]) -> PatientRecord:
    assert isinstance(result, PatientRecord), result
    return result


# --- a good file ---------------------------------------------------------------------------


def test_a_valid_file_imports_every_patient_with_normalized_values(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "patients.csv",
        [
            row("P1", email=" Ada@Example.ORG ", tags="Flu-2025; VIP,vip", state="ny"),
            row(
                "P2",
                phone="+1 604 555 0199",
                timezone="america/vancouver",
                state="",
                sms_consent="",
                sms_consent_at="",
                email="",
                preferred_channel="SMS",
            ),
        ],
    )
    store = MemoryStore()

    report = import_patients(path, store, actor="staff:7")

    assert (report.rows, report.valid, report.inserted, report.updated) == (2, 2, 2, 0)
    assert report.skipped == [] and not report.dry_run
    assert store.actors == ["staff:7"]
    ada, other = store.patients["P1"], store.patients["P2"]
    assert (ada.email, ada.phone, ada.state, ada.tags) == (
        "Ada@example.org",
        "+12127365000",
        "NY",
        ("flu-2025", "vip"),
    )
    assert ada.last_visit == date(2025, 3, 1) and ada.next_appointment is None
    assert ada.consents == (
        ConsentFact("sms", True, datetime(2024, 5, 1, 14, 0, tzinfo=UTC), "import"),
    )
    assert (other.phone, other.timezone, other.state, other.email) == (
        "+16045550199",
        "America/Vancouver",
        None,
        None,
    )
    assert other.preferred_channel == "sms" and other.consents == ()


def test_row_numbers_are_spreadsheet_rows_and_a_multiline_value_is_one_row(tmp_path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HEADER)
    writer.writeheader()
    writer.writerow(row("P1", sms_consent_source="front\ndesk"))
    text.write("\n")  # a blank row: skipped, still counted like a spreadsheet row
    writer.writerow(row("P2", last_visit="10/15/2025"))
    path = tmp_path / "p.csv"
    path.write_text(text.getvalue(), encoding="utf-8")

    error = refused(path, MemoryStore())

    assert where(error) == ["row 4, column last_visit"]


# --- the header ----------------------------------------------------------------------------


def test_a_missing_external_id_column_is_named_and_nothing_is_imported(tmp_path: Path) -> None:
    header = [c for c in HEADER if c != "external_id"]
    path = write_csv(tmp_path / "p.csv", [row()], header)

    error = refused(path, MemoryStore())

    assert "header" in error.message and "nothing was imported" in error.message
    assert [p.where for p in error.problems] == ["row 1"]
    assert "external_id" in error.problems[0].reason


def test_an_sms_only_clinics_csv_without_email_columns_imports(tmp_path: Path) -> None:
    header = [c for c in HEADER if not c.startswith("email")]
    path = write_csv(tmp_path / "p.csv", [row()], header)

    assert import_patients(path, MemoryStore()).valid == 1


def test_a_refusal_without_a_date_is_recorded_and_a_consent_without_one_is_not(
    tmp_path: Path,
) -> None:
    refusal = row(sms_consent="no", sms_consent_at="")
    path = write_csv(tmp_path / "p.csv", [refusal], HEADER)
    assert import_patients(path, MemoryStore()).valid == 1
    consent = row(sms_consent="yes", sms_consent_at="")
    error = refused(write_csv(tmp_path / "q.csv", [consent], HEADER), MemoryStore())
    assert [p.where for p in error.problems] == ["row 2, column sms_consent_at"]


def test_an_unknown_extra_column_is_named_with_a_suggestion(tmp_path: Path) -> None:
    header = [*HEADER, "emial_consent", "notes"]
    path = write_csv(tmp_path / "p.csv", [row()], header)

    error = refused(path, MemoryStore())

    reasons = {p.where: p.reason for p in error.problems}
    assert set(reasons) == {f"row 1, column {len(HEADER) + 1}", f"row 1, column {len(HEADER) + 2}"}
    assert "'emial_consent'" in reasons[f"row 1, column {len(HEADER) + 1}"]
    assert "did you mean email_consent?" in reasons[f"row 1, column {len(HEADER) + 1}"]
    assert "'notes'" in reasons[f"row 1, column {len(HEADER) + 2}"]


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(",".join([*HEADER, "phone"]) + "\n", encoding="utf-8")

    error = refused(path, MemoryStore())

    assert where(error) == [f"row 1, column {len(HEADER) + 1}"]
    assert "phone appears again (first in column 5)" in error.problems[0].reason


def test_header_names_are_trimmed_and_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f" {c.upper()} " for c in HEADER])
        writer.writerow([row()[c] for c in HEADER])

    assert import_patients(path, MemoryStore()).valid == 1


def test_a_file_without_a_header_is_refused_without_repeating_its_first_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("P1,Ada,Lovelace,ada@example.org,(212) 736-5000\n", encoding="utf-8")

    error = refused(path, MemoryStore())

    text = str(error)
    assert "row 1 is not a header row" in text and "external_id" in text
    assert "ada@example.org" not in text and "736-5000" not in text and "Lovelace" not in text


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    error = refused(path, MemoryStore())

    assert error.message.startswith(f"{path} is empty")


def test_a_missing_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.csv", MemoryStore())

    assert str(tmp_path / "nope.csv") in error.message


# --- encodings -----------------------------------------------------------------------------


def csv_text(rows: Iterable[dict[str, str]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HEADER)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_file_is_refused_with_a_request_for_utf8(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(csv_text([row()]).encode(encoding))

    error = refused(path, MemoryStore())

    assert str(path) in error.message and "UTF-16" in error.message
    assert "save it as UTF-8" in error.message


def test_latin1_bytes_are_refused_naming_the_line_and_byte_offset(tmp_path: Path) -> None:
    text = csv_text([row("P1"), row("P2", first_name="Zoë")])
    path = tmp_path / "p.csv"
    path.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xeb")

    error = refused(path, MemoryStore())

    assert f"byte 0xEB on line 3 (byte offset {offset})" in error.message
    assert str(path) in error.message and "save it as UTF-8" in error.message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(csv_text([row(first_name="Zoë")]).encode("utf-8-sig"))

    import_patients(path, store := MemoryStore())

    assert store.patients["P1"].first_name == "Zoë"


def test_an_unterminated_quote_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    good = ",".join(row("P3")[c] for c in HEADER) + "\n"
    text = csv_text([row("P1", sms_consent_source="front\ndesk")]) + '"P2,Ada\n' + good * 3
    path.write_text(text, encoding="utf-8")

    error = refused(path, MemoryStore())

    assert "row 3, from line 4, is not valid CSV" in error.message


# --- bad rows ------------------------------------------------------------------------------


def test_an_unparseable_phone_is_a_bad_row_that_does_not_repeat_the_number(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "p.csv", [row("P1"), row("P2", phone="212-736-500")])

    error = refused(path, MemoryStore())

    assert error.message == f"{path}: 1 bad row; nothing was imported"
    assert [str(p) for p in error.problems] == [
        "row 3, column phone: is not a valid phone number for region US; expected a number "
        "dialled in US, or + and the country code"
    ]


def test_an_invalid_email_is_a_bad_row_that_does_not_repeat_the_address(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [row(email="ada.lovelace@@analytical.org")])

    error = refused(path, MemoryStore())

    assert where(error) == ["row 2, column email"]
    assert "lovelace" not in str(error) and "analytical" not in str(error)


@pytest.mark.parametrize("zone", ["EST5", "EST5EDT", "EST", "Eastern", "GMT", "Mars/Olympus"])
def test_a_time_zone_that_is_not_an_iana_name_is_a_bad_row(tmp_path: Path, zone: str) -> None:
    path = write_csv(tmp_path / "p.csv", [row(timezone=zone)])

    error = refused(path, MemoryStore())

    assert where(error) == ["row 2, column timezone"]
    assert f"{zone!r} is not an IANA time zone name" in error.problems[0].reason


@pytest.mark.parametrize(
    ("given", "stored"),
    [("UTC", "UTC"), ("america/chicago", "America/Chicago"), ("Etc/GMT+5", "Etc/GMT+5")],
)
def test_iana_time_zones_are_accepted_in_their_canonical_spelling(given: str, stored: str) -> None:
    assert record_of(parse_row(row(timezone=given), 2, region="US")).timezone == stored


@pytest.mark.parametrize("value", ["10/15/2025", "2025-02-30", "20251015", "2025-W42-3", "Oct 15"])
def test_a_date_not_written_yyyy_mm_dd_is_a_bad_row(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path / "p.csv", [row("P1"), row("P2", next_appointment=value)])

    error = refused(path, MemoryStore())

    assert where(error) == ["row 3, column next_appointment"]
    assert "expected YYYY-MM-DD" in error.problems[0].reason


def test_a_repeated_external_id_is_bad_on_every_later_row_and_names_the_first(
    tmp_path: Path,
) -> None:
    rows = [row("P1"), row("P2"), row("P1"), row("P3"), row(" P1 ")]
    path = write_csv(tmp_path / "p.csv", rows)

    error = refused(path, MemoryStore())

    assert error.message == f"{path}: 2 bad rows; nothing was imported"
    assert [str(p) for p in error.problems] == [
        f"row {n}, column external_id: repeats the external_id of row 2; "
        "each patient must appear once"
        for n in (4, 6)
    ]


def test_every_bad_row_and_column_is_listed_in_one_error(tmp_path: Path) -> None:
    rows = [
        row("P1", state="XX", last_visit="yesterday"),
        row("P2"),
        row("", phone="12"),
        row("P4", sms_consent="maybe", tags="flu shot"),
    ]
    path = write_csv(tmp_path / "p.csv", rows)

    error = refused(path, MemoryStore())

    assert error.message == f"{path}: 3 bad rows; nothing was imported"
    assert where(error) == [
        "row 2, column state",
        "row 2, column last_visit",
        "row 4, column external_id",
        "row 4, column phone",
        "row 5, column tags",
        "row 5, column sms_consent",
    ]
    assert str(error).count("\n") == 6


def test_a_row_with_too_many_values_is_bad_and_its_shifted_values_are_not_repeated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.csv"
    good = [row()[c] for c in HEADER]
    shifted = ["P2", "Ada, Countess", *good[2:]]
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(",".join(HEADER) + "\n")
        file.write(",".join(shifted) + "\n")

    error = refused(path, MemoryStore())

    assert "Countess" not in str(error) and "736" not in str(error)
    assert [str(p) for p in error.problems] == [
        f"row 2: has {len(HEADER) + 1} values but the header names {len(HEADER)} columns; "
        "look for a stray comma or an unquoted value"
    ]


def test_a_value_under_an_unnamed_column_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*HEADER, ""])
        writer.writerow([*(row("P1")[c] for c in HEADER), ""])
        writer.writerow([*(row("P2")[c] for c in HEADER), "note"])

    error = refused(path, MemoryStore())

    assert where(error) == [f"row 3, column {len(HEADER) + 1}"]


# --- options -------------------------------------------------------------------------------


def test_skip_invalid_imports_the_good_rows_and_lists_exactly_the_skipped_ones(
    tmp_path: Path,
) -> None:
    rows = [row("P1"), row("P2", phone="555"), row("P3"), row("P1"), row("P5", state="ZZ")]
    path = write_csv(tmp_path / "p.csv", rows)
    store = MemoryStore()

    report = import_patients(path, store, skip_invalid=True)

    assert set(store.patients) == {"P1", "P3"}
    assert (report.rows, report.valid, report.inserted, report.updated) == (5, 2, 2, 0)
    assert [(s.row, [p.where for p in s.problems]) for s in report.skipped] == [
        (3, ["row 3, column phone"]),
        (5, ["row 5, column external_id"]),
        (6, ["row 6, column state"]),
    ]
    summary = report.summary()
    assert "skipped 3 bad rows: rows 3, 5-6" in summary
    assert "row 6, column state: 'ZZ' is not a USPS state code" in summary
    assert json.loads(json.dumps(report.to_dict()))["skipped"][0] == {
        "row": 3,
        "problems": [
            {
                "where": "row 3, column phone",
                "reason": "is not a valid phone number for region US; expected a number "
                "dialled in US, or + and the country code",
            }
        ],
    }


def test_dry_run_writes_nothing_but_reports_what_it_would_do(tmp_path: Path) -> None:
    store = MemoryStore()
    import_patients(write_csv(tmp_path / "a.csv", [row("P1")]), store)
    path = write_csv(tmp_path / "b.csv", [row("P1", first_name="Augusta"), row("P2")])

    report = import_patients(path, store, dry_run=True)

    assert (report.inserted, report.updated, report.dry_run) == (1, 1, True)
    assert set(store.patients) == {"P1"} and store.patients["P1"].first_name == "Ada"
    assert "would insert 1, would update 1 (dry run: nothing was written)" in report.summary()


def test_reimporting_updates_patients_by_external_id(tmp_path: Path) -> None:
    store = MemoryStore()
    import_patients(write_csv(tmp_path / "a.csv", [row("P1"), row("P2")]), store)

    report = import_patients(
        write_csv(tmp_path / "b.csv", [row("P2", phone="+1 (202) 456-1111"), row("P3")]), store
    )

    assert (report.inserted, report.updated) == (1, 1)
    assert set(store.patients) == {"P1", "P2", "P3"}
    assert store.patients["P2"].phone == "+12024561111"


def test_a_file_that_changes_while_it_is_read_imports_nothing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [row("P1"), row("P2")])

    class AppendingStore(MemoryStore):
        def import_batches(
            self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
        ) -> tuple[int, int]:
            def appending() -> Iterator[Sequence[PatientRecord]]:
                for batch in batches:
                    yield batch
                    with path.open("a", encoding="utf-8") as file:
                        file.write(",".join(row("P9")[c] for c in HEADER) + "\n")

            return super().import_batches(appending(), dry_run=dry_run, actor=actor)

    store = AppendingStore()
    with pytest.raises(InputError) as caught:
        import_patients(path, store, batch_size=1)

    assert "changed while it was being imported" in caught.value.message
    assert store.patients == {}


def test_an_unknown_region_is_a_config_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [row()])

    with pytest.raises(ConfigError, match="MERIDIAN_DEFAULT_REGION"):
        import_patients(path, MemoryStore(), region="XX")


def test_the_default_region_reads_national_numbers(tmp_path: Path) -> None:
    rows = [row("P1", phone="020 7946 0958"), row("P2", phone="+1 212 736 5000")]
    path = write_csv(tmp_path / "p.csv", rows)

    import_patients(path, store := MemoryStore(), region="GB")

    assert [p.phone for p in store.patients.values()] == ["+442079460958", "+12127365000"]


# --- streaming -----------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parents[1]
MEASURE_IMPORT = """
import json, resource, sys
from pathlib import Path
from campaigns.people.patients import import_patients

class CountingStore:
    # A PatientStore that keeps nothing: it counts what it is handed.
    def __init__(self):
        self.records = self.largest_batch = 0

    def import_batches(self, batches, *, dry_run, actor):
        for batch in batches:
            self.records += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
        return self.records, 0

small, big = Path(sys.argv[1]), Path(sys.argv[2])
import_patients(small, CountingStore())  # load phonenumbers metadata, zones, caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = import_patients(big, store := CountingStore(), batch_size=500)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
unit = 1 if sys.platform == "darwin" else 1024
print(json.dumps([report.rows, store.records, store.largest_batch, grown * unit]))
"""


def generated_rows(count: int) -> Iterator[str]:
    yield ",".join(HEADER) + "\n"
    padding = "x" * 90  # fat rows, so that holding the file's text would show too
    for n in range(count):
        yield (
            f"P{n:07d},Ada{padding},Lovelace{padding},ada{n}@example.org,"
            f"(212) 736-{n % 10_000:04d},America/New_York,NY,flu-2025;{padding[:60]},"
            "2025-03-01,,yes,2024-05-01,,,,,\n"
        )


def test_the_importer_streams_100000_rows_in_bounded_memory(tmp_path: Path) -> None:
    # Peak RSS of a fresh interpreter: tracemalloc would slow this import eightfold.
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("".join(generated_rows(100)), encoding="utf-8")
    with big.open("w", encoding="utf-8") as file:
        file.writelines(generated_rows(100_000))
    limit = 30 * 2**20
    assert big.stat().st_size > limit

    run = subprocess.run(
        [sys.executable, "-c", MEASURE_IMPORT, str(small), str(big)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    rows, records, largest_batch, grown = json.loads(run.stdout)
    assert (rows, records, largest_batch) == (100_000, 100_000, 500)
    assert grown < limit, f"peak memory grew by {grown / 2**20:.1f} MiB"


# --- parse_row: values -------------------------------------------------------------------


def test_consent_becomes_evidence_and_blank_consent_records_none() -> None:
    record = record_of(
        parse_row(
            row(
                sms_consent="N",
                sms_consent_at="2024-05-01",
                sms_consent_source="front-desk",
                email_consent="TRUE",
                email_consent_at="2024-06-01T09:00:00Z",
            ),
            2,
            region="US",
        )
    )

    assert record.consents == (
        ConsentFact("sms", False, datetime(2024, 5, 1, 4, 0, tzinfo=UTC), "front-desk"),
        ConsentFact("email", True, datetime(2024, 6, 1, 9, 0, tzinfo=UTC), "import"),
    )
    blank = row(sms_consent="", sms_consent_at="")
    assert record_of(parse_row(blank, 2, region="US")).consents == ()


def test_a_naive_consent_time_is_read_in_the_patients_zone_else_in_utc() -> None:
    def sms_at(**values: str) -> datetime:
        return record_of(parse_row(row(**values), 2, region="US")).consents[0].at

    assert sms_at(sms_consent_at="2024-01-10T09:00") == datetime(2024, 1, 10, 14, tzinfo=UTC)
    assert sms_at(sms_consent_at="2024-07-10T09:00") == datetime(2024, 7, 10, 13, tzinfo=UTC)
    assert sms_at(sms_consent_at="2024-07-10T09:00", timezone="") == datetime(
        2024, 7, 10, 9, tzinfo=UTC
    )
    assert sms_at(sms_consent_at="2024-07-10T09:00:00+02:00") == datetime(
        2024, 7, 10, 7, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("values", "column", "words"),
    [
        ({"sms_consent_at": ""}, "sms_consent_at", "must say when"),
        ({"sms_consent": ""}, "sms_consent_at", "sms_consent is blank"),
        ({"sms_consent_at": "05/01/2024"}, "sms_consent_at", "not an ISO 8601"),
        ({"sms_consent_at": "2999-01-01"}, "sms_consent_at", "in the future"),
        ({"sms_consent": "maybe"}, "sms_consent", "is not yes or no"),
        ({"email_consent": "yes"}, "email_consent_at", "must say when"),
        ({"sms_consent_source": "s" * 33}, "sms_consent_source", "longer than 32"),
    ],
)
def test_consent_evidence_must_say_what_and_when(
    values: dict[str, str], column: str, words: str
) -> None:
    problems = problems_of(parse_row(row(**values), 7, region="US"))

    assert [p.where for p in problems] == [f"row 7, column {column}"]
    assert words in problems[0].reason


def test_consent_yes_without_a_phone_or_email_is_not_an_error() -> None:
    values = row(phone="", email="", email_consent="yes", email_consent_at="2024-01-01")

    record = record_of(parse_row(values, 2, region="US"))

    assert [c.channel for c in record.consents] == ["sms", "email"]


def test_tags_are_split_lowercased_deduplicated_and_checked() -> None:
    record = record_of(parse_row(row(tags="VIP, flu-2025;;vip ;Kids"), 2, region="US"))
    assert record.tags == ("vip", "flu-2025", "kids")

    problems = problems_of(parse_row(row(tags="vip;flu_shot 2025"), 2, region="US"))
    assert [str(p) for p in problems] == [
        "row 2, column tags: tag 2 has characters other than a-z, 0-9 and - (' ' '_'); "
        "separate tags with ;"
    ]


@pytest.mark.parametrize(("value", "stored"), [("pr", "PR"), ("DC", "DC"), (" ca ", "CA")])
def test_state_codes_are_usps_codes_upper_cased(value: str, stored: str) -> None:
    assert record_of(parse_row(row(state=value), 2, region="US")).state == stored


@pytest.mark.parametrize("value", ["XX", "New York", "N.Y."])
def test_a_state_that_is_not_a_usps_code_is_a_bad_row(value: str) -> None:
    problems = problems_of(parse_row(row(state=value), 2, region="US"))
    assert [p.where for p in problems] == ["row 2, column state"]


def test_preferred_channel_is_sms_email_or_blank() -> None:
    assert record_of(parse_row(row(preferred_channel="Email"), 2, region="US")).preferred_channel
    problems = problems_of(parse_row(row(preferred_channel="fax"), 2, region="US"))
    assert [p.where for p in problems] == ["row 2, column preferred_channel"]


def test_a_missing_key_counts_as_blank_but_external_id_is_required() -> None:
    problems = problems_of(parse_row({"first_name": "Ada"}, 9, region="US"))
    assert [p.where for p in problems] == ["row 9, column external_id"]
    assert record_of(parse_row({"external_id": "P9"}, 9, region="US")).tags == ()


# --- parse_row: properties ---------------------------------------------------------------


def reference_phone(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def reference_email(text: str) -> str | None:
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def phone_of(text: str, region: str = "US") -> str | None:
    result = parse_row({"external_id": "P1", "phone": text}, 2, region=region)
    return result.phone if isinstance(result, PatientRecord) else None


nanp_digits = st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True)


@given(nanp_digits, st.sampled_from(["+1{}{}{}", "({}) {}-{}", "{}.{}.{}", "1-{}-{}-{}"]))
@settings(deadline=None)  # the first call loads phonenumbers' metadata
def test_any_valid_us_number_round_trips_to_e164(digits: str, layout: str) -> None:
    assume(reference_phone("+1" + digits, "US") is not None)

    assert phone_of(layout.format(digits[:3], digits[3:6], digits[6:])) == "+1" + digits


@given(
    st.one_of(
        st.from_regex(r"\+?1?[ (]?[0-9]{3}[) .-]{0,2}[0-9]{3}[ .-]?[0-9]{4}", fullmatch=True),
        st.text(alphabet="0123456789+()-. x", min_size=1, max_size=16),
    ),
    st.sampled_from(["US", "CA", "GB"]),
)
@settings(max_examples=300, deadline=None)
def test_phone_numbers_are_read_exactly_as_phonenumbers_reads_them(text: str, region: str) -> None:
    assume(text.strip())

    assert phone_of(text, region) == reference_phone(text.strip(), region)


@given(
    st.one_of(
        st.emails(),
        st.from_regex(r"[A-Za-z0-9._%+-]{1,12}@[A-Za-z0-9.-]{1,16}", fullmatch=True),
        st.sampled_from(["Info@Example.org", "POSTMASTER@x.example.com", "a@xn--bcher-kva.de"]),
        st.text(alphabet='aZ09.@-_+ "<>[]é', min_size=1, max_size=20),
    )
)
@settings(max_examples=300, deadline=None)
def test_emails_are_checked_and_normalized_exactly_as_email_validator_does(text: str) -> None:
    assume(text.strip())
    result = parse_row({"external_id": "P1", "email": text}, 2, region="US")

    expected = reference_email(text.strip())

    assert (result.email if isinstance(result, PatientRecord) else None) == expected


@given(
    phone=st.from_regex(r"\+?[0-9 ()-]{6,18}", fullmatch=True),
    email=st.from_regex(r"[a-z0-9.]{3,10}@?[a-z0-9.@-]{0,12}", fullmatch=True),
    name=st.text(alphabet="abcdefghij XYZ", min_size=101, max_size=120),
)
@settings(max_examples=200, deadline=None)
def test_reasons_never_repeat_a_phone_number_email_address_or_name(
    phone: str, email: str, name: str
) -> None:
    values = row(phone=phone, email=email, first_name=name, last_name=name)

    result = parse_row(values, 2, region="US")

    for problem in result if isinstance(result, list) else []:
        for secret in (phone.strip(), email.strip(), name.strip()):
            assert len(secret) < 6 or secret not in str(problem)


def test_report_summary_and_dict_agree() -> None:
    report = ImportReport("p.csv", 3, 3, 2, 1, [], dry_run=False)

    assert report.summary() == "p.csv: 3 rows, 3 valid; inserted 2, updated 1"
    assert report.to_dict() == {
        "file": "p.csv",
        "rows": 3,
        "valid": 3,
        "inserted": 2,
        "updated": 1,
        "skipped": [],
        "dry_run": False,
        "suppressed": 0,
    }
