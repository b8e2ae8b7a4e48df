"""The campaign form in headless Chromium: a marketer creates a yearly seasonal
campaign without YAML, picks tags the ledger's patients have, watches the live
count, reads the schedule in plain English, makes a mistake, is told in words next
to the field, loses nothing typed, fixes it and saves. Screenshots 30-3x."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from campaigns.clock.schedule_words import upcoming
from campaigns.content.definitions import parse_definition
from campaigns.sending.fanout import preview_audience
from campaigns.services import Services
from tests.support.browser import shot, sign_in
from tests.support.factories import add_example_patients, add_staff

NAME = "flu-season-2027"
RULE = "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=15"


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    """A database the server's threads share with the test."""
    return {"database_url": database_url}


def _expected_audience(svc: Services, tags_any: list[str]) -> tuple[int, int]:
    """(selected, reached) as the ledger has them for the form's audience."""
    definition = parse_definition(
        {
            "name": "expected",
            "channels": ["sms", "email"],
            "templates": "cold-and-flu-season",
            "audience": {"tags_any": tags_any, "tags_none": ["do-not-market"]},
            "schedule": {"rrule": RULE, "send_time": "10:00"},
        },
        "test",
    )
    found = preview_audience(svc, definition)
    return found.selected, found.reached


def test_a_marketer_creates_a_yearly_seasonal_campaign_from_the_form(
    browser: Browser, base_url: str, svc: Services
) -> None:
    add_staff(svc, mara="marketer")
    add_example_patients(svc)
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns")
    page.click("a:has-text('New campaign')")
    page.wait_for_url(f"{base_url}/campaigns/new")

    # The tag pickers offer the tags the patients have, and nothing else.
    offered = page.locator("[aria-labelledby=tags-any-h] input").evaluate_all(
        "inputs => inputs.map(i => i.value)"
    )
    assert offered == svc.patients.tags_in_use()
    assert "herbal" in offered and "do-not-market" in offered

    page.fill("#name", NAME)
    page.fill("#description", "Invite herbal patients to a seasonal visit")
    page.uncheck("[aria-labelledby=tags-any-h] input[value=active]")
    page.check("[aria-labelledby=tags-any-h] input[value=herbal]")
    selected, reached = _expected_audience(svc, ["herbal"])
    assert 0 < reached < selected < 1000
    total = page.locator("#audience-total")
    expect(total).to_have_text(
        f"{reached} of {selected} selected patients would get a message today"
    )
    expect(page.locator("#excluded")).to_contain_text("Left out, and why")
    expect(page.locator("#sample-in li")).to_have_count(5)

    page.check("input[name=schedule_kind][value=yearly]")
    page.select_option("#month", "10")
    page.fill("#day", "15")
    page.fill("#send_time", "10:00")
    words = page.locator("#schedule-words")
    expect(words).to_contain_text("Every year on 15 October at 10:00 in each patient's time zone")
    schedule = parse_definition(
        {
            "name": "x",
            "channels": ["sms"],
            "templates": "t",
            "schedule": {"rrule": RULE, "send_time": "10:00"},
        },
        "test",
    ).schedule.to_schedule(svc.settings.clinic_timezone)
    expect(page.locator("#next-occurrences li")).to_have_text(upcoming(schedule, svc.now(), 3))
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "30-studio-form-live-count")

    # A bad value: told live, next to the field, in words.
    page.fill("#max_attempts", "lots")
    error = page.locator("#max_attempts-error")
    expect(error).to_have_text("Max attempts must be a whole number between 1 and 20")
    page.click("button:has-text('Save campaign')")

    # Refused on the server too: the page comes back with the error by its field and
    # everything else as typed.
    expect(page.locator("#form-problems")).to_contain_text("fix the 1 field marked below")
    expect(page.locator("#form-problems li")).to_have_text(
        ["Max attempts must be a whole number between 1 and 20"]
    )
    expect(error).to_have_text("Max attempts must be a whole number between 1 and 20")
    expect(page.locator("#max_attempts")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#max_attempts")).to_have_value("lots")
    expect(page.locator("#name")).to_have_value(NAME)
    expect(page.locator("#description")).to_have_value("Invite herbal patients to a seasonal visit")
    expect(page.locator("[aria-labelledby=tags-any-h] input[value=herbal]")).to_be_checked()
    expect(page.locator("[aria-labelledby=tags-any-h] input[value=active]")).not_to_be_checked()
    expect(page.locator("#month")).to_have_value("10")
    expect(page.locator("#day")).to_have_value("15")
    assert svc.campaigns.get(NAME) is None
    page.locator("#max_attempts").scroll_into_view_if_needed()
    shot(page, "31-studio-form-human-error")

    page.fill("#max_attempts", "3")
    expect(error).to_be_hidden()
    page.click("button:has-text('Save campaign')")
    page.wait_for_url(f"{base_url}/campaigns/{NAME}")
    expect(page.locator("h1")).to_contain_text("draft")
    expect(page.locator("dl.record")).to_contain_text(
        "Every year on 15 October at 10:00 in each patient's time zone"
    )
    shot(page, "32-studio-campaign-saved")

    row = svc.campaigns.get(NAME)
    assert row is not None
    saved = row["definition"]
    assert saved["audience"]["tags_any"] == ["herbal"]
    assert saved["audience"]["tags_none"] == ["do-not-market"]
    assert saved["schedule"]["rrule"] == RULE and saved["schedule"]["send_time"] == "10:00:00"
    assert saved["limits"]["max_attempts"] == 3
    assert saved["channels"] == ["sms", "email"]

    # Editing opens the same form, filled in from the ledger.
    page.click("a.button:has-text('Edit')")
    expect(page.locator("#name")).to_have_value(NAME)
    expect(page.locator("#max_attempts")).to_have_value("3")
    expect(page.locator("input[name=schedule_kind][value=yearly]")).to_be_checked()
    expect(total).to_have_text(re.compile(rf"^{reached} of {selected} "))


def test_a_marketer_clones_archives_and_restores_a_campaign(
    browser: Browser, base_url: str, svc: Services
) -> None:
    from tests.support.factories import add_example_campaign

    add_staff(svc, mara="marketer")
    add_example_campaign(svc)
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/cold-and-flu-season")
    page.fill("#new_name", "flu-2028")
    page.click("button:has-text('Clone')")
    page.wait_for_url(f"{base_url}/campaigns/flu-2028/edit")
    expect(page.locator("#name")).to_have_value("flu-2028")

    page.goto(f"{base_url}/campaigns/flu-2028")
    page.click("button:has-text('Archive')")
    page.wait_for_url(f"{base_url}/campaigns")
    expect(page.locator("table")).not_to_contain_text("flu-2028")
    page.click("nav.tabs a:has-text('Archived')")
    expect(page.locator("table")).to_contain_text("flu-2028")
    shot(page, "33-studio-archived-filter")
    page.click("button:has-text('Restore flu-2028')")
    page.wait_for_url(f"{base_url}/campaigns/flu-2028")
    expect(page.locator("h1")).to_contain_text("draft")
