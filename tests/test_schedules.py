"""Occurrences, start windows, local send times and quiet hours (campaigns.clock.schedules)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.clock import wallclock as localtime
from campaigns.clock.schedules import (
    Schedule,
    Window,
    due_occurrences,
    is_allowed,
    local_due,
    next_allowed,
    next_sends,
    occurrence_dates,
    occurrence_key,
    parse_rrule,
    patient_state,
    patient_zone,
    start_window,
    state_cap,
    window_for,
)

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PHOENIX = ZoneInfo("America/Phoenix")
HONOLULU = ZoneInfo("Pacific/Honolulu")
FLU_SEASON = "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def wall(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """A wall-clock reading in ``zone``, as a UTC instant."""
    local = datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold)
    return local.astimezone(UTC)


def yearly(**overrides: object) -> Schedule:
    fields: dict[str, object] = {
        "timezone": "America/New_York",
        "send_time": time(10, 0),
        "rrule": FLU_SEASON,
    }
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_window_cache() -> Iterator[None]:
    """Some tests swap the window table; the per-day spans cached from it go too."""
    localtime._open_span.cache_clear()
    yield
    localtime._open_span.cache_clear()


@pytest.fixture
def test_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A table whose windows open inside the small hours, where DST changes happen.

    No real rule opens before 08:00, so only a made-up table can show how a window
    that opens in a spring-forward gap or a fall-back repeat behaves.
    """
    data = yaml.safe_load(
        """
        version: 1
        federal:
          windows: {all: {opens: "00:00", closes: "21:00"}}
          source: test
        states:
          CT:
            windows: {all: {opens: "02:30", closes: "21:00"}}
            source: test
          RI:
            windows: {all: {opens: "01:30", closes: "21:00"}}
            source: test
        """
    )
    monkeypatch.setattr(localtime, "_table", lambda: localtime._parse_table(data))
    yield


# -- DST: the spring-forward gap (US, 2027-03-14, 02:00 -> 03:00) ----------------------


def test_a_send_time_inside_the_spring_forward_gap_moves_to_the_end_of_the_gap() -> None:
    # 02:30 never happens on 14 March 2027 in New York; 03:00 EDT is the first instant after.
    assert localtime.resolve_wall_time(date(2027, 3, 14), time(2, 30), NEW_YORK) == utc(
        2027, 3, 14, 7, 0
    )


def test_a_send_time_inside_the_gap_is_then_moved_into_the_window_in_daylight_time() -> None:
    # 08:00 EDT is 12:00 UTC; reading the window with the old EST offset would give 13:00.
    assert local_due(date(2027, 3, 14), time(2, 30), NEW_YORK, None) == utc(2027, 3, 14, 12, 0)


def test_texas_on_spring_forward_sunday_opens_at_noon_daylight_time() -> None:
    assert local_due(date(2027, 3, 14), time(2, 30), CHICAGO, "TX") == utc(2027, 3, 14, 17, 0)


def test_the_window_on_spring_forward_day_opens_and_closes_on_daylight_time() -> None:
    day_start = wall(NEW_YORK, 2027, 3, 14, 1, 30)  # EST, before the change
    assert next_allowed(day_start, NEW_YORK, None) == wall(NEW_YORK, 2027, 3, 14, 8, 0)
    assert not is_allowed(wall(NEW_YORK, 2027, 3, 14, 7, 59), NEW_YORK, None)
    assert is_allowed(wall(NEW_YORK, 2027, 3, 14, 8, 0), NEW_YORK, None)
    assert is_allowed(wall(NEW_YORK, 2027, 3, 14, 20, 59, 59), NEW_YORK, None)
    assert not is_allowed(wall(NEW_YORK, 2027, 3, 14, 21, 0), NEW_YORK, None)


