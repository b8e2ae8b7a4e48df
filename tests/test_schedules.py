"""Occurrences, start windows and the clinic's next sends (campaigns.clock.schedules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.clock.schedules import (
    Schedule,
    due_occurrences,
    next_sends,
    occurrence_dates,
    occurrence_key,
    parse_rrule,
    start_window,
)
from campaigns.errors import InputError

NEW_YORK = ZoneInfo("America/New_York")
FLU_SEASON = "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def yearly(**overrides: object) -> Schedule:
    fields: dict[str, object] = {
        "timezone": "America/New_York",
        "send_time": time(10, 0),
        "rrule": FLU_SEASON,
    }
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


# -- occurrences -----------------------------------------------------------------------


def test_a_yearly_rule_falls_on_its_date_every_year() -> None:
    assert occurrence_dates(yearly(), date(2026, 10, 15), 3) == [
        date(2027, 10, 15),
        date(2028, 10, 15),
        date(2029, 10, 15),
    ]
    assert occurrence_dates(yearly(), date(2026, 10, 14), 1) == [date(2026, 10, 15)]


def test_a_rule_with_until_stops() -> None:
    schedule = yearly(rrule=FLU_SEASON + ";UNTIL=20271015")
    assert occurrence_dates(schedule, date(2026, 1, 1), 5) == [
        date(2026, 10, 15),
        date(2027, 10, 15),
    ]


def test_a_once_schedule_has_one_occurrence() -> None:
    schedule = Schedule("America/New_York", time(10), once=date(2027, 1, 5))
    assert occurrence_dates(schedule, date(2027, 1, 4), 3) == [date(2027, 1, 5)]
    assert occurrence_dates(schedule, date(2027, 1, 5), 3) == []


def test_occurrence_key_is_the_iso_date() -> None:
    assert occurrence_key(date(2027, 10, 15)) == "2027-10-15"


@pytest.mark.parametrize("freq", ["HOURLY", "MINUTELY", "SECONDLY"])
def test_a_rule_repeating_within_a_day_is_rejected(freq: str) -> None:
    with pytest.raises(ValueError, match=f"FREQ={freq} repeats within a day"):
        parse_rrule(f"FREQ={freq};BYMONTH=10")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("FREQ=FORTNIGHTLY", "FREQ set to one of"),
        ("BYMONTH=10;BYMONTHDAY=15", "FREQ set to one of"),
        ("FREQ=YEARLY;BYMONTH=13;BYMONTHDAY=1", "BYMONTH=13 is out of range"),
        ("FREQ=YEARLY;BYMONTHDAY=0", "BYMONTHDAY=0 is out of range"),
        ("FREQ=YEARLY;INTERVAL=0;BYMONTHDAY=1", "INTERVAL=0 is out of range"),
        ("FREQ=WEEKLY;BYDAY=XX", "not a valid RRULE"),
        ("FREQ=YEARLY;BYMONTH=10;BYMONTH=11;BYMONTHDAY=1", "gives BYMONTH twice"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never falls on a date"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never falls on a date"),
        ("FREQ=DAILY;BYHOUR=10", "BYHOUR is not supported"),
        (FLU_SEASON + ";UNTIL=20301015T100000Z", "must be a date"),
        (FLU_SEASON + ";UNTIL=19991015", "before the rule's first date"),
        (FLU_SEASON + ";COUNT=2;UNTIL=20301015", "COUNT or UNTIL, not both"),
        ("FREQ=YEARLY;BYMONTH=10", "without a day"),
        (FLU_SEASON + ";COUNT=3", "COUNT counts occurrences"),
        (FLU_SEASON + ";INTERVAL=2", "INTERVAL counts periods"),
        ("DTSTART:20261015\nRRULE:" + FLU_SEASON, "one RRULE line"),
        ("FREQ=YEARLY;BYMONTHDAY", "not NAME=VALUE"),
    ],
)
def test_an_invalid_rrule_is_rejected_with_its_reason(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_rrule(text)


@pytest.mark.parametrize(
    "text",
    [
        FLU_SEASON,
        "RRULE:" + FLU_SEASON,
        "freq=monthly;byday=1mo",
        "FREQ=DAILY",
        "FREQ=YEARLY;BYEASTER=-2",
    ],
)
def test_a_valid_rrule_is_accepted(text: str) -> None:
    parse_rrule(text)


def test_a_schedule_in_an_unknown_zone_is_rejected() -> None:
    with pytest.raises(InputError, match="not an IANA time zone"):
        yearly(timezone="Mars/Olympus_Mons")


def test_a_schedule_needs_exactly_one_of_rrule_and_once() -> None:
    with pytest.raises(InputError, match="exactly one"):
        Schedule("America/New_York", time(10))
    with pytest.raises(InputError, match="exactly one"):
        Schedule("America/New_York", time(10), rrule=FLU_SEASON, once=date(2027, 1, 5))


# -- when a run may start ----------------------------------------------------------------


def test_the_start_window_opens_in_utc_plus_14_and_closes_after_grace_on_the_clinics_clock() -> (
    None
):
    opens, closes = start_window(yearly(), date(2027, 10, 15))
    assert opens == utc(2027, 10, 14, 20, 0)  # 10:00 on the 15th in Kiritimati
    assert closes == utc(2027, 10, 15, 20, 0)  # 10:00 EDT + 6 h


def test_an_occurrence_is_not_due_before_its_window_opens() -> None:
    assert due_occurrences(yearly(), utc(2027, 10, 14, 19, 59), "2026-10-15") == []


def test_an_occurrence_starts_inside_its_window() -> None:
    assert due_occurrences(yearly(), utc(2027, 10, 14, 20, 0), "2026-10-15") == [
        (date(2027, 10, 15), "start")
    ]
    assert due_occurrences(yearly(), utc(2027, 10, 15, 19, 59), "2026-10-15") == [
        (date(2027, 10, 15), "start")
    ]


def test_an_occurrence_is_missed_once_grace_has_passed() -> None:
    assert due_occurrences(yearly(), utc(2027, 10, 15, 20, 0), "2026-10-15") == [
        (date(2027, 10, 15), "missed")
    ]


def test_a_beat_down_for_years_reports_each_missed_occurrence_and_starts_the_open_one() -> None:
    assert due_occurrences(yearly(), utc(2028, 10, 15, 12, 0), "2025-10-15") == [
        (date(2026, 10, 15), "missed"),
        (date(2027, 10, 15), "missed"),
        (date(2028, 10, 15), "start"),
    ]


def test_nothing_is_due_after_the_last_recorded_occurrence_until_the_next_window() -> None:
    assert due_occurrences(yearly(), utc(2027, 10, 15, 12, 0), "2027-10-15") == []


def test_without_a_last_key_only_an_open_window_is_due_and_nothing_is_missed() -> None:
    assert due_occurrences(yearly(), utc(2027, 10, 15, 12, 0), None) == [
        (date(2027, 10, 15), "start")
    ]
    assert due_occurrences(yearly(), utc(2027, 10, 16, 12, 0), None) == []


def test_a_zero_grace_once_schedule_is_missed_after_the_clinics_send_time() -> None:
    schedule = Schedule("America/New_York", time(10), once=date(2027, 1, 5), grace=timedelta(0))
    assert due_occurrences(schedule, utc(2027, 1, 5, 14, 59), "2027-01-04") == [
        (date(2027, 1, 5), "start")
    ]
    assert due_occurrences(schedule, utc(2027, 1, 5, 15, 0), "2027-01-04") == [
        (date(2027, 1, 5), "missed")
    ]


def test_next_sends_are_on_the_clinics_clock_across_dst() -> None:
    schedule = yearly(rrule="FREQ=MONTHLY;BYMONTHDAY=1")
    sends = next_sends(schedule, utc(2027, 10, 2, 0, 0), 2)
    assert sends == [
        datetime(2027, 11, 1, 10, 0, tzinfo=NEW_YORK),
        datetime(2027, 12, 1, 10, 0, tzinfo=NEW_YORK),
    ]
    assert [s.utcoffset() for s in sends] == [timedelta(hours=-4), timedelta(hours=-5)]


def test_next_sends_includes_today_until_its_send_time_passes() -> None:
    assert next_sends(yearly(), utc(2027, 10, 15, 14, 0), 1)[0].date() == date(2027, 10, 15)
    assert next_sends(yearly(), utc(2027, 10, 15, 14, 1), 1)[0].date() == date(2028, 10, 15)
