"""Twilio's error codes in plain words, and which ones mean the number is done for.

The codes a status callback or a send most often carries (Twilio's error
dictionary, www.twilio.com/docs/api/errors). ``SUPPRESSING``: the number is dead,
not a mobile, invalid, or opted out; sending again cannot succeed, so the number
goes on the suppression list (DESIGN.md §9). 30003 (unreachable) and 30008
(unknown) can be a phone switched off: counted, not suppressed.
"""

from __future__ import annotations

from collections.abc import Mapping

TWILIO_ERRORS: Mapping[str, str] = {
    "21211": "the number is not a valid phone number",
    "21408": "sending to this region is not enabled on the Twilio account",
    "21610": "the recipient replied STOP: the number has opted out",
    "21612": "Twilio cannot route a message to this number",
    "21614": "the number is not a mobile number",
    "30001": "Twilio's queue overflowed; the message was not sent",
    "30002": "the Twilio account is suspended",
    "30003": "the phone is unreachable (switched off or out of coverage)",
    "30004": "the message was blocked (the recipient or their carrier blocks it)",
    "30005": "unknown number: it does not exist or is no longer in service",
    "30006": "the number is a landline or cannot receive texts",
    "30007": "the carrier filtered the message as spam",
    "30008": "the carrier reported an unknown error",
    "30034": "the message came from an unregistered A2P 10DLC number",
}

# Dead, invalid, not a mobile, or opted out: suppress the number.
SUPPRESSING: frozenset[str] = frozenset({"21211", "21610", "21614", "30005", "30006"})


def error_words(code: str | None) -> str | None:
    """Plain words for a Twilio error code; None for no code, the code for one unknown."""
    if not code:
        return None
    return TWILIO_ERRORS.get(code, f"Twilio error {code}")
