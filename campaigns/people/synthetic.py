"""Synthetic patients for demos, benchmarks and tests: no real person in any row.

Rows are a pure function of (count, seed, as_of): one ``random.Random(seed)`` drives
everything, so a seed always gives the same rows, and the first N rows of a longer
list are the N rows of a shorter one. Rows are produced one at a time, so a
benchmark can write millions of them without holding the list in memory.

Contacts cannot reach anyone: phones are NANP 555-0100..0199 lines, which are
reserved as fictional, under real area codes (campaigns/data/us_area_codes.csv);
emails are at example.com/.org/.net, reserved by RFC 2606.

Numbers are handed out as households have them: most patients get a number of
their own, under one of their region's area codes while its fictional lines last
(so the zone can be derived from the area code when the row leaves it blank),
then under any other US area code (a mobile number kept after a move); about one
patient in twenty shares the number of the previous patient of the same state (a
family line). The 359 area codes hold 35,900 fictional numbers: past that, numbers
are shared, as after the first 35,900 phones every new phone is an issued one.

Regenerate the shipped sample with::

    python -m campaigns.people.synthetic examples/patients.csv 1000 --seed 2026
"""

from __future__ import annotations

import argparse
import csv
import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import zip_longest
from math import log
from pathlib import Path
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from campaigns.clock.geography import area_codes_by_state

COLUMNS: Final = (
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "timezone",
    "state",
    "tags",
    "last_visit",
    "next_appointment",
    "sms_consent",
    "sms_consent_at",
    "sms_consent_source",
    "email_consent",
    "email_consent_at",
    "email_consent_source",
    "preferred_channel",
)

# Dates are relative to a fixed day, not today, so the shipped sample never drifts
# from what the generator writes. Pass as_of= to centre a demo on another day.
DEFAULT_AS_OF: Final = date(2026, 11, 26)


@dataclass(frozen=True)
class _Region:
    state: str
    zone: str
    area_codes: tuple[str, ...]
    weight: int


# Area codes checked against phonenumbers.timezone: each maps to its region's zone
# (907 also lists America/Adak). Weights: a Boston clinic's patients, plus enough
# movers to exercise the state windows in COMPLIANCE.md and seven US zones.
_REGIONS: Final = (
    _Region("MA", "America/New_York", ("617", "781", "508", "413"), 34),
    _Region("NY", "America/New_York", ("212", "718", "917", "516", "585"), 9),
    _Region("RI", "America/New_York", ("401",), 6),
    _Region("CT", "America/New_York", ("203", "860"), 6),
    _Region("NJ", "America/New_York", ("201", "973", "609"), 4),
    _Region("MD", "America/New_York", ("410", "301"), 3),
    _Region("FL", "America/New_York", ("305", "407", "813"), 8),
    _Region("IL", "America/Chicago", ("312", "773", "217"), 4),
    _Region("TX", "America/Chicago", ("512", "214", "713"), 6),
    _Region("OK", "America/Chicago", ("405", "918"), 3),
    _Region("CO", "America/Denver", ("303", "720", "970"), 4),
    _Region("AZ", "America/Phoenix", ("602", "480", "520"), 3),
    _Region("CA", "America/Los_Angeles", ("415", "213", "619", "916"), 6),
    _Region("WA", "America/Los_Angeles", ("206", "253", "509"), 3),
    _Region("AK", "America/Anchorage", ("907",), 1),
    _Region("HI", "Pacific/Honolulu", ("808",), 1),
)
_REGION_POOL: Final = tuple(r for r in _REGIONS for _ in range(r.weight))
_ZONES: Final = {r.zone: ZoneInfo(r.zone) for r in _REGIONS}

# A few names fall outside GSM-7 (Zoë, Siobhán) on purpose: they turn an SMS into
# UCS-2, which the segment counter and the preview must show.
_FIRST_NAMES: Final = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sophia", "Elijah", "Isabella",
    "James", "Mia", "Benjamin", "Amelia", "Lucas", "Harper", "Henry", "Evelyn", "Wei",
    "Priya", "Arjun", "Fatima", "Omar", "Aaliyah", "DeShawn", "Keanu", "Leilani",
    "Mei", "Hiroshi", "Yuki", "Nguyen", "Thanh", "José", "María", "Chloé", "Zoë",
    "Siobhán", "Seamus", "Ingrid", "Bjorn", "Kateryna", "Dmitri", "Ana", "Diego",
    "Camila", "Tomás", "Grace", "Samuel", "Naomi", "Ezra", "Maximilienne",
    "Christopher", "Margaret", "Patricia", "Robert", "Linda", "Tyrone", "Imani",
    "Kwame", "Abena", "Sana",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
    "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Tran", "Kim", "Park",
    "Chen", "Wang", "Patel", "Shah", "O'Brien", "O'Connor", "McCarthy", "Kahananui",
    "Begay", "Yazzie", "Okafor", "Mensah", "Kowalski", "Novak", "Ivanova", "Müller",
    "Søndergaard", "Peña", "García-Lopez", "Fitzgerald-Hayes",
)  # fmt: skip
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")
_CONSENT_SOURCES: Final = (
    ("intake-form",) * 8 + ("web-form",) * 5 + ("front-desk",) * 4 + ("import",) * 3
)
_NO_CONSENT: Final = ("", "", "")
_T = TypeVar("_T")
_CONSENT_DAYS: Final = 1500
# Forms are signed in office hours, 08:00:00 to 19:59:59 local time.
_OFFICE_TIMES: Final = tuple(
    f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(8 * 3600, 20 * 3600)
)
_FICTIONAL_LINES: Final = 100  # 555-0100 .. 555-0199
_LINE_STRIDE: Final = 37  # coprime to 100: an area code's first 100 phones all differ
_FAMILY_LINE: Final = 0.05  # share of patients on the previous same-state patient's number


