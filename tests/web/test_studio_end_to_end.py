"""Issue 14's "Done when", as one story in headless Chromium.

A marketer with no terminal imports the sample patients, creates a yearly seasonal
campaign from the form, writes its SMS and email copy, sees the compliance lint flag
a sentence and fixes it, previews for a patient found by name, sends a test text to
their own phone (the local Twilio-compatible server receives it, marked as a test)
and submits; an admin approves in another browser context; the marketer schedules
it. A real worker and a real beat, started as the README tells an operator, run the
occurrence on a shifted clock (the campaign's yearly date is the shifted clock's
date), and the campaign list and the run page show the counts the deliveries table
has. The test only reads the ledger and the Twilio-compatible server, to check.
Screenshots 70-79 land in var/screenshots/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from campaigns.domain.words import skip_words
from campaigns.services import Services
from campaigns.store.tables import deliveries
from tests.support.browser import SHOTS, shot, sign_in
from tests.support.factories import EXAMPLE_PATIENTS, add_staff
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import wait_until
from tests.support.workers import Workers, shift_into_window, worker_env
from tests.web.test_browser import celery_pointed_at

NAME = "herbal-autumn"
PICKED = "Isabella Jones"  # one patient of examples/patients.csv by that name, tagged herbal
CLINIC_FROM = "+16175550142"
MARA_PHONE = "+14155550123"
CLAIM = "Ward off the flu with a visit."
SMS = (
    "{{ clinic.name }}: Hi {{ patient.first_name or 'there' }}, our herbal consults are "
    "back for the season. %s Book: {{ clinic.phone }}. Reply STOP to opt out"
)
BODY = """Hi {{ patient.first_name or "there" }},

Our **seasonal herbal consults** are back. %s

Call {{ clinic.phone }} to book a visit."""
SETTLE_S = 180


@pytest.fixture
def settings_overrides(
    database_url: str, redis_url: str, twilio: TwilioServer
) -> dict[str, object]:
    """The app as the clinic runs it: texts through the (local) Twilio API, a database
    and Redis the server's threads and the workers share, and the clock shifted to
    18:00 UTC on a weekday that is nobody's holiday."""
    return {
        "database_url": database_url,
        "redis_url": redis_url,
        "clock_shift_s": int(shift_into_window()),
        "sms_transport": "twilio",
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_from": CLINIC_FROM,
        "twilio_api_url": twilio.url,
        "twilio_timeout_s": 5.0,
    }


def painted(page: Page) -> None:
    """The email preview scrolled to (Chromium paints no off-screen frame), so the
    full-page screenshot shows it."""
    page.locator("iframe.email").scroll_into_view_if_needed()


def operator_processes(
    svc: Services, twilio: TwilioServer, base_url: str, tmp_path: Path
) -> Workers:
    """A worker and a beat, as the README's process list starts them, with the app's
    settings (its database, Redis, Twilio, outbox, public URL and shifted clock)."""
    settings = svc.settings
    token = settings.twilio_auth_token
    assert token is not None
    env = {
        **os.environ,
        **worker_env(
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            outbox_dir=settings.outbox_dir,
        ),
        "MERIDIAN_CLOCK_SHIFT_S": str(int(settings.clock_shift_s)),
        "MERIDIAN_SMS_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": token.get_secret_value(),
        "MERIDIAN_TWILIO_FROM": CLINIC_FROM,
        "MERIDIAN_TWILIO_API_URL": twilio.url,
        "MERIDIAN_PUBLIC_URL": base_url,  # where the carrier posts its delivery reports
    }
    workers = Workers(env, tmp_path)
    celery = [sys.executable, "-m", "celery", "-A", "tasks"]
    workers.start_command("worker", [*celery, "worker", "--concurrency", "2", "-n", "w0@%h"])
    workers.start_command("beat", [*celery, "beat", "-s", str(tmp_path / "beat-schedule")])
    return workers


