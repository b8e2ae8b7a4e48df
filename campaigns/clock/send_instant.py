"""The send instant of one message, answered per candidate places and minute.

Fan-out and the send-time check ask ``campaigns.clock.lawful`` the same question for
every message; the answer changes only at the edges of the places' windows, never
more than once inside a minute. ``send_instant`` works it out at a minute's edges,
once per candidate places, and gives exactly ``lawful.for_recipient(...).at``
(tests/test_lawful_time.py checks it around every edge of the table).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from campaigns.clock.lawful import SendTime, places_for, when_to_send
from campaigns.clock.whereabouts import Candidate, Whereabouts, locate
from campaigns.domain.models import Recipient


def send_instant(
    recipient: Recipient,
    channel: str,
    *,
    occurrence: str,
    send_time: time,
    grace: timedelta,
    now: datetime,
    service_zones: tuple[str, ...],
    hold: bool = False,
) -> datetime | None:
    """``for_recipient(...).at``, the one figure fan-out and the send-time check need,
    answered once per patient's whereabouts and minute instead of per message.

    The answer is worked out at two instants of ``now``'s minute: its first (or the
    requested instant, when that falls inside the minute: before it, every ``now``
    has the same answer) and its last. When both say "at once" (lawful all that
    while: a window is never shorter than a minute, so it cannot close and open again
    inside one) the answer is ``now``, or the requested instant if that is later;
    when both give the same instant, or both none, that is the answer for every
    instant of the minute (the first lawful instant from a later ``now`` is the same
    one, or none). Otherwise an edge falls inside the minute, and the answer is
    worked out at ``now`` itself. Exactly ``for_recipient``'s answer, in every case
    (tests/test_lawful_time.py checks it around the edges of the whole table).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    where = locate(
        recipient.timezone, recipient.state, recipient.phone, service_zones, year=now.year
    )
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    # Keyed by the places, not the whole whereabouts: 20,000 patients have about
    # 5,000 whereabouts (their area codes' evidence) but a few hundred places.
    places = places_for(where.candidates, channel)
    edges = _minute_edges(places, channel, occurrence, send_time, grace, minute, hold)
    if edges.lawful_from is not None:
        return max(now, edges.lawful_from)
    if edges.first == edges.last:
        return edges.first
    return when_to_send(
        where, channel, occurrence=occurrence, send_time=send_time, grace=grace, now=now, hold=hold
    ).at


_LAST_OF_MINUTE = timedelta(seconds=59, microseconds=999_999)


@dataclass(frozen=True, slots=True)
class _MinuteEdges:
    first: datetime | None  # the answer at the minute's first instant
    last: datetime | None  # and at its last
    # When lawful from this instant (the minute's start, or the requested instant
    # within it) to the minute's end: that instant; else None.
    lawful_from: datetime | None


@functools.lru_cache(maxsize=1 << 12)
def _minute_edges(
    places: tuple[Candidate, ...],
    channel: str,
    occurrence: str,
    send_time: time,
    grace: timedelta,
    minute: datetime,
    hold: bool,
) -> _MinuteEdges:
    where = Whereabouts(places, (), "")

    def answer(instant: datetime) -> SendTime:
        return when_to_send(
            where,
            channel,
            occurrence=occurrence,
            send_time=send_time,
            grace=grace,
            now=instant,
            hold=hold,
        )

    end = minute + _LAST_OF_MINUTE
    first = answer(minute)
    if (first.at is not None and first.at > end) or (first.at is None and not hold):
        # Held past the minute, or no lawful instant before a fixed deadline: the
        # same from any later instant of it (held, the deadline only moves later).
        return _MinuteEdges(first.at, first.at, None)
    last = answer(end).at
    start = min(max(minute, first.requested), end)
    at_start = first.at if start == minute else answer(start).at
    lawful_from = start if at_start == start and last == end else None
    return _MinuteEdges(first.at, last, lawful_from)
