"""A permanent refusal at send time suppresses the address: SMTP 5xx (a 4xx retries),
and Twilio's 21211 (invalid number).

A real aiosmtpd server refuses one patient's address with 550 and answers 450 for
another's; a third is accepted. The run sends through the smtp transport in this
process (fan-out's lock in a private redis-server), and the next run skips the
refused address as bounced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from campaigns.content.catalogue import apply_campaign
from campaigns.domain.states import SkipReason
from campaigns.people import verp
from campaigns.sending.stubs import MemoryDispatcher, MemoryDueQueue
from campaigns.services import Services
from tests.conftest import make_settings
from tests.support.factories import delivery_rows
from tests.support.twilio_server import TwilioServer
from tests.support.workers import shift_into_window
from tests.test_bounce_mailbox import email_only_campaign, emailed
from tests.test_per_number import outcomes, patient, run_once, texts_only_campaign
from tests.transports.test_smtp_email import LoopbackController, RecordingHandler

REPLIES = {"gone@example.net": "550 5.1.1 No such user", "busy@example.net": "450 4.2.1 Busy"}


class RefusingHandler(RecordingHandler):
    """Refuses the addresses of REPLIES at RCPT with their reply."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in REPLIES:
            return REPLIES[address]
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, RefusingHandler]]:
    handler = RefusingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def svc(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    smtp: tuple[LoopbackController, RefusingHandler],
) -> Iterator[Services]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        clock_shift_s=shift_into_window(),
        sms_rate=0,
        email_rate=0,
        email_transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp[0].port,
        smtp_starttls=False,
        smtp_timeout_s=5.0,
    )
    services = Services(settings, MemoryDispatcher(), due=MemoryDueQueue())
    services.db.upgrade()
    services.redis.flushdb()
    yield services
    services.close()


def test_a_550_at_rcpt_suppresses_the_address_and_a_450_is_retried(
    svc: Services, smtp: tuple[LoopbackController, RefusingHandler], tmp_path: Path
) -> None:
    _, handler = smtp
    svc.patients.import_batches(
        [[emailed("GONE"), emailed("BUSY"), emailed("OK")]], dry_run=False, actor="test"
    )
    campaign_id = apply_campaign(
        svc, email_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    first = run_once(svc, campaign_id, 1)

    rows = {r["patient_id"]: r for r in delivery_rows(svc, first)}
    gone, busy, ok = (svc.patients.find(i).patient_id for i in ("GONE", "BUSY", "OK"))  # type: ignore[union-attr]
    assert (rows[gone]["state"], rows[gone]["error_code"]) == ("failed", "550")
    assert (rows[busy]["state"], rows[busy]["error_code"]) == ("pending", "450")
    assert rows[ok]["state"] == "sent"
    refused = svc.suppressions.current("email", "gone@example.net")
    assert refused is not None and refused.suppressed and refused.reason == "smtp-refused"
    assert svc.suppressions.current("email", "busy@example.net") is None
    (report,) = svc.delivery_reports.for_run(first)
    assert (report.kind, report.status, report.source) == ("refused", "550", "smtp")
    # The accepted message went out with its delivery's VERP envelope sender.
    ((mail_from, _),) = handler.envelopes
    secret = svc.settings.secret_key.get_secret_value()
    assert verp.read_return_path(secret, mail_from) == rows[ok]["id"]

    second = run_once(svc, campaign_id, 2)
    assert outcomes(svc, second)[0] == ("skipped", SkipReason.BOUNCED)


@pytest.fixture
def texting(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Services]:
    with TwilioServer() as twilio:
        twilio.inject("21211", to="+16175550102")
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            redis_url=redis_url,
            clock_shift_s=shift_into_window(),
            sms_rate=0,
            sms_transport="twilio",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+16175550199",
            twilio_api_url=twilio.url,
        )
        services = Services(settings, MemoryDispatcher(), due=MemoryDueQueue())
        services.db.upgrade()
        services.redis.flushdb()
        yield services
        services.close()


def test_twilio_refusing_an_invalid_number_at_send_suppresses_it(
    texting: Services, tmp_path: Path
) -> None:
    svc = texting
    records = [patient(f"T{i}", f"+1617555010{i}", state="MA") for i in range(3)]
    svc.patients.import_batches([records], dry_run=False, actor="test")
    campaign_id = apply_campaign(
        svc, texts_only_campaign(tmp_path), actor="test", approve=True
    ).campaign_id

    first = run_once(svc, campaign_id, 1)

    assert outcomes(svc, first) == [("sent", None), ("sent", None), ("failed", None)]
    row = svc.suppressions.current("sms", "+16175550102")
    assert row is not None and row.reason == "sms-error" and "21211" in (row.evidence or "")
    second = run_once(svc, campaign_id, 2)
    assert outcomes(svc, second)[2] == ("skipped", SkipReason.DEAD_NUMBER)
