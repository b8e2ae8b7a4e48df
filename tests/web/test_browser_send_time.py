"""In headless Chromium: the patient page's evidence and the preview's send time, as a
person sees them. Screenshots land in var/screenshots/ for review."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect
from playwright.sync_api import Error as PlaywrightError

from campaigns.services import Services
from tests.support.browser import shot
from tests.support.factories import EXAMPLE_CAMPAIGN as CAMPAIGN
from tests.support.waiting import wait_until
from tests.web.test_browser import (  # noqa: F401 - fixtures
    settings_overrides,
    sign_in,
    staff,
)
from tests.web.test_console_send_time import load


def test_staff_see_where_a_patient_might_be_and_when_the_preview_would_send(
    browser: Browser,
    base_url: str,
    svc: Services,
    tmp_path: Path,
) -> None:
    load(svc, tmp_path)
    found = svc.patients.find("CA212")
    assert found is not None
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/patients/{found.patient_id}")
    evidence = page.locator("main")
    expect(evidence).to_contain_text("Where this patient might be")
    expect(evidence).to_contain_text("disagree: lawful in both")
    expect(page.locator("table").first).to_contain_text("America/Los_Angeles")
    shot(page, "20-patient-whereabouts")

    marketer = sign_in(browser, base_url, "mara")
    marketer.goto(f"{base_url}/campaigns/new/yaml")
    marketer.fill("#definition", CAMPAIGN.read_text())
    marketer.fill("#patient", "CA212")
    preview = marketer.locator("#preview")
    expect(preview).to_contain_text("Sends at 2027-10-15 17:00:00 UTC")
    expect(preview).to_contain_text("Fri 2027-10-15 10:00 PDT")
    expect(preview).to_contain_text("Decided by")

    def scrolled() -> bool:
        # Each field typed asks for a preview; a later answer may replace the section
        # while it is being scrolled to (Playwright: "not attached to the DOM").
        try:
            preview.locator("section.send-time").first.scroll_into_view_if_needed(timeout=2000)
        except PlaywrightError:
            return False
        return True

    wait_until(scrolled, 15, "the preview's send time to stay in place")
    expect(preview).to_contain_text("Sends at 2027-10-15 17:00:00 UTC")
    shot(marketer, "21-preview-send-time")
