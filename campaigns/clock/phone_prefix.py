"""How many leading digits of a NANP number decide what Meridian asks about it.

``geography.phone_area`` asks phonenumbers a number's region, its type (is it placed
somewhere?), its zones, and the shipped table its state. Each answer is read from
the number's leading digits: the regions' leading-digit patterns and the zone table
by prefix, the state table by NPA-NXX, and every type pattern of every NANP region
ends in a run of free digits (``...\\d{4}``), so whether ten digits match it is
decided by the digits before that run. ``prefix_digits`` works that length out from
the installed phonenumbers' own metadata, once; numbers that share those digits
share their answer, so the cache holds one entry per prefix (a few thousand for a
clinic), not one per number (65,536 of them, 15 MB in every worker process at a
million patients, measured). Should a release bring a pattern this reading does
not understand, it says so (None) and the cache is keyed by the whole number again.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from phonenumbers.tzdata import TIMEZONE_DATA

__all__ = ["area_key", "prefix_digits", "representative"]

# A NANP number's national significant number: ten digits, the area code first
# (never 0 or 1, so parsing strips no national prefix from it).
NATIONAL_DIGITS = 10
_E164_NANP = re.compile(r"\+1[2-9]\d{9}")


def area_key(phone_e164: str, digits: int | None) -> str:
    """The number itself, or "+1", its first ``digits`` national digits and "*" when
    those decide everything (``prefix_digits``) and it is a plain NANP number."""
    if digits is None or not _E164_NANP.fullmatch(phone_e164):
        return phone_e164
    return phone_e164[: 2 + digits] + "*"


def representative(key: str) -> str:
    """A whole number ``area_key`` gives ``key`` for: the number itself, or the prefix
    with zeros after it."""
    if not key.endswith("*"):
        return key
    return key[:-1].ljust(2 + NATIONAL_DIGITS, "0")


@functools.cache
def prefix_digits(state_table_digits: int) -> int | None:
    """The national digits that decide a NANP number's region, type, zones and state
    (the state table reads ``state_table_digits``); None if some pattern of the
    installed metadata is not of the shape this relies on."""
    parser: Any = importlib.import_module("re._parser")
    needed = state_table_digits
    zone_keys = [k for k in TIMEZONE_DATA if k.startswith("1")]
    needed = max(needed, *(len(k) - 1 for k in zone_keys))
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            return None
        if metadata.leading_digits is not None:
            widest = parser.parse(metadata.leading_digits).getwidth()[1]
            needed = max(needed, widest)
        for desc in vars(metadata).values():
            if isinstance(desc, PhoneNumberDesc) and desc.national_number_pattern:
                free = _free_tail(parser, desc.national_number_pattern)
                needed = max(needed, NATIONAL_DIGITS - free)
    return needed if needed < NATIONAL_DIGITS else None


def _free_tail(parser: Any, pattern: str) -> int:
    """How many digits at the end of every match of ``pattern`` may be any digit."""
    return _tail(importlib.import_module("re._constants"), list(parser.parse(pattern)))


def _tail(constants: Any, items: list[tuple[Any, Any]]) -> int:
    """The fixed-count ``\\d`` runs a sequence of regex items ends in; through a
    group or an alternation at its end, the fewest of its branches (fewer is the safe
    side: more leading digits decide)."""
    free = 0
    for op, arg in reversed(items):
        if _any_digit(constants, op, arg):
            free += 1
        elif op is constants.MAX_REPEAT and arg[0] == arg[1]:
            body = list(arg[2])
            if len(body) != 1 or not _any_digit(constants, *body[0]):
                return free
            free += arg[0]
        elif op is constants.BRANCH:
            return free + min(_tail(constants, list(branch)) for branch in arg[1])
        elif op is constants.SUBPATTERN:
            return free + _tail(constants, list(arg[3]))
        else:
            return free
    return free


def _any_digit(constants: Any, op: Any, arg: Any) -> bool:
    return bool(
        op is constants.IN
        and len(arg) == 1
        and arg[0] == (constants.CATEGORY, constants.CATEGORY_DIGIT)
    )
