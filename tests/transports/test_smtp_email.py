"""SmtpEmailTransport against a real SMTP server (aiosmtpd) on a loopback port."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from campaigns.domain.transport import OutboundMessage
from campaigns.errors import OutcomeUnknown, PermanentError, TransientError
from campaigns.people import verp
from campaigns.settings import Settings
from campaigns.transports.smtp_email import SmtpEmailTransport
from tests.support.mail import (
    LONG_UNSUBSCRIBE,
    NON_ASCII_FROM,
    NON_ASCII_SUBJECT,
    assert_headers_readable_by_compat32,
    dkim_signs_and_survives_a_compat32_relay,
    header_block,
)
from tests.support.services import free_port, require_binary

PATIENT = "pat.patient@example.net"
UNSUBSCRIBE = "https://clinic.example.org/unsubscribe/tok123"


class RecordingHandler:
    """Keeps what arrived; answers or hangs up at the step a test chooses."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # the DATA exactly as the server read it
        self.envelopes: list[tuple[str, list[str]]] = []
        self.connections: list[SMTP] = []
        self.replies: dict[str, str] = {}  # command -> reply to give instead of 250
        self.hang_up_at: str | None = None  # command at which to drop the connection
        self.data_delay_s = 0.0
        self.close_after_data = False

    def _step(self, server: SMTP, command: str) -> str | None:
        if self.hang_up_at == command:
            self.hang_up_at = None
            assert server.transport is not None
            server.transport.close()
            return "250 OK"  # never reaches the client: the transport is closed
        return self.replies.pop(command, None)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        if server not in self.connections:
            self.connections.append(server)
        session.host_name = hostname  # a handle_EHLO hook must record it itself
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._step(server, "MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._step(server, "RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        reply = self._step(server, "DATA")
        if reply:
            return reply
        assert isinstance(envelope.content, bytes)
        assert isinstance(envelope.original_content, bytes)
        self.raw.append(envelope.original_content)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        if self.close_after_data:
            self.close_after_data = False
            transport = server.transport
            assert transport is not None
            # After the 250 below is written: the server ends an idle connection.
            server.loop.call_soon(transport.close)
        return "250 2.0.0 Ok: queued"


class LoopbackController(Controller):
    """An aiosmtpd Controller on a port the OS picks (Controller itself needs one given)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def start_smtp(handler: RecordingHandler) -> Iterator[Callable[..., LoopbackController]]:
    started: list[LoopbackController] = []

    def start(**kwargs: Any) -> LoopbackController:
        controller = LoopbackController(handler, hostname="127.0.0.1", port=0, **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp: Callable[..., LoopbackController]) -> LoopbackController:
    return start_smtp()


def make_settings(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_timeout_s": 5.0,
        "email_from": "Maple Clinic <hello@clinic.example.org>",
        "email_reply_to": "frontdesk@clinic.example.org",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_transport() -> Iterator[Callable[..., SmtpEmailTransport]]:
    made: list[SmtpEmailTransport] = []

    def make(port: int, **overrides: Any) -> SmtpEmailTransport:
        transport = SmtpEmailTransport(make_settings(port, **overrides))
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def transport(
    smtp_server: LoopbackController, make_transport: Callable[..., SmtpEmailTransport]
) -> SmtpEmailTransport:
    return make_transport(smtp_server.port)


def outbound(delivery_id: int = 7, **overrides: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "delivery_id": delivery_id,
        "run_id": 3,
        "channel": "email",
        "to": PATIENT,
        "subject": "Flu season is coming",
        "body": "Book your visit.\n\nUnsubscribe: " + UNSUBSCRIBE,
        "html": "<p>Book your visit.</p><p><a href='" + UNSUBSCRIBE + "'>Unsubscribe</a></p>",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(overrides)
    return OutboundMessage(**values)


def test_a_message_arrives_as_multipart_alternative_with_text_and_html(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound())

    [received] = handler.messages
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content().startswith("Book your visit.")
    assert "<a href='" + UNSUBSCRIBE + "'>" in html.get_content()
    ((mail_from, rcpt_tos),) = handler.envelopes
    assert rcpt_tos == [PATIENT]
    # VERP: the envelope sender names the delivery, signed, at the sender's domain.
    assert mail_from.startswith("bounces+") and mail_from.endswith("@clinic.example.org")
    secret = Settings(_env_file=None).secret_key.get_secret_value()  # type: ignore[call-arg]
    assert verp.read_return_path(secret, mail_from) == 7


def test_headers_name_sender_recipient_reply_to_subject_date_and_a_delivery_message_id(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    receipt = transport.send(outbound(delivery_id=41))

    [received] = handler.messages
    assert received["From"] == "Maple Clinic <hello@clinic.example.org>"
    assert received["To"] == PATIENT
    assert received["Reply-To"] == "frontdesk@clinic.example.org"
    assert received["Subject"] == "Flu season is coming"
    sent_at = received["Date"].datetime
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60
    assert received["Message-ID"] == "<meridian.3.41@clinic.example.org>"
    assert receipt.provider_id == "<meridian.3.41@clinic.example.org>"


def test_one_click_unsubscribe_headers_follow_rfc_8058(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound())

    [received] = handler.messages
    # Only the https URL: no mailto, since nothing processes mail sent to one.
    assert received["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_raw_smtp_bytes_carry_the_unsubscribe_url_unencoded_for_a_compat32_parser(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound())

    [raw] = handler.raw
    head = header_block(raw)
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in head
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head
    assert b"mailto:" not in head
    parsed = assert_headers_readable_by_compat32(raw, UNSUBSCRIBE)
    assert parsed["Subject"] == "Flu season is coming"


def test_a_long_unsubscribe_url_stays_on_one_line_and_intact(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound(unsubscribe_url=LONG_UNSUBSCRIBE))

    [raw] = handler.raw
    assert f"\r\nList-Unsubscribe: <{LONG_UNSUBSCRIBE}>\r\n".encode() in header_block(raw)
    assert_headers_readable_by_compat32(raw, LONG_UNSUBSCRIBE)


def test_a_non_ascii_subject_and_display_name_are_still_rfc_2047_encoded(
    make_transport: Callable[..., SmtpEmailTransport],
    smtp_server: LoopbackController,
    handler: RecordingHandler,
) -> None:
    transport = make_transport(smtp_server.port, email_from=NON_ASCII_FROM)

    transport.send(outbound(subject=NON_ASCII_SUBJECT, unsubscribe_url=LONG_UNSUBSCRIBE))

    [raw] = handler.raw
    parsed = assert_headers_readable_by_compat32(
        raw, LONG_UNSUBSCRIBE, subject=NON_ASCII_SUBJECT, sender=NON_ASCII_FROM
    )
    assert "=?utf-8?" in parsed["Subject"] and "=?utf-8?" in parsed["From"]
    assert handler.envelopes[0][0].endswith("@clinic.example.org")


def test_a_dkim_signature_over_the_list_headers_verifies_after_a_compat32_relay(
    make_transport: Callable[..., SmtpEmailTransport],
    smtp_server: LoopbackController,
    handler: RecordingHandler,
    tmp_path: Path,
) -> None:
    transport = make_transport(smtp_server.port, email_from=NON_ASCII_FROM)

    transport.send(outbound(subject=NON_ASCII_SUBJECT, unsubscribe_url=LONG_UNSUBSCRIBE))

    dkim_signs_and_survives_a_compat32_relay(handler.raw[0], tmp_path)


def test_an_unsubscribe_url_with_a_line_break_is_refused_before_anything_is_sent(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    with pytest.raises(PermanentError):
        transport.send(outbound(unsubscribe_url=UNSUBSCRIBE + "\r\nBcc: someone@example.com"))

    assert handler.messages == []


def test_a_message_without_an_unsubscribe_url_has_no_list_unsubscribe_headers(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound(unsubscribe_url=None, html=None))

    [received] = handler.messages
    assert "List-Unsubscribe" not in received
    assert "List-Unsubscribe-Post" not in received
    assert received.get_content_type() == "text/plain"


def test_the_messages_own_headers_are_added(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound(headers={"X-Meridian-Campaign": "flu-2025"}))

    assert handler.messages[0]["X-Meridian-Campaign"] == "flu-2025"


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    with pytest.raises(PermanentError):
        transport.send(outbound(headers={"X-Note": "a\r\nBcc: someone@example.com"}))

    assert handler.messages == []


def test_one_connection_carries_every_send_of_a_batch(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    for delivery_id in (1, 2, 3):
        transport.send(outbound(delivery_id=delivery_id))

    assert len(handler.messages) == 3
    assert len(handler.connections) == 1


def test_after_close_the_next_send_opens_a_new_connection(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    transport.send(outbound(delivery_id=1))
    transport.close()
    transport.send(outbound(delivery_id=2))

    assert len(handler.messages) == 2
    assert len(handler.connections) == 2


@pytest.mark.parametrize(
    ("command", "reply", "error", "code"),
    [
        ("MAIL", "421 4.3.2 Service shutting down", TransientError, "421"),
        ("RCPT", "450 4.2.1 Mailbox busy", TransientError, "450"),
        ("DATA", "451 4.3.0 Try again later", TransientError, "451"),
        ("MAIL", "553 5.1.8 Sender address rejected", PermanentError, "553"),
        ("RCPT", "550 5.1.1 No such user", PermanentError, "550"),
        ("DATA", "554 5.7.1 Message rejected as spam", PermanentError, "554"),
    ],
)
def test_a_4xx_reply_is_transient_and_a_5xx_reply_is_permanent(
    transport: SmtpEmailTransport,
    handler: RecordingHandler,
    command: str,
    reply: str,
    error: type[Exception],
    code: str,
) -> None:
    handler.replies[command] = reply

    with pytest.raises(error) as caught:
        transport.send(outbound())

    assert type(caught.value) is error
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert handler.messages == []


def test_a_refusal_names_no_address(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    handler.replies["RCPT"] = f"550 5.1.1 <{PATIENT}>: Recipient address rejected"

    with pytest.raises(PermanentError) as caught:
        transport.send(outbound())

    assert PATIENT not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_the_connection_is_replaced_after_an_error(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    handler.replies["RCPT"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(TransientError):
        transport.send(outbound(delivery_id=1))

    transport.send(outbound(delivery_id=2))

    assert len(handler.messages) == 1
    assert len(handler.connections) == 2


@pytest.mark.parametrize("command", ["MAIL", "RCPT"])
def test_a_connection_dropped_before_data_is_transient_and_the_next_send_reconnects(
    smtp_server: LoopbackController,
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
    command: str,
) -> None:
    transport = make_transport(smtp_server.port)
    handler.hang_up_at = command

    with pytest.raises(TransientError) as caught:
        transport.send(outbound(delivery_id=1))
    transport.send(outbound(delivery_id=2))

    assert caught.value.reason == "connection dropped before data"
    assert [m["Message-ID"] for m in handler.messages] == ["<meridian.3.2@clinic.example.org>"]
    assert len(handler.connections) == 2


def test_a_connection_dropped_after_the_message_was_sent_is_outcome_unknown(
    transport: SmtpEmailTransport, handler: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    handler.hang_up_at = "DATA"  # the server has read the whole message, then hangs up
    caplog.set_level(logging.WARNING, logger="campaigns")

    with pytest.raises(OutcomeUnknown) as caught:
        transport.send(outbound(delivery_id=1))
    transport.send(outbound(delivery_id=2))

    assert caught.value.reason == "connection dropped after data"
    assert len(handler.connections) == 2
    assert "delivery 1:" in caplog.text
    assert PATIENT not in caplog.text


def test_no_reply_to_the_message_within_the_timeout_is_outcome_unknown(
    smtp_server: LoopbackController,
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
) -> None:
    transport = make_transport(smtp_server.port, smtp_timeout_s=0.2)
    handler.data_delay_s = 1.0

    with pytest.raises(OutcomeUnknown) as caught:
        transport.send(outbound())

    assert caught.value.reason == "timeout after data"


def test_a_connection_the_server_closed_while_idle_is_reopened_without_failing_the_send(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    handler.close_after_data = True
    transport.send(outbound(delivery_id=1))

    transport.send(outbound(delivery_id=2))

    assert len(handler.messages) == 2
    assert len(handler.connections) == 2


def test_a_refused_connection_is_transient(
    make_transport: Callable[..., SmtpEmailTransport],
) -> None:
    transport = make_transport(free_port())

    with pytest.raises(TransientError) as caught:
        transport.send(outbound())

    assert caught.value.reason == "connection refused"


def test_find_sent_returns_none_because_smtp_has_no_lookup(
    transport: SmtpEmailTransport, handler: RecordingHandler
) -> None:
    message = outbound()
    transport.send(message)

    assert transport.find_sent(message, since=datetime(2000, 1, 1, tzinfo=UTC)) is None


def _check_credentials(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"clinic", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 or 535


def test_auth_uses_the_configured_credentials(
    start_smtp: Callable[..., LoopbackController],
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
) -> None:
    server = start_smtp(authenticator=_check_credentials, auth_require_tls=False)
    transport = make_transport(server.port, smtp_username="clinic", smtp_password="s3cret")

    transport.send(outbound())

    assert len(handler.messages) == 1


def test_a_wrong_password_is_a_permanent_error_with_the_servers_code(
    start_smtp: Callable[..., LoopbackController],
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
) -> None:
    server = start_smtp(authenticator=_check_credentials, auth_require_tls=False)
    transport = make_transport(server.port, smtp_username="clinic", smtp_password="wrong")

    with pytest.raises(PermanentError) as caught:
        transport.send(outbound())

    assert caught.value.code == "535"
    assert handler.messages == []


def test_starttls_against_a_server_without_it_is_refused_rather_than_sent_in_clear(
    smtp_server: LoopbackController,
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
) -> None:
    transport = make_transport(smtp_server.port, smtp_starttls=True)

    with pytest.raises(PermanentError):
        transport.send(outbound())

    assert handler.messages == []


@pytest.fixture
def tls_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 that the client is made to trust."""
    openssl = require_binary("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    # ssl.create_default_context() reads the trust store named by SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_starttls_upgrades_the_connection_before_the_message_is_sent(
    start_smtp: Callable[..., LoopbackController],
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
    tls_certificate: ssl.SSLContext,
) -> None:
    server = start_smtp(tls_context=tls_certificate, require_starttls=True)
    transport = make_transport(server.port, smtp_starttls=True)

    transport.send(outbound())

    assert len(handler.messages) == 1


def test_implicit_tls_connects_with_tls_from_the_first_byte(
    start_smtp: Callable[..., LoopbackController],
    make_transport: Callable[..., SmtpEmailTransport],
    handler: RecordingHandler,
    tls_certificate: ssl.SSLContext,
) -> None:
    server = start_smtp(ssl_context=tls_certificate)
    transport = make_transport(server.port, smtp_ssl=True)

    transport.send(outbound())

    assert len(handler.messages) == 1
