"""The phrase table of campaigns/data/replies.yaml: every example read as it says.

Errors fall on the patient's side: an opt-out word anywhere revokes unless it is
plainly not about messages, and everything that is not a plain keyword is flagged.
"""

from __future__ import annotations

import pytest

from campaigns.errors import ConfigError
from campaigns.people.replies import (
    Example,
    is_promotional,
    normalize,
    parse_rules,
    read_reply,
    replies_rules,
)

EXAMPLES = replies_rules().examples


def test_the_table_has_at_least_a_hundred_phrases_and_every_kind() -> None:
    assert len(EXAMPLES) >= 100
    kinds = {e.kind for e in EXAMPLES}
    assert kinds == {
        "stop",
        "revocation",
        "start",
        "help",
        "wrong_number",
        "unclear",
        "booking",
        "other",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=[repr(e.text) for e in EXAMPLES])
def test_each_phrase_is_read_as_the_table_says(example: Example) -> None:
    reading = read_reply(example.text)
    assert reading.kind == example.kind
    plain_keyword = example.kind in ("stop", "start", "help") and not example.review
    assert reading.needs_review is not plain_keyword


@pytest.mark.parametrize(
    "body",
    [
        "STOP please",
        "Please stop",
        "Cancel please",
        "STOP ALL",
        "Remove me",
        "Alto",
        "No más",
        "Baja",
        "Parar",
        "not interested",
        "leave me alone",
        "no more texts",
    ],
)
def test_the_replies_the_issue_found_ignored_now_revoke(body: str) -> None:
    reading = read_reply(body)
    assert reading.revokes
    assert reading.suppresses


def test_a_symptom_keeps_consent_and_is_flagged_for_a_person() -> None:
    reading = read_reply("I can't stop sneezing")
    assert not reading.revokes
    assert reading.needs_review
    assert reading.keyword_kept


def test_wrong_number_suppresses_without_revoking_the_patients_word() -> None:
    reading = read_reply("wrong number")
    assert reading.suppresses
    assert not reading.revokes


def test_the_false_positive_the_issue_found_no_longer_revokes() -> None:
    assert read_reply("Don't forget to text me the address").kind == "other"


def test_normalisation_folds_accents_case_punctuation_and_emoji() -> None:
    assert normalize("  NO MÁS!!! 🛑 ") == "no mas"
    assert normalize("Don\u2019t   text-me") == "dont text me"


def test_promotional_words_are_found_in_a_staff_reply() -> None:
    assert is_promotional("20% off all visits this week") == "percent off"
    assert is_promotional("Flu shot special offer") == "offer"
    assert is_promotional("Yes, Tuesday at 3 works. See you then.") is None


def test_a_pattern_citing_an_unlisted_source_is_refused_naming_it() -> None:
    text = (
        "sources: {a: x}\nopt_out: [{words: [stop], source: b}]\nstart: []\nhelp: []\n"
        "message_words: {words: [text], source: a}\nexceptions: []\nrevocation: []\n"
        "wrong_number: []\nbooking: []\npromotional: {words: [sale], source: a}\nexamples: []\n"
    )
    with pytest.raises(ConfigError, match=r"origin\.yaml: source 'b'"):
        parse_rules(text, "origin.yaml")


def test_a_bad_pattern_is_refused_naming_the_field() -> None:
    text = (
        "sources: {a: x}\nopt_out: []\nstart: []\nhelp: []\n"
        "message_words: {words: [text], source: a}\nexceptions: [{pattern: '(', source: a}]\n"
        "revocation: []\nwrong_number: []\nbooking: []\n"
        "promotional: {words: [sale], source: a}\nexamples: []\n"
    )
    with pytest.raises(ConfigError, match=r"origin\.yaml: exceptions\.0\.pattern"):
        parse_rules(text, "origin.yaml")