@pytest.mark.usefixtures("test_table")
def test_a_window_opening_inside_the_gap_opens_at_the_first_instant_after_it() -> None:
    # The CT test window opens at 02:30, which does not exist that day.
    just_before = wall(NEW_YORK, 2027, 3, 14, 1, 59, 59)
    assert next_allowed(just_before, NEW_YORK, "CT") == utc(2027, 3, 14, 7, 0)  # 03:00 EDT
    assert not is_allowed(just_before, NEW_YORK, "CT")
    assert is_allowed(utc(2027, 3, 14, 7, 0), NEW_YORK, "CT")


# -- DST: the fall-back repeat (US, 2026-11-01 and 2027-11-07, 02:00 -> 01:00) ---------


@pytest.mark.parametrize("day", [date(2026, 11, 1), date(2027, 11, 7)])
def test_an_ambiguous_send_time_means_its_first_instance(day: date) -> None:
    first = datetime.combine(day, time(1, 30), tzinfo=NEW_YORK)  # 01:30 EDT
    assert localtime.resolve_wall_time(day, time(1, 30), NEW_YORK) == first.astimezone(UTC)
    assert first.astimezone(UTC).hour == 5


@pytest.mark.parametrize("day", [date(2026, 11, 1), date(2027, 11, 7)])
def test_an_ambiguous_send_time_is_moved_to_the_window_in_standard_time(day: date) -> None:
    # 08:00 EST is 13:00 UTC; the EDT reading would be an hour early.
    assert local_due(day, time(1, 30), NEW_YORK, None) == datetime.combine(
        day, time(13, 0), tzinfo=UTC
    )


def test_next_allowed_from_the_evening_before_fall_back_lands_on_standard_time() -> None:
    evening = wall(NEW_YORK, 2026, 10, 31, 21, 30)  # EDT, after the window closed
    assert next_allowed(evening, NEW_YORK, None) == utc(2026, 11, 1, 13, 0)
    during_repeat = wall(LOS_ANGELES, 2027, 11, 7, 1, 30, fold=1)  # the second 01:30, PST
    assert next_allowed(during_repeat, LOS_ANGELES, None) == utc(2027, 11, 7, 16, 0)


@pytest.mark.usefixtures("test_table")
def test_a_window_opening_at_an_ambiguous_time_opens_at_its_first_instance() -> None:
    # The RI test window opens at 01:30, which New York sees twice on 2026-11-01.
    midnight = wall(NEW_YORK, 2026, 11, 1, 0, 0)
    assert next_allowed(midnight, NEW_YORK, "RI") == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert is_allowed(wall(NEW_YORK, 2026, 11, 1, 1, 15, fold=1), NEW_YORK, "RI")


# -- zones without DST ---------------------------------------------------------------


def test_phoenix_keeps_mountain_standard_time_through_the_us_changes() -> None:
    for day in (date(2027, 3, 14), date(2027, 7, 1), date(2027, 11, 7)):
        assert local_due(day, time(9, 0), PHOENIX, "AZ") == datetime.combine(
            day, time(16, 0), tzinfo=UTC
        )


def test_honolulu_sends_at_its_own_ten_oclock_and_waits_for_eight() -> None:
    assert local_due(date(2027, 10, 15), time(10, 0), HONOLULU, "HI") == utc(2027, 10, 15, 20, 0)
    assert local_due(date(2027, 10, 15), time(7, 0), HONOLULU, "HI") == utc(2027, 10, 15, 18, 0)


