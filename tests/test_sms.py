"""SMS segments as carriers bill them, and Twilio-style smart encoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.content.sms import GSM7_BASIC, GSM7_EXTENSION, count_segments, is_gsm7, smart_encode

CYRILLIC = "\u0436"  # outside GSM-7, one UCS-2 unit
EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair, two UCS-2 units
RIGHT_QUOTE = "\u2019"


def test_160_gsm_characters_fit_one_segment_and_161_need_two() -> None:
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2


def test_a_split_gsm_message_carries_153_septets_per_segment() -> None:
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3


def test_euro_sign_counts_two_septets() -> None:
    info = count_segments("10\u20ac")
    assert (info.encoding, info.characters) == ("GSM-7", 4)


@pytest.mark.parametrize("char", ["\f", "^", "{", "}", "\\", "[", "~", "]", "|", "\u20ac"])
def test_every_extension_character_counts_two_septets(char: str) -> None:
    assert count_segments(char).characters == 2


def test_extension_character_at_the_end_of_a_single_segment_still_fits() -> None:
    info = count_segments("a" * 158 + "\u20ac")
    assert (info.characters, info.segments) == (160, 1)


def test_extension_character_straddling_the_153_boundary_moves_to_the_next_segment() -> None:
    # 306 septets would fit two segments, but the euro's escape would sit at septet
    # 153 and its character at 154: the pair moves, and a third segment is needed.
    straddling = count_segments("a" * 152 + "\u20ac" + "a" * 152)
    assert (straddling.characters, straddling.segments) == (306, 3)
    fitting = count_segments("a" * 151 + "\u20ac" + "a" * 153)
    assert (fitting.characters, fitting.segments) == (306, 2)


def test_70_ucs2_units_fit_one_segment_and_71_need_two() -> None:
    assert count_segments(CYRILLIC * 70).segments == 1
    assert count_segments(CYRILLIC * 71).segments == 2


def test_a_split_ucs2_message_carries_67_units_per_segment() -> None:
    assert count_segments(CYRILLIC * 134).segments == 2
    assert count_segments(CYRILLIC * 135).segments == 3


def test_emoji_counts_two_units() -> None:
    info = count_segments("Hi " + EMOJI)
    assert (info.encoding, info.characters, info.segments) == ("UCS-2", 5, 1)


def test_emoji_surrogate_pair_is_never_split_at_the_67_boundary() -> None:
    straddling = count_segments(CYRILLIC * 66 + EMOJI + CYRILLIC * 66)
    assert (straddling.characters, straddling.segments) == (134, 3)
    fitting = count_segments(CYRILLIC * 65 + EMOJI + CYRILLIC * 67)
    assert (fitting.characters, fitting.segments) == (134, 2)


def test_a_curly_quote_turns_the_whole_message_ucs2_and_is_reported() -> None:
    text = f"It{RIGHT_QUOTE}s cold season at Maple Acupuncture. " + "a" * 100
    info = count_segments(text)
    assert info.encoding == "UCS-2"
    assert info.ucs2_characters == [RIGHT_QUOTE]
    assert info.segments == 3  # 143 units; as GSM-7 it would have been 1 segment


def test_ucs2_characters_are_distinct_and_in_order_of_first_appearance() -> None:
    info = count_segments(f"{EMOJI} a \u2014 b {EMOJI} \u2014 {RIGHT_QUOTE}")
    assert info.ucs2_characters == [EMOJI, "\u2014", RIGHT_QUOTE]


def test_smart_encode_makes_a_curly_quoted_message_gsm7_again() -> None:
    text = f"\u201cIt{RIGHT_QUOTE}s cold season\u201d \u2014 book now\u2026"
    encoded = smart_encode(text)
    assert encoded == '"It\'s cold season" - book now...'
    info = count_segments(encoded)
    assert (info.encoding, info.ucs2_characters) == ("GSM-7", [])


@pytest.mark.parametrize(
    ("lookalike", "plain"),
    [
        ("\u2018", "'"),
        ("\u201c", '"'),
        ("\u00ab", '"'),
        ("\u2013", "-"),
        ("\u2014", "-"),
        ("\u2212", "-"),
        ("\u2026", "..."),
        ("\u00a0", " "),
        ("\u2009", " "),
        ("\u3000", " "),
        ("\u200b", ""),
        ("\uff01", "!"),
        ("\u00bd", "1/2"),
        ("`", "'"),
    ],
)
def test_smart_encode_replaces_each_lookalike_with_its_gsm_twin(lookalike: str, plain: str) -> None:
    assert smart_encode(f"a{lookalike}b") == f"a{plain}b"


def test_smart_encode_keeps_emoji_and_non_latin_scripts() -> None:
    text = f"\u65e5\u672c {EMOJI} \u0416\u0438\u0437\u043d\u044c \u0645\u0631\u062d\u0628\u0627"
    assert smart_encode(text) == text
    assert count_segments(smart_encode(text)).encoding == "UCS-2"


def test_smart_encode_keeps_the_zero_width_joiner_inside_emoji_sequences() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert smart_encode(family) == family


def test_empty_text_is_zero_segments_of_gsm7() -> None:
    info = count_segments("")
    assert (info.encoding, info.characters, info.segments) == ("GSM-7", 0, 0)


def test_segment_info_serialises_to_json() -> None:
    payload = json.loads(json.dumps(count_segments(f"a{EMOJI}").to_dict()))
    assert payload == {
        "encoding": "UCS-2",
        "characters": 3,
        "segments": 1,
        "ucs2_characters": [EMOJI],
    }


def test_gsm7_tables_match_gsm_03_38() -> None:
    assert len(GSM7_BASIC) == 127  # 128 positions less the escape
    assert len(GSM7_EXTENSION) == 10
    # Every non-ASCII letter and sign of the basic table, by code point.
    assert is_gsm7("\u00a3\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\u00d8\u00f8\u00c5\u00e5")
    assert is_gsm7("\u0394\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e")
    assert is_gsm7("\u00c6\u00e6\u00df\u00c9\u00a4\u00a1\u00c4\u00d6\u00d1\u00dc\u00a7")
    assert is_gsm7("\u00bf\u00e4\u00f6\u00f1\u00fc\u00e0")
    # Lower-case c-cedilla, the backtick and a literal escape are not GSM-7 text.
    assert not is_gsm7("\u00e7")
    assert not is_gsm7("`")
    assert not is_gsm7("\x1b")


gsm7_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION))


@given(st.text(), st.characters(exclude_categories=["Cs"]))
def test_appending_a_character_never_reduces_segments(text: str, char: str) -> None:
    assert count_segments(text + char).segments >= count_segments(text).segments


@given(st.text())
def test_segments_are_enough_for_every_unit(text: str) -> None:
    info = count_segments(text)
    per_segment = 153 if info.encoding == "GSM-7" else 67
    single = 160 if info.encoding == "GSM-7" else 70
    if info.characters <= single:
        assert info.segments == (1 if text else 0)
    else:
        assert info.segments >= -(-info.characters // per_segment)


@given(st.text())
def test_ucs2_characters_count_utf16_code_units(text: str) -> None:
    info = count_segments(text)
    if info.encoding == "UCS-2":
        assert info.characters == len(text.encode("utf-16-le")) // 2
        assert all(not is_gsm7(ch) for ch in info.ucs2_characters)
    else:
        assert info.ucs2_characters == []


@given(gsm7_text)
def test_smart_encode_leaves_gsm7_text_unchanged(text: str) -> None:
    assert smart_encode(text) == text


printable_ascii = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="`")


@given(st.text(alphabet=printable_ascii))
def test_smart_encode_leaves_printable_ascii_other_than_the_backtick_unchanged(text: str) -> None:
    assert smart_encode(text) == text


@given(st.text())
def test_smart_encode_is_idempotent(text: str) -> None:
    once = smart_encode(text)
    assert smart_encode(once) == once


@given(st.text(alphabet="\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0\u2009`abc "))
def test_smart_encode_turns_quotes_dashes_and_spaces_into_gsm7(text: str) -> None:
    assert is_gsm7(smart_encode(text))
