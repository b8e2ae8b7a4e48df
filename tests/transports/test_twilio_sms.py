"""TwilioSmsTransport: the real twilio client, over HTTP, against TwilioServer."""

from __future__ import annotations

import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from twilio.request_validator import RequestValidator

from campaigns.domain.transport import OutboundMessage
from campaigns.errors import ConfigError, OutcomeUnknown, PermanentError, SendError, TransientError
from campaigns.settings import Settings
from campaigns.transports.twilio_sms import MeridianHttpClient, TwilioSmsTransport
from tests.support.services import free_port
from tests.support.twilio_server import TwilioServer

PATIENT = "+15417543010"
CLINIC = "+15005550006"
BODY = "Maple Clinic: flu shots are in. Book at maple.example/flu. Reply STOP to opt out."


def make_settings(server: TwilioServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": server.account_sid,
        "twilio_auth_token": server.auth_token,
        "twilio_from": CLINIC,
        "twilio_api_url": server.url,
        "twilio_timeout_s": 5.0,
        "public_url": "https://meridian.example.org",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_transport() -> Iterator[Callable[..., TwilioSmsTransport]]:
    made: list[TwilioSmsTransport] = []

    def make(server: TwilioServer, **overrides: Any) -> TwilioSmsTransport:
        transport = TwilioSmsTransport(make_settings(server, **overrides))
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def transport(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> TwilioSmsTransport:
    return make_transport(twilio)


def sms(body: str = BODY, to: str = PATIENT, delivery_id: int = 11) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, run_id=2, channel="sms", to=to, body=body)


def assert_no_phi(error: SendError) -> None:
    shown = "".join(traceback.format_exception(error)) + repr(error) + str(error.code)
    assert PATIENT not in shown
    assert BODY not in shown
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_a_send_is_accepted_with_the_status_callback_url(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    receipt = transport.send(sms())

    [accepted] = twilio.accepted()
    assert receipt.provider_id == accepted["sid"]
    assert receipt.provider_id.startswith("SM")
    assert receipt.status == "queued"
    assert accepted["to"] == PATIENT
    assert accepted["from"] == CLINIC
    assert accepted["body"] == BODY
    assert accepted["status_callback"] == "https://meridian.example.org/twilio/status"


def test_without_a_from_number_the_messaging_service_sends(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> None:
    service = "MG" + "1" * 32
    transport = make_transport(twilio, twilio_from=None, twilio_messaging_service_sid=service)

    transport.send(sms())

    [accepted] = twilio.accepted()
    assert accepted["messaging_service_sid"] == service
    assert accepted["from"] is None


def test_a_transport_without_any_sender_is_refused_at_construction(twilio: TwilioServer) -> None:
    with pytest.raises(ConfigError, match="MERIDIAN_TWILIO_FROM"):
        TwilioSmsTransport(make_settings(twilio, twilio_from=None))


def test_a_wrong_auth_token_is_a_permanent_error_with_code_20003(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> None:
    transport = make_transport(twilio, twilio_auth_token="not-the-token")

    with pytest.raises(PermanentError) as caught:
        transport.send(sms())

    assert caught.value.code == "20003"
    assert twilio.accepted() == []


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("429", TransientError, "20429"),
        ("500", TransientError, "20500"),
        ("21211", PermanentError, "21211"),
        ("21614", PermanentError, "21614"),
        ("21610", PermanentError, "21610"),
    ],
)
def test_each_twilio_error_reply_maps_to_its_error_class(
    transport: TwilioSmsTransport,
    twilio: TwilioServer,
    fault: str,
    error: type[SendError],
    code: str,
) -> None:
    twilio.inject(fault)

    with pytest.raises(SendError) as caught:
        transport.send(sms())

    assert type(caught.value) is error
    assert caught.value.code == code
    assert twilio.accepted() == []
    assert_no_phi(caught.value)


def test_only_an_unsubscribed_recipient_counts_as_opted_out(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    twilio.inject("21610")
    twilio.inject("21211")

    with pytest.raises(PermanentError) as unsubscribed:
        transport.send(sms())
    with pytest.raises(PermanentError) as invalid:
        transport.send(sms())

    assert unsubscribed.value.opted_out is True
    assert invalid.value.opted_out is False
    assert invalid.value.address_refused is True  # the number is suppressed at send time


def test_a_reply_lost_after_acceptance_is_outcome_unknown_though_twilio_has_the_message(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    twilio.inject("lost")

    with pytest.raises(OutcomeUnknown) as caught:
        transport.send(sms())

    assert [m["body"] for m in twilio.accepted()] == [BODY]
    assert twilio.create_requests == 1  # and the transport did not try again
    assert_no_phi(caught.value)


def test_a_reply_slower_than_the_timeout_is_outcome_unknown(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> None:
    transport = make_transport(twilio, twilio_timeout_s=0.2)
    twilio.slow_s = 2.0
    twilio.inject("slow")

    with pytest.raises(OutcomeUnknown) as caught:
        transport.send(sms())

    assert caught.value.reason == "read timeout"
    assert len(twilio.accepted()) == 1


def test_a_refused_connection_is_transient(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> None:
    transport = make_transport(twilio, twilio_api_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(TransientError) as caught:
        transport.send(sms())

    assert caught.value.reason == "connection refused"
    assert_no_phi(caught.value)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection's SYN goes unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_a_connect_timeout_is_transient_because_nothing_was_sent(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport], unanswered_port: int
) -> None:
    transport = make_transport(
        twilio, twilio_api_url=f"http://127.0.0.1:{unanswered_port}", twilio_timeout_s=0.2
    )

    with pytest.raises(TransientError) as caught:
        transport.send(sms())

    assert caught.value.reason == "connect timeout"


def test_find_sent_finds_a_message_whose_reply_was_lost(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    since = datetime.now(UTC)
    twilio.inject("lost")
    with pytest.raises(OutcomeUnknown):
        transport.send(sms())

    seen = transport.find_sent(sms(), since)

    assert seen is not None
    assert seen.provider_id == twilio.accepted()[0]["sid"]
    assert (seen.to, seen.body) == (PATIENT, BODY)
    assert abs(seen.created_at - since) < timedelta(seconds=5)


def test_find_sent_returns_none_for_a_message_never_sent(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    transport.send(sms(body="Another message entirely"))
    transport.send(sms(to="+15417543011"))

    assert transport.find_sent(sms(), datetime.now(UTC) - timedelta(minutes=1)) is None


def test_find_sent_ignores_the_same_body_sent_before_since(
    transport: TwilioSmsTransport, twilio: TwilioServer
) -> None:
    last_year = datetime.now(UTC) - timedelta(days=365)
    twilio.clock = lambda: last_year
    transport.send(sms())

    assert transport.find_sent(sms(), datetime.now(UTC) - timedelta(minutes=5)) is None
    assert transport.find_sent(sms(), last_year - timedelta(minutes=5)) is not None


def test_find_sent_is_transient_when_twilio_cannot_be_asked(
    twilio: TwilioServer, make_transport: Callable[..., TwilioSmsTransport]
) -> None:
    transport = make_transport(twilio, twilio_api_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(TransientError) as caught:
        transport.find_sent(sms(), datetime.now(UTC))

    assert_no_phi(caught.value)


def test_no_phone_number_or_body_reaches_the_logs(
    transport: TwilioSmsTransport, twilio: TwilioServer, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("campaigns", "twilio"):
        caplog.set_level(logging.DEBUG, logger=name)
    twilio.inject("lost")

    with pytest.raises(OutcomeUnknown):
        transport.send(sms())
    transport.find_sent(sms(), datetime.now(UTC) - timedelta(minutes=1))

    assert "delivery 11" in caplog.text
    assert PATIENT.removeprefix("+1") not in caplog.text  # nor URL-encoded (%2B1…)
    assert BODY not in caplog.text


def test_the_api_url_replaces_only_the_origin_and_the_default_changes_nothing() -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1&Page=1"

    local = MeridianHttpClient("http://127.0.0.1:8099/twilio/", timeout=1.0)
    real = MeridianHttpClient("https://api.twilio.com", timeout=1.0)

    assert local.redirect(url) == (
        "http://127.0.0.1:8099/twilio/2010-04-01/Accounts/AC1/Messages.json?To=%2B1&Page=1"
    )
    assert real.redirect(url) == url


class _CallbackReceiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], str]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.received.append((self.path, form, self.headers["X-Twilio-Signature"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback_receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], str]]]]:
    received: list[tuple[str, dict[str, str], str]] = []
    handler = type("Receiver", (_CallbackReceiver,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_a_status_callback_is_signed_so_that_request_validator_accepts_it(
    twilio: TwilioServer,
    make_transport: Callable[..., TwilioSmsTransport],
    callback_receiver: tuple[str, list[tuple[str, dict[str, str], str]]],
) -> None:
    public_url, received = callback_receiver
    transport = make_transport(twilio, public_url=public_url)
    receipt = transport.send(sms())

    assert twilio.deliver_callbacks("delivered") == 1

    [(path, form, signature)] = received
    validator = RequestValidator(twilio.auth_token)
    assert path == "/twilio/status"
    assert validator.validate(public_url + path, form, signature)
    assert not RequestValidator("another-token").validate(public_url + path, form, signature)
    assert form["MessageSid"] == receipt.provider_id
    assert form["MessageStatus"] == "delivered"
    assert form["To"] == PATIENT
    assert form["AccountSid"] == twilio.account_sid
