"""What the ledger's codes mean, in the words staff read: one table for the console,
the CLI (``meridian runs show``) and the JSON API alike.

Every SkipReason has its sentence here; tests/test_words.py fails when a reason is
added without one.
"""

from __future__ import annotations

from collections.abc import Mapping

from campaigns.domain.states import SkipReason

SKIP_WORDS: Mapping[SkipReason, str] = {
    SkipReason.NO_CONSENT: "no consent on file for this channel",
    SkipReason.OPTED_OUT: "the patient opted out",
    SkipReason.INVALID_CONTACT: "no valid phone number or email address on file",
    SkipReason.FREQUENCY_CAP: "already messaged recently (frequency cap)",
    SkipReason.CANCELLED: "the run was cancelled before it was sent",
    SkipReason.NO_LAWFUL_TIME: (
        "no lawful hour in every place the patient might be before the grace ran out"
    ),
    SkipReason.NO_CONSENT_FOR_NUMBER: "consent was given for a different phone number",
    SkipReason.NO_CONSENT_FOR_ADDRESS: "consent was given for a different email address",
    SkipReason.SUPPRESSED: "the number or address is on the suppression list",
    SkipReason.SHARED_NUMBER: (
        "another patient with the same number or address got this occurrence's message"
    ),
    SkipReason.BOUNCED: "email to this address bounced (it is on the suppression list)",
    SkipReason.COMPLAINED: "the recipient reported an earlier email as spam (suppressed)",
    SkipReason.DEAD_NUMBER: (
        "the carrier said the number is dead, invalid or cannot take texts (suppressed)"
    ),
}

# Why a pending delivery waits, as campaigns.store.results tells it from the ledger.
WAIT_WORDS: Mapping[str, str] = {
    "planned": "waiting for the send time on each patient's clock (their window)",
    "held": "held when it came due: outside lawful hours (quiet hours or a holiday) there",
    "retry": "waiting to try again after a provider error (retry backoff)",
}


def skip_words(reason: str | None) -> str:
    """The sentence for a stored skip reason; an unknown code is shown as it is."""
    if reason is None:
        return "no reason recorded"
    try:
        return SKIP_WORDS[SkipReason(reason)]
    except ValueError:
        return reason
