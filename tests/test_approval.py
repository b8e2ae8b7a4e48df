"""Approval of exact content: a second person approves, any change returns the
campaign to draft, and nothing schedules or runs what is not approved as it is now."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from campaigns.cli.main import app
from campaigns.content import approval, catalogue, copybook, review
from campaigns.content.definitions import load_definition
from campaigns.domain.states import CampaignState
from campaigns.errors import BrokerUnavailable, InputError
from campaigns.people.staff import Staff
from campaigns.sending import control, runs
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from campaigns.store.db import Database, upgrade
from tests.support.settings import ROOT, SQLITE_IN_MEMORY, make_settings
from tests.test_copy import written

CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
NAME = "cold-and-flu-season"
SMS_PART = "cold-and-flu-season/sms.txt.j2"
MARA = Staff("mara", "marketer")
APRIL = Staff("april", "approver")
ADA = Staff("ada", "admin")


@pytest.fixture
def studio(tmp_path: Path, backend: str, database_url: str) -> Iterator[tuple[Services, Path]]:
    """Services over a private copy of the shipped templates, which a test may edit."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    url = SQLITE_IN_MEMORY if backend == "sqlite" else database_url
    services = Services(
        make_settings(tmp_path, templates_dir=templates, database_url=url),
        MemoryDispatcher(),
    )
    services.db.upgrade()
    yield services, templates
    services.close()


def saved(svc: Services) -> None:
    catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")


