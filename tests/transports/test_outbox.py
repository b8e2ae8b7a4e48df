"""The outbox transport's .eml, read back as bytes with a different parser than wrote it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from campaigns.domain.transport import OutboundMessage
from campaigns.errors import PermanentError
from campaigns.transports.outbox import LOG_NAME, OutboxTransport
from tests.support.mail import (
    LONG_UNSUBSCRIBE,
    NON_ASCII_FROM,
    NON_ASCII_SUBJECT,
    assert_headers_readable_by_compat32,
    dkim_signs_and_survives_a_compat32_relay,
    header_block,
)

PATIENT = "pat.patient@example.net"
UNSUBSCRIBE = "https://clinic.example.org/unsubscribe/tok123"
SENDER = "Maple Clinic <hello@clinic.example.org>"


def outbound(**overrides: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "delivery_id": 7,
        "run_id": 3,
        "channel": "email",
        "to": PATIENT,
        "subject": "Flu season is coming",
        "body": "Book your visit.\n\nUnsubscribe: " + UNSUBSCRIBE,
        "html": "<p>Book your visit.</p>",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(overrides)
    return OutboundMessage(**values)


def send(tmp_path: Path, message: OutboundMessage, sender: str = SENDER) -> bytes:
    transport = OutboxTransport("email", tmp_path, sender, "frontdesk@clinic.example.org")
    transport.send(message)
    return (tmp_path / "email" / f"run{message.run_id}-d{message.delivery_id}.eml").read_bytes()


def test_the_eml_carries_the_one_click_headers_unencoded(tmp_path: Path) -> None:
    raw = send(tmp_path, outbound())

    head = header_block(raw)
    assert f"\nList-Unsubscribe: <{UNSUBSCRIBE}>\n".encode() in head
    assert b"\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n" in head
    assert b"mailto:" not in head
    parsed = assert_headers_readable_by_compat32(raw, UNSUBSCRIBE, sender=SENDER)
    assert parsed["Reply-To"] == "frontdesk@clinic.example.org"
    assert parsed["Message-ID"] == "<meridian.3.7@clinic.example.org>"
    assert parsed["Date"]


def test_a_long_url_and_non_ascii_subject_and_sender_in_the_eml(tmp_path: Path) -> None:
    raw = send(
        tmp_path,
        outbound(subject=NON_ASCII_SUBJECT, unsubscribe_url=LONG_UNSUBSCRIBE),
        sender=NON_ASCII_FROM,
    )

    assert f"\nList-Unsubscribe: <{LONG_UNSUBSCRIBE}>\n".encode() in header_block(raw)
    assert_headers_readable_by_compat32(
        raw, LONG_UNSUBSCRIBE, subject=NON_ASCII_SUBJECT, sender=NON_ASCII_FROM
    )
    dkim_signs_and_survives_a_compat32_relay(raw.replace(b"\n", b"\r\n"), tmp_path)


def test_an_email_without_an_unsubscribe_url_has_no_list_headers(
    tmp_path: Path,
) -> None:
    raw = send(tmp_path, outbound(unsubscribe_url=None, html=None))

    assert b"List-Unsubscribe" not in header_block(raw)


def test_a_header_injection_is_refused_and_nothing_is_logged(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        send(tmp_path, outbound(unsubscribe_url=UNSUBSCRIBE + "\nBcc: someone@example.com"))

    assert not (tmp_path / LOG_NAME).exists()
    assert list((tmp_path / "email").iterdir()) == []


def test_the_log_line_and_the_eml_describe_the_same_message(tmp_path: Path) -> None:
    send(tmp_path, outbound())

    [record] = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert record["provider_id"] == "outbox-email-7"
    assert record["to"] == PATIENT
