"""Reading an email from the other side of the wire: raw bytes, a different parser, DKIM.

Meridian writes email with ``email.policy`` (the modern API); these helpers read
it back with the ``compat32`` policy, the legacy parser many relays and filters
still use, and check a DKIM signature with dkimpy, as a receiving provider would.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr
from pathlib import Path

import dkim

from tests.support.services import require_binary

# Long enough that the default policy would fold it, and then encode it.
LONG_UNSUBSCRIBE = "https://clinic.example.org/unsubscribe/" + (
    "eyJwIjoxMjM0NSwiZCI6OTg3NjU0MzIxLCJjIjoiZW1haWwifQ.Zx_-Q" * 5
)
NON_ASCII_FROM = "Clínica Ñandú <hello@clinic.example.org>"
NON_ASCII_SUBJECT = (
    "Grippe-Saison: Zeit für Sie \u2013 ein ruhiger Termin bei Clínica Ñandú, bevor es kalt wird"
)
_LIST_HEADERS = [b"list-unsubscribe", b"list-unsubscribe-post"]
_LIST_URL = re.compile(r"^<(https://[^<>\s]+/unsubscribe/[^<>\s]+)>$")


def header_block(raw: bytes) -> bytes:
    """The header section of a raw message, from its first byte to the blank line."""
    end = raw.find(b"\r\n\r\n")
    if end == -1:
        end = raw.find(b"\n\n")
    assert end != -1, "no blank line ends the header section"
    return raw[: end + 2]


def assert_headers_readable_by_compat32(
    raw: bytes, url: str, *, subject: str | None = None, sender: str | None = None
) -> Message:
    """Parse ``raw`` with compat32 and check what a provider would read from it.

    The List-Unsubscribe value is exactly ``<url>`` (an https URL to /unsubscribe/,
    no encoded-word, no folding), List-Unsubscribe-Post is the RFC 8058 value, the
    header section is 7-bit ASCII with no line over 998 characters, and a given
    subject or sender decodes (RFC 2047) back to what was sent.
    """
    head = header_block(raw)
    assert head.isascii(), "8-bit bytes in the header section"
    assert all(len(line) <= 998 for line in head.splitlines())
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    value = parsed["List-Unsubscribe"]
    assert isinstance(value, str)  # compat32 hands back the raw value, not a Header
    assert "=?" not in value
    match = _LIST_URL.match(value)
    assert match is not None, f"not one <https://.../unsubscribe/...>: {value!r}"
    assert match.group(1) == url
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    if subject is not None:
        assert str(make_header(decode_header(parsed["Subject"]))) == subject
    if sender is not None:
        name, address = parseaddr(parsed["From"])
        want_name, want_address = parseaddr(sender)
        assert str(make_header(decode_header(name))) == want_name
        assert address == want_address
    return parsed


def dkim_signs_and_survives_a_compat32_relay(raw: bytes, workdir: Path) -> None:
    """Sign ``raw`` as a clinic's MTA would (relaxed/relaxed, the list headers in
    ``h=``), verify it, and verify it again after a relay re-serialises the message
    with compat32 (which refolds long header lines)."""
    openssl = require_binary("openssl")
    key = workdir / "dkim.pem"
    subprocess.run(
        [openssl, "genrsa", "-traditional", "-out", str(key), "2048"],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"meridian._domainkey.clinic.example.org."
        return record

    signature = dkim.sign(
        raw,
        b"meridian",
        b"clinic.example.org",
        key.read_bytes(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", *_LIST_HEADERS],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    assert b"list-unsubscribe-post" in signature
    signed = signature + raw
    assert dkim.verify(signed, dnsfunc=dns)

    relayed = email.message_from_bytes(signed, policy=email.policy.compat32).as_bytes(
        policy=email.policy.compat32.clone(linesep="\r\n")
    )
    assert dkim.verify(relayed, dnsfunc=dns)
