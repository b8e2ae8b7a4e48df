"""A/B copy in headless Chromium, sent by a real worker: a marketer adds variant B on
the copy editor, edits it and sets the split; an approver approves; the run sends each
patient their variant's text (the outbox), and the run page shows each variant's
figures and the note on chance. Screenshots 90-… land in var/screenshots/."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from playwright.sync_api import Browser, expect

from campaigns.content import copybook, review
from campaigns.content.copy import Copy
from campaigns.people.staff import Staff
from campaigns.people.status_callbacks import handle_status
from campaigns.sending import runs
from campaigns.sending.ab_results import variant_results
from campaigns.services import Services
from campaigns.transports.outbox import read_outbox
from tests.support.browser import shot
from tests.support.factories import (
    EXAMPLE_NAME,
    STAFF_PASSWORD,
    add_examples,
    add_staff,
    delivery_rows,
)
from tests.support.waiting import wait_until
from tests.support.workers import Workers, worker_env
from tests.web.test_browser import (  # noqa: F401 - fixtures
    celery_pointed_at,
    settings_overrides,
    sign_in,
    staff,
)

WINTER = Copy(
    sms="{{ clinic.name }}: Winter hours start Monday. Reply STOP to opt out",
    subject="Winter hours at {{ clinic.name }}",
    body="Hi {{ patient.first_name or 'there' }},\n\nOur **Winter hours** start Monday. "
    "[See the hours](https://clinic.example/hours)",
)


def test_a_marketer_sets_up_variant_b_and_the_run_page_shows_each_variants_figures(
    browser: Browser, base_url: str, svc: Services, redis_url: str, tmp_path: Path
) -> None:
    add_examples(svc)
    add_staff(svc, april="approver")
    copybook.save_copy(svc, EXAMPLE_NAME, WINTER, actor="mara")
    page = sign_in(browser, base_url, "mara")
    page.set_default_timeout(20_000)

    page.goto(f"{base_url}/campaigns/{EXAMPLE_NAME}/copy")
    expect(page.locator("#ab")).to_contain_text("No A/B test")
    page.click("#add-variant")
    expect(page.locator("h1")).to_contain_text("Variant B")
    page.fill("#sms", "{{ clinic.name }}: Evening hours start Monday. Reply STOP to opt out")
    page.fill("#subject", "Evening hours at {{ clinic.name }}")
    page.fill(
        "#body",
        "Hi {{ patient.first_name or 'there' }},\n\nOur **Evening hours** start. "
        "[See the hours](https://clinic.example/hours)",
    )
    page.click("#save-variant")
    expect(page.locator("body")).to_contain_text("Saved variant B")
    shot(page, "90-ab-variant-editor")

    page.goto(f"{base_url}/campaigns/{EXAMPLE_NAME}/copy#ab")
    expect(page.locator("#ab-says")).to_contain_text("A 50 / B 50")
    # A split that does not add up is refused, naming it; what was typed stays.
    page.fill("#split-A", "60")
    page.fill("#split-B", "30")
    page.click("#save-split")
    expect(page.locator("body")).to_contain_text("add up to 90")
    expect(page.locator("#split-B")).to_have_value("30")
    page.fill("#split-B", "40")
    page.click("#save-split")
    expect(page.locator("#ab-says")).to_contain_text("A 60 / B 40")
    page.locator("#ab").scroll_into_view_if_needed()
    shot(page, "90-ab-copy-editor")

    review.submit(svc, EXAMPLE_NAME, staff=Staff("mara", "marketer"))
    # The approver sees what the test sends besides the copy: the split and B's text.
    page.goto(f"{base_url}/campaigns/{EXAMPLE_NAME}/review")
    expect(page.locator("#ab-review h2")).to_contain_text("A 60 / B 40")
    expect(page.locator("#ab-review")).to_contain_text("Evening hours start Monday")
    page.locator("#ab-review").scroll_into_view_if_needed()
    shot(page, "90-ab-review")
    review.approve(svc, EXAMPLE_NAME, staff=Staff("april", "approver"))

    env = worker_env(
        database_url=svc.settings.database_url,
        redis_url=redis_url,
        outbox_dir=svc.settings.outbox_dir,
    )
    workers = Workers(env, tmp_path)
    try:
        with celery_pointed_at(redis_url):
            workers.start()
            page.goto(f"{base_url}/campaigns/{EXAMPLE_NAME}")
            page.click("button:has-text('Schedule it')")
            expect(page.locator("h1")).to_contain_text("scheduled")
            page.click("button:has-text('Run now')")
            page.wait_for_url(f"{base_url}/runs/*")
            run_id = int(page.url.rsplit("/", 1)[1])
            wait_until(
                lambda: runs.run_status(svc, run_id)["status"] == "finished",
                180,
                "the run to finish",
                workers.logs,
            )
    finally:
        workers.stop()

    # Each patient got their variant's words, and the split is as set (±3 points).
    rows = {r["id"]: r for r in delivery_rows(svc, run_id)}
    sent = [m for m in read_outbox(svc.settings.outbox_dir) if m["run_id"] == run_id]
    assert sent
    for message in sent:
        variant = rows[int(str(message["delivery_id"]))]["variant"]
        word = "Evening hours" if variant == "B" else "Winter hours"
        assert word in str(message["body"]), (variant, message["channel"])
    patients = {r["patient_id"]: r["variant"] for r in rows.values()}
    share_b = Counter(patients.values())["B"] / len(patients)
    assert abs(share_b - 0.40) <= 0.03

    # The carrier reports on the texts: one in ten of B's undelivered, one in five of A's.
    texts = [r for r in rows.values() if r["channel"] == "sms" and r["provider_id"]]
    for i, r in enumerate(texts):
        lost = i % (5 if r["variant"] == "A" else 10) == 0
        handle_status(svc, r["provider_id"], "undelivered" if lost else "delivered", None)
    figures = Counter(
        (r["variant"], r["state"]) for r in delivery_rows(svc, run_id) if r["state"] != "skipped"
    )

    # Some patients click the link in their email (twice: a patient counts once).
    clicked_by: Counter[str] = Counter()
    for message in sent:
        variant = rows[int(str(message["delivery_id"]))]["variant"]
        if message["channel"] != "email" or clicked_by[variant] >= (3 if variant == "B" else 1):
            continue
        link = re.search(r"/l/[A-Za-z0-9_.-]+", str(message["html"]))
        assert link, "the email's link is not a first-party short link"
        for _ in range(2):
            assert page.request.get(base_url + link.group(0), max_redirects=0).status == 302
        clicked_by[variant] += 1

    page.goto(f"{base_url}/runs/{run_id}")
    section = page.locator("#run-variants")
    expect(section.locator("h2")).to_contain_text("A 60 / B 40")
    for letter in ("A", "B"):
        row = section.locator(f"tr[data-variant={letter}]")
        handed = sum(n for (v, s), n in figures.items() if v == letter and s != "failed")
        expect(row.locator("[data-figure=sent]")).to_have_text(str(handed))
        delivered = figures[(letter, "delivered")]
        expect(row.locator("[data-figure=delivered]")).to_contain_text(str(delivered))
        expect(row.locator("[data-figure=clicked]")).to_have_text(str(clicked_by[letter]))
    note = section.locator(".ab-note[data-outcome=delivered]")
    expect(note).to_contain_text("B's texts were delivered")
    expect(note).to_contain_text("a difference this size happens by chance")
    # the note's figures are the ledger's (the statistics are checked in tests/test_ab.py)
    ab = variant_results(svc, run_id)
    assert ab is not None
    expect(note).to_have_text(ab["comparisons"][0]["says"])
    section.scroll_into_view_if_needed()
    shot(page, "90-ab-run-results")

    token = page.request.post(
        f"{base_url}/api/token", data={"username": "vic", "password": STAFF_PASSWORD}
    ).json()["token"]
    answer = page.request.get(
        f"{base_url}/api/runs/{run_id}/variants", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert answer["ab"]["split"] == {"A": 60, "B": 40}
    assert [v["variant"] for v in answer["ab"]["variants"]] == ["A", "B"]
