"""SMS encoding and segments, counted the way carriers bill them.

Sources (COMPLIANCE.md, "SMS encoding"): 3GPP TS 23.038 for the GSM-7 alphabet;
Twilio and Sinch docs for 160/153 and 70/67 segment sizes; Twilio's smart-encoding
character list for the look-alikes ``smart_encode`` replaces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from campaigns.content.links import shortened_for_count

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet in code-point order (0x00-0x7F). 0x1B is the escape to
# the extension table, not a character anyone can type, so it is not encodable text.
_GSM7_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_BASIC = frozenset(_GSM7_TABLE) - {"\x1b"}
# Reached through the escape, so each costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153  # a multi-part segment gives 7 septets to its header
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SegmentInfo:
    """How a text would travel: encoding, units as counted, and segments billed."""

    encoding: Encoding
    # GSM-7 septets (extension characters count 2) or UCS-2 code units (astral
    # characters such as emoji count 2, as a surrogate pair).
    characters: int
    # Empty text is 0 segments: Twilio rejects an empty body, so nothing is billed.
    segments: int
    # Distinct characters that forced UCS-2, in order of first appearance.
    ucs2_characters: list[str]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def count_segments(text: str, public_url: str | None = None) -> SegmentInfo:
    """Count the segments ``text`` is billed as, with the characters to blame for UCS-2.

    With ``public_url``, each link is counted at the length of the first-party short
    link it is sent as (campaigns.content.links)."""
    if public_url is not None:
        text = shortened_for_count(text, public_url)
    outsiders = _find_non_gsm7(text)
    if not outsiders:
        septets = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SegmentInfo(
            encoding="GSM-7",
            characters=sum(septets),
            segments=_pack_segments(septets, GSM7_SINGLE, GSM7_MULTI),
            ucs2_characters=[],
        )
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo(
        encoding="UCS-2",
        characters=sum(units),
        segments=_pack_segments(units, UCS2_SINGLE, UCS2_MULTI),
        ucs2_characters=outsiders,
    )


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM-7 encoding."""
    return not _find_non_gsm7(text)


def smart_encode(text: str) -> str:
    """Replace look-alike characters with their GSM-7 twins, as Twilio's smart encoding does.

    Curly quotes, dashes, ellipses, odd spaces and full-width forms become plain GSM
    text; emoji, accented letters outside GSM-7 and non-Latin scripts are left alone,
    so such a message stays UCS-2.
    """
    return text.translate(_SMART_ENCODING)


def _find_non_gsm7(text: str) -> list[str]:
    found: dict[str, None] = {}
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            found.setdefault(ch, None)
    return list(found)


def _pack_segments(widths: Iterable[int], single: int, multi: int) -> int:
    """Fill segments greedily; a unit of width 2 never straddles two segments."""
    widths = list(widths)
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, filled = 1, 0
    for width in widths:
        if filled + width > multi:
            segments += 1
            filled = 0
        filled += width
    return segments


# Grouped by the GSM text they become. Built from Twilio's published smart-encoding
# list, with these deliberate differences: single-angle quotes map the right way round
# (Twilio's list swaps them), odd spaces become one space rather than two, a tab becomes
# one space, and combining marks are left alone (on decomposed text they would turn
# "n" + combining tilde into "n~").
_LOOKALIKES: dict[str, str] = {
    '"': "\u00ab\u00bb\u201c\u201d\u201e\u201f\u02ba\u02ee\u2033\u275d\u275e\u301d\u301e",
    "'": "\u2018\u2019\u201b\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb\u00b4\u0060"
    "\u2032\u275b\u275c\uff40",
    ",": "\u201a\u3001\ufe50\ufe51\uff64",
    "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2022\u23bc\u23bd\ufe58\ufe63",
    "...": "\u2026",
    "!!": "\u203c",
    "!": "\ufe15\ufe57",
    "?": "\ufe16\ufe56",
    "/": "\u00f7\u2044\u2215\u29f8",
    "\\": "\u29f5\u29f9\ufe68",
    "_": "\u2017",
    "|": "\u2223\u239c\u239f\u23b8\u23b9\u23d0",
    "~": "\u02dc\u02f7\u223c",
    "^": "\u02c6",
    "*": "\u204e\u2217\u229b\u2731\ufe61",
    "<": "\u2039\ufe64",
    ">": "\u203a\ufe65",
    "(": "\ufe59",
    ")": "\ufe5a",
    "{": "\ufe5b",
    "}": "\ufe5c",
    ".": "\u3002\ufe52\uff61",
    ":": "\u02d0\u02f8\u2236\ua789\ufe13",
    ";": "\u204f\ufe14\ufe54",
    "=": "\ua78a\ufe66",
    "+": "\u02d6\ufe62",
    "#": "\ufe5f",
    "%": "\ufe6a",
    "&": "\ufe60",
    "@": "\ufe6b",
    "$": "\ufe69",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    " ": "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000",
    # Invisible characters go. Zero-width joiners stay: emoji sequences and Indic
    # scripts need them.
    "": "\u00ad\u200b\u2060\ufeff",
}


def _build_smart_encoding() -> dict[int, str]:
    table: dict[int, str] = {}
    for replacement, lookalikes in _LOOKALIKES.items():
        for ch in lookalikes:
            table[ord(ch)] = replacement
    # Full-width ASCII forms (U+FF01-U+FF5E) are the ASCII characters shifted up.
    for offset in range(0x5E):
        table.setdefault(0xFF01 + offset, chr(0x21 + offset))
    # Control characters other than LF, CR and form feed have no GSM-7 encoding and
    # show nothing on a handset.
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    for code in controls:
        if chr(code) not in "\n\r\f\t":
            table[code] = ""
    return table


_SMART_ENCODING = _build_smart_encoding()
