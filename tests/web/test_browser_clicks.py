"""Clicks and bookings where staff look, in headless Chromium: an email written to the
outbox (the transport the workers use without a provider) is opened in the browser,
its booking link clicked twice, and the run page counts one click; a patient CSV
re-import with an appointment then shows a booking on the run page. Screenshots 80-…
land in var/screenshots/."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect
from werkzeug.serving import make_server

from campaigns.content.message import render_message
from campaigns.domain.models import Outcome
from campaigns.domain.states import DeliveryState
from campaigns.domain.transport import OutboundMessage
from campaigns.people.patients import import_patients
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.browser import shot
from tests.support.factories import (
    EXAMPLE_NAME,
    add_deliveries,
    add_example_campaign,
    add_patient,
    add_run,
    claim,
)
from tests.test_clicks import BOOK, _with_links
from tests.web.test_browser import sign_in, staff  # noqa: F401 - fixture
from tests.web.test_results_export import HEADER, _csv_line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = _free_port()
PUBLIC = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The short links point at MERIDIAN_PUBLIC_URL: the app under test serves there.
    return {"public_url": PUBLIC}


@pytest.fixture
def base_url(svc: Services) -> Iterator[str]:
    server = make_server("127.0.0.1", PORT, create_app(svc), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PUBLIC
    server.shutdown()
    thread.join(timeout=10)


def _send_one_email(svc: Services) -> tuple[int, Path]:
    """A run with one email sent through the outbox transport; (run id, its .eml)."""
    pid = add_patient(svc, "E1", email="e1@example.org", consent={"email": True})
    row = svc.campaigns.get(add_example_campaign(svc))
    assert row is not None
    run_id = add_run(svc, int(row["id"]))
    at = svc.now() - timedelta(hours=1)
    (did,) = add_deliveries(svc, run_id, [pid], channel="email", due_at=at)
    claim(svc, [did], at)
    recipient = svc.patients.recipients([pid])[pid]
    mail = render_message(svc, _with_links(), recipient, "email", delivery_id=did)
    message = OutboundMessage(
        did,
        run_id,
        "email",
        "e1@example.org",
        mail.body,
        mail.subject,
        mail.html,
        mail.unsubscribe_url,
    )
    receipt = svc.transport("email").send(message)
    svc.deliveries.record([Outcome(did, DeliveryState.SENT, provider_id=receipt.provider_id)], at)
    (eml,) = (svc.settings.outbox_dir / "email").glob(f"run{run_id}-d{did}.eml")
    return run_id, eml


def test_a_link_clicked_twice_from_an_outbox_email_counts_once_and_a_reimport_books(
    browser: Browser, base_url: str, svc: Services, tmp_path: Path
) -> None:
    run_id, eml = _send_one_email(svc)
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.compat32)
    (html,) = [
        p.get_payload(decode=True).decode()
        for p in parsed.walk()
        if p.get_content_type() == "text/html"
    ]
    assert "booking.example.net" not in html

    reader = browser.new_context(viewport={"width": 900, "height": 600})
    opened = reader.new_page()
    # The booking site is not on this machine: answer for it, and note the visit.
    visits: list[str] = []

    def booking_site(route: Route) -> None:
        visits.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Book a visit</h1>")

    opened.route("https://booking.example.net/**", booking_site)
    for _ in range(2):
        opened.set_content(html)
        opened.click("a:has-text('Book a visit')")
        expect(opened.locator("h1")).to_have_text("Book a visit")
    assert visits == [BOOK, BOOK]
    reader.close()

    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/runs/{run_id}")
    section = page.locator("#engagement")
    expect(section.locator("tr[data-row=total] [data-figure=clicked]")).to_have_text("1")
    expect(section.locator("tr[data-row=total] [data-figure=clicks]")).to_have_text("1")
    expect(section.locator("tr[data-row=total] [data-figure=booked]")).to_have_text("0")
    section.scroll_into_view_if_needed()
    shot(page, "80-run-click-counted-once")

    appointment = svc.now().date() + timedelta(days=10)
    file = tmp_path / "again.csv"
    line = _csv_line("E1", appointment).replace(
        ",,(617) 555-0100", ",e1@example.org,(617) 555-0100"
    )
    file.write_text(HEADER + "\n" + line + "\n", encoding="utf-8")
    import_patients(file, svc.patients, region="US", actor="test")
    page.reload()
    expect(section.locator("tr[data-row=total] [data-figure=booked]")).to_have_text("1")
    expect(section.locator("tr[data-row=email]")).to_contain_text("1")
    section.scroll_into_view_if_needed()
    shot(page, "81-run-booking-after-reimport")

    page.goto(f"{base_url}/campaigns")
    row = page.locator(f"tr[data-campaign='{EXAMPLE_NAME}']")
    expect(row.locator("[data-figure=clicked]")).to_have_text("1")
    expect(row.locator("[data-figure=booked]")).to_have_text("1")
    shot(page, "82-campaign-list-clicks-bookings")

    with page.expect_download() as download:
        page.goto(f"{base_url}/runs/{run_id}")
        page.click("#run-export")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[1].endswith(",yes,yes")

    reply = page.goto(f"{base_url}/l/1-1.AAAAAAAAAAAAAAAA")
    assert reply is not None and reply.status == 404 and page.url.startswith(base_url)
    expect(page.locator("h1")).to_have_text("This link is not valid")
    shot(page, "83-short-link-not-valid")
