from __future__ import annotations

import hashlib
import itertools

import pytest
from itsdangerous import URLSafeSerializer

from campaigns.people.tokens import UnsubscribeClaim, make_unsubscribe_token, read_unsubscribe_token

# Made by the HMAC tokens.py signed links with before itsdangerous did, under key "k".
LEGACY_EMAIL_42_7 = "WzQyLDcsImVtYWlsIl0.p_UvYdW5HnMyy3t2mS0N5w"
LEGACY_SMS_42 = "WzQyLG51bGwsInNtcyJd.bDSGl3HI2CCppVmezEn4Fg"


def test_a_token_reads_back_its_claim() -> None:
    token = make_unsubscribe_token("k", UnsubscribeClaim(42, 7))
    assert read_unsubscribe_token("k", token) == UnsubscribeClaim(42, 7, "email")
    sms = make_unsubscribe_token("k", UnsubscribeClaim(42, None, "sms"))
    assert read_unsubscribe_token("k", sms) == UnsubscribeClaim(42, None, "sms")


def test_a_tampered_token_is_refused() -> None:
    token = make_unsubscribe_token("k", UnsubscribeClaim(42, 7))
    other = make_unsubscribe_token("k", UnsubscribeClaim(43, 7))
    forged = other.split(".")[0] + "." + token.split(".")[1]
    assert read_unsubscribe_token("k", forged) is None
    assert read_unsubscribe_token("other-key", token) is None
    assert read_unsubscribe_token("k", "garbage") is None
    assert read_unsubscribe_token("k", token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_a_token_signed_for_another_purpose_is_refused() -> None:
    # The secret also signs sessions and API tokens: another salt must not read as a link.
    session_like = URLSafeSerializer("k", salt="meridian.api-token").dumps([42, 7, "email"])
    assert read_unsubscribe_token("k", session_like) is None


def test_a_link_sent_before_itsdangerous_still_reads() -> None:
    assert read_unsubscribe_token("k", LEGACY_EMAIL_42_7) == UnsubscribeClaim(42, 7, "email")
    assert read_unsubscribe_token("k", LEGACY_SMS_42) == UnsubscribeClaim(42, None, "sms")


def test_a_tampered_or_foreign_legacy_link_is_refused() -> None:
    payload, sig = LEGACY_EMAIL_42_7.split(".")
    other_payload = LEGACY_SMS_42.split(".")[0]
    assert read_unsubscribe_token("k", f"{other_payload}.{sig}") is None
    assert read_unsubscribe_token("other-key", LEGACY_EMAIL_42_7) is None
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert read_unsubscribe_token("k", f"{payload}.{flipped}") is None


@pytest.mark.parametrize("secret", ["s" * 32, "another secret, of 41 characters, mixed"])
def test_a_token_is_exactly_what_itsdangerous_itself_signs(secret: str) -> None:
    """The token is built from itsdangerous' payload and derived key (faster than a new
    serializer per email): byte for byte its own ``dumps``, over ids of every size."""
    own = URLSafeSerializer(
        secret, salt="meridian.unsubscribe", signer_kwargs={"digest_method": hashlib.sha256}
    )
    for patient_id, delivery_id, channel in itertools.product(
        (1, 99, 12_345, 2**31 + 7, 10**18 + 3), (None, 1, 678_901, 10**15 + 1), ("email", "sms")
    ):
        claim = UnsubscribeClaim(patient_id, delivery_id, channel)
        token = make_unsubscribe_token(secret, claim)
        assert token == own.dumps([patient_id, delivery_id, channel])
        assert read_unsubscribe_token(secret, token) == claim
