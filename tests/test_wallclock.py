"""DST gaps and repeats, zones without DST, windows (campaigns.clock.wallclock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.clock import quiet_hours, wallclock
from campaigns.clock.wallclock import is_allowed, local_due, next_allowed, resolve_wall_time
from campaigns.errors import ConfigError

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PHOENIX = ZoneInfo("America/Phoenix")
HONOLULU = ZoneInfo("Pacific/Honolulu")


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


@pytest.fixture(autouse=True)
def _fresh_window_cache() -> Iterator[None]:
    """Some tests swap the window table; the per-day spans cached from it go too."""
    wallclock._open_span.cache_clear()
    yield
    wallclock._open_span.cache_clear()


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
    monkeypatch.setattr(quiet_hours, "_table", lambda: quiet_hours._parse_table(data))
    yield


# -- DST: the spring-forward gap (US, 2027-03-14, 02:00 -> 03:00) ----------------------


def test_a_send_time_inside_the_spring_forward_gap_moves_to_the_end_of_the_gap() -> None:
    # 02:30 never happens on 14 March 2027 in New York; 03:00 EDT is the first instant after.
    assert resolve_wall_time(date(2027, 3, 14), time(2, 30), NEW_YORK) == utc(2027, 3, 14, 7, 0)


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
    assert resolve_wall_time(day, time(1, 30), NEW_YORK) == first.astimezone(UTC)
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


def test_a_day_marked_closed_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(
        """
        version: 1
        federal: {windows: {all: {opens: "08:00", closes: "21:00"}}, source: s}
        states: {TX: {windows: {all: {opens: "09:00", closes: "21:00"}, sun: closed}, source: s}}
        """
    )
    monkeypatch.setattr(quiet_hours, "_table", lambda: quiet_hours._parse_table(data))
    saturday_night = wall(CHICAGO, 2027, 10, 16, 21, 30)
    assert next_allowed(saturday_night, CHICAGO, "TX") == wall(CHICAGO, 2027, 10, 18, 9, 0)


def test_a_table_closed_every_day_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(
        """
        version: 1
        federal: {windows: {all: {opens: "08:00", closes: "21:00"}}, source: s}
        states: {TX: {windows: {all: closed}, source: s}}
        """
    )
    monkeypatch.setattr(quiet_hours, "_table", lambda: quiet_hours._parse_table(data))
    with pytest.raises(ConfigError, match=r"quiet_hours\.yaml: no open window in two weeks"):
        next_allowed(wall(CHICAGO, 2027, 10, 16, 12, 0), CHICAGO, "TX")


def test_naive_instants_are_refused() -> None:
    with pytest.raises(AssertionError, match="timezone-aware"):
        next_allowed(datetime(2027, 10, 13, 9, 0), NEW_YORK, None)


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
    assert due >= resolve_wall_time(day, send, zone)
    assert due.tzinfo is UTC
