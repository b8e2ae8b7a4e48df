"""When a campaign runs: its occurrences, their start windows and the clinic's next sends.

A schedule names *dates* (one date, or an RFC 5545 RRULE read in the clinic's
zone) and a wall-clock ``send_time`` that each patient gets on their own clock.
An occurrence is a date; ``occurrence_key`` is its unique key in the ledger.

The run for occurrence ``d`` may start once ``d`` + ``send_time`` has come in the
earliest zone on earth (UTC+14), so every patient's local send time is still
ahead, and until ``d`` + ``send_time`` on the clinic's clock + ``grace``. A beat
that comes back later records the occurrence as missed rather than texting
everyone hours late by surprise (DESIGN.md section 4, step 1).

Each patient's side lives beside this module: their zone and state in
``campaigns.clock.geography``, the legal windows in ``campaigns.clock.quiet_hours``,
their due time (``local_due``) in ``campaigns.clock.wallclock``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

from campaigns.clock.wallclock import resolve_wall_time
from campaigns.errors import InputError

__all__ = [
    "OccurrenceVerdict",
    "Schedule",
    "due_occurrences",
    "next_sends",
    "occurrence_dates",
    "occurrence_key",
    "parse_rrule",
    "start_window",
]

OccurrenceVerdict = Literal["start", "missed"]

# Pacific/Kiritimati: the first place on earth where any given wall time arrives.
_EARLIEST_ZONE = timezone(timedelta(hours=14), "UTC+14")
_DAY_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_SUB_DAY_FREQS = ("HOURLY", "MINUTELY", "SECONDLY")
# Parts that name a day. Without one, dateutil takes the day (and for YEARLY the
# month) from DTSTART, which a schedule does not have.
_DAY_PARTS = frozenset({"BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY", "BYEASTER"})
_INT_RANGES = {  # RFC 5545 section 3.3.10; dateutil accepts some values outside them
    "INTERVAL": (1, 10_000, False),
    "COUNT": (1, 10_000, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYSETPOS": (1, 366, True),
}
# dateutil looks for a date matching an impossible rule (BYMONTH=2;BYMONTHDAY=30)
# until year 9999, which takes seconds from today for a DAILY rule. A rule's dates do
# not depend on its start (parse_rrule insists), so it is probed from this far before
# year 9999 only: a rule with no date in the last few decades before 9999 has none.
_PROBE_YEARS = 30
# Where a rule's UNTIL is checked from; a fixed date keeps a stored schedule loadable
# after its UNTIL has passed.
_CHECK_FROM = date(2000, 1, 1)
_EXAMPLE = "'FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15'"


@dataclass(frozen=True)
class Schedule:
    """When a campaign sends. Exactly one of ``rrule`` and ``once``.

    A rule has no start date (DTSTART): its dates must not depend on one, so rules
    that count from a start (COUNT, INTERVAL > 1, a YEARLY/MONTHLY/WEEKLY rule that
    does not name its day) are refused by ``parse_rrule``.
    """

    timezone: str
    send_time: time
    rrule: str | None = None
    once: date | None = None
    grace: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"schedule time zone {self.timezone!r} is not an IANA time zone; expected a "
                "name like 'America/New_York'"
            ) from None
        if self.send_time.tzinfo is not None:
            raise InputError("send_time is a wall-clock time in each patient's zone; no tzinfo")
        if (self.rrule is None) == (self.once is None):
            raise InputError("a schedule needs exactly one of 'rrule' or 'once'")
        if self.grace < timedelta(0):
            raise InputError(f"grace must not be negative, got {self.grace}")
        if self.rrule is not None:
            try:
                parse_rrule(self.rrule)
            except ValueError as exc:
                raise InputError(f"schedule rrule: {exc}") from None


def parse_rrule(text: str) -> None:
    """Check an RRULE body; raise ValueError saying what is wrong and what to write.

    (ValueError, because the campaign definition's validator calls it: pydantic
    reports it as the field's error.)
    """
    _, until = _validated(text)
    probe_from = date(datetime.max.year - _PROBE_YEARS, 1, 1)
    probe = _rule(text, probe_from).replace(count=None, until=None)
    if next(iter(probe), None) is None:
        raise ValueError(
            f"the RRULE {text.strip()!r} never falls on a date: check for a day that does "
            "not exist, like BYMONTH=2;BYMONTHDAY=30"
        )
    # The rule does recur, so this search ends at its first date, at most a cycle away.
    if until is not None and next(iter(_rule(text, _CHECK_FROM)), None) is None:
        raise ValueError(f"UNTIL={until:%Y%m%d} is before the rule's first date")


@functools.lru_cache(maxsize=256)
def _validated(text: str) -> tuple[str, date | None]:
    """The body in canonical form and its UNTIL date, after the checks dateutil lacks."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body:
        raise ValueError(f"the RRULE is empty; write one like {_EXAMPLE}")
    if "\n" in body or "\r" in body:
        raise ValueError("give one RRULE line only: DTSTART, RDATE and EXDATE are not supported")
    parts: dict[str, str] = {}
    for part in body.rstrip(";").split(";"):
        name, equals, value = (piece.strip().upper() for piece in part.partition("="))
        if not equals or not name or not value:
            raise ValueError(f"RRULE part {part!r} is not NAME=VALUE; write one like {_EXAMPLE}")
        if name in parts:
            raise ValueError(f"the RRULE gives {name} twice")
        parts[name] = value
    freq = parts.get("FREQ", "")
    if freq in _SUB_DAY_FREQS:
        raise ValueError(
            f"FREQ={freq} repeats within a day, but a campaign occurrence is a date: use "
            f"{', '.join(_DAY_FREQS)} and set the hour with send_time"
        )
    if freq not in _DAY_FREQS:
        raise ValueError(f"the RRULE needs FREQ set to one of {', '.join(_DAY_FREQS)}")
    for name in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        if name in parts:
            raise ValueError(f"{name} is not supported: the time of day comes from send_time")
    for name in ("INTERVAL", "COUNT"):
        if "," in parts.get(name, ""):
            raise ValueError(f"{name} takes one number, not a list")
    for name, (low, high, signed) in _INT_RANGES.items():
        for item in parts[name].split(",") if name in parts else ():
            if not re.fullmatch(r"[+-]?\d+", item) or not low <= abs(int(item)) <= high:
                raise ValueError(f"{name}={item} is out of range: expected {low}..{high}")
            if int(item) < 0 and not signed:
                raise ValueError(f"{name}={item} must be positive")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ValueError("give COUNT or UNTIL, not both (RFC 5545)")
    until = parts.get("UNTIL")
    if until is not None and not re.fullmatch(r"\d{8}", until):
        raise ValueError(f"UNTIL={until} must be a date like 20301015: occurrences are dates")
    reason = _needs_start(parts)
    if reason:
        raise ValueError(reason)
    canonical = ";".join(f"{name}={value}" for name, value in parts.items())
    return canonical, (datetime.strptime(until, "%Y%m%d").date() if until else None)


def _needs_start(parts: dict[str, str]) -> str | None:
    """Why the rule's dates depend on a DTSTART, or None when they do not."""
    if "COUNT" in parts:
        return "COUNT counts occurrences from the rule's start date; use UNTIL=YYYYMMDD instead"
    if int(parts.get("INTERVAL", "1")) != 1:
        return "INTERVAL counts periods from the rule's start date; drop it"
    if parts["FREQ"] != "DAILY" and not _DAY_PARTS & parts.keys():
        return (
            f"FREQ={parts['FREQ']} without a day repeats on the start date's day; "
            f"name the day, e.g. {_EXAMPLE}"
        )
    return None


def _rule(text: str, dtstart: date) -> rrule:
    """The rule with DTSTART at midnight of ``dtstart``, so occurrences come out as dates."""
    body, _ = _validated(text)
    try:
        rule = rrulestr(body, dtstart=datetime.combine(dtstart, time()))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"not a valid RRULE ({exc}); write one like {_EXAMPLE}") from None
    if not isinstance(rule, rrule):
        raise ValueError(f"give a single RRULE, e.g. {_EXAMPLE}")
    return rule


