"""The state machine: the stored strings, the final states, the allowed moves."""

from __future__ import annotations

import pytest

from campaigns.domain.states import (
    ACTIVE_DELIVERY_STATES,
    FINAL_RUN_STATES,
    RECORDED_OUTCOMES,
    CampaignState,
    DeliveryState,
    IllegalTransition,
    RunState,
    SkipReason,
    campaign_sources,
    channel_of,
    run_sources,
)
from campaigns.errors import InputError


def test_the_states_are_the_strings_the_ledger_has_always_stored() -> None:
    assert {s.value for s in RunState} == {
        "fanning_out",
        "running",
        "paused",
        "finished",
        "cancelled",
        "missed",
    }
    assert {s.value for s in DeliveryState} == {
        "pending",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "skipped",
        "unknown",
    }
    assert {s.value for s in SkipReason} == {
        "no_consent",
        "opted_out",
        "invalid_contact",
        "frequency_cap",
        "cancelled",
        "no_lawful_time",
        "no_consent_for_number",
        "no_consent_for_address",
        "suppressed",
        "shared_number",
        "bounced",
        "complained",
        "dead_number",
    }
    assert {s.value for s in CampaignState} == {
        "draft",
        "scheduled",
        "paused",
        "cancelled",
        "archived",
    }
    assert RunState.RUNNING == "running" and f"run.{RunState.PAUSED}" == "run.paused"
    assert f"campaign.{CampaignState.SCHEDULED}" == "campaign.scheduled"


def test_a_finished_cancelled_or_missed_run_changes_no_more() -> None:
    assert sorted(FINAL_RUN_STATES) == ["cancelled", "finished", "missed"]
    for final in FINAL_RUN_STATES:
        assert not any(final.can_become(s) for s in RunState)


def test_only_a_paused_run_resumes_and_only_a_running_one_pauses() -> None:
    assert RunState.sources(RunState.PAUSED) == {RunState.RUNNING}
    assert RunState.sources(RunState.RUNNING) == {RunState.FANNING_OUT, RunState.PAUSED}
    assert RunState.sources(RunState.CANCELLED) == {
        RunState.FANNING_OUT,
        RunState.RUNNING,
        RunState.PAUSED,
    }
    assert run_sources(RunState.RUNNING, [RunState.PAUSED]) == [RunState.PAUSED]
    with pytest.raises(IllegalTransition, match="finished"):
        run_sources(RunState.RUNNING, [RunState.FINISHED])


def test_a_cancelled_campaign_is_only_archived_and_only_a_paused_one_resumes() -> None:
    assert [s for s in CampaignState if CampaignState.CANCELLED.can_become(s)] == ["archived"]
    assert [s for s in CampaignState if CampaignState.ARCHIVED.can_become(s)] == ["draft"]
    assert CampaignState.sources(CampaignState.PAUSED) == {CampaignState.SCHEDULED}
    assert CampaignState.sources(CampaignState.CANCELLED) == {
        CampaignState.DRAFT,
        CampaignState.SCHEDULED,
        CampaignState.PAUSED,
    }
    assert CampaignState.DRAFT.can_become(CampaignState.SCHEDULED)
    assert not CampaignState.DRAFT.can_become(CampaignState.PAUSED)
    with pytest.raises(IllegalTransition, match="a campaign cannot go from cancelled"):
        campaign_sources(CampaignState.SCHEDULED, [CampaignState.CANCELLED])


def test_a_run_is_open_while_a_delivery_may_still_be_sent() -> None:
    assert sorted(ACTIVE_DELIVERY_STATES) == ["pending", "sending", "unknown"]
    assert DeliveryState.PENDING not in RECORDED_OUTCOMES  # back_to_pending's, not record's
    assert DeliveryState.UNKNOWN.can_become(DeliveryState.PENDING)
    assert not DeliveryState.SENT.can_become(DeliveryState.PENDING)


def test_a_channel_is_sms_or_email_and_nothing_else() -> None:
    assert channel_of("sms") == "sms" and channel_of("email") == "email"
    with pytest.raises(InputError, match="'fax'"):
        channel_of("fax")