def counts_of_run(svc: Services, run_id: int) -> dict[tuple[str, str], int]:
    """(channel, state) -> deliveries of the run, as the deliveries table has them."""
    query = (
        select(deliveries.c.channel, deliveries.c.state, func.count())
        .where(deliveries.c.run_id == run_id)
        .group_by(deliveries.c.channel, deliveries.c.state)
    )
    with svc.db.connect() as conn:
        return {(str(c), str(s)): int(n) for c, s, n in conn.execute(query).all()}


def skips_of_run(svc: Services, run_id: int) -> dict[str, int]:
    query = (
        select(deliveries.c.skip_reason, func.count())
        .where(deliveries.c.run_id == run_id, deliveries.c.state == "skipped")
        .group_by(deliveries.c.skip_reason)
    )
    with svc.db.connect() as conn:
        return {str(r): int(n) for r, n in conn.execute(query).all()}


def test_a_marketer_takes_a_seasonal_campaign_from_the_form_to_its_results(
    browser: Browser, base_url: str, svc: Services, twilio: TwilioServer, tmp_path: Path
) -> None:
    add_staff(svc, mara="marketer", ada="admin")
    mara = sign_in(browser, base_url, "mara", 20_000)

    # 1. The sample patients, imported through the console; a yearly campaign from the
    # form, whose date is today on the (shifted) clinic clock.
    mara.goto(f"{base_url}/patients")
    mara.set_input_files("#file", str(EXAMPLE_PATIENTS))
    mara.click("button:has-text('Import')")
    expect(mara.locator(".report")).to_contain_text("Import of patients.csv")
    today = svc.now().astimezone(ZoneInfo(svc.settings.clinic_timezone)).date()
    mara.goto(f"{base_url}/campaigns")
    mara.click("a:has-text('New campaign')")
    mara.fill("#name", NAME)
    mara.fill("#description", "Herbal patients, once a year")
    mara.uncheck("[aria-labelledby=tags-any-h] input[value=active]")
    mara.check("[aria-labelledby=tags-any-h] input[value=herbal]")
    expect(mara.locator("[aria-labelledby=tags-none-h] input[value=do-not-market]")).to_be_checked()
    mara.check("input[name=channels][value=sms]")
    mara.check("input[name=channels][value=email]")
    mara.check("input[name=schedule_kind][value=yearly]")
    mara.select_option("#month", str(today.month))
    mara.fill("#day", str(today.day))
    mara.fill("#send_time", "08:00")
    # The shifted clock is 18:00 UTC: past 08:00 on every US patient's clock, and
    # within 10 hours of 08:00 on the clinic's, in summer time too (6 is the default).
    mara.fill("#grace_hours", "10")
    expect(mara.locator("#schedule-words")).to_contain_text(
        f"Every year on {today.day} {today:%B} at 08:00 in each patient's time zone"
    )
    expect(mara.locator("#audience-total")).to_contain_text("would get a message today")
    mara.evaluate("window.scrollTo(0, 0)")
    shot(mara, "70-e2e-campaign-form")
    mara.click("button:has-text('Save campaign')")
    mara.wait_for_url(f"{base_url}/campaigns/{NAME}")
    expect(mara.locator("h1")).to_contain_text("draft")

    # 2. The copy, written in the editor: a sentence the claims lint flags, then fixed.
    mara.click("a:has-text('Write the copy')")
    mara.fill("#sms", SMS % CLAIM)
    mara.fill("#subject", "Herbal consults are back at {{ clinic.name }}")
    mara.check("#format-markdown")
    mara.fill("#body", BODY % "")
    if mara.is_checked("#text-by-hand"):
        mara.uncheck("#text-by-hand")  # the text part made from the HTML
    expect(mara.locator("#sms-counter")).to_contain_text("GSM-7")
    mara.click("#save-copy")
    expect(mara.locator(".flash.ok")).to_contain_text("Saved version 1")
    lint = mara.locator("#lint")
    expect(lint).to_contain_text("Compliance lint: 1 finding")
    flagged = lint.locator("table.findings tbody tr")
    expect(flagged).to_have_count(1)
    expect(flagged).to_have_class("sev-claim")
    expect(flagged).to_contain_text(CLAIM)
    lint.scroll_into_view_if_needed()
    shot(mara, "71-e2e-copy-lint-finding")
    mara.fill("#sms", SMS.replace(" %s", ""))
    mara.click("#save-copy")
    expect(mara.locator(".flash.ok")).to_contain_text("Saved version 2")
    expect(lint).to_contain_text("Compliance lint: no findings")
    lint.scroll_into_view_if_needed()
    shot(mara, "72-e2e-copy-clean")

    # 3. A preview for a patient found by name, with when it would go.
    mara.goto(f"{base_url}/campaigns/{NAME}")
    mara.click("a:has-text('Preview and test')")
    mara.fill("#q", PICKED.lower())
    found = mara.locator("ul.picked.live li")
    expect(found).to_have_count(1)
    found.locator(f"button:has-text('{PICKED}')").click()
    sms_preview = mara.locator("article[aria-label='sms preview'] pre.sms")
    expect(sms_preview).to_contain_text("Hi Isabella, our herbal consults")
    expect(mara.frame_locator("iframe.email").locator("body")).to_contain_text("Hi Isabella")
    when = mara.locator("section[aria-label='sms send time']")
    expect(when).to_contain_text("Sends at")
    expect(when).to_contain_text("America/Chicago")
    painted(mara)
    shot(mara, "73-e2e-preview-found-by-name")

    # 4. Their own phone on their profile, and a test text to it.
    mara.click("header a:has-text('mara')")
    mara.fill("#phone", "(415) 555-0123")
    mara.click("button:has-text('Save')")
    expect(mara.locator(".flash.ok")).to_contain_text("Saved your phone")
    mara.goto(f"{base_url}/campaigns/{NAME}/try")
    mara.fill("#q", PICKED.lower())
    mara.locator(f"ul.picked.live button:has-text('{PICKED}')").click()
    expect(sms_preview).to_contain_text("Hi Isabella")
    mara.click("button:has-text('Send a test text')")
    expect(mara.locator(".flash.ok")).to_contain_text("Test sms sent")
    (texted,) = twilio.accepted()
    assert texted["to"] == MARA_PHONE and texted["from"] == CLINIC_FROM
    assert texted["body"].startswith("TEST: ")
    assert "Hi Isabella, our herbal consults are back" in texted["body"]
    painted(mara)
    shot(mara, "74-e2e-test-text-sent")

    # 5. Submitted by the marketer; approved by an admin in another browser context.
    mara.goto(f"{base_url}/campaigns/{NAME}/review")
    mara.click("button:has-text('Submit for approval')")
    expect(mara.locator("#review-state")).to_contain_text("submitted for approval by mara")
    expect(mara.locator("button:has-text('Approve this version')")).to_have_count(0)
    ada = sign_in(browser, base_url, "ada", 20_000)
    ada.goto(f"{base_url}/campaigns/{NAME}/review")
    ada.click("button:has-text('Approve this version')")
    expect(ada.locator("#review-state")).to_contain_text("approved by ada")
    shot(ada, "75-e2e-approved-by-admin")

    # 6. Scheduled by the marketer; the worker and beat run today's occurrence.
    # The carrier refuses one text for good, so a failure shows in the results.
    twilio.inject("21211")
    # The console's public URL, which the carrier's reports are signed for, is known
    # once its server is bound: the deployment's MERIDIAN_PUBLIC_URL.
    svc.settings.public_url = base_url
    workers = operator_processes(svc, twilio, base_url, tmp_path)
    campaign_id = int(svc.campaigns.get(NAME)["id"])  # type: ignore[index]
    try:
        with celery_pointed_at(svc.settings.redis_url):
            mara.goto(f"{base_url}/campaigns/{NAME}")
            expect(mara.locator("#approval")).to_contain_text("Approved by ada")
            mara.click("button:has-text('Schedule it')")
            expect(mara.locator("h1")).to_contain_text("scheduled")
            shot(mara, "76-e2e-scheduled")

            def settled() -> bool:
                runs = svc.runs.of_campaign(campaign_id)
                if not runs:
                    return False
                counts = counts_of_run(svc, int(runs[0]["id"]))
                busy = sum(n for (_, s), n in counts.items() if s in ("pending", "sending"))
                return bool(counts) and not busy and runs[0]["status"] == "finished"

            wait_until(settled, SETTLE_S, "the occurrence's run to finish", workers.logs)
    finally:
        workers.stop()
    (run,) = svc.runs.of_campaign(campaign_id)
    run_id = int(run["id"])
    assert run["trigger"] == "schedule" and run["occurrence"] == today.isoformat()

    # The carrier reports the campaign's texts delivered, to the console's webhook.
    texts = [m for m in twilio.accepted() if not m["body"].startswith("TEST: ")]
    assert texts and all(m["status_callback"] for m in texts)
    twilio.deliver_callbacks("delivered")
    wait_until(
        lambda: counts_of_run(svc, run_id).get(("sms", "delivered")) == len(texts),
        30,
        "the delivery reports to be applied",
    )

    # 7. The results where staff look, against the deliveries table.
    counts = counts_of_run(svc, run_id)

    def total(*states: str, channel: str | None = None) -> int:
        return sum(n for (c, s), n in counts.items() if s in states and channel in (None, c))

    sent = total("sent", "delivered", "undelivered")
    assert sent and total("failed") == 1 and total("skipped")
    # the test text is in no count: only the campaign's texts are deliveries
    assert len(texts) == total("sent", "delivered", "undelivered", channel="sms")
    assert len(twilio.accepted()) == len(texts) + 1

    mara.goto(f"{base_url}/campaigns")
    row = mara.locator(f"tr[data-campaign='{NAME}']")
    expect(row.locator("[data-figure=sent]")).to_have_text(str(sent))
    expect(row.locator("[data-figure=delivered]")).to_have_text(
        str(total("delivered", channel="sms"))
    )
    expect(row.locator("[data-figure=failed]")).to_have_text(str(total("failed", "undelivered")))
    expect(row.locator("[data-figure=skipped]")).to_have_text(str(total("skipped")))
    shot(mara, "77-e2e-campaign-list-results")

    row.locator("a[href^='/runs/']").click()
    mara.wait_for_url(f"{base_url}/runs/{run_id}")
    expect(mara.locator("#progress [data-status]")).to_have_text("finished")
    by_state = mara.locator("#progress table").first
    heads = by_state.locator("thead th").all_inner_texts()[1:]  # each channel, then All
    assert heads[-1] == "All" and sorted(heads[:-1]) == ["email", "sms"]
    shown = {
        tr.locator("th").inner_text(): tr.locator("td.num").all_inner_texts()
        for tr in by_state.locator("tbody tr").all()
    }
    assert shown == {
        state: [str(counts.get((ch, state), 0)) for ch in heads[:-1]] + [str(total(state))]
        for state in {s for _, s in counts}
    }
    for reason, n in skips_of_run(svc, run_id).items():
        skip = mara.locator(f"table.skips tr[data-reason='{reason}']")
        expect(skip.locator("th")).to_have_text(skip_words(reason))
        expect(skip.locator("td")).to_have_text(str(n))
    expect(mara.locator("table.failures")).to_contain_text("21211")
    expect(mara.locator("#sent-chart-cap")).to_contain_text(
        f"{sent} messages handed to the provider"
    )
    shot(mara, "78-e2e-run-results")
    mara.locator("figure.run-chart").screenshot(path=str(SHOTS / "79-e2e-run-chart.png"))
