"""When a patient's message may go: the one answer fan-out, the send-time check,
``meridian campaigns when`` and the console's preview all take.

A message is lawful at an instant when it is lawful at that instant in every place
the patient might be (campaigns.clock.whereabouts): inside the day's window of
each candidate's state (campaigns.clock.quiet_hours), on that candidate's clock
(campaigns.clock.wallclock). For SMS the state rules apply; email keeps the federal
decent-hours window only, in every candidate zone.

The occurrence's *requested* instant is the send time on the clock of every
candidate: the latest of their wall-clock send times, so no candidate gets it
early. The message goes at the first lawful instant from then (or from now, if the
run starts later) up to the requested instant plus the campaign's grace; if there
is none, it is skipped with reason ``no_lawful_time`` rather than sent hours or
days late by surprise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campaigns.clock import quiet_hours, wallclock
from campaigns.clock.whereabouts import Candidate, Whereabouts, locate
from campaigns.domain.models import Recipient

__all__ = [
    "NO_LAWFUL_TIME",
    "CandidateClock",
    "SendTime",
    "for_recipient",
    "places_for",
    "requested_instant",
    "when_to_send",
]

# The skip reason of a delivery with no lawful instant within its grace (the value
# of campaigns.domain.states.SkipReason.NO_LAWFUL_TIME; the clock sits below the domain).
NO_LAWFUL_TIME = "no_lawful_time"
# Rounds of "move to the latest candidate's next opening": each moves past a
# window's edge, so a fortnight of eight candidates' windows needs a few hundred.
_MAX_ROUNDS = 1000


@dataclass(frozen=True, slots=True)
class CandidateClock:
    """One candidate at the chosen instant: its local time and that day's rule."""

    zone: str
    state: str | None
    local: datetime
    rule: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "state": self.state,
            "local": self.local.isoformat(),
            "rule": self.rule,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class SendTime:
    """When the message goes (``at``, UTC) or None when it is skipped, and why."""

    channel: str
    at: datetime | None
    requested: datetime
    deadline: datetime
    where: Whereabouts
    decided_by: str
    source: str
    cap_per_24h: int | None
    cap_state: str | None
    # Where the message is judged and at which instant: the clocks shown to staff
    # are worked out from these when asked for (fan-out and the send-time check
    # never ask, and building them was an eighth of a fan-out's work).
    places: tuple[Candidate, ...] = ()
    shown: datetime | None = None

    @property
    def clocks(self) -> tuple[CandidateClock, ...]:
        """Each candidate's local time at the chosen instant, and that day's rule
        (worked out at each asking: only previews and ``campaigns when`` ask)."""
        shown = self.shown or self.at or self.requested
        return tuple(_clock(place, shown) for place in self.places)

    @property
    def skip_reason(self) -> str | None:
        return NO_LAWFUL_TIME if self.at is None else None

    @property
    def held(self) -> bool:
        return self.at is not None and self.at > self.requested

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "at": self.at.isoformat() if self.at else None,
            "requested": self.requested.isoformat(),
            "deadline": self.deadline.isoformat(),
            "skip_reason": self.skip_reason,
            "decided_by": self.decided_by,
            "source": self.source,
            "candidates": [c.to_dict() for c in self.clocks],
            "cap_per_24h": self.cap_per_24h,
            "cap_state": self.cap_state,
            "evidence": self.where.to_dict()["evidence"],
            "why_these_candidates": self.where.reason,
        }


# How far a held message may wait at most: every week has lawful hours somewhere in
# the table, so this bounds the search, not the policy.
HOLD_AT_MOST = timedelta(days=14)


def requested_instant(where: Whereabouts, occurrence: date, send_time: time) -> datetime:
    """The UTC instant ``send_time`` has come on ``occurrence`` on every candidate's clock."""
    return max(
        wallclock.resolve_wall_time(occurrence, send_time, ZoneInfo(c.zone))
        for c in where.candidates
    )


