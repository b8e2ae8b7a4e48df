"""The plain-words table (campaigns.domain.words) and the chart's scale: pure, no ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.domain.states import SkipReason
from campaigns.domain.words import SKIP_WORDS, skip_words
from campaigns.sending import chart


@pytest.mark.parametrize("reason", list(SkipReason))
def test_every_skip_reason_has_words_staff_can_read(reason: SkipReason) -> None:
    words = SKIP_WORDS.get(reason)
    assert words, f"SkipReason.{reason.name} has no words in campaigns.domain.words.SKIP_WORDS"
    assert words != reason.value and "_" not in words
    assert skip_words(reason.value) == words


def test_the_words_table_names_no_reason_that_does_not_exist() -> None:
    assert set(SKIP_WORDS) == set(SkipReason)


def test_an_unknown_stored_reason_is_shown_as_it_is() -> None:
    assert skip_words("from_the_future") == "from_the_future"
    assert skip_words(None) == "no reason recorded"


@pytest.mark.parametrize(
    ("span", "size"),
    [
        (timedelta(0), 1),
        (timedelta(seconds=40), 1),
        (timedelta(minutes=5), 15),
        (timedelta(minutes=30), 60),
        (timedelta(hours=2), 300),
        (timedelta(hours=10), 900),
        (timedelta(days=1), 3600),
        (timedelta(days=7), 6 * 3600),
        (timedelta(days=40), 86400),
    ],
)
def test_the_bucket_keeps_a_run_of_any_length_to_a_readable_number_of_bars(
    span: timedelta, size: int
) -> None:
    start = datetime(2027, 10, 15, 14, tzinfo=UTC)
    chosen, _ = chart.choose_bucket(start, start + span)
    assert chosen == size
    assert span.total_seconds() / chosen < chart.MAX_BARS


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (17, 20), (100, 100), (101, 200)]
)
def test_the_y_axis_ends_on_a_round_number(value: int, top: int) -> None:
    assert chart.nice_top(value) == top
