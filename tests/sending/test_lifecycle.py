"""Clone, archive and restore a campaign, and take the name of a cancelled one
(campaigns.sending.control), on the stubs and each database backend."""

from __future__ import annotations

import pytest

from campaigns.content import copybook
from campaigns.content.copy import Copy, templates_key
from campaigns.domain.states import CampaignState, RunState
from campaigns.errors import InputError
from campaigns.sending import control
from tests.sending.builders import add_patients, patient, save_campaign
from tests.support.stubs import StubbedServices, fan_out_queued, send_due


def _status(svc: StubbedServices, key: str | int) -> str:
    row = svc.campaigns.get(key)
    assert row is not None
    return str(row["status"])


def test_a_clone_is_a_new_draft_with_the_same_definition_under_its_new_name(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    control.schedule(svc, name, actor="test")

    applied = control.clone(svc, name, "flu-2027", actor="test")

    original, copy = svc.campaigns.get(name), svc.campaigns.get("flu-2027")
    assert original is not None and copy is not None
    assert copy["id"] == applied.campaign_id != original["id"]
    assert copy["status"] == CampaignState.DRAFT and original["status"] == "scheduled"
    assert copy["definition"] == {**original["definition"], "name": "flu-2027"}


def test_a_clone_may_not_take_a_name_a_campaign_holds(svc: StubbedServices) -> None:
    name = save_campaign(svc)
    save_campaign(svc, name="other")

    with pytest.raises(InputError) as refused:
        control.clone(svc, name, "other", actor="test")

    assert [(p.where, p.reason) for p in refused.value.problems] == [
        ("name", "a campaign named 'other' exists; choose another name")
    ]
    other = svc.campaigns.get("other")
    assert other is not None and other["definition"]["templates"] == "cold-and-flu-season"


def test_an_archived_campaign_is_hidden_never_starts_and_comes_back_as_a_draft(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    campaign_id = int(control.schedule(svc, name, actor="test")["id"])
    assert campaign_id in svc.memory_dispatcher.schedules

    said = control.archive(svc, name, actor="test")

    assert "archived" in said and _status(svc, name) == "archived"
    assert campaign_id not in svc.memory_dispatcher.schedules
    assert [r["name"] for r in svc.campaigns.all(archived=False)] == []
    assert [r["name"] for r in svc.campaigns.all(archived=True)] == [name]
    with pytest.raises(InputError, match="archived"):
        control.run_now(svc, name, actor="test")
    with pytest.raises(InputError, match="archived"):
        control.schedule(svc, name, actor="test")
    svc.advance(days=400)  # past the yearly occurrence: the tick starts nothing
    assert control.tick(svc, campaign_id) == []
    assert svc.memory_dispatcher.fan_outs == []

    control.restore(svc, campaign_id, actor="test")

    assert _status(svc, campaign_id) == "draft"
    assert [r["name"] for r in svc.campaigns.all(archived=False)] == [name]


def test_a_campaign_with_a_run_still_going_is_not_archived(svc: StubbedServices) -> None:
    add_patients(svc, patient("P1"))
    name = save_campaign(svc)
    control.schedule(svc, name, actor="test")
    run_id = control.run_now(svc, name, actor="test")

    with pytest.raises(InputError, match="still fanning_out"):
        control.archive(svc, name, actor="test")
    assert _status(svc, name) == "scheduled"

    fan_out_queued(svc)
    send_due(svc)
    assert run_id is not None and svc.runs.status(run_id) == RunState.FINISHED
    control.archive(svc, name, actor="test")
    assert _status(svc, name) == "archived"


def test_a_cancelled_campaigns_name_is_taken_again_and_its_runs_stay_with_it(
    svc: StubbedServices,
) -> None:
    add_patients(svc, patient("P1"))
    name = save_campaign(svc)
    control.schedule(svc, name, actor="test")
    old_run = control.run_now(svc, name, actor="test")
    fan_out_queued(svc)
    send_due(svc)
    old = svc.campaigns.get(name)
    assert old is not None and old_run is not None
    control.cancel(svc, name, actor="test")

    save_campaign(svc, description="the same name, a new campaign")

    new = svc.campaigns.get(name)
    assert new is not None and new["id"] != old["id"]
    assert new["status"] == "draft" and new["definition"]["description"].startswith("the same")
    assert _status(svc, int(old["id"])) == "cancelled"
    assert [r["id"] for r in svc.runs.of_campaign(int(old["id"]))] == [old_run]
    assert svc.runs.of_campaign(int(new["id"])) == []
    # The new campaign runs the occurrence the old one ran: its runs are its own.
    control.schedule(svc, name, actor="test")
    svc.advance(minutes=1)
    assert control.run_now(svc, name, actor="test") not in (None, old_run)


def test_an_archived_campaign_is_not_restored_over_a_campaign_that_took_its_name(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    old = svc.campaigns.get(name)
    assert old is not None
    control.archive(svc, name, actor="test")
    save_campaign(svc)  # a new campaign under the freed name

    with pytest.raises(InputError, match=f"campaign id {old['id'] + 1} has it now"):
        control.restore(svc, int(old["id"]), actor="test")
    assert _status(svc, int(old["id"])) == "archived"


def test_a_clone_sends_the_copy_written_for_the_original_not_its_templates_folder(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    written = Copy(sms="{{ clinic.name }}: winter hours start Monday. Reply STOP to opt out")
    copybook.save_copy(svc, name, written, actor="mara")

    control.clone(svc, name, "flu-2027", actor="test")

    cloned = svc.copies.current("flu-2027")
    assert cloned is not None and Copy.from_row(cloned) == written
    _, definition = control.load_campaign(svc, "flu-2027")
    assert svc.renderer.source(templates_key(svc, definition), "sms.txt.j2") == written.sms


def test_a_new_campaign_under_a_cancelled_ones_name_does_not_send_the_old_ones_copy(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    old = Copy(sms="{{ clinic.name }}: the old campaign's words. Reply STOP to opt out")
    copybook.save_copy(svc, name, old, actor="mara")
    control.cancel(svc, name, actor="test")

    save_campaign(svc, description="the same name, a new campaign")  # its templates folder

    assert svc.copies.current(name) is None
    assert svc.copies.of_campaign(name) == [] and svc.copies.by_number(name, 1) is None
    _, definition = control.load_campaign(svc, name)
    assert templates_key(svc, definition) == definition.templates


def test_the_copy_of_an_archived_campaign_is_not_saved_into_a_new_one_of_its_name(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)
    old = svc.campaigns.get(name)
    assert old is not None
    control.archive(svc, name, actor="test")
    written = Copy(sms="{{ clinic.name }}: winter hours start Monday. Reply STOP to opt out")

    with pytest.raises(InputError, match="archived: restore it"):
        copybook.save_copy(svc, name, written, actor="mara")
    with pytest.raises(InputError, match="archived: restore it"):
        copybook.restore_version(svc, name, 1, actor="mara")
    assert [c["id"] for c in svc.campaigns.all()] == [old["id"]]
    assert svc.copies.of_campaign(name) == []


def test_a_restored_campaign_says_truly_whether_it_needs_approval_again(
    svc: StubbedServices,
) -> None:
    name = save_campaign(svc)  # approved by the operator
    campaign_id = int(control.schedule(svc, name, actor="test")["id"])
    control.archive(svc, name, actor="test")

    said = control.restore(svc, campaign_id, actor="test")

    # Its content is what was approved: the approval still counts, and schedule works.
    assert "submit it for approval" not in said and "so schedule it to send" in said
    control.schedule(svc, name, actor="test")
    control.archive(svc, name, actor="test")
    written = Copy(sms="{{ clinic.name }}: winter hours start Monday. Reply STOP to opt out")
    control.restore(svc, campaign_id, actor="test")
    copybook.save_copy(svc, name, written, actor="mara")  # the approval lapses
    control.archive(svc, name, actor="test")
    assert "submit it for approval" in control.restore(svc, campaign_id, actor="test")
