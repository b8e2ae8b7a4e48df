"""The inbox in headless Chromium: every patient reply is heard.

Signed webhooks go to a running console over HTTP; a marketer works the inbox in
Chromium; staff replies go out through the real twilio client to the local
Twilio-compatible server, which is where the test reads what the patient received.
Screenshots land in var/screenshots/ (20-* to 26-*).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect
from twilio.request_validator import RequestValidator

from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.people import consent
from campaigns.people import staff as accounts
from campaigns.services import Services
from tests.conftest import make_settings
from tests.support.browser import shot
from tests.support.factories import STAFF_PASSWORD
from tests.support.twilio_server import TwilioServer

SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
PUBLIC_URL = "https://clinic.example"
CLINIC_NUMBER = "+16175550142"
ROBIN, SAM, ALEX = "+16175550100", "+16175550101", "+16175550102"
STRANGER = "+16175550177"
HEADER = (
    "external_id,first_name,last_name,email,phone,timezone,state,tags,last_visit,"
    "next_appointment,sms_consent,sms_consent_at,sms_consent_source,email_consent,"
    "email_consent_at,email_consent_source,preferred_channel\n"
)


@pytest.fixture
def svc(tmp_path: Path, database_url: str, twilio: TwilioServer) -> Iterator[Services]:
    services = Services(
        make_settings(
            tmp_path,
            database_url=database_url,
            public_url=PUBLIC_URL,
            sms_transport="twilio",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from=CLINIC_NUMBER,
            twilio_api_url=twilio.url,
            twilio_timeout_s=5.0,
        )
    )
    services.db.upgrade()
    accounts.add_user(services, "mara", STAFF_PASSWORD, "marketer")
    facts = (ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),)
    records = [
        PatientRecord(ext, first, "Example", None, phone, "America/New_York", "MA",
                      ("active",), None, None, "sms", facts)
        for ext, first, phone in (("P1", "Robin", ROBIN), ("P2", "Sam", SAM), ("P3", "Alex", ALEX))
    ]  # fmt: skip
    services.patients.import_batches([records], dry_run=False, actor="test")
    yield services
    services.close()


def text_in(svc: Services, base_url: str, sender: str, body: str, sid: str) -> str:
    """POST a signed inbound text, as Twilio would; the TwiML reply's text."""
    token = svc.settings.twilio_auth_token
    assert token is not None
    params = {"MessageSid": sid, "From": sender, "To": CLINIC_NUMBER, "Body": body}
    signature = RequestValidator(token.get_secret_value()).compute_signature(
        PUBLIC_URL + "/twilio/inbound", params
    )
    reply = requests.post(
        f"{base_url}/twilio/inbound",
        data=params,
        headers={"X-Twilio-Signature": signature},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply.text


def sign_in(browser: Browser, base_url: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/login")
    page.fill("#username", "mara")
    page.fill("#password", STAFF_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base_url}/")
    return page


def patient_id(svc: Services, external_id: str) -> int:
    found = svc.patients.find(external_id)
    assert found is not None
    return found.patient_id


def test_replies_are_heard_answered_and_kept_from_the_inbox(
    browser: Browser, base_url: str, svc: Services, twilio: TwilioServer, tmp_path: Path
) -> None:
    unsigned = requests.post(
        f"{base_url}/twilio/inbound", data={"MessageSid": "SMx", "From": ROBIN, "Body": "STOP"}
    )
    assert unsigned.status_code == 403

    # "STOP please" revokes at once, before anyone looks.
    assert "unsubscribed" in text_in(svc, base_url, ROBIN, "STOP please", "SM1")
    assert svc.consent.current(patient_id(svc, "P1"))["sms"] is False
    # A booking request, and a symptom misread as nothing more.
    assert "<Message>" not in text_in(svc, base_url, SAM, "Can I book Tuesday at 3?", "SM2")
    text_in(svc, base_url, ALEX, "Stop, I think I have the flu. Can I come in?", "SM3")

    page = sign_in(browser, base_url)
    expect(page.locator("#nav-inbox .count")).to_have_text("3")
    page.click("#nav-inbox")
    threads = page.locator("#threads")
    expect(threads).to_contain_text("STOP please")
    expect(threads.locator("tr", has_text="Robin")).to_contain_text("revoked suppressed")
    expect(threads.locator("tr", has_text="Sam")).to_contain_text("booking")
    shot(page, "20-inbox-needs-review")
    page.click("a:has-text('Booking requests')")
    expect(page.locator("#threads tbody tr")).to_have_count(1)
    expect(page.locator("#threads")).to_contain_text("Can I book Tuesday at 3?")
    shot(page, "21-inbox-booking-requests")

    # Staff answer Sam; the reply reaches Sam's number at the provider.
    page.click("#threads a:has-text('Sam')")
    expect(page.locator("#thread")).to_contain_text("needs a person")
    page.fill("#reply-body", "Yes, Tuesday at 3 works. See you then!")
    page.click("button:has-text('Send reply')")
    expect(page.locator(".flash.ok")).to_contain_text("Reply sent")
    expect(page.locator("#thread li.out")).to_contain_text("reply by mara")
    shot(page, "22-thread-replied")
    accepted = [(m["to"], m["body"]) for m in twilio.accepted()]
    assert accepted == [(SAM, "Yes, Tuesday at 3 works. See you then!")]

    # Never to a suppressed number: Robin's thread offers no reply box.
    page.goto(f"{base_url}/inbox?view=all")
    page.click("#threads a:has-text('Robin')")
    expect(page.locator("#suppressed")).to_contain_text("suppression list")
    expect(page.locator("#reply-body")).to_have_count(0)
    shot(page, "23-thread-suppressed")

    # Alex's words revoked (the rule); staff restore with a reason.
    page.goto(f"{base_url}/patients/{patient_id(svc, 'P3')}")
    page.fill("#restore-reason", "called back: asked for a visit, not to stop texts")
    page.click("#restore button:has-text('Restore')")
    expect(page.locator(".flash.ok")).to_contain_text("SMS consent restored")
    alex = svc.patients.find("P3")
    assert alex is not None and consent.skip_reason(alex, "sms") is None
    assert svc.suppressions.suppressed("sms", [ALEX]) == set()
    expect(page.locator("#thread")).to_contain_text("I think I have the flu")
    shot(page, "24-patient-restored")

    # A STOP from a number nobody has yet, then an import of a patient with it.
    text_in(svc, base_url, STRANGER, "STOP", "SM4")
    csv = tmp_path / "new-patients.csv"
    csv.write_text(
        HEADER + "P9,Jo,Newman,,(617) 555-0177,,,active,,,yes,2024-03-01,intake-form,,,,\n"
    )
    page.goto(f"{base_url}/patients")
    page.set_input_files("#file", str(csv))
    page.click("button:has-text('Import')")
    expect(page.locator(".report")).to_contain_text("1 patient imported opted out")
    shot(page, "25-import-suppressed")
    newcomer = svc.patients.find("P9")
    assert newcomer is not None
    assert consent.skip_reason(newcomer, "sms") == "opted_out"
    page.goto(f"{base_url}/patients/{newcomer.patient_id}")
    expect(page.locator(".banner.suppressed")).to_contain_text("suppression list")
    expect(page.locator("#restore")).to_have_count(0)  # only the patient's START undoes it
    shot(page, "26-patient-suppressed")
    assert len(twilio.accepted()) == 1  # nothing else went out
