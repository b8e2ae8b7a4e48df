"""Review, approval, preview and test send in headless Chromium.

A marketer sets their own phone, finds a patient by name, previews every channel with
the patient's send instant, sends a test text (read back from the local
Twilio-compatible server), and submits; an admin in a second browser context
acknowledges the one finding at its sentence and approves; the marketer sees it
approved. Screenshots land in var/screenshots/ (50-* to 57-*).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from campaigns.content import catalogue
from campaigns.domain.models import ConsentFact, PatientRecord
from campaigns.people import staff as accounts
from campaigns.services import Services
from tests.conftest import make_settings
from tests.support.browser import shot, sign_in
from tests.support.factories import STAFF_PASSWORD
from tests.support.settings import ROOT
from tests.support.twilio_server import TwilioServer

SIGNED_UP = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
NAME = "cold-and-flu-season"
CLAIM = "Ward off the flu with a visit."


@pytest.fixture
def svc(
    tmp_path: Path, database_url: str, redis_url: str, twilio: TwilioServer
) -> Iterator[Services]:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    sms = templates / NAME / "sms.txt.j2"
    sms.write_text(sms.read_text().replace("season is here.", f"season is here. {CLAIM}"))
    services = Services(
        make_settings(
            tmp_path,
            database_url=database_url,
            redis_url=redis_url,
            templates_dir=templates,
            sms_transport="twilio",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+16175550142",
            twilio_api_url=twilio.url,
            twilio_timeout_s=5.0,
        )
    )
    services.db.upgrade()
    accounts.add_user(services, "mara", STAFF_PASSWORD, "marketer")
    accounts.add_user(services, "ada", STAFF_PASSWORD, "admin")
    facts = (
        ConsentFact("sms", True, SIGNED_UP, "intake-form", "I agree to texts"),
        ConsentFact("email", True, SIGNED_UP, "intake-form", "I agree to email"),
    )
    records = [
        PatientRecord(ext, first, last, email, phone, zone, state, ("active",),
                      None, None, "sms", facts)
        for ext, first, last, email, phone, zone, state in (
            ("P1", "Robin", "Okafor", "robin@example.org", "+16175550100", None, "MA"),
            ("P2", "Roberta", "Chen", "roberta@example.org", "+13125550101", "America/Chicago",
             "IL"),
            ("P3", "Sam", "Robles", None, "+19045550102", None, None),
        )
    ]  # fmt: skip
    services.patients.import_batches([records], dry_run=False, actor="test")
    catalogue.apply_campaign(services, ROOT / "examples/campaigns" / f"{NAME}.yaml", actor="mara")
    yield services
    services.close()


def test_a_marketer_previews_tests_and_submits_and_an_admin_approves_in_another_context(
    browser: Browser, base_url: str, svc: Services, twilio: TwilioServer
) -> None:
    mara = sign_in(browser, base_url, "mara")

    # Their own phone, on their profile: a bad one is named, and what was typed stays.
    mara.click("header a:has-text('mara')")
    mara.fill("#phone", "555-01")
    mara.fill("#email", "mara@clinic.example")
    mara.click("button:has-text('Save')")
    expect(mara.locator(".field-error")).to_contain_text("not a valid phone number")
    expect(mara.locator("#email")).to_have_value("mara@clinic.example")
    shot(mara, "50-profile-bad-phone")
    mara.fill("#phone", "(415) 555-0123")
    mara.click("button:has-text('Save')")
    expect(mara.locator(".flash.ok")).to_contain_text("Saved your phone and email")
    expect(mara.locator("#phone")).to_have_value("+14155550123")

    # A patient found by name; every channel previewed, with when it would go.
    mara.goto(f"{base_url}/campaigns/{NAME}")
    mara.click("a:has-text('Preview and test')")
    mara.fill("#q", "rob")
    mara.click("button:has-text('Find')")  # the server's answer, as without JavaScript
    expect(mara.locator(".server-picked li")).to_have_count(3)
    mara.fill("#q", "roberta c")  # as you type: the picker's JSON endpoint
    live = mara.locator("ul.picked.live")
    expect(live.locator("li")).to_have_count(1)
    expect(mara.locator(".server-picked")).to_be_hidden()
    shot(mara, "51-patient-picker")
    live.locator("button:has-text('Roberta Chen')").click()
    expect(mara.locator("article[aria-label='sms preview'] pre.sms")).to_contain_text("Hi Roberta")
    expect(mara.locator("article[aria-label='email preview']")).to_contain_text("Subject:")
    expect(mara.frame_locator("iframe.email").locator("body")).to_contain_text("Hi Roberta")
    expect(mara.locator("section[aria-label='sms send time']")).to_contain_text("Sends at")
    expect(mara.locator("section[aria-label='sms send time']")).to_contain_text("America/Chicago")
    shot(mara, "52-preview-for-a-patient-found-by-name")

    # A test text to their own phone, through the real transport.
    mara.click("button:has-text('Send a test text')")
    expect(mara.locator(".flash.ok")).to_contain_text("Test sms sent")
    (texted,) = twilio.accepted()
    assert texted["to"] == "+14155550123"
    assert texted["body"].startswith("TEST: ") and "Hi Roberta" in texted["body"]
    shot(mara, "53-test-text-sent")

    # The review page: the finding at its sentence; submit.
    mara.goto(f"{base_url}/campaigns/{NAME}/review")
    mark = mara.locator("figure.copy mark.sev-claim")
    expect(mark).to_have_count(1)
    expect(mark).to_have_text(CLAIM)
    mara.click("button:has-text('Submit for approval')")
    expect(mara.locator("#review-state")).to_contain_text("submitted for approval by mara")
    expect(mara.locator("button:has-text('Approve this version')")).to_have_count(0)
    shot(mara, "54-review-submitted")

    # The admin, in another browser context: acknowledges the finding, approves.
    ada = sign_in(browser, base_url, "ada")
    ada.goto(f"{base_url}/campaigns/{NAME}/review")
    expect(ada.locator("button:has-text('Approve this version')")).to_be_disabled()
    ada.fill("input[name='reason']", "short")
    ada.click("form.acknowledge button")
    expect(ada.locator(".problems")).to_contain_text("at least 10 characters")
    expect(ada.locator("input[name='reason']")).to_have_value("short")
    ada.fill("input[name='reason']", "A visit is the clinic's own service; reviewed with counsel")
    ada.click("form.acknowledge button")
    expect(ada.locator(".flash.ok")).to_contain_text("Finding acknowledged")
    expect(ada.locator("figure.copy mark.sev-acknowledged", has_text=CLAIM)).to_have_count(1)
    expect(ada.locator("figure.copy mark.sev-claim")).to_have_count(0)
    shot(ada, "55-finding-acknowledged-inline")
    ada.click("button:has-text('Approve this version')")
    expect(ada.locator("#review-state")).to_contain_text("approved by ada")
    shot(ada, "56-approved-by-admin")

    # The marketer sees it approved, and may schedule it now.
    mara.goto(f"{base_url}/campaigns/{NAME}")
    expect(mara.locator("#approval")).to_contain_text("Approved by ada")
    expect(mara.locator("button:has-text('Schedule it')")).to_be_visible()
    shot(mara, "57-marketer-sees-approved")
    assert len(twilio.accepted()) == 1  # the test, and nothing else
