"""When a message may go, everywhere the patient might be (campaigns.clock.lawful,
campaigns.clock.whereabouts): the lawful-time table and the rules behind it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from campaigns.clock import lawful, quiet_hours, whereabouts
from campaigns.clock.lawful import when_to_send
from campaigns.clock.send_instant import send_instant
from campaigns.clock.whereabouts import Candidate, locate
from campaigns.domain.models import Recipient
from campaigns.errors import InputError
from campaigns.settings import US_SERVICE_ZONES
from tests.lawful_cases import CASES, SKIP, Case

# Every case's occurrence is after this, so the answer does not depend on it.
BEFORE_ALL = datetime(2026, 6, 1, tzinfo=UTC)


def answer(case: Case, now: datetime = BEFORE_ALL) -> lawful.SendTime:
    where = locate(
        case.timezone, case.state, case.phone, case.service_zones or US_SERVICE_ZONES, year=2026
    )
    return when_to_send(
        where,
        case.channel,
        occurrence=case.occurrence,
        send_time=time.fromisoformat(case.send_time),
        grace=timedelta(hours=case.grace_hours),
        now=now,
    )


def test_the_table_has_at_least_sixty_cases_each_naming_its_source() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.source.strip() for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lawful_time(case: Case) -> None:
    got = answer(case)
    if case.expect == SKIP:
        assert got.at is None, f"{case.id} ({case.source}): sent at {got.at}, {got.decided_by}"
        assert got.skip_reason == "no_lawful_time"
    else:
        expected = datetime.fromisoformat(case.expect)
        assert got.at == expected, f"{case.id} ({case.source}): {got.at}, {got.decided_by}"
        assert got.at >= got.requested  # never earlier than the send time on any clock
        assert got.at <= got.deadline
        # At that instant every candidate's own day rule allows it.
        for clock in got.clocks:
            rule = quiet_hours.day_rule(clock.state, clock.local.date())
            assert rule.window.opens <= clock.local.time() < rule.window.closes, clock
    if case.cites is not None:
        assert case.cites in got.source, (case.id, got.decided_by, got.source)
        assert got.decided_by.startswith("held") or got.at is None
    else:
        assert got.decided_by.endswith("lawful in every candidate"), (case.id, got.decided_by)
    assert got.cap_per_24h == case.cap


@pytest.mark.parametrize("case", [c for c in CASES if c.expect != SKIP][:20], ids=lambda c: c.id)
def test_a_run_that_starts_late_sends_at_once_if_lawful_and_never_earlier(case: Case) -> None:
    on_time = answer(case)
    assert on_time.at is not None
    later = on_time.at + timedelta(minutes=7)
    late = answer(case, now=later)
    assert late.deadline == on_time.deadline
    if case.id == "ny-last-minute":  # 21:06 in New York: nothing lawful before the grace ends
        assert late.at is None
    else:
        assert late.at == later


def test_a_run_started_by_hand_sends_from_its_start_or_when_it_is_next_lawful() -> None:
    where = locate("America/New_York", "NY", "+12125550142", year=2026)
    started = datetime(2027, 10, 13, 23, 0, tzinfo=UTC)  # 19:00 in New York
    got = when_to_send(
        where,
        "sms",
        occurrence=f"now:{started.isoformat()}",
        send_time=time(10),
        grace=timedelta(hours=6),
        now=started + timedelta(seconds=5),
    )
    assert got.at == started + timedelta(seconds=5)
    # Pressed at 22:00 in New York: staff mean "as soon as it is lawful", not "skip
    # those it is too late for": held to 08:00 there, past the grace.
    night = started + timedelta(hours=3)
    got = when_to_send(
        where,
        "sms",
        occurrence=f"now:{night.isoformat()}",
        send_time=time(10),
        grace=timedelta(hours=6),
        now=night,
    )
    assert got.at == datetime(2027, 10, 14, 12, 0, tzinfo=UTC)


# -- where the patient might be -------------------------------------------------------


def test_an_area_code_alone_gives_its_one_zone_and_state() -> None:
    assert locate(None, None, "+12125550142", year=2027).candidates == (
        Candidate("America/New_York", "NY"),
    )
    hawaii = locate(None, None, "+18085550142", year=2027)
    assert hawaii.candidates == (Candidate("Pacific/Honolulu", "HI"),)
    assert hawaii.certain
    # Toll-free is anywhere: no evidence, so every zone the clinic serves.
    assert [e.kind for e in locate(None, None, "+18005550142", year=2027).evidence] == ["clinic"]


def test_an_area_code_that_spans_zones_makes_every_zone_a_candidate() -> None:
    where = locate(None, None, "+19075550142", year=2026)
    assert where.candidates == (
        Candidate("America/Adak", "AK"),
        Candidate("America/Anchorage", "AK"),
    )
    assert [e.kind for e in where.evidence] == ["area code"]
    assert not where.certain


def test_address_and_area_code_that_disagree_are_both_candidates_with_both_states() -> None:
    where = locate(None, "NY", "+13055550142", year=2026)
    assert {c.state for c in where.candidates} == {"NY", "FL"}
    assert where.states == ("FL", "NY")
    assert "disagree" in where.reason
    said = [e.describe() for e in where.evidence]
    assert any("FL presumes a resident from a local area code" in s for s in said)


def test_a_stored_zone_that_matches_the_area_code_is_certain() -> None:
    where = locate("America/Denver", None, "+17205550142", year=2026)
    assert where.candidates == (Candidate("America/Denver", "CO"),)
    assert where.certain


def test_the_area_code_narrows_the_address_states_zones_when_they_agree() -> None:
    assert locate(None, "TX", "+19155550142", year=2026).zones == ("America/Denver",)
    assert locate(None, "TX", None, year=2026).zones == ("America/Chicago", "America/Denver")


def test_no_evidence_means_every_zone_the_clinic_serves_under_federal_rules() -> None:
    where = locate(None, None, None, year=2026)
    assert where.zones == tuple(sorted(US_SERVICE_ZONES))
    assert where.states == ()
    assert where.evidence[-1].kind == "clinic"
    assert locate(None, None, None, ("America/Chicago",), year=2026).zones == ("America/Chicago",)


def test_a_bad_stored_zone_or_state_is_an_error_not_a_guess() -> None:
    with pytest.raises(InputError, match="not an IANA time zone"):
        locate("America/Gotham", None, None, year=2026)
    with pytest.raises(InputError, match="not a USPS state code"):
        locate(None, "Gotham", None, year=2026)


def test_the_caps_of_every_candidate_state_count() -> None:
    assert whereabouts.candidate_states("NY", "+13055550142") == ("FL", "NY")
    assert quiet_hours.strictest_cap(("FL", "NY")) == (3, "FL")
    assert quiet_hours.strictest_cap(("NY", "CA")) is None


# -- the rule table --------------------------------------------------------------------


def test_every_rule_of_the_table_cites_its_row_of_compliance_md() -> None:
    table = quiet_hours._table()
    assert "COMPLIANCE.md" in table.federal.source
    for code, rules in table.states.items():
        assert "COMPLIANCE.md" in rules.source, code


@pytest.mark.parametrize(
    ("state", "cited"),
    [
        ("TX", "301.051"),
        ("FL", "501.616(6)(b)"),
        ("FL", "501.059"),
        ("OK", "775C.1"),
        ("RI", "5-61-2"),
        ("MS", "77-3-723"),
        ("LA", "R-29617"),
        ("WA", "19.158.040"),
    ],
)
def test_the_table_cites_the_statute_compliance_md_names(state: str, cited: str) -> None:
    assert cited in quiet_hours._table().states[state].source


def test_the_texas_hours_are_not_cited_to_chapter_302() -> None:
    # ch. 302 (SB 140) is about registration; the hours are in 301.051.
    assert "ch. 302" not in quiet_hours._table().states["TX"].source


def test_florida_and_oklahoma_presume_residents_from_their_area_codes() -> None:
    assert quiet_hours.presumes_resident("FL") and quiet_hours.presumes_resident("OK")
    assert not quiet_hours.presumes_resident("NY")


@pytest.mark.parametrize(
    ("state", "day", "closed_for"),
    [
        ("RI", date(2027, 10, 17), "Sunday"),
        ("RI", date(2027, 8, 9), "holiday: Victory Day"),
        ("MS", date(2027, 10, 17), "Sunday"),
        ("LA", date(2027, 10, 17), "Sunday"),
        ("LA", date(2027, 2, 9), "holiday: Mardi Gras"),
        ("AL", date(2027, 12, 24), "holiday: Christmas Day (observed)"),
        ("UT", date(2027, 7, 24), "holiday: Pioneer Day"),
    ],
)
def test_states_that_forbid_sundays_or_holidays_close_them(
    state: str, day: date, closed_for: str
) -> None:
    rule = quiet_hours.day_rule(state, day)
    assert rule.window.is_closed
    assert rule.closed_for == closed_for


def test_a_holiday_rule_for_a_state_the_holidays_package_does_not_know_is_refused() -> None:
    data = {
        "version": 1,
        "federal": {"windows": {"all": {"opens": "08:00", "closes": "21:00"}}, "source": "s"},
        "states": {
            "AA": {
                "windows": {"all": {"opens": "08:00", "closes": "21:00"}},
                "closed_on_holidays": True,
                "source": "s",
            }
        },
    }
    with pytest.raises(Exception, match="states: AA: the holidays package lists no holidays"):
        quiet_hours._parse_table(data)


def _recipient(case: Case) -> Recipient:
    return Recipient(
        patient_id=1,
        external_id="x",
        first_name=None,
        last_name=None,
        email=None,
        phone=case.phone,
        timezone=case.timezone,
        state=case.state,
        preferred_channel=None,
        sms_opt_in=True,
        email_opt_in=True,
    )


def _instants_around(expected: datetime | None, start: datetime) -> list[datetime]:
    """Instants on both sides of every edge near the answer, to the second and below."""
    anchors = [start, *(a for a in (expected,) if a is not None)]
    offsets = [timedelta(0), timedelta(microseconds=1), timedelta(seconds=1)]
    offsets += [timedelta(seconds=s) for s in (29.5, 58, 59, 59.999999, 60, 61)]
    out = []
    for anchor in anchors:
        for hours in range(-30, 31, 3):
            base = anchor + timedelta(hours=hours)
            out += [base + o for o in offsets] + [base - o for o in offsets]
    return out


@pytest.mark.parametrize("hold", [False, True], ids=["planned", "held"])
@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: c.id)
def test_the_per_minute_answer_is_exactly_the_answer_at_the_instant(case: Case, hold: bool) -> None:
    """send_instant (fan-out's and the send-time check's) answers from two cached
    edges of the minute; at every instant around the case's edges it must equal
    for_recipient's answer worked out at that instant."""
    zones = case.service_zones or US_SERVICE_ZONES
    expected = None if case.expect == SKIP else datetime.fromisoformat(case.expect)
    occurrence_start = datetime.fromisoformat(f"{case.occurrence}T00:00+00:00")
    recipient = _recipient(case)
    kwargs = {
        "occurrence": case.occurrence,
        "send_time": time.fromisoformat(case.send_time),
        "grace": timedelta(hours=case.grace_hours),
        "service_zones": zones,
        "hold": hold,
    }
    checked = 0
    for now in _instants_around(expected, occurrence_start):
        exact = lawful.for_recipient(recipient, case.channel, now=now, **kwargs).at
        fast = send_instant(recipient, case.channel, now=now, **kwargs)
        assert fast == exact, (case.id, now.isoformat(), fast, exact)
        checked += 1
    assert checked > 300


def test_a_run_started_by_hand_mid_minute_is_answered_exactly_on_both_sides_of_its_start() -> None:
    """A run started by hand at 20:59:30 local, half a minute before the window
    closes: before its start the answer is its start, after it the instant itself."""
    case = next(c for c in CASES if c.state == "TX" and c.expect != SKIP)
    recipient = _recipient(case)
    zone = lawful.locate(case.timezone, "TX", case.phone, US_SERVICE_ZONES, year=2026)
    assert zone.candidates
    started = datetime(2026, 10, 13, 1, 59, 30, tzinfo=UTC)  # 20:59:30 in Chicago (CDT)
    kwargs = {
        "occurrence": f"now:{started.isoformat()}",
        "send_time": time(10, 0),
        "grace": timedelta(hours=6),
        "service_zones": US_SERVICE_ZONES,
    }
    for seconds in (0, 15, 29, 30, 31, 45, 59):
        now = started.replace(second=seconds)
        exact = lawful.for_recipient(recipient, "sms", now=now, **kwargs).at
        assert send_instant(recipient, "sms", now=now, **kwargs) == exact
