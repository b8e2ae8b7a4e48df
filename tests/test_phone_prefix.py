"""A phone's area cached by its leading digits gives the same answer as the number
itself (campaigns.clock.phone_prefix, campaigns.clock.geography.phone_area)."""

from __future__ import annotations

import importlib
import random

import pytest

from campaigns.clock import geography, phone_prefix


def test_the_installed_metadata_lets_the_area_be_read_from_a_prefix() -> None:
    # NPA-NXX for the zones and the state table; Barbados' mobiles need one digit more.
    assert phone_prefix.prefix_digits(6) == 7


@pytest.mark.parametrize(
    ("pattern", "free"),
    [
        (r"[2-9]\d{2}[2-9]\d{6}", 6),
        (r"24631\d{5}", 5),
        (r"(?:2[0-9]|3[45])\d{4}", 4),
        (r"5(?:00|33)[2-9]\d{6}|8\d{3}\d{4}", 6),
        (r"441(?:[2378]\d|5[0-39]|9[02])\d{5}", 5),
        (r"x(?:a\d{5}|b\d{2})", 2),
        (r"a\d{4}|b", 0),
        (r"\d{3,4}", 0),
        (r"[0-8]{4}", 0),
    ],
)
def test_only_fixed_runs_of_any_digit_at_the_end_count_as_free(pattern: str, free: int) -> None:
    parser = importlib.import_module("re._parser")
    assert phone_prefix._free_tail(parser, pattern) == free


def test_numbers_that_share_the_prefix_share_the_answer_of_the_whole_number() -> None:
    rng = random.Random(16)
    table = list(geography.area_codes_by_state().values())
    area_codes = [code for codes in table for code in codes]
    numbers = [f"+1{rng.choice(area_codes)}{rng.randrange(10**7):07d}" for _ in range(4000)]
    numbers += [f"+1{rng.randrange(2, 10)}{rng.randrange(10**9):09d}" for _ in range(4000)]
    # Barbados' mobiles (the longest prefix), toll-free, a foreign number, a short one.
    numbers += ["+12462345678", "+12465211234", "+18005550100", "+442071234567", "+1212555"]
    for number in numbers:
        assert geography.phone_area(number) == geography._phone_area(number), number


def test_a_prefix_key_names_only_plain_nanp_numbers() -> None:
    assert phone_prefix.area_key("+12125550123", 7) == "+12125550*"
    assert phone_prefix.representative("+12125550*") == "+12125550000"
    for other in ("+442071234567", "+11125550123", "+1212555012", "+12125550123"):
        digits = None if other == "+12125550123" else 7
        assert phone_prefix.area_key(other, digits) == other
        assert phone_prefix.representative(other) == other
