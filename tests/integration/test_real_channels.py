"""A run through real channels: the twilio client against the local Twilio-compatible
server, and smtplib against a real aiosmtpd server, sent by a real Celery worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from campaigns.content.catalogue import save_definition
from campaigns.content.definitions import load_definition
from campaigns.domain.states import DeliveryState
from campaigns.sending import control, runs
from campaigns.services import Services
from tests.support.factories import EXAMPLE_CAMPAIGN, add_example_patients, patients_in_state
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import wait_until
from tests.support.workers import Workers
from tests.transports.test_smtp_email import LoopbackController, RecordingHandler


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, RecordingHandler]]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    yield controller, handler
    controller.stop()


def test_a_run_goes_out_through_twilio_and_smtp_with_retries_and_provider_opt_outs(
    svc: Services,
    env: dict[str, str],
    workers: Workers,
    twilio: TwilioServer,
    smtp: tuple[LoopbackController, RecordingHandler],
) -> None:
    controller, handler = smtp
    env.update(
        {
            "MERIDIAN_SMS_TRANSPORT": "twilio",
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "MERIDIAN_TWILIO_FROM": "+16175550199",
            "MERIDIAN_TWILIO_API_URL": twilio.url,
            "MERIDIAN_EMAIL_TRANSPORT": "smtp",
            "MERIDIAN_SMTP_HOST": "127.0.0.1",
            "MERIDIAN_SMTP_PORT": str(controller.port),
            "MERIDIAN_SMTP_STARTTLS": "false",
        }
    )
    campaign = EXAMPLE_CAMPAIGN
    add_example_patients(svc)
    definition = load_definition(campaign)
    fast = definition.model_copy(
        update={"limits": definition.limits.model_copy(update={"retry_base_s": 0.5})}
    )
    save_definition(svc, fast, actor="test", source=str(campaign), approve=True)
    twilio.inject("429", 2)
    twilio.inject("500", 1)
    twilio.inject("21610", 1)
    workers.start()
    run_id = control.run_now(svc, "cold-and-flu-season", actor="test")
    assert run_id is not None
    wait_until(
        lambda: runs.run_status(svc, run_id)["status"] == "finished",
        180,
        "the run to finish",
        workers.logs,
    )
    status = runs.run_status(svc, run_id)
    sms, email = status["by_channel"]["sms"], status["by_channel"]["email"]
    # Exactly one accepted message per SMS the ledger calls sent; the 429s and 500
    # were retried, the 21610 failed for good.
    assert len(twilio.accepted()) == sms["sent"]
    assert sms.get("failed") == 1
    assert all(m["status_callback"].endswith("/twilio/status") for m in twilio.accepted())
    assert len(handler.messages) == email["sent"]
    first = handler.messages[0]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in str(first["List-Unsubscribe"])
    assert status["by_state"].get("unknown", 0) == 0
    # The provider's opt-out is believed at once.
    (failed_patient,) = patients_in_state(svc, run_id, DeliveryState.FAILED)
    assert svc.consent.current(failed_patient)["sms"] is False
