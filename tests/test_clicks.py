"""First-party short links (campaigns.content.links, the /l/<token> redirect) and the
clicks they count, on SQLite and PostgreSQL: links rewritten in what the real SMTP
server and the Twilio-compatible server receive, one click per delivery and link,
no redirect for a token we did not sign, SMS segments at the short length."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from campaigns.content.definitions import CampaignDefinition, load_definition
from campaigns.content.links import (
    TOKEN_CHARS,
    make_link_token,
    read_link_token,
    short_length,
)
from campaigns.content.message import render_message
from campaigns.content.sms import count_segments
from campaigns.domain.transport import OutboundMessage
from campaigns.services import Services
from campaigns.transports.smtp_email import SmtpEmailTransport
from campaigns.transports.twilio_sms import TwilioSmsTransport
from campaigns.web.app import create_app
from tests.support.factories import (
    EXAMPLE_CAMPAIGN,
    add_campaign,
    add_deliveries,
    add_patient,
    add_run,
    deliveries_by_id,
)
from tests.support.twilio_server import TwilioServer
from tests.transports.test_smtp_email import LoopbackController, RecordingHandler

PUBLIC = "https://clinic.example.org"
BOOK = "https://booking.example.net/book?clinic=7&src=flu"
SHORT = re.compile(re.escape(PUBLIC) + r"/l/([0-9a-z]+-[0-9a-z]+\.[A-Za-z0-9_-]+)")


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"public_url": PUBLIC}


@pytest.fixture
def client(svc: Services) -> FlaskClient:
    app = create_app(svc)
    app.config["TESTING"] = True
    return app.test_client()


def _with_links() -> CampaignDefinition:
    definition = load_definition(EXAMPLE_CAMPAIGN)
    block = {
        "sms": "{{ clinic.name }}: book your visit at " + BOOK + ". Reply STOP to opt out.",
        "email": {
            "subject": "Time for a visit",
            "markdown": f"Hello. [Book a visit]({BOOK}) or read <https://example.org/why>.\n\n"
            "[Unsubscribe]({{ unsubscribe_url }})",
        },
    }
    return definition.model_copy(update={"copy_block": block})


@pytest.fixture
def delivery(svc: Services) -> tuple[int, int]:
    """(patient id, a delivery to them)."""
    pid = add_patient(svc, "L1", email="l1@example.org", consent={"sms": True, "email": True})
    run_id = add_run(svc, add_campaign(svc))
    (did,) = add_deliveries(svc, run_id, [pid])
    return pid, did


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, RecordingHandler]]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    yield controller, handler
    controller.stop()


def test_a_token_names_delivery_and_link_and_refuses_any_change() -> None:
    token = make_link_token("s3cret", 78_000_000_000, 46_000)
    assert len(token) <= TOKEN_CHARS
    claim = read_link_token("s3cret", token)
    assert claim is not None and (claim.delivery_id, claim.link_id) == (78_000_000_000, 46_000)
    assert read_link_token("another secret", token) is None
    assert read_link_token("s3cret", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert read_link_token("s3cret", "1-1." + token.partition(".")[2]) is None
    assert read_link_token("s3cret", "nonsense") is None


def test_links_reach_smtp_and_twilio_rewritten_and_the_unsubscribe_link_kept(
    svc: Services,
    delivery: tuple[int, int],
    smtp: tuple[LoopbackController, RecordingHandler],
    twilio: TwilioServer,
) -> None:
    pid, did = delivery
    recipient = svc.patients.recipients([pid])[pid]
    definition = _with_links()
    mail = render_message(svc, definition, recipient, "email", delivery_id=did)
    text = render_message(svc, definition, recipient, "sms", delivery_id=did)
    controller, handler = smtp
    mailer = SmtpEmailTransport(
        svc.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_starttls": False}
        )
    )
    mailer.send(
        OutboundMessage(
            did,
            1,
            "email",
            "l1@example.org",
            mail.body,
            mail.subject,
            mail.html,
            mail.unsubscribe_url,
        )
    )
    mailer.close()
    texter = TwilioSmsTransport(
        svc.settings.model_copy(
            update={
                "twilio_account_sid": twilio.account_sid,
                "twilio_auth_token": SecretStr(twilio.auth_token),
                "twilio_from": "+16175550199",
                "twilio_api_url": twilio.url,
            }
        )
    )
    texter.send(OutboundMessage(did, 1, "sms", recipient.phone or "", text.body))
    texter.close()

    # The bytes the SMTP server read, through the legacy compat32 parser (not the
    # policy that wrote them).
    received = email.message_from_bytes(handler.raw[0], policy=email.policy.compat32)
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in received.walk()
        if not p.is_multipart()
    }
    for part in ("text/plain", "text/html"):
        assert BOOK not in parts[part] and "example.org/why" not in parts[part]
        assert "booking.example.net" not in parts[part]
        assert "/unsubscribe/" in parts[part]  # not rewritten
        tokens = SHORT.findall(parts[part])
        assert len(set(tokens)) == 2, part
        assert {
            read_link_token(svc.settings.secret_key.get_secret_value(), t).delivery_id  # type: ignore[union-attr]
            for t in tokens
        } == {did}
    sms_body = twilio.accepted()[0]["body"]
    assert BOOK not in sms_body
    (sms_token,) = SHORT.findall(sms_body)
    assert f"{PUBLIC}/l/{sms_token}. Reply STOP" in sms_body  # the sentence's full stop kept
    assert len(f"{PUBLIC}/l/{sms_token}") <= short_length(PUBLIC)


def test_a_click_redirects_to_the_link_and_counts_once(
    svc: Services, client: FlaskClient, delivery: tuple[int, int]
) -> None:
    pid, did = delivery
    recipient = svc.patients.recipients([pid])[pid]
    body = render_message(svc, _with_links(), recipient, "sms", delivery_id=did).body
    (token,) = SHORT.findall(body)
    for _ in range(2):
        reply = client.get(f"/l/{token}")
        assert reply.status_code == 302
        assert reply.headers["Location"] == BOOK
    run_id = int(deliveries_by_id(svc, [did])[did]["run_id"])
    assert svc.engagement.engagement([run_id])[run_id] == {"clicked": 1, "clicks": 1, "booked": 0}


@pytest.mark.parametrize(
    "token",
    [
        "1-1.AAAAAAAAAAAAAAAA",  # not our signature
        "nonsense",
        "x" * 200,
    ],
)
def test_a_token_we_did_not_sign_gets_a_404_page_and_no_redirect(
    svc: Services, client: FlaskClient, delivery: tuple[int, int], token: str
) -> None:
    reply = client.get(f"/l/{token}")
    assert reply.status_code == 404
    assert "Location" not in reply.headers
    assert "This link is not valid" in reply.get_data(as_text=True)


def test_a_genuine_token_naming_no_stored_link_is_a_404(
    svc: Services, client: FlaskClient, delivery: tuple[int, int]
) -> None:
    _, did = delivery
    token = make_link_token(svc.settings.secret_key.get_secret_value(), did, 999)
    reply = client.get(f"/l/{token}")
    assert reply.status_code == 404 and "Location" not in reply.headers


def test_sms_segments_count_each_link_at_its_short_length() -> None:
    long_link = "https://booking.example.net/" + "a" * 150
    text = f"Book at {long_link} now"
    assert count_segments(text).segments == 2
    shortened = count_segments(text, PUBLIC)
    assert shortened.segments == 1
    assert shortened.characters == len("Book at  now") + short_length(PUBLIC)
    own = f"Stop: {PUBLIC}/unsubscribe/" + "z" * 150
    assert count_segments(own, PUBLIC).characters == len(own)  # our own links are not rewritten
