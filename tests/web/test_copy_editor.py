"""The copy editor in headless Chromium: a marketer writes an SMS that leaves GSM-7
and sees the warning and the segments change, writes an email in Markdown, is told
of an unknown variable as they type, saves version 2, compares and restores.
Screenshots 40-45 land in var/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from campaigns.content import sms
from campaigns.services import Services
from tests.support.browser import shot, sign_in
from tests.support.factories import add_example_campaign, add_staff

GSM_SMS = (
    "{{ clinic.name }}: Hi {{ patient.first_name or 'there' }}, winter hours start Monday. "
    "Book: {{ clinic.phone }}. Reply STOP to opt out"
)
MARKDOWN = """Hi {{ patient.first_name or "there" }},

Our **winter hours** start on Monday:

- mornings from 8
- evenings until 7

Call {{ clinic.phone }} to book a visit."""


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}  # the server's threads share it


@pytest.fixture(autouse=True)
def campaign(svc: Services) -> str:
    add_staff(svc, mara="marketer", vic="viewer")
    return add_example_campaign(svc)


def painted(page: Page) -> None:
    """The sample email loaded and scrolled past (Chromium paints no off-screen frame),
    so the full-page screenshot shows it."""
    expect(page.frame_locator("iframe.email").locator("body")).to_contain_text("Unsubscribe")
    page.locator("iframe.email").scroll_into_view_if_needed()


def test_a_marketer_writes_saves_compares_and_restores_copy(
    browser: Browser, base_url: str, svc: Services, campaign: str
) -> None:
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/{campaign}")
    page.click("a:has-text('Write the copy')")
    expect(page.locator("h1")).to_contain_text("from the templates folder")
    # The editor opens on what the campaign sends today, from its folder.
    assert "seasonal wellness visit" in page.input_value("#sms")
    assert page.is_checked("#format-html") and page.is_checked("#text-by-hand")
    shot(page, "40-copy-editor-new")

    page.click("#use-starter")
    expect(page.locator(".flash.ok")).to_contain_text("Version 1")
    expect(page.locator("#version-now")).to_have_text("version 1")
    assert "seasonal wellness visit" in page.input_value("#sms")
    painted(page)
    shot(page, "41-copy-editor-starter")

    # An SMS in GSM-7: one segment. One character outside it: UCS-2, more segments,
    # and a warning naming the character.
    counter, warning = page.locator("#sms-counter"), page.locator("#sms-warning")
    sample = page.locator("#sms-sample")
    page.fill("#sms", GSM_SMS)
    expect(counter).to_contain_text("As written: 145 characters · GSM-7 · 1 segment ")
    expect(sample).to_contain_text("For a sample patient: ")
    expect(sample).to_contain_text("GSM-7 · 1 segment")
    expect(warning).to_be_hidden()
    page.fill("#sms", GSM_SMS.replace("Monday.", "Monday ☕."))
    expect(counter).to_contain_text("As written: 135 characters · UCS-2 · 3 segments")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Not in GSM-7: ☕")
    # The server's count of the same text, and of the message a patient would get.
    ucs2 = sms.count_segments(page.input_value("#sms"))
    assert (ucs2.encoding, ucs2.segments) == ("UCS-2", 3)
    expect(counter).to_have_attribute("data-server-segments", "3")
    expect(counter).to_have_attribute("data-server-encoding", "UCS-2")
    expect(sample).to_contain_text("UCS-2 · 2 segments")
    painted(page)
    shot(page, "42-copy-editor-sms-ucs2")
    page.fill("#sms", GSM_SMS)
    expect(counter).to_contain_text("GSM-7 · 1 segment")

    # The email in Markdown; a misspelt variable is named, with its line, as typed.
    page.check("#format-markdown")
    page.fill("#subject", "Winter hours at {{ clinic.name }}")
    page.fill("#body", MARKDOWN.replace("{{ clinic.phone }}", "{{ clinic.phnoe }}"))
    expect(page.locator("#body-problems")).to_contain_text("line 8: unknown variable: clinic.phnoe")
    painted(page)
    shot(page, "43-copy-editor-unknown-variable")
    page.fill("#body", "")
    page.click("#body")
    page.fill("#body", MARKDOWN.split("{{ clinic.phone }}")[0])
    page.click("button.insert:has-text('clinic.phone')")
    page.keyboard.type(" to book a visit.")
    expect(page.locator("#body-problems li")).to_have_count(0)
    if page.is_checked("#text-by-hand"):
        page.uncheck("#text-by-hand")  # the text part made from the HTML

    page.click("#save-copy")
    expect(page.locator(".flash.ok")).to_contain_text("Saved version 2")
    expect(page.locator("#version-now")).to_have_text("version 2")
    expect(page.locator("#lint")).to_contain_text("Compliance lint")
    frame = page.frame_locator("iframe.email")
    expect(frame.locator("strong")).to_have_text("winter hours")
    expect(frame.locator("body")).to_contain_text("Unsubscribe from")  # the layout's footer
    page.click("summary:has-text('Plain-text part')")
    expect(page.locator("#sample-text")).to_contain_text("* mornings from 8")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    shot(page, "44-copy-editor-saved-v2")

    page.click("#compare")
    expect(page.locator("h1")).to_have_text("Version 1 and version 2")
    body = page.locator("section[aria-label='Email body']")
    expect(body).to_contain_text("changed")
    expect(body.locator(".diff_add").first).to_be_visible()
    shot(page, "45-copy-compare")

    page.click("a:text-is('Copy')")
    page.click("#versions button:has-text('Restore') >> nth=0")
    expect(page.locator(".flash.ok")).to_contain_text("Restored version 1 as version 3")
    expect(page.locator("#version-now")).to_have_text("version 3")
    assert "seasonal wellness visit" in page.input_value("#sms")
    shot(page, "46-copy-restored")

    versions = svc.copies.of_campaign(campaign)
    assert [(v["number"], v["restored_from"], v["author"]) for v in versions] == [
        (3, 1, "mara"),
        (2, None, "mara"),
        (1, None, "mara"),
    ]
    assert versions[1]["email_format"] == "markdown" and versions[1]["email_text"] is None
    assert "{{ clinic.phone }} to book a visit." in versions[1]["email_body"]


def test_a_refused_save_keeps_everything_typed(
    browser: Browser, base_url: str, svc: Services, campaign: str
) -> None:
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/{campaign}/copy")
    page.check("#format-markdown")
    page.fill("#sms", "Hi {{ patient.first_name }\nReply STOP to opt out")
    page.fill("#subject", "Kept subject")
    page.fill("#body", "Kept **body**")
    page.click("#save-copy")
    expect(page.locator(".problems")).to_contain_text("@copy/sms.txt.j2:1")
    expect(page.locator(".problems")).to_contain_text("syntax error")
    assert page.input_value("#subject") == "Kept subject"
    assert page.input_value("#body") == "Kept **body**"
    assert page.input_value("#sms").startswith("Hi {{ patient.first_name }")
    assert svc.copies.of_campaign(campaign) == []


def test_a_viewer_reads_the_copy_but_cannot_save(
    browser: Browser, base_url: str, campaign: str
) -> None:
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/campaigns/{campaign}/copy")
    expect(page.locator("#sms")).to_be_visible()
    expect(page.locator("#save-copy")).to_have_count(0)
    expect(page.locator("#use-starter")).to_have_count(0)


CASES = [
    "",
    "Hello",
    "x" * 160,
    "x" * 161,
    "x" * 306,
    "x" * 307,
    "{[}]~\\|^€" * 20,
    "x" * 152 + "€" + "x" * 10,
    "é" * 70,
    "☕" * 70,
    "☕" * 71,
    "😀" * 35,
    "😀" * 36,
    "x" * 66 + "😀" + "x" * 10,
    "Hi\nthere\r\n\f",
    "Ça coûte 5 £ · “quoted” — dash",
]


def test_the_browser_counter_agrees_with_the_server_on_every_case(
    browser: Browser, base_url: str, campaign: str
) -> None:
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/{campaign}/copy")
    page.wait_for_function("window.MeridianSms !== undefined")
    in_browser = page.evaluate("cases => cases.map(c => window.MeridianSms.count(c))", CASES)
    assert in_browser == [sms.count_segments(c).to_dict() for c in CASES]


LINK_CASES = [
    "Book at https://booking.example.net/" + "a" * 150 + " today",
    "Two: https://a.example/x, and (https://b.example/y).",
    "Ours stay: {public}/unsubscribe/" + "z" * 150,
    "No link here",
]


def test_the_browser_counter_counts_links_at_the_short_links_length_as_the_server_does(
    browser: Browser, base_url: str, campaign: str, svc: Services
) -> None:
    public = svc.settings.public_url.rstrip("/")
    cases = [c.replace("{public}", public) for c in LINK_CASES]
    page = sign_in(browser, base_url, "mara")
    page.goto(f"{base_url}/campaigns/{campaign}/copy")
    page.wait_for_function("window.MeridianSms !== undefined")
    in_browser = page.evaluate(
        """cases => {
          const c = document.getElementById("sms-counter");
          return cases.map(t => window.MeridianSms.count(
            window.MeridianSms.shortened(t, c.dataset.public, Number(c.dataset.shortLink))));
        }""",
        cases,
    )
    expected = [sms.count_segments(c, public).to_dict() for c in cases]
    assert in_browser == expected
    assert expected[0]["segments"] == 1 and sms.count_segments(cases[0]).segments == 2
    page.fill("#sms", cases[0])
    expect(page.locator("#sms-counter")).to_have_attribute("data-segments", "1")