def when_to_send(
    where: Whereabouts,
    channel: str,
    *,
    occurrence: str,
    send_time: time,
    grace: timedelta,
    now: datetime,
    hold: bool = False,
) -> SendTime:
    """When this patient's message for ``occurrence`` goes, as seen at ``now``.

    ``hold`` is the send-time check's question: the message was planned, so it waits
    for the next lawful instant however late it is; without it (fan-out, ``campaigns
    when``) a scheduled occurrence with no lawful instant within the grace is skipped.

    ``occurrence`` is a run's key: a date ("2027-10-15", sent at ``send_time`` on
    the patient's clock) or "now:<ISO instant>" (a run started by hand, sent from
    that instant). Fan-out asks at the run's start, the send-time check at the
    moment of sending, ``campaigns when`` whenever: for the same ``now`` and the
    same patient the answer is the same.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    manual = occurrence.startswith("now:")
    if manual:
        requested = datetime.fromisoformat(occurrence.removeprefix("now:")).astimezone(UTC)
    else:
        requested = requested_instant(where, date.fromisoformat(occurrence), send_time)
    earliest = max(requested, now.astimezone(UTC))
    deadline = requested + grace
    if manual or hold:
        # Staff who press "run now" at night mean "as soon as it is lawful", and a
        # message already planned that reaches a worker late (a backlog at a low
        # rate, a run paused and resumed, a retry) waits for the next lawful instant:
        # the grace is for a schedule's occurrence planned late, not for either.
        deadline = max(deadline, earliest + HOLD_AT_MOST)
    places = places_for(where.candidates, channel)
    # The send-time check (``hold``) asks at its own instant, never twice for one key:
    # cached, its answers only filled the cache and pushed out fan-out's.
    decide = _decide.__wrapped__ if hold else _decide
    at, decided_by, source, shown, cap = decide(places, earliest, requested, deadline)
    return SendTime(
        channel=channel,
        at=at,
        requested=requested,
        deadline=deadline,
        where=where,
        decided_by=decided_by,
        source=source,
        places=places,
        shown=shown,
        cap_per_24h=cap[0] if cap else None,
        cap_state=cap[1] if cap else None,
    )


def for_recipient(
    recipient: Recipient,
    channel: str,
    *,
    occurrence: str,
    send_time: time,
    grace: timedelta,
    now: datetime,
    service_zones: tuple[str, ...],
    hold: bool = False,
) -> SendTime:
    """``when_to_send`` for a patient as stored: fan-out, the send-time check,
    ``campaigns when`` and the console's preview all come through here."""
    where = locate(
        recipient.timezone, recipient.state, recipient.phone, service_zones, year=now.year
    )
    return when_to_send(
        where,
        channel,
        occurrence=occurrence,
        send_time=send_time,
        grace=grace,
        now=now,
        hold=hold,
    )


def places_for(candidates: tuple[Candidate, ...], channel: str) -> tuple[Candidate, ...]:
    """What a message's lawful instant depends on: the candidates' zones, and for SMS
    their states (email's hours are the federal ones everywhere)."""
    if channel == "sms":
        return candidates
    return _zones_only(candidates)


@functools.lru_cache(maxsize=1 << 10)
def _zones_only(candidates: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    return tuple(Candidate(c.zone, None) for c in candidates)


# What decides depends only on the candidate places (their states for SMS) and the
# three instants, not on the evidence behind them: keyed so, a clinic's patients share
# a few hundred answers (keyed by the whole Whereabouts, fan-out's 16,384 held 12 MB
# in every worker process, measured).
_Verdict = tuple[datetime | None, str, str, datetime, tuple[int, str] | None]


@functools.lru_cache(maxsize=1 << 12)
def _decide(
    places: tuple[Candidate, ...], earliest: datetime, requested: datetime, deadline: datetime
) -> _Verdict:
    """When (or None), the sentence and source of the rule that decided, the instant
    the places' clocks are shown at, and the strictest SMS cap of the places' states
    (email's have none)."""
    at: datetime | None = earliest
    pushed: tuple[Candidate, datetime] | None = None
    for _ in range(_MAX_ROUNDS):
        assert at is not None
        if at > deadline:
            at = None
            break
        moved = False
        for place in places:
            opens = wallclock.next_allowed(at, ZoneInfo(place.zone), place.state)
            if opens > at:
                pushed, at, moved = (place, at), opens, True
        if not moved:
            break
    else:  # pragma: no cover - a table with windows that never meet
        at = None
    decided_by, source = _decision(pushed, at, earliest, requested, deadline)
    cap = quiet_hours.strictest_cap(sorted({p.state for p in places if p.state}))
    shown = at or earliest
    return at, decided_by, source, shown, cap


def _clock(place: Candidate, instant: datetime) -> CandidateClock:
    local = instant.astimezone(ZoneInfo(place.zone))
    described, source = _day_rule_text(place.state, local.date())
    return CandidateClock(place.zone, place.state, local, described, source)


@functools.lru_cache(maxsize=4096)
def _day_rule_text(state: str | None, day: date) -> tuple[str, str]:
    """The day's rule as the preview shows it: asked for every candidate of every
    message, built once per state and day (it was a tenth of the send-time check)."""
    rule = quiet_hours.day_rule(state, day)
    return rule.describe(), rule.source


def _decision(
    pushed: tuple[Candidate, datetime] | None,
    at: datetime | None,
    earliest: datetime,
    requested: datetime,
    deadline: datetime,
) -> tuple[str, str]:
    """The sentence naming the rule that decided, and that rule's source."""
    if pushed is None:
        start = "the send time" if earliest == requested else "now (after the send time)"
        federal = quiet_hours.day_rule(None, earliest.date())
        return f"{start} is lawful in every candidate", federal.source
    place, before = pushed
    local = before.astimezone(ZoneInfo(place.zone))
    rule = quiet_hours.day_rule(place.state, local.date())
    who = rule.state or "federal"
    if rule.window.is_closed:
        why = f"{who}: no marketing texts on {rule.closed_for or 'that day'}"
    elif local.time() < rule.window.opens:
        why = f"{who}: the window opens at {rule.window.opens:%H:%M}"
    else:
        why = f"{who}: the window closes at {rule.window.closes:%H:%M}"
    where = f"{why} in {place.zone} ({local:%a %Y-%m-%d %H:%M} there)"
    if at is None:
        return (
            f"{where}; no instant lawful in every candidate before the grace ends "
            f"at {deadline:%Y-%m-%d %H:%M} UTC",
            rule.source,
        )
    return f"held: {where}", rule.source