# -- state windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "zone", "local", "expected"),
    [
        # TX: Sunday opens at noon.
        ("TX", CHICAGO, datetime(2027, 10, 17, 10, 0), datetime(2027, 10, 17, 12, 0)),
        # TX: Saturday opens at nine.
        ("TX", CHICAGO, datetime(2027, 10, 16, 8, 30), datetime(2027, 10, 16, 9, 0)),
        # RI: Saturday opens at ten.
        ("RI", NEW_YORK, datetime(2027, 10, 16, 9, 30), datetime(2027, 10, 16, 10, 0)),
        # RI: a weekday closes at six; Thursday opens at nine.
        ("RI", NEW_YORK, datetime(2027, 10, 13, 18, 30), datetime(2027, 10, 14, 9, 0)),
        # RI: Friday evening waits for Saturday's ten o'clock.
        ("RI", NEW_YORK, datetime(2027, 10, 15, 18, 30), datetime(2027, 10, 16, 10, 0)),
        # RI: a weekend day closes at five.
        ("RI", NEW_YORK, datetime(2027, 10, 16, 17, 0), datetime(2027, 10, 17, 10, 0)),
        # CT opens at nine.
        ("CT", NEW_YORK, datetime(2027, 10, 13, 8, 30), datetime(2027, 10, 13, 9, 0)),
        # FL closes at eight in the evening.
        ("FL", NEW_YORK, datetime(2027, 10, 13, 20, 30), datetime(2027, 10, 14, 8, 0)),
        # Federal: 22:00 is too late; 08:00 the next day, not dropped.
        (None, NEW_YORK, datetime(2027, 10, 13, 22, 0), datetime(2027, 10, 14, 8, 0)),
        # A state with no rule of its own gets the federal window.
        ("NY", NEW_YORK, datetime(2027, 10, 13, 20, 30), datetime(2027, 10, 13, 20, 30)),
    ],
)
def test_next_allowed_moves_into_the_states_window(
    state: str | None, zone: ZoneInfo, local: datetime, expected: datetime
) -> None:
    instant = local.replace(tzinfo=zone)
    assert next_allowed(instant, zone, state) == expected.replace(tzinfo=zone)
    assert is_allowed(instant, zone, state) == (local == expected)


def test_a_message_due_at_ten_at_night_goes_at_eight_the_next_morning() -> None:
    due = local_due(date(2027, 10, 13), time(22, 0), NEW_YORK, None)
    assert due == wall(NEW_YORK, 2027, 10, 14, 8, 0)


def test_a_message_due_inside_the_window_is_never_moved_earlier_or_later() -> None:
    assert local_due(date(2027, 10, 13), time(10, 0), NEW_YORK, "FL") == utc(2027, 10, 13, 14, 0)


def test_the_federal_window_closes_at_nine_exclusive() -> None:
    assert is_allowed(wall(NEW_YORK, 2027, 10, 13, 20, 59, 59), NEW_YORK, None)
    assert not is_allowed(wall(NEW_YORK, 2027, 10, 13, 21, 0), NEW_YORK, None)


def test_window_for_reads_the_state_table_by_weekday() -> None:
    assert window_for("TX", date(2027, 10, 17)) == Window(time(12), time(21))
    assert window_for("TX", date(2027, 10, 18)) == Window(time(9), time(21))
    assert window_for("RI", date(2027, 10, 13)) == Window(time(9), time(18))
    assert window_for("RI", date(2027, 10, 17)) == Window(time(10), time(17))
    assert window_for("ct", date(2027, 10, 13)) == Window(time(9), time(20))
    assert window_for(None, date(2027, 10, 13)) == Window(time(8), time(21))


def test_no_state_window_is_wider_than_the_federal_one() -> None:
    federal = window_for(None, date(2027, 10, 11))
    for code in localtime._table().states:
        for offset in range(7):
            window = window_for(code, date(2027, 10, 11) + timedelta(days=offset))
            assert federal.opens <= window.opens and window.closes <= federal.closes


