"""The run page's "By state" table puts each channel's count under that channel's
heading, whatever order the ledger returns the channels in (the heading followed the
ledger's order and the cells the alphabet's: email's counts stood under "sms").

A GROUP BY without ORDER BY returns its groups in whatever order the plan gives
(SQLite gave sms first for a run of 280 deliveries, email first for a handful):
the test hands the page the ledger's real groups in both orders."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from campaigns.domain.states import DeliveryState, SkipReason
from campaigns.services import Services
from tests.support.factories import (
    add_campaign,
    add_deliveries,
    add_patients,
    add_run,
    patient_record,
)
from tests.web.test_browser import sign_in, staff  # noqa: F401 - fixture


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, object]:
    return {"database_url": database_url}  # the server's threads share it


@pytest.mark.parametrize("order", ["as the ledger gives them", "reversed"])
def test_each_channels_counts_stand_under_its_own_heading(
    browser: Browser, base_url: str, svc: Services, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = add_patients(svc, [patient_record(f"E{i}") for i in range(6)])
    run_id = add_run(svc, add_campaign(svc, "two-channels"))
    # 1 sms failed, 2 skipped; 3 emails sent.
    add_deliveries(svc, run_id, pids[:1], state=DeliveryState.FAILED)
    add_deliveries(
        svc, run_id, pids[1:3], state=DeliveryState.SKIPPED, skip_reason=SkipReason.OPTED_OUT
    )
    add_deliveries(svc, run_id, pids[3:], channel="email", state=DeliveryState.SENT)
    if order == "reversed":
        counts = svc.delivery_queries.counts
        monkeypatch.setattr(svc.delivery_queries, "counts", lambda run: counts(run)[::-1])
    page = sign_in(browser, base_url, "vic")
    page.goto(f"{base_url}/runs/{run_id}")
    table = page.locator("#progress table").first
    heads = table.locator("thead th").all_inner_texts()
    shown = {
        row.locator("th").inner_text(): dict(
            zip(heads[1:], row.locator("td.num").all_inner_texts(), strict=True)
        )
        for row in table.locator("tbody tr").all()
    }
    assert shown == {
        "failed": {"sms": "1", "email": "0", "All": "1"},
        "sent": {"sms": "0", "email": "3", "All": "3"},
        "skipped": {"sms": "2", "email": "0", "All": "2"},
    }