def _iter_dates(schedule: Schedule, after: date) -> Iterator[date]:
    """Occurrence dates strictly after ``after``, in order."""
    if schedule.once is not None:
        if schedule.once > after:
            yield schedule.once
        return
    assert schedule.rrule is not None  # __post_init__ guarantees one of the two
    # A rule's dates do not depend on DTSTART (parse_rrule insists), so start it the
    # day after ``after`` instead of iterating history.
    rule = _rule(schedule.rrule, after + timedelta(days=1))
    for moment in rule.xafter(datetime.combine(after, time()), inc=False):
        yield moment.date()


def occurrence_dates(schedule: Schedule, after: date, count: int) -> list[date]:
    """The next ``count`` occurrence dates strictly after ``after`` (fewer if the rule ends)."""
    assert count >= 0, f"count must not be negative, got {count}"
    return list(islice(_iter_dates(schedule, after), count))


def occurrence_key(d: date) -> str:
    """The occurrence's unique key in the ledger: its ISO date, e.g. '2027-10-15'."""
    return d.isoformat()


def _date_of_key(key: str) -> date:
    try:
        return date.fromisoformat(key)
    except ValueError:
        raise InputError(f"occurrence key {key!r} is not a date like '2027-10-15'") from None


def start_window(schedule: Schedule, d: date) -> tuple[datetime, datetime]:
    """When the run for occurrence ``d`` may start: [opens, closes) in UTC.

    Opens at ``d`` + send_time in UTC+14, when no patient's send time has passed yet;
    closes at ``d`` + send_time on the clinic's clock, plus ``grace``.
    """
    opens = datetime.combine(d, schedule.send_time, tzinfo=_EARLIEST_ZONE).astimezone(UTC)
    clinic_send = resolve_wall_time(d, schedule.send_time, ZoneInfo(schedule.timezone))
    return opens, clinic_send + schedule.grace


