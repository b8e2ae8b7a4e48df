"""Results where staff look, in headless Chromium: a campaign run through a real worker
on a clock where the western patients' window has not opened yet. The campaign list
shows the last run's counts as the ledger has them; the run page says what the run
waits for and when the next batch is due, lists the timeline of due times, skip
reasons in words, failures by reason, and a chart with axes. A run with nothing sent
shows the chart's empty state. Screenshots 60-… land in var/screenshots/."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.people.status_callbacks import handle_status
from campaigns.services import Services
from tests.support.browser import shot
from tests.support.factories import (
    EXAMPLE_NAME,
    add_campaign,
    add_deliveries,
    add_examples,
    add_patients,
    add_run,
    delivery_rows,
    patient_record,
)
from tests.support.waiting import wait_until
from tests.support.workers import Workers, shift_into_window, worker_env
from tests.web.test_browser import celery_pointed_at, sign_in, staff  # noqa: F401 - fixture

# 13:30 UTC on a weekday nobody keeps as a holiday: 08:30 in Boston, where texts may go;
# before the window opens in Texas, Florida's west, California: those are held.
SHIFT_S = int(shift_into_window()) - int(timedelta(hours=4, minutes=30).total_seconds())
SETTLE_S = 120


@pytest.fixture
def settings_overrides(database_url: str, request: pytest.FixtureRequest) -> dict[str, object]:
    overrides: dict[str, object] = {"database_url": database_url, "clock_shift_s": SHIFT_S}
    if "redis_url" in request.fixturenames:
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    return overrides


def _settled(svc: Services, run_id: int) -> bool:
    """Nothing of the run is being sent and nothing pending is due: what is left waits
    for its patients' hours."""
    now = svc.now()
    rows = delivery_rows(svc, run_id)
    busy = [r for r in rows if r["state"] in ("sending", "unknown")]
    due = [r for r in rows if r["state"] == "pending" and r["next_attempt_at"] <= now]
    return bool(rows) and not busy and not due and svc.runs.status(run_id) == "running"


def test_a_run_held_for_its_patients_hours_shows_its_results_where_staff_look(
    browser: Browser, base_url: str, svc: Services, redis_url: str, tmp_path: Path
) -> None:
    add_examples(svc)
    page = sign_in(browser, base_url, "mara")
    page.set_default_timeout(20_000)
    env = worker_env(
        database_url=svc.settings.database_url,
        redis_url=redis_url,
        outbox_dir=svc.settings.outbox_dir,
    )
    env["MERIDIAN_CLOCK_SHIFT_S"] = str(SHIFT_S)
    workers = Workers(env, tmp_path)
    try:
        with celery_pointed_at(redis_url):
            page.goto(f"{base_url}/campaigns/{EXAMPLE_NAME}")
            page.click("button:has-text('Schedule it')")  # approved by the factory
            expect(page.locator("h1")).to_contain_text("scheduled")
            workers.start()
            page.click("button:has-text('Run now')")
            page.wait_for_url(f"{base_url}/runs/*")
            run_id = int(page.url.rsplit("/", 1)[1])
            wait_until(lambda: _settled(svc, run_id), SETTLE_S, "the run to settle", workers.logs)
    finally:
        workers.stop()

    # the carrier's reports on three texts, as the status webhook applies them
    texts = [r for r in delivery_rows(svc, run_id) if r["channel"] == "sms" and r["provider_id"]]
    assert len(texts) >= 3, "no texts went out before the windows"
    handle_status(svc, texts[0]["provider_id"], "delivered", None)
    handle_status(svc, texts[1]["provider_id"], "delivered", None)
    handle_status(svc, texts[2]["provider_id"], "undelivered", "30003")

    rows = delivery_rows(svc, run_id)
    states = Counter(r["state"] for r in rows)
    pending = states["pending"]
    assert pending, "nobody was held for their window"
    sent = states["sent"] + states["delivered"] + states["undelivered"]

    page.goto(f"{base_url}/campaigns")
    row = page.locator(f"tr[data-campaign='{EXAMPLE_NAME}']")
    expect(row.locator("[data-figure=sent]")).to_have_text(str(sent))
    expect(row.locator("[data-figure=delivered]")).to_have_text("2")
    expect(row.locator("[data-figure=failed]")).to_have_text(str(states["failed"] + 1))
    expect(row.locator("[data-figure=skipped]")).to_have_text(str(states["skipped"]))
    expect(row.locator("td.next")).to_contain_text("on each patient's clock")
    shot(page, "60-campaign-list-results")

    page.goto(f"{base_url}/runs/{run_id}")
    waiting = page.locator("#progress .waiting")
    expect(waiting).to_have_attribute("data-waiting", "later")
    expect(waiting).to_contain_text(f"{pending} waiting, none due yet: the next")
    expect(waiting).to_contain_text("window opens")
    timeline = page.locator("table.timeline tbody tr")
    expect(timeline.first).to_contain_text("held until the patient's window opens")
    counted = [int(n) for n in timeline.locator("td.num").all_inner_texts()]
    assert sum(counted) == pending
    skipped = Counter(r["skip_reason"] for r in rows if r["state"] == "skipped")
    for reason, n in skipped.items():
        cell = page.locator(f"table.skips tr[data-reason='{reason}'] td")
        expect(cell).to_have_text(str(n))
    if SkipReason.NO_CONSENT in skipped:
        expect(page.locator("table.skips")).to_contain_text("no consent on file for this channel")
    expect(page.locator("table.failures tr[data-state=undelivered]")).to_contain_text("30003")
    svg = page.locator("figure.run-chart svg")
    expect(svg.locator("text.axis-title")).to_have_count(2)
    expect(svg.locator("text.axis-title").first).to_contain_text("Messages sent per")
    expect(svg.locator("text.axis-title").last).to_contain_text("the clinic's zone")
    expect(svg.locator("rect.ch-sms").first).to_be_attached()
    page.locator("#progress").scroll_into_view_if_needed()
    shot(page, "61-run-held-for-windows")
    page.locator("figure.run-chart").scroll_into_view_if_needed()
    shot(page, "62-run-chart-and-failures")
    expect(page.locator("#sent-chart-cap")).to_contain_text(
        f"{sent} messages handed to the provider"
    )


def test_a_run_with_nothing_sent_yet_says_so_and_when_the_first_batch_is_due(
    browser: Browser, base_url: str, svc: Services
) -> None:
    pids = add_patients(svc, [patient_record(f"E{i}") for i in range(4)])
    run_id = add_run(svc, add_campaign(svc, "quiet-one"))
    add_deliveries(svc, run_id, pids[:3], due_at=svc.now() + timedelta(hours=3))
    add_deliveries(
        svc, run_id, pids[3:], state=DeliveryState.SKIPPED, skip_reason=SkipReason.OPTED_OUT
    )
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.locator(".empty-chart")).to_contain_text("Nothing sent yet")
    expect(page.locator("figure.run-chart")).to_have_count(0)
    expect(page.locator("#progress .waiting")).to_contain_text("3 waiting, none due yet")
    expect(page.locator("#progress .waiting")).to_contain_text("(in 3 h)")
    expect(page.locator("table.skips")).to_contain_text("the patient opted out")
    expect(page.locator("table.failures")).to_contain_text("Nothing failed.")
    shot(page, "63-run-nothing-sent-yet")