def test_a_draft_is_refused_by_schedule_run_now_and_the_tick_until_approved(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    for attempt in (
        lambda: catalogue.schedule_campaign(svc, NAME, actor="mara"),
        lambda: runs.start_run(svc, NAME, actor="mara"),
    ):
        with pytest.raises(InputError, match="not approved"):
            attempt()
    assert svc.runs.of_campaign(1) == []


def test_a_different_approver_approves_and_the_campaign_can_then_be_scheduled_and_run(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    with pytest.raises(InputError, match="only a submitted one"):
        review.approve(svc, NAME, staff=APRIL)
    assert review.submit(svc, NAME, staff=MARA).state == "submitted"
    with pytest.raises(InputError, match="approver or admin role"):
        review.approve(svc, NAME, staff=MARA)
    status = review.approve(svc, NAME, staff=APRIL)
    assert status.approved and status.latest is not None and status.latest["actor"] == "april"
    catalogue.schedule_campaign(svc, NAME, actor="mara")
    assert runs.start_run(svc, NAME, actor="mara") is not None
    actions = [e["action"] for e in svc.reports.audit_page(limit=50)]
    assert "campaign.review.submit" in actions and "campaign.review.approve" in actions


def test_the_two_person_rule_refuses_the_submitter_and_can_be_turned_off(
    studio: tuple[Services, Path], tmp_path: Path
) -> None:
    svc, _ = studio
    saved(svc)
    review.submit(svc, NAME, staff=APRIL)
    with pytest.raises(InputError, match="two-person rule"):
        review.approve(svc, NAME, staff=APRIL)
    svc.settings = svc.settings.model_copy(update={"approval_two_person": False})
    assert review.approve(svc, NAME, staff=APRIL).approved


def test_a_change_after_approval_returns_the_campaign_to_draft_and_stops_it(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    review.approve(svc, NAME, staff=APRIL)
    control.schedule(svc, NAME, actor="mara")
    assert svc.dispatcher.schedules  # type: ignore[attr-defined]
    definition = load_definition(CAMPAIGN)
    changed = definition.model_copy(update={"description": "now with a new description"})
    applied = catalogue.save_definition(svc, changed, actor="mara", source="t")
    assert applied.lapsed
    row, stored = catalogue.load_campaign(svc, NAME)
    assert row["status"] == CampaignState.DRAFT
    status = approval.review_status(svc, int(row["id"]), stored)
    assert status.state == "changed" and "changed since approval" in status.sentence
    with pytest.raises(InputError, match="changed since approval"):
        runs.start_run(svc, NAME, actor="mara")
    dispatcher = svc.dispatcher
    assert isinstance(dispatcher, MemoryDispatcher)
    assert int(row["id"]) not in dispatcher.schedules


def test_the_fingerprint_follows_the_template_text_and_a_template_edit_stops_the_tick(
    studio: tuple[Services, Path], caplog: pytest.LogCaptureFixture
) -> None:
    svc, templates = studio
    today = svc.now().date()
    definition = load_definition(CAMPAIGN).model_copy(deep=True)
    definition = definition.model_copy(
        update={
            "schedule": definition.schedule.model_copy(
                update={"rrule": None, "once": today, "send_time": time(0, 0), "grace_hours": 72}
            )
        }
    )
    catalogue.save_definition(svc, definition, actor="mara", source="t", approve=True)
    before = approval.fingerprint(svc, definition)
    catalogue.schedule_campaign(svc, NAME, actor="mara")
    sms = templates / SMS_PART
    sms.write_text(sms.read_text() + "\nSee you soon.\n")
    assert approval.fingerprint(svc, definition) != before
    row, _ = catalogue.load_campaign(svc, NAME)
    assert runs.tick_campaign(svc, int(row["id"])) == []
    assert svc.runs.of_campaign(int(row["id"])) == []
    assert "changed since approval: back to draft" in caplog.text
    assert svc.campaigns.get(NAME)["status"] == CampaignState.DRAFT  # type: ignore[index]
    assert int(row["id"]) not in svc.dispatcher.schedules  # type: ignore[attr-defined]


def test_an_approver_cannot_approve_while_a_claim_is_unacknowledged(
    studio: tuple[Services, Path],
) -> None:
    svc, templates = studio
    sms = templates / SMS_PART
    sms.write_text(sms.read_text().replace("season is here.", "season is here. Ward off the flu."))
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    with pytest.raises(InputError, match="compliance lint"):
        review.approve(svc, NAME, staff=APRIL)


def test_an_approval_of_a_version_that_changed_while_under_review_is_refused(
    studio: tuple[Services, Path],
) -> None:
    svc, templates = studio
    saved(svc)
    seen = review.submit(svc, NAME, staff=MARA).fingerprint
    sms = templates / SMS_PART
    sms.write_text(sms.read_text() + "\nSee you soon.\n")
    with pytest.raises(InputError, match="changed while you were reviewing"):
        review.approve(svc, NAME, staff=APRIL, seen=seen)


def test_sending_back_needs_a_comment_and_lets_the_marketer_submit_again(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    with pytest.raises(InputError) as empty:
        review.send_back(svc, NAME, staff=APRIL, comment="  ")
    assert empty.value.problems[0].where == "comment"
    status = review.send_back(svc, NAME, staff=APRIL, comment="Say which clinic hours.")
    assert status.state == "sent_back" and status.latest is not None
    assert status.latest["comment"] == "Say which clinic hours."
    assert review.submit(svc, NAME, staff=MARA).state == "submitted"


def test_an_admin_acknowledges_one_finding_through_the_catalogue(
    studio: tuple[Services, Path],
) -> None:
    svc, templates = studio
    sms = templates / SMS_PART
    sms.write_text(sms.read_text().replace("season is here.", "season is here. Ward off the flu."))
    applied = catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")
    assert len(applied.unacknowledged) == 1
    token = review.finding_token(applied.unacknowledged[0])
    with pytest.raises(InputError, match="admin role"):
        review.acknowledge(
            svc, NAME, staff=APRIL, finding_key=token, reason="reviewed with counsel"
        )
    with pytest.raises(InputError) as short:
        review.acknowledge(svc, NAME, staff=ADA, finding_key=token, reason="ok")
    assert short.value.problems[0].where == "reason"
    done = review.acknowledge(
        svc, NAME, staff=ADA, finding_key=token, reason="reviewed with counsel today"
    )
    assert done.unacknowledged == []
    _, definition = catalogue.load_campaign(svc, NAME)
    ack = definition.compliance.acknowledged[-1]
    assert (ack.phrase, ack.by, ack.reason) == (
        "Ward off the flu",
        "ada",
        "reviewed with counsel today",
    )


def test_the_cli_refuses_to_run_a_draft_and_apply_approve_is_audited_as_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    monkeypatch.setenv("MERIDIAN_CLINIC_ADDRESS", "1 Main St, Springfield, MA 02110")
    monkeypatch.setenv("MERIDIAN_CLINIC_PHONE", "(617) 555-0142")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["campaigns", "apply", str(CAMPAIGN)]).exit_code == 0
    refused = runner.invoke(app, ["campaigns", "schedule", NAME])
    assert refused.exit_code == 2 and "not approved" in " ".join(refused.output.split())
    approved = runner.invoke(app, ["campaigns", "apply", "--approve", "--json", str(CAMPAIGN)])
    assert approved.exit_code == 0, approved.output
    assert '"approved": true' in approved.output
    svc = Services(make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'm.db'}"))
    try:
        events = [e for e in svc.reports.audit_page(limit=50) if "review" in e["action"]]
        assert {(e["action"], e["actor"], e["detail"].get("via")) for e in events} == {
            ("campaign.review.submit", "cli", "apply --approve"),
            ("campaign.review.approve", "cli", "apply --approve"),
        }
    finally:
        svc.close()


def test_copy_saved_in_the_console_after_approval_returns_the_campaign_to_draft_at_once(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    starter = written()  # copy written in the console, with no claim to acknowledge
    copybook.save_copy(svc, NAME, starter, actor="mara")
    review.submit(svc, NAME, staff=MARA)
    review.approve(svc, NAME, staff=APRIL)
    control.schedule(svc, NAME, actor="mara")
    row, definition = catalogue.load_campaign(svc, NAME)
    before = approval.fingerprint(svc, definition)
    copybook.save_copy(svc, NAME, starter, actor="mara")  # saved again, the same text
    assert approval.fingerprint(svc, definition) == before
    assert svc.campaigns.get(NAME)["status"] == CampaignState.SCHEDULED  # type: ignore[index]

    edited = dataclasses.replace(starter, sms=(starter.sms or "") + " See you soon.")
    copybook.save_copy(svc, NAME, edited, actor="mara")
    assert approval.fingerprint(svc, definition) != before
    assert svc.campaigns.get(NAME)["status"] == CampaignState.DRAFT  # type: ignore[index]
    assert int(row["id"]) not in svc.dispatcher.schedules  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="changed since approval"):
        runs.start_run(svc, NAME, actor="mara")


def test_an_approver_who_rewrote_the_copy_after_submission_cannot_approve_it_alone(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    # The approver edits the submitted campaign's copy, then approves their own words.
    copybook.save_copy(svc, NAME, written(), actor="april")
    with pytest.raises(InputError, match="you changed it since mara submitted it"):
        review.approve(svc, NAME, staff=APRIL)
    # Another approver may approve it; or april submits it, and someone else approves.
    assert review.approve(svc, NAME, staff=Staff("otto", "approver")).approved


def test_an_admin_who_only_acknowledged_a_finding_after_submission_may_approve(
    studio: tuple[Services, Path],
) -> None:
    svc, templates = studio
    sms = templates / SMS_PART
    sms.write_text(sms.read_text().replace("season is here.", "season is here. Ward off the flu."))
    applied = catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")
    review.submit(svc, NAME, staff=MARA)
    token = review.finding_token(applied.unacknowledged[0])
    review.acknowledge(svc, NAME, staff=ADA, finding_key=token, reason="reviewed with counsel")
    assert review.approve(svc, NAME, staff=ADA).approved


def test_a_campaign_scheduled_before_approval_existed_keeps_running_after_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 0007, scheduling a campaign was its approval. Upgrading must not leave it
    # scheduled yet refused by every tick (its occurrences silently missed).
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Database(url)
    upgrade(old.engine, "0006")
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaigns (name, definition, status, findings, created_at, "
                "updated_at) VALUES (:name, :definition, 'scheduled', '[]', "
                "'2026-03-01', '2026-03-01')"
            ),
            {"name": NAME, "definition": json.dumps(load_definition(CAMPAIGN).to_json())},
        )
    old.dispose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", url)
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    monkeypatch.setenv("MERIDIAN_CLINIC_ADDRESS", "1 Main St, Springfield, MA 02110")
    monkeypatch.setenv("MERIDIAN_CLINIC_PHONE", "(617) 555-0142")
    upgraded = CliRunner().invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"campaign {NAME}: scheduled before approval existed" in upgraded.output
    svc = Services(make_settings(tmp_path, database_url=url), MemoryDispatcher())
    try:
        row, definition = catalogue.load_campaign(svc, NAME)
        assert approval.review_status(svc, int(row["id"]), definition).approved
        assert row["status"] == CampaignState.SCHEDULED
    finally:
        svc.close()


def test_an_edit_of_the_shipped_layout_a_campaign_extends_lapses_its_approval(
    studio: tuple[Services, Path],
) -> None:
    # The layout holds what every email ends with (address, why, unsubscribe): an edit
    # of it changes what is sent as surely as an edit of the campaign's own template.
    svc, templates = studio
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    review.approve(svc, NAME, staff=APRIL)
    layout = templates / "_layouts/email.html.j2"
    layout.write_text(layout.read_text().replace("</body>", "<p>Added later.</p></body>"))
    row, definition = catalogue.load_campaign(svc, NAME)
    assert approval.review_status(svc, int(row["id"]), definition).state == "changed"
    with pytest.raises(InputError, match="not approved"):
        runs.start_run(svc, NAME, actor="mara")


def test_a_finding_of_an_archived_campaign_is_not_acknowledged_into_a_new_campaign(
    studio: tuple[Services, Path],
) -> None:
    svc, templates = studio
    sms = templates / SMS_PART
    sms.write_text(sms.read_text().replace("season is here.", "season is here. Ward off the flu."))
    applied = catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")
    control.archive(svc, NAME, actor="mara")
    token = review.finding_token(applied.unacknowledged[0])
    with pytest.raises(InputError, match="archived"):
        review.acknowledge(svc, NAME, staff=ADA, finding_key=token, reason="reviewed with counsel")
    assert len(svc.campaigns.all()) == 1


def test_a_template_file_removed_after_approval_lapses_it_and_the_tick_goes_on(
    studio: tuple[Services, Path],
) -> None:
    # The tick, the campaign page and the review page ask the fingerprint: a missing
    # part is a change (back to draft), not a FileNotFoundError every minute.
    svc, templates = studio
    saved(svc)
    review.submit(svc, NAME, staff=MARA)
    review.approve(svc, NAME, staff=APRIL)
    control.schedule(svc, NAME, actor="mara")
    (templates / SMS_PART).unlink()
    row, definition = catalogue.load_campaign(svc, NAME)
    assert approval.review_status(svc, int(row["id"]), definition).state == "changed"
    assert runs.tick_campaign(svc, int(row["id"])) == []
    assert svc.campaigns.get(NAME)["status"] == CampaignState.DRAFT  # type: ignore[index]
    # and the lint (campaign page, review page) names the missing part, in words
    with pytest.raises(InputError) as refused:
        catalogue.lint_definition(svc, definition)
    assert any("sms.txt.j2" in p.where and "not found" in p.reason for p in refused.value.problems)


class _NoBroker(MemoryDispatcher):
    """A dispatcher whose Redis does not answer when the schedule entry is written."""

    def put_schedule(self, campaign_id: int) -> None:
        raise BrokerUnavailable("Redis (the broker) did not answer: nothing was queued")


def test_a_schedule_whose_entry_cannot_be_written_leaves_the_campaign_as_it_was(
    studio: tuple[Services, Path],
) -> None:
    svc, _ = studio
    catalogue.apply_campaign(svc, CAMPAIGN, actor="ops", approve=True)
    svc.dispatcher = _NoBroker()
    with pytest.raises(BrokerUnavailable):
        control.schedule(svc, NAME, actor="mara")
    assert svc.campaigns.get(NAME)["status"] == CampaignState.DRAFT  # type: ignore[index]
    svc.dispatcher = MemoryDispatcher()  # Redis answers again: scheduling works
    control.schedule(svc, NAME, actor="mara")
    assert svc.campaigns.get(NAME)["status"] == CampaignState.SCHEDULED  # type: ignore[index]
