from __future__ import annotations

from campaigns.people.tokens import UnsubscribeClaim, make_unsubscribe_token, read_unsubscribe_token


def test_a_token_reads_back_its_claim() -> None:
    token = make_unsubscribe_token("k", UnsubscribeClaim(42, 7))
    assert read_unsubscribe_token("k", token) == UnsubscribeClaim(42, 7, "email")


def test_a_tampered_token_is_refused() -> None:
    token = make_unsubscribe_token("k", UnsubscribeClaim(42, 7))
    other = make_unsubscribe_token("k", UnsubscribeClaim(43, 7))
    forged = other.split(".")[0] + "." + token.split(".")[1]
    assert read_unsubscribe_token("k", forged) is None
    assert read_unsubscribe_token("other-key", token) is None
    assert read_unsubscribe_token("k", "garbage") is None
    assert read_unsubscribe_token("k", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