def _ascii_slug(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.replace("ø", "o"))
    return "".join(c for c in decomposed.lower() if c.isascii() and (c.isalnum() or c == "-"))


_SLUGS: Final = {name: _ascii_slug(name) for name in _FIRST_NAMES + _LAST_NAMES}


def iter_patient_rows(
    count: int, *, seed: int = 1, as_of: date = DEFAULT_AS_OF
) -> Iterator[dict[str, str]]:
    """Yield ``count`` synthetic patient rows keyed by COLUMNS, in that order."""
    maker = _RowMaker(seed, as_of)
    for index in range(1, count + 1):
        yield maker.make_row(index)


def write_patients_csv(
    path: Path, count: int, *, seed: int = 1, as_of: date = DEFAULT_AS_OF
) -> None:
    """Write ``count`` synthetic patients to ``path`` as UTF-8 CSV with a header row."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        # make_row builds each dict in COLUMNS order; DictWriter's per-key lookups cost
        # a third of the write time.
        writer.writerows(row.values() for row in iter_patient_rows(count, seed=seed, as_of=as_of))


class _PhoneBook:
    """Fictional numbers as households have them (see the module's docstring).

    The area code and the format are drawn from the rows' stream as they always were;
    whether the patient shares a family line comes from a stream of its own, so the
    other columns of a seed's rows do not move when the household mix is tuned."""

    def __init__(self, rand: Callable[[], float], seed: int) -> None:
        self._random = rand
        self._family = random.Random(seed * 1_000_003 + 17).random  # noqa: S311
        self._used: dict[str, int] = {}
        # Every other US area code, interleaved by state so that movers come from
        # everywhere; numbers already issued are passed over.
        by_state = area_codes_by_state().values()
        codes = tuple(c for row in zip_longest(*by_state) for c in row if c)
        self._elsewhere = (
            f"{area}555{100 + (used * _LINE_STRIDE) % _FICTIONAL_LINES:04d}"
            for used in range(_FICTIONAL_LINES)
            for area in codes
        )
        self._issued: set[str] = set()
        self._all: list[str] = []
        self._last: dict[str, str] = {}

    def number(self, region: _Region) -> str:
        area = region.area_codes[int(self._random() * len(region.area_codes))]
        digits = self._last.get(region.state)
        if digits is None or self._family() >= _FAMILY_LINE:
            digits = self._fresh(area)
            self._last[region.state] = digits
        if self._random() < 0.8:
            return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        return f"+1{digits}"

    def _fresh(self, area: str) -> str:
        used = self._used.get(area, 0)
        while used < _FICTIONAL_LINES:
            used += 1
            self._used[area] = used
            digits = f"{area}555{100 + ((used - 1) * _LINE_STRIDE) % _FICTIONAL_LINES:04d}"
            if self._issue(digits):
                return digits
        for digits in self._elsewhere:
            if self._issue(digits):
                return digits
        return self._all[int(self._family() * len(self._all))]

    def _issue(self, digits: str) -> bool:
        if digits in self._issued:
            return False
        self._issued.add(digits)
        self._all.append(digits)
        return True


class _RowMaker:
    """One stream of rows. Picks use ``random()`` directly and dates come from caches:
    ``choice``/``randint`` and ``datetime.isoformat`` were two thirds of the time."""

    def __init__(self, seed: int, as_of: date) -> None:
        self._random = random.Random(seed).random  # noqa: S311 - test data, not secrets
        self._as_of = as_of
        self._phones = _PhoneBook(self._random, seed)
        self._days_ago: dict[int, str] = {}
        self._stamps: dict[str, list[tuple[str, str]]] = {}

    def make_row(self, index: int) -> dict[str, str]:
        rand = self._random
        region = self._pick(_REGION_POOL)
        first = "" if rand() < 0.01 else self._pick(_FIRST_NAMES)
        last = "" if rand() < 0.005 else self._pick(_LAST_NAMES)
        phone = self._phones.number(region) if rand() < 0.92 else ""
        email = self._make_email(index, first, last) if rand() < 0.90 or not phone else ""
        visit_days_ago = None if rand() < 0.05 else 1 + min(int(-420 * log(1.0 - rand())), 3650)
        next_appointment = self._in_days(1 + int(rand() * 60)) if rand() < 0.10 else ""
        sms = self._make_consent(region.zone, yes=0.70, no=0.06) if phone else _NO_CONSENT
        mail = self._make_consent(region.zone, yes=0.89, no=0.04) if email else _NO_CONSENT
        return {
            "external_id": f"P{index:06d}",
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "timezone": "" if rand() < 0.10 else region.zone,
            "state": "" if rand() < 0.05 else region.state,
            "tags": ";".join(self._make_tags(visit_days_ago)),
            "last_visit": "" if visit_days_ago is None else self._days_before(visit_days_ago),
            "next_appointment": next_appointment,
            "sms_consent": sms[0],
            "sms_consent_at": sms[1],
            "sms_consent_source": sms[2],
            "email_consent": mail[0],
            "email_consent_at": mail[1],
            "email_consent_source": mail[2],
            "preferred_channel": self._make_preference(phone, email),
        }

    def _pick(self, items: Sequence[_T]) -> _T:
        return items[int(self._random() * len(items))]

    def _make_email(self, index: int, first: str, last: str) -> str:
        # The row number keeps every address unique: two patients never share one.
        first_slug, last_slug = _SLUGS.get(first, ""), _SLUGS.get(last, "")
        style = self._random()
        if not first_slug or not last_slug:
            local = f"{first_slug or last_slug or 'patient'}{index}"
        elif style < 0.5:
            local = f"{first_slug}.{last_slug}{index}"
        elif style < 0.8:
            local = f"{first_slug[0]}{last_slug}{index}"
        else:
            local = f"{first_slug}_{index}"
        return f"{local}@{self._pick(_EMAIL_DOMAINS)}"

    def _make_tags(self, visit_days_ago: int | None) -> list[str]:
        rand = self._random
        tags: list[str] = []
        if rand() < 0.97:
            recent = visit_days_ago is None or visit_days_ago <= 548
            tags.append("active" if recent else "inactive")
        if rand() < 0.65:
            tags.append("acupuncture")
        if rand() < 0.30:
            tags.append("massage")
        if rand() < 0.15:
            tags.append("herbal")
        if visit_days_ago is None or (visit_days_ago <= 90 and rand() < 0.3):
            tags.append("new-patient")
        if rand() < 0.03:
            tags.append("do-not-market")
        return tags

    def _make_consent(self, zone: str, *, yes: float, no: float) -> tuple[str, str, str]:
        rand = self._random
        roll = rand()
        if roll >= yes + no:
            return _NO_CONSENT
        day, offset = self._consent_days(zone)[int(rand() * _CONSENT_DAYS)]
        return (
            "yes" if roll < yes else "no",
            f"{day}T{self._pick(_OFFICE_TIMES)}{offset}",
            self._pick(_CONSENT_SOURCES),
        )

    def _make_preference(self, phone: str, email: str) -> str:
        roll = self._random()
        if roll < 0.35 and phone:
            return "sms"
        if 0.35 <= roll < 0.65 and email:
            return "email"
        return ""

    def _days_before(self, days: int) -> str:
        text = self._days_ago.get(days)
        if text is None:
            text = self._days_ago[days] = (self._as_of - timedelta(days=days)).isoformat()
        return text

    def _in_days(self, days: int) -> str:
        return (self._as_of + timedelta(days=days)).isoformat()

    def _consent_days(self, zone: str) -> list[tuple[str, str]]:
        """(date, UTC offset) for each of the _CONSENT_DAYS days before as_of, in zone."""
        days = self._stamps.get(zone)
        if days is None:
            days = self._stamps[zone] = []
            for days_ago in range(1, _CONSENT_DAYS + 1):
                day = self._as_of - timedelta(days=days_ago)
                # DST changes between 01:00 and 03:00, so noon's offset holds all day.
                noon = datetime(day.year, day.month, day.day, 12, tzinfo=_ZONES[zone])
                days.append((day.isoformat(), noon.isoformat()[-6:]))
        return days


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic patients CSV.")
    parser.add_argument("path", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF)
    args = parser.parse_args(argv)
    write_patients_csv(args.path, args.count, seed=args.seed, as_of=args.as_of)


if __name__ == "__main__":
    main()
