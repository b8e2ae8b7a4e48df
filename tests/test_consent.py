from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.domain.models import Recipient
from campaigns.people.consent import check_send, skip_reason

NOW = datetime(2027, 10, 15, 15, 0, tzinfo=UTC)


def patient(state: str = "MA", sms: bool | None = True, email: bool | None = True) -> Recipient:
    return Recipient(
        1,
        "P1",
        "A",
        "B",
        "a@example.com",
        "+16175550100",
        "America/New_York",
        state,
        None,
        sms,
        email,
        "+16175550100",
        "a@example.com",
    )


def test_no_consent_and_a_revocation_are_told_apart() -> None:
    assert check_send(patient(sms=None), "sms", [], now=NOW, cap_days=7, run_id=1) == "no_consent"
    assert check_send(patient(sms=False), "sms", [], now=NOW, cap_days=7, run_id=1) == "opted_out"
    assert check_send(patient(), "sms", [], now=NOW, cap_days=7, run_id=1) is None


def test_both_channels_of_one_occurrence_are_not_capped_by_each_other() -> None:
    past = [(1, "sms", NOW - timedelta(minutes=1))]
    assert check_send(patient(), "email", past, now=NOW, cap_days=7, run_id=1) is None


def test_another_campaign_within_the_cap_days_is_capped_and_after_it_is_not() -> None:
    recent = [(2, "email", NOW - timedelta(days=6))]
    older = [(2, "email", NOW - timedelta(days=8))]
    assert check_send(patient(), "sms", recent, now=NOW, cap_days=7, run_id=1) == "frequency_cap"
    assert check_send(patient(), "sms", older, now=NOW, cap_days=7, run_id=1) is None


@pytest.mark.parametrize(
    ("state", "capped"), [("FL", True), ("OK", True), ("MD", True), ("MA", False)]
)
def test_state_caps_allow_three_texts_a_day(state: str, capped: bool) -> None:
    past = [(r, "sms", NOW - timedelta(hours=r)) for r in (2, 3, 4)]
    verdict = check_send(patient(state), "sms", past, now=NOW, cap_days=0, run_id=1)
    assert (verdict == "frequency_cap") is capped


def test_consent_given_for_another_number_or_address_is_no_consent_for_this_one() -> None:
    moved = replace(patient(), phone="+16175550199", email="new@example.com")
    assert skip_reason(moved, "sms") == "no_consent_for_number"
    assert skip_reason(moved, "email") == "no_consent_for_address"
    assert skip_reason(patient(), "sms") is None


def test_a_suppressed_number_is_skipped_whatever_the_consent() -> None:
    assert skip_reason(patient(), "sms", suppressed=True) == "suppressed"
    assert skip_reason(patient(sms=False), "sms", suppressed=True) == "opted_out"


def test_a_number_that_got_this_occurrence_for_another_patient_gets_nothing_more() -> None:
    shared = [(1, "sms", NOW - timedelta(minutes=1))]
    verdict = check_send(patient(), "sms", [], now=NOW, cap_days=0, run_id=1, shared=shared)
    assert verdict == "shared_number"
    assert check_send(patient(), "sms", [], now=NOW, cap_days=0, run_id=2, shared=shared) is None


def test_the_state_cap_counts_texts_to_the_number_for_other_patients() -> None:
    shared = [(r, "sms", NOW - timedelta(hours=r)) for r in (2, 3, 4)]
    verdict = check_send(patient("OK"), "sms", [], now=NOW, cap_days=0, run_id=9, shared=shared)
    assert verdict == "frequency_cap"
