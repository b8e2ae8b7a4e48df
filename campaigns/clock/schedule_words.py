"""A schedule in plain English, and the form's schedule builder: the few kinds staff
pick from (once, every year on a date, monthly on a day, weekly on weekdays) written
as the ``once`` date or the RRULE the schedule model keeps, and read back.

``describe`` says "Every year on 15 October at 10:00 in each patient's time zone";
a rule the builder does not write is shown as itself, never guessed at.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from campaigns.clock.schedules import Schedule, due_occurrences, next_sends, start_window

Kind = Literal["once", "yearly", "monthly", "weekly", "rrule"]
KINDS: tuple[Kind, ...] = ("once", "yearly", "monthly", "weekly", "rrule")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_WEEKDAY_NAMES = dict(zip(WEEKDAYS, calendar.day_name, strict=True))
MONTHS: tuple[str, ...] = tuple(calendar.month_name[1:])


@dataclass(frozen=True)
class Choice:
    """What the builder shows: a kind and its fields (as the form sends them, text)."""

    kind: Kind
    once: str = ""
    month: str = ""  # 1..12
    day: str = ""  # 1..31, of the month
    weekdays: tuple[str, ...] = field(default_factory=tuple)
    rrule: str = ""


def rule_of(choice: Choice) -> tuple[str | None, str | None, dict[str, str]]:
    """(rrule, once, problems by form field) for the builder's choice. The rule is
    checked afterwards by the schedule model, which names what is wrong with it."""
    problems: dict[str, str] = {}
    if choice.kind == "once":
        if not choice.once.strip():
            problems["once"] = "Date is required: pick the day the campaign sends"
        return None, choice.once.strip() or None, problems
    if choice.kind == "rrule":
        if not choice.rrule.strip():
            problems["rrule"] = (
                "Repeat rule (RRULE) is required, e.g. FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15"
            )
        return choice.rrule.strip() or None, None, problems
    if choice.kind == "weekly":
        days = [d for d in choice.weekdays if d in WEEKDAYS]
        if not days:
            problems["weekdays"] = "Weekdays: tick at least one day of the week"
        ordered = sorted(days, key=WEEKDAYS.index)
        return f"FREQ=WEEKLY;BYDAY={','.join(ordered)}", None, problems
    day = _whole(choice.day, 1, 31)
    if day is None:
        problems["day"] = "Day of the month must be a whole number between 1 and 31"
    if choice.kind == "monthly":
        return f"FREQ=MONTHLY;BYMONTHDAY={day or 1}", None, problems
    month = _whole(choice.month, 1, 12)
    if month is None:
        problems["month"] = "Month: pick a month"
    elif day is not None and day > _days_in(month):
        problems["day"] = f"{MONTHS[month - 1]} has no day {day}"
    return f"FREQ=YEARLY;BYMONTH={month or 1};BYMONTHDAY={day or 1}", None, problems


def choice_of(rrule: str | None, once: date | str | None) -> Choice:
    """The builder's choice that writes this schedule; kind 'rrule' for any other rule."""
    if once is not None:
        return Choice("once", once=str(once))
    parts = _parts(rrule or "")
    keys = set(parts)
    freq = parts.get("FREQ")
    month, day = _whole(parts.get("BYMONTH", ""), 1, 12), _whole(parts.get("BYMONTHDAY", ""), 1, 31)
    if freq == "YEARLY" and keys == {"FREQ", "BYMONTH", "BYMONTHDAY"} and month and day:
        return Choice("yearly", month=str(month), day=str(day))
    if freq == "MONTHLY" and keys == {"FREQ", "BYMONTHDAY"} and day:
        return Choice("monthly", day=str(day))
    if freq == "WEEKLY" and keys == {"FREQ", "BYDAY"}:
        days = tuple(parts["BYDAY"].split(","))
        if all(d in WEEKDAYS for d in days):
            return Choice("weekly", weekdays=days)
    return Choice("rrule", rrule=rrule or "")


def describe(rrule: str | None, once: date | None, send_time: time) -> str:
    """The schedule in plain English, with the send time on each patient's clock."""
    at = f"at {send_time:%H:%M} in each patient's time zone"
    if once is not None:
        return f"Once, on {once:%A} {once.day} {once:%B %Y}, {at}"
    choice = choice_of(rrule, None)
    if choice.kind == "yearly":
        return f"Every year on {int(choice.day)} {MONTHS[int(choice.month) - 1]} {at}"
    if choice.kind == "monthly":
        return f"Every month on the {_ordinal(int(choice.day))} {at}"
    if choice.kind == "weekly":
        return f"Every week on {_and([_WEEKDAY_NAMES[d] for d in choice.weekdays])} {at}"
    if _parts(rrule or "") == {"FREQ": "DAILY"}:
        return f"Every day {at}"
    return f"On each date of the rule {rrule}, {at}"


def _parts(rrule: str) -> dict[str, str]:
    body = rrule.strip().removeprefix("RRULE:").rstrip(";")
    parts: dict[str, str] = {}
    for part in body.split(";") if body else ():
        name, _, value = part.partition("=")
        parts[name.strip().upper()] = value.strip().upper()
    return parts


def _whole(text: str, low: int, high: int) -> int | None:
    value = text.strip()
    if not value.isdigit() or not low <= int(value) <= high:
        return None
    return int(value)


def _days_in(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2023, month)[1]  # 29 Feb: leap years


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def upcoming(schedule: Schedule, now: datetime, n: int = 3) -> list[str]:
    """The next ``n`` send times on the clinic's clock, as staff read them:
    'Fri 15 Oct 2027, 10:00 CDT'."""
    return [f"{at:%a} {at.day} {at:%b %Y, %H:%M %Z}" for at in next_sends(schedule, now, n)]


def still_open(schedule: Schedule, now: datetime) -> tuple[date, str] | None:
    """An occurrence whose start window is open at ``now`` (its send time has passed on
    the clinic's clock, but not its grace): the date, and what scheduling now does, in
    words. ``upcoming`` lists only send times still ahead, so without this a campaign
    scheduled at 13:00 for 10:00 today looks as if its next send were next year."""
    due = [d for d, verdict in due_occurrences(schedule, now, None) if verdict == "start"]
    if not due:
        return None
    day = due[-1]
    closes = start_window(schedule, day)[1].astimezone(ZoneInfo(schedule.timezone))
    return day, (
        f"The occurrence of {day:%a} {day.day} {day:%b %Y} is still open until "
        f"{closes:%H:%M %Z}: a campaign scheduled before then starts it at once."
    )
