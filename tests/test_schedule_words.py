"""The schedule in plain English, the builder's kinds, and the next occurrences on the
clinic's clock (campaigns.clock.schedule_words), across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from campaigns.clock.schedule_words import (
    Choice,
    choice_of,
    describe,
    rule_of,
    still_open,
    upcoming,
)
from campaigns.clock.schedules import Schedule


@pytest.mark.parametrize(
    ("rrule", "once", "said"),
    [
        (
            "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15",
            None,
            "Every year on 15 October at 10:00 in each patient's time zone",
        ),
        (
            None,
            date(2027, 3, 5),
            "Once, on Friday 5 March 2027, at 10:00 in each patient's time zone",
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=1",
            None,
            "Every month on the 1st at 10:00 in each patient's time zone",
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=22",
            None,
            "Every month on the 22nd at 10:00 in each patient's time zone",
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=13",
            None,
            "Every month on the 13th at 10:00 in each patient's time zone",
        ),
        (
            "FREQ=WEEKLY;BYDAY=MO,WE,FR",
            None,
            "Every week on Monday, Wednesday and Friday at 10:00 in each patient's time zone",
        ),
        (
            "FREQ=WEEKLY;BYDAY=TU",
            None,
            "Every week on Tuesday at 10:00 in each patient's time zone",
        ),
        ("FREQ=DAILY", None, "Every day at 10:00 in each patient's time zone"),
        (
            "FREQ=MONTHLY;BYDAY=1MO",
            None,
            "On each date of the rule FREQ=MONTHLY;BYDAY=1MO, at 10:00 in each patient's time zone",
        ),
    ],
)
def test_a_schedule_reads_as_plain_english(rrule: str | None, once: date | None, said: str) -> None:
    assert describe(rrule, once, time(10, 0)) == said


@pytest.mark.parametrize(
    "choice",
    [
        Choice("once", once="2027-03-05"),
        Choice("yearly", month="10", day="15"),
        Choice("monthly", day="28"),
        Choice("weekly", weekdays=("MO", "TH")),
        Choice("rrule", rrule="FREQ=MONTHLY;BYDAY=1MO"),
    ],
)
def test_each_builder_kind_reads_back_as_itself(choice: Choice) -> None:
    rrule, once, problems = rule_of(choice)
    assert problems == {}
    assert choice_of(rrule, once) == choice


def test_weekdays_are_written_in_calendar_order() -> None:
    assert rule_of(Choice("weekly", weekdays=("FR", "MO")))[0] == "FREQ=WEEKLY;BYDAY=MO,FR"


@pytest.mark.parametrize(
    ("choice", "problems"),
    [
        (Choice("yearly", month="2", day="30"), {"day": "February has no day 30"}),
        (Choice("yearly", month="", day="15"), {"month": "Month: pick a month"}),
        (
            Choice("monthly", day="thirty"),
            {"day": "Day of the month must be a whole number between 1 and 31"},
        ),
        (Choice("weekly"), {"weekdays": "Weekdays: tick at least one day of the week"}),
        (Choice("once"), {"once": "Date is required: pick the day the campaign sends"}),
    ],
)
def test_a_builder_mistake_is_named_by_its_field(choice: Choice, problems: dict[str, str]) -> None:
    assert rule_of(choice)[2] == problems


def test_the_29th_of_february_is_a_yearly_date() -> None:
    assert rule_of(Choice("yearly", month="2", day="29"))[2] == {}


def _yearly(month: int, day: int, at: time, zone: str = "America/New_York") -> Schedule:
    return Schedule(
        timezone=zone, send_time=at, rrule=f"FREQ=YEARLY;BYMONTH={month};BYMONTHDAY={day}"
    )


def test_the_next_three_occurrences_are_on_the_clinics_clock() -> None:
    schedule = _yearly(10, 15, time(10, 0), "America/Chicago")
    now = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert upcoming(schedule, now) == [
        "Fri 15 Oct 2027, 10:00 CDT",
        "Sun 15 Oct 2028, 10:00 CDT",
        "Mon 15 Oct 2029, 10:00 CDT",
    ]


def test_an_occurrence_later_today_is_still_upcoming_and_one_passed_is_not() -> None:
    schedule = _yearly(10, 15, time(10, 0))
    morning = datetime(2027, 10, 15, 13, 59, tzinfo=UTC)  # 09:59 EDT
    assert upcoming(schedule, morning, 1) == ["Fri 15 Oct 2027, 10:00 EDT"]
    assert upcoming(schedule, morning.replace(hour=14, minute=1), 1) == [
        "Sun 15 Oct 2028, 10:00 EDT"
    ]


def test_a_send_time_in_the_spring_gap_moves_to_the_end_of_the_gap() -> None:
    # 14 March 2027: New York's clocks jump from 02:00 to 03:00.
    schedule = _yearly(3, 14, time(2, 30))
    assert upcoming(schedule, datetime(2027, 1, 1, tzinfo=UTC), 2) == [
        "Sun 14 Mar 2027, 03:00 EDT",
        "Tue 14 Mar 2028, 02:30 EDT",
    ]


def test_a_send_time_that_happens_twice_in_the_autumn_is_the_first() -> None:
    # 7 November 2027: New York's clocks go back from 02:00 EDT to 01:00 EST.
    schedule = _yearly(11, 7, time(1, 30))
    assert upcoming(schedule, datetime(2027, 1, 1, tzinfo=UTC), 1) == ["Sun 7 Nov 2027, 01:30 EDT"]


def test_a_weekly_schedule_keeps_its_wall_time_across_the_change() -> None:
    schedule = Schedule(
        timezone="Europe/London", send_time=time(9, 0), rrule="FREQ=WEEKLY;BYDAY=SU"
    )
    # 31 October 2027: London leaves summer time.
    assert upcoming(schedule, datetime(2027, 10, 20, tzinfo=UTC)) == [
        "Sun 24 Oct 2027, 09:00 BST",
        "Sun 31 Oct 2027, 09:00 GMT",
        "Sun 7 Nov 2027, 09:00 GMT",
    ]


def test_an_occurrence_whose_send_time_passed_within_its_grace_is_still_open() -> None:
    schedule = _yearly(10, 15, time(10, 0))  # grace: the model's default, 6 h
    afternoon = datetime(2027, 10, 15, 17, 0, tzinfo=UTC)  # 13:00 EDT
    found = still_open(schedule, afternoon)
    assert found is not None
    day, words = found
    assert day == date(2027, 10, 15)
    assert words.startswith("The occurrence of Fri 15 Oct 2027 is still open until 16:00 EDT")
    assert still_open(schedule, afternoon.replace(hour=20, minute=1)) is None  # 16:01 EDT
    assert still_open(schedule, datetime(2027, 10, 16, 17, 0, tzinfo=UTC)) is None
