"""The run page in headless Chromium shows what carriers reported in plain words: a
Twilio code next to its meaning, and a dead number's later skip in words. Screenshot
64-… lands in var/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from campaigns.domain.models import Outcome
from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.people.status_callbacks import handle_status
from campaigns.services import Services
from tests.support.browser import shot
from tests.support.factories import (
    add_campaign,
    add_deliveries,
    add_patients,
    add_run,
    claim,
    patient_record,
)
from tests.web.test_browser import sign_in, staff  # noqa: F401 - fixture


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}


def test_the_run_page_gives_each_carrier_code_in_plain_words(
    browser: Browser, base_url: str, svc: Services
) -> None:
    pids = add_patients(svc, [patient_record(f"D{i}", phone=f"+1617555010{i}") for i in range(4)])
    run_id = add_run(svc, add_campaign(svc, "carrier-codes"))
    ids = add_deliveries(svc, run_id, pids[:3])
    add_deliveries(
        svc, run_id, pids[3:], state=DeliveryState.SKIPPED, skip_reason=SkipReason.DEAD_NUMBER
    )
    now = svc.now()
    claim(svc, ids, now)
    svc.deliveries.record(
        [Outcome(d, DeliveryState.SENT, provider_id=f"SMcode{d}") for d in ids], now
    )
    handle_status(svc, f"SMcode{ids[0]}", "undelivered", "30005")
    handle_status(svc, f"SMcode{ids[1]}", "undelivered", "30003")
    handle_status(svc, f"SMcode{ids[2]}", "failed", "30007")

    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/runs/{run_id}")

    failures = page.locator("table.failures")
    dead = failures.locator("tr", has_text="30005")
    expect(dead.locator("td.meaning")).to_have_text(
        "unknown number: it does not exist or is no longer in service"
    )
    expect(failures.locator("tr", has_text="30003").locator("td.meaning")).to_contain_text(
        "unreachable"
    )
    expect(failures.locator("tr", has_text="30007").locator("td.meaning")).to_contain_text(
        "filtered the message as spam"
    )
    expect(page.locator("table.skips")).to_contain_text(
        "the carrier said the number is dead, invalid or cannot take texts"
    )
    failures.scroll_into_view_if_needed()
    shot(page, "64-run-carrier-codes-in-words")
    assert svc.suppressions.current("sms", "+16175550100") is not None  # 30005: suppressed
    assert svc.suppressions.current("sms", "+16175550101") is None  # 30003: not
