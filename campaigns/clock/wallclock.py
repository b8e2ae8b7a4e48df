"""Wall-clock maths: from a patient's local time to the instant a message may go.

Wall-clock times are turned into instants by one rule, used everywhere so that
``is_allowed`` and ``next_allowed`` can never disagree:

- a wall time that happens twice (fall back) means its first instance (fold=0);
- a wall time that never happens (spring forward) means the first instant after
  the gap, which is what cron does with jobs the gap skipped.

The zone and state come from ``campaigns.clock.geography``, the day's window from
``campaigns.clock.quiet_hours``.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campaigns.clock.quiet_hours import QUIET_HOURS_FILE, window_for
from campaigns.errors import ConfigError

__all__ = ["is_allowed", "local_due", "next_allowed", "resolve_wall_time"]


def resolve_wall_time(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which clocks in ``zone`` show ``wall`` on ``day``.

    Ambiguous (fall back): the first instance. Nonexistent (spring forward): the
    first instant after the gap.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap fold=1 reads the wall time with the offset after the transition and
    # fold=0 with the one before, so the transition lies between the two readings.
    # Zone transitions fall on whole seconds: bisect on them.
    before = int(local.replace(fold=1).astimezone(UTC).timestamp()) - 1
    after = int(instant.timestamp()) + 1
    old_offset = _offset_at(before, zone)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset_at(middle, zone) == old_offset:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def _offset_at(timestamp: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()


@functools.lru_cache(maxsize=4096)
def _open_span(day: date, zone: ZoneInfo, state: str | None) -> tuple[datetime, datetime] | None:
    """The instants between which sending is allowed on local ``day``, if any."""
    window = window_for(state, day)
    if window.is_closed:
        return None
    opens = resolve_wall_time(day, window.opens, zone)
    closes = resolve_wall_time(day, window.closes, zone)
    # A gap can swallow a whole day (Pacific/Apia skipped 2011-12-30).
    if opens >= closes or opens.astimezone(zone).date() != day:
        return None
    return opens, closes


def is_allowed(instant: datetime, zone: ZoneInfo, state: str | None) -> bool:
    """Whether ``instant`` falls inside the window of its local day in ``zone``."""
    _require_aware(instant)
    span = _open_span(instant.astimezone(zone).date(), zone, state)
    return span is not None and span[0] <= instant < span[1]


def next_allowed(instant: datetime, zone: ZoneInfo, state: str | None) -> datetime:
    """The earliest instant >= ``instant`` inside its local day's window, in UTC."""
    _require_aware(instant)
    first_day = instant.astimezone(zone).date()
    # Two weeks covers any weekly table, even one with closed days.
    for offset in range(14):
        span = _open_span(first_day + timedelta(days=offset), zone, state)
        if span is not None and max(span[0], instant) < span[1]:
            return max(span[0], instant).astimezone(UTC)
    raise ConfigError(f"{QUIET_HOURS_FILE}: no open window in two weeks for state {state!r}")


def local_due(d: date, send_time: time, zone: ZoneInfo, state: str | None) -> datetime:
    """When the patient gets occurrence ``d``: ``send_time`` on their clock, moved
    forward past a DST gap and then into the allowed window; in UTC. Never earlier
    than the wall time, never dropped."""
    return next_allowed(resolve_wall_time(d, send_time, zone), zone, state)


def _require_aware(instant: datetime) -> None:
    # A naive instant is a bug in the caller: every instant Meridian makes is in UTC.
    assert instant.utcoffset() is not None, (
        f"expected a timezone-aware datetime, got naive {instant.isoformat()}"
    )