def test_a_state_cannot_widen_the_federal_window(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(
        """
        version: 1
        federal: {windows: {all: {opens: "08:00", closes: "21:00"}}, source: s}
        states: {TX: {windows: {all: {opens: "06:00", closes: "23:00"}}, source: s}}
        """
    )
    monkeypatch.setattr(localtime, "_table", lambda: localtime._parse_table(data))
    assert window_for("TX", date(2027, 10, 13)) == Window(time(8), time(21))


def test_a_day_marked_closed_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(
        """
        version: 1
        federal: {windows: {all: {opens: "08:00", closes: "21:00"}}, source: s}
        states: {TX: {windows: {all: {opens: "09:00", closes: "21:00"}, sun: closed}, source: s}}
        """
    )
    monkeypatch.setattr(localtime, "_table", lambda: localtime._parse_table(data))
    saturday_night = wall(CHICAGO, 2027, 10, 16, 21, 30)
    assert next_allowed(saturday_night, CHICAGO, "TX") == wall(CHICAGO, 2027, 10, 18, 9, 0)


def test_florida_oklahoma_and_maryland_cap_texts_at_three_a_day() -> None:
    assert [state_cap(code) for code in ("FL", "OK", "MD", "TX", None)] == [3, 3, 3, None, None]


@pytest.mark.parametrize(
    ("windows", "complaint"),
    [
        ('{all: {opens: "09:00", closes: 21:00}}', "quoted"),
        ('{sun: {opens: "12:00", closes: "21:00"}}', "no window for"),
        ('{all: {opens: "21:00", closes: "09:00"}}', "not before"),
        ('{someday: {opens: "09:00", closes: "21:00"}}', "unknown day selector"),
    ],
)
def test_a_bad_window_table_is_rejected_naming_the_place(windows: str, complaint: str) -> None:
    data = yaml.safe_load(f"version: 1\nfederal: {{windows: {windows}, source: s}}\n")
    with pytest.raises(ValueError, match=complaint) as caught:
        localtime._parse_table(data)
    assert "quiet_hours.yaml: federal.windows" in str(caught.value)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(datetime(2027, 10, 13, 9, 0), NEW_YORK, None)


# -- where the patient is ------------------------------------------------------------


def test_patient_zone_comes_from_the_area_code() -> None:
    assert patient_zone(None, "+12125550123", "UTC") == NEW_YORK
    assert patient_zone("", "+18085550123", "UTC") == HONOLULU


def test_the_patients_own_zone_wins_over_the_area_code() -> None:
    assert patient_zone("America/Chicago", "+12125550123", "UTC") == CHICAGO


def test_patient_zone_falls_back_when_the_area_code_spans_zones() -> None:
    # 208 (Idaho) is Boise or Los Angeles; toll-free 800 is anywhere.
    assert patient_zone(None, "+12085550123", "America/Denver") == ZoneInfo("America/Denver")
    assert patient_zone(None, "+18005550123", "America/Denver") == ZoneInfo("America/Denver")
    assert patient_zone(None, None, "America/Denver") == ZoneInfo("America/Denver")


def test_candidate_zones_agree_only_when_their_clocks_never_differ() -> None:
    assert localtime._zones_agree(("America/New_York", "America/Toronto"), 2027)
    assert not localtime._zones_agree(("America/Boise", "America/Los_Angeles"), 2027)
    # Same offsets all winter, but Phoenix skips daylight time.
    assert not localtime._zones_agree(("America/Denver", "America/Phoenix"), 2027)


def test_an_unknown_zone_name_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        patient_zone("America/Gotham", "+12125550123", "UTC")


def test_patient_state_comes_from_the_area_code() -> None:
    assert patient_state(None, "+13055550123") == "FL"  # geocoded "Florida"
    assert patient_state(None, "+12135550123") == "CA"  # geocoded "Los Angeles, CA"
    assert patient_state(None, "+17875550123") == "PR"


def test_the_patients_own_state_wins_and_is_normalised() -> None:
    assert patient_state("tx", "+13055550123") == "TX"
    assert patient_state("Rhode Island", None) == "RI"


def test_patient_state_is_none_outside_the_us() -> None:
    assert patient_state(None, "+14165550123") is None  # Toronto
    assert patient_state(None, None) is None


def _geocoded_state(phone: str) -> str | None:
    """What the geocoder itself says, the way Meridian read it before the table."""
    import phonenumbers
    from phonenumbers import geocoder  # here: only these tests pay for its 100 MB

    number = phonenumbers.parse(phone, None)
    region = phonenumbers.region_code_for_number(number)
    if region in {"AS", "GU", "MP", "PR", "VI"}:
        return str(region)
    if region != "US":
        return None
    return localtime.state_from_description(geocoder.description_for_number(number, "en"))


def _numbers_under_every_us_prefix() -> Iterator[str]:
    from phonenumbers.geodata import GEOCODE_DATA

    for prefix in GEOCODE_DATA:
        if prefix.startswith("1") and len(prefix) > 1:
            for tail in ("0000000000", "5550123456", "9999999999"):
                yield "+" + (prefix + tail)[:11]


def test_the_area_code_table_gives_the_geocoders_state_for_every_us_prefix() -> None:
    # Every prefix the geocoder knows, padded three ways, plus numbers it knows
    # nothing about: the table must never disagree with the library it came from.
    phones = [*_numbers_under_every_us_prefix(), "+18005550123", "+12035550123", "+19995550123"]
    disagree = [
        phone for phone in phones if localtime._state_from_phone(phone) != _geocoded_state(phone)
    ]
    assert len(phones) > 10_000
    assert disagree == []


def test_the_shipped_area_code_table_is_the_one_the_installed_phonenumbers_generates() -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "area_codes.py"
    spec = importlib.util.spec_from_file_location("area_codes", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = module.TABLE.read_text(encoding="utf-8")
    assert shipped == module.render(), "run `python scripts/area_codes.py` and commit the table"


def test_a_worker_never_loads_the_geocoder() -> None:
    code = (
        "import sys; from campaigns.clock.wallclock import patient_state;"
        "assert patient_state(None, '+13055550123') == 'FL';"
        "print('phonenumbers.geocoder' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_an_unknown_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a USPS state code"):
        patient_state("XX", None)


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


def test_a_counted_rule_counts_from_its_start() -> None:
    schedule = yearly(rrule=FLU_SEASON + ";COUNT=2", starts=date(2026, 1, 1))
    assert occurrence_dates(schedule, date(2020, 1, 1), 5) == [
        date(2026, 10, 15),
        date(2027, 10, 15),
    ]
    assert occurrence_dates(schedule, date(2027, 10, 15), 5) == []


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
    with pytest.raises(ValueError, match="not an IANA time zone"):
        yearly(timezone="Mars/Olympus_Mons")


def test_a_schedule_needs_exactly_one_of_rrule_and_once() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule("America/New_York", time(10))
    with pytest.raises(ValueError, match="exactly one"):
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


# -- properties ----------------------------------------------------------------------


_ZONES = sorted(available_timezones() - {"Factory", "localtime"})
_STATES = [None, "TX", "RI", "CT", "FL", "OK", "MD", "MS", "NJ", "NY", "AZ", "HI"]


@settings(max_examples=400, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
    ),
    zone_name=st.sampled_from(_ZONES),
    state=st.sampled_from(_STATES),
)
def test_next_allowed_is_allowed_never_early_and_never_later_than_needed(
    instant: datetime, zone_name: str, state: str | None
) -> None:
    zone = ZoneInfo(zone_name)
    result = next_allowed(instant, zone, state)
    assert result >= instant
    assert is_allowed(result, zone, state)
    if result > instant:
        assert not is_allowed(result - timedelta(microseconds=1), zone, state)


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
    send=st.times(),
    zone_name=st.sampled_from(
        [
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Los_Angeles",
            "America/Anchorage",
            "America/Phoenix",
            "Pacific/Honolulu",
        ]
    ),
    state=st.sampled_from(_STATES),
)
def test_local_due_is_never_before_the_patients_own_send_time(
    day: date, send: time, zone_name: str, state: str | None
) -> None:
    zone = ZoneInfo(zone_name)
    due = local_due(day, send, zone, state)
    assert is_allowed(due, zone, state)
    assert due >= localtime.resolve_wall_time(day, send, zone)
    assert due.tzinfo is UTC
