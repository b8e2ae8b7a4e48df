"""The console in headless Chromium (Debian's), driven by Playwright.

A marketer imports the sample patients, writes the cold-and-flu campaign, previews
it, schedules it and runs it now (through a real redis-server and Celery worker when
redis-server is installed); a viewer sees no edit buttons and is refused on a POST.
Screenshots of the main pages land in test-output/screenshots/ for review.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from campaigns.people import staff as accounts
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.conftest import CLINIC, ROOT, make_settings
from tests.support.services import RedisServer, find_binary

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-output/screenshots"
PASSWORD = "correct horse battery staple"
CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
NAME = "cold-and-flu-season"
RUN_TIMEOUT_MS = 180_000


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI must provide it", pytrace=False)
    pytest.skip(what)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def redis_url() -> Iterator[str | None]:
    """A private redis-server's URL; None locally when redis-server is not installed."""
    if find_binary("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server: not installed; CI must provide it", pytrace=False)
        yield None
        return
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def env(tmp_path: Path, redis_url: str | None, database_url: str) -> dict[str, str]:
    """What the web app's Services and a worker process share: one ledger, Redis, outbox."""
    from tests.integration.conftest import shift_into_window

    values = {
        "MERIDIAN_DATABASE_URL": database_url,
        "MERIDIAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "MERIDIAN_OUTBOX_DIR": str(tmp_path / "outbox"),
        "MERIDIAN_SMS_RATE": "1000",
        "MERIDIAN_SMS_BURST": "100",
        "MERIDIAN_EMAIL_RATE": "1000",
        "MERIDIAN_EMAIL_BURST": "100",
        "MERIDIAN_CLOCK_SHIFT_S": str(int(shift_into_window())),
        "MERIDIAN_ENV": "test",
        **{f"MERIDIAN_{k.upper()}": v for k, v in CLINIC.items()},
    }
    if redis_url is not None:
        values["MERIDIAN_REDIS_URL"] = redis_url
    return values


@pytest.fixture
def svc(tmp_path: Path, env: dict[str, str]) -> Iterator[Services]:
    overrides: dict[str, object] = {
        key.removeprefix("MERIDIAN_").lower(): value
        for key, value in env.items()
        if key.removeprefix("MERIDIAN_").lower() in ("database_url", "redis_url", "clock_shift_s")
    }
    services = Services(make_settings(tmp_path, **overrides))
    services.db.upgrade()
    accounts.add_user(services, "mara", PASSWORD, "marketer")
    accounts.add_user(services, "vic", PASSWORD, "viewer")
    accounts.add_user(services, "ada", PASSWORD, "admin")
    yield services
    services.close()


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


@pytest.fixture
def base_url(svc: Services) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(svc), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM}: not installed (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def sign_in(browser: Browser, base_url: str, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base_url}/")
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_marketer_imports_writes_previews_schedules_and_runs_a_campaign(
    browser: Browser,
    base_url: str,
    svc: Services,
    env: dict[str, str],
    redis_url: str | None,
    tmp_path: Path,
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
    page.set_input_files("#file", str(ROOT / "examples/patients.csv"))
    page.click("button:has-text('Import')")
    expect(page.locator(".report")).to_contain_text("Import of patients.csv")
    assert svc.patients.count() == 1000
    shot(page, "03-patients-imported")

    page.fill("#q", "Kowalski")
    page.click("button:has-text('Search')")
    page.click("#search-results a:has-text('P000002')")
    expect(page.locator("h2:has-text('Consent history') + table")).to_contain_text("granted")
    shot(page, "04-patient-consent-history")

    page.goto(f"{base_url}/campaigns/new")
    page.fill("#definition", CAMPAIGN.read_text())
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

    if redis_url is None:
        return  # scheduling and running need Redis and a worker
    from tests.integration.conftest import Workers

    workers = Workers(env, tmp_path)
    try:
        with celery_pointed_at(redis_url):
            page.click("button:has-text('Approve and schedule')")
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
    from campaigns.content.catalogue import apply_campaign
    from campaigns.people.patients import import_patients

    import_patients(ROOT / "examples/patients.csv", svc.patients, region="US", actor="test")
    apply_campaign(svc, CAMPAIGN, actor="test")
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/campaigns/{NAME}")
    expect(page.locator("h1")).to_contain_text(NAME)
    for label in ("Edit", "Approve and schedule", "Run now", "Cancel campaign"):
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
    text = CAMPAIGN.read_text().partition("compliance:")[0]
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/new")
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
