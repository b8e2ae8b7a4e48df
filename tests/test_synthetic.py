"""The synthetic patient generator and the sample CSVs shipped in examples/."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_zones

from campaigns.clock.geography import area_code_state
from campaigns.people.synthetic import COLUMNS, DEFAULT_AS_OF, iter_patient_rows, write_patients_csv

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TAGS = {"active", "inactive", "acupuncture", "massage", "herbal", "new-patient", "do-not-market"}
SOURCES = {"intake-form", "web-form", "front-desk", "import"}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(iter_patient_rows(2000, seed=7))


def phone_digits(phone: str) -> str:
    return str(phonenumbers.parse(phone, "US").national_number)


def _share(rows: list[dict[str, str]], column: str, value: str = "") -> float:
    return sum(row[column] == value for row in rows) / len(rows)


def test_rows_carry_the_import_columns_in_order(rows: list[dict[str, str]]) -> None:
    assert all(tuple(row) == COLUMNS for row in rows)
    assert [row["external_id"] for row in rows[:2]] == ["P000001", "P000002"]


def test_every_phone_is_a_valid_us_number(rows: list[dict[str, str]]) -> None:
    phones = [row["phone"] for row in rows if row["phone"]]
    assert phones
    for phone in phones:
        number = phonenumbers.parse(phone, "US")
        assert phonenumbers.is_valid_number(number), phone
        assert phonenumbers.region_code_for_number(number) == "US", phone


def test_phones_are_fictional_555_01xx_lines(rows: list[dict[str, str]]) -> None:
    for row in rows:
        if row["phone"]:
            national = str(phonenumbers.parse(row["phone"], "US").national_number)
            assert national[3:8] == "55501", row["phone"]


def test_most_patients_have_a_number_of_their_own(rows: list[dict[str, str]]) -> None:
    phones = [
        phonenumbers.parse(row["phone"], "US").national_number for row in rows if row["phone"]
    ]
    per_number = Counter(phones)
    alone = sum(1 for n in per_number.values() if n == 1)
    assert alone / len(phones) > 0.85
    # ... and a few share a family line, with someone of the same state.
    shared = {n for n, count in per_number.items() if count > 1}
    assert 0.02 < sum(per_number[n] for n in shared) / len(phones) < 0.15
    states = {}
    for row in rows:
        if row["phone"]:
            number = phonenumbers.parse(row["phone"], "US").national_number
            states.setdefault(number, set()).add(row["state"])
    assert all(len(states[n] - {""}) <= 1 for n in shared)


def test_numbers_stay_distinct_past_a_regions_fictional_lines() -> None:
    # 30,000 patients: Massachusetts alone needs more than its area codes' 400 lines,
    # so others come from the rest of the country's area codes, still 555-01xx.
    phones = [
        phonenumbers.parse(row["phone"], "US").national_number
        for row in iter_patient_rows(30_000, seed=5)
        if row["phone"]
    ]
    assert len(set(phones)) / len(phones) > 0.9
    assert len({str(p)[:3] for p in phones}) > 300
    assert all(str(p)[3:8] == "55501" for p in phones)


def test_a_phones_area_code_gives_the_patients_zone(rows: list[dict[str, str]]) -> None:
    # A blank timezone is derived from the area code at import: it must agree
    # for a local number (a mover's number keeps the area code of where it was got).
    checked = 0
    for row in rows:
        local = row["phone"] and area_code_state(phone_digits(row["phone"])) == row["state"]
        if local and row["timezone"]:
            zones = phone_zones.time_zones_for_number(phonenumbers.parse(row["phone"], "US"))
            assert row["timezone"] in zones, (row["phone"], row["timezone"])
            checked += 1
    assert checked > len(rows) // 2


def test_every_email_is_valid_without_a_dns_lookup(rows: list[dict[str, str]]) -> None:
    emails = [row["email"] for row in rows if row["email"]]
    assert len(set(emails)) == len(emails)
    for email in emails:
        result = validate_email(email, check_deliverability=False)
        assert result.domain in {"example.com", "example.org", "example.net"}


def test_the_same_seed_gives_the_same_rows() -> None:
    assert list(iter_patient_rows(300, seed=11)) == list(iter_patient_rows(300, seed=11))
    assert list(iter_patient_rows(300, seed=11)) != list(iter_patient_rows(300, seed=12))


def test_a_longer_list_begins_with_the_shorter_one() -> None:
    assert list(iter_patient_rows(500, seed=3))[:200] == list(iter_patient_rows(200, seed=3))


def test_the_mix_spans_several_zones_and_states(rows: list[dict[str, str]]) -> None:
    zones = {row["timezone"] for row in rows} - {""}
    assert len(zones) >= 4
    for zone in zones:
        ZoneInfo(zone)
    assert {"FL", "TX", "RI", "CT", "NY", "CA", "AZ", "HI", "AK", "OK", "MD", "NJ"} <= {
        row["state"] for row in rows
    }


def test_blanks_appear_where_promised(rows: list[dict[str, str]]) -> None:
    assert 0.06 <= _share(rows, "timezone") <= 0.14
    assert 0.02 <= _share(rows, "state") <= 0.08
    assert 0.02 <= _share(rows, "phone") <= 0.15
    assert 0.02 <= _share(rows, "email") <= 0.15
    assert 0.01 <= _share(rows, "last_visit") <= 0.10
    assert 0.85 <= _share(rows, "next_appointment") <= 0.95
    assert 0.2 <= _share(rows, "preferred_channel") <= 0.6
    assert not any(row["phone"] == row["email"] == "" for row in rows)


def test_consent_is_a_realistic_mix(rows: list[dict[str, str]]) -> None:
    assert 0.58 <= _share(rows, "sms_consent", "yes") <= 0.72
    assert 0.74 <= _share(rows, "email_consent", "yes") <= 0.86
    assert _share(rows, "sms_consent", "no") > 0.01
    assert _share(rows, "email_consent", "no") > 0.01
    assert {row["sms_consent"] for row in rows} == {"yes", "no", ""}
    assert {row["preferred_channel"] for row in rows} == {"sms", "email", ""}


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_consent_answer_has_a_local_time_and_a_source(
    rows: list[dict[str, str]], channel: str
) -> None:
    contact = "phone" if channel == "sms" else "email"
    for row in rows:
        answer, at, source = (row[f"{channel}_consent{s}"] for s in ("", "_at", "_source"))
        if not answer:
            assert at == source == ""
            continue
        assert row[contact], "consent recorded for a contact the patient does not have"
        moment = datetime.fromisoformat(at)
        assert moment.tzinfo is not None, at
        assert moment.date() < DEFAULT_AS_OF
        assert 8 <= moment.hour < 20, at
        if row["timezone"]:
            local = moment.astimezone(ZoneInfo(row["timezone"]))
            assert local.utcoffset() == moment.utcoffset(), (at, row["timezone"])
        assert source in SOURCES


def test_dates_are_iso_and_appointments_fall_in_the_next_60_days(
    rows: list[dict[str, str]],
) -> None:
    for row in rows:
        assert set(row["tags"].split(";")) - {""} <= TAGS
        if row["last_visit"]:
            assert date.fromisoformat(row["last_visit"]) < DEFAULT_AS_OF
        if row["next_appointment"]:
            days = (date.fromisoformat(row["next_appointment"]) - DEFAULT_AS_OF).days
            assert 1 <= days <= 60


def test_as_of_moves_every_date_with_it() -> None:
    later = DEFAULT_AS_OF + timedelta(days=365)
    moved = list(iter_patient_rows(50, seed=5, as_of=later))
    for row, original in zip(moved, iter_patient_rows(50, seed=5), strict=True):
        if row["last_visit"]:
            shift = date.fromisoformat(row["last_visit"]) - date.fromisoformat(
                original["last_visit"]
            )
            assert shift == timedelta(days=365)


def test_the_shipped_patients_csv_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = tmp_path / "patients.csv"
    write_patients_csv(fresh, 1000, seed=2026)
    shipped = EXAMPLES / "patients.csv"
    assert shipped.read_bytes() == fresh.read_bytes(), (
        "examples/patients.csv drifted from the generator; regenerate it with "
        "python -m campaigns.people.synthetic examples/patients.csv 1000 --seed 2026"
    )


def test_the_written_csv_reads_back_as_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    write_patients_csv(path, 100, seed=9)
    with path.open(encoding="utf-8", newline="") as handle:
        assert list(csv.DictReader(handle)) == list(iter_patient_rows(100, seed=9))


def test_the_error_sample_holds_each_mistake_the_readme_shows() -> None:
    with (EXAMPLES / "patients-with-errors.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert all(None not in row for row in rows), "a row has more fields than the header"

    bad_phones = [r["phone"] for r in rows if not _is_valid_phone(r["phone"])]
    bad_zones = [r["timezone"] for r in rows if not _is_zone(r["timezone"])]
    bad_dates = [r["last_visit"] for r in rows if not _is_iso_date(r["last_visit"])]
    bad_emails = [r["email"] for r in rows if not _is_valid_email(r["email"])]
    ids = Counter(r["external_id"] for r in rows)

    assert 10 <= len(rows) <= 15
    assert bad_phones == ["call after 5pm"]
    assert bad_zones == ["EST5"]
    assert bad_dates == ["10/15/2025"]
    assert bad_emails == ["dana.whitfield@example"]
    assert [i for i, n in ids.items() if n > 1] == ["P200002"]


def _is_valid_phone(text: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "US"))
    except phonenumbers.NumberParseException:
        return False


def _is_zone(text: str) -> bool:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_valid_email(text: str) -> bool:
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True
