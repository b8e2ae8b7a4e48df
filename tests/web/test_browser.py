"""The console in headless Chromium (Debian's), driven by Playwright.

A marketer imports the sample patients, writes the cold-and-flu campaign and
previews it; schedules a campaign and runs it now, through a real redis-server and
Celery worker; a viewer sees no edit buttons and is refused on a POST. Chromium or
redis-server missing skips the tests that need it locally, and fails them under
CI=true. Screenshots of the main pages land in var/screenshots/ for review.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from campaigns.services import Services
from tests.support.browser import shot, sign_in
from tests.support.factories import (
    EXAMPLE_CAMPAIGN,
    EXAMPLE_NAME,
    EXAMPLE_PATIENTS,
    add_examples,
    add_staff,
)
from tests.support.settings import ROOT
from tests.support.workers import Workers, shift_into_window, worker_env

NAME = EXAMPLE_NAME
RUN_TIMEOUT_MS = 180_000


@pytest.fixture
def settings_overrides(database_url: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """The app's Services: a database the server's threads and a worker share, the
    clock in every patient's hours, and the session's Redis for a test that asks
    for ``redis_url``."""
    overrides: dict[str, object] = {
        "database_url": database_url,
        "clock_shift_s": int(shift_into_window()),
    }
    if "redis_url" in request.fixturenames:
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    return overrides


@pytest.fixture(autouse=True)
def staff(svc: Services) -> None:
    add_staff(svc, mara="marketer", vic="viewer", ada="admin")


@contextmanager
def celery_pointed_at(url: str) -> Iterator[None]:
    """Send this process's Celery tasks and RedBeat entries to ``url``.

    tasks.app builds its Celery app from the environment when first imported, which
    in a test run may be before this test chose its Redis.
    """
    from tasks.app import app as celery

    def reset(broker: str, redbeat: str) -> None:
        celery.conf.update(broker_url=broker, redbeat_redis_url=redbeat)
        celery._pool = None
        celery.amqp._producer_pool = None
        celery.redbeat_redis = None  # RedBeat's cached client

    before = (str(celery.conf.broker_url), str(celery.conf.redbeat_redis_url))
    reset(url, url)
    try:
        yield
    finally:
        reset(*before)


def test_a_marketer_imports_writes_and_previews_a_campaign(
    browser: Browser, base_url: str, svc: Services
) -> None:
    page = sign_in(browser, base_url, "mara")
    page.set_default_timeout(15_000)
    shot(page, "01-dashboard-empty")

    page.goto(f"{base_url}/patients")
    page.set_input_files("#file", str(ROOT / "examples/patients-with-errors.csv"))
    page.click("button:has-text('Import')")
    expect(page.locator(".problems")).to_contain_text("nothing was imported")
    expect(page.locator(".problems td").first).to_contain_text("row ")
    shot(page, "02-patients-import-refused")
    page.set_input_files("#file", str(EXAMPLE_PATIENTS))
    page.click("button:has-text('Import')")
    expect(page.locator(".report")).to_contain_text("Import of patients.csv")
    assert svc.patients.count() == 1000
    shot(page, "03-patients-imported")

    page.fill("#q", "Kowalski")
    page.click("button:has-text('Search')")
    page.click("#search-results a:has-text('P000002')")
    expect(page.locator("h2:has-text('Consent history') + table")).to_contain_text("granted")
    shot(page, "04-patient-consent-history")

    page.goto(f"{base_url}/campaigns/new/yaml")
    # without the file's acknowledgements: an admin adds those on the review page
    page.fill("#definition", EXAMPLE_CAMPAIGN.read_text().partition("compliance:")[0])
    page.fill("#patient", "P000002")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("SMS to P000002")
    expect(preview).to_contain_text("segment")
    expect(preview).to_contain_text("Compliance lint")
    expect(page.frame_locator("iframe.email").locator("body")).to_contain_text("Hi Wei")
    shot(page, "05-campaign-form-preview")
    page.click("button:has-text('Save campaign')")
    page.wait_for_url(f"{base_url}/campaigns/{NAME}")
    expect(page.locator("h1")).to_contain_text("draft")

    page.fill("#patient", "P000003")
    page.click("section:has(#preview-h) button:has-text('Preview')")
    expect(page.locator("#preview")).to_contain_text("Email to P000003")
    expect(page.frame_locator("iframe.email").locator("body")).to_contain_text("Hi Ingrid")
    shot(page, "06-campaign-draft")


def test_a_marketer_schedules_and_runs_a_campaign(
    browser: Browser, base_url: str, svc: Services, redis_url: str, tmp_path: Path
) -> None:
    add_examples(svc)
    page = sign_in(browser, base_url, "mara")
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/campaigns/{NAME}")
    expect(page.locator("h1")).to_contain_text("approved")  # a draft, approved

    env = worker_env(
        database_url=svc.settings.database_url,
        redis_url=redis_url,
        outbox_dir=svc.settings.outbox_dir,
    )
    env["MERIDIAN_CLOCK_SHIFT_S"] = str(int(svc.settings.clock_shift_s))  # the app's clock
    workers = Workers(env, tmp_path)
    try:
        with celery_pointed_at(redis_url):
            page.click("button:has-text('Schedule it')")
            expect(page.locator("h1")).to_contain_text("scheduled")
            workers.start()
            page.click("button:has-text('Run now')")
            page.wait_for_url(f"{base_url}/runs/*")
            progress = page.locator("#progress [data-status]")
            try:
                expect(progress).to_have_text("finished", timeout=RUN_TIMEOUT_MS)
            except AssertionError:
                pytest.fail(f"the run did not finish\n{workers.logs()}")
        expect(page.locator("#progress")).to_contain_text("sent")
        shot(page, "07-run-finished")
    finally:
        workers.stop()

    page.goto(f"{base_url}/")
    expect(page.locator("figure.chart rect").first).to_be_attached()
    shot(page, "08-dashboard-after-run")
    page.goto(f"{base_url}/audit")
    expect(page.locator("table")).to_contain_text("campaign.scheduled")
    shot(page, "09-audit-log")
    page.goto(f"{base_url}/inbound")
    shot(page, "10-inbound")


def test_a_viewer_sees_no_edit_buttons_and_is_refused_on_post(
    browser: Browser, base_url: str, svc: Services
) -> None:
    add_examples(svc)
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/campaigns/{NAME}")
    expect(page.locator("h1")).to_contain_text(NAME)
    for label in ("Edit", "Schedule it", "Run now", "Cancel campaign"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
        expect(page.get_by_role("link", name=label)).to_have_count(0)
    shot(page, "11-campaign-as-viewer")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    reply = page.request.post(f"{base_url}/campaigns/{NAME}/schedule", form={"csrf_token": token})
    assert reply.status == 403
    assert svc.campaigns.get(NAME)["status"] == "draft"  # type: ignore[index]
    page.goto(f"{base_url}/patients")
    expect(page.locator("#file")).to_have_count(0)


def test_a_marketer_sees_each_open_claim_with_the_acknowledgement_to_paste(
    browser: Browser, base_url: str, svc: Services
) -> None:
    text = EXAMPLE_CAMPAIGN.read_text().partition("compliance:")[0]
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/new/yaml")
    page.fill("#definition", text)
    page.click("button:has-text('Save')")

    expect(page.locator(".flash, .flashes").first).to_contain_text("Needs an acknowledgement")
    rows = page.locator("table.findings tbody tr.sev-claim")
    expect(rows).to_have_count(3)
    first = rows.first
    first.locator("summary:has-text('Acknowledge this finding')").click()
    snippet = first.locator("pre").inner_text()
    assert "rule: names-influenza" in snippet and "sentence:" in snippet
    shot(page, "10-campaign-claims-to-acknowledge")


def test_an_admin_disables_a_user_from_the_users_page(
    browser: Browser, base_url: str, svc: Services
) -> None:
    marketer = sign_in(browser, base_url, "mara")
    expect(marketer.get_by_role("link", name="Users")).to_have_count(0)
    page = sign_in(browser, base_url, "ada")
    page.get_by_role("link", name="Users").click()
    row = page.locator("tr", has_text="mara")
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("body")).to_contain_text("Staff user mara is disabled")
    expect(page.locator("tr", has_text="mara")).to_contain_text("no (disabled)")
    shot(page, "13-users-one-disabled")
    marketer.goto(f"{base_url}/campaigns")
    expect(marketer.locator("#password")).to_have_count(1)  # back at the sign-in page