def due_occurrences(
    schedule: Schedule, now: datetime, last_key: str | None
) -> list[tuple[date, OccurrenceVerdict]]:
    """Occurrences after ``last_key`` whose start window has opened by ``now``.

    Each is "start" while its window is open and "missed" once it has closed; a
    future occurrence is never returned. ``last_key`` is the newest occurrence
    already recorded (started or missed). To account for everything since a
    campaign was created, pass ``occurrence_key(created_date - 1 day)``, with the
    created date read in the clinic's zone. With None, nothing before ``now`` is
    owed: only occurrences whose window is open right now are returned, never a
    "missed" one, so a brand-new campaign does not report misses from before it existed.
    """
    assert now.utcoffset() is not None, "now must be a timezone-aware datetime"
    if last_key is not None:
        after = _date_of_key(last_key)
    else:
        # Any occurrence whose window is still open is at most grace (+ a day for the
        # zones' spread, + a day of margin) behind the clinic's date.
        clinic_today = now.astimezone(ZoneInfo(schedule.timezone)).date()
        after = clinic_today - timedelta(days=schedule.grace.days + 3)
    due: list[tuple[date, OccurrenceVerdict]] = []
    for d in _iter_dates(schedule, after):
        opens, closes = start_window(schedule, d)
        if opens > now:
            break  # windows open in date order, so every later one is in the future too
        if now < closes:
            due.append((d, "start"))
        elif last_key is not None:
            due.append((d, "missed"))
    return due


def next_sends(schedule: Schedule, now: datetime, n: int = 5) -> list[datetime]:
    """The next ``n`` send times at or after ``now`` on the clinic's clock (for the console)."""
    assert n >= 0, f"n must not be negative, got {n}"
    assert now.utcoffset() is not None, "now must be a timezone-aware datetime"
    zone = ZoneInfo(schedule.timezone)
    upcoming: list[datetime] = []
    if n == 0:
        return upcoming
    for d in _iter_dates(schedule, now.astimezone(zone).date() - timedelta(days=1)):
        at = resolve_wall_time(d, schedule.send_time, zone)
        if at >= now:
            upcoming.append(at.astimezone(zone))
            if len(upcoming) == n:
                break
    return upcoming
